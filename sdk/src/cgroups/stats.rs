//! One sample of a cgroup's usage, in the shape runc's `events --stats`
//! prints (its `data` object).
//!
//! On v1 and hybrid hosts a [`StatsReader`] opens the files a sample needs
//! once and re-reads them with `pread`: cgroups-rs's manager re-parses the
//! mount table and reads every file of every controller per sample, about a
//! millisecond, which made watching 100 containers every 100 ms cost a whole
//! core. On v2 a usage sample (see [`StatsDetail::Usage`]) is read the
//! same way; a full one through cgroups-rs (its manager kept per cgroup),
//! with CPU time and `anon`/`file` memory from the v2 files it does not
//! read.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use cgroups_rs::manager::Manager;
use serde::Serialize;

use super::{host, Cgroup, Layout};
use crate::error::Result;

/// A sample of a container's resource usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
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

/// How much of a [`Stats`] sample to read.
///
/// On v1 and hybrid hosts each part is a file (or four) of its own, and
/// reading a cgroup file costs about 2 µs when the caches are cold, as
/// they are when samples are 100 ms apart: a full sample reads 16 files on
/// a host with swap accounting, a usage sample 6 (15 and 5 while no swap
/// is in use on the host), and on a hybrid host one less: its CPU time
/// comes from the cgroup2 `cpu.stat`. On v2 hosts a usage sample reads 4
/// files (5 while swap is in use on the host), each kept open; a full one
/// opens and reads every controller's files anew through cgroups-rs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatsDetail {
    /// Everything [`Stats`] holds, as runc's `events --stats` reports it.
    #[default]
    Full,
    /// Only what a container consumes, as a dashboard plots it: CPU time
    /// (total, user, system), memory and memory+swap usage, page cache and
    /// rss, and the process count. Limits and what they cause (CFS
    /// throttling, failure counts), peaks, block I/O and huge pages read as
    /// zero.
    ///
    /// CPU time is read as the fewest files give it. On a v1 host, from
    /// `cpuacct.usage_percpu` and `cpuacct.usage_all`, with the per-CPU
    /// times. On a hybrid host, from the container's cgroup2 `cpu.stat`
    /// (one file, microseconds), as on v2: no per-CPU times, and user and
    /// system time split by the scheduler's precise accounting where v1's
    /// `cpuacct` counts clock ticks (as [`Full`](Self::Full) does).
    ///
    /// On a v2 host: `cpu.stat`, `memory.current`, `memory.stat` and
    /// `pids.current`, each open once and read with one `pread` a sample,
    /// and `memory.swap.current` while some swap is in use on the host.
    Usage,
}

/// Block I/O per device and operation, as the kernel counts it for the
/// cgroup and its children (v1 `blkio.*_recursive`, v2 `io.stat`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct CpuStats {
    /// Usage.
    pub usage: CpuUsage,
    /// Throttling by the CFS quota.
    pub throttling: Throttling,
}

/// CPU usage in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
pub struct MemoryStats {
    /// Page cache.
    pub cache: u64,
    /// Anonymous memory (`rss` on v1, `anon` on v2).
    pub rss: u64,
    /// Memory (without swap).
    pub usage: MemoryUsage,
    /// Memory + swap. (v2 counts swap apart: its usage here is
    /// `memory.current` plus `memory.swap.current`, as runc reports it.)
    pub swap: MemoryUsage,
}

/// One memory counter.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
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
#[non_exhaustive]
pub struct PidsStats {
    /// Processes now.
    pub current: u64,
    /// The limit (0: none).
    pub limit: i64,
}

impl Cgroup {
    /// Reads one sample of the cgroup's usage. For repeated samples,
    /// [`Cgroup::into_stats_reader`] is cheaper.
    pub fn stats(&self) -> Result<Stats> {
        match self.layout {
            Layout::V2 => self.manager_stats(),
            Layout::V1 | Layout::Hybrid => V1Files::open_with(&self.path, StatsDetail::Full, None)
                .sample(&mut Vec::new(), Swap::on_host()),
        }
    }

