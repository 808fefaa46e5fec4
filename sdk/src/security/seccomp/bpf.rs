//! Classic BPF as seccomp uses it: the instruction encoding, a builder that
//! lays a program out back to front (so every jump is forward and its
//! distance known when it is written), and an interpreter that runs a
//! program on a `seccomp_data` the way the kernel does, for tests.

// The interpreter (decode, run, SeccompData) is the conformance oracle's
// and the tests': only the compiler's half is used without `internals`.
#![cfg_attr(not(feature = "internals"), allow(dead_code))]

/// `struct sock_filter`: one instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode (`BPF_CLASS | BPF_SIZE | BPF_MODE` or `BPF_CLASS | BPF_OP | BPF_SRC`).
    pub code: u16,
    /// Jump offset if the condition holds.
    pub jt: u8,
    /// Jump offset if it does not.
    pub jf: u8,
    /// The constant operand.
    pub k: u32,
}

// Instruction classes and fields (linux/bpf_common.h).
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const W: u16 = 0x00;
const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const K: u16 = 0x00;
const X: u16 = 0x08;
const A: u16 = 0x10;
const JA: u16 = 0x00;
/// `BPF_JEQ`.
pub const JEQ: u16 = 0x10;
/// `BPF_JGT`.
pub const JGT: u16 = 0x20;
/// `BPF_JGE`.
pub const JGE: u16 = 0x30;
/// `BPF_JSET`.
pub const JSET: u16 = 0x40;
const AND: u16 = 0x50;

/// `sizeof(struct seccomp_data)`.
pub const DATA_LEN: u32 = 64;
/// Offset of `seccomp_data.nr`.
pub const OFF_NR: u32 = 0;
/// Offset of `seccomp_data.arch`.
pub const OFF_ARCH: u32 = 4;

/// Offset of the 32-bit word of argument `index` (`hi`: the upper one), in
/// this machine's byte order.
pub fn arg_offset(index: u8, hi: bool) -> u32 {
    let base = 16 + 8 * u32::from(index);
    if hi == cfg!(target_endian = "little") {
        base + 4
    } else {
        base
    }
}

/// `struct seccomp_data`, what a filter sees of a system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeccompData {
    /// The system call number.
    pub nr: u32,
    /// `AUDIT_ARCH_*` of the calling convention.
    pub arch: u32,
    /// The instruction pointer.
    pub ip: u64,
    /// The six arguments.
    pub args: [u64; 6],
}

impl SeccompData {
    fn bytes(&self) -> [u8; DATA_LEN as usize] {
        let mut b = [0u8; DATA_LEN as usize];
        b[0..4].copy_from_slice(&self.nr.to_ne_bytes());
        b[4..8].copy_from_slice(&self.arch.to_ne_bytes());
        b[8..16].copy_from_slice(&self.ip.to_ne_bytes());
        for (i, a) in self.args.iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        b
    }
}

