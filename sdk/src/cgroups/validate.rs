//! Checks of `linux.resources` before anything is written.
//!
//! The kernel refuses many bad values itself, but only one file at a time:
//! by then earlier files have changed and the error is a bare `EINVAL`. Every
//! value is checked here first, against the limits the kernel enforces and
//! what this host has, and a bad one is an [`Error::InvalidSpec`] naming the
//! field as `config.json` spells it.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxResources};

use super::{devices, Layout};
use crate::error::{Error, Result};

/// CFS bandwidth limits in µs (`kernel/sched/core.c`).
const MIN_CFS_US: u64 = 1_000;
const MAX_CFS_PERIOD_US: u64 = 1_000_000;
/// `cpu.shares` bounds (`MIN_SHARES`/`MAX_SHARES` of the scheduler).
const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;
/// blkio/io weight bounds on v1 (`CFQ_WEIGHT_MIN`/`MAX`, BFQ's too).
const MIN_BLKIO_WEIGHT: u16 = 10;
const MAX_BLKIO_WEIGHT: u16 = 1_000;

/// What this host's cgroups offer, as the resource checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostLimits {
    /// How cgroups are mounted.
    pub layout: Layout,
    /// Online CPUs (`/sys/devices/system/cpu/online`).
    pub cpus: BTreeSet<u32>,
    /// Online memory nodes (`/sys/devices/system/node/online`; node 0 without NUMA).
    pub mems: BTreeSet<u32>,
    /// Huge page sizes as the hugetlb controller names them (`2MB`, `1GB`).
    pub hugepage_sizes: Vec<String>,
    /// Whether v1 swap accounting (`memory.memsw.*`) is on.
    pub swap_accounting: bool,
    /// The controllers a container's cgroup can use: the v1 hierarchies'
    /// (`cpu`, `memory`, `net_cls`, ...) or the v2 root's `cgroup.controllers`.
    pub controllers: BTreeSet<String>,
    /// Whether the kernel has `cpu.idle` (5.15+).
    pub cpu_idle: bool,
}

impl HostLimits {
    /// This host's limits, read once.
    pub fn get() -> &'static HostLimits {
        static LIMITS: OnceLock<HostLimits> = OnceLock::new();
        LIMITS.get_or_init(|| {
            let read_list = |path: &str| {
                std::fs::read_to_string(path)
                    .ok()
                    .and_then(|s| parse_list(s.trim()).ok())
            };
            let hugepage_sizes = std::fs::read_dir("/sys/kernel/mm/hugepages")
                .map(|dir| {
                    dir.filter_map(|e| {
                        let name = e.ok()?.file_name().into_string().ok()?;
                        let kb: u64 = name
                            .strip_prefix("hugepages-")?
                            .strip_suffix("kB")?
                            .parse()
                            .ok()?;
                        Some(hugetlb_name(kb))
                    })
                    .collect()
                })
                .unwrap_or_default();
            HostLimits {
                layout: super::layout(),
                cpus: read_list("/sys/devices/system/cpu/online").unwrap_or_default(),
                mems: read_list("/sys/devices/system/node/online").unwrap_or_else(|| [0].into()),
                hugepage_sizes,
                controllers: controllers(),
                cpu_idle: kernel_at_least(5, 15),
                swap_accounting: super::host()
                    .mounts
                    .iter()
                    .find(|m| m.is_v1() && m.has_option("memory"))
                    .is_some_and(|m| m.mount_point.join("memory.memsw.limit_in_bytes").exists()),
            }
        })
    }
}

/// Whether the running kernel is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}

