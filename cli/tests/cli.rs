//! The OCI lifecycle through the `berth` binary, as containerd and podman
//! drive it. Run as root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// A state root of the test's own, removed (and checked empty) at the end.
struct Root(PathBuf);

impl Root {
    fn new() -> Root {
        berth_fixtures::require_root();
        static N: AtomicUsize = AtomicUsize::new(0);
        Root(PathBuf::from(format!(
            "/run/berth-cli-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )))
    }

    /// Runs berth with stdout and stderr in files, not pipes: a container
    /// that `create` leaves behind inherits them, and a pipe would keep
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

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let left: Vec<_> = std::fs::read_dir(&self.0)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        let _ = std::fs::remove_dir(&self.0);
        if !std::thread::panicking() {
            assert!(left.is_empty(), "containers left behind: {left:?}");
        }
    }
}

/// A bundle directory whose config runs `args` on the shared rootfs.
fn bundle(args: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut spec =
        berth_fixtures::bundle::spec(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let mut root = spec.root().clone().unwrap();
    root.set_path(berth_fixtures::rootfs::shared().unwrap());
    spec.set_root(Some(root));
    berth_fixtures::bundle::write_config(dir.path(), &spec).unwrap();
    dir
}

fn id(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn create_start_kill_delete_with_pid_file() {
    let root = Root::new();
    let b = bundle(&["sleep", "100"]);
    let id = id("life");
    let pid_file = b.path().join("pid");
    root.ok(&[
        "create",
        "--bundle",
        path(b.path()),
        "--pid-file",
        path(&pid_file),
        &id,
    ]);
    let pid: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let s = root.state(&id);
    assert_eq!(s["status"], "created");
    assert_eq!(s["pid"], pid);
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["bundle"], path(b.path()));
    assert!(s["created"].as_str().unwrap().ends_with('Z'));

    root.ok(&["start", &id]);
    assert_eq!(root.state(&id)["status"], "running");
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, "sleep\u{0}100\u{0}");

    // A running container is not deleted without --force.
    assert!(!root.berth(&["delete", &id]).status.success());
    root.ok(&["kill", &id, "KILL"]);
    // The container's init is now an orphan of this machine's init; its
    // exit makes it "stopped" as soon as the kernel marks it dead.
    let mut status = root.state(&id)["status"].clone();
    for _ in 0..100 {
        if status == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        status = root.state(&id)["status"].clone();
    }
    assert_eq!(status, "stopped");
    root.ok(&["delete", &id]);
    assert!(!root.berth(&["state", &id]).status.success());
}

#[test]
fn run_exits_with_the_containers_code() {
    let root = Root::new();
    let b = bundle(&["sh", "-c", "echo out; echo err >&2; exit 7"]);
    let out = root.berth(&["run", "--bundle", path(b.path()), &id("run")]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    let b = bundle(&["sh", "-c", "kill -KILL $$"]);
    // Signals from inside do not kill init; from outside they do.
    let out = root.berth(&["run", "--bundle", path(b.path()), &id("run")]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn exec_ps_pause_resume() {
    let root = Root::new();
    let b = bundle(&["sleep", "100"]);
    let id = id("exec");
    root.ok(&["run", "--detach", "--bundle", path(b.path()), &id]);
    let out = root.ok(&[
        "exec",
        "--env",
        "X=1",
        "--user",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "echo $X $(id -u) $$",
    ]);
    let words: Vec<_> = out.split_whitespace().collect();
    assert_eq!(words[..2], ["1", "1000"], "{out}");
    assert_ne!(words[2], "1");
    let code = root
        .berth(&["exec", &id, "sh", "-c", "exit 5"])
        .status
        .code();
    assert_eq!(code, Some(5));

    let pids: Vec<i64> = serde_json::from_str(&root.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids, [root.state(&id)["pid"].as_i64().unwrap()]);

    root.ok(&["pause", &id]);
    let freezer = format!("/sys/fs/cgroup/freezer/berth/{id}/freezer.state");
    if Path::new(&freezer).exists() {
        assert_eq!(std::fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
    }
    root.ok(&["resume", &id]);
    root.ok(&["delete", "--force", &id]);
}

#[test]
fn list_and_errors() {
    let root = Root::new();
    let b = bundle(&["sleep", "100"]);
    let id = id("list");
    root.ok(&["create", "--bundle", path(b.path()), &id]);
    let all: Vec<Value> = serde_json::from_str(&root.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["id"], id.as_str());
    assert_eq!(root.ok(&["list", "-q"]).trim(), id);
    // Creating the same id twice fails and leaves the first alone.
    assert!(!root
        .berth(&["create", "--bundle", path(b.path()), &id])
        .status
        .success());
    assert_eq!(root.state(&id)["status"], "created");
    root.ok(&["delete", "--force", &id]);

    let out = root.berth(&["start", "no-such-container"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    // As runc: forcing the delete of a missing container succeeds.
    root.ok(&["delete", "--force", "no-such-container"]);
}

#[test]
fn errors_go_to_the_json_log_too() {
    let root = Root::new();
    let log = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(BERTH)
        .args([
            "--root",
            path(&root.0),
            "--log",
            path(log.path()),
            "--log-format",
            "json",
            "start",
            "nope",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let line: Value = serde_json::from_str(
        std::fs::read_to_string(log.path())
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("nope"));
}

#[test]
fn spec_and_features() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new();
    root.ok(&["spec", "--bundle", path(dir.path())]);
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(spec["process"]["terminal"], true);
    assert_eq!(spec["root"]["path"], "rootfs");
    let seccomp = &spec["linux"]["seccomp"];
    assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO", "{seccomp}");
    assert!(seccomp["syscalls"][0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "execve"));
    let f: Value = serde_json::from_str(&root.ok(&["features"])).unwrap();
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "user"));
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert!(root.ok(&["--version"]).starts_with("berth version"));
}

/// 2,000 `berth run` of `/bin/true` in a row all finish: none loses the
/// race between the container's exit and its own wait (youki hangs on ~4%
/// of these; runc had the same bug).
#[test]
fn two_thousand_fast_runs_never_hang() {
    let root = Root::new();
    let b = bundle(&["/bin/true"]);
    let runs = 2000;
    for i in 0..runs {
        let mut child = Command::new(BERTH)
            .arg("--root")
            .arg(&root.0)
            .args(["run", "--bundle", path(b.path())])
            .arg(format!("fast-{}-{i}", std::process::id()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let pid = child.id();
        let waiter = std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(status) => assert!(status.unwrap().success(), "run {i} failed"),
            Err(_) => {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                panic!("run {i} of {runs} hung");
            }
        }
        waiter.join().unwrap();
    }
}

#[test]
fn events_stats_and_update_read_and_write_the_cgroup() {
    let root = Root::new();
    let b = bundle(&["sleep", "100"]);
    let id = id("stats");
    root.ok(&["run", "--detach", "--bundle", path(b.path()), &id]);
    let ev: Value = serde_json::from_str(&root.ok(&["events", "--stats", &id])).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    assert_eq!(ev["data"]["pids"]["current"], 1);
    assert!(ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0);

    root.ok(&["update", "--memory", "67108864", "--pids-limit", "42", &id]);
    let ev: Value = serde_json::from_str(&root.ok(&["events", "--stats", &id])).unwrap();
    assert_eq!(ev["data"]["memory"]["usage"]["limit"], 67108864);
    assert_eq!(ev["data"]["pids"]["limit"], 42);
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/berth/{id}/memory.limit_in_bytes"
    ))
    .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/berth/{id}/memory.max")))
    .unwrap();
    assert_eq!(limit.trim(), "67108864");
    root.ok(&["delete", "--force", &id]);
}
