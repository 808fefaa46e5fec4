//! berth's seccomp compiler against libseccomp: random profiles compiled by
//! both (libseccomp the way runc uses it, behind runc's `-ENOSYS` stub),
//! both programs run by one classic-BPF interpreter on random
//! `seccomp_data`, the verdicts compared.
//!
//! No root needed. `PROPTEST_CASES` sets the number of profiles (2048 by
//! default), each tried on [`INPUTS`] inputs.

use berth::oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};
use berth::security::seccomp::{self, arch::ScArch, bpf};
use berth_conformance::seccomp_oracle::runc_compile;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::test_runner::TestRunner;
use std::sync::atomic::{AtomicUsize, Ordering};

static COMPARED: AtomicUsize = AtomicUsize::new(0);
static SKIPPED: AtomicUsize = AtomicUsize::new(0);

/// Inputs tried per profile.
const INPUTS: usize = 96;

/// Names a random rule may take: every name of the tables but the x86
/// multiplexers (which libseccomp also targets from `socket`, `semop`, ...,
/// so that a profile naming both has overlapping rules) and the calls
/// berth refuses to send to a listener.
fn pool() -> Vec<&'static str> {
    seccomp::arch::names()
        .iter()
        .copied()
        .filter(|n| {
            !matches!(
                *n,
                "socketcall" | "ipc" | "sendmsg" | "read" | "close" | "exit_group" | "exit"
            )
        })
        .collect()
}

const ARCHES: [Arch; 7] = [
    Arch::ScmpArchNative,
    Arch::ScmpArchX86_64,
    Arch::ScmpArchX86,
    Arch::ScmpArchX32,
    Arch::ScmpArchAarch64,
    Arch::ScmpArchArm,
    Arch::ScmpArchRiscv64,
];

const ACTIONS: [LinuxSeccompAction; 8] = [
    LinuxSeccompAction::ScmpActKill,
    LinuxSeccompAction::ScmpActKillProcess,
    LinuxSeccompAction::ScmpActTrap,
    LinuxSeccompAction::ScmpActErrno,
    LinuxSeccompAction::ScmpActTrace,
    LinuxSeccompAction::ScmpActLog,
    LinuxSeccompAction::ScmpActAllow,
    LinuxSeccompAction::ScmpActNotify,
];

const OPS: [LinuxSeccompOperator; 7] = [
    LinuxSeccompOperator::ScmpCmpNe,
    LinuxSeccompOperator::ScmpCmpLt,
    LinuxSeccompOperator::ScmpCmpLe,
    LinuxSeccompOperator::ScmpCmpEq,
    LinuxSeccompOperator::ScmpCmpGe,
    LinuxSeccompOperator::ScmpCmpGt,
    LinuxSeccompOperator::ScmpCmpMaskedEq,
];

/// Values where comparisons turn: word edges and small numbers.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        select(vec![
            0u64,
            1,
            2,
            5,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            0x1_0000_0000,
            0x1_0000_0001,
            0xffff_ffff_0000_0000,
            u64::MAX,
            u64::MAX - 1,
        ]),
        0u64..16,
        any::<u32>().prop_map(u64::from),
        any::<u64>(),
    ]
}

fn errno_for(a: LinuxSeccompAction) -> BoxedStrategy<Option<u32>> {
    if matches!(
        a,
        LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
    ) {
        prop_oneof![Just(None), (0u32..4096).prop_map(Some), Just(Some(38))].boxed()
    } else {
        Just(None).boxed()
    }
}

fn arg() -> impl Strategy<Value = LinuxSeccompArg> {
    (0usize..6, select(OPS.to_vec()), value(), value()).prop_map(|(index, op, v, two)| {
        let b = LinuxSeccompArgBuilder::default()
            .index(index)
            .op(op)
            .value(v);
        if op == LinuxSeccompOperator::ScmpCmpMaskedEq {
            b.value_two(two).build().unwrap()
        } else {
            b.build().unwrap()
        }
    })
}

