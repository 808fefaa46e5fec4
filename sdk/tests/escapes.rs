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
