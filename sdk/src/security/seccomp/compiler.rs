//! From a checked profile to classic BPF.
//!
//! The program checks `seccomp_data.arch` first (an architecture the
//! profile does not name gets libseccomp's "bad arch" action, kill), then
//! finds the call's number by binary search over intervals of numbers:
//! numbers with the same verdict, side by side, share one interval, so the
//! search takes about log2(intervals) comparisons. An interval is either a
//! return or, for a call whose rules look at arguments, the rules in order.
//!
//! Semantics follow runc on libseccomp, which `tests/seccomp_differential.rs`
//! in berth-conformance checks verdict by verdict:
//! - a rule without conditions overrides that call's rules with conditions;
//! - conditions of a rule all hold (AND); the rules of a call are tried in
//!   order, the first that holds decides (libseccomp refuses or reorders
//!   overlapping rules with different actions; berth takes them in order);
//! - 32-bit architectures (x86, x32, arm) compare the low words only;
//! - on x86, the socket and SysV IPC calls are also filtered through
//!   `socketcall`/`ipc` with the subcall in the first argument;
//! - runc's `-ENOSYS` stub: for calls numbered above the highest the profile
//!   names on an architecture of `architectures`, `ENOSYS`, unless the
//!   default action allows, logs or traces or is already `ENOSYS`.

use std::collections::BTreeMap;

use super::arch::{ScArch, X32_BIT};
use super::bpf::{self, Builder, Insn, Label, Target, JEQ, JGE, JGT};

/// `SECCOMP_RET_*` values.
pub mod ret {
    /// `SECCOMP_RET_KILL_PROCESS`.
    pub const KILL_PROCESS: u32 = 0x8000_0000;
    /// `SECCOMP_RET_KILL_THREAD`.
    pub const KILL_THREAD: u32 = 0;
    /// `SECCOMP_RET_TRAP`.
    pub const TRAP: u32 = 0x0003_0000;
    /// `SECCOMP_RET_ERRNO`, or-ed with the errno.
    pub const ERRNO: u32 = 0x0005_0000;
    /// `SECCOMP_RET_USER_NOTIF`.
    pub const USER_NOTIF: u32 = 0x7fc0_0000;
    /// `SECCOMP_RET_TRACE`, or-ed with the tracer's data.
    pub const TRACE: u32 = 0x7ff0_0000;
    /// `SECCOMP_RET_LOG`.
    pub const LOG: u32 = 0x7ffc_0000;
    /// `SECCOMP_RET_ALLOW`.
    pub const ALLOW: u32 = 0x7fff_0000;
}

/// A comparison of one argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `SCMP_CMP_NE`.
    Ne,
    /// `SCMP_CMP_LT`.
    Lt,
    /// `SCMP_CMP_LE`.
    Le,
    /// `SCMP_CMP_EQ`.
    Eq,
    /// `SCMP_CMP_GE`.
    Ge,
    /// `SCMP_CMP_GT`.
    Gt,
    /// `SCMP_CMP_MASKED_EQ`: `arg & mask == datum`.
    MaskedEq {
        /// The mask (the spec's `value`).
        mask: u64,
    },
}

/// `args[index] <op> datum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cond {
    /// Which argument (0..=5).
    pub index: u8,
    /// The comparison.
    pub op: Op,
    /// The value compared with (the spec's `valueTwo` for `MaskedEq`).
    pub datum: u64,
}

/// One rule: if every condition holds, `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The call, as an index of the tables.
    pub name: usize,
    /// The `SECCOMP_RET_*` value.
    pub action: u32,
    /// All must hold.
    pub conds: Vec<Cond>,
}

/// What the compiler needs of a profile, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// `SECCOMP_RET_*` of calls no rule decides.
    pub default: u32,
    /// The architectures of the filter (the native one included).
    pub arches: Vec<ScArch>,
    /// The rules, in the profile's order (those whose action is the
    /// default left out).
    pub rules: Vec<Rule>,
    /// runc's `-ENOSYS` stub: the architectures of `architectures` and
    /// every call the profile names, or `None` where runc adds no stub.
    pub enosys: Option<(Vec<ScArch>, Vec<usize>)>,
}

const ENOSYS: u32 = ret::ERRNO | libc::ENOSYS as u32;

/// Conditions that all hold, and the action then.
type CondRule = (Vec<Cond>, u32);

/// What the search finds for an interval of numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaf {
    Ret(u32),
    /// The rules of one call (an index into `Section::blocks`).
    Rules(usize),
}

/// The numbers of one `AUDIT_ARCH_*` value, by interval.
#[derive(Debug, Default)]
struct Section {
    /// Interval starts and what they lead to; the first starts at 0.
    map: BTreeMap<u32, Leaf>,
    /// Per call with conditional rules: 32-bit arguments?, its rules.
    blocks: Vec<(bool, Vec<CondRule>)>,
}

