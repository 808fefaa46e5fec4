//! One sample of a cgroup's usage, in the shape runc's `events --stats`
//! prints (its `data` object).
//!
//! On v1 and hybrid hosts a [`StatsReader`] opens the dozen files a sample
//! needs once and re-reads them with `pread`: cgroups-rs's manager re-parses
//! the mount table and reads every file of every controller (blkio,
//! hugetlb, …) per sample, about a millisecond, which made watching 100
//! containers every 100 ms cost a whole core. On v2 samples are read
//! through cgroups-rs.

use std::fs::File;
use std::os::unix::fs::FileExt;

use cgroups_rs::manager::Manager;
use serde::Serialize;

use super::{host, Cgroup, Layout};
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
        self.stats_reader().sample()
    }

    /// A reader for repeated samples of this cgroup (see [`StatsReader`]).
    pub fn stats_reader(&self) -> StatsReader {
        let source = match self.layout {
            Layout::V2 => Source::Manager(self.path.clone()),
            Layout::V1 | Layout::Hybrid => Source::V1(Box::new(V1Files::open(&self.path))),
        };
        StatsReader {
            source,
            buf: Vec::with_capacity(4096),
        }
    }

    /// One sample through cgroups-rs's manager (v2 hosts).
    fn manager_stats(&self) -> Result<Stats> {
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

/// Reads samples of one cgroup again and again. On v1 and hybrid hosts it
/// keeps the files a sample needs open, so that a sample is a `pread` of
/// each; a file that does not exist (no swap accounting, a controller not
/// mounted) reads as zero, as with cgroups-rs.
#[derive(Debug)]
pub struct StatsReader {
    source: Source,
    buf: Vec<u8>,
}

#[derive(Debug)]
enum Source {
    /// v2: through cgroups-rs, from the cgroup at this path.
    Manager(String),
    /// v1 and hybrid: the open files.
    V1(Box<V1Files>),
}

/// The v1 files of one sample.
#[derive(Debug)]
struct V1Files {
    cpuacct_usage: Option<File>,
    cpuacct_usage_percpu: Option<File>,
    cpuacct_stat: Option<File>,
    cpu_stat: Option<File>,
    memory_stat: Option<File>,
    /// `memory.` then `memory.memsw.`: usage, max usage, limit, failcnt.
    memory: [[Option<File>; 4]; 2],
    pids_current: Option<File>,
    pids_max: Option<File>,
}

impl V1Files {
    /// Opens the files of the cgroup `path` in the hierarchies of the
    /// `cpuacct`, `cpu`, `memory` and `pids` controllers.
    fn open(path: &str) -> V1Files {
        let dir = |controller: &str| {
            host()
                .mounts
                .iter()
                .find(|m| m.is_v1() && m.has_option(controller))
                .map(|m| m.mount_point.join(path))
        };
        let (cpuacct, cpu, memory, pids) = (dir("cpuacct"), dir("cpu"), dir("memory"), dir("pids"));
        let open = |dir: &Option<std::path::PathBuf>, file: &str| {
            dir.as_ref().and_then(|d| File::open(d.join(file)).ok())
        };
        let counters = |prefix: &str| {
            [
                "usage_in_bytes",
                "max_usage_in_bytes",
                "limit_in_bytes",
                "failcnt",
            ]
            .map(|f| open(&memory, &format!("{prefix}{f}")))
        };
        V1Files {
            cpuacct_usage: open(&cpuacct, "cpuacct.usage"),
            cpuacct_usage_percpu: open(&cpuacct, "cpuacct.usage_percpu"),
            cpuacct_stat: open(&cpuacct, "cpuacct.stat"),
            cpu_stat: open(&cpu, "cpu.stat"),
            memory_stat: open(&memory, "memory.stat"),
            memory: [counters("memory."), counters("memory.memsw.")],
            pids_current: open(&pids, "pids.current"),
            pids_max: open(&pids, "pids.max"),
        }
    }
}

impl StatsReader {
    /// Reads one sample now.
    pub fn sample(&mut self) -> Result<Stats> {
        let files = match &self.source {
            Source::Manager(path) => return Cgroup::open(path)?.manager_stats(),
            Source::V1(files) => files,
        };
        let buf = &mut self.buf;
        let mut memory = |i: usize| {
            let [usage, max, limit, failcnt] = &files.memory[i];
            MemoryUsage {
                usage: number(read(usage, buf)),
                max: number(read(max, buf)),
                limit: number(read(limit, buf)),
                failcnt: number(read(failcnt, buf)),
            }
        };
        let (usage, swap) = (memory(0), memory(1));
        let pids = PidsStats {
            current: number(read(&files.pids_current, buf)),
            // "max" (no limit) reads as 0, as cgroups-rs reports it.
            limit: number(read(&files.pids_max, buf)),
        };
        let cache = field(read(&files.memory_stat, buf), "cache");
        let total = number(read(&files.cpuacct_usage, buf));
        let percpu = read(&files.cpuacct_usage_percpu, buf)
            .split_ascii_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let acct = read(&files.cpuacct_stat, buf);
        let (user, kernel) = (field(acct, "user"), field(acct, "system"));
        let stat = read(&files.cpu_stat, buf);
        let throttling = Throttling {
            periods: field(stat, "nr_periods"),
            throttled_periods: field(stat, "nr_throttled"),
            throttled_time: field(stat, "throttled_time"),
        };
        Ok(Stats {
            cpu: CpuStats {
                usage: CpuUsage {
                    total,
                    percpu,
                    kernel,
                    user,
                },
                throttling,
            },
            memory: MemoryStats { cache, usage, swap },
            pids,
        })
    }
}

/// The whole content of `file` as text (`""` if it is absent or
/// unreadable), read from offset 0 into `buf`.
fn read<'b>(file: &Option<File>, buf: &'b mut Vec<u8>) -> &'b str {
    buf.clear();
    let Some(f) = file else { return "" };
    loop {
        let len = buf.len();
        if buf.capacity() - len < 1024 {
            buf.reserve(4096);
        }
        buf.resize(buf.capacity(), 0);
        let room = buf.len() - len;
        match f.read_at(&mut buf[len..], len as u64) {
            Ok(n) => {
                buf.truncate(len + n);
                // A short read of a cgroup (or regular) file is its end.
                if n < room {
                    break;
                }
            }
            Err(_) => {
                buf.clear();
                break;
            }
        }
    }
    std::str::from_utf8(buf).unwrap_or("")
}