    /// A reader for repeated full samples of this cgroup (see
    /// [`StatsReader`]).
    pub fn into_stats_reader(self) -> StatsReader {
        self.into_stats_reader_with(StatsDetail::Full)
    }

    /// A reader for repeated samples of this cgroup with `detail`.
    pub fn into_stats_reader_with(self, detail: StatsDetail) -> StatsReader {
        let source = match self.layout {
            Layout::V2 if detail == StatsDetail::Usage => {
                Source::V2Usage(Box::new(V2UsageFiles::open(&self.dirs[0])))
            }
            Layout::V2 => Source::Manager(Box::new(self)),
            Layout::V1 | Layout::Hybrid => Source::V1(Box::new(V1Files::open_with(
                &self.path,
                detail,
                self.cgroup2_dir().map(PathBuf::as_path),
            ))),
        };
        StatsReader {
            source,
            buf: Vec::new(),
        }
    }

    /// One sample through cgroups-rs's manager (v2 hosts).
    fn manager_stats(&self) -> Result<Stats> {
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
        let memory = usage(s.memory.memory);
        let (mut cache, mut rss) = (s.memory.cache, s.memory.rss);
        if self.layout == Layout::V2 {
            // v2's memory.stat says `file` and `anon` for v1's `cache` and `rss`.
            [cache, rss] = fields(&self.read_v2("memory.stat"), ["file", "anon"]);
        }
        Ok(Stats {
            cpu: CpuStats {
                usage: self.cpu_usage(),
                throttling: if self.layout == Layout::V2 {
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
                swap: {
                    let mut swap = usage(s.memory.memory_swap);
                    if self.layout == Layout::V2 {
                        // `memory.swap.current`: swap alone.
                        swap.usage += memory.usage;
                    }
                    swap
                },
                usage: memory,
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

/// Reads samples of one cgroup again and again. On v1 and hybrid hosts,
/// and for usage samples on v2, it keeps the files a sample needs open, so
/// that a sample is a `pread` of each; a file that does not exist (no swap
/// accounting, a controller not enabled) reads as zero, as with cgroups-rs.
#[derive(Debug)]
pub struct StatsReader {
    source: Source,
    buf: Vec<u8>,
}

#[derive(Debug)]
enum Source {
    /// v2: through cgroups-rs's manager, kept in the cgroup handle.
    Manager(Box<Cgroup>),
    /// v1 and hybrid: the open files.
    V1(Box<V1Files>),
    /// v2, usage samples: the open files.
    V2Usage(Box<V2UsageFiles>),
}

/// The v2 files of a usage sample.
#[derive(Debug)]
struct V2UsageFiles {
    cpu_stat: Option<File>,
    memory_current: Option<File>,
    memory_stat: Option<File>,
    /// Swap alone, where v1's `memory.memsw.*` count memory and swap.
    memory_swap_current: Option<File>,
    pids_current: Option<File>,
}

impl V2UsageFiles {
    /// Opens the files of the v2 cgroup directory `dir`.
    fn open(dir: &Path) -> V2UsageFiles {
        let open = |file: &str| File::open(dir.join(file)).ok();
        V2UsageFiles {
            cpu_stat: open("cpu.stat"),
            memory_current: open("memory.current"),
            memory_stat: open("memory.stat"),
            memory_swap_current: open("memory.swap.current"),
            pids_current: open("pids.current"),
        }
    }

    /// Reads one usage sample, with `buf` to read into. With no swap in
    /// use on the host, the cgroup has none: `memory.swap.current` is not
    /// read.
    fn sample(&self, buf: &mut Vec<u8>, host_swap: Swap) -> Stats {
        let [total, user, kernel] = cgroup2_cpu_times(read(&self.cpu_stat, buf));
        let memory: u64 = number(read(&self.memory_current, buf));
        let swap: u64 = match host_swap {
            Swap::Unused => 0,
            Swap::InUse => number(read(&self.memory_swap_current, buf)),
        };
        // v2's memory.stat says `file` and `anon` for v1's `cache` and `rss`.
        let [cache, rss] = fields(read(&self.memory_stat, buf), ["file", "anon"]);
        Stats {
            cpu: CpuStats {
                usage: CpuUsage {
                    total,
                    percpu: Vec::new(),
                    kernel,
                    user,
                },
                throttling: Throttling::default(),
            },
            memory: MemoryStats {
                cache,
                rss,
                usage: MemoryUsage {
                    usage: memory,
                    ..MemoryUsage::default()
                },
                swap: MemoryUsage {
                    usage: memory + swap,
                    ..MemoryUsage::default()
                },
            },
            pids: PidsStats {
                current: number(read(&self.pids_current, buf)),
                limit: 0,
            },
            blkio: BlkioStats::default(),
            hugetlb: BTreeMap::new(),
        }
    }
}

/// The v1 files of one sample.
#[derive(Debug)]
struct V1Files {
    /// A hybrid host's cgroup2 `cpu.stat` (µs), for a usage sample: total,
    /// user and system time in one file, in place of the `cpuacct` ones.
    cgroup2_cpu_stat: Option<File>,
    /// Per-CPU time (ns): the total is their sum, as the kernel sums them
    /// for `cpuacct.usage`.
    cpuacct_usage_percpu: Option<File>,
    /// Per-CPU user and system time (ns; 4.7+): their sums are what
    /// `cpuacct.usage_user` and `cpuacct.usage_sys` print, so one file
    /// stands for those two.
    cpuacct_usage_all: Option<File>,
    /// Clock ticks of user and system time, on kernels without
    /// `cpuacct.usage_all`.
    cpuacct_stat: Option<File>,
    cpu_stat: Option<File>,
    memory_stat: Option<File>,
    /// `memory.` then `memory.memsw.`: usage, max usage, limit, failcnt.
    memory: [[Option<File>; 4]; 2],
    pids_current: Option<File>,
    pids_max: Option<File>,
    /// Bytes and operations per device: `blkio.io_service*_recursive`
    /// where the kernel has them (CFQ, before 5.0), else the throttling
    /// layer's counts, which every I/O scheduler keeps.
    blkio: [Option<File>; 2],
    /// Per huge page size: usage, max usage, failcnt.
    hugetlb: Vec<(String, [Option<File>; 3])>,
}

impl V1Files {
    /// Opens the files of the cgroup `path` that a sample with `detail`
    /// reads, in the hierarchies of the `cpuacct`, `cpu`, `memory`, `pids`,
    /// `blkio` and `hugetlb` controllers. The files a detail leaves out
    /// stay closed, and read as zero. A usage sample reads CPU time from
    /// the `cpu.stat` of `cgroup2_dir` (a hybrid host's cgroup2 directory
    /// of the cgroup) when it has one.
    fn open_with(path: &str, detail: StatsDetail, cgroup2_dir: Option<&Path>) -> V1Files {
        let full = detail == StatsDetail::Full;
        // Without the cpu controller in the cgroup2 hierarchy, its
        // `cpu.stat` still counts every task of the cgroup: the kernel
        // accounts CPU time to each task's cgroup2 cgroup on every host
        // that mounts cgroup2.
        let cgroup2_cpu_stat = cgroup2_dir
            .filter(|_| !full)
            .and_then(|d| File::open(d.join("cpu.stat")).ok());
        let dir = |controller: &str| {
            host()
                .mounts
                .iter()
                .find(|m| m.is_v1() && m.has_option(controller))
                .map(|m| m.mount_point.join(path))
        };
        let cpuacct = if cgroup2_cpu_stat.is_some() {
            None
        } else {
            dir("cpuacct")
        };
        let (cpu, memory, pids) = (dir("cpu"), dir("memory"), dir("pids"));
        let (blkio, hugetlb) = if full {
            (dir("blkio"), dir("hugetlb"))
        } else {
            (None, None)
        };
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
            .map(|f| {
                let wanted = full || f == "usage_in_bytes";
                open(if wanted { &memory } else { &None }, &format!("{prefix}{f}"))
            })
        };
        let usage_all = open(&cpuacct, "cpuacct.usage_all");
        V1Files {
            cgroup2_cpu_stat,
            cpuacct_usage_percpu: open(&cpuacct, "cpuacct.usage_percpu"),
            cpuacct_stat: usage_all
                .is_none()
                .then(|| open(&cpuacct, "cpuacct.stat"))
                .flatten(),
            cpuacct_usage_all: usage_all,
            cpu_stat: open(if full { &cpu } else { &None }, "cpu.stat"),
            memory_stat: open(&memory, "memory.stat"),
            memory: [counters("memory."), counters("memory.memsw.")],
            pids_current: open(&pids, "pids.current"),
            pids_max: open(if full { &pids } else { &None }, "pids.max"),
            blkio: ["io_service_bytes_recursive", "io_serviced_recursive"].map(|f| {
                open(&blkio, &format!("blkio.{f}"))
                    .or_else(|| open(&blkio, &format!("blkio.throttle.{f}")))
            }),
            hugetlb: super::validate::HostLimits::get()
                .hugepage_sizes
                .iter()
                .map(|size| {
                    let files = ["usage_in_bytes", "max_usage_in_bytes", "failcnt"]
                        .map(|f| open(&hugetlb, &format!("hugetlb.{size}.{f}")));
                    (size.clone(), files)
                })
                .filter(|(_, files)| files[0].is_some())
                .collect(),
        }
    }
}

impl StatsReader {
    /// Reads one sample now.
    pub fn sample(&mut self) -> Result<Stats> {
        match &self.source {
            Source::Manager(cgroup) => cgroup.manager_stats(),
            Source::V1(files) => files.sample(&mut self.buf, Swap::on_host()),
            Source::V2Usage(files) => Ok(files.sample(&mut self.buf, Swap::on_host())),
        }
    }

    /// Reads one sample now into `buf`, which a caller sampling many
    /// cgroups in turn shares between them (one buffer stays in the CPU's
    /// cache where a buffer per cgroup would not), with `swap` looked up
    /// once for all of them.
    pub(crate) fn sample_into(&mut self, buf: &mut Vec<u8>, swap: Swap) -> Result<Stats> {
        match &self.source {
            Source::Manager(cgroup) => cgroup.manager_stats(),
            Source::V1(files) => files.sample(buf, swap),
            Source::V2Usage(files) => Ok(files.sample(buf, swap)),
        }
    }
}

/// Whether any swap is in use on the host, which decides whether v1's
/// memory+swap usage must be read or is the memory usage itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Swap {
    /// Some page of some process is in swap (or `sysinfo` failed).
    InUse,
    /// No page is in swap: all swap is free, or there is none (`sysinfo`).
    Unused,
}

impl Swap {
    /// The host's swap now: one `sysinfo` call.
    pub(crate) fn on_host() -> Swap {
        match nix::sys::sysinfo::sysinfo() {
            Ok(info) if info.swap_total() == info.swap_free() => Swap::Unused,
            _ => Swap::InUse,
        }
    }
}

impl V1Files {
    /// Total, per-CPU, user and system time (ns), from two files where
    /// the kernel has four: the total is the sum of `cpuacct.usage_percpu`
    /// and user and system time the column sums of `cpuacct.usage_all`,
    /// exactly as the kernel computes `cpuacct.usage`, `cpuacct.usage_user`
    /// and `cpuacct.usage_sys`. (User and system time are the tick-based
    /// `cpustat` times in all of them, so they need not add up to the
    /// total.) Or, with a cgroup2 `cpu.stat` open, total, user and system
    /// time from it, and no per-CPU times.
    fn cpu_usage(&self, buf: &mut Vec<u8>) -> (u64, Vec<u64>, u64, u64) {
        if self.cgroup2_cpu_stat.is_some() {
            let [total, user, kernel] = cgroup2_cpu_times(read(&self.cgroup2_cpu_stat, buf));
            return (total, Vec::new(), user, kernel);
        }
        let percpu: Vec<u64> = read(&self.cpuacct_usage_percpu, buf)
            .split_ascii_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let total = percpu.iter().sum();
        let (user, kernel) = if self.cpuacct_usage_all.is_some() {
            user_system_columns(read(&self.cpuacct_usage_all, buf))
        } else {
            // Clock ticks on kernels without the per-CPU split.
            let acct = read(&self.cpuacct_stat, buf);
            let ns_per_tick = 1_000_000_000 / clock_ticks();
            (
                field(acct, "user") * ns_per_tick,
                field(acct, "system") * ns_per_tick,
            )
        };
        (total, percpu, user, kernel)
    }

    /// Reads one sample from the open files, with `buf` to read into.
    ///
    /// With no swap in use on the host, memory+swap usage is not read:
    /// v1 charges every page to `memsw` when it charges it to `memory` and
    /// uncharges both together, so the two differ only by the cgroup's
    /// pages in swap.
    fn sample(&self, buf: &mut Vec<u8>, host_swap: Swap) -> Result<Stats> {
        let files = self;
        let mut memory = |i: usize, usage_known: Option<u64>| {
            let [usage, max, limit, failcnt] = &files.memory[i];
            MemoryUsage {
                usage: usage_known.unwrap_or_else(|| number(read(usage, buf))),
                max: number(read(max, buf)),
                limit: number(read(limit, buf)),
                failcnt: number(read(failcnt, buf)),
            }
        };
        let usage = memory(0, None);
        let swap_accounted = files.memory[1][0].is_some();
        let swap = memory(
            1,
            (swap_accounted && host_swap == Swap::Unused).then_some(usage.usage),
        );
        let pids = PidsStats {
            current: number(read(&files.pids_current, buf)),
            // "max" (no limit) reads as 0, as cgroups-rs reports it.
            limit: number(read(&files.pids_max, buf)),
        };
        let [cache, rss] = fields(read(&files.memory_stat, buf), ["cache", "rss"]);
        let (total, percpu, user, kernel) = files.cpu_usage(buf);
        let blkio = BlkioStats {
            service_bytes: blkio_entries(read(&files.blkio[0], buf)),
            serviced: blkio_entries(read(&files.blkio[1], buf)),
        };
        let hugetlb = files
            .hugetlb
            .iter()
            .map(|(size, [usage, max, failcnt])| {
                let h = HugetlbStats {
                    usage: number(read(usage, buf)),
                    max: number(read(max, buf)),
                    failcnt: number(read(failcnt, buf)),
                };
                (size.clone(), h)
            })
            .collect();
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
            memory: MemoryStats {
                cache,
                rss,
                usage,
                swap,
            },
            pids,
            blkio,
            hugetlb,
        })
    }
}

/// The whole content of `file` as text (`""` if it is absent or
/// unreadable), read from offset 0 into `buf`. `buf` keeps its length
/// between reads (it only grows), so its bytes are initialised once, not
/// zeroed again for every file of every sample.
fn read<'b>(file: &Option<File>, buf: &'b mut Vec<u8>) -> &'b str {
    let Some(f) = file else { return "" };
    if buf.len() < 4096 {
        buf.resize(4096, 0);
    }
    let mut len = 0;
    loop {
        if buf.len() - len < 1024 {
            buf.resize(buf.len() * 2, 0);
        }
        let room = buf.len() - len;
        match f.read_at(&mut buf[len..], len as u64) {
            Ok(n) => {
                len += n;
                // A short read of a cgroup (or regular) file is its end.
                if n < room {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                len = 0;
                break;
            }
        }
    }
    std::str::from_utf8(&buf[..len]).unwrap_or("")
}

/// A file holding one number; 0 if it holds anything else (e.g. `max`).
fn number<T: std::str::FromStr + Default>(text: &str) -> T {
    text.trim().parse().unwrap_or_default()
}

/// The value of `key` in a flat-keyed file (`key value` lines); 0 if absent.
fn field(text: &str, key: &str) -> u64 {
    let [value] = fields(text, [key]);
    value
}

/// Total, user and system CPU time (ns) from a cgroup2 `cpu.stat` (µs).
fn cgroup2_cpu_times(cpu_stat: &str) -> [u64; 3] {
    fields(cpu_stat, ["usage_usec", "user_usec", "system_usec"]).map(|us| us.saturating_mul(1000))
}

/// The values of `keys` in a flat-keyed file, in one pass over its lines
/// that ends once each is found; 0 for a key absent.
fn fields<const N: usize>(text: &str, keys: [&str; N]) -> [u64; N] {
    let mut values = [0; N];
    let mut found = [false; N];
    let mut left = N;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(' ') else {
            continue;
        };
        let Some(i) = (0..N).find(|&i| !found[i] && keys[i] == k) else {
            continue;
        };
        if let Ok(value) = v.trim().parse() {
            (values[i], found[i]) = (value, true);
            left -= 1;
            if left == 0 {
                break;
            }
        }
    }
    values
}