impl Section {
    fn new(bad_arch: u32) -> Section {
        let mut map = BTreeMap::new();
        map.insert(0, Leaf::Ret(bad_arch));
        Section {
            map,
            blocks: Vec::new(),
        }
    }

    fn at(&self, nr: u32) -> Leaf {
        *self
            .map
            .range(..=nr)
            .next_back()
            .map(|(_, l)| l)
            .expect("an interval starts at 0")
    }

    /// Gives `lo..=hi` to `leaf`.
    fn paint(&mut self, lo: u32, hi: u32, leaf: Leaf) {
        if hi < u32::MAX {
            let after = self.at(hi + 1);
            self.map.insert(hi + 1, after);
        }
        let inner: Vec<u32> = self.map.range(lo..=hi).map(|(k, _)| *k).collect();
        for k in inner {
            self.map.remove(&k);
        }
        self.map.insert(lo, leaf);
    }
}

/// The numbers an architecture's filter covers under its audit arch:
/// x86_64 and x32 share one, told apart by the x32 bit as libseccomp does
/// (x86_64 keeps -1, the number a tracer sets to skip a call; x32, when
/// present, takes it).
fn domain(a: ScArch) -> &'static [(u32, u32)] {
    match a {
        ScArch::X86_64 => &[(0, X32_BIT - 1), (u32::MAX, u32::MAX)],
        ScArch::X32 => &[(X32_BIT, u32::MAX)],
        _ => &[(0, u32::MAX)],
    }
}

/// The numbers runc's stub answers `ENOSYS` for, above `last` on `a`.
fn enosys_ranges(a: ScArch, last: u32) -> Vec<(u32, u32)> {
    match a {
        // The stub tells x86_64 from x32 by bit 30 alone (`jset`).
        ScArch::X86_64 => vec![(last + 1, X32_BIT - 1), (0x8000_0000, 0xbfff_ffff)],
        ScArch::X32 => vec![(last + 1, 0x7fff_ffff), (0xc000_0000, u32::MAX)]
            .into_iter()
            .filter(|(lo, hi)| lo <= hi)
            .collect(),
        _ if last < u32::MAX => vec![(last + 1, u32::MAX)],
        _ => vec![],
    }
}

/// The number runc's stub takes as the profile's last on `a` (none if 0).
fn last_named(a: ScArch, names: &[usize]) -> Option<u32> {
    names
        .iter()
        .filter(|&&n| a.multiplexed(n).is_none())
        .filter_map(|&n| a.number(n))
        .max()
        .filter(|&n| n != 0)
}

/// Where rule `r` goes on `a`: `(number, conditions)`, the x86
/// multiplexed form included.
fn placements(a: ScArch, r: &Rule) -> Vec<(u32, Vec<Cond>)> {
    let mut out = Vec::new();
    if let Some(nr) = a.number(r.name) {
        out.push((nr, r.conds.clone()));
    }
    if let Some((via, sub)) = a.multiplexed(r.name) {
        // libseccomp puts the subcall in place of any first-argument condition.
        let mut conds = vec![Cond {
            index: 0,
            op: Op::Eq,
            datum: u64::from(sub),
        }];
        conds.extend(r.conds.iter().filter(|c| c.index != 0).copied());
        out.push((via, conds));
    }
    out
}

