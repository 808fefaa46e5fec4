//! The architectures berth compiles filters for: their `AUDIT_ARCH_*`
//! values, their word size as libseccomp treats it, and their system call
//! numbers (from the generated `table` module).

use oci_spec::runtime::Arch;

use super::table;

/// `__X32_SYSCALL_BIT`: x32 calls are x86_64's audit arch with this bit
/// set in the number.
pub const X32_BIT: u32 = 0x4000_0000;

/// An architecture with a system call table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScArch {
    /// `SCMP_ARCH_X86_64`.
    X86_64,
    /// `SCMP_ARCH_X86`.
    X86,
    /// `SCMP_ARCH_X32`.
    X32,
    /// `SCMP_ARCH_AARCH64`.
    Aarch64,
    /// `SCMP_ARCH_ARM`.
    Arm,
    /// `SCMP_ARCH_RISCV64`.
    Riscv64,
}

impl ScArch {
    /// The architecture of this build (the one a native process calls through).
    pub const fn native() -> ScArch {
        #[cfg(target_arch = "x86_64")]
        {
            ScArch::X86_64
        }
        #[cfg(target_arch = "aarch64")]
        {
            ScArch::Aarch64
        }
        #[cfg(target_arch = "riscv64")]
        {
            ScArch::Riscv64
        }
        #[cfg(target_arch = "x86")]
        {
            ScArch::X86
        }
        #[cfg(target_arch = "arm")]
        {
            ScArch::Arm
        }
    }

    /// The OCI architecture's table, if berth has one.
    pub fn of(a: Arch) -> Option<ScArch> {
        Some(match a {
            Arch::ScmpArchNative => ScArch::native(),
            Arch::ScmpArchX86_64 => ScArch::X86_64,
            Arch::ScmpArchX86 => ScArch::X86,
            Arch::ScmpArchX32 => ScArch::X32,
            Arch::ScmpArchAarch64 => ScArch::Aarch64,
            Arch::ScmpArchArm => ScArch::Arm,
            Arch::ScmpArchRiscv64 => ScArch::Riscv64,
            _ => return None,
        })
    }

    /// `AUDIT_ARCH_*`, as `seccomp_data.arch` shows it.
    pub const fn audit(self) -> u32 {
        match self {
            ScArch::X86_64 | ScArch::X32 => 0xc000_003e,
            ScArch::X86 => 0x4000_0003,
            ScArch::Aarch64 => 0xc000_00b7,
            ScArch::Arm => 0x4000_0028,
            ScArch::Riscv64 => 0xc000_00f3,
        }
    }

    /// Whether arguments are compared as 32-bit values (libseccomp's
    /// `ARCH_SIZE_32`, x32 included): only the low word is looked at.
    pub const fn is_32bit(self) -> bool {
        matches!(self, ScArch::X86 | ScArch::X32 | ScArch::Arm)
    }

    fn table(self) -> &'static [u32] {
        match self {
            ScArch::X86_64 => &table::X86_64,
            ScArch::X86 => &table::X86,
            ScArch::X32 => &table::X32,
            ScArch::Aarch64 => &table::AARCH64,
            ScArch::Arm => &table::ARM,
            ScArch::Riscv64 => &table::RISCV64,
        }
    }

    /// The number of the call `name` (an index of [`name_index`]) on this
    /// architecture, `None` where it has none.
    pub fn number(self, name: usize) -> Option<u32> {
        self.table()
            .get(name)
            .copied()
            .filter(|&n| n != table::NONE)
    }

    /// For an x86 call libseccomp also filters through `socketcall` or
    /// `ipc`: that multiplexer's number and the subcall (its first argument).
    pub fn multiplexed(self, name: usize) -> Option<(u32, u32)> {
        if self != ScArch::X86 {
            return None;
        }
        table::X86_MUX
            .iter()
            .find(|(i, _, _)| usize::from(*i) == name)
            .map(|&(_, via, sub)| (via, sub))
    }
}

/// The index of a system call name in the tables, if any architecture
/// knows it.
pub fn name_index(name: &str) -> Option<usize> {
    table::NAMES.binary_search(&name).ok()
}

/// Whether some architecture of berth's tables knows the call `name`.
pub fn is_known(name: &str) -> bool {
    name_index(name).is_some()
}

/// Where the tables come from (`libseccomp x.y.z`).
pub const TABLE_SOURCE: &str = table::SOURCE;

/// Every name of the tables, sorted.
#[cfg_attr(not(feature = "internals"), allow(dead_code))] // used by tests and the conformance oracle
pub fn names() -> &'static [&'static str] {
    &table::NAMES
}
