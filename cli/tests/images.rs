//! Image commands through the `berth` binary: import, images, run and
//! create with --image, commit, rmi. Run as root.

use std::path::PathBuf;
use std::process::{Command, Output};

use berth_fixtures::image::{busybox_layer, sh, write_layout, Comp, Layer};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// A state root of the test's own; at the end its image store must be
/// empty after `rmi` (checked) and everything is removed.
struct Root(PathBuf);

impl Root {
    fn new() -> Root {
        berth_fixtures::require_root();
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Root(PathBuf::from(format!(
            "/run/berth-cli-img-{}-{n}",
            std::process::id()
        )))
    }

    /// Runs berth with stdout and stderr in files: a container that
    /// `create` leaves behind inherits them, and a pipe would keep
    /// `output()` waiting for the container's end.
    fn berth(&self, args: &[&str]) -> Output {
        berth_fixtures::output_via_files(Command::new(BERTH).arg("--root").arg(&self.0).args(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let snaps = self.0.join("images/snapshots");
        for e in std::fs::read_dir(&snaps).into_iter().flatten().flatten() {
            let _ = nix::mount::umount2(&e.path().join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        }
        let blobs: Vec<_> = std::fs::read_dir(self.0.join("images/blobs/sha256"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        let _ = std::fs::remove_dir_all(self.0.join("images"));
        let left: Vec<_> = std::fs::read_dir(&self.0)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        let _ = std::fs::remove_dir(&self.0);
        if !std::thread::panicking() {
            assert!(left.is_empty(), "containers left behind: {left:?}");
            assert!(blobs.is_empty(), "blobs left after rmi: {blobs:?}");
        }
    }
}

#[test]
fn import_run_commit_run_rmi() {
    let root = Root::new();
    let layout = tempfile::tempdir().unwrap();
    let top = Layer::new()
        .dir("etc", 0o755)
        .file("etc/greeting", b"hello\n", 0o644)
        .into_tar();
    write_layout(
        layout.path(),
        "cli",
        &[(busybox_layer(), Comp::Gzip), (top, Comp::Zstd)],
        &sh("cat /etc/greeting"),
        false,
    );
    let name = root.ok(&["import", layout.path().to_str().unwrap(), "test/cli"]);
    assert_eq!(name, "test/cli:latest\n");
    assert_eq!(root.ok(&["images", "-q"]), "test/cli:latest\n");
    let json: serde_json::Value =
        serde_json::from_str(&root.ok(&["images", "--format", "json"])).unwrap();
    assert_eq!(json[0]["reference"], "test/cli:latest");

    // The image's own command.
    let id = format!("cli-img-{}", std::process::id());
    assert_eq!(root.ok(&["run", "--image", "test/cli", &id]), "hello\n");

    // A command of ours, kept for commit.
    let out = root.ok(&[
        "run",
        "--keep",
        "--image",
        "test/cli",
        "-e",
        "X=1",
        &id,
        "sh",
        "-c",
        "echo $X > /x",
    ]);
    assert_eq!(out, "");
    root.ok(&["commit", &id, "test/cli:2"]);
    root.ok(&["delete", &id]);
    assert_eq!(
        root.ok(&["run", "--image", "test/cli:2", &id, "cat", "/x"]),
        "1\n"
    );

    // The container's exit code, and create/start/delete.
    let out = root.berth(&["run", "--image", "test/cli", &id, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    root.ok(&["create", "--image", "test/cli", &id, "true"]);
    assert!(root
        .0
        .join("images/snapshots")
        .join(&id)
        .join("rootfs/etc/greeting")
        .exists());
    root.ok(&["delete", "--force", &id]);
    assert!(!root.0.join("images/snapshots").join(&id).exists());

    // Refusals.
    let out = root.berth(&["run", "--image", "nope", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such image"));
    let out = root.berth(&["run", &id, "echo", "x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --image"));

    let out = root.ok(&["rmi", "test/cli", "test/cli:2"]);
    assert!(out.contains("removed 7 blobs"), "{out}");
    assert_eq!(root.ok(&["images", "-q"]), "");
}

#[test]
fn push_rmi_pull_and_run_through_a_local_registry() {
    let root = Root::new();
    let reg = berth_fixtures::image::Registry::start();
    let layout = tempfile::tempdir().unwrap();
    write_layout(
        layout.path(),
        "p",
        &[(busybox_layer(), Comp::Gzip)],
        &sh("echo pulled"),
        false,
    );
    let reference = format!("{}/cli/img:1", reg.addr());
    root.ok(&["import", layout.path().to_str().unwrap(), &reference]);
    let pushed = root.ok(&["push", &reference]);
    root.ok(&["rmi", &reference]);
    assert_eq!(root.ok(&["images", "-q"]), "");
    let out = root.berth(&["pull", &reference]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), pushed);
    let progress = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        progress.lines().count(),
        2,
        "config and one layer: {progress}"
    );
    let id = format!("cli-pull-{}", std::process::id());
    assert_eq!(root.ok(&["run", "--image", &reference, &id]), "pulled\n");
    let out = root.berth(&["pull", &format!("{}/cli/absent:1", reg.addr())]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    root.ok(&["rmi", &reference]);
}
