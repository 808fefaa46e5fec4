//! Container lifecycle benchmarks: `create + start + wait + delete` of
//! `/bin/true`, also from a process holding 1 GiB of touched memory (start
//! cost must not grow with the embedding process), and the spec → plan
//! compilation alone.

use std::hint::black_box;
use std::path::Path;

use berth_benches::{cleanup, lifecycle, runtime, touched_memory, true_spec};
use criterion::{criterion_group, criterion_main, Criterion};

fn bench_lifecycle(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rt = tokio.block_on(runtime());
    let spec = true_spec();
    let mut g = c.benchmark_group("lifecycle");
    g.sample_size(50);
    g.bench_function("true", |b| {
        b.to_async(&tokio).iter(|| lifecycle(&rt, &spec))
    });
    let ballast = touched_memory(1 << 30);
    g.bench_function("true_with_1GiB_touched", |b| {
        b.to_async(&tokio).iter(|| lifecycle(&rt, &spec))
    });
    black_box(&ballast);
    drop(ballast);
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

criterion_group!(benches, bench_lifecycle, bench_plan);
criterion_main!(benches);
