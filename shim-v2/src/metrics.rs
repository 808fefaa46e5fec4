//! The SDK's cgroup stats as containerd's cgroup `Metrics` messages (what
//! `ctr task metrics` decodes): v1's on v1 and hybrid hosts, v2's on a
//! unified host.

use std::collections::BTreeMap;

use containerd_shim::protos::cgroups::metrics::{
    BlkIOEntry, BlkIOStat, CPUStat, CPUUsage, HugetlbStat, MemoryEntry, MemoryStat, Metrics,
    PidsStat, Throttle,
};
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};

use crate::containers::{BlkioEntry, Stats};
use crate::error::{Error, Result};

/// A limit as containerd counts it: no limit is the largest value.
fn limit(l: i64) -> u64 {
    u64::try_from(l).unwrap_or(u64::MAX)
}

/// Converts one sample.
pub fn to_metrics(s: &Stats) -> Metrics {
    let memory = MemoryStat {
        cache: s.memory.cache,
        rss: s.memory.rss,
        total_cache: s.memory.cache,
        total_rss: s.memory.rss,
        usage: MessageField::some(MemoryEntry {
            limit: limit(s.memory.usage.limit),
            usage: s.memory.usage.usage,
            max: s.memory.usage.max,
            failcnt: s.memory.usage.failcnt,
            ..Default::default()
        }),
        swap: MessageField::some(MemoryEntry {
            limit: limit(s.memory.swap.limit),
            usage: s.memory.swap.usage,
            max: s.memory.swap.max,
            failcnt: s.memory.swap.failcnt,
            ..Default::default()
        }),
        ..Default::default()
    };
    let cpu = CPUStat {
        usage: MessageField::some(CPUUsage {
            total: s.cpu.usage.total,
            kernel: s.cpu.usage.kernel,
            user: s.cpu.usage.user,
            per_cpu: s.cpu.usage.percpu.clone(),
            ..Default::default()
        }),
        throttling: MessageField::some(Throttle {
            periods: s.cpu.throttling.periods,
            throttled_periods: s.cpu.throttling.throttled_periods,
            throttled_time: s.cpu.throttling.throttled_time,
            ..Default::default()
        }),
        ..Default::default()
    };
    let pids = PidsStat {
        current: s.pids.current,
        limit: u64::try_from(s.pids.limit).unwrap_or(0),
        ..Default::default()
    };
    let entries = |v: &[BlkioEntry]| -> Vec<BlkIOEntry> {
        v.iter()
            .map(|e| BlkIOEntry {
                op: e.op.clone(),
                major: e.major,
                minor: e.minor,
                value: e.value,
                ..Default::default()
            })
            .collect()
    };
    let blkio = BlkIOStat {
        io_service_bytes_recursive: entries(&s.blkio.service_bytes),
        io_serviced_recursive: entries(&s.blkio.serviced),
        ..Default::default()
    };
    let hugetlb = s
        .hugetlb
        .iter()
        .map(|(size, h)| HugetlbStat {
            usage: h.usage,
            max: h.max,
            failcnt: h.failcnt,
            pagesize: size.clone(),
            ..Default::default()
        })
        .collect();
    Metrics {
        hugetlb,
        pids: MessageField::some(pids),
        cpu: MessageField::some(cpu),
        memory: MessageField::some(memory),
        blkio: MessageField::some(blkio),
        ..Default::default()
    }
}

/// Nanoseconds as microseconds (v2 counts CPU time in those).
fn usec(ns: u64) -> u64 {
    ns / 1000
}

