//! Cancellation property: random programs of create, start, exec, wait,
//! events, stats, kill and delete, where every future is dropped at a
//! random await point (a timeout of a few random microseconds, or none)
//! and, in some programs, the tokio runtime itself is shut down mid-way
//! with work in flight. Afterwards, from a fresh runtime: every container
//! that exited has its exit status readable from a fresh handle, and once
//! all are deleted nothing is left: no zombie, no descriptor, no cgroup,
//! no state entry. One test in its own binary, so that this process's
//! descriptors and children are only berth's.

mod common;

use std::time::Duration;

use berth::oci_spec::runtime::ProcessBuilder;
use berth::{Container, ExecOptions, Runtime, Signal, Status};
use berth_fixtures::leaks::Snapshot;
use common::*;
use futures::StreamExt;
use proptest::prelude::*;

/// What the cases did, printed at the end (a test that does nothing passes
/// too easily).
static CREATED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static EXITS_READ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static SHUTDOWNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[derive(Debug, Clone)]
enum Op {
    /// Create a container running script `n` (see [`script`]).
    Create(usize),
    Start(usize),
    Wait(usize),
    Events(usize),
    Stats(usize),
    Exec(usize),
    Kill(usize),
    Delete(usize),
    /// Drop the handle (the container lives on).
    Drop(usize),
}

fn script(n: usize) -> &'static str {
    [
        "exit 3",
        "sleep 0.02; exit 4",
        "sleep 100",
        "kill -9 $$; exit 5",
    ][n % 4]
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0..3usize;
    prop_oneof![
        3 => (0..4usize).prop_map(Op::Create),
        3 => i.clone().prop_map(Op::Start),
        2 => i.clone().prop_map(Op::Wait),
        1 => i.clone().prop_map(Op::Events),
        1 => i.clone().prop_map(Op::Stats),
        1 => i.clone().prop_map(Op::Exec),
        1 => i.clone().prop_map(Op::Kill),
        1 => i.clone().prop_map(Op::Delete),
        1 => i.prop_map(Op::Drop),
    ]
}

/// A step: an op and how long its future may run before it is dropped
/// (`None`: to completion).
fn step() -> impl Strategy<Value = (Op, Option<u64>)> {
    (
        op(),
        prop_oneof![1 => Just(None), 2 => (0..5000u64).prop_map(Some)],
    )
}

/// Drops `fut` after `budget` microseconds, or lets it run (up to half a
/// second: a wait for a container that waits for start never ends).
async fn bounded<F: std::future::Future>(budget: Option<u64>, fut: F) {
    let limit = budget.map_or(Duration::from_millis(500), Duration::from_micros);
    let _ = tokio::time::timeout(limit, fut).await;
}

struct World {
    rt: Runtime,
    ctrs: Vec<Option<Container>>,
    /// Every id ever created (or attempted).
    ids: Vec<String>,
}

impl World {
    async fn handle(&self, i: usize) -> Option<Container> {
        if let Some(Some(c)) = self.ctrs.get(i) {
            return Some(c.clone());
        }
        let id = self.ids.get(i)?;
        self.rt.get(id).await.ok()
    }

