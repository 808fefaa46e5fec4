//! Rootless through the SDK: one unprivileged process creates two
//! containers concurrently (each with a user namespace mapping the caller
//! to root), leaves one waiting for `start` while the other runs, and both
//! work. The test (root) runs itself again as `nobody` with setpriv; the
//! second run, seeing `BERTH_ROOTLESS_TEST_DIR`, is the unprivileged
//! embedder.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth::oci_spec::runtime::{get_rootless_mounts, Linux, Spec};
use berth::{Config, CreateOptions, ExitStatus, Runtime, Stdio};
use tokio::io::AsyncReadExt;

/// `nobody`.
const UID: u32 = 65534;
const CHILD_ENV: &str = "BERTH_ROOTLESS_TEST_DIR";

/// A rootless spec (as `berth spec --rootless` writes it) on the shared
/// rootfs, running `sh -c script`.
fn rootless_spec(script: &str) -> Spec {
    let mut spec = common::spec(script);
    spec.set_linux(Some(Linux::rootless(UID, UID)));
    spec.set_mounts(Some(get_rootless_mounts()));
    spec
}

async fn output(ctr: &berth::Container) -> String {
    let mut out = String::new();
    ctr.take_stdout()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    out
}

/// The unprivileged half: runs as `nobody`, state under `dir`.
async fn as_nobody(dir: &Path) {
    let config = {
        let mut config = Config::default();
        config.root = dir.join("state");
        config
    };
    let rt = Runtime::new(config).await.unwrap();
    let opts = || {
        let mut create_options = CreateOptions::default();
        create_options.stdin = Stdio::Null;
        create_options.stdout = Stdio::Piped;
        create_options.stderr = Stdio::Inherit;
        create_options
    };
    let script = "echo uid=$(id -u) map=$(tr -s ' ' </proc/self/uid_map)";
    let (id_a, id_b) = (common::id("rootless-a"), common::id("rootless-b"));
    let (a, b) = tokio::join!(
        rt.create_with(&id_a, common::bundle(rootless_spec(script)), opts()),
        rt.create_with(&id_b, common::bundle(rootless_spec(script)), opts()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    // `a` waits for start while `b` runs to its end.
    b.start().await.unwrap();
    let out_b = output(&b).await;
    assert_eq!(b.wait().await.unwrap(), ExitStatus::Exited(0));
    assert_eq!(a.status().await.unwrap(), berth::Status::Created);
    a.start().await.unwrap();
    let out_a = output(&a).await;
    assert_eq!(a.wait().await.unwrap(), ExitStatus::Exited(0));
    for out in [&out_a, &out_b] {
        assert_eq!(out.trim(), format!("uid=0 map= 0 {UID} 1"), "{out}");
    }
    a.delete().await.unwrap();
    b.delete().await.unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.join("state"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "network")
        .collect();
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

#[test]
fn two_rootless_containers_created_concurrently_by_one_process_both_work() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio.block_on(as_nobody(Path::new(&dir)));
        return;
    }
    berth_fixtures::require_root();
    // The shared rootfs must be there (made as root) before nobody uses it.
    let _ = common::rootfs();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(UID), Some(UID)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let me: PathBuf = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args([
            format!("--reuid={UID}"),
            format!("--regid={UID}"),
            "--clear-groups".into(),
            "--".into(),
        ])
        .arg(&me)
        .args([
            "--exact",
            "two_rootless_containers_created_concurrently_by_one_process_both_work",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .env("XDG_RUNTIME_DIR", dir.path())
        .env_remove("BERTH_ROOT")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "as nobody:\n{text}");
    // The run as nobody ran the test (and did not filter it away).
    assert!(text.contains("1 passed"), "{text}");
}
