//! Prints where the time of one container lifecycle goes: create, start,
//! wait and delete as medians over many runs, then the SDK's own phase
//! spans (`create.clone`, `start.release`, …) as milliseconds per
//! lifecycle with each span's median and 90th percentile, so that waiting
//! (a lock, a blocking-pool hop, the child's set-up) shows apart from work,
//! and the tail shows where it is.
//!
//! `--fds N` holds N more open descriptors first, as a server embedding
//! berth would (see `berth-spawner` in docs/ARCHITECTURE.md).
//! `--on-caller` drives the lifecycles as berth's CLI does: on a
//! current-thread runtime, with berth's blocking work on that thread
//! ([`berth::blocking::on_caller`]) rather than on tokio's blocking pool,
//! so the difference is what the hand-offs between threads cost.
//!
//! `cargo run --release -p berth-benches --example phases [-- --runs N] [--fds N] [--on-caller]`

use std::time::Instant;

use berth::{CreateOptions, Stdio};
use berth_benches::phase_spans::PhaseTimes;
use berth_benches::{bundle, cleanup, open_descriptors, runtime, true_spec};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let on_caller = args.iter().any(|a| a == "--on-caller");
    args.retain(|a| a != "--on-caller");
    let (mut n, mut fds) = (200, 0);
    for pair in args.chunks(2) {
        match pair {
            [flag, v] if flag == "--runs" => n = v.parse().expect("--runs N"),
            [flag, v] if flag == "--fds" => fds = v.parse().expect("--fds N"),
            _ => {
                eprintln!("usage: phases [--runs N] [--fds N] [--on-caller]");
                std::process::exit(2);
            }
        }
    }
    let mut builder = match on_caller {
        true => tokio::runtime::Builder::new_current_thread(),
        false => tokio::runtime::Builder::new_multi_thread(),
    };
    let tokio = builder.enable_all().build().expect("tokio runtime");
    match on_caller {
        true => tokio.block_on(berth::blocking::on_caller(lifecycles(n, fds))),
        false => tokio.block_on(lifecycles(n, fds)),
    }
}

/// Runs `n` lifecycles and prints where their time went.
async fn lifecycles(n: usize, fds: usize) {
    let held = open_descriptors(fds);
    let spans = PhaseTimes::install();
    let rt = runtime().await;
    let spec = true_spec();
    let mut phases: [Vec<f64>; 4] = Default::default();
    for i in 0..n {
        let mut opts = CreateOptions::default();
        opts.stdin = Stdio::Null;
        opts.stdout = Stdio::Null;
        opts.stderr = Stdio::Null;
        let t0 = Instant::now();
        let ctr = rt
            .create_with(&format!("p{i}"), bundle(spec.clone()), opts)
            .await
            .unwrap();
        let t1 = Instant::now();
        ctr.start().await.unwrap();
        let t2 = Instant::now();
        ctr.wait().await.unwrap();
        let t3 = Instant::now();
        ctr.delete().await.unwrap();
        let t4 = Instant::now();
        for (k, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4)]
            .into_iter()
            .enumerate()
        {
            phases[k].push((b - a).as_secs_f64() * 1e3);
        }
    }
    // Before any printing: a closed stdout (`| head`) must not skip it.
    cleanup(&rt);
    drop(held);
    for (name, mut v) in ["create", "start", "wait", "delete"]
        .into_iter()
        .zip(phases)
    {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{name:7} median {:.3} ms  p90 {:.3} ms",
            v[v.len() / 2],
            v[v.len() * 9 / 10]
        );
    }
    println!("phase spans: ms per lifecycle, then one span's median and p90:");
    for s in spans.take(n as u64) {
        println!(
            "  {:22} {:.3} ms  median {:.3}  p90 {:.3}  ({} spans)",
            s.name, s.per_lifecycle_ms, s.p50_ms, s.p90_ms, s.count
        );
    }
}