fn action_and_errno() -> impl Strategy<Value = (LinuxSeccompAction, Option<u32>)> {
    select(ACTIONS.to_vec()).prop_flat_map(|a| (Just(a), errno_for(a)))
}

fn profile() -> impl Strategy<Value = LinuxSeccomp> {
    let pool = pool();
    let default = select(ACTIONS[..7].to_vec()).prop_flat_map(|a| (Just(a), errno_for(a)));
    let rules = proptest::collection::vec(
        (
            action_and_errno(),
            proptest::collection::vec(arg(), 0..4),
            1usize..5,
        ),
        0..10,
    );
    (
        default,
        subsequence(ARCHES.to_vec(), 0..=4).prop_shuffle(),
        rules,
        // Distinct names for the rules, one draw for all.
        subsequence(pool, 40),
    )
        .prop_map(|((d, de), arches, rules, names)| {
            let mut names = names.into_iter();
            let mut syscalls = Vec::new();
            for ((act, errno), args, n) in rules {
                let picked: Vec<String> = names.by_ref().take(n).map(String::from).collect();
                if picked.is_empty() {
                    break;
                }
                let mut r = LinuxSyscall::default();
                r.set_names(picked);
                r.set_action(act);
                r.set_errno_ret(errno);
                r.set_args((!args.is_empty()).then_some(args));
                syscalls.push(r);
            }
            let mut p = LinuxSeccomp::default();
            p.set_default_action(d);
            p.set_default_errno_ret(de);
            p.set_architectures(Some(arches));
            p.set_syscalls(Some(syscalls));
            p.set_listener_path(Some("/run/berth-test/listener.sock".into()));
            p
        })
}

/// Inputs aimed at the profile: the numbers it names on each architecture
/// and their neighbours, the x32 bit, arguments at and around its values.
fn inputs(p: &LinuxSeccomp, seed: u64) -> Vec<bpf::SeccompData> {
    let mut rng = seed;
    let mut next = move || {
        // xorshift64*: a fixed sequence per proptest case, so a failure replays.
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let arches = [
        ScArch::X86_64,
        ScArch::X86,
        ScArch::X32,
        ScArch::Aarch64,
        ScArch::Arm,
        ScArch::Riscv64,
    ];
    let mut nrs: Vec<u32> = vec![
        0,
        1,
        0x66,
        0x75,
        0x4000_0000,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        0xc000_0000,
    ];
    let mut values: Vec<u64> = vec![0, 1, u64::MAX, 0xffff_ffff, 0x1_0000_0000];
    for sc in p.syscalls().iter().flatten() {
        for n in sc.names() {
            if let Some(i) = seccomp::arch::name_index(n) {
                for a in arches {
                    if let Some(nr) = a.number(i) {
                        nrs.extend([nr, nr.wrapping_add(1), nr.wrapping_sub(1)]);
                    }
                }
            }
        }
        for a in sc.args().iter().flatten() {
            let v = a.value();
            let t = a.value_two().unwrap_or(0);
            values.extend([
                v,
                v.wrapping_add(1),
                v.wrapping_sub(1),
                t,
                t | !v,
                v ^ (1 << 32),
                v & 0xffff_ffff,
            ]);
            // x86 subcalls.
            values.extend(1..=24);
        }
    }
    (0..INPUTS)
        .map(|_| {
            let r = next();
            let arch = match r % 8 {
                6 => next() as u32,
                7 => ScArch::X86_64.audit(),
                k => arches[k as usize].audit(),
            };
            let nr = if next() % 8 == 0 {
                next() as u32
            } else {
                nrs[(next() % nrs.len() as u64) as usize]
            };
            let mut args = [0u64; 6];
            for a in &mut args {
                *a = match next() % 4 {
                    0 => next(),
                    1 => next() % 8,
                    _ => values[(next() % values.len() as u64) as usize],
                };
            }
            bpf::SeccompData {
                nr,
                arch,
                ip: next(),
                args,
            }
        })
        .collect()
}

/// One profile: compiled by both, compared on its inputs.
fn same_verdicts(p: &LinuxSeccomp, seed: u64) -> Result<(), TestCaseError> {
    let oracle = match runc_compile(p) {
        Ok(o) => o,
        Err(e) => return Err(TestCaseError::reject(format!("libseccomp refused: {e}"))),
    };
    let ours = seccomp::compile(p).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let prog = bpf::decode(&ours.program);
    for d in inputs(p, seed) {
        let Some(want) = oracle.verdict(&d).map_err(TestCaseError::fail)? else {
            SKIPPED.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        COMPARED.fetch_add(1, Ordering::Relaxed);
        let got = bpf::run(&prog, &d).map_err(TestCaseError::fail)?;
        prop_assert_eq!(
            got,
            want,
            "verdict {:#x} where libseccomp gives {:#x} on {:x?}\nprofile: {}",
            got,
            want,
            d,
            serde_json::to_string(p).unwrap()
        );
    }
    Ok(())
}

#[test]
fn berth_and_libseccomp_give_the_same_verdicts() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4096);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&(profile(), any::<u64>()), |(p, seed)| {
        same_verdicts(&p, seed)
    });
    let (compared, skipped) = (
        COMPARED.load(Ordering::Relaxed),
        SKIPPED.load(Ordering::Relaxed),
    );
    println!(
        "{cases} profiles, {compared} verdicts compared, {skipped} inputs skipped \
         (libseccomp's program read a stale accumulator on their path)"
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    // The skipped inputs must stay a minority, or the test says little.
    assert!(
        skipped * 10 < compared,
        "{skipped} skipped of {}",
        compared + skipped
    );
}