impl Cgroup {
    /// CPU time in nanoseconds: v2's `cpu.stat` (µs); v1's `cpuacct.usage*`
    /// files (ns), or `cpuacct.stat` (clock ticks) on kernels without the
    /// split ones.
    fn cpu_usage(&self) -> CpuUsage {
        if self.layout == super::Layout::V2 {
            let [total, user, kernel] = cgroup2_cpu_times(&self.read_v2("cpu.stat"));
            return CpuUsage {
                total,
                percpu: Vec::new(),
                kernel,
                user,
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
        // In one pass, in any order; a key absent or not a number is 0.
        assert_eq!(
            fields(v2_cpu, ["system_usec", "usage_usec", "nr", "user_usec"]),
            [500, 1500, 0, 1000]
        );
        assert_eq!(fields("anon x\nanon 7\n", ["anon", "file"]), [7, 0]);
        assert_eq!(capitalized("read"), "Read");
        assert_eq!(capitalized(""), "");
    }
}

/// The sums of the `user` and `system` columns of `cpuacct.usage_all`
/// (`cpu user system` then a line per CPU).
fn user_system_columns(text: &str) -> (u64, u64) {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let column = |name: &str| header.split_ascii_whitespace().position(|c| c == name);
    let (Some(u), Some(s)) = (column("user"), column("system")) else {
        return (0, 0);
    };
    let value = |line: &str, i: usize| -> u64 {
        line.split_ascii_whitespace()
            .nth(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    lines.fold((0, 0), |(user, system), line| {
        (user + value(line, u), system + value(line, s))
    })
}

/// Lines of a v1 `blkio` file (`8:0 Read 4096`; the `Total` line skipped).
fn blkio_entries(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (dev, op, value) = (f.next()?, f.next()?, f.next()?);
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: capitalized(op),
                value: value.parse().ok()?,
            })
        })
        .collect()
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
    fn usage_all_columns_are_summed_per_name() {
        let all = "cpu user system\n0 1200 300\n1 34 5\n";
        assert_eq!(user_system_columns(all), (1234, 305));
        assert_eq!(user_system_columns("cpu system user\n0 1 2\n"), (2, 1));
        assert_eq!(user_system_columns(""), (0, 0));
        assert_eq!(user_system_columns("cpu\n0\n"), (0, 0));
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
        // A shorter file after a longer one: only its own bytes.
        let small = dir.path().join("small");
        std::fs::write(&small, "7\n").unwrap();
        assert_eq!(read(&Some(File::open(&small).unwrap()), &mut buf), "7\n");
    }
}
