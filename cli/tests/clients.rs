//! Real clients drive `berth` as their runtime: podman (through conmon) and
//! containerd (through its runc shim). Both are Debian packages installed by
//! `scripts/install-deps.sh`; a missing client fails these tests.
//!
//! Each client runs with private state (podman `--root`/`--runroot`,
//! containerd with its own config, socket and state dirs) so the host's
//! stores are never touched, and with `--network none`: podman's default
//! bridge would change the host's nftables and `ip_forward`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

use berth_fixtures::host::{
    check, mounts_below, remove_cgroups, require_tool as require, unmount_below, PrivateContainerd,
    RemoveIfNew,
};

/// The client tests share host paths the clients insist on (below); one at
/// a time, so that "did it exist before?" means before any of them.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A podman with its own storage and cgroup parent, using berth as its OCI
/// runtime.
struct Podman {
    dir: tempfile::TempDir,
    cgroup_parent: String,
    _cache: RemoveIfNew,
}

impl Podman {
    fn new() -> Podman {
        require("podman");
        require("conmon");
        let p = Podman {
            dir: tempfile::Builder::new()
                .prefix("berth-podman-")
                .tempdir()
                .unwrap(),
            cgroup_parent: format!("berth-podman-{}", std::process::id()),
            _cache: RemoveIfNew::new("/var/lib/containers"),
        };
        // No network by default, cgroupfs and file events (no systemd here).
        std::fs::write(
            p.dir.path().join("containers.conf"),
            "[containers]\nnetns = \"none\"\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .unwrap();
        // The test image: the busybox rootfs as one layer.
        let tar = p.dir.path().join("rootfs.tar");
        let rootfs = berth_fixtures::rootfs::shared().unwrap();
        check(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg(".")
                .output()
                .unwrap(),
            "tar rootfs",
        );
        check(
            p.cmd()
                .arg("import")
                .arg(&tar)
                .arg("localhost/berth-test:latest")
                .output()
                .unwrap(),
            "podman import",
        );
        p
    }

    fn cmd(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args([
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--storage-driver",
                "overlay",
            ])
            .arg("--runtime")
            .arg(BERTH)
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .stdin(Stdio::null());
        c
    }

    /// `podman run` with the options these machines need.
    fn run(&self) -> Command {
        let mut c = self.cmd();
        c.args([
            "run",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .arg("--cgroup-parent")
        .arg(format!("/{}", self.cgroup_parent));
        c
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["rm", "--all", "--force", "--time", "0"])
            .output();
        let _ = self.cmd().args(["system", "reset", "--force"]).output();
        unmount_below(self.dir.path());
        remove_cgroups(&self.cgroup_parent);
        if !std::thread::panicking() {
            assert_eq!(
                mounts_below(self.dir.path()).len(),
                0,
                "podman left mounts behind"
            );
        }
    }
}

#[test]
fn podman_runs_containers_with_berth() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // podman runs berth with its default state root, as it does runc
    // (`/run/runc`); made here, removed here.
    let _default_root = berth_fixtures::host::RemoveIfNew::new("/run/berth");
    let p = Podman::new();
    let out = check(
        p.run()
            .args(["--rm", "localhost/berth-test", "echo", "hi"])
            .output()
            .unwrap(),
        "podman run",
    );
    assert_eq!(out, "hi\n");

    // Detached, exec, stop, rm.
    let id = check(
        p.run()
            .args(["-d", "localhost/berth-test", "sleep", "1000"])
            .output()
            .unwrap(),
        "podman run -d",
    );
    let id = id.trim();
    let out = check(
        p.cmd()
            .args(["exec", id, "sh", "-c", "echo exec $$"])
            .output()
            .unwrap(),
        "podman exec",
    );
    assert!(out.starts_with("exec "), "{out}");
    assert_ne!(out.trim(), "exec 1");
    let status = check(
        p.cmd()
            .args(["inspect", "--format", "{{.State.Status}}", id])
            .output()
            .unwrap(),
        "inspect",
    );
    assert_eq!(status.trim(), "running");
    check(
        p.cmd().args(["stop", "--time", "1", id]).output().unwrap(),
        "podman stop",
    );
    let status = check(
        p.cmd()
            .args(["inspect", "--format", "{{.State.Status}}", id])
            .output()
            .unwrap(),
        "inspect",
    );
    assert_eq!(status.trim(), "exited");
    check(p.cmd().args(["rm", id]).output().unwrap(), "podman rm");

    // --memory is enforced: the limit is in the container's cgroup, and a
    // process that needs more is killed.
    let out = p
        .run()
        .args(["--rm", "--memory", "64m", "localhost/berth-test", "sh", "-c"])
        .arg("cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; head -c 200m /dev/zero | tail >/dev/null; echo tail=$?")
        .output()
        .unwrap();
    let text = check(out, "podman run --memory");
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines[0], "67108864", "{text}");
    assert_eq!(
        lines[1], "tail=137",
        "the allocation past the limit was not killed: {text}"
    );

