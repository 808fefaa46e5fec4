//! Debian's containerd (1.6) runs containers through
//! `containerd-shim-berth-v2`, driven with `ctr`.
//!
//! Each test starts a containerd of its own (private config, root, state
//! and sockets in a temporary directory) with the shim on its `PATH`, uses
//! a containerd namespace of its own (so its cgroups are `/<namespace>/…`)
//! and a berth state root in the temporary directory, and checks at the
//! end that nothing is left: no shim process, mount, cgroup or state. The
//! host's containerd state (`/var/lib/containerd`, `/run/containerd`) is
//! never used; containerd 1.6 puts shim sockets in `/run/containerd/s`
//! whatever its config says, so that directory is removed afterwards if it
//! did not exist before. Containers get a network namespace of their own
//! with only `lo` (no CNI): the host's network is untouched.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-berth-v2");
const RUNTIME: &str = "io.containerd.berth.v2";
const IMAGE: &str = "localhost/berth-shim-test:latest";

use berth_fixtures::host::{
    cgroups_below as cgroups_of, check, mounts_below, unmount_below, PrivateContainerd,
};

/// The tests share `/run/containerd`: one at a time, so that "did it exist
/// before?" means before any of them.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Pids of the shim processes serving containerd namespace `ns`.
fn shims_of(ns: &str) -> Vec<i32> {
    let mut found = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_shim = args
            .first()
            .is_some_and(|a| a.ends_with(b"containerd-shim-berth-v2"));
        let in_ns = args
            .windows(2)
            .any(|w| w[0] == b"-namespace" && w[1] == ns.as_bytes());
        if is_shim && in_ns {
            found.push(pid);
        }
    }
    found
}

/// A tar of the busybox rootfs fixture as a one-layer docker archive, the
/// format `ctr images import` reads.
fn image_archive(dir: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let work = dir.join("image");
    std::fs::create_dir_all(&work).unwrap();
    let rootfs = berth_fixtures::rootfs::shared().unwrap();
    let layer = work.join("layer.tar");
    check(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&layer)
            .arg(".")
            .output()
            .unwrap(),
        "tar rootfs",
    );
    let digest = format!("{:x}", Sha256::digest(std::fs::read(&layer).unwrap()));
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{digest}")]},
    });
    std::fs::write(work.join("config.json"), config.to_string()).unwrap();
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": [IMAGE],
        "Layers": ["layer.tar"],
    }]);
    std::fs::write(work.join("manifest.json"), manifest.to_string()).unwrap();
    let archive = dir.join("image.tar");
    check(
        Command::new("tar")
            .arg("-C")
            .arg(&work)
            .arg("-cf")
            .arg(&archive)
            .args(["manifest.json", "config.json", "layer.tar"])
            .output()
            .unwrap(),
        "tar image",
    );
    std::fs::remove_dir_all(&work).unwrap();
    archive
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A containerd of the test's own, with the berth shim on its `PATH`.
struct Containerd {
    daemon: PrivateContainerd,
    /// The containerd namespace the test uses.
    ns: String,
}