/// The controllers this host offers a container's cgroup.
fn controllers() -> BTreeSet<String> {
    let host = super::host();
    if host.layout == Layout::V2 {
        let path = std::path::Path::new(super::CGROUP_ROOT).join("cgroup.controllers");
        return std::fs::read_to_string(path)
            .map(|s| s.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
    }
    host.mounts
        .iter()
        .filter(|m| m.is_v1())
        .flat_map(|m| {
            m.super_opts
                .split(',')
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The hugetlb controller's name for a page of `kb` KiB (`mem_fmt` in
/// `mm/hugetlb_cgroup.c`).
fn hugetlb_name(kb: u64) -> String {
    if kb % (1024 * 1024) == 0 {
        format!("{}GB", kb / (1024 * 1024))
    } else if kb % 1024 == 0 {
        format!("{}MB", kb / 1024)
    } else {
        format!("{kb}KB")
    }
}

/// Parses a kernel CPU or node list (`0-3,8,10-11`).
pub(crate) fn parse_list(s: &str) -> std::result::Result<BTreeSet<u32>, String> {
    let mut set = BTreeSet::new();
    if s.is_empty() {
        return Ok(set);
    }
    for part in s.split(',') {
        let num = |n: &str| {
            n.parse::<u32>()
                .map_err(|_| format!("{n:?} in {s:?} is not a number"))
        };
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (num(lo)?, num(hi)?),
            None => (num(part)?, num(part)?),
        };
        if lo > hi {
            return Err(format!("range {part:?} in {s:?} runs backwards"));
        }
        if hi - lo > 65_536 {
            return Err(format!("range {part:?} in {s:?} is too large"));
        }
        set.extend(lo..=hi);
    }
    Ok(set)
}

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidSpec {
        field: format!("linux.resources.{field}"),
        reason: reason.into(),
    }
}

/// Checks every value of `r` for a host with `host`'s limits.
pub(crate) fn check(r: &LinuxResources, host: &HostLimits) -> Result<()> {
    let v2 = host.layout == Layout::V2;
    for (field, controller) in needed_controllers(r, v2) {
        if !host.controllers.contains(controller) {
            return Err(invalid(
                field,
                format!("the {controller} controller is not available on this host"),
            ));
        }
    }
    if let Some(cpu) = r.cpu() {
        check_cpu(cpu, host)?;
    }
    if let Some(memory) = r.memory() {
        check_memory(memory, host)?;
    }
    if let Some(pids) = r.pids() {
        if pids.limit() < -1 {
            return Err(invalid(
                "pids.limit",
                format!("{} is negative: use -1 or 0 for no limit", pids.limit()),
            ));
        }
    }
    if let Some(io) = r.block_io() {
        let weight_ok = |w: u16| w == 0 || (MIN_BLKIO_WEIGHT..=MAX_BLKIO_WEIGHT).contains(&w);
        let bad_weight = |field: &str, w: u16| {
            invalid(
                field,
                format!("{w} is outside {MIN_BLKIO_WEIGHT}..={MAX_BLKIO_WEIGHT}"),
            )
        };
        if let Some(w) = io.weight().filter(|&w| !weight_ok(w)) {
            return Err(bad_weight("blockIO.weight", w));
        }
        if let Some(w) = io.leaf_weight().filter(|&w| !weight_ok(w)) {
            return Err(bad_weight("blockIO.leafWeight", w));
        }
        for (i, d) in io.weight_device().iter().flatten().enumerate() {
            if let Some(w) = d.weight().filter(|&w| !weight_ok(w)) {
                return Err(bad_weight(&format!("blockIO.weightDevice[{i}].weight"), w));
            }
            if let Some(w) = d.leaf_weight().filter(|&w| !weight_ok(w)) {
                return Err(bad_weight(
                    &format!("blockIO.weightDevice[{i}].leafWeight"),
                    w,
                ));
            }
        }
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        if !host.hugepage_sizes.iter().any(|s| s == h.page_size()) {
            return Err(invalid(
                &format!("hugepageLimits[{i}].pageSize"),
                format!(
                    "{:?} is not a huge page size of this host ({})",
                    h.page_size(),
                    host.hugepage_sizes.join(", ")
                ),
            ));
        }
        if h.limit() < 0 {
            return Err(invalid(
                &format!("hugepageLimits[{i}].limit"),
                format!("{} is negative", h.limit()),
            ));
        }
    }
    if let Some(net) = r.network() {
        for (i, p) in net.priorities().iter().flatten().enumerate() {
            if p.name().is_empty() || p.name().contains(['/', ' ', '\n']) {
                return Err(invalid(
                    &format!("network.priorities[{i}].name"),
                    format!("{:?} is not an interface name", p.name()),
                ));
            }
        }
    }
    if let Some(rules) = r.devices() {
        devices::rules(rules)?;
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(invalid(
            "rdma",
            "the rdma controller is not supported by berth",
        ));
    }
    if let Some(unified) = r.unified() {
        if host.layout == Layout::V1 {
            return Err(invalid("unified", "this host has no cgroup2 hierarchy"));
        }
        for key in unified.keys() {
            let Some((controller, _)) = key.split_once('.') else {
                return Err(invalid(
                    &format!("unified.{key}"),
                    "not a cgroup file name (controller.name)",
                ));
            };
            if key.contains('/') || controller.is_empty() || key.contains('\0') {
                return Err(invalid(
                    &format!("unified.{key}"),
                    "not a cgroup file name (controller.name)",
                ));
            }
            if matches!(
                key.as_str(),
                "cgroup.procs" | "cgroup.threads" | "cgroup.subtree_control" | "cgroup.kill"
            ) {
                return Err(invalid(
                    &format!("unified.{key}"),
                    "moves or kills processes or changes delegation: not a resource",
                ));
            }
            if !v2 && controller != "cgroup" {
                return Err(invalid(
                    &format!("unified.{key}"),
                    "the cgroup2 hierarchy of this hybrid host has no controllers",
                ));
            }
        }
    }
    Ok(())
}

/// The first field of `r` (as `config.json` names it under
/// `linux.resources`) that only a cgroup of the container's own can
/// enforce, for a rootless container without a delegated cgroup. Device
/// rules are not among them: as runc does, they are left unenforced there,
/// since a user namespace cannot create device nodes anyway.
pub(crate) fn needs_delegation(r: &LinuxResources) -> Option<String> {
    let v2 = super::host().layout == Layout::V2;
    if let Some((field, _)) = needed_controllers(r, v2)
        .into_iter()
        .find(|(_, controller)| *controller != "devices")
    {
        return Some(field.to_string());
    }
    if r.memory()
        .as_ref()
        .is_some_and(|m| m.kernel_tcp().is_some())
    {
        return Some("memory.kernelTCP".into());
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        return Some("rdma".into());
    }
    if r.unified().as_ref().is_some_and(|m| !m.is_empty()) {
        return Some("unified".into());
    }
    None
}

/// The controllers the set fields of `r` need, each with the first field
/// that needs it.
fn needed_controllers(r: &LinuxResources, v2: bool) -> Vec<(&'static str, &'static str)> {
    let mut needs = Vec::new();
    if let Some(c) = r.cpu() {
        if c.shares().is_some_and(|s| s != 0)
            || c.quota().is_some()
            || c.period().is_some()
            || c.idle().is_some()
            || c.burst().is_some()
            || c.realtime_runtime().is_some()
            || c.realtime_period().is_some()
        {
            needs.push(("cpu", "cpu"));
        }
        if c.cpus().is_some() || c.mems().is_some() {
            needs.push(("cpu.cpus", "cpuset"));
        }
    }
    if let Some(m) = r.memory() {
        if m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || (!v2 && (m.swappiness().is_some() || m.disable_oom_killer() == Some(true)))
        {
            needs.push(("memory", "memory"));
        }
    }
    if r.pids().is_some() {
        needs.push(("pids", "pids"));
    }
    if let Some(io) = r.block_io() {
        let set = io.weight().is_some()
            || io.leaf_weight().is_some()
            || [
                io.throttle_read_bps_device(),
                io.throttle_write_bps_device(),
                io.throttle_read_iops_device(),
                io.throttle_write_iops_device(),
            ]
            .iter()
            .any(|l| l.as_ref().is_some_and(|l| !l.is_empty()))
            || io.weight_device().as_ref().is_some_and(|l| !l.is_empty());
        if set {
            needs.push(("blockIO", if v2 { "io" } else { "blkio" }));
        }
    }
    if r.hugepage_limits().as_ref().is_some_and(|l| !l.is_empty()) {
        needs.push(("hugepageLimits", "hugetlb"));
    }
    if let Some(net) = r.network().as_ref().filter(|_| !v2) {
        if net.class_id().is_some() {
            needs.push(("network.classID", "net_cls"));
        }
        if net.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            needs.push(("network.priorities", "net_prio"));
        }
    }
    if !v2 && r.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        needs.push(("devices", "devices"));
    }
    needs
}

