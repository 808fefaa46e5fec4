//! Seccomp profiles whose default action is an errno, with a random
//! allow-list: the container must start whenever the allow-list covers what
//! its *process* needs, whichever of `close_range`, `getcwd`, `fchdir` and
//! `openat2` (calls a runtime could make after the filter is loaded, and
//! which older profiles do not list) it allows, with and without
//! noNewPrivileges. A profile that denies a call the process needs must
//! keep it from running to its end (the control that shows the property
//! can fail).
//!
//! Needs root. `PROPTEST_CASES` sets the number of cases (32 by default).

use std::path::PathBuf;
use std::sync::OnceLock;

use berth::oci_spec::runtime::{LinuxSeccomp, Spec};
use berth::{Bundle, Config, CreateOptions, Runtime, Stdio};
use berth_fixtures::seccomp::{BASE_ALLOW_LIST, NEWER_OR_AVOIDABLE};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use tokio::io::AsyncReadExt;

/// What the process runs: a shell that reports its seccomp mode and
/// no_new_privs.
const SCRIPT: &str = "echo started; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status";

/// Calls of the base list the process (busybox `sh`, `echo`, `grep`) and
/// berth's steps after the filter never make: a profile may leave any of
/// them out.
const OPTIONAL: &[&str] = &[
    "accept",
    "accept4",
    "bind",
    "connect",
    "listen",
    "socketpair",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_wait",
    "eventfd",
    "eventfd2",
    "flock",
    "fsync",
    "fdatasync",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "rename",
    "renameat",
    "rmdir",
    "mknod",
    "mknodat",
    "truncate",
    "ftruncate",
    "sendfile",
    "recvmmsg",
    "sendmmsg",
    "shutdown",
    "pause",
    "alarm",
    "utime",
    "utimes",
    "utimensat",
    "readahead",
    "sync",
    "creat",
    "setitimer",
    "getitimer",
];

/// Calls the process cannot run without: the control cases leave one out.
const ESSENTIAL: &[&str] = &["execve", "write", "openat"];

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

fn tokio_rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// One drawn profile.
#[derive(Debug, Clone)]
struct Case {
    no_new_privileges: bool,
    /// Which of [`NEWER_OR_AVOIDABLE`] the allow-list has.
    newer: Vec<bool>,
    /// Which of [`OPTIONAL`] it leaves out.
    dropped: Vec<bool>,
    /// `defaultErrnoRet`.
    errno: u32,
    /// An [`ESSENTIAL`] call left out (the control), by index.
    missing: Option<usize>,
    /// The process's cwd: `/` or a directory below it.
    cwd: &'static str,
}

impl Case {
    fn allowed(&self) -> Vec<&'static str> {
        let mut names: Vec<&str> = BASE_ALLOW_LIST
            .iter()
            .copied()
            .filter(|n| {
                !OPTIONAL
                    .iter()
                    .zip(&self.dropped)
                    .any(|(o, &d)| d && o == n)
            })
            .filter(|n| self.missing.map(|i| ESSENTIAL[i]) != Some(*n))
            .collect();
        for (n, &on) in NEWER_OR_AVOIDABLE.iter().zip(&self.newer) {
            if on {
                names.push(n);
            }
        }
        names
    }

    fn spec(&self) -> Spec {
        let mut spec = berth_fixtures::bundle::spec(&["sh".into(), "-c".into(), SCRIPT.into()]);
        let mut root = spec.root().clone().unwrap();
        root.set_path(berth_fixtures::rootfs::shared().expect("shared rootfs"));
        spec.set_root(Some(root));
        let mut process = spec.process().clone().unwrap();
        process
            .set_no_new_privileges(Some(self.no_new_privileges))
            .set_cwd(self.cwd.into());
        spec.set_process(Some(process));
        let seccomp: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": self.errno,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": self.allowed(), "action": "SCMP_ACT_ALLOW"}],
        }))
        .expect("seccomp profile");
        let mut linux = spec.linux().clone().unwrap();
        linux.set_seccomp(Some(seccomp));
        spec.set_linux(Some(linux));
        spec
    }
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        proptest::collection::vec(any::<bool>(), NEWER_OR_AVOIDABLE.len()),
        proptest::collection::vec(any::<bool>(), OPTIONAL.len()),
        // Not ERANGE: glibc's getcwd asserts when the kernel answers a call
        // it made itself with ERANGE, so a profile that refuses getcwd with
        // it breaks the process itself (the rootfs's `sh` aborts at start),
        // whatever the runtime does.
        // Nor EINTR or EAGAIN: a program retries a call refused with them,
        // so the control case (an essential call such as `write` left out)
        // would spin forever instead of failing (busybox `sh` did).
        (1u32..134).prop_filter("ERANGE breaks getcwd; EINTR, EAGAIN are retried", |e| {
            ![libc::ERANGE, libc::EINTR, libc::EAGAIN].contains(&(*e as i32))
        }),
        proptest::option::weighted(0.15, 0..ESSENTIAL.len()),
        prop_oneof![Just("/"), Just("/tmp"), Just("/etc")],
    )
        .prop_map(
            |(no_new_privileges, newer, dropped, errno, missing, cwd)| Case {
                no_new_privileges,
                newer,
                dropped,
                errno,
                missing,
                cwd,
            },
        )
}

