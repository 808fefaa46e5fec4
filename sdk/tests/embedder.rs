//! berth's children are cloned with no exit signal: until they `execve`,
//! the embedder's `wait(-1)` never reaps them and its SIGCHLD handler never
//! hears of them. (The kernel gives a process that execs the exit signal
//! SIGCHLD again, `de_thread` in fs/exec.c: after `start` only a parent
//! other than the embedder, the detached shim, hides a container.) One test
//! in its own binary, since it reaps every child of the process it can see.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use berth::ExitStatus;
use common::*;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

static SIGCHLDS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_sigchld(_: libc::c_int) {
    SIGCHLDS.fetch_add(1, Ordering::SeqCst);
}

/// Field 38 of `/proc/<pid>/stat`: the signal sent to the parent at exit.
fn exit_signal(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    // `rest` starts at field 3.
    rest.split_whitespace().nth(35).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedders_wait_and_sigchld_never_see_berths_children() {
    let rt = runtime().await;
    let handler = SigAction::new(
        SigHandler::Handler(count_sigchld),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only increments an atomic (async-signal-safe).
    let old = unsafe { sigaction(Signal::SIGCHLD, &handler) }.unwrap();

    // An embedder's reaping loop, running all along.
    let stop = Arc::new(AtomicBool::new(false));
    let stolen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let reaper = {
        let (stop, stolen) = (stop.clone(), stolen.clone());
        std::thread::spawn(move || {
            let mut echild = 0usize;
            while !stop.load(Ordering::SeqCst) {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) => {}
                    Ok(s) => stolen.lock().unwrap().push(format!("{s:?}")),
                    Err(nix::errno::Errno::ECHILD) => echild += 1,
                    Err(e) => panic!("waitpid: {e}"),
                }
                std::thread::yield_now();
            }
            echild
        })
    };

    // Created containers (cloned, not yet exec'd) are invisible to it.
    let mut ctrs = Vec::new();
    for _ in 0..5 {
        let ctr = rt
            .create_with(&id("embed"), bundle(spec("exit 3")), Default::default())
            .await
            .unwrap();
        assert_eq!(exit_signal(ctr.pid()), 0, "cloned with an exit signal");
        ctrs.push(ctr);
    }
    // Killed before their start, they exit without a word to the embedder.
    for ctr in &ctrs {
        ctr.kill(berth::Signal::SIGKILL).unwrap();
        assert_eq!(ctr.wait().await.unwrap(), ExitStatus::Signaled(9));
    }
    stop.store(true, Ordering::SeqCst);
    let echild = reaper.join().unwrap();
    // SAFETY: restores the disposition found before.
    unsafe { sigaction(Signal::SIGCHLD, &old) }.unwrap();

    assert!(
        stolen.lock().unwrap().is_empty(),
        "{:?}",
        stolen.lock().unwrap()
    );
    assert!(echild > 0, "the embedder's wait(-1) saw children all along");
    assert_eq!(
        SIGCHLDS.load(Ordering::SeqCst),
        0,
        "SIGCHLD reached the embedder"
    );
    for ctr in ctrs {
        ctr.delete(false).await.unwrap();
    }
}