/// Decodes a program exported as bytes (8 per instruction, this machine's
/// byte order).
pub fn decode(program: &[u8]) -> Vec<Insn> {
    program
        .chunks_exact(8)
        .map(|c| Insn {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

/// Encodes instructions as `struct sock_filter` bytes.
pub fn encode(insns: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(insns.len() * 8);
    for i in insns {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

/// Runs `program` on `data` as the kernel's classic-BPF interpreter does
/// and returns the filter's `SECCOMP_RET_*` value; `Err` names what the
/// kernel would have refused (a bad opcode, a jump or load out of range, a
/// program that does not end in a return).
pub fn run(program: &[Insn], data: &SeccompData) -> Result<u32, String> {
    run_traced(program, data, &mut |_| {})
}

/// [`run`], calling `visit` with the index of each instruction executed.
pub fn run_traced(
    program: &[Insn],
    data: &SeccompData,
    visit: &mut dyn FnMut(usize),
) -> Result<u32, String> {
    let bytes = data.bytes();
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    let word = |k: u32| -> Result<u32, String> {
        if k % 4 != 0 || k >= DATA_LEN {
            return Err(format!("load of seccomp_data at {k}"));
        }
        let k = k as usize;
        Ok(u32::from_ne_bytes([
            bytes[k],
            bytes[k + 1],
            bytes[k + 2],
            bytes[k + 3],
        ]))
    };
    let slot = |k: u32| -> Result<usize, String> {
        if k < 16 {
            Ok(k as usize)
        } else {
            Err(format!("scratch slot {k}"))
        }
    };
    loop {
        let Some(i) = program.get(pc) else {
            return Err(format!("ran off the end at {pc}"));
        };
        visit(pc);
        pc += 1;
        let class = i.code & 0x07;
        match class {
            LD | LDX => {
                let v = match i.code & 0xe0 {
                    IMM => i.k,
                    ABS if class == LD && i.code & 0x18 == W => word(i.k)?,
                    MEM => mem[slot(i.k)?],
                    LEN => DATA_LEN,
                    _ => return Err(format!("opcode {:#x}", i.code)),
                };
                if class == LD {
                    a = v
                } else {
                    x = v
                }
            }
            ST => mem[slot(i.k)?] = a,
            STX => mem[slot(i.k)?] = x,
            ALU => {
                let v = if i.code & X != 0 { x } else { i.k };
                a = match i.code & 0xf0 {
                    0x00 => a.wrapping_add(v),
                    0x10 => a.wrapping_sub(v),
                    0x20 => a.wrapping_mul(v),
                    0x30 | 0x90 if v == 0 => return Ok(0),
                    0x30 => a / v,
                    0x90 => a % v,
                    0x40 => a | v,
                    AND => a & v,
                    0x60 => a.checked_shl(v).unwrap_or(0),
                    0x70 => a.checked_shr(v).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0xa0 => a ^ v,
                    _ => return Err(format!("opcode {:#x}", i.code)),
                }
            }
            JMP => {
                let v = if i.code & X != 0 { x } else { i.k };
                let taken = match i.code & 0xf0 {
                    JA => {
                        pc += i.k as usize;
                        continue;
                    }
                    JEQ => a == v,
                    JGT => a > v,
                    JGE => a >= v,
                    JSET => a & v != 0,
                    _ => return Err(format!("opcode {:#x}", i.code)),
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            RET => {
                return match i.code & 0x18 {
                    K => Ok(i.k),
                    A => Ok(a),
                    _ => Err(format!("opcode {:#x}", i.code)),
                }
            }
            MISC => {
                if i.code & 0xf8 == 0 {
                    x = a
                } else {
                    a = x
                }
            }
            _ => return Err(format!("opcode {:#x}", i.code)),
        }
    }
}

/// Where a jump goes: an instruction already laid out, or "return this
/// value" (a `ret` is then placed near the jump, or an earlier one reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The instruction `Label` names.
    At(Label),
    /// A `ret` of this value.
    Ret(u32),
}

/// An instruction of a program being built, by its distance from the end
/// (1 = the last instruction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(u32);

/// Builds a program from its end backwards: every instruction is placed in
/// front of the ones already there, so a jump's targets are placed before
/// it and its distance is known. A distance past 255 (a conditional jump's
/// limit) goes through a `ja` placed just behind the jump.
#[derive(Debug, Default)]
pub struct Builder {
    rev: Vec<Insn>,
    /// The most recent `ret` of each value, to reuse while near enough.
    rets: std::collections::HashMap<u32, Label>,
}

impl Builder {
    fn push(&mut self, i: Insn) -> Label {
        self.rev.push(i);
        Label(self.rev.len() as u32)
    }

    /// The offset, from an instruction placed next, to `l`.
    fn distance(&self, l: Label) -> u32 {
        self.rev.len() as u32 - l.0
    }

    /// A `ret k`.
    pub fn ret(&mut self, k: u32) -> Label {
        let l = self.push(Insn {
            code: RET | K,
            jt: 0,
            jf: 0,
            k,
        });
        self.rets.insert(k, l);
        l
    }

    /// The label of `t`, placing a `ret` if none is near enough.
    fn resolve(&mut self, t: Target, slack: u32) -> Label {
        match t {
            Target::At(l) => l,
            Target::Ret(k) => match self.rets.get(&k) {
                Some(&l) if self.distance(l) + slack <= 255 => l,
                _ => self.ret(k),
            },
        }
    }

    /// Places `t` (a no-op for a label; a `ret` if needed), for jumps.
    pub fn place(&mut self, t: Target) -> Label {
        self.resolve(t, 0)
    }

    /// Makes the instruction placed next fall through to `t`: a `ret` of
    /// its own, or a `ja` unless `t` is the instruction just placed.
    pub fn fall_into(&mut self, t: Target) -> Label {
        match t {
            Target::Ret(k) => self.ret(k),
            Target::At(l) if self.distance(l) == 0 => l,
            Target::At(l) => self.jump(l),
        }
    }

    /// `ld [k]` (a 32-bit word of `seccomp_data`).
    pub fn load(&mut self, k: u32) -> Label {
        self.push(Insn {
            code: LD | W | ABS,
            jt: 0,
            jf: 0,
            k,
        })
    }

    /// `and #k`.
    pub fn and(&mut self, k: u32) -> Label {
        self.push(Insn {
            code: ALU | AND | K,
            jt: 0,
            jf: 0,
            k,
        })
    }

    /// `ja l`.
    pub fn jump(&mut self, l: Label) -> Label {
        let k = self.distance(l);
        self.push(Insn {
            code: JMP | JA,
            jt: 0,
            jf: 0,
            k,
        })
    }

    /// `j<op> #k, t, f` (`op`: [`JEQ`], [`JGT`], [`JGE`], [`JSET`]).
    pub fn cond(&mut self, op: u16, k: u32, t: Target, f: Target) -> Label {
        let mut f = self.resolve(f, 1);
        let mut t = self.resolve(t, 0);
        if self.distance(f) > 255 {
            f = self.jump(f);
        }
        if self.distance(t) > 255 {
            t = self.jump(t);
            if self.distance(f) > 255 {
                f = self.jump(f);
            }
        }
        let (jt, jf) = (self.distance(t), self.distance(f));
        debug_assert!(jt <= 255 && jf <= 255);
        self.push(Insn {
            code: JMP | op | K,
            jt: jt as u8,
            jf: jf as u8,
            k,
        })
    }

    /// The program, first instruction first.
    pub fn finish(self) -> Vec<Insn> {
        let mut v = self.rev;
        v.reverse();
        v
    }

    /// Instructions placed so far.
    pub fn len(&self) -> usize {
        self.rev.len()
    }

    /// Whether nothing is placed yet.
    pub fn is_empty(&self) -> bool {
        self.rev.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_jumps_go_through_a_trampoline() {
        let mut b = Builder::default();
        let far = b.ret(7);
        for _ in 0..300 {
            b.ret(1);
        }
        let near = b.ret(9);
        // The `ret 1`s push `far` out of reach of a conditional jump.
        b.cond(JEQ, 5, Target::At(far), Target::At(near));
        b.load(OFF_NR);
        let prog = b.finish();
        let verdict = |nr| {
            run(
                &prog,
                &SeccompData {
                    nr,
                    ..Default::default()
                },
            )
        };
        assert_eq!(verdict(5), Ok(7));
        assert_eq!(verdict(6), Ok(9));
    }

    #[test]
    fn the_interpreter_refuses_what_the_kernel_refuses() {
        let data = SeccompData::default();
        let load = |k| Insn {
            code: LD | W | ABS,
            jt: 0,
            jf: 0,
            k,
        };
        assert!(run(&[load(64)], &data).is_err());
        assert!(run(&[load(2)], &data).is_err());
        assert!(run(&[load(0)], &data).is_err(), "no return");
    }
}
