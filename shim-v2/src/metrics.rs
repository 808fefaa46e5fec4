//! The SDK's cgroup stats as containerd's cgroup v1 `Metrics` message
//! (what `ctr task metrics` decodes).

use containerd_shim::protos::cgroups::metrics::{
    BlkIOEntry, BlkIOStat, CPUStat, CPUUsage, HugetlbStat, MemoryEntry, MemoryStat, Metrics,
    PidsStat, Throttle,
};
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

/// Converts one sample and packs it as containerd's `typeurl` does.
pub fn to_any(s: &Stats) -> Result<Any> {
    let metrics = to_metrics(s);
    let value = metrics
        .write_to_bytes()
        .map_err(|e| Error::InvalidArgument(format!("encode metrics: {e}")))?;
    Ok(Any {
        type_url: "io.containerd.cgroups.v1.Metrics".to_string(),
        value,
        ..Default::default()
    })
}
