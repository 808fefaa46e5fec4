//! Compiling a seccomp profile: berth's compiler and libseccomp (the way
//! runc drives it), side by side in one run, on the default profile
//! (Docker's allowlist, x86_64 + x86 + x32 on x86_64 hosts) and on the
//! profile of a container with every capability.
//!
//! `cargo bench -p berth-benches --bench seccomp`. libseccomp is a
//! dependency of this benchmark only (through berth-conformance), never
//! of berth.

use std::hint::black_box;
use std::time::Duration;

use berth::oci_spec::runtime::{Capability, LinuxSeccomp};
use berth::security::{seccomp, seccomp_default};
use berth_conformance::seccomp_oracle::runc_compile;
use criterion::{criterion_group, criterion_main, Criterion};

fn profiles() -> [(&'static str, LinuxSeccomp); 2] {
    let default_caps = [
        Capability::Chown,
        Capability::DacOverride,
        Capability::Fsetid,
        Capability::Fowner,
        Capability::Mknod,
        Capability::NetRaw,
        Capability::Setgid,
        Capability::Setuid,
        Capability::Setfcap,
        Capability::Setpcap,
        Capability::NetBindService,
        Capability::SysChroot,
        Capability::Kill,
        Capability::AuditWrite,
    ];
    let all = [
        Capability::SysAdmin,
        Capability::SysPtrace,
        Capability::SysModule,
        Capability::SysBoot,
        Capability::SysTime,
        Capability::SysNice,
        Capability::SysPacct,
        Capability::SysRawio,
        Capability::DacReadSearch,
        Capability::Syslog,
        Capability::Bpf,
        Capability::Perfmon,
    ];
    [
        ("default", seccomp_default::profile(&default_caps)),
        ("all_caps", seccomp_default::profile(&all)),
    ]
}

fn bench_compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("seccomp_compile");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_millis(500));
    for (name, p) in profiles() {
        let ours = seccomp::compile(&p).expect("berth compiles the profile");
        let theirs = runc_compile(&p).expect("libseccomp compiles the profile");
        println!(
            "{name}: berth {} instructions, libseccomp {}",
            ours.program.len() / 8,
            theirs.program.len()
        );
        g.bench_function(format!("berth/{name}"), |b| {
            b.iter(|| seccomp::compile(black_box(&p)).unwrap())
        });
        g.bench_function(format!("libseccomp/{name}"), |b| {
            b.iter(|| runc_compile(black_box(&p)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench_compile);
criterion_main!(benches);
