//! CVE-2019-5736 through the `berth` binary, as an attacker with
//! `CAP_SYS_PTRACE` in a container would try it: open `/proc/1/exe` of the
//! container's init while it waits for `start`, keep the descriptor, and
//! write through it once `berth` no longer runs. The runtime binary here is
//! a copy, so that a failing test damages nothing but the copy. Run as
//! root; `BERTH_TEST_SABOTAGE=waiter` (debug builds) switches the
//! protection off, and the test then fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth::oci_spec::runtime::{Capability, LinuxNamespaceType, MountBuilder, Spec};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// What the attacker runs: hold `/proc/1/exe` open, wait for the init to
/// exec (so the file is no longer being executed by it), then try for 3 s
/// to overwrite the file through the held descriptor.
const EXPLOIT: &str = r#"
exec 3</proc/1/exe || { echo NOT-OPENED >/mnt/log; exit 0; }
readlink /proc/1/exe >/mnt/link
echo OPENED >/mnt/log
i=0
while [ "$(readlink /proc/1/exe)" = "$(cat /mnt/link)" ] && [ $i -lt 500 ]; do usleep 10000; i=$((i+1)); done
i=0
while [ $i -lt 300 ]; do
  if (printf '#!/bin/sh\necho pwned\n' >/proc/self/fd/3) 2>/dev/null; then echo WROTE >>/mnt/log; exit 0; fi
  usleep 10000; i=$((i+1))
done
echo NOT-WRITTEN >>/mnt/log
"#;