/// Converts one sample to the cgroup v2 message.
pub fn to_metrics_v2(s: &Stats) -> v2::Metrics {
    let cpu = v2::CPUStat {
        usage_usec: usec(s.cpu.usage.total),
        user_usec: usec(s.cpu.usage.user),
        system_usec: usec(s.cpu.usage.kernel),
        nr_periods: s.cpu.throttling.periods,
        nr_throttled: s.cpu.throttling.throttled_periods,
        throttled_usec: usec(s.cpu.throttling.throttled_time),
        ..Default::default()
    };
    let memory = v2::MemoryStat {
        anon: s.memory.rss,
        file: s.memory.cache,
        usage: s.memory.usage.usage,
        usage_limit: limit(s.memory.usage.limit),
        max_usage: s.memory.usage.max,
        swap_usage: s.memory.swap.usage,
        swap_limit: limit(s.memory.swap.limit),
        swap_max_usage: s.memory.swap.max,
        ..Default::default()
    };
    let pids = v2::PidsStat {
        current: s.pids.current,
        limit: u64::try_from(s.pids.limit).unwrap_or(0),
        ..Default::default()
    };
    // One entry per device: bytes and operations, read and written.
    let mut devices: BTreeMap<(u64, u64), v2::IOEntry> = BTreeMap::new();
    for (list, bytes) in [(&s.blkio.service_bytes, true), (&s.blkio.serviced, false)] {
        for e in list {
            let d = devices
                .entry((e.major, e.minor))
                .or_insert_with(|| v2::IOEntry {
                    major: e.major,
                    minor: e.minor,
                    ..Default::default()
                });
            match (e.op.as_str(), bytes) {
                ("Read", true) => d.rbytes = e.value,
                ("Write", true) => d.wbytes = e.value,
                ("Read", false) => d.rios = e.value,
                ("Write", false) => d.wios = e.value,
                _ => {}
            }
        }
    }
    let io = v2::IOStat {
        usage: devices.into_values().collect(),
        ..Default::default()
    };
    let hugetlb = s
        .hugetlb
        .iter()
        .map(|(size, h)| v2::HugeTlbStat {
            current: h.usage,
            max: h.max,
            failcnt: h.failcnt,
            pagesize: size.clone(),
            ..Default::default()
        })
        .collect();
    v2::Metrics {
        pids: MessageField::some(pids),
        cpu: MessageField::some(cpu),
        memory: MessageField::some(memory),
        io: MessageField::some(io),
        hugetlb,
        ..Default::default()
    }
}

/// Converts one sample (to v2's message if `unified`, else v1's) and packs
/// it as containerd's `typeurl` does.
pub fn to_any(s: &Stats, unified: bool) -> Result<Any> {
    let encoded = if unified {
        to_metrics_v2(s).write_to_bytes()
    } else {
        to_metrics(s).write_to_bytes()
    };
    let value = encoded.map_err(|e| Error::InvalidArgument(format!("encode metrics: {e}")))?;
    let type_url = if unified {
        "io.containerd.cgroups.v2.Metrics"
    } else {
        "io.containerd.cgroups.v1.Metrics"
    };
    Ok(Any {
        type_url: type_url.to_string(),
        value,
        ..Default::default()
    })
}

#[cfg(test)]
// The SDK's stats types are filled field by field: they may become
// `#[non_exhaustive]`.
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    fn sample() -> Stats {
        let mut s = Stats::default();
        s.cpu.usage.total = 5_000_000;
        s.cpu.usage.user = 3_000_000;
        s.cpu.usage.kernel = 2_000_000;
        s.memory.usage.usage = 4096;
        s.memory.usage.limit = 16 << 20;
        s.memory.rss = 1024;
        s.memory.cache = 2048;
        s.pids.current = 3;
        s.pids.limit = 0;
        for (op, value) in [("Read", 10), ("Write", 20)] {
            let mut e = BlkioEntry::default();
            e.major = 8;
            e.op = op.to_string();
            e.value = value;
            s.blkio.service_bytes.push(e);
        }
        s
    }

    #[test]
    fn v1_metrics_carry_the_sample() {
        let m = to_metrics(&sample());
        assert_eq!(m.memory.usage.usage, 4096);
        assert_eq!(m.memory.usage.limit, 16 << 20);
        assert_eq!(m.memory.total_cache, 2048);
        assert_eq!(m.cpu.usage.total, 5_000_000);
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.blkio.io_service_bytes_recursive.len(), 2);
        let any = to_any(&sample(), false).unwrap();
        assert_eq!(any.type_url, "io.containerd.cgroups.v1.Metrics");
        assert_eq!(Metrics::parse_from_bytes(&any.value).unwrap(), m);
    }

    #[test]
    fn v2_metrics_carry_the_sample() {
        let m = to_metrics_v2(&sample());
        assert_eq!(m.cpu.usage_usec, 5000);
        assert_eq!(m.cpu.user_usec, 3000);
        assert_eq!(m.cpu.system_usec, 2000);
        assert_eq!(m.memory.usage, 4096);
        assert_eq!(m.memory.usage_limit, 16 << 20);
        assert_eq!(m.memory.anon, 1024);
        assert_eq!(m.memory.file, 2048);
        assert_eq!(m.io.usage.len(), 1);
        assert_eq!((m.io.usage[0].rbytes, m.io.usage[0].wbytes), (10, 20));
        let any = to_any(&sample(), true).unwrap();
        assert_eq!(any.type_url, "io.containerd.cgroups.v2.Metrics");
    }

    #[test]
    fn no_limit_is_the_largest_value() {
        let mut s = sample();
        s.memory.usage.limit = -1;
        assert_eq!(to_metrics(&s).memory.usage.limit, u64::MAX);
    }
}