/// Compiles `p` to a program.
pub fn compile(p: &Profile) -> Vec<Insn> {
    const BAD_ARCH: u32 = ret::KILL_THREAD;
    // Sections by audit arch, in the order their architectures come.
    let mut sections: Vec<(u32, Section)> = Vec::new();
    for &a in &p.arches {
        let audit = a.audit();
        let idx = match sections.iter().position(|(au, _)| *au == audit) {
            Some(i) => i,
            None => {
                sections.push((audit, Section::new(BAD_ARCH)));
                sections.len() - 1
            }
        };
        let s = &mut sections[idx].1;
        for &(lo, hi) in domain(a) {
            s.paint(lo, hi, Leaf::Ret(p.default));
        }
        // Per number: (unconditional?, rules).
        let mut calls: BTreeMap<u32, (Option<u32>, Vec<CondRule>)> = BTreeMap::new();
        for r in &p.rules {
            for (nr, conds) in placements(a, r) {
                let e = calls.entry(nr).or_default();
                if conds.is_empty() {
                    e.0.get_or_insert(r.action);
                } else {
                    e.1.push((conds, r.action));
                }
            }
        }
        for (nr, (uncond, conds)) in calls {
            let leaf = match uncond {
                Some(action) => Leaf::Ret(action),
                None => {
                    s.blocks.push((a.is_32bit(), conds));
                    Leaf::Rules(s.blocks.len() - 1)
                }
            };
            s.paint(nr, nr, leaf);
        }
    }
    // The stub comes before libseccomp's filter in runc: over it all.
    if let Some((arches, names)) = &p.enosys {
        for &a in arches {
            let Some(last) = last_named(a, names) else {
                continue;
            };
            if let Some((_, s)) = sections.iter_mut().find(|(au, _)| *au == a.audit()) {
                for (lo, hi) in enosys_ranges(a, last) {
                    s.paint(lo, hi, Leaf::Ret(ENOSYS));
                }
            }
        }
    }

    let mut b = Builder::default();
    let mut entries = Vec::new();
    for (audit, s) in sections.iter().rev() {
        let mut intervals: Vec<(u32, Leaf)> = Vec::with_capacity(s.map.len());
        for (&start, &leaf) in &s.map {
            if intervals.last().map(|(_, l)| *l) != Some(leaf) {
                intervals.push((start, leaf));
            }
        }
        let root = search(&mut b, s, &intervals, p.default);
        b.fall_into(root);
        let l = b.load(bpf::OFF_NR);
        entries.push((*audit, l));
    }
    let mut next = Target::Ret(BAD_ARCH);
    for (audit, l) in entries {
        next = Target::At(b.cond(JEQ, audit, Target::At(l), next));
    }
    b.fall_into(next);
    b.load(bpf::OFF_ARCH);
    b.finish()
}

/// The binary search over `iv` (the number in A), its leaves included.
fn search(b: &mut Builder, s: &Section, iv: &[(u32, Leaf)], default: u32) -> Target {
    match iv {
        [] => unreachable!("a section covers every number"),
        [(_, leaf)] => match *leaf {
            Leaf::Ret(k) => Target::Ret(k),
            Leaf::Rules(i) => {
                let (is32, rules) = &s.blocks[i];
                Target::At(rules_block(b, *is32, rules, default))
            }
        },
        _ => {
            let mid = iv.len() / 2;
            let right = search(b, s, &iv[mid..], default);
            let left = search(b, s, &iv[..mid], default);
            Target::At(b.cond(JGE, iv[mid].0, right, left))
        }
    }
}

/// A call's rules, tried in order; if none holds, `default`.
fn rules_block(b: &mut Builder, is32: bool, rules: &[CondRule], default: u32) -> Label {
    let mut next = Target::Ret(default);
    for (conds, action) in rules.iter().rev() {
        let mut pass = Target::Ret(*action);
        for c in conds.iter().rev() {
            pass = Target::At(condition(b, is32, c, pass, next));
        }
        next = pass;
    }
    b.place(next)
}

/// The code of one condition: on to `pass` if it holds, else `fail`. A
/// 64-bit comparison looks at the upper words first, as the kernel's
/// `seccomp_data` splits them.
fn condition(b: &mut Builder, is32: bool, c: &Cond, pass: Target, fail: Target) -> Label {
    let (lo, hi) = (
        bpf::arg_offset(c.index, false),
        bpf::arg_offset(c.index, true),
    );
    let (dh, dl) = ((c.datum >> 32) as u32, c.datum as u32);
    match c.op {
        Op::Eq | Op::Ne => {
            let (t, f) = if c.op == Op::Eq {
                (pass, fail)
            } else {
                (fail, pass)
            };
            b.cond(JEQ, dl, t, f);
            let l = b.load(lo);
            if is32 {
                return l;
            }
            b.cond(JEQ, dh, Target::At(l), f);
            b.load(hi)
        }
        Op::MaskedEq { mask } => {
            // libseccomp compares with the datum masked too: a datum bit
            // outside the mask is ignored, not a condition that never holds.
            let (dh, dl) = (dh & (mask >> 32) as u32, dl & mask as u32);
            b.cond(JEQ, dl, pass, fail);
            b.and(mask as u32);
            let l = b.load(lo);
            if is32 {
                return l;
            }
            b.cond(JEQ, dh, Target::At(l), fail);
            b.and((mask >> 32) as u32);
            b.load(hi)
        }
        Op::Gt | Op::Le | Op::Ge | Op::Lt => {
            let (t, f) = if matches!(c.op, Op::Gt | Op::Ge) {
                (pass, fail)
            } else {
                (fail, pass)
            };
            let low_op = if matches!(c.op, Op::Gt | Op::Le) {
                JGT
            } else {
                JGE
            };
            b.cond(low_op, dl, t, f);
            let l = b.load(lo);
            if is32 {
                return l;
            }
            let eq = b.cond(JEQ, dh, Target::At(l), f);
            b.cond(JGT, dh, t, Target::At(eq));
            b.load(hi)
        }
    }
}