/// A file holding one number; 0 if it holds anything else (e.g. `max`).
fn number<T: std::str::FromStr + Default>(text: &str) -> T {
    text.trim().parse().unwrap_or_default()
}

/// The value of `key` in a flat-keyed file (`key value` lines); 0 if absent.
fn field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod reader_tests {
    use super::*;

    #[test]
    fn flat_keyed_and_single_value_files_parse() {
        let stat = "nr_periods 12\nnr_throttled 3\nthrottled_time 4500\n";
        assert_eq!(field(stat, "nr_periods"), 12);
        assert_eq!(field(stat, "throttled_time"), 4500);
        assert_eq!(field(stat, "nr"), 0);
        assert_eq!(
            field("cache 4096\nrss 8192\ntotal_cache 1\n", "cache"),
            4096
        );
        assert_eq!(number::<u64>("42\n"), 42);
        assert_eq!(number::<i64>("max\n"), 0);
        assert_eq!(number::<i64>("9223372036854771712\n"), 9223372036854771712);
    }

    #[test]
    fn reads_whole_files_larger_than_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let text: String = (0..3000).map(|i| format!("k{i} {i}\n")).collect();
        std::fs::write(&p, &text).unwrap();
        let f = Some(File::open(&p).unwrap());
        let mut buf = Vec::new();
        assert_eq!(read(&f, &mut buf), text);
        assert_eq!(field(read(&f, &mut buf), "k2999"), 2999);
        assert_eq!(read(&None, &mut buf), "");
    }
}
