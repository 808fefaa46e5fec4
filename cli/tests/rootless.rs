//! Rootless: an unprivileged host user runs `berth` with a user namespace
//! that maps it to root. The test (root) drops to `nobody` with setpriv.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// `nobody`.
const UID: u32 = 65534;

/// `berth <args>` as `nobody`, with `xdg` as its `$XDG_RUNTIME_DIR` and no
/// `--root`: the state root must default to `$XDG_RUNTIME_DIR/berth`.
fn berth_as_nobody(xdg: &Path, args: &[&str]) -> Output {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let status = Command::new("setpriv")
        .args([
            format!("--reuid={UID}"),
            format!("--regid={UID}"),
            "--clear-groups".into(),
            "--".into(),
            "env".into(),
            "-u".into(),
            "BERTH_ROOT".into(),
            format!("XDG_RUNTIME_DIR={}", xdg.display()),
            BERTH.into(),
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .unwrap();
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut s = String::new();
        f.rewind().unwrap();
        f.read_to_string(&mut s).unwrap();
        s.into_bytes()
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A directory `nobody` owns.
fn owned_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(d.path(), Some(UID), Some(UID)).unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

#[test]
fn rootless_container_runs_as_an_unprivileged_host_user_mapped_to_root() {
    berth_fixtures::require_root();
    let xdg = owned_dir();
    let bundle = owned_dir();
    let b = bundle.path().to_str().unwrap();
    // berth spec --rootless, as the user would.
    ok(berth_as_nobody(
        xdg.path(),
        &["spec", "--rootless", "--bundle", b],
    ));
    let config = bundle.path().join("config.json");
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    spec["root"]["path"] = berth_fixtures::rootfs::shared()
        .unwrap()
        .to_str()
        .unwrap()
        .into();
    spec["process"]["terminal"] = false.into();
    let write = |args: Value| {
        let mut s = spec.clone();
        s["process"]["args"] = args;
        std::fs::write(&config, s.to_string()).unwrap();
    };

    // Inside, the process is root, and root is nobody outside.
    write(serde_json::json!([
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map"
    ]));
    let id = format!("rootless-{}", std::process::id());
    let out = ok(berth_as_nobody(xdg.path(), &["run", "--bundle", b, &id]));
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words, ["0", "0", &UID.to_string(), "1"], "{out}");

    write(serde_json::json!(["sleep", "100"]));
    ok(berth_as_nobody(xdg.path(), &["create", "--bundle", b, &id]));
    let state: Value =
        serde_json::from_str(&ok(berth_as_nobody(xdg.path(), &["state", &id]))).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    // State lives under $XDG_RUNTIME_DIR/berth.
    assert!(xdg.path().join("berth").join(&id).is_dir());

    // On the host, every id of the container's process is nobody's ...
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids: Vec<u32> = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|u| u.parse().unwrap())
        .collect();
    assert_eq!(uids, [UID; 4], "{status}");
    // ... in a user namespace of its own that maps root to nobody.
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", &UID.to_string(), "1"],
        "{map}"
    );
    let own_ns = std::fs::read_link("/proc/self/ns/user").unwrap();
    let its_ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    assert_ne!(own_ns, its_ns, "no user namespace");
    // No cgroup was delegated to nobody: the container has none of its own.
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(!cgroups.contains(&id), "{cgroups}");

    ok(berth_as_nobody(xdg.path(), &["delete", "--force", &id]));
    assert!(!xdg.path().join("berth").join(&id).exists());
    assert!(std::fs::read_dir(xdg.path().join("berth"))
        .unwrap()
        .next()
        .is_none());
}