    // -t: berth allocates the terminal in the container and sends its
    // master to conmon over --console-socket.
    let out = check(
        p.run()
            .args([
                "-t",
                "--rm",
                "localhost/berth-test",
                "sh",
                "-c",
                "tty; test -t 0 && echo stdin-tty",
            ])
            .output()
            .unwrap(),
        "podman run -t",
    );
    let out = out.replace('\r', "");
    assert!(out.starts_with("/dev/pts/"), "{out}");
    assert!(out.contains("stdin-tty"), "{out}");

    // The exit code comes through.
    let out = p
        .run()
        .args(["--rm", "localhost/berth-test", "sh", "-c", "exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

/// A containerd of the test's own.
struct Containerd {
    daemon: PrivateContainerd,
}

impl Containerd {
    fn start() -> Containerd {
        require("containerd-shim-runc-v2");
        let mut daemon = PrivateContainerd::new("berth-containerd-");
        daemon.launch();
        Containerd { daemon }
    }

    fn ctr(&self) -> Command {
        self.daemon.ctr()
    }

    /// `ctr run` with berth as the runtime binary and private state.
    fn run(&self) -> Command {
        let mut c = self.ctr();
        c.arg("run")
            .arg("--runc-binary")
            .arg(BERTH)
            .arg("--runc-root")
            .arg(self.path("runc"))
            .arg("--fifo-dir")
            .arg(self.path("fifo"));
        c
    }

    fn path(&self, name: &str) -> PathBuf {
        self.daemon.path(name)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.daemon.stop();
        unmount_below(self.daemon.dir());
        if !std::thread::panicking() {
            assert_eq!(
                mounts_below(self.daemon.dir()).len(),
                0,
                "containerd left mounts behind"
            );
            let left = std::fs::read_dir(self.path("runc").join("default"))
                .map(|d| d.count())
                .unwrap_or(0);
            assert_eq!(left, 0, "berth state left under the runc root");
        }
    }
}

#[test]
fn containerd_runs_containers_with_berth() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let c = Containerd::start();
    // The image: podman's export of the busybox rootfs, imported.
    let p = Podman::new();
    let archive = c.path("image.tar");
    check(
        p.cmd()
            .args(["save", "--format", "docker-archive", "-o"])
            .arg(&archive)
            .arg("localhost/berth-test")
            .output()
            .unwrap(),
        "podman save",
    );
    check(
        c.ctr()
            .args(["images", "import"])
            .arg(&archive)
            .output()
            .unwrap(),
        "ctr images import",
    );

    let out = check(
        c.run()
            .args(["--rm", "localhost/berth-test:latest", "once", "echo", "hi"])
            .output()
            .unwrap(),
        "ctr run",
    );
    assert_eq!(out, "hi\n");

    check(
        c.run()
            .args(["-d", "localhost/berth-test:latest", "task1", "sleep", "100"])
            .output()
            .unwrap(),
        "ctr run -d",
    );
    let ls = check(
        c.ctr().args(["task", "ls"]).output().unwrap(),
        "ctr task ls",
    );
    assert!(
        ls.lines()
            .any(|l| l.starts_with("task1") && l.contains("RUNNING")),
        "{ls}"
    );
    let out = check(
        c.ctr()
            .args(["task", "exec", "--fifo-dir"])
            .arg(c.path("fifo"))
            .args(["--exec-id", "e1", "task1", "sh", "-c", "echo exec-ok"])
            .output()
            .unwrap(),
        "ctr task exec",
    );
    assert_eq!(out, "exec-ok\n");
    check(
        c.ctr()
            .args(["task", "kill", "--signal", "SIGKILL", "task1"])
            .output()
            .unwrap(),
        "ctr task kill",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ls = check(
            c.ctr().args(["task", "ls"]).output().unwrap(),
            "ctr task ls",
        );
        if ls
            .lines()
            .any(|l| l.starts_with("task1") && l.contains("STOPPED"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "task1 never stopped: {ls}");
        std::thread::sleep(Duration::from_millis(50));
    }
    check(
        c.ctr().args(["task", "delete", "task1"]).output().unwrap(),
        "ctr task delete",
    );
    check(
        c.ctr().args(["container", "rm", "task1"]).output().unwrap(),
        "ctr container rm",
    );
}
