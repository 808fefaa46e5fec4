//! The cgroup v2 device filter: [`DeviceRule`]s compiled to eBPF.
//!
//! The kernel runs a `BPF_PROG_TYPE_CGROUP_DEVICE` program on every device
//! open and `mknod` in the cgroup, with a `struct bpf_cgroup_dev_ctx`
//! (`access_type`, `major`, `minor`: three `u32`s; `access_type` is the
//! access bits shifted left by 16 over the device type) in `r1`; returning
//! 1 allows, 0 denies (`EPERM`). The program tests the rules from the last
//! to the first and returns the verdict of the first that matches, else
//! allows: the meaning [`super::devices`] gives a rule list on v1.

use super::devices::{DeviceRule, Kind, ALL_ACCESS};

/// `BPF_DEVCG_DEV_BLOCK`.
const DEV_BLOCK: i32 = 1;
/// `BPF_DEVCG_DEV_CHAR`.
const DEV_CHAR: i32 = 2;

/// One eBPF instruction, laid out as `struct bpf_insn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Insn {
    /// Opcode.
    pub code: u8,
    /// Destination register (low nibble) and source register (high nibble).
    pub regs: u8,
    /// Signed jump or memory offset.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

// The opcodes the filter uses (class | op | source).
/// `dst = *(u32 *)(src + off)`: `BPF_LDX | BPF_MEM | BPF_W`.
pub(crate) const LDX_W: u8 = 0x61;
/// `dst = src`: `BPF_ALU64 | BPF_MOV | BPF_X`.
pub(crate) const MOV_X: u8 = 0xbf;
/// `dst = imm`: `BPF_ALU64 | BPF_MOV | BPF_K`.
pub(crate) const MOV_K: u8 = 0xb7;
/// `dst &= imm`: `BPF_ALU64 | BPF_AND | BPF_K`.
pub(crate) const AND_K: u8 = 0x57;
/// `dst >>= imm`: `BPF_ALU64 | BPF_RSH | BPF_K`.
pub(crate) const RSH_K: u8 = 0x77;
/// `if dst != imm goto +off`: `BPF_JMP | BPF_JNE | BPF_K`.
pub(crate) const JNE_K: u8 = 0x55;
/// `if dst == imm goto +off`: `BPF_JMP | BPF_JEQ | BPF_K`.
pub(crate) const JEQ_K: u8 = 0x15;
/// `if dst & imm goto +off`: `BPF_JMP | BPF_JSET | BPF_K`.
pub(crate) const JSET_K: u8 = 0x45;
/// `return r0`: `BPF_JMP | BPF_EXIT`.
pub(crate) const EXIT: u8 = 0x95;

// Registers: r1 holds the context on entry.
const CTX: u8 = 1;
const ACCESS: u8 = 2;
const TYPE: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;
const SCRATCH: u8 = 6;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// A conditional jump to the next rule, its offset patched later.
const NEXT: i16 = i16::MIN;

/// The program for `rules` (already with the default devices added). It has
/// no unreachable instruction, which the verifier would refuse.
pub(crate) fn compile(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_W, ACCESS, CTX, 0, 0),
        insn(MOV_X, TYPE, ACCESS, 0, 0),
        insn(AND_K, TYPE, 0, 0, 0xffff),
        insn(RSH_K, ACCESS, 0, 0, 16),
        insn(LDX_W, MAJOR, CTX, 4, 0),
        insn(LDX_W, MINOR, CTX, 8, 0),
    ];
    for rule in rules.iter().rev() {
        let start = prog.len();
        match rule.kind {
            Kind::All => {}
            Kind::Block => prog.push(insn(JNE_K, TYPE, 0, NEXT, DEV_BLOCK)),
            Kind::Char => prog.push(insn(JNE_K, TYPE, 0, NEXT, DEV_CHAR)),
        }
        if rule.access != ALL_ACCESS {
            let access = i32::from(rule.access);
            if rule.allow {
                // Asking for anything the rule does not grant: no match.
                prog.push(insn(
                    JSET_K,
                    ACCESS,
                    0,
                    NEXT,
                    i32::from(!rule.access & ALL_ACCESS),
                ));
            } else {
                // Asking for nothing the rule denies: no match.
                prog.push(insn(MOV_X, SCRATCH, ACCESS, 0, 0));
                prog.push(insn(AND_K, SCRATCH, 0, 0, access));
                prog.push(insn(JEQ_K, SCRATCH, 0, NEXT, 0));
            }
        }
        if let Some(major) = rule.major {
            prog.push(insn(JNE_K, MAJOR, 0, NEXT, major as i32));
        }
        if let Some(minor) = rule.minor {
            prog.push(insn(JNE_K, MINOR, 0, NEXT, minor as i32));
        }
        let unconditional = prog.len() == start;
        prog.push(insn(MOV_K, 0, 0, 0, i32::from(rule.allow)));
        prog.push(insn(EXIT, 0, 0, 0, 0));
        if unconditional {
            // The verifier refuses unreachable instructions: earlier rules
            // and the default can never decide.
            return prog;
        }
        let end = prog.len();
        for (pc, i) in prog.iter_mut().enumerate().take(end).skip(start) {
            if i.off == NEXT {
                // Device numbers fit in 20 bits and a rule is at most 8
                // instructions: the offset always fits.
                i.off = (end - pc - 1) as i16;
            }
        }
    }
    prog.push(insn(MOV_K, 0, 0, 0, 1));
    prog.push(insn(EXIT, 0, 0, 0, 0));
    prog
}