struct Runtime {
    binary: PathBuf,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Runtime {
    /// A private copy of the `berth` binary and a state root of its own.
    fn copy() -> Runtime {
        berth_fixtures::require_root();
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("berth");
        std::fs::copy(BERTH, &binary).unwrap();
        let root = PathBuf::from(format!(
            "/run/berth-escape-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        Runtime {
            binary,
            root,
            _dir: dir,
        }
    }

    /// Runs the copy with stderr in a file, not a pipe: a detached
    /// container inherits it, and a pipe would never see EOF.
    fn run(&self, args: &[&str]) -> (std::process::ExitStatus, String) {
        let err = tempfile::NamedTempFile::new().unwrap();
        let status = Command::new(&self.binary)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err.reopen().unwrap())
            .status()
            .unwrap();
        (status, std::fs::read_to_string(err.path()).unwrap())
    }

    /// The pid `berth state` reports.
    fn pid(&self, id: &str) -> i64 {
        let out = Command::new(&self.binary)
            .arg("--root")
            .arg(&self.root)
            .args(["state", id])
            .output()
            .unwrap();
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        state["pid"].as_i64().unwrap()
    }

    fn ok(&self, args: &[&str]) {
        let (status, stderr) = self.run(args);
        assert!(status.success(), "berth {args:?}: {stderr}");
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let left: Vec<_> = std::fs::read_dir(&self.root)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        let _ = std::fs::remove_dir(&self.root);
        if !std::thread::panicking() {
            assert!(left.is_empty(), "containers left behind: {left:?}");
        }
    }
}

fn id(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A bundle on the shared rootfs running `args`, with `CAP_SYS_PTRACE`
/// added to every capability set, `out` bound on `/mnt` (a directory the shared rootfs has: nothing may be added to it), and `edit`
/// applied last.
fn bundle(args: &[&str], out: &Path, edit: impl FnOnce(&mut Spec)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut spec = berth_fixtures::bundle::spec(&args);
    let mut root = spec.root().clone().unwrap();
    root.set_path(berth_fixtures::rootfs::shared().unwrap());
    spec.set_root(Some(root));
    berth_fixtures::bundle::add_capability(&mut spec, Capability::SysPtrace);
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.push(
        MountBuilder::default()
            .destination("/mnt")
            .typ("bind")
            .source(out)
            .options(vec!["rbind".to_string(), "rw".to_string()])
            .build()
            .unwrap(),
    );
    spec.set_mounts(Some(mounts));
    edit(&mut spec);
    berth_fixtures::bundle::write_config(dir.path(), &spec).unwrap();
    dir
}

fn wait_for(path: &Path, what: &[&str], limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if what.iter().any(|w| log.contains(w)) || start.elapsed() > limit {
            return log;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs the exploit against the init of a created container (`victim`)
/// from `attack` (which gets the id of the victim), starts the victim,
/// and returns the attacker's log and whether the copy was changed.
fn attempt(attack: impl FnOnce(&Runtime, &str, &Path) -> Vec<String>) -> (String, bool) {
    let rt = Runtime::copy();
    let original = std::fs::read(&rt.binary).unwrap();
    let out = tempfile::tempdir().unwrap();
    let victim = id("victim");
    let b = bundle(&["sleep", "10"], out.path(), |_| {});
    rt.ok(&["create", "--bundle", b.path().to_str().unwrap(), &victim]);
    let others = attack(&rt, &victim, out.path());
    let log = wait_for(
        &out.path().join("log"),
        &["OPENED", "NOT-OPENED"],
        Duration::from_secs(10),
    );
    rt.ok(&["start", &victim]);
    let log = if log.contains("NOT-OPENED") {
        log
    } else {
        wait_for(
            &out.path().join("log"),
            &["WROTE", "NOT-WRITTEN"],
            Duration::from_secs(15),
        )
    };
    let link = std::fs::read_to_string(out.path().join("link")).unwrap_or_default();
    // Cleaned up with the original binary: the copy may be the attacker's
    // now.
    for id in others.iter().chain([&victim]) {
        let status = Command::new(BERTH)
            .arg("--root")
            .arg(&rt.root)
            .args(["delete", "--force", id])
            .status()
            .unwrap();
        assert!(status.success(), "delete --force {id}");
    }
    let changed = std::fs::read(&rt.binary).unwrap() != original;
    (format!("{log}link: {link}"), changed)
}

#[test]
fn cve_2019_5736_exec_before_start_cannot_overwrite_the_runtime() {
    let (log, changed) = attempt(|rt, victim, _| {
        rt.ok(&[
            "exec",
            "--detach",
            "--cap",
            "CAP_SYS_PTRACE",
            victim,
            "sh",
            "-c",
            EXPLOIT,
        ]);
        vec![]
    });
    assert!(!changed, "the runtime binary was overwritten: {log}");
    assert!(
        log.contains("NOT-WRITTEN") || log.contains("NOT-OPENED"),
        "{log}"
    );
    assert!(!log.contains(BERTH) && !log.contains("/berth\n"), "{log}");
}

#[test]
fn cve_2019_5736_a_container_sharing_the_pid_namespace_cannot_overwrite_the_runtime() {
    let (log, changed) = attempt(|rt, victim, out| {
        let pid = rt.pid(victim);
        let attacker = id("attacker");
        let b = bundle(&["sh", "-c", EXPLOIT], out, |spec| {
            let mut linux = spec.linux().clone().unwrap();
            let mut namespaces = linux.namespaces().clone().unwrap();
            for ns in &mut namespaces {
                if ns.typ() == LinuxNamespaceType::Pid {
                    ns.set_path(Some(format!("/proc/{pid}/ns/pid").into()));
                }
            }
            linux.set_namespaces(Some(namespaces));
            spec.set_linux(Some(linux));
        });
        rt.ok(&[
            "run",
            "--detach",
            "--bundle",
            b.path().to_str().unwrap(),
            &attacker,
        ]);
        vec![attacker]
    });
    assert!(!changed, "the runtime binary was overwritten: {log}");
    assert!(
        log.contains("NOT-WRITTEN") || log.contains("NOT-OPENED"),
        "{log}"
    );
    assert!(!log.contains("/berth\n"), "{log}");
}
