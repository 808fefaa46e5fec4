//! Regression tests for published runc escapes, each named after its CVE.
//! Each attempts the attack from inside a real container and shows it
//! fails.

mod common;

use common::*;
use tokio::io::AsyncReadExt;

async fn exec_sh(ctr: &berth::Container, script: &str) -> (berth::ExitStatus, String) {
    let mut process = ctr.spec().unwrap().process().clone().unwrap();
    process.set_args(Some(vec!["sh".into(), "-c".into(), script.into()]));
    let opts = berth::ExecOptions {
        stdout: berth::Stdio::Piped,
        stderr: berth::Stdio::Piped,
        ..Default::default()
    };
    let p = ctr.exec(&process, opts).await.unwrap();
    let mut out = String::new();
    let mut err = String::new();
    let (mut o, mut e) = (p.take_stdout().unwrap(), p.take_stderr().unwrap());
    let (a, b) = tokio::join!(o.read_to_string(&mut out), e.read_to_string(&mut err));
    a.unwrap();
    b.unwrap();
    (p.wait().await.unwrap(), out + &err)
}

/// CVE-2019-5736: a process in the container reaches the runtime's own
/// binary through `/proc/<pid>/exe` of a runtime process in its pid
/// namespace (the container's init before it execs, while the container is
/// created but not started) and keeps it to overwrite later.
#[tokio::test]
async fn cve_2019_5736_proc_exe_of_the_runtime_is_unreachable() {
    let rt = runtime().await;
    let ctr = rt
        .create(&id("cve-2019-5736"), bundle(spec("true")))
        .await
        .unwrap();
    // Every other process of the pid namespace: the waiting init, and
    // this exec's own parent side if it were visible.
    let (_, out) = exec_sh(
        &ctr,
        "for p in /proc/[0-9]*; do [ $p = /proc/$$ ] && continue; \
           readlink $p/exe && echo LINK; (exec 3<$p/exe) && echo OPENED; done; echo end",
    )
    .await;
    ctr.delete(true).await.unwrap();
    let host_binary = std::env::current_exe().unwrap();
    assert!(out.contains("Permission denied"), "{out}");
    assert!(!out.contains("OPENED") && !out.contains("LINK"), "{out}");
    assert!(!out.contains(host_binary.to_str().unwrap()), "{out}");
    assert!(out.contains("end\n"), "{out}");
}

/// CVE-2024-21626: a descriptor of the runtime left open in the container's
/// process (a host directory) and a `process.cwd` of `/proc/self/fd/<n>`
/// put the process's cwd on the host, outside the rootfs. Every such cwd
/// must be refused, and the process must start with no descriptor but
/// stdio.
#[tokio::test]
async fn cve_2024_21626_no_leaked_fds_and_no_cwd_outside_the_rootfs() {
    let rt = runtime().await;
    // A host directory open in this (the runtime's) process, as runc's
    // leaked cgroup descriptor was.
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("host-secret"), "x").unwrap();
    let _held = std::fs::File::open(host_dir.path()).unwrap();
    for n in 3..40 {
        let mut s = spec("ls; pwd");
        s.process_mut()
            .as_mut()
            .unwrap()
            .set_cwd(format!("/proc/self/fd/{n}").into());
        match run(&rt, "cve-2024-21626", s).await {
            Ok(out) => assert!(
                !out.stdout.contains("host-secret"),
                "fd {n}: cwd outside the rootfs: {out:?}"
            ),
            Err(berth::Error::Init { step, .. }) => assert!(step.contains("chdir"), "{step}"),
            Err(e) => panic!("fd {n}: {e}"),
        }
    }
    // What the container's process has open.
    let out = sh(&rt, "ls /proc/self/fd | sort -n | tr '\\n' ' '").await;
    // 0-2 and the descriptor ls uses to read the directory.
    assert_eq!(out, "0 1 2 3 ", "{out}");
}
