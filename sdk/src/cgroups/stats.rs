//! One sample of a cgroup's usage, in the shape runc's `events --stats`
//! prints (its `data` object), read through cgroups-rs.

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
        let s = self.manager()?.stats();
        let acct = s.cpu.cpu_acct.unwrap_or_default();
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
        Ok(Stats {
            cpu: CpuStats {
                usage: CpuUsage {
                    total: acct.total_usage,
                    percpu: acct.usage_percpu,
                    kernel: acct.system_usage,
                    user: acct.user_usage,
                },
                throttling: Throttling {
                    periods: thr.periods,
                    throttled_periods: thr.throttled_periods,
                    throttled_time: thr.throttled_time,
                },
            },
            memory: MemoryStats {
                cache: s.memory.cache,
                usage: usage(s.memory.memory),
                swap: usage(s.memory.memory_swap),
            },
            pids: PidsStats {
                current: s.pids.current,
                limit: s.pids.limit,
            },
        })
    }
}
