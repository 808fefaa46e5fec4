//! The groundwork of berth's VM matrix: boot QEMU guests across **kernel series ×
//! cgroup modes** and run berth's tests inside them.
//!
//! The development and CI hosts only ever show one kernel and one cgroup layout
//! (hybrid: v1 controllers plus an empty cgroup2 mount). berth must work on every
//! kernel from 5.10 to 7.3, with its syscall fallbacks (`clone3`,
//! `CLONE_INTO_CGROUP`, `openat2`, pidfd) exercised, and on pure cgroup v1 and
//! pure cgroup v2. So the matrix is:
//!
//! | kernel series | where it comes from (Debian)                               | v1 | v2 |
//! |---------------|------------------------------------------------------------|----|----|
//! | 5.10          | bullseye-security, `linux-image-5.10.0-N-amd64`            | ✓  | ✓  |
//! | 6.1           | bookworm(-security), `linux-image-6.1.0-N-amd64`           | ✓  | ✓  |
//! | 6.12          | trixie(-security), bookworm-backports/-security, `linux-image-6.12.P+debN-amd64` | partial¹ | ✓ |
//! | 7.3           | trixie-backports, split into `linux-binary-*`, `linux-modules-*`, `linux-base-*` | partial¹ | ✓ |
//!
//! ¹ Debian builds 6.12 and later without `CONFIG_MEMCG_V1` and `CONFIG_CPUSETS_V1`:
//! a v1 guest has no `memory` or `cpuset` hierarchy. Tests needing them are *not
//! applicable* there, never failures (see [`not_applicable`]). Beware: 6.12 still
//! lists `memory` and `cpuset` as enabled in `/proc/cgroups` although mounting them
//! as v1 hierarchies fails (7.3 no longer lists them), so a v1 guest init must go
//! by whether each `mount -t cgroup -o <controller>` succeeds. 5.10 has no `misc`
//! controller (added in 5.13) in either mode.
//!
//! A [`Cell`] is one (kernel, cgroup mode) pair; [`matrix`] enumerates them.
//!
//! # The plan, and what this crate provides
//!
//! 1. **Kernels** ([`kernels`]): a private apt setup under the cache dir (its own
//!    `sources.list`, `APT_CONFIG`, state and cache; the host's apt is never read
//!    or written), `apt-get update`, pick the newest package of each series from the
//!    downloaded `Packages` lists by Debian version order, `apt-get download`, and
//!    `dpkg -x` into the cache. The result is a [`kernels::Kernel`]: the `vmlinuz`,
//!    the modules directory and the kernel `config`.
//! 2. **Modules** ([`modules`]): Debian ships `overlay`, `veth`, `bridge` (+`llc`,
//!    `stp`), `9p` (+`9pnet`, `9pnet_virtio`, `netfs`) as modules but no
//!    `modules.dep` (depmod runs in the postinst). The insmod order is resolved
//!    from each module's `.modinfo` `depends=` and `modules.builtin`; `.ko.xz` is
//!    decompressed on the host so the guest's busybox `insmod` loads plain ELF.
//! 3. **Initramfs** ([`initramfs`]): a pure-Rust newc cpio writer. A base archive
//!    (busybox-static with every applet, the modules) is cached per kernel; each
//!    run appends an uncompressed cpio (the test binaries and their libraries at
//!    their host paths, the rootfs fixture, the `/init`), which the kernel
//!    unpacks on top.
//! 4. **vmlinux** ([`vmlinux`]): the uncompressed ELF kernel extracted once from the
//!    bzImage; under TCG it boots about twice as fast as the `vmlinuz`.
//! 5. **Guest** ([`guest`]): the `/init` script. It leaves the initramfs root
//!    (so `pivot_root` works), mounts cgroup2 on `/sys/fs/cgroup` (v2) or a
//!    tmpfs with one `cgroup` hierarchy per controller of `/proc/cgroups` that
//!    mounts (v1), loads the modules and runs each test binary.
//! 6. **Boot** ([`qemu`]): `qemu-system-x86_64 -accel tcg,thread=single -kernel
//!    vmlinux -initrd base+run.cpio`, with a timeout; results come back on a
//!    second serial port.
//! 7. **Verdict** ([`results`]): markers and libtest JSON events → passed,
//!    failed (with the failed tests' output) or not applicable. QEMU exits 0
//!    on a guest panic too, so the verdict comes from the markers only; a
//!    missing end marker fails the cell. Whether a v1 cell is applicable is
//!    decided in the guest, from which hierarchies mount.
//!
//! `cargo xtask vm-test` (in `xtask/src/vm_test.rs`) ties these together.
//!
//! Caching: everything lives under one cache dir (by default `target/vm-cache`,
//! see [`default_cache_dir`]). Nothing here needs the network except
//! [`kernels::AptRoot::update`] and [`kernels::AptRoot::download`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod compress;
pub mod error;
pub mod guest;
pub mod initramfs;
pub mod kernels;
pub mod modules;
pub mod qemu;
pub mod results;
pub mod vmlinux;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use error::{Error, Result};