    async fn run(&mut self, op: Op, budget: Option<u64>) {
        match op {
            Op::Create(n) => {
                let id = id("cancel");
                self.ids.push(id.clone());
                let rt = self.rt.clone();
                let mut made = None;
                bounded(budget, async {
                    made = rt
                        .create_with(&id, bundle(spec(script(n))), quiet())
                        .await
                        .ok();
                })
                .await;
                if made.is_some() {
                    CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                self.ctrs.push(made);
            }
            Op::Start(i) => {
                if let Some(c) = self.handle(i).await {
                    bounded(budget, c.start()).await;
                }
            }
            Op::Wait(i) => {
                if let Some(c) = self.handle(i).await {
                    bounded(budget, c.wait()).await;
                }
            }
            Op::Events(i) => {
                if let Some(c) = self.handle(i).await {
                    let mut events = c.events();
                    bounded(budget, async { while events.next().await.is_some() {} }).await;
                }
            }
            Op::Stats(i) => {
                if let Some(c) = self.handle(i).await {
                    let mut stats = c.stats(Duration::from_millis(1));
                    bounded(budget, async {
                        for _ in 0..5 {
                            if stats.next().await.is_none() {
                                break;
                            }
                        }
                    })
                    .await;
                }
            }
            Op::Exec(i) => {
                if let Some(c) = self.handle(i).await {
                    let process = ProcessBuilder::default()
                        .args(vec!["sleep".into(), "0.01".into()])
                        .cwd("/")
                        .build()
                        .unwrap();
                    bounded(budget, async {
                        if let Ok(p) = c.exec(&process, ExecOptions::default()).await {
                            // Dropped at once, or waited for.
                            if budget.is_none() {
                                let _ = p.wait().await;
                            }
                        }
                    })
                    .await;
                }
            }
            Op::Kill(i) => {
                if let Some(c) = self.handle(i).await {
                    let _ = c.kill(Signal::KILL);
                }
            }
            Op::Delete(i) => {
                if let Some(c) = self.handle(i).await {
                    bounded(budget, c.force_delete()).await;
                }
            }
            Op::Drop(i) => {
                if let Some(slot) = self.ctrs.get_mut(i) {
                    slot.take();
                }
            }
        }
    }
}

/// No stdio shared with the test (a container left running must not hold
/// the test harness's pipes).
fn quiet() -> berth::CreateOptions {
    {
        let mut create_options = berth::CreateOptions::default();
        create_options.stdin = berth::Stdio::Null;
        create_options.stdout = berth::Stdio::Null;
        create_options.stderr = berth::Stdio::Null;
        create_options
    }
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `program`, shutting its runtime down after step `shutdown_at`
/// (with a wait and an events stream left running as tasks), then checks
/// and deletes everything from a fresh runtime.
fn check(config: &berth::Config, program: Vec<(Op, Option<u64>)>, shutdown_at: Option<usize>) {
    let ids = {
        let rt = tokio_rt();
        let ids = rt.block_on(async {
            let mut w = World {
                rt: Runtime::new(config.clone()).await.unwrap(),
                ctrs: Vec::new(),
                ids: Vec::new(),
            };
            for (n, (op, budget)) in program.into_iter().enumerate() {
                w.run(op, budget).await;
                if shutdown_at == Some(n) {
                    // Work in flight when the runtime goes.
                    for c in w.ctrs.iter().flatten() {
                        let (a, b) = (c.clone(), c.clone());
                        tokio::spawn(async move { a.wait().await });
                        tokio::spawn(async move { b.events().count().await });
                    }
                    SHUTDOWNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    break;
                }
            }
            w.ids
        });
        drop(rt);
        ids
    };

    // A fresh runtime: every exit is readable, then everything goes.
    tokio_rt().block_on(async {
        let rt = Runtime::new(config.clone()).await.unwrap();
        for id in &ids {
            let Ok(c) = rt.get(id).await else { continue };
            match c.status().await.unwrap() {
                Status::Stopped => {
                    let s = c.wait().await;
                    assert!(s.is_ok(), "{id}: exit status lost: {s:?}");
                    EXITS_READ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Status::Running | Status::Created | Status::Paused => {
                    // Through the cgroup: thaws a container a dropped
                    // pause left frozen.
                    c.kill_all(Signal::KILL).await.unwrap();
                    let s = c.wait().await;
                    assert!(s.is_ok(), "{id}: exit status lost: {s:?}");
                    EXITS_READ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Status::Creating => {}
            }
            c.force_delete().await.unwrap();
        }
        let left = rt.list().await.unwrap();
        assert!(left.is_empty(), "{left:?}");
    });
}

#[test]
fn dropped_futures_and_runtimes_lose_nothing() {
    berth_fixtures::require_root();
    let config = config();
    // Warm up what is made once per process (the rootfs cache, the host
    // probe) before the first snapshot.
    check(
        &config,
        vec![
            (Op::Create(0), None),
            (Op::Start(0), None),
            (Op::Wait(0), None),
        ],
        None,
    );
    let before = Snapshot::take(&config.root, &config.cgroup_parent).unwrap();
    let cases = std::env::var("BERTH_CANCEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = (
        proptest::collection::vec(step(), 4..14),
        proptest::option::weighted(0.3, 0..10usize),
    );
    runner
        .run(&strategy, |(program, shutdown_at)| {
            check(&config, program, shutdown_at);
            // A child whose launching future was dropped is reaped by a
            // thread of its own as soon as it exits (at once: it lost its
            // parent's end of the sync socket): let those threads finish.
            let mut leaks = Vec::new();
            for _ in 0..100 {
                let now = Snapshot::take(&config.root, &config.cgroup_parent).unwrap();
                leaks = now.leaks_since(&before);
                if leaks.is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            prop_assert!(leaks.is_empty(), "leaked:\n{}", leaks.join("\n"));
            Ok(())
        })
        .unwrap();
    let _ = std::fs::remove_dir_all(config.root.join("network"));
    let _ = std::fs::remove_dir(&config.root);
    let n = |a: &std::sync::atomic::AtomicUsize| a.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{cases} programs: {} containers created, {} exit statuses read from fresh handles, \
         {} runtimes shut down mid-way",
        n(&CREATED),
        n(&EXITS_READ),
        n(&SHUTDOWNS)
    );
}