fn check_cpu(cpu: &LinuxCpu, host: &HostLimits) -> Result<()> {
    if let Some(shares) = cpu.shares().filter(|&s| s != 0) {
        if !(MIN_SHARES..=MAX_SHARES).contains(&shares) {
            return Err(invalid(
                "cpu.shares",
                format!("{shares} is outside {MIN_SHARES}..={MAX_SHARES}"),
            ));
        }
    }
    match cpu.quota() {
        Some(q) if q < -1 => {
            return Err(invalid(
                "cpu.quota",
                format!("{q} is negative: use -1 for no limit"),
            ))
        }
        Some(q) if q >= 0 && (q as u64) < MIN_CFS_US => {
            return Err(invalid(
                "cpu.quota",
                format!("{q} µs is below the kernel's minimum of {MIN_CFS_US} µs"),
            ))
        }
        _ => {}
    }
    if let Some(p) = cpu.period() {
        if !(MIN_CFS_US..=MAX_CFS_PERIOD_US).contains(&p) {
            return Err(invalid(
                "cpu.period",
                format!("{p} µs is outside the kernel's {MIN_CFS_US}..={MAX_CFS_PERIOD_US} µs"),
            ));
        }
    }
    if let (Some(burst), Some(q)) = (cpu.burst(), cpu.quota()) {
        if q > 0 && burst > q as u64 {
            return Err(invalid(
                "cpu.burst",
                format!("{burst} µs is more than the quota of {q} µs"),
            ));
        }
    }
    if let Some(idle) = cpu.idle() {
        if !matches!(idle, 0 | 1) {
            return Err(invalid("cpu.idle", format!("{idle} is neither 0 nor 1")));
        }
        if !host.cpu_idle {
            return Err(invalid("cpu.idle", "this kernel has no cpu.idle (5.15+)"));
        }
    }
    if cpu.realtime_runtime().is_some() || cpu.realtime_period().is_some() {
        if host.layout == Layout::V2 {
            return Err(invalid(
                "cpu.realtimeRuntime",
                "cgroup v2 has no realtime CPU bandwidth control",
            ));
        }
        if let Some(rt) = cpu.realtime_runtime().filter(|&rt| rt < -1) {
            return Err(invalid(
                "cpu.realtimeRuntime",
                format!("{rt} is negative: use -1 for no limit"),
            ));
        }
        if let Some(p) = cpu.realtime_period() {
            if p == 0 {
                return Err(invalid("cpu.realtimePeriod", "0 is not a period"));
            }
            if let Some(rt) = cpu.realtime_runtime().filter(|&rt| rt > 0) {
                if rt as u64 > p {
                    return Err(invalid(
                        "cpu.realtimeRuntime",
                        format!("{rt} µs is longer than the period of {p} µs"),
                    ));
                }
            }
        }
    }
    for (name, value, online) in [
        ("cpus", cpu.cpus(), &host.cpus),
        ("mems", cpu.mems(), &host.mems),
    ] {
        let Some(value) = value.as_deref() else {
            continue;
        };
        let set = parse_list(value).map_err(|reason| invalid(&format!("cpu.{name}"), reason))?;
        if let Some(missing) = set.iter().find(|n| !online.contains(n)) {
            let what = if name == "cpus" { "CPU" } else { "memory node" };
            return Err(invalid(
                &format!("cpu.{name}"),
                format!("{what} {missing} is not online on this host"),
            ));
        }
    }
    Ok(())
}