/// A kernel series of the matrix: the `major.minor` of an upstream kernel for
/// which Debian publishes a maintained package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KernelSeries {
    /// 5.10, Debian 11 bullseye (LTS, from bullseye-security).
    V5_10,
    /// 6.1, Debian 12 bookworm.
    V6_1,
    /// 6.12, Debian 13 trixie (also bookworm-backports).
    V6_12,
    /// 7.3, trixie-backports.
    V7_3,
}

impl KernelSeries {
    /// Every series, oldest first.
    pub const ALL: [KernelSeries; 4] = [
        KernelSeries::V5_10,
        KernelSeries::V6_1,
        KernelSeries::V6_12,
        KernelSeries::V7_3,
    ];

    /// `(major, minor)`.
    pub fn major_minor(self) -> (u32, u32) {
        match self {
            KernelSeries::V5_10 => (5, 10),
            KernelSeries::V6_1 => (6, 1),
            KernelSeries::V6_12 => (6, 12),
            KernelSeries::V7_3 => (7, 3),
        }
    }

    /// `"5.10"`, `"6.1"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            KernelSeries::V5_10 => "5.10",
            KernelSeries::V6_1 => "6.1",
            KernelSeries::V6_12 => "6.12",
            KernelSeries::V7_3 => "7.3",
        }
    }

    /// The cgroup v1 controllers this series' Debian kernel is built without.
    ///
    /// 6.12 and later: `CONFIG_MEMCG_V1` and `CONFIG_CPUSETS_V1` are off, so the
    /// `memory` and `cpuset` controllers exist only on cgroup v2. Checked against
    /// the packages' `config` files (see [`kernels::v1_controllers_disabled`]).
    pub fn missing_v1_controllers(self) -> &'static [&'static str] {
        match self {
            KernelSeries::V5_10 | KernelSeries::V6_1 => &[],
            KernelSeries::V6_12 | KernelSeries::V7_3 => &["memory", "cpuset"],
        }
    }
}

impl fmt::Display for KernelSeries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KernelSeries {
    type Err = Error;

    /// Parses `"5.10"`, `"6.1"`, `"6.12"` or `"7.3"`.
    fn from_str(s: &str) -> Result<Self> {
        KernelSeries::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| {
                Error::NotFound(format!("kernel series {s:?} (known: 5.10, 6.1, 6.12, 7.3)"))
            })
    }
}

/// How the guest's init mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CgroupMode {
    /// Legacy: a tmpfs on `/sys/fs/cgroup` with one `cgroup` hierarchy per controller.
    V1,
    /// Unified: `cgroup2` on `/sys/fs/cgroup`.
    V2,
}

impl CgroupMode {
    /// Both modes.
    pub const ALL: [CgroupMode; 2] = [CgroupMode::V1, CgroupMode::V2];

    /// `"v1"` or `"v2"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupMode::V1 => "v1",
            CgroupMode::V2 => "v2",
        }
    }
}

impl fmt::Display for CgroupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CgroupMode {
    type Err = Error;

