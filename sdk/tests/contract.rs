//! The embedding contract inside one process: one supervisor per container
//! process, handles that only observe, fused streams, and a `cgroupsPath`
//! naming an existing cgroup left as it was.

mod common;

use std::time::Duration;

use berth::cgroups::Cgroup;
use berth::oci_spec::runtime::ProcessBuilder;
use berth::{ExecOptions, ExitStatus, Signal, Status, Stdio};
use common::*;
use futures::StreamExt;

/// Whether `pid` is a zombie (or gone).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// Whether `pid` exists at all (as a zombie too).
fn exists(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits are dropped at once, again and again, while the container runs
/// and exits; every handle is dropped; a fresh handle from `Runtime::get`
/// in this process still gets the exit status, and no zombie is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_waits_and_handles_lose_no_exit_status() {
    let rt = runtime().await;
    let mut opts = berth::CreateOptions::default();
    opts.stdin = Stdio::Piped;
    let ctr = rt
        .create_with(&id("dropped"), bundle(spec("read x; exit 7")), opts)
        .await
        .unwrap();
    let (id, pid) = (ctr.id().to_string(), ctr.pid());
    ctr.start().await.unwrap();
    let mut stdin = ctr.take_stdin();
    for _ in 0..20 {
        let r = tokio::time::timeout(Duration::from_micros(50), ctr.wait()).await;
        assert!(r.is_err(), "exited before its stdin closed");
    }
    // The container exits (its stdin closes) while a wait is being dropped.
    stdin.take();
    let _ = tokio::time::timeout(Duration::from_micros(1), ctr.wait()).await;
    drop(ctr);
    let again = rt.get(&id).await.unwrap();
    assert_eq!(again.wait().await.unwrap(), ExitStatus::Exited(7));
    assert!(!exists(pid), "pid {pid} was not reaped");
    assert_eq!(again.status().await.unwrap(), Status::Stopped);
    again.delete().await.unwrap();
}

/// A created container whose every handle is dropped is still supervised:
/// killed from a fresh handle, it is reaped and its status recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_get_in_the_creating_process_can_wait() {
    let rt = runtime().await;
    let ctr = rt
        .create_with(&id("get"), bundle(spec("sleep 100")), Default::default())
        .await
        .unwrap();
    let (id, pid) = (ctr.id().to_string(), ctr.pid());
    drop(ctr);
    let h = rt.get(&id).await.unwrap();
    h.kill(Signal::KILL).unwrap();
    assert_eq!(h.wait().await.unwrap(), ExitStatus::Signaled(9));
    assert!(!exists(pid));
    // A third handle, and another Runtime on the same root, agree.
    let other = berth::Runtime::new(rt.config().clone()).await.unwrap();
    assert_eq!(
        other.get(&id).await.unwrap().wait().await.unwrap(),
        ExitStatus::Signaled(9)
    );
    h.delete().await.unwrap();
}

/// An exec'd process whose handle is dropped before it exits is reaped by
/// its supervisor: no zombie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_exec_process_is_reaped() {
    let rt = runtime().await;
    let ctr = rt
        .create_with(&id("exec"), bundle(spec("sleep 100")), Default::default())
        .await
        .unwrap();
    ctr.start().await.unwrap();
    let process = ProcessBuilder::default()
        .args(vec!["sh".into(), "-c".into(), "read x".into()])
        .cwd("/")
        .build()
        .unwrap();
    let mut opts = ExecOptions::default();
    opts.stdin = Stdio::Piped;
    let p = ctr.exec(&process, opts).await.unwrap();
    let pid = p.pid();
    let stdin = p.take_stdin();
    drop(p);
    // The process exits now, with no handle left.
    drop(stdin);
    // It exits now; its supervisor reaps it: the pid disappears (a zombie
    // would stay listed in /proc).
    let mut reaped = false;
    for _ in 0..400 {
        if !exists(pid) {
            reaped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(reaped, "exec'd pid {pid} left a zombie");
    ctr.force_delete().await.unwrap();
}

/// `events()` and `stats()` polled after their end keep answering `None`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_answer_none_after_their_end() {
    let rt = runtime().await;
    let ctr = rt
        .create_with(&id("fused"), bundle(spec("exit 3")), Default::default())
        .await
        .unwrap();
    let mut events = ctr.events();
    let mut stats = ctr.stats(Duration::from_millis(1));
    ctr.start().await.unwrap();
    let mut seen = Vec::new();
    while let Some(e) = events.next().await {
        seen.push(e.unwrap());
    }
    assert_eq!(
        seen.last(),
        Some(&berth::Event::Exited(ExitStatus::Exited(3)))
    );
    for _ in 0..3 {
        assert!(events.next().await.is_none());
    }
    while stats.next().await.is_some() {}
    for _ in 0..3 {
        assert!(stats.next().await.is_none());
    }
    ctr.delete().await.unwrap();
}

/// A `cgroupsPath` naming a cgroup that exists, with a process of its own:
/// the container runs in it, and after the container's delete (forced,
/// while it runs) that process is alive and the cgroup exists, as runc
/// leaves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preexisting_cgroup_and_its_process_survive_delete() {
    let rt = runtime().await;
    let path = format!("{}-pre/shared", rt.config().cgroup_parent);
    let cg = Cgroup::create(&path).unwrap();
    let mut bystander = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let bystander_pid = bystander.id() as i32;
    cg.add_process(bystander_pid).unwrap();

    let mut s = spec("sleep 100");
    let mut linux = s.linux().clone().unwrap();
    linux.set_cgroups_path(Some(format!("/{path}").into()));
    s.set_linux(Some(linux));
    let ctr = rt
        .create_with(&id("pre"), bundle(s), Default::default())
        .await
        .unwrap();
    let pid = ctr.pid();
    ctr.start().await.unwrap();
    let pids = cg.pids().unwrap();
    assert!(
        pids.contains(&pid) && pids.contains(&bystander_pid),
        "{pids:?}"
    );
    ctr.force_delete().await.unwrap();

    assert!(dead(pid), "the container's process survived its delete");
    assert!(
        !dead(bystander_pid),
        "delete killed a process not the container's"
    );
    assert!(cg.exists(), "delete removed a cgroup berth did not make");
    assert_eq!(cg.pids().unwrap(), vec![bystander_pid]);

    bystander.kill().unwrap();
    bystander.wait().unwrap();
    Cgroup::open(&format!("{}-pre", rt.config().cgroup_parent))
        .unwrap()
        .delete()
        .await
        .unwrap();
}

/// A container whose process runs as another user (uid 1000) changes its
/// credentials while it may still share the embedder's memory: the kernel
/// then marks that memory non-dumpable (commit_creds), which would make the
/// embedder's /proc files root's and turn off its core dumps. The embedder
/// stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_of_another_user_leaves_the_embedder_dumpable() {
    let dumpable = || nix::sys::prctl::get_dumpable().unwrap();
    assert!(dumpable(), "the test process starts dumpable");
    let rt = runtime().await;
    let mut spec = spec("id -u");
    let mut process = spec.process().clone().unwrap();
    let mut user = process.user().clone();
    user.set_uid(1000);
    user.set_gid(1000);
    process.set_user(user);
    spec.set_process(Some(process));
    let ctr = create_piped(&rt, "otheruser", spec).await.unwrap();
    assert!(dumpable(), "create made the embedder non-dumpable");
    ctr.start().await.unwrap();
    let out = finish(ctr).await.unwrap();
    assert_eq!(out.stdout.trim(), "1000");
    assert!(
        dumpable(),
        "the container's run made the embedder non-dumpable"
    );
}