fn check_memory(m: &LinuxMemory, host: &HostLimits) -> Result<()> {
    let limit_like = |field: &str, v: Option<i64>| match v {
        Some(v) if v < -1 => Err(invalid(
            field,
            format!("{v} is negative: use -1 for no limit"),
        )),
        _ => Ok(()),
    };
    limit_like("memory.limit", m.limit())?;
    limit_like("memory.reservation", m.reservation())?;
    limit_like("memory.swap", m.swap())?;
    if let (Some(limit), Some(swap)) = (m.limit(), m.swap()) {
        if limit > 0 && swap > 0 && swap < limit {
            return Err(invalid(
                "memory.swap",
                format!("{swap} is below the memory limit {limit}: swap is the memory+swap total"),
            ));
        }
    }
    if m.swap().is_some_and(|s| s > 0) && host.layout != Layout::V2 && !host.swap_accounting {
        return Err(invalid(
            "memory.swap",
            "swap accounting is off on this host (no memory.memsw.*)",
        ));
    }
    if let Some(s) = m.swappiness().filter(|&s| s > 100) {
        return Err(invalid("memory.swappiness", format!("{s} is above 100")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxHugepageLimitBuilder, LinuxMemoryBuilder,
        LinuxResourcesBuilder,
    };

    fn unified(key: String, value: String) -> std::collections::HashMap<String, String> {
        [(key, value)].into()
    }

    fn host(layout: Layout) -> HostLimits {
        HostLimits {
            layout,
            cpus: [0, 1].into(),
            mems: [0].into(),
            hugepage_sizes: vec!["2MB".into(), "1GB".into()],
            swap_accounting: false,
            controllers: [
                "cpu", "cpuset", "memory", "pids", "blkio", "io", "hugetlb", "devices",
            ]
            .map(String::from)
            .into(),
            cpu_idle: true,
        }
    }

    fn field_of(r: LinuxResources, layout: Layout) -> String {
        match check(&r, &host(layout)) {
            Err(Error::InvalidSpec { field, .. }) => field,
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    }

    fn cpu(b: LinuxCpuBuilder) -> LinuxResources {
        LinuxResourcesBuilder::default()
            .cpu(b.build().unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn lists_parse_as_the_kernel_writes_them() {
        assert_eq!(
            parse_list("0-3,8,10-11").unwrap(),
            [0, 1, 2, 3, 8, 10, 11].into()
        );
        assert!(parse_list("0-x").is_err());
        assert!(parse_list("3-1").is_err());
        assert!(parse_list("1,,2").is_err());
        assert_eq!(hugetlb_name(2048), "2MB");
        assert_eq!(hugetlb_name(1024 * 1024), "1GB");
        assert_eq!(hugetlb_name(64), "64KB");
    }

    #[test]
    fn bad_values_name_their_field() {
        let b = LinuxCpuBuilder::default;
        let cases: Vec<(LinuxResources, Layout, &str)> = vec![
            (cpu(b().quota(-5)), Layout::V1, "linux.resources.cpu.quota"),
            (cpu(b().quota(10)), Layout::V1, "linux.resources.cpu.quota"),
            (
                cpu(b().period(0u64)),
                Layout::V1,
                "linux.resources.cpu.period",
            ),
            (
                cpu(b().period(2_000_000u64)),
                Layout::V2,
                "linux.resources.cpu.period",
            ),
            (
                cpu(b().shares(1u64)),
                Layout::V1,
                "linux.resources.cpu.shares",
            ),
            (cpu(b().cpus("0-x")), Layout::V1, "linux.resources.cpu.cpus"),
            (cpu(b().cpus("0-7")), Layout::V1, "linux.resources.cpu.cpus"),
            (cpu(b().mems("1")), Layout::V1, "linux.resources.cpu.mems"),
            (cpu(b().idle(2)), Layout::V2, "linux.resources.cpu.idle"),
            (
                cpu(b().realtime_runtime(1000)),
                Layout::V2,
                "linux.resources.cpu.realtimeRuntime",
            ),
            (
                cpu(b().realtime_runtime(2000).realtime_period(1000u64)),
                Layout::V1,
                "linux.resources.cpu.realtimeRuntime",
            ),
            (
                LinuxResourcesBuilder::default()
                    .memory(LinuxMemoryBuilder::default().limit(-2).build().unwrap())
                    .build()
                    .unwrap(),
                Layout::V1,
                "linux.resources.memory.limit",
            ),
            (
                LinuxResourcesBuilder::default()
                    .memory(
                        LinuxMemoryBuilder::default()
                            .limit(100 << 20)
                            .swap(50 << 20)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
                Layout::V2,
                "linux.resources.memory.swap",
            ),
            (
                LinuxResourcesBuilder::default()
                    .memory(
                        LinuxMemoryBuilder::default()
                            .limit(100 << 20)
                            .swap(200 << 20)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
                Layout::V1,
                "linux.resources.memory.swap",
            ),
            (
                LinuxResourcesBuilder::default()
                    .memory(
                        LinuxMemoryBuilder::default()
                            .swappiness(101u64)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
                Layout::V1,
                "linux.resources.memory.swappiness",
            ),
            (
                LinuxResourcesBuilder::default()
                    .block_io(LinuxBlockIoBuilder::default().weight(5u16).build().unwrap())
                    .build()
                    .unwrap(),
                Layout::V1,
                "linux.resources.blockIO.weight",
            ),
            (
                LinuxResourcesBuilder::default()
                    .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
                        .page_size("3MB")
                        .limit(0)
                        .build()
                        .unwrap()])
                    .build()
                    .unwrap(),
                Layout::V1,
                "linux.resources.hugepageLimits[0].pageSize",
            ),
            (
                LinuxResourcesBuilder::default()
                    .unified(unified("memory.max".to_string(), "1".to_string()))
                    .build()
                    .unwrap(),
                Layout::V1,
                "linux.resources.unified",
            ),
            (
                LinuxResourcesBuilder::default()
                    .unified(unified("../x".to_string(), "1".to_string()))
                    .build()
                    .unwrap(),
                Layout::V2,
                "linux.resources.unified.../x",
            ),
            (
                LinuxResourcesBuilder::default()
                    .unified(unified("cgroup.procs".to_string(), "1".to_string()))
                    .build()
                    .unwrap(),
                Layout::V2,
                "linux.resources.unified.cgroup.procs",
            ),
            (
                LinuxResourcesBuilder::default()
                    .network(
                        oci_spec::runtime::LinuxNetworkBuilder::default()
                            .class_id(7u32)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
                Layout::V1,
                "linux.resources.network.classID",
            ),
        ];
        for (r, layout, want) in cases {
            assert_eq!(field_of(r, layout), want);
        }
    }

    #[test]
    fn good_values_pass() {
        let r = LinuxResourcesBuilder::default()
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(1024u64)
                    .quota(-1)
                    .period(100_000u64)
                    .cpus("0-1")
                    .mems("0")
                    .idle(0)
                    .build()
                    .unwrap(),
            )
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(-1)
                    .swappiness(60u64)
                    .build()
                    .unwrap(),
            )
            .unified(unified("memory.high".to_string(), "max".to_string()))
            .build()
            .unwrap();
        check(&r, &host(Layout::V2)).unwrap();
    }
}
