//! One sample of a cgroup's usage, in the shape runc's `events --stats`
//! prints (its `data` object), read through cgroups-rs.

use std::collections::BTreeMap;

use cgroups_rs::manager::Manager;
use serde::Serialize;

use super::Cgroup;
use crate::error::Result;

/// A sample of a container's resource usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// CPU time.
    pub cpu: CpuStats,
    /// Memory.
    pub memory: MemoryStats,
    /// Processes.
    pub pids: PidsStats,
    /// Block I/O per device.
    pub blkio: BlkioStats,
    /// Huge pages, by page size (`2MB`, `1GB`).
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

/// Block I/O per device and operation, as the kernel counts it for the
/// cgroup and its children (v1 `blkio.*_recursive`, v2 `io.stat`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BlkioStats {
    /// Bytes read and written.
    #[serde(rename = "ioServiceBytesRecursive")]
    pub service_bytes: Vec<BlkioEntry>,
    /// Operations (reads and writes) done.
    #[serde(rename = "ioServicedRecursive")]
    pub serviced: Vec<BlkioEntry>,
}

/// One device's counter for one operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    /// The device's major number.
    pub major: u64,
    /// The device's minor number.
    pub minor: u64,
    /// `Read`, `Write`, `Sync`, `Async`, `Discard` or `Total` (as the kernel
    /// names them on v1; v2 gives `Read`, `Write` and `Discard`).
    pub op: String,
    /// The count.
    pub value: u64,
}

/// Huge page usage of one page size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HugetlbStats {
    /// Bytes in use.
    pub usage: u64,
    /// Highest usage seen (v1 only).
    pub max: u64,
    /// Allocations refused at the limit.
    pub failcnt: u64,
}

/// CPU time, in nanoseconds, and CFS throttling.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuStats {
    /// Usage.
    pub usage: CpuUsage,
    /// Throttling by the CFS quota.
    pub throttling: Throttling,
}

/// CPU usage in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuUsage {
    /// All CPU time.
    pub total: u64,
    /// Per CPU.
    pub percpu: Vec<u64>,
    /// In the kernel.
    pub kernel: u64,
    /// In user space.
    pub user: u64,
}

/// CFS throttling.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Throttling {
    /// Enforcement periods.
    pub periods: u64,
    /// Periods in which the group was throttled.
    #[serde(rename = "throttledPeriods")]
    pub throttled_periods: u64,
    /// Time throttled, in nanoseconds.
    #[serde(rename = "throttledTime")]
    pub throttled_time: u64,
}

/// Memory usage in bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryStats {
    /// Page cache.
    pub cache: u64,
    /// Anonymous memory (`rss` on v1, `anon` on v2).
    pub rss: u64,
    /// Memory (without swap).
    pub usage: MemoryUsage,
    /// Memory + swap.
    pub swap: MemoryUsage,
}

/// One memory counter.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryUsage {
    /// Limit (`u64::MAX`-like values mean none).
    pub limit: i64,
    /// Current usage.
    pub usage: u64,
    /// Highest usage seen.
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// Process counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PidsStats {
    /// Processes now.
    pub current: u64,
    /// The limit (0: none).
    pub limit: i64,
}

