//! `stop` (SDK and CLI) and `events` seen from processes that did not
//! create the container.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth::oci_spec::runtime::{
    LinuxMemoryBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Spec,
};
use berth::{Config, Container, Event, ExitStatus, LogConfig, LogOptions, Runtime, Status};
use futures::StreamExt;
use support::{bundle, captured, spec, Env, BERTH};

const HELPER_ENV: &str = "BERTH_EVENTS_HELPER";

/// Returns once the container printed `want` (its captured output,
/// followed).
async fn printed(ctr: &Container, want: &str) {
    let mut lines = ctr.logs(LogOptions::default().follow(true)).await.unwrap();
    while let Some(l) = lines.next().await {
        if l.unwrap().line == want.as_bytes() {
            return;
        }
    }
    panic!("the container ended before printing {want:?}");
}

async fn started(env: &Env, id: &str, spec: Spec) -> Container {
    let rt = env.runtime().await;
    let ctr = rt
        .create_with(id, bundle(spec), captured(LogConfig::default()))
        .await
        .unwrap();
    ctr.start().await.unwrap();
    printed(&ctr, "ready").await;
    ctr
}

/// `berth stop` (another process) of a container that traps SIGTERM and
/// exits 0: status 0, well before the grace period (which would have
/// ended in SIGKILL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_lets_a_container_that_traps_sigterm_exit() {
    let env = Env::new("stop-trap");
    let id = format!("trap-{}", std::process::id());
    let script = "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.1; done";
    let ctr = started(&env, &id, spec(script)).await;
    let t = Instant::now();
    let out = env.berth(&["stop", "-t", "600", &id]);
    let elapsed = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ctr.wait().await.unwrap(), ExitStatus::Exited(0));
    assert_eq!(ctr.status().await.unwrap(), Status::Stopped);
    let logs = env.berth(&["logs", &id]);
    assert_eq!(logs.stdout, b"ready\nbye\n");
    eprintln!("berth stop of a container trapping SIGTERM: {elapsed:?}");
    // Stopping a stopped container gives its status again.
    assert_eq!(
        ctr.stop(Duration::from_secs(1)).await.unwrap(),
        ExitStatus::Exited(0)
    );
    ctr.delete().await.unwrap();
    env.finish().await;
}

/// A container that ignores SIGTERM is SIGKILLed once the grace period is
/// over (and not before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_a_container_that_ignores_sigterm_after_the_grace_period() {
    let env = Env::new("stop-ignore");
    let id = format!("ignore-{}", std::process::id());
    let ctr = started(&env, &id, spec("trap '' TERM; echo ready; sleep 1000")).await;
    // Another handle, as another process would get.
    let other = env.runtime().await.get(&id).await.unwrap();
    let grace = Duration::from_secs(2);
    let t = Instant::now();
    let status = other.stop(grace).await.unwrap();
    let elapsed = t.elapsed();
    assert_eq!(status, ExitStatus::Signaled(libc_sigkill()));
    assert!(
        elapsed >= grace,
        "SIGKILL came before the grace period: {elapsed:?}"
    );
    assert_eq!(ctr.wait().await.unwrap(), status);
    eprintln!("stop of a container ignoring SIGTERM, grace {grace:?}: {elapsed:?}");
    ctr.delete().await.unwrap();
    env.finish().await;
}

fn libc_sigkill() -> i32 {
    berth::Signal::KILL.number()
}

/// A paused container is thawed, then gets the stop signal, which it
/// handles; the image's stop signal annotation is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_thaws_a_paused_container_and_sends_its_stop_signal() {
    let env = Env::new("stop-paused");
    let id = format!("paused-{}", std::process::id());
    let mut s = spec("trap 'exit 3' USR1; trap '' TERM; echo ready; while :; do sleep 0.1; done");
    let mut annotations = std::collections::HashMap::new();
    annotations.insert(
        berth::STOP_SIGNAL_ANNOTATION.to_string(),
        "SIGUSR1".to_string(),
    );
    s.set_annotations(Some(annotations));
    let ctr = started(&env, &id, s).await;
    ctr.pause().await.unwrap();
    assert_eq!(ctr.status().await.unwrap(), Status::Paused);
    let other = env.runtime().await.get(&id).await.unwrap();
    let status = other.stop(Duration::from_secs(600)).await.unwrap();
    assert_eq!(status, ExitStatus::Exited(3));
    ctr.delete().await.unwrap();
    env.finish().await;
}

/// Without a pid namespace of its own, a container's children outlive its
/// first process; stop kills them too: nothing is left in its cgroup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_leaves_nothing_in_the_cgroup() {
    let env = Env::new("stop-children");
    let id = format!("children-{}", std::process::id());
    let mut s = spec(
        "sleep 1000 & sleep 1000 & trap 'exit 0' TERM; echo ready; while :; do sleep 0.1; done",
    );
    let mut linux = s.linux().clone().unwrap();
    let namespaces: Vec<_> = linux
        .namespaces()
        .clone()
        .unwrap()
        .into_iter()
        .filter(|n| n.typ() != LinuxNamespaceType::Pid)
        .collect();
    linux.set_namespaces(Some(namespaces));
    s.set_linux(Some(linux));
    let ctr = started(&env, &id, s).await;
    let pids = ctr.pids().await.unwrap();
    assert!(pids.len() >= 3, "{pids:?}");
    let status = ctr.stop(Duration::from_secs(600)).await.unwrap();
    assert_eq!(status, ExitStatus::Exited(0));
    assert_eq!(ctr.pids().await.unwrap(), Vec::<i32>::new());
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .next();
        assert!(
            matches!(state, None | Some("Z")),
            "pid {pid} still runs: {stat}"
        );
    }
    ctr.delete().await.unwrap();
    env.finish().await;
}