    /// Parses `"v1"` or `"v2"` (also `"1"`/`"2"`).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "v1" | "1" => Ok(CgroupMode::V1),
            "v2" | "2" => Ok(CgroupMode::V2),
            other => Err(Error::NotFound(format!(
                "cgroup mode {other:?} (known: v1, v2)"
            ))),
        }
    }
}

/// One cell of the matrix: a guest booted with a kernel of `kernel`'s series and
/// cgroups mounted in `cgroup` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cell {
    /// The kernel series.
    pub kernel: KernelSeries,
    /// The cgroup mode the guest's init sets up.
    pub cgroup: CgroupMode,
}

impl Cell {
    /// The cgroup v1 controllers that this cell's guest lacks (empty for v2 cells).
    pub fn missing_controllers(&self) -> &'static [&'static str] {
        match self.cgroup {
            CgroupMode::V1 => self.kernel.missing_v1_controllers(),
            CgroupMode::V2 => &[],
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kernel, self.cgroup)
    }
}

/// Every `(kernel, mode)` cell, in the order given (kernels outer, modes inner),
/// without duplicates.
pub fn matrix(kernels: &[KernelSeries], modes: &[CgroupMode]) -> Vec<Cell> {
    let mut cells = Vec::with_capacity(kernels.len() * modes.len());
    for &kernel in kernels {
        for &cgroup in modes {
            let cell = Cell { kernel, cgroup };
            if !cells.contains(&cell) {
                cells.push(cell);
            }
        }
    }
    cells
}

/// Why part of `cell` is not applicable, if it is: on 6.12 and 7.3 in v1 mode the
/// `memory` and `cpuset` controllers do not exist. The cell still boots and runs
/// everything else; tests that need those controllers are reported as *not
/// applicable*, never as failures. `None` means every test applies.
pub fn not_applicable(cell: &Cell) -> Option<&'static str> {
    if cell.missing_controllers().is_empty() {
        return None;
    }
    Some(
        "cgroup v1 memory and cpuset controllers are not built \
         (CONFIG_MEMCG_V1 and CONFIG_CPUSETS_V1 are off in Debian's 6.12+ kernels)",
    )
}

/// The cache dir for kernels, packages and initramfs images: `$BERTH_VM_CACHE`
/// if set, else `target/vm-cache` of this workspace (honouring `CARGO_TARGET_DIR`).
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_VM_CACHE") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest.parent().unwrap_or(manifest).join("target")
        });
    target.join("vm-cache")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_is_kernel_major_without_duplicates() {
        let cells = matrix(
            &[KernelSeries::V6_1, KernelSeries::V7_3, KernelSeries::V6_1],
            &CgroupMode::ALL,
        );
        let names: Vec<String> = cells.iter().map(Cell::to_string).collect();
        assert_eq!(names, ["6.1/v1", "6.1/v2", "7.3/v1", "7.3/v2"]);
        assert_eq!(matrix(&KernelSeries::ALL, &CgroupMode::ALL).len(), 8);
        assert!(matrix(&[], &CgroupMode::ALL).is_empty());
    }

    #[test]
    fn not_applicable_only_for_new_kernels_on_v1() {
        for cell in matrix(&KernelSeries::ALL, &CgroupMode::ALL) {
            let expected = cell.cgroup == CgroupMode::V1
                && matches!(cell.kernel, KernelSeries::V6_12 | KernelSeries::V7_3);
            assert_eq!(not_applicable(&cell).is_some(), expected, "{cell}");
        }
        let cell = Cell {
            kernel: KernelSeries::V7_3,
            cgroup: CgroupMode::V1,
        };
        assert_eq!(cell.missing_controllers(), ["memory", "cpuset"]);
    }

    #[test]
    fn parse_and_display() {
        for k in KernelSeries::ALL {
            assert_eq!(k.as_str().parse::<KernelSeries>().unwrap(), k);
        }
        assert!("6.2".parse::<KernelSeries>().is_err());
        assert_eq!("v2".parse::<CgroupMode>().unwrap(), CgroupMode::V2);
        assert_eq!("1".parse::<CgroupMode>().unwrap(), CgroupMode::V1);
        assert!("v3".parse::<CgroupMode>().is_err());
    }
}
