//! berth reaps only its own children, each through its pidfd
//! (`waitid(P_PIDFD, __WALL)`), never with `wait(-1)`: the embedding
//! process's own children keep their exit statuses, whatever berth does
//! meanwhile.
//!
//! The reverse cannot hold for a direct child. berth clones with exit
//! signal 0, but the kernel gives a process that `execve`s the exit signal
//! SIGCHLD again (`de_thread` in fs/exec.c), and a created container has
//! already exec'd `berth-waiter` (see docs/ARCHITECTURE.md). An embedder
//! that reaps with `wait(-1)` can therefore take a container's exit status;
//! the detached shim, as the container's parent, hides containers from such
//! an embedder. One test in its own binary, since it has children of its
//! own.

mod common;

use std::process::Command;

use berth::ExitStatus;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_never_reaps_the_embedders_own_children() {
    let rt = runtime().await;
    // The embedder's own children, exiting at different moments around
    // berth's creates, starts, execs, waits and deletes.
    let mut own: Vec<_> = (0..4)
        .map(|i| {
            Command::new("sh")
                .args(["-c", &format!("sleep 0.{i}; exit {}", 10 + i)])
                .spawn()
                .unwrap()
        })
        .collect();
    for _ in 0..4 {
        let out = run(&rt, "embed", spec("exit 3")).await.unwrap();
        assert_eq!(out.status, ExitStatus::Exited(3));
        let ctr = rt
            .create(&id("embed-exec"), bundle(spec("sleep 5")))
            .await
            .unwrap();
        ctr.start().await.unwrap();
        let mut process = ctr.spec().await.unwrap().process().clone().unwrap();
        process.set_args(Some(vec!["sh".into(), "-c".into(), "exit 4".into()]));
        let p = ctr.exec(&process, Default::default()).await.unwrap();
        assert_eq!(p.wait().await.unwrap(), ExitStatus::Exited(4));
        ctr.kill(berth::Signal::KILL).unwrap();
        assert_eq!(ctr.wait().await.unwrap(), ExitStatus::Signaled(9));
        ctr.delete().await.unwrap();
    }
    for (i, child) in own.iter_mut().enumerate() {
        let status = child
            .wait()
            .expect("the embedder's child was reaped by berth");
        assert_eq!(status.code(), Some(10 + i as i32));
    }
}
