//! The cost of watching many containers: N (default 100) running
//! containers sampled every 100 ms for SECONDS (default 10), and the CPU
//! time this process spent meanwhile, as a share of one core. Measured
//! three ways, one after the other: a `Container::stats` stream per
//! container, then one `StatsSampler` for all of them (one shared ticker),
//! then the same with `StatsDetail::Usage` (the counters without limits,
//! throttling, peaks, block I/O and huge pages).
//!
//! `cargo run --release -p berth-benches --example stats_load [N] [SECONDS]`

use std::time::{Duration, Instant};

use berth::{Container, StatsDetail, StatsSampler};
use berth_benches::{cleanup, create, runtime, spec};
use futures::StreamExt;

fn cpu_time() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let tv =
        |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(usage.user_time()) + tv(usage.system_time())
}

const INTERVAL: Duration = Duration::from_millis(100);

/// A stream per container; the number of samples taken.
async fn streams(ctrs: &[Container], until: Instant) -> u64 {
    let mut tasks = tokio::task::JoinSet::new();
    for c in ctrs {
        let mut stream = c.stats(INTERVAL);
        tasks.spawn(async move {
            let mut samples = 0u64;
            while let Some(s) = stream.next().await {
                s.expect("stats sample");
                samples += 1;
                if Instant::now() >= until {
                    break;
                }
            }
            samples
        });
    }
    let mut samples = 0;
    while let Some(r) = tasks.join_next().await {
        samples += r.expect("stats task");
    }
    samples
}

/// One sampler for all; the number of samples taken.
async fn sampler(ctrs: &[Container], detail: StatsDetail, until: Instant) -> u64 {
    let mut sampler = StatsSampler::with_detail(INTERVAL, detail);
    for c in ctrs {
        sampler.add(c).expect("add to the sampler");
    }
    let mut samples = 0u64;
    while let Some(tick) = sampler.next().await {
        for (_, s) in &tick.samples {
            s.as_ref().expect("stats sample");
        }
        samples += tick.samples.len() as u64;
        if Instant::now() >= until {
            break;
        }
    }
    samples
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(100, |a| a.parse().expect("N"));
    let secs: u64 = args.next().map_or(10, |a| a.parse().expect("SECONDS"));
    let rt = runtime().await;
    let spec = spec(&["sleep", "1000"]);
    let mut ctrs = Vec::new();
    for _ in 0..n {
        let c = create(&rt, &spec).await;
        c.start().await.expect("start");
        ctrs.push(c);
    }
    let ways = [
        ("a stream each", None),
        ("one StatsSampler", Some(StatsDetail::Full)),
        ("one StatsSampler, usage only", Some(StatsDetail::Usage)),
    ];
    // Printed once the containers are gone: a closed stdout (`| head`)
    // must not leave them running.
    let mut lines = Vec::new();
    for (name, detail) in ways {
        let t0 = Instant::now();
        let cpu0 = cpu_time();
        let until = t0 + Duration::from_secs(secs);
        let samples = match detail {
            Some(d) => sampler(&ctrs, d, until).await,
            None => streams(&ctrs, until).await,
        };
        let wall = t0.elapsed();
        let cpu = cpu_time() - cpu0;
        lines.push(format!(
            "{}: {n} containers, a sample each every {} ms for {:.1} s: {samples} samples, \
             {:.1} ms CPU = {:.2}% of one core ({:.1} µs per sample)",
            name,
            INTERVAL.as_millis(),
            wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e3,
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / samples as f64
        ));
    }
    for c in ctrs {
        c.force_delete().await.expect("delete");
    }
    cleanup(&rt);
    for line in lines {
        println!("{line}");
    }
}