fn oom_spec() -> Spec {
    let mem = LinuxMemoryBuilder::default()
        .limit(32 << 20)
        .swap(32 << 20)
        .build()
        .unwrap();
    // busybox tail keeps the last "line" of endless zeros in memory.
    let mut s = spec("sleep 0.2; exec tail /dev/zero");
    let mut linux = s.linux().clone().unwrap();
    linux.set_resources(Some(
        LinuxResourcesBuilder::default()
            .memory(mem)
            .build()
            .unwrap(),
    ));
    s.set_linux(Some(linux));
    s
}

/// Not a test of its own: the second process of
/// `events_reach_a_process_that_re_attached`, which prints the events of a
/// container it re-attached to.
#[tokio::test]
#[ignore = "helper process of another test"]
async fn helper_prints_events() {
    let Ok(arg) = std::env::var(HELPER_ENV) else {
        return;
    };
    let (root, id) = arg.split_once('|').unwrap();
    let rt = Runtime::new({
        let mut config = Config::default();
        config.root = root.into();
        config
    })
    .await
    .unwrap();
    let ctr = rt.get(id).await.unwrap();
    let mut events = ctr.events();
    println!("subscribed");
    while let Some(e) = events.next().await {
        println!("event {:?}", e.unwrap());
    }
    println!("done");
}

/// Starts the helper on container `id`; returns once it is subscribed, and
/// a task that collects what it prints.
fn helper(env: &Env, id: &str) -> tokio::task::JoinHandle<Vec<String>> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_prints_events",
            "--ignored",
            "--nocapture",
        ])
        .env(HELPER_ENV, format!("{}|{id}", env.root().display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap() == "subscribed"),
        "the helper did not subscribe"
    );
    tokio::task::spawn_blocking(move || {
        // Read to the end, so the helper never writes into a closed pipe.
        let all: Vec<String> = lines.map(|l| l.unwrap()).collect();
        assert!(all.iter().any(|l| l == "done"), "{all:?}");
        let got = all
            .into_iter()
            .filter(|l| l.starts_with("event "))
            .collect();
        child.wait().unwrap();
        got
    })
}

/// A second process that re-attached sees the container's OOM kill and
/// exit, and the start, pause and resume this process does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_process_that_re_attached() {
    let env = Env::new("events-far");
    let rt = env.runtime().await;
    let id = format!("oom-{}", std::process::id());
    let ctr = rt
        .create_with(&id, bundle(oom_spec()), captured(LogConfig::default()))
        .await
        .unwrap();
    let seen = helper(&env, &id);
    ctr.start().await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(60), seen)
        .await
        .expect("the helper's events did not end with the container")
        .unwrap();
    assert_eq!(
        seen,
        [
            format!("event {:?}", Event::Created),
            format!("event {:?}", Event::Started),
            format!("event {:?}", Event::Oom),
            format!("event {:?}", Event::Exited(ExitStatus::Signaled(9))),
        ]
    );
    ctr.delete().await.unwrap();

    let id = format!("pause-{}", std::process::id());
    let ctr = rt
        .create_with(
            &id,
            bundle(spec("sleep 1000")),
            captured(LogConfig::default()),
        )
        .await
        .unwrap();
    let seen = helper(&env, &id);
    ctr.start().await.unwrap();
    ctr.pause().await.unwrap();
    ctr.resume().await.unwrap();
    ctr.kill(berth::Signal::KILL).unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(60), seen)
        .await
        .expect("the helper's events did not end with the container")
        .unwrap();
    let want: Vec<String> = [
        Event::Created,
        Event::Started,
        Event::Paused,
        Event::Resumed,
        Event::Exited(ExitStatus::Signaled(9)),
    ]
    .iter()
    .map(|e| format!("event {e:?}"))
    .collect();
    assert_eq!(seen, want);
    ctr.delete().await.unwrap();
    env.finish().await;
}

/// Whether `pid` holds the OOM watch of an events stream: an eventfd on
/// cgroup v1, a second inotify (after the journal's) on v2.
fn watching(pid: u32) -> bool {
    let links: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|l| l.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    if berth::cgroup_layout() == berth::CgroupLayout::V2 {
        links
            .iter()
            .filter(|l| l.as_str() == "anon_inode:inotify")
            .count()
            >= 2
    } else {
        links.iter().any(|l| l == "anon_inode:[eventfd]")
    }
}

/// `berth events ID` prints runc's OOM event as JSON, then the exit, and
/// ends with the container; no stats without --stats or --interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_events_prints_the_oom_as_json() {
    let env = Env::new("events-cli");
    let rt = env.runtime().await;
    let id = format!("cli-oom-{}", std::process::id());
    let ctr = rt
        .create_with(&id, bundle(oom_spec()), captured(LogConfig::default()))
        .await
        .unwrap();
    let child = Command::new(BERTH)
        .arg("--root")
        .arg(env.root())
        .args(["events", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !watching(child.id()) {
        assert!(
            Instant::now() < deadline,
            "berth events never watched the cgroup"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ctr.start().await.unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("berth events did not end with the container")
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let oom = serde_json::json!({"type": "oom", "id": id});
    assert_eq!(
        events.iter().filter(|e| **e == oom).count(),
        1,
        "{events:?}"
    );
    assert!(events.iter().all(|e| e["type"] != "stats"), "{events:?}");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "exit");
    assert_eq!(last["data"]["status"], 137);
    ctr.delete().await.unwrap();
    env.finish().await;
}
