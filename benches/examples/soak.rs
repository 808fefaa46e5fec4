//! An embedding soak: one long-lived multi-threaded process runs many
//! containers, `--in-flight` at a time, and drops a random share of its
//! futures and streams early (a wait, an events or stats stream, even the
//! handle itself before the container exits). At the end it counts what an
//! embedder would see leak: zombie children, descriptors, resident memory
//! growth, and whether the process stayed dumpable, and prints one line:
//!
//! `soak: N containers, Z zombies, F fds leaked, RSS A -> B KiB, dumpable yes`
//!
//! It exits non-zero if any container failed, if a zombie or descriptor
//! leaked, or if the process stopped being dumpable.
//!
//! `cargo run --release -p berth-benches --example soak -- --containers 10000 --in-flight 50`

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::{ExitStatus, Runtime};
use berth_benches::{runtime, spec};
use berth_fixtures::leaks::Snapshot;
use futures::StreamExt;

struct Args {
    containers: usize,
    in_flight: usize,
}

fn args() -> Args {
    let mut a = Args {
        containers: 1000,
        in_flight: 50,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse().ok());
        match (flag.as_str(), value) {
            ("--containers", Some(v)) => a.containers = v,
            ("--in-flight", Some(v)) => a.in_flight = v,
            _ => {
                eprintln!("usage: soak [--containers N] [--in-flight M]");
                std::process::exit(2);
            }
        }
    }
    a
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn dumpable() -> bool {
    nix::sys::prctl::get_dumpable().unwrap_or(false)
}

/// A small xorshift generator, seeded per container: no dependency, and the
/// run is reproducible from `SOAK_SEED`.
fn rand(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// One container's life, with a random share of its futures and streams
/// dropped early. Returns whether it went as it should.
async fn one(rt: &Runtime, n: usize, seed: u64, failed: &AtomicUsize) {
    let mut seed = seed ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let code = (n % 100) as i32;
    let spec = spec(&["sh", "-c", &format!("exit {code}")]);
    let id = format!("soak-{}-{n}", std::process::id());
    let mut opts = berth::CreateOptions::default();
    opts.stdin = berth::Stdio::Null;
    opts.stdout = berth::Stdio::Null;
    opts.stderr = berth::Stdio::Null;
    let bundle = berth::Bundle::new(std::env::temp_dir(), spec).expect("bundle");
    let ctr = match rt.create_with(&id, bundle, opts).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("create {id}: {e}");
            failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let tiny = |seed: &mut u64| Duration::from_micros(rand(seed) % 2000);
    // Streams opened, polled a little or not at all, and dropped.
    if rand(&mut seed) % 2 == 0 {
        let mut events = ctr.events();
        let _ = tokio::time::timeout(tiny(&mut seed), events.next()).await;
    }
    if rand(&mut seed) % 3 == 0 {
        let mut stats = ctr.stats(Duration::from_millis(1));
        let _ = tokio::time::timeout(tiny(&mut seed), stats.next()).await;
    }
    if let Err(e) = ctr.start().await {
        eprintln!("start {id}: {e}");
        failed.fetch_add(1, Ordering::Relaxed);
        let _ = ctr.force_delete().await;
        return;
    }
    // A wait dropped early, maybe with the container's exit in between.
    let _ = tokio::time::timeout(tiny(&mut seed), ctr.wait()).await;
    let ctr = if rand(&mut seed) % 4 == 0 {
        // The handle goes before the exit is read: a fresh one must do.
        drop(ctr);
        match rt.get(&id).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("get {id}: {e}");
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    } else {
        ctr
    };
    match ctr.wait().await {
        Ok(ExitStatus::Exited(c)) if c == code => {}
        other => {
            eprintln!("{id}: expected exit {code}, got {other:?}");
            failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    // Sometimes a delete dropped early: it finishes on its own.
    if rand(&mut seed) % 5 == 0 {
        let _ = tokio::time::timeout(tiny(&mut seed), ctr.delete()).await;
        if rt.get(&id).await.is_ok() {
            let _ = ctr.force_delete().await;
        }
    } else if let Err(e) = ctr.delete().await {
        eprintln!("delete {id}: {e}");
        failed.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let rt = runtime().await;
    let (root, cgroup_parent) = (rt.config().root.clone(), rt.config().cgroup_parent.clone());
    // Warm up what is made once (the rootfs cache, tokio's pools) before
    // the first count.
    let failed = Arc::new(AtomicUsize::new(0));
    one(&rt, usize::MAX / 2, seed, &failed).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = Snapshot::take(&root, &cgroup_parent).expect("snapshot");
    let rss_before = rss_kib();

    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..a.in_flight.max(1) {
        let (rt, next, done, failed) = (rt.clone(), next.clone(), done.clone(), failed.clone());
        let total = a.containers;
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return;
                }
                one(&rt, n, seed, &failed).await;
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d % 1000 == 0 {
                    eprintln!("{d} containers, {:.0} s", t0.elapsed().as_secs_f64());
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}

    // Children whose future was dropped at the wrong instant are reaped by
    // threads of their own: give them a moment.
    let mut leaks = Vec::new();
    for _ in 0..50 {
        let now = Snapshot::take(&root, &cgroup_parent).expect("snapshot");
        leaks = now.leaks_since(&before);
        if leaks.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let zombies = leaks.iter().filter(|l| l.starts_with("zombie")).count();
    let fds = leaks.iter().filter(|l| l.starts_with("fd ")).count();
    let other: Vec<_> = leaks
        .iter()
        .filter(|l| !l.starts_with("zombie") && !l.starts_with("fd "))
        .collect();
    let rss_after = rss_kib();
    let dumpable = dumpable();
    for l in &leaks {
        eprintln!("leaked: {l}");
    }
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("{failed} containers did not go as they should");
    }
    eprintln!(
        "{} containers in {:.1} s",
        a.containers,
        t0.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(root.join("network"));
    let _ = std::fs::remove_dir(&root);
    println!(
        "soak: {} containers, {zombies} zombies, {fds} fds leaked, RSS {rss_before} -> {rss_after} KiB, dumpable {}",
        a.containers,
        if dumpable { "yes" } else { "no" }
    );
    if zombies > 0 || fds > 0 || !other.is_empty() || !dumpable || failed > 0 {
        std::process::exit(1);
    }
}
