//! Container lifecycle benchmarks through the SDK, in process:
//!
//! - `lifecycle/*`: `create + start + wait + delete` of `/bin/true` with
//!   runc's default spec (all namespaces but user, a cgroup), without a
//!   network namespace, with a user namespace, and from a process holding
//!   2 GiB of touched memory (start cost must not grow with the embedding
//!   process), and from a process holding 10,000 open descriptors (a
//!   clone would copy them all; berth's spawner thread, with a table of
//!   its own, clones there);
//! - `phase/*`: create, start and delete alone (the other phases run
//!   untimed around them);
//! - `plan/compile_default_spec`: spec → plan compilation;
//! - `stats/one_sample`: one stats sample of a running container;
//! - `concurrent/*`: lifecycles with 10, 50 and 100 in flight from one
//!   tokio runtime, as containers per second.
//!
//! Measurement times are short so that the whole suite runs in a few
//! minutes: `cargo bench -p berth-benches`.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use berth::oci_spec::runtime::Spec;
use berth::Runtime;
use berth_benches::{
    cleanup, concurrent, create, lifecycle, lifecycle_phases, open_descriptors, runtime, spec,
    touched_memory, true_spec, with_userns, without_netns, Phases,
};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use tokio::runtime::Runtime as Tokio;

fn tokio() -> Tokio {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn bench_lifecycle(c: &mut Criterion) {
    let tokio = tokio();
    let rt = tokio.block_on(runtime());
    let mut g = c.benchmark_group("lifecycle");
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let specs = [
        ("true", true_spec()),
        ("true_no_netns", without_netns(true_spec())),
        ("true_userns", with_userns(true_spec())),
    ];
    for (name, spec) in &specs {
        g.bench_function(*name, |b| b.to_async(&tokio).iter(|| lifecycle(&rt, spec)));
    }
    let ballast = touched_memory(2 << 30);
    let spec = true_spec();
    g.bench_function("true_with_2GiB_touched", |b| {
        b.to_async(&tokio).iter(|| lifecycle(&rt, &spec))
    });
    black_box(&ballast);
    drop(ballast);
    let held = open_descriptors(10_000);
    g.bench_function("true_with_10k_fds_open", |b| {
        b.to_async(&tokio).iter(|| lifecycle(&rt, &spec))
    });
    drop(held);
    g.finish();
    cleanup(&rt);
}

/// Which phase a bench times.
type Pick = fn(&Phases) -> Duration;

/// Times one phase of whole lifecycles.
fn phase_bench<'a>(
    tokio: &'a Tokio,
    rt: &'a Runtime,
    spec: &Spec,
    pick: Pick,
) -> impl FnMut(u64) -> Duration + 'a {
    let spec = spec.clone();
    move |iters| {
        tokio.block_on(async {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += pick(&lifecycle_phases(rt, &spec).await);
            }
            total
        })
    }
}

fn bench_phases(c: &mut Criterion) {
    let tokio = tokio();
    let rt = tokio.block_on(runtime());
    let spec = true_spec();
    let mut g = c.benchmark_group("phase");
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let phases: [(&str, Pick); 3] = [
        ("create", |p| p.create),
        ("start", |p| p.start),
        ("delete", |p| p.delete),
    ];
    for (name, pick) in phases {
        let mut run = phase_bench(&tokio, &rt, &spec, pick);
        g.bench_function(name, |b| b.iter_custom(&mut run));
    }
    g.finish();
    cleanup(&rt);
}

fn bench_plan(c: &mut Criterion) {
    let spec = true_spec();
    let host = berth::host::Host::get();
    c.bench_function("plan/compile_default_spec", |b| {
        b.iter(|| {
            berth::plan::compile(black_box(&spec), Path::new("/"), host, &Default::default())
                .unwrap()
        })
    });
}

fn bench_stats(c: &mut Criterion) {
    let tokio = tokio();
    let rt = tokio.block_on(runtime());
    let ctr = tokio.block_on(async {
        let ctr = create(&rt, &spec(&["sleep", "1000"])).await;
        ctr.start().await.expect("start");
        ctr
    });
    c.bench_function("stats/one_sample", |b| {
        b.to_async(&tokio)
            .iter(|| async { ctr.stats_now().await.expect("stats") })
    });
    tokio.block_on(ctr.force_delete()).expect("delete");
    cleanup(&rt);
}

fn bench_concurrent(c: &mut Criterion) {
    let tokio = tokio();
    let rt = tokio.block_on(runtime());
    let spec = true_spec();
    let mut g = c.benchmark_group("concurrent");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for in_flight in [10usize, 50, 100] {
        // Each iteration runs 4× the window, so most of it is at full
        // concurrency.
        let total = in_flight * 4;
        g.throughput(Throughput::Elements(total as u64));
        g.bench_function(format!("{in_flight}_in_flight"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| tokio.block_on(concurrent(&rt, &spec, in_flight, total)))
                    .sum()
            })
        });
    }
    g.finish();
    cleanup(&rt);
}

criterion_group!(
    benches,
    bench_lifecycle,
    bench_phases,
    bench_plan,
    bench_stats,
    bench_concurrent
);
criterion_main!(benches);
