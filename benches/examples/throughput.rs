//! Containers per second from one multi-threaded tokio runtime: `--count`
//! lifecycles (create, start, wait, delete of `/bin/true` with runc's
//! default spec: every namespace but user, a cgroup), `--in-flight` at a
//! time, a new one started as soon as one ends. After a warm-up of one
//! window it prints the filesystem of its state root (the figures depend
//! on it: see `filesystem_of`) and, as its last line:
//!
//! `throughput: N containers/s at M in flight`
//!
//! `--max-blocking T` caps tokio's blocking pool (an embedder's choice; by
//! default it grows to about as many threads as containers in flight).
//!
//! `cargo run --release -p berth-benches --example throughput -- --in-flight 50 --count 2000`

use berth_benches::{cleanup, concurrent, filesystem_of, runtime, true_spec};

struct Args {
    count: usize,
    in_flight: usize,
    max_blocking: Option<usize>,
}

fn args() -> Args {
    let mut a = Args {
        count: 2000,
        in_flight: 50,
        max_blocking: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse().ok());
        match (flag.as_str(), value) {
            ("--count", Some(v)) if v > 0 => a.count = v,
            ("--in-flight", Some(v)) if v > 0 => a.in_flight = v,
            ("--max-blocking", Some(v)) if v > 0 => a.max_blocking = Some(v),
            _ => {
                eprintln!("usage: throughput [--count N] [--in-flight M] [--max-blocking T]");
                std::process::exit(2);
            }
        }
    }
    a
}

fn main() {
    let a = args();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = a.max_blocking {
        builder.max_blocking_threads(t);
    }
    let tokio = builder.enable_all().build().expect("tokio runtime");
    tokio.block_on(async {
        let rt = runtime().await;
        let spec = true_spec();
        // Warm-up: pools, page cache, the first cgroup directories.
        concurrent(&rt, &spec, a.in_flight, a.in_flight).await;
        let took = concurrent(&rt, &spec, a.in_flight, a.count).await;
        let root = rt.config().root.clone();
        println!("state root: {} ({})", root.display(), filesystem_of(&root));
        cleanup(&rt);
        println!(
            "throughput: {:.0} containers/s at {} in flight",
            a.count as f64 / took.as_secs_f64(),
            a.in_flight
        );
    });
}