/// Runs the case's container to its end; its stdout, or why it did not
/// run.
async fn run(rt: &Runtime, dir: &std::path::Path, id: &str, spec: Spec) -> Result<String, String> {
    let mut opts = CreateOptions::default();
    opts.stdin = Stdio::Null;
    opts.stdout = Stdio::Piped;
    opts.stderr = Stdio::Piped;
    let bundle = Bundle::new(dir, spec).map_err(|e| e.to_string())?;
    let ctr = rt
        .create_with(id, bundle, opts)
        .await
        .map_err(|e| format!("create: {e}"))?;
    let mut out = ctr.take_stdout().unwrap();
    let result = async {
        ctr.start().await.map_err(|e| format!("start: {e}"))?;
        let mut stdout = String::new();
        let _ = out.read_to_string(&mut stdout).await;
        let status = ctr.wait().await.map_err(|e| format!("wait: {e}"))?;
        if status.success() {
            Ok(stdout)
        } else {
            Err(format!("exited with {status:?}: {stdout}"))
        }
    }
    .await;
    ctr.force_delete()
        .await
        .map_err(|e| format!("delete: {e}"))?;
    result
}

#[test]
fn errno_profiles_start_whenever_the_allow_list_covers_the_process() {
    berth_fixtures::require_root();
    let dir = tempfile::tempdir().unwrap();
    let unique = format!("berth-conformance-seccomp-{}", std::process::id());
    let config = {
        let mut config = Config::default();
        config.root = PathBuf::from("/run").join(&unique);
        config.cgroup_parent = unique;
        config
    };
    let rt = tokio_rt().block_on(Runtime::new(config)).expect("runtime");
    let mut runner = TestRunner::new(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    });
    let n = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&case(), |c| {
        let id = format!(
            "seccomp-{}",
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let outcome = tokio_rt().block_on(run(&rt, dir.path(), &id, c.spec()));
        let nnp = format!("NoNewPrivs:\t{}", u8::from(c.no_new_privileges));
        let ran = |out: &String| {
            out.contains("started") && out.contains("Seccomp:\t2") && out.contains(&nnp)
        };
        match (c.missing, outcome) {
            (None, Ok(out)) if ran(&out) => Ok(()),
            (None, Ok(out)) => Err(TestCaseError::fail(format!("ran, but reported: {out:?}"))),
            (None, Err(e)) => Err(TestCaseError::fail(format!(
                "the allow-list covers the process, yet: {e}"
            ))),
            (Some(i), Ok(out)) if ran(&out) => Err(TestCaseError::fail(format!(
                "{} was denied, yet the process ran: {out:?}",
                ESSENTIAL[i]
            ))),
            (Some(_), _) => Ok(()),
        }
    });
    let _ = std::fs::remove_dir(&rt.config().root);
    if let Err(e) = result {
        panic!("{e}");
    }
}