impl Containerd {
    fn start() -> Containerd {
        let daemon = PrivateContainerd::new("berth-shim-containerd-");
        let d = daemon.dir();
        // The shim's options: its state root in the test's directory.
        std::fs::write(
            d.join("berth.json"),
            serde_json::json!({"root": d.join("berth")}).to_string(),
        )
        .unwrap();
        std::os::unix::fs::symlink(SHIM, d.join("bin/containerd-shim-berth-v2")).unwrap();
        let ns = format!(
            "berth-shim-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut c = Containerd { daemon, ns };
        c.launch();
        let archive = image_archive(c.daemon.dir());
        check(
            c.ctr()
                .args(["images", "import"])
                .arg(&archive)
                .output()
                .unwrap(),
            "ctr images import",
        );
        c
    }

    /// Starts the daemon and waits until it answers.
    fn launch(&mut self) {
        self.daemon.launch();
    }

    /// Stops the daemon (SIGTERM) and waits for it.
    fn stop(&mut self) {
        self.daemon.stop();
    }

    fn ctr(&self) -> Command {
        let mut c = self.daemon.ctr();
        c.args(["--namespace", &self.ns]);
        c
    }

    /// `ctr run` through the berth shim.
    fn run(&self) -> Command {
        let mut c = self.ctr();
        c.args(["run", "--runtime", RUNTIME, "--runtime-config-path"])
            .arg(self.path("berth.json"))
            .arg("--fifo-dir")
            .arg(self.path("fifo"));
        c
    }

    fn path(&self, name: &str) -> PathBuf {
        self.daemon.path(name)
    }

    /// `ctr task ls` as (id, pid, status) rows.
    fn tasks(&self) -> Vec<(String, String, String)> {
        let out = check(self.ctr().args(["task", "ls"]).output().unwrap(), "task ls");
        out.lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some((
                    f.first()?.to_string(),
                    f.get(1)?.to_string(),
                    f.get(2)?.to_string(),
                ))
            })
            .collect()
    }

    fn status(&self, id: &str) -> Option<String> {
        self.tasks().into_iter().find(|t| t.0 == id).map(|t| t.2)
    }

    /// Waits until task `id` shows `status` in `ctr task ls`.
    fn wait_status(&self, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = self.status(id);
            if now.as_deref() == Some(status) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} never became {status}: {now:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The state root the shim uses for this namespace's containers.
    fn berth_root(&self) -> PathBuf {
        self.path("berth")
    }

    /// The socket the shim serving group `group` (a container id, or a
    /// pod's sandbox id) listens on.
    fn socket(&self, group: &str) -> PathBuf {
        use sha2::{Digest, Sha256};
        let key = self.path("containerd.sock").join(&self.ns).join(group);
        let hash = Sha256::digest(key.as_os_str().as_encoded_bytes());
        Path::new("/run/containerd/s").join(format!("{hash:x}"))
    }

    /// Asserts that nothing of the test's containers is left: no task, no
    /// shim process or socket (of the shims of `groups`), no mount, no
    /// cgroup below `/<namespace>` and no berth state.
    fn assert_clean(&self, groups: &[&str]) {
        // (A dead shim's socket goes with its delete command, which
        // containerd may run after it dropped the task.)
        let deadline = Instant::now() + Duration::from_secs(30);
        for g in groups {
            let socket = self.socket(g);
            while socket.exists() {
                assert!(
                    Instant::now() < deadline,
                    "shim socket of {g} left: {}",
                    socket.display()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let tasks = self.tasks();
        assert!(tasks.is_empty(), "tasks left: {tasks:?}");
        // containerd reaps a shim after its Shutdown: wait for that.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !shims_of(&self.ns).is_empty() {
            assert!(
                Instant::now() < deadline,
                "shim processes left: {:?}",
                shims_of(&self.ns)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mounts: Vec<String> = mounts_below(self.daemon.dir())
            .into_iter()
            // The snapshotter's own mounts are containerd's, not a task's.
            .filter(|m| m.contains("/rootfs"))
            .collect();
        assert!(mounts.is_empty(), "rootfs mounts left: {mounts:?}");
        // The namespace's cgroup may be left by containerd's spec (runc
        // leaves it too); nothing below it.
        let cgroups: Vec<PathBuf> = cgroups_of(&self.ns)
            .into_iter()
            .filter(|d| d.file_name() != Some(self.ns.as_ref()))
            .collect();
        assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
        let state: Vec<_> = std::fs::read_dir(self.berth_root())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(state.is_empty(), "berth state left: {state:?}");
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Best effort on failure: remove what a failed test left.
        if self.daemon.is_running() {
            for (id, _, _) in self.tasks_quiet() {
                let _ = self.ctr().args(["task", "rm", "-f", &id]).output();
            }
            if let Ok(o) = self.ctr().args(["container", "ls", "-q"]).output() {
                for id in String::from_utf8_lossy(&o.stdout).lines() {
                    let _ = self.ctr().args(["container", "rm", id]).output();
                }
            }
        }
        self.stop();
        for pid in shims_of(&self.ns) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        unmount_below(self.daemon.dir());
        for d in cgroups_of(&self.ns) {
            let _ = std::fs::remove_dir(d);
        }
    }
}

impl Containerd {
    fn tasks_quiet(&self) -> Vec<(String, String, String)> {
        self.ctr()
            .args(["task", "ls"])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .skip(1)
                    .filter_map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        Some((
                            f.first()?.to_string(),
                            f.get(1)?.to_string(),
                            f.get(2)?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Runs `ctr` under `script`, so that it has a terminal (for `--tty`), in a
/// terminal of 33 rows and 77 columns.
fn under_terminal(c: &Containerd, args: &str) -> Output {
    let cmd = format!(
        "stty rows 33 cols 77; ctr --address {} --namespace {} {args}",
        c.path("containerd.sock").display(),
        c.ns
    );
    Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Prints the terminal's name, then its size once it has one (`stty size`
/// prints nothing or `0 …` before; at most 100 looks).
const WAIT_FOR_SIZE: &str = "tty; for i in $(seq 100); do s=$(stty size 2>/dev/null); \
     case \"$s\" in \"\"|\"0 \"*) sleep 0.1;; *) break;; esac; done; echo size $s";

/// Reads one value of a cgroup v1 file of task `id`.
fn cgroup_value(c: &Containerd, controller: &str, id: &str, file: &str) -> u64 {
    let path = Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(&c.ns)
        .join(id)
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

/// `ctr task metrics` as (metric, value) rows.
fn metrics(c: &Containerd, id: &str) -> std::collections::HashMap<String, String> {
    let out = check(
        c.ctr().args(["task", "metrics", id]).output().unwrap(),
        "ctr task metrics",
    );
    out.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect()
}

#[test]
fn run_prints_output_and_exit_code() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let c = Containerd::start();
    let out = check(
        c.run()
            .args(["--rm", IMAGE, "echo1", "echo", "hi"])
            .output()
            .unwrap(),
        "ctr run echo",
    );
    assert_eq!(out, "hi\n");
    let out = c
        .run()
        .args([
            "--rm",
            IMAGE,
            "exit3",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    // stdin reaches the container, and its end is the container's EOF.
    let mut child = c
        .run()
        .args(["--rm", IMAGE, "cat1", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"through stdin\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");
    // -t: the first process on a terminal, sized by ResizePty, and its
    // exit code.
    let out = under_terminal(
        &c,
        &format!(
            "run -t --rm --runtime {RUNTIME} --runtime-config-path {} --fifo-dir {} {IMAGE} tty1 \
             sh -c '{WAIT_FOR_SIZE}; exit 4'",
            c.path("berth.json").display(),
            c.path("fifo").display()
        ),
    );
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("size 33 77"), "{text}");
    c.assert_clean(&["echo1", "exit3", "cat1", "tty1"]);
}

#[test]
fn detached_task_exec_ps_pause_metrics_kill_delete() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let c = Containerd::start();
    check(
        c.run()
            .args([
                "-d",
                "--memory-limit",
                "67108864",
                IMAGE,
                "task1",
                "sleep",
                "1000",
            ])
            .output()
            .unwrap(),
        "ctr run -d",
    );
    c.wait_status("task1", "RUNNING");
    // The shim keeps the container's state in the root its options name.
    let state: Vec<_> = std::fs::read_dir(c.berth_root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(state, ["task1"], "berth state");
    assert!(c.socket("task1").exists(), "no shim socket where expected");
    let init_pid = c.tasks().into_iter().find(|t| t.0 == "task1").unwrap().1;

    // exec without a terminal: its own output, a pid other than 1.
    let out = check(
        c.ctr()
            .args(["task", "exec", "--fifo-dir"])
            .arg(c.path("fifo"))
            .args([
                "--exec-id",
                "e1",
                "task1",
                "sh",
                "-c",
                "echo exec $$; exit 0",
            ])
            .output()
            .unwrap(),
        "ctr task exec",
    );
    assert!(out.starts_with("exec "), "{out}");
    assert_ne!(out.trim(), "exec 1");
    // Its exit code comes through.
    let out = c
        .ctr()
        .args(["task", "exec", "--fifo-dir"])
        .arg(c.path("fifo"))
        .args(["--exec-id", "e2", "task1", "sh", "-c", "exit 5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");

    // exec with a terminal: a pty, sized by ResizePty to ctr's terminal.
    // ctr resizes only after the start (with runc too), so the process
    // waits until its terminal has a size.
    let fifo = c.path("fifo");
    let out = under_terminal(
        &c,
        &format!(
            "task exec --tty --fifo-dir {} --exec-id t1 task1 sh -c '{WAIT_FOR_SIZE}'",
            fifo.display()
        ),
    );
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("size 33 77"), "{text}");

    // ps: the container's processes, the first one among them.
    let out = check(
        c.ctr().args(["task", "ps", "task1"]).output().unwrap(),
        "ctr task ps",
    );
    let pids: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(pids.contains(&init_pid.as_str()), "{out} (init {init_pid})");

    // pause and resume, as `ctr task ls` shows them.
    check(
        c.ctr().args(["task", "pause", "task1"]).output().unwrap(),
        "ctr task pause",
    );
    assert_eq!(c.status("task1").as_deref(), Some("PAUSED"));
    check(
        c.ctr().args(["task", "resume", "task1"]).output().unwrap(),
        "ctr task resume",
    );
    assert_eq!(c.status("task1").as_deref(), Some("RUNNING"));

    // metrics: the figures of the container's cgroup files (CPU time and
    // memory read before and after bound the sample; the limit is exact).
    let cpu_before = cgroup_value(&c, "cpuacct", "task1", "cpuacct.usage");
    let mem_before = cgroup_value(&c, "memory", "task1", "memory.usage_in_bytes");
    let m = metrics(&c, "task1");
    let cpu_after = cgroup_value(&c, "cpuacct", "task1", "cpuacct.usage");
    let mem_after = cgroup_value(&c, "memory", "task1", "memory.usage_in_bytes");
    let value = |k: &str| -> u64 {
        m.get(k)
            .unwrap_or_else(|| panic!("no {k} in {m:?}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("memory.limit_in_bytes"), 67108864, "{m:?}");
    assert_eq!(
        value("memory.limit_in_bytes"),
        cgroup_value(&c, "memory", "task1", "memory.limit_in_bytes")
    );
    let cpu = value("cpuacct.usage");
    assert!(
        (cpu_before..=cpu_after).contains(&cpu),
        "cpu {cpu} not in {cpu_before}..={cpu_after}"
    );
    let mem = value("memory.usage_in_bytes");
    assert!(
        (mem_before.min(mem_after)..=mem_before.max(mem_after)).contains(&mem),
        "memory {mem} not between {mem_before} and {mem_after}"
    );
    assert!(cpu > 0 && mem > 0, "{m:?}");
    assert_eq!(
        value("pids.current"),
        cgroup_value(&c, "pids", "task1", "pids.current")
    );

    // Update: ctr 1.6 has no command for it, so through the shim's TTRPC
    // socket, as containerd calls it.
    let address = std::fs::read_to_string(
        c.path("state")
            .join("io.containerd.runtime.v2.task")
            .join(&c.ns)
            .join("task1")
            .join("address"),
    )
    .unwrap();
    update(
        &address,
        "task1",
        r#"{"memory": {"limit": 33554432}, "pids": {"limit": 50}}"#,
    );
    assert_eq!(
        cgroup_value(&c, "memory", "task1", "memory.limit_in_bytes"),
        33554432
    );
    assert_eq!(cgroup_value(&c, "pids", "task1", "pids.max"), 50);

    // Checkpoint is not implemented, and says so; the task runs on.
    let out = c
        .ctr()
        .args(["task", "checkpoint", "task1"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not implemented"), "{err}");
    assert_eq!(c.status("task1").as_deref(), Some("RUNNING"));

    // kill: the task stops; delete: it is gone.
    check(
        c.ctr()
            .args(["task", "kill", "--signal", "SIGKILL", "task1"])
            .output()
            .unwrap(),
        "ctr task kill",
    );
    c.wait_status("task1", "STOPPED");
    let out = check(
        c.ctr().args(["task", "delete", "task1"]).output().unwrap(),
        "ctr task delete",
    );
    let _ = out;
    check(
        c.ctr().args(["container", "rm", "task1"]).output().unwrap(),
        "ctr container rm",
    );
    c.assert_clean(&["task1"]);
}

/// Calls the shim's `Update` on `address` with `resources` (OCI
/// `LinuxResources` JSON).
fn update(address: &str, id: &str, resources: &str) {
    use containerd_shim_protos::api::UpdateTaskRequest;
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::protobuf::MessageField;
    use containerd_shim_protos::shim_async::{Client, TaskClient};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let task = TaskClient::new(Client::connect(address.trim()).await.unwrap());
        let req = UpdateTaskRequest {
            id: id.to_string(),
            resources: MessageField::some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
                value: resources.as_bytes().to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        };
        task.update(
            containerd_shim_protos::ttrpc::context::with_timeout(0),
            &req,
        )
        .await
        .unwrap();
    });
}

/// `ctr events` until `done` holds for its output; the daemon's log (with
/// the shims' own) is shown if it never does.
struct Events(Child, std::sync::mpsc::Receiver<String>, PathBuf);

impl Events {
    fn start(c: &Containerd) -> Events {
        let mut child = c
            .ctr()
            .arg("events")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = out.read(&mut buf) {
                if tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        Events(child, rx, c.path("containerd.log"))
    }

    /// The topics of the events about container `id` seen until `done`
    /// holds for them.
    fn until(&self, id: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let mut text = String::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let topics: Vec<String> = text
                .lines()
                .filter(|l| l.contains(&format!("\"container_id\":\"{id}\"")))
                .filter_map(|l| {
                    l.split_whitespace()
                        .find(|w| w.starts_with("/tasks/"))
                        .map(str::to_string)
                })
                .collect();
            if done(&topics) {
                return topics;
            }
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(&self.2).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "events so far: {text}\ncontainerd's log, last lines:\n{}",
                    tail.join("\n")
                );
            }
            if let Ok(more) = self.1.recv_timeout(Duration::from_millis(200)) {
                text.push_str(&more);
            }
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn events_come_in_order_and_oom_is_reported() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let c = Containerd::start();
    let events = Events::start(&c);
    // Give the subscription a first event of its own to show it is live.
    check(
        c.run()
            .args(["--rm", IMAGE, "warmup", "true"])
            .output()
            .unwrap(),
        "ctr run",
    );
    events.until("warmup", |t| t.iter().any(|t| t == "/tasks/delete"));

    check(
        c.run()
            .args(["--rm", IMAGE, "ev1", "echo", "hi"])
            .output()
            .unwrap(),
        "ctr run",
    );
    let topics = events.until("ev1", |t| t.iter().any(|t| t == "/tasks/delete"));
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "events of ev1"
    );

    // Exec events, and pause/resume, on a running task.
    check(
        c.run()
            .args(["-d", IMAGE, "ev2", "sleep", "1000"])
            .output()
            .unwrap(),
        "ctr run -d",
    );
    check(
        c.ctr()
            .args(["task", "exec", "--fifo-dir"])
            .arg(c.path("fifo"))
            .args(["--exec-id", "x1", "ev2", "true"])
            .output()
            .unwrap(),
        "ctr task exec",
    );
    check(
        c.ctr().args(["task", "pause", "ev2"]).output().unwrap(),
        "pause",
    );
    check(
        c.ctr().args(["task", "resume", "ev2"]).output().unwrap(),
        "resume",
    );
    check(
        c.ctr()
            .args(["task", "kill", "--signal", "SIGKILL", "ev2"])
            .output()
            .unwrap(),
        "kill",
    );
    c.wait_status("ev2", "STOPPED");
    check(
        c.ctr().args(["task", "rm", "ev2"]).output().unwrap(),
        "task rm",
    );
    check(
        c.ctr().args(["container", "rm", "ev2"]).output().unwrap(),
        "rm",
    );
    let topics = events.until("ev2", |t| t.iter().any(|t| t == "/tasks/delete"));
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exec-added",
            "/tasks/exec-started",
            "/tasks/exit",
            "/tasks/paused",
            "/tasks/resumed",
            "/tasks/exit",
            "/tasks/delete",
        ],
        "events of ev2"
    );

    // A 16 MiB limit, and a process that needs more: TaskOOM.
    let out = c
        .run()
        .args([
            "--rm",
            "--memory-limit",
            "16777216",
            IMAGE,
            "oom1",
            "sh",
            "-c",
            "head -c 64m /dev/zero | tail > /dev/null",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    eprintln!("ctr run oom1: {out:?}");
    let topics = events.until("oom1", |t| {
        t.iter().any(|t| t == "/tasks/oom") && t.iter().any(|t| t == "/tasks/delete")
    });
    assert!(topics.contains(&"/tasks/oom".to_string()), "{topics:?}");
    drop(events);
    c.assert_clean(&["warmup", "ev1", "ev2", "oom1"]);
}

#[test]
fn a_task_survives_a_containerd_restart() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut c = Containerd::start();
    check(
        c.run()
            .args(["-d", IMAGE, "survivor", "sleep", "1000"])
            .output()
            .unwrap(),
        "ctr run -d",
    );
    c.wait_status("survivor", "RUNNING");
    let before = c.tasks();
    let shims = shims_of(&c.ns);
    assert_eq!(shims.len(), 1, "{shims:?}");

    c.stop();
    // The shim and the container live on without containerd.
    assert_eq!(shims_of(&c.ns), shims);
    c.launch();

    // containerd re-connects: same task, same pid, still running.
    assert_eq!(c.tasks(), before);
    let out = check(
        c.ctr()
            .args(["task", "exec", "--fifo-dir"])
            .arg(c.path("fifo"))
            .args(["--exec-id", "after", "survivor", "echo", "still here"])
            .output()
            .unwrap(),
        "ctr task exec after the restart",
    );
    assert_eq!(out, "still here\n");
    // Kill with `all`: every process of the container (a background one
    // too; its streams elsewhere, else ctr waits for their end, with runc
    // as well).
    check(
        c.ctr()
            .args(["task", "exec", "--fifo-dir"])
            .arg(c.path("fifo"))
            .args(["--exec-id", "bg", "survivor", "sh", "-c"])
            .arg("sleep 1000 </dev/null >/dev/null 2>&1 &")
            .output()
            .unwrap(),
        "ctr task exec of a background process",
    );
    check(
        c.ctr()
            .args(["task", "kill", "--all", "--signal", "SIGKILL", "survivor"])
            .output()
            .unwrap(),
        "ctr task kill",
    );
    c.wait_status("survivor", "STOPPED");
    check(
        c.ctr()
            .args(["task", "delete", "survivor"])
            .output()
            .unwrap(),
        "ctr task delete",
    );
    check(
        c.ctr()
            .args(["container", "rm", "survivor"])
            .output()
            .unwrap(),
        "ctr container rm",
    );
    c.assert_clean(&["survivor"]);
}

#[test]
fn the_containers_of_a_pod_share_one_shim() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let c = Containerd::start();
    for id in ["pod-a", "pod-b"] {
        check(
            c.run()
                .args(["-d", "--annotation", "io.kubernetes.cri.sandbox-id=pod1"])
                .args(["--env", &format!("WHO={id}"), IMAGE, id, "sleep", "1000"])
                .output()
                .unwrap(),
            "ctr run -d in a pod",
        );
        c.wait_status(id, "RUNNING");
    }
    let shims = shims_of(&c.ns);
    assert_eq!(shims.len(), 1, "one shim for the pod: {shims:?}");
    for id in ["pod-a", "pod-b"] {
        let out = check(
            c.ctr()
                .args(["task", "exec", "--fifo-dir"])
                .arg(c.path("fifo"))
                .args(["--exec-id", "x", id, "sh", "-c", "echo $WHO"])
                .output()
                .unwrap(),
            "ctr task exec in a pod",
        );
        assert_eq!(out.trim(), id);
    }
    // The first container goes; the shim stays for the second.
    for (n, id) in ["pod-a", "pod-b"].into_iter().enumerate() {
        check(
            c.ctr()
                .args(["task", "kill", "--signal", "SIGKILL", id])
                .output()
                .unwrap(),
            "ctr task kill",
        );
        c.wait_status(id, "STOPPED");
        check(
            c.ctr().args(["task", "delete", id]).output().unwrap(),
            "delete",
        );
        check(
            c.ctr().args(["container", "rm", id]).output().unwrap(),
            "rm",
        );
        if n == 0 {
            assert_eq!(shims_of(&c.ns), shims, "the pod's shim went early");
            assert_eq!(c.status("pod-b").as_deref(), Some("RUNNING"));
        }
    }
    c.assert_clean(&["pod1", "pod-a", "pod-b"]);
}

#[test]
fn a_killed_shim_is_cleaned_up_by_its_delete_command() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let c = Containerd::start();
    check(
        c.run()
            .args(["-d", IMAGE, "orphan", "sleep", "1000"])
            .output()
            .unwrap(),
        "ctr run -d",
    );
    c.wait_status("orphan", "RUNNING");
    let shims = shims_of(&c.ns);
    assert_eq!(shims.len(), 1, "{shims:?}");
    let _ = Command::new("kill")
        .args(["-9", &shims[0].to_string()])
        .status();
    // containerd sees the shim gone, runs `containerd-shim-berth-v2
    // delete` (which removes the container the shim left) and forgets the
    // task.
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.status("orphan").is_some() {
        assert!(
            Instant::now() < deadline,
            "the task stayed: {:?}",
            c.tasks()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    check(
        c.ctr()
            .args(["container", "rm", "orphan"])
            .output()
            .unwrap(),
        "ctr container rm",
    );
    c.assert_clean(&["orphan"]);
}

/// The `berth` binary beside the shim (`cargo test --workspace` builds it;
/// built here with the same profile if it is not there).
fn berth_binary() -> PathBuf {
    let dir = Path::new(SHIM).parent().unwrap();
    let berth = dir.join("berth");
    if !berth.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "berth-cli", "--bin", "berth"]);
        if dir.file_name() == Some("release".as_ref()) {
            cmd.arg("--release");
        }
        let status = cmd.status().unwrap();
        assert!(status.success(), "cargo build -p berth-cli failed");
    }
    berth
}

#[test]
fn the_runc_shim_still_runs_the_berth_binary() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let berth = berth_binary();
    let c = Containerd::start();
    // io.containerd.runc.v2 with BinaryName = berth (ctr's --runc-binary).
    let runc = || {
        let mut cmd = c.ctr();
        cmd.args(["run", "--runc-binary"])
            .arg(&berth)
            .arg("--runc-root")
            .arg(c.path("runc-root"))
            .arg("--fifo-dir")
            .arg(c.path("fifo"));
        cmd
    };
    let out = check(
        runc()
            .args(["--rm", IMAGE, "runc1", "echo", "hi"])
            .output()
            .unwrap(),
        "ctr run through runc.v2 + berth",
    );
    assert_eq!(out, "hi\n");
    let out = runc()
        .args(["--rm", IMAGE, "runc2", "sh", "-c", "exit 6"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let left = std::fs::read_dir(c.path("runc-root").join(&c.ns))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "berth state left under the runc root");
    c.assert_clean(&[]);
}

#[test]
fn the_options_file_sets_root_and_a_seccomp_profile() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let c = Containerd::start();
    let profile = c.path("no-mkdir.json");
    std::fs::write(
        &profile,
        serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
        })
        .to_string(),
    )
    .unwrap();
    let root = c.path("other-root");
    let options = c.path("seccomp-options.json");
    std::fs::write(
        &options,
        serde_json::json!({"root": root, "seccomp_profile": profile}).to_string(),
    )
    .unwrap();
    let run = |id: &str, opts: &Path| {
        let mut cmd = c.ctr();
        cmd.args(["run", "--rm", "--runtime", RUNTIME, "--runtime-config-path"])
            .arg(opts)
            .arg("--fifo-dir")
            .arg(c.path("fifo"))
            .args([IMAGE, id, "sh", "-c"])
            .arg("mkdir /tmp/x && echo made || echo refused");
        check(cmd.output().unwrap(), "ctr run")
    };
    assert_eq!(run("plain", &c.path("berth.json")), "made\n");
    assert_eq!(run("filtered", &options), "refused\n");
    // The state went to the other root, and is gone.
    assert!(root.is_dir(), "the options' root was not used");
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
    c.assert_clean(&["plain", "filtered"]);
}