impl Cgroup {
    /// Reads one sample of the cgroup's usage.
    pub fn stats(&self) -> Result<Stats> {
        let manager = match self.stats_manager.get() {
            Some(m) => m,
            None => {
                let m = self.manager()?;
                self.stats_manager.get_or_init(|| m)
            }
        };
        let s = manager.stats();
        let thr = s.cpu.cpu_throttling.unwrap_or_default();
        let usage = |m: Option<cgroups_rs::stats::MemoryStats>| {
            let m = m.unwrap_or_default();
            MemoryUsage {
                limit: m.limit,
                usage: m.usage,
                max: m.max_usage,
                failcnt: m.fail_cnt,
            }
        };
        let (mut cache, mut rss) = (s.memory.cache, s.memory.rss);
        if self.layout == super::Layout::V2 {
            // v2's memory.stat says `file` and `anon` for v1's `cache` and `rss`.
            let stat =
                std::fs::read_to_string(self.dirs[0].join("memory.stat")).unwrap_or_default();
            let field = |name: &str| {
                stat.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
                    .unwrap_or(0)
            };
            (cache, rss) = (field("file"), field("anon"));
        }
        Ok(Stats {
            cpu: CpuStats {
                usage: self.cpu_usage(),
                throttling: if self.layout == super::Layout::V2 {
                    let stat = self.read_v2("cpu.stat");
                    Throttling {
                        periods: field(&stat, "nr_periods"),
                        throttled_periods: field(&stat, "nr_throttled"),
                        throttled_time: field(&stat, "throttled_usec") * 1000,
                    }
                } else {
                    Throttling {
                        periods: thr.periods,
                        throttled_periods: thr.throttled_periods,
                        throttled_time: thr.throttled_time,
                    }
                },
            },
            memory: MemoryStats {
                cache,
                rss,
                usage: usage(s.memory.memory),
                swap: usage(s.memory.memory_swap),
            },
            pids: PidsStats {
                current: s.pids.current,
                limit: s.pids.limit,
            },
            blkio: BlkioStats {
                service_bytes: entries(&s.blkio.io_service_bytes_recursive),
                serviced: entries(&s.blkio.io_serviced_recursive),
            },
            hugetlb: s
                .hugetlb
                .iter()
                .map(|(size, h)| {
                    let h = HugetlbStats {
                        usage: h.usage,
                        max: h.max_usage,
                        failcnt: h.fail_cnt,
                    };
                    (size.clone(), h)
                })
                .collect(),
        })
    }
}

impl Cgroup {
    /// CPU time in nanoseconds: v2's `cpu.stat` (µs); v1's `cpuacct.usage*`
    /// files (ns), or `cpuacct.stat` (clock ticks) on kernels without the
    /// split ones.
    fn cpu_usage(&self) -> CpuUsage {
        if self.layout == super::Layout::V2 {
            let stat = self.read_v2("cpu.stat");
            return CpuUsage {
                total: field(&stat, "usage_usec") * 1000,
                percpu: Vec::new(),
                kernel: field(&stat, "system_usec") * 1000,
                user: field(&stat, "user_usec") * 1000,
            };
        }
        let Some(dir) = self.dir_with("cpuacct.usage") else {
            return CpuUsage::default();
        };
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
        let number = |f: &str| read(f).and_then(|s| s.trim().parse::<u64>().ok());
        let (user, kernel) = match (number("cpuacct.usage_user"), number("cpuacct.usage_sys")) {
            (Some(u), Some(k)) => (u, k),
            _ => {
                let stat = read("cpuacct.stat").unwrap_or_default();
                let ns_per_tick = 1_000_000_000 / clock_ticks();
                (
                    field(&stat, "user") * ns_per_tick,
                    field(&stat, "system") * ns_per_tick,
                )
            }
        };
        CpuUsage {
            total: number("cpuacct.usage").unwrap_or(0),
            percpu: read("cpuacct.usage_percpu")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect(),
            kernel,
            user,
        }
    }

    /// A file of the v2 directory, empty if unreadable.
    fn read_v2(&self, file: &str) -> String {
        std::fs::read_to_string(self.dirs[0].join(file)).unwrap_or_default()
    }
}

/// `USER_HZ`, the unit of v1's `cpuacct.stat`.
fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// The value of `name` in a flat-keyed file (`name value` lines), or 0.
fn field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

fn entries(stats: &[cgroups_rs::stats::BlkioStat]) -> Vec<BlkioEntry> {
    stats
        .iter()
        .map(|e| BlkioEntry {
            major: e.major,
            minor: e.minor,
            op: capitalized(&e.op),
            value: e.value,
        })
        .collect()
}

/// `read` as runc spells it: `Read`.
fn capitalized(op: &str) -> String {
    let mut c = op.chars();
    c.next()
        .map(|first| first.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_fields() {
        let v2_cpu = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 2\nthrottled_usec 70\n";
        assert_eq!(field(v2_cpu, "usage_usec"), 1500);
        assert_eq!(field(v2_cpu, "nr_throttled"), 2);
        assert_eq!(field(v2_cpu, "throttled_usec"), 70);
        // A prefix of another key is not that key.
        assert_eq!(field("nr_periods_x 9\n", "nr_periods"), 0);
        assert_eq!(field("", "anon"), 0);
        assert_eq!(capitalized("read"), "Read");
        assert_eq!(capitalized(""), "");
    }
}
