//! `berth::blocking::on_caller`, as berth's CLI runs: a container created,
//! started, `exec`'d into, waited for and deleted inside it costs the
//! process no thread, and its exit status is still recorded. The same work
//! outside it runs on tokio's blocking pool (so the thread count can tell
//! the two apart). One test in its own binary: it counts the process's
//! threads.

mod common;

use std::collections::BTreeSet;

use berth::oci_spec::runtime::ContainerState;
use berth::{ExitStatus, Signal};
use common::*;

fn threads() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .map(|t| t.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn on_caller_runs_a_container_without_a_thread() {
    // Built first: the rootfs (and the fixtures' processes) are not what
    // is counted.
    let (script, sleeper) = (spec("echo out; exit 3"), spec("sleep 100"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let before = threads();
        let (out, exec_out) = berth::blocking::on_caller(async {
            let r = runtime().await;
            let out = run(&r, "on-caller", script.clone()).await.unwrap();
            let ctr = r
                .create(&id("on-caller-exec"), bundle(sleeper))
                .await
                .unwrap();
            ctr.start().await.unwrap();
            let exec_out = exec_fds_report(&ctr, Vec::new()).await;
            ctr.kill(Signal::KILL).unwrap();
            assert_eq!(ctr.wait().await.unwrap(), ExitStatus::Signaled(9));
            // Recorded for other processes too, by the supervisor that ran
            // on this thread.
            let again = r.get(ctr.id()).await.unwrap();
            let state = again.state().await.unwrap();
            assert_eq!(*state.status(), ContainerState::Stopped);
            ctr.delete().await.unwrap();
            (out, exec_out)
        })
        .await;
        assert_eq!(out.status, ExitStatus::Exited(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(exec_out, "", "descriptors leaked into the exec'd process");
        assert_eq!(threads(), before, "berth started a thread inside on_caller");

        // Outside it, the blocking pool does the same work.
        let r = runtime().await;
        let out = run(&r, "pool", script).await.unwrap();
        assert_eq!(out.status, ExitStatus::Exited(3));
        assert!(
            threads().len() > before.len(),
            "no pool thread outside on_caller: the check above proves nothing"
        );
    });
}