#[cfg(test)]
mod tests {
    use super::super::devices::{allowed, DeviceRule, Kind, MKNOD, READ, WRITE};
    use super::*;
    use proptest::prelude::*;

    /// Runs `prog` on a request the way the kernel's interpreter would, for
    /// the instructions [`compile`] emits.
    fn run(prog: &[Insn], kind: Kind, major: u32, minor: u32, access: u8) -> bool {
        let dev_type = match kind {
            Kind::Block => DEV_BLOCK as u64,
            Kind::Char => DEV_CHAR as u64,
            Kind::All => unreachable!("requests are for one type"),
        };
        let ctx = [
            (u64::from(access) << 16) | dev_type,
            u64::from(major),
            u64::from(minor),
        ];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            let imm = i.imm as i64 as u64;
            let mut jump = false;
            match i.code {
                LDX_W => {
                    assert_eq!(src, CTX as usize, "loads only from the context");
                    r[dst] = ctx[i.off as usize / 4];
                }
                MOV_X => r[dst] = r[src],
                MOV_K => r[dst] = imm,
                AND_K => r[dst] &= imm,
                RSH_K => r[dst] >>= imm,
                JNE_K => jump = r[dst] != imm,
                JEQ_K => jump = r[dst] == imm,
                JSET_K => jump = r[dst] & imm != 0,
                EXIT => return r[0] == 1,
                c => panic!("unexpected opcode {c:#x}"),
            }
            pc += 1;
            if jump {
                pc = (pc as i64 + i64::from(i.off)) as usize;
            }
        }
    }

    /// Asserts that every instruction of `prog` can be reached.
    fn assert_all_reachable(prog: &[Insn]) {
        let mut seen = vec![false; prog.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            if std::mem::replace(&mut seen[pc], true) {
                continue;
            }
            let i = prog[pc];
            if i.code == EXIT {
                continue;
            }
            todo.push(pc + 1);
            if matches!(i.code, JNE_K | JEQ_K | JSET_K) {
                todo.push((pc as i64 + 1 + i64::from(i.off)) as usize);
            }
        }
        assert!(
            seen.iter().all(|&s| s),
            "unreachable instructions in {prog:?}"
        );
    }

    fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![Just(Kind::All), Just(Kind::Block), Just(Kind::Char)]
    }

    fn rule() -> impl Strategy<Value = DeviceRule> {
        (
            any::<bool>(),
            kind(),
            proptest::option::of(0u32..4),
            proptest::option::of(0u32..4),
            1u8..=7,
        )
            .prop_map(|(allow, kind, major, minor, access)| DeviceRule {
                allow,
                kind,
                major,
                minor,
                access,
            })
    }

    proptest! {
        /// The program decides every request as the rule list does.
        #[test]
        fn program_agrees_with_the_rules(
            rules in proptest::collection::vec(rule(), 0..12),
            block in any::<bool>(),
            major in 0u32..4,
            minor in 0u32..4,
            access in 1u8..=7,
        ) {
            let kind = if block { Kind::Block } else { Kind::Char };
            let prog = compile(&rules);
            assert_all_reachable(&prog);
            prop_assert_eq!(
                run(&prog, kind, major, minor, access),
                allowed(&rules, kind, major, minor, access)
            );
        }
    }

    #[test]
    fn allow_list_example() {
        let rules = [
            DeviceRule {
                allow: false,
                kind: Kind::All,
                major: None,
                minor: None,
                access: ALL_ACCESS,
            },
            DeviceRule {
                allow: true,
                kind: Kind::Char,
                major: Some(1),
                minor: Some(3),
                access: READ | WRITE,
            },
        ];
        let prog = compile(&rules);
        assert!(run(&prog, Kind::Char, 1, 3, READ));
        assert!(run(&prog, Kind::Char, 1, 3, READ | WRITE));
        assert!(!run(&prog, Kind::Char, 1, 3, MKNOD));
        assert!(!run(&prog, Kind::Char, 1, 5, READ));
        assert!(!run(&prog, Kind::Block, 1, 3, READ));
    }
}