/// The default profiles (hundreds of names, three architectures: jumps
/// past 255 go through trampolines) on every number of every table, the
/// x32 bit and -1, with random arguments.
#[test]
fn the_default_profiles_give_libseccomps_verdicts() {
    use berth::oci_spec::runtime::Capability;
    use berth::security::seccomp_default;
    let arches = [
        ScArch::X86_64,
        ScArch::X86,
        ScArch::X32,
        ScArch::Aarch64,
        ScArch::Arm,
        ScArch::Riscv64,
    ];
    let mut nrs: Vec<u32> = (0..1100).chain(0x4000_0000..0x4000_0400).collect();
    nrs.extend([
        0x000f_0001,
        0x000f_0005,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
    ]);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let (mut compared, mut skipped) = (0, 0);
    for caps in [
        vec![Capability::Kill, Capability::Chown],
        vec![
            Capability::SysAdmin,
            Capability::SysPtrace,
            Capability::SysNice,
        ],
    ] {
        let mut p = seccomp_default::profile(&caps);
        // Every supported architecture, not only the host's three.
        p.set_architectures(Some(ARCHES[1..].to_vec()));
        let oracle = runc_compile(&p).unwrap();
        let ours = seccomp::compile(&p).unwrap();
        let prog = bpf::decode(&ours.program);
        assert!(
            prog.iter().any(|i| i.code == 0x05 && i.k > 255),
            "no long jump: the test would not cover trampolines"
        );
        for a in arches {
            for &nr in &nrs {
                // personality's values, clone's namespace flags, AF_VSOCK.
                let pick = [
                    0u64,
                    8,
                    0x20000,
                    0xffff_ffff,
                    0x1000_0000,
                    40,
                    next(),
                    next() % 64,
                ];
                let mut args = [0u64; 6];
                for x in &mut args {
                    *x = pick[(next() % pick.len() as u64) as usize];
                }
                let d = bpf::SeccompData {
                    nr,
                    arch: a.audit(),
                    ip: 0,
                    args,
                };
                let Some(want) = oracle.verdict(&d).unwrap() else {
                    skipped += 1;
                    continue;
                };
                compared += 1;
                assert_eq!(
                    bpf::run(&prog, &d).unwrap(),
                    want,
                    "{d:x?} with the default profile for {caps:?}"
                );
            }
        }
    }
    println!("default profiles: {compared} verdicts compared, {skipped} skipped");
    assert!(skipped * 10 < compared);
}
