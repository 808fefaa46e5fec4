//! Limits the kernel enforces, checked through what the cgroup files and
//! the container's processes show: on this machine the v1 controllers of a
//! hybrid host, in the VM matrix (`cargo xtask vm-test`) also cgroup v2.

mod common;

use std::time::Duration;

use berth::oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder, Spec,
};
use berth::{Event, ExitStatus};
use common::*;
use futures::StreamExt;

fn with_resources(mut spec: Spec, r: LinuxResources) -> Spec {
    let mut linux = spec.linux().clone().unwrap();
    linux.set_resources(Some(r));
    spec.set_linux(Some(linux));
    spec
}

/// Whether the host is cgroup v2 only.
fn v2() -> bool {
    berth::cgroups::layout() == berth::cgroups::Layout::V2
}

/// `file` of container `id`'s cgroup: in `controller`'s hierarchy on v1 and
/// hybrid hosts, in its one directory on v2.
fn cg(rt: &TestRuntime, controller: &str, id: &str, file: &str) -> String {
    let parent = &rt.config().cgroup_parent;
    let p = if v2() {
        format!("/sys/fs/cgroup/{parent}/{id}/{file}")
    } else {
        format!("/sys/fs/cgroup/{controller}/{parent}/{id}/{file}")
    };
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// The memory limit file of the host's cgroup version.
fn memory_limit_file() -> &'static str {
    if v2() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    }
}

/// Waits for `events` to end with the container, and checks they were one
/// OOM kill of its only process.
async fn assert_one_oom_kill(events: impl futures::Stream<Item = berth::Result<Event>>) {
    let all: Vec<Event> = tokio::time::timeout(Duration::from_secs(30), events.collect::<Vec<_>>())
        .await
        .expect("the events stream did not end with the container")
        .into_iter()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(
        all,
        [
            Event::Created,
            Event::Started,
            Event::Oom,
            Event::Exited(ExitStatus::Signaled(9))
        ]
    );
}

#[tokio::test]
async fn allocating_past_the_memory_limit_is_an_oom_event_and_exit() {
    let rt = runtime().await;
    let mem = LinuxMemoryBuilder::default()
        .limit(32 << 20)
        .swap(32 << 20)
        .build()
        .unwrap();
    let spec = with_resources(
        // busybox tail keeps the last "line" of endless zeros in memory.
        spec("sleep 0.2; exec tail /dev/zero"),
        LinuxResourcesBuilder::default()
            .memory(mem)
            .build()
            .unwrap(),
    );
    let ctr = create_piped(&rt, "oom", spec).await.unwrap();
    let events = ctr.events();
    ctr.start().await.unwrap();
    assert_one_oom_kill(events).await;
    let oom_file = if v2() {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    let control = cg(&rt, "memory", ctr.id(), oom_file);
    assert!(control.contains("oom_kill 1"), "{control}");
    finish(ctr).await.unwrap();
}

/// Two OOM kills before anyone reads the stream: two OOM events, then the
/// exit (the stream keeps the kernel's count, not just "there was one").
#[tokio::test]
async fn every_oom_kill_is_an_event_even_when_nobody_reads() {
    let rt = runtime().await;
    let mem = LinuxMemoryBuilder::default()
        .limit(32 << 20)
        .swap(32 << 20)
        .build()
        .unwrap();
    let spec = with_resources(
        spec("tail /dev/zero; tail /dev/zero; exit 5"),
        LinuxResourcesBuilder::default()
            .memory(mem)
            .build()
            .unwrap(),
    );
    let ctr = create_piped(&rt, "oom2", spec).await.unwrap();
    let events = ctr.events();
    ctr.start().await.unwrap();
    assert_eq!(ctr.wait().await.unwrap(), ExitStatus::Exited(5));
    let all: Vec<Event> = events.map(|e| e.unwrap()).collect().await;
    assert_eq!(
        all,
        [
            Event::Created,
            Event::Started,
            Event::Oom,
            Event::Oom,
            Event::Exited(ExitStatus::Exited(5))
        ]
    );
    finish(ctr).await.unwrap();
}

#[tokio::test]
async fn a_pids_limit_stops_a_fork_loop() {
    let rt = runtime().await;
    let spec = with_resources(
        // The inner shell dies when a fork fails; the outer one then says
        // so and execs (no fork) into a sleep.
        spec("sh -c 'i=0; while [ $i -lt 40 ]; do sleep 5 & i=$((i+1)); done' 2>/dev/null; echo forked; exec sleep 5"),
        LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(10).build().unwrap())
            .build()
            .unwrap(),
    );
    let ctr = create_piped(&rt, "pids", spec).await.unwrap();
    let mut out = ctr.take_stdout().unwrap();
    ctr.start().await.unwrap();
    let mut buf = [0u8; 7];
    tokio::io::AsyncReadExt::read_exact(&mut out, &mut buf)
        .await
        .unwrap();
    assert_eq!(&buf, b"forked\n");
    let current: u64 = cg(&rt, "pids", ctr.id(), "pids.current")
        .trim()
        .parse()
        .unwrap();
    assert!(current <= 10, "pids.current {current} over the limit");
    let events = cg(&rt, "pids", ctr.id(), "pids.events");
    let denied: u64 = events.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(denied > 0, "no fork was refused: {events}");
    ctr.force_delete().await.unwrap();
}

#[tokio::test]
async fn a_cpu_quota_throttles_a_busy_loop() {
    let rt = runtime().await;
    let cpu = LinuxCpuBuilder::default()
        .quota(10_000i64)
        .period(100_000u64)
        .build()
        .unwrap();
    let spec = with_resources(
        spec("while :; do :; done"),
        LinuxResourcesBuilder::default().cpu(cpu).build().unwrap(),
    );
    let ctr = create_piped(&rt, "cpu", spec).await.unwrap();
    ctr.start().await.unwrap();
    let before = ctr.stats_now().await.unwrap().cpu.usage.total;
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let sample = ctr.stats_now().await.unwrap();
    let used = sample.cpu.usage.total - before;
    // A shell loop runs in user space; per-CPU counts exist on v1.
    assert!(sample.cpu.usage.user > 0, "{:?}", sample.cpu);
    assert_eq!(sample.cpu.usage.percpu.is_empty(), v2(), "{:?}", sample.cpu);
    let wall = started.elapsed().as_nanos() as u64;
    let stat = cg(&rt, "cpu", ctr.id(), "cpu.stat");
    let throttled: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("nr_throttled "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ctr.force_delete().await.unwrap();
    assert!(throttled > 0, "never throttled: {stat}");
    // 10% of one CPU, with a generous margin for the machine's noise.
    assert!(used < wall / 2, "used {used} ns of CPU in {wall} ns");
}

#[tokio::test]
async fn a_denied_device_cannot_be_opened() {
    let rt = runtime().await;
    let mut spec = spec(
        "head -c1 /dev/full > /dev/null; echo full=$?; echo x > /dev/null && echo null=ok; \
         test -c /dev/fuse && echo fuse=made",
    );
    // A spec device is allowed as well as made, as runc does.
    let mut linux = spec.linux().clone().unwrap();
    linux.set_devices(Some(vec![LinuxDeviceBuilder::default()
        .path("/dev/fuse")
        .typ(LinuxDeviceType::C)
        .major(10i64)
        .minor(229i64)
        .build()
        .unwrap()]));
    spec.set_linux(Some(linux));
    // Deny everything, then /dev/full once more for clarity; the default
    // devices (null, ...) stay allowed but /dev/full is denied last.
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .unwrap();
    let spec = with_resources(
        spec,
        LinuxResourcesBuilder::default()
            .devices(vec![deny_all])
            .build()
            .unwrap(),
    );
    let ctr = create_piped(&rt, "devices", spec).await.unwrap();
    // v2 has no list to read: what the container can open tells.
    let list = (!v2()).then(|| cg(&rt, "devices", ctr.id(), "devices.list"));
    // Deny /dev/full on the live container (update takes the same rules).
    let deny_full = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .typ(LinuxDeviceType::C)
        .major(1i64)
        .minor(7i64)
        .access("rwm")
        .build()
        .unwrap();
    ctr.update(
        &LinuxResourcesBuilder::default()
            .devices(vec![deny_full])
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    ctr.start().await.unwrap();
    let out = finish(ctr).await.unwrap();
    if let Some(list) = list {
        assert!(list.contains("c 10:229 rwm"), "{list}");
    }
    assert!(out.stdout.contains("null=ok"), "{out:?}");
    assert!(out.stdout.contains("fuse=made"), "{out:?}");
    assert!(
        out.stdout.contains("full=1"),
        "/dev/full was readable: {out:?}"
    );
    assert!(out.stderr.contains("Operation not permitted"), "{out:?}");
}

#[tokio::test]
async fn pause_stops_a_counter_and_resume_lets_it_go_on() {
    let rt = runtime().await;
    let ctr = create_piped(
        &rt,
        "pause",
        spec("i=0; while :; do i=$((i+1)); echo $i > /dev/shm/c; done"),
    )
    .await
    .unwrap();
    ctr.start().await.unwrap();
    let counter = format!("/proc/{}/root/dev/shm/c", ctr.pid());
    let read = || {
        std::fs::read_to_string(&counter)
            .unwrap_or_default()
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    while read() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ctr.pause().await.unwrap();
    if v2() {
        let events = cg(&rt, "", ctr.id(), "cgroup.events");
        assert!(events.contains("frozen 1"), "{events}");
    } else {
        assert_eq!(
            cg(&rt, "freezer", ctr.id(), "freezer.state").trim(),
            "FROZEN"
        );
    }
    let frozen = read();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(read(), frozen, "the counter moved while paused");
    ctr.resume().await.unwrap();
    let mut moved = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if read() > frozen {
            moved = true;
            break;
        }
    }
    assert!(moved, "the counter did not go on after resume");
    ctr.force_delete().await.unwrap();
}

#[tokio::test]
async fn update_raises_the_memory_limit_of_a_running_container() {
    let rt = runtime().await;
    let mem = |bytes: i64| {
        LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(bytes).build().unwrap())
            .build()
            .unwrap()
    };
    let ctr = create_piped(
        &rt,
        "update",
        with_resources(spec("sleep 100"), mem(64 << 20)),
    )
    .await
    .unwrap();
    ctr.start().await.unwrap();
    assert_eq!(
        cg(&rt, "memory", ctr.id(), memory_limit_file()).trim(),
        (64u64 << 20).to_string()
    );
    ctr.update(&mem(128 << 20)).await.unwrap();
    assert_eq!(
        cg(&rt, "memory", ctr.id(), memory_limit_file()).trim(),
        (128u64 << 20).to_string()
    );
    let s = ctr.stats_now().await.unwrap();
    assert_eq!(s.memory.usage.limit, 128 << 20);
    ctr.force_delete().await.unwrap();
}

#[tokio::test]
async fn the_stats_stream_samples_until_the_container_ends() {
    let rt = runtime().await;
    let ctr = create_piped(&rt, "stats", spec("sleep 100")).await.unwrap();
    ctr.start().await.unwrap();
    let samples: Vec<_> = ctr
        .stats(Duration::from_millis(100))
        .take(3)
        .collect()
        .await;
    assert_eq!(samples.len(), 3);
    for s in &samples {
        let s = s.as_ref().unwrap();
        assert!(s.pids.current >= 1);
        assert!(s.memory.usage.usage > 0);
    }
    // And the stream ends with the container.
    let rest = ctr.stats(Duration::from_millis(100));
    ctr.kill(berth::Signal::KILL).unwrap();
    tokio::time::timeout(Duration::from_secs(30), rest.collect::<Vec<_>>())
        .await
        .expect("the stats stream did not end with the container");
    ctr.delete().await.unwrap();
}

/// Where a hybrid host mounts cgroup2 (`/sys/fs/cgroup/unified` on
/// systemd's hosts), from this process's mountinfo.
fn cgroup2_mount_point() -> String {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| left.split(' ').nth(4))?
        })
        .expect("a cgroup2 mount")
        .to_string()
}

/// The kernel's CPU counters of container `id` that a sample of `detail`
/// reports, in ns: total, user, system (v1: `cpuacct.usage`,
/// `cpuacct.usage_user`, `cpuacct.usage_sys`; v2, and a hybrid host's
/// usage sample: the cgroup2 `cpu.stat`'s µs).
fn kernel_cpu(rt: &TestRuntime, id: &str, detail: berth::StatsDetail) -> [u64; 3] {
    let hybrid_usage = detail == berth::StatsDetail::Usage
        && berth::cgroups::layout() == berth::cgroups::Layout::Hybrid;
    if v2() || hybrid_usage {
        let stat = if v2() {
            cg(rt, "cpu", id, "cpu.stat")
        } else {
            let parent = &rt.config().cgroup_parent;
            let p = format!("{}/{parent}/{id}/cpu.stat", cgroup2_mount_point());
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
        };
        let field = |k: &str| -> u64 {
            stat.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(' ')?.trim().parse().ok())
                .unwrap()
        };
        [
            field("usage_usec"),
            field("user_usec"),
            field("system_usec"),
        ]
        .map(|us| us * 1000)
    } else {
        ["cpuacct.usage", "cpuacct.usage_user", "cpuacct.usage_sys"]
            .map(|f| cg(rt, "cpuacct", id, f).trim().parse().unwrap())
    }
}

/// One sampler for many containers: every tick has a sample of each, CPU
/// time agrees with the kernel's own counters, a usage-only sample leaves
/// the limits out, and a container that exits leaves the sampler.
#[tokio::test]
async fn one_sampler_samples_many_containers_until_each_ends() {
    let rt = runtime().await;
    let limit = 64i64 << 20;
    let mem = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(limit).build().unwrap())
        .build()
        .unwrap();
    let busy = create_piped(
        &rt,
        "sampled-busy",
        with_resources(spec("while :; do :; done"), mem.clone()),
    )
    .await
    .unwrap();
    let idle = create_piped(&rt, "sampled-idle", with_resources(spec("sleep 100"), mem))
        .await
        .unwrap();
    for c in [&busy, &idle] {
        c.start().await.unwrap();
    }
    let interval = Duration::from_millis(50);
    let mut full = berth::StatsSampler::new(interval);
    let mut usage = berth::StatsSampler::with_detail(interval, berth::StatsDetail::Usage);
    for c in [&busy, &idle, &busy] {
        full.add(c).unwrap();
        usage.add(c).unwrap();
    }
    assert_eq!(full.len(), 2, "a container added twice is sampled once");

    let busy_cpu = |tick: &berth::StatsTick| {
        let (ctr, s) = &tick.samples[0];
        assert_eq!(ctr.id(), busy.id());
        s.as_ref().unwrap().cpu.usage.total
    };
    let mut first_busy_cpu = None;
    for _ in 0..3 {
        let before = kernel_cpu(&rt, busy.id(), berth::StatsDetail::Full);
        let tick = full.next().await.unwrap();
        let after = kernel_cpu(&rt, busy.id(), berth::StatsDetail::Full);
        let ids: Vec<&str> = tick.samples.iter().map(|(c, _)| c.id()).collect();
        assert_eq!(ids, [busy.id(), idle.id()]);
        assert!(tick.ended.is_empty());
        let s = tick.samples[0].1.as_ref().unwrap();
        let cpu = &s.cpu.usage;
        // Each counter read between the kernel's own readings of it.
        for (name, got, lo, hi) in [
            ("total", cpu.total, before[0], after[0]),
            ("user", cpu.user, before[1], after[1]),
            ("kernel", cpu.kernel, before[2], after[2]),
        ] {
            assert!(lo <= got && got <= hi, "{name}: {lo} <= {got} <= {hi}");
        }
        first_busy_cpu.get_or_insert(cpu.total);
        assert_eq!(s.memory.usage.limit, limit);
        // Memory + swap, where v2's kernel counts swap alone.
        assert!(s.memory.usage.usage > 0);
        assert!(!v2() || s.memory.swap.usage >= s.memory.usage.usage);
        assert!(s.pids.current >= 1);
    }
    // A busy loop's CPU time grows, given time: a loaded (emulated) guest
    // may not run it for a tick or two.
    let first_busy_cpu = first_busy_cpu.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = busy_cpu(&full.next().await.unwrap());
        if now > first_busy_cpu {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the busy loop's CPU time did not grow in 20 s: {first_busy_cpu} ns, then {now}"
        );
    }
    let before = kernel_cpu(&rt, busy.id(), berth::StatsDetail::Usage);
    let tick = usage.next().await.unwrap();
    let after = kernel_cpu(&rt, busy.id(), berth::StatsDetail::Usage);
    let cpu = &tick.samples[0].1.as_ref().unwrap().cpu.usage;
    for (name, got, lo, hi) in [
        ("total", cpu.total, before[0], after[0]),
        ("user", cpu.user, before[1], after[1]),
        ("kernel", cpu.kernel, before[2], after[2]),
    ] {
        assert!(
            lo <= got && got <= hi,
            "usage {name}: {lo} <= {got} <= {hi}"
        );
    }
    assert!(cpu.total > 0);
    // Per-CPU times come only with v1's `cpuacct` files.
    assert_eq!(
        cpu.percpu.is_empty(),
        berth::cgroups::layout() != berth::cgroups::Layout::V1,
        "{cpu:?}"
    );
    let s = tick.samples[1].1.as_ref().unwrap();
    assert!(s.memory.usage.usage > 0 && s.pids.current >= 1);
    assert!(s.cpu.usage.total > 0);
    // A usage sample reads no limit, on any layout.
    assert_eq!(s.memory.usage.limit, 0);
    // v1 memory+swap usage, read from its file or, with no swap in use on
    // the host, taken from the memory usage: either way the kernel's own
    // count for an idle container. v2 counts swap alone, and the sample
    // adds the memory to it.
    if v2() {
        let parent = &rt.config().cgroup_parent;
        let p = format!("/sys/fs/cgroup/{parent}/{}/memory.swap.current", idle.id());
        // No file: a kernel built without swap.
        let swap = std::fs::read_to_string(p).map_or(0, |t| t.trim().parse::<u64>().unwrap());
        assert_eq!(s.memory.swap.usage - s.memory.usage.usage, swap);
    }
    let memsw = format!(
        "/sys/fs/cgroup/memory/{}/{}/memory.memsw.usage_in_bytes",
        rt.config().cgroup_parent,
        idle.id()
    );
    if let (false, Ok(text)) = (v2(), std::fs::read_to_string(&memsw)) {
        assert_eq!(s.memory.swap.usage, text.trim().parse::<u64>().unwrap());
    }

    busy.kill(berth::Signal::KILL).unwrap();
    busy.wait().await.unwrap();
    let tick = full.next().await.unwrap();
    let ended: Vec<&str> = tick.ended.iter().map(|c| c.id()).collect();
    assert_eq!(ended, [busy.id()]);
    assert_eq!(tick.samples.len(), 1);
    assert_eq!(full.len(), 1);
    assert!(full.remove(idle.id()));
    assert!(!full.remove(idle.id()));
    assert!(full.next().await.unwrap().samples.is_empty());
    busy.delete().await.unwrap();
    idle.force_delete().await.unwrap();
}

#[tokio::test]
async fn a_paused_container_can_be_force_deleted() {
    let rt = runtime().await;
    let ctr = create_piped(&rt, "frozen", spec("sleep 100"))
        .await
        .unwrap();
    ctr.start().await.unwrap();
    ctr.pause().await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), ctr.force_delete())
        .await
        .expect("delete of a paused container hung")
        .unwrap();
}

/// Every `linux.resources` field this host has a controller for reaches its
/// file, in the kernel's own spelling.
#[tokio::test]
async fn every_resource_field_reaches_its_cgroup_file() {
    let rt = runtime().await;
    let limits = berth::cgroups::HostLimits::get();
    let has = |c: &str| limits.controllers.contains(c);
    let mut r = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .cpus("0")
                .mems("0")
                .build()
                .unwrap(),
        )
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64 << 20)
                .reservation(32 << 20)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(123).build().unwrap())
        .build()
        .unwrap();
    if !v2() {
        let mut m = r.memory().unwrap();
        m.set_swappiness(Some(30))
            .set_disable_oom_killer(Some(true));
        if limits.swap_accounting {
            m.set_swap(Some(96 << 20));
        }
        r.set_memory(Some(m));
    }
    // A throttle on the disk the machine has.
    let disk = std::fs::read_to_string("/proc/partitions")
        .unwrap()
        .lines()
        .skip(2)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4 && f[1] == "0").then(|| (f[0].parse::<i64>().unwrap(), 0i64))
        });
    if let (Some((major, minor)), true) = (disk, has(if v2() { "io" } else { "blkio" })) {
        r.set_block_io(Some(
            berth::oci_spec::runtime::LinuxBlockIoBuilder::default()
                .throttle_read_bps_device(vec![
                    berth::oci_spec::runtime::LinuxThrottleDeviceBuilder::default()
                        .major(major)
                        .minor(minor)
                        .rate(1u64 << 20)
                        .build()
                        .unwrap(),
                ])
                .build()
                .unwrap(),
        ));
    }
    let ctr = create_piped(&rt, "fields", with_resources(spec("true"), r.clone()))
        .await
        .unwrap();
    let id = ctr.id().to_string();
    let read = |c: &str, f: &str| cg(&rt, c, &id, f).trim().to_string();
    if v2() {
        assert_eq!(read("", "cpu.max"), "50000 100000");
        // runc's shares→weight conversion: 1 + ((512 - 2) * 9999) / 262142.
        assert_eq!(read("", "cpu.weight"), "20");
        assert_eq!(read("", "memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("", "memory.low"), (32u64 << 20).to_string());
        assert_eq!(read("", "pids.max"), "123");
        assert_eq!(read("", "cpuset.cpus"), "0");
    } else {
        assert_eq!(read("cpu", "cpu.shares"), "512");
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(read("cpuset", "cpuset.cpus"), "0");
        assert_eq!(read("cpuset", "cpuset.mems"), "0");
        assert_eq!(
            read("memory", "memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            read("memory", "memory.soft_limit_in_bytes"),
            (32u64 << 20).to_string()
        );
        assert_eq!(read("memory", "memory.swappiness"), "30");
        assert!(read("memory", "memory.oom_control").contains("oom_kill_disable 1"));
        if limits.swap_accounting {
            assert_eq!(
                read("memory", "memory.memsw.limit_in_bytes"),
                (96u64 << 20).to_string()
            );
        }
        assert_eq!(read("pids", "pids.max"), "123");
    }
    if let (Some((major, minor)), Some(_)) = (disk, r.block_io()) {
        let (c, f, want) = if v2() {
            ("", "io.max", format!("{major}:{minor} rbps=1048576"))
        } else {
            (
                "blkio",
                "blkio.throttle.read_bps_device",
                format!("{major}:{minor} 1048576"),
            )
        };
        assert!(read(c, f).contains(&want), "{f}: {}", read(c, f));
    }
    // cpu.idle (5.15+) and what only one version has, through update.
    if limits.controllers.contains("cpu") && limits.cpu_idle {
        ctr.update(
            &LinuxResourcesBuilder::default()
                .cpu(LinuxCpuBuilder::default().idle(1).build().unwrap())
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(read("cpu", "cpu.idle"), "1");
    }
    if v2() {
        ctr.update(
            &LinuxResourcesBuilder::default()
                .unified(
                    [("memory.high".to_string(), "50331648".to_string())]
                        .into_iter()
                        .collect::<std::collections::HashMap<_, _>>(),
                )
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(read("", "memory.high"), "50331648");
    }
    ctr.force_delete().await.unwrap();
}

/// Bad values are refused with the field named, before any state, cgroup
/// or process exists (the runtime's drop check sees nothing left).
#[tokio::test]
async fn bad_resource_values_are_refused_before_anything_is_made() {
    let rt = runtime().await;
    let cpu = |b: LinuxCpuBuilder| {
        LinuxResourcesBuilder::default()
            .cpu(b.build().unwrap())
            .build()
            .unwrap()
    };
    let cases = [
        (
            cpu(LinuxCpuBuilder::default().quota(-5)),
            "linux.resources.cpu.quota",
        ),
        (
            cpu(LinuxCpuBuilder::default().period(0u64)),
            "linux.resources.cpu.period",
        ),
        (
            cpu(LinuxCpuBuilder::default().cpus("0-x")),
            "linux.resources.cpu.cpus",
        ),
        (
            LinuxResourcesBuilder::default()
                .devices(vec![LinuxDeviceCgroupBuilder::default()
                    .allow(true)
                    .typ(LinuxDeviceType::P)
                    .build()
                    .unwrap()])
                .build()
                .unwrap(),
            "linux.resources.devices[0].type",
        ),
        (
            LinuxResourcesBuilder::default()
                .memory(
                    LinuxMemoryBuilder::default()
                        .swappiness(200u64)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
            "linux.resources.memory.swappiness",
        ),
    ];
    for (r, want) in cases {
        let name = id("bad");
        let err = rt
            .create(&name, bundle(with_resources(spec("true"), r)))
            .await
            .expect_err(want);
        match err {
            berth::Error::InvalidSpec { field, .. } => assert_eq!(field, want),
            other => panic!("{want}: {other:?}"),
        }
        assert!(!rt.config().root.join(&name).exists());
    }
}

/// An update with a bad value, or a memory limit below what the container
/// uses, is refused before it writes anything: the earlier fields of the
/// same update are not applied either.
#[tokio::test]
async fn a_refused_update_changes_nothing() {
    let rt = runtime().await;
    // About 24 MiB in tmpfs, charged to the container's memory cgroup.
    let ctr = create_piped(
        &rt,
        "upd",
        spec("head -c 25165824 /dev/zero > /dev/shm/fill && echo filled && exec sleep 100"),
    )
    .await
    .unwrap();
    let mut out = ctr.take_stdout().unwrap();
    ctr.start().await.unwrap();
    let mut buf = [0u8; 7];
    tokio::io::AsyncReadExt::read_exact(&mut out, &mut buf)
        .await
        .unwrap();
    assert_eq!(&buf, b"filled\n");
    let pids_before = cg(&rt, "pids", ctr.id(), "pids.max");
    let mem_before = cg(&rt, "memory", ctr.id(), memory_limit_file());

    let below_usage = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(50).build().unwrap())
        .memory(
            LinuxMemoryBuilder::default()
                .limit(8 << 20)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    match ctr.update(&below_usage).await {
        Err(berth::Error::InvalidSpec { field, reason }) => {
            assert_eq!(field, "linux.resources.memory.limit");
            assert!(reason.contains("uses now"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let bad_quota = LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(50).build().unwrap())
        .cpu(LinuxCpuBuilder::default().quota(-5).build().unwrap())
        .build()
        .unwrap();
    assert!(matches!(
        ctr.update(&bad_quota).await,
        Err(berth::Error::InvalidSpec { field, .. }) if field == "linux.resources.cpu.quota"
    ));
    assert_eq!(cg(&rt, "pids", ctr.id(), "pids.max"), pids_before);
    assert_eq!(cg(&rt, "memory", ctr.id(), memory_limit_file()), mem_before);
    ctr.force_delete().await.unwrap();
}

/// `kill_all` reaches a process moved into a child cgroup of the
/// container's, and delete removes that child cgroup too.
#[tokio::test]
async fn kill_all_reaches_nested_cgroups() {
    let rt = runtime().await;
    let ctr = create_piped(&rt, "nested", spec("sleep 100 & sleep 100 & wait"))
        .await
        .unwrap();
    ctr.start().await.unwrap();
    let mut pids = Vec::new();
    for _ in 0..500 {
        pids = ctr.pids().await.unwrap();
        if pids.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pids.len(), 3, "{pids:?}");
    let path = format!("{}/{}/nested", rt.config().cgroup_parent, ctr.id());
    let sleeper = *pids.iter().find(|&&p| p != ctr.pid()).unwrap();
    let nested = if v2() {
        // A plain child directory: enabling controllers below the
        // container's (populated) cgroup would break v2's rule of no
        // processes in inner cgroups that distribute resources.
        let dir = std::path::Path::new("/sys/fs/cgroup").join(&path);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("cgroup.procs"), sleeper.to_string()).unwrap();
        berth::cgroups::Cgroup::open(&path).unwrap()
    } else {
        let nested = berth::cgroups::Cgroup::create(&path).unwrap();
        nested.add_process(sleeper).unwrap();
        nested
    };
    assert_eq!(nested.pids().unwrap(), [sleeper]);

    ctr.kill_all(berth::Signal::KILL).await.unwrap();
    assert_eq!(ctr.wait().await.unwrap(), ExitStatus::Signaled(9));
    for _ in 0..500 {
        if ctr.pids().await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ctr.pids().await.unwrap(), Vec::<i32>::new());
    ctr.delete().await.unwrap();
}

/// Reads of a file not in the page cache show in the block I/O stats, per
/// device, as the container does them.
#[tokio::test]
async fn io_stats_count_a_containers_reads() {
    use std::io::Write;
    let rt = runtime().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
    for _ in 0..4 {
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
    // Out of the page cache, so that the container's read goes to the disk.
    nix::fcntl::posix_fadvise(
        &f,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )
    .unwrap();
    let dev = nix::sys::stat::stat(&path).unwrap().st_dev;
    if nix::sys::stat::major(dev) == 0 {
        // A VM guest's initramfs or a tmpfs: no disk to count.
        eprintln!("skipping: {} is not on a block device", path.display());
        return;
    }
    let mut spec = spec("cat /data/data > /dev/null && echo read && exec sleep 100");
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.push(
        berth::oci_spec::runtime::MountBuilder::default()
            .destination("/data")
            .typ("bind")
            .source(dir.path())
            .options(vec!["bind".to_string(), "ro".to_string()])
            .build()
            .unwrap(),
    );
    spec.set_mounts(Some(mounts));
    let ctr = create_piped(&rt, "io", spec).await.unwrap();
    let mut out = ctr.take_stdout().unwrap();
    ctr.start().await.unwrap();
    let mut buf = [0u8; 5];
    tokio::io::AsyncReadExt::read_exact(&mut out, &mut buf)
        .await
        .unwrap();
    let stats = ctr.stats_now().await.unwrap();
    ctr.force_delete().await.unwrap();
    let major = nix::sys::stat::major(dev);
    let read: u64 = stats
        .blkio
        .service_bytes
        .iter()
        .filter(|e| e.major == major && e.op == "Read")
        .map(|e| e.value)
        .sum();
    assert!(
        read >= 1 << 20,
        "{read} bytes read from {major}:*: {:?}",
        stats.blkio
    );
}

/// Several event streams at once see the same lifecycle; one that is never
/// read holds nothing up and loses nothing (the events wait in the
/// container's journal).
#[tokio::test]
async fn lifecycle_events_reach_every_stream_and_a_slow_one_blocks_nothing() {
    let rt = runtime().await;
    let ctr = create_piped(&rt, "events", spec("sleep 100"))
        .await
        .unwrap();
    let watcher = ctr.events();
    let slow = ctr.events();
    ctr.start().await.unwrap();
    // Many pause/resume cycles: the unread streams must not stop them.
    for _ in 0..20 {
        ctr.pause().await.unwrap();
        ctr.resume().await.unwrap();
    }
    ctr.kill(berth::Signal::KILL).unwrap();
    let seen: Vec<Event> = watcher.map(|e| e.unwrap()).collect().await;
    let mut want = vec![Event::Created, Event::Started];
    for _ in 0..20 {
        want.extend([Event::Paused, Event::Resumed]);
    }
    want.push(Event::Exited(ExitStatus::Signaled(9)));
    assert_eq!(seen, want);
    let slow: Vec<Event> = slow.map(|e| e.unwrap()).collect().await;
    assert_eq!(slow, want);
    ctr.delete().await.unwrap();
}

/// A relative `cgroupsPath` lands under the runtime's cgroup parent, an
/// absolute one at the hierarchy roots; nested paths are made and, with
/// their emptied parents, removed on delete.
#[tokio::test]
async fn cgroups_paths_absolute_relative_and_nested() {
    let rt = runtime().await;
    let top = format!("berth-test-abs-{}", std::process::id());
    for (path, expected) in [
        (
            "rel/one/two".to_string(),
            format!("{}/rel/one/two", rt.config().cgroup_parent),
        ),
        (format!("/{top}/x/y"), format!("{top}/x/y")),
    ] {
        let mut s = spec("sleep 100");
        let mut linux = s.linux().clone().unwrap();
        linux.set_cgroups_path(Some(path.clone().into()));
        s.set_linux(Some(linux));
        let ctr = create_piped(&rt, "cgpath", s).await.unwrap();
        let host_view = std::fs::read_to_string(format!("/proc/{}/cgroup", ctr.pid())).unwrap();
        let probe = berth::cgroups::Cgroup::open(&expected).unwrap();
        assert_eq!(probe.pids().unwrap(), [ctr.pid()]);
        ctr.force_delete().await.unwrap();
        assert!(
            host_view
                .lines()
                .all(|l| l.ends_with(&format!(":/{expected}"))),
            "{path}: {host_view}"
        );
    }
    // Removed with the emptied parents, all the way up.
    for m in ["pids", "memory", ""] {
        let dir = if v2() || m.is_empty() {
            std::path::PathBuf::from("/sys/fs/cgroup").join(&top)
        } else {
            std::path::PathBuf::from("/sys/fs/cgroup")
                .join(m)
                .join(&top)
        };
        assert!(!dir.exists(), "{} left", dir.display());
    }
}

/// A parent cgroup someone else made (as the kubelet makes a pod's, with
/// the pod's limits) outlives its last container; the parents berth made
/// for an absolute `cgroupsPath` go with it.
#[tokio::test]
async fn a_parent_cgroup_berth_did_not_make_outlives_its_containers() {
    let rt = runtime().await;
    let pod = format!("berth-test-pod-{}", std::process::id());
    let pod_cgroup = berth::cgroups::Cgroup::create(&pod).unwrap();
    let limit = (96u64 << 20).to_string();
    let memory_dir = |rel: &str| {
        if v2() {
            format!("/sys/fs/cgroup/{rel}")
        } else {
            format!("/sys/fs/cgroup/memory/{rel}")
        }
    };
    let limit_file = format!("{}/{}", memory_dir(&pod), memory_limit_file());
    std::fs::write(&limit_file, &limit).unwrap();

    for (id, path) in [
        ("in-pod", format!("/{pod}/ctr")),
        ("in-made", format!("/{pod}/made/ctr")),
    ] {
        let mut s = spec("true");
        let mut linux = s.linux().clone().unwrap();
        linux.set_cgroups_path(Some(path.into()));
        s.set_linux(Some(linux));
        let ctr = create_piped(&rt, id, s).await.unwrap();
        ctr.start().await.unwrap();
        ctr.wait().await.unwrap();
        ctr.delete().await.unwrap();
    }
    for leaf in ["ctr", "made/ctr", "made"] {
        let dir = memory_dir(&format!("{pod}/{leaf}"));
        assert!(!std::path::Path::new(&dir).exists(), "{dir} left");
    }
    assert_eq!(
        std::fs::read_to_string(&limit_file).unwrap().trim(),
        limit,
        "the pod's cgroup lost its limit"
    );
    pod_cgroup.delete().await.unwrap();
    assert!(!std::path::Path::new(&memory_dir(&pod)).exists());
}

/// The unprivileged user of the rootless test (`nobody`).
const ROOTLESS_UID: u32 = 65534;
/// Set in the rootless test's second run (as [`ROOTLESS_UID`]): its state
/// directory.
const ROOTLESS_DIR_ENV: &str = "BERTH_ROOTLESS_CGROUP_DIR";
/// Set with [`ROOTLESS_DIR_ENV`] on a v2 host: the cgroup delegated to the
/// user, as systemd delegates `user@UID.service` (the user owns it and its
/// `cgroup.procs`, `cgroup.subtree_control` and `cgroup.threads`).
const DELEGATED_ENV: &str = "BERTH_DELEGATED_CGROUP";

/// A rootless spec (the caller mapped to root) running `script`, with a
/// 16 MiB memory limit and `cgroups_path`.
fn rootless_limited(script: &str, cgroups_path: &str) -> Spec {
    use berth::oci_spec::runtime::{get_rootless_mounts, Linux};
    let mut s = spec(script);
    let mut linux = Linux::rootless(ROOTLESS_UID, ROOTLESS_UID);
    linux.set_cgroups_path(Some(cgroups_path.into()));
    s.set_linux(Some(linux));
    s.set_mounts(Some(get_rootless_mounts()));
    let mem = LinuxMemoryBuilder::default()
        .limit(16 << 20)
        .swap(16 << 20)
        .build()
        .unwrap();
    with_resources(
        s,
        LinuxResourcesBuilder::default()
            .memory(mem)
            .build()
            .unwrap(),
    )
}

/// The unprivileged half of the test below.
async fn rootless_limits(dir: &std::path::Path, delegated: Option<String>) {
    let mut config = berth::Config::default();
    config.root = dir.join("state");
    let rt = berth::Runtime::new(config).await.unwrap();
    let opts = || {
        let mut o = berth::CreateOptions::default();
        o.stdin = berth::Stdio::Null;
        o.stdout = berth::Stdio::Null;
        o.stderr = berth::Stdio::Inherit;
        o
    };

    // A cgroup nobody delegated: refused, naming the limit, nothing made.
    let undelegated = format!("/berth-undelegated-{}", std::process::id());
    let err = rt
        .create_with(
            &id("rootless-refused"),
            bundle(rootless_limited("true", &undelegated)),
            opts(),
        )
        .await
        .expect_err("a limit in a cgroup the user cannot write");
    let text = err.to_string();
    assert!(
        matches!(err, berth::Error::Unsupported(_))
            && text.contains("linux.resources.memory")
            && text.contains("not delegated"),
        "{err:?}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.join("state"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "state left by a refused create: {left:?}");

    let Some(delegated) = delegated else { return };
    // In the delegated cgroup the limit is set, and enforced: an OOM kill,
    // seen as an event.
    // Inside, /sys/fs/cgroup is the container's own cgroup (the kernel
    // refuses a fresh cgroup2 mount over the host's /sys that a rootless
    // spec binds: berth binds the cgroup instead, as runc does).
    let path = format!("{delegated}/ctr");
    let script = "cat /sys/fs/cgroup/memory.max; sleep 0.2; exec tail /dev/zero";
    let ctr = rt
        .create_with(
            &id("rootless-limited"),
            bundle(rootless_limited(script, &path)),
            {
                let mut o = opts();
                o.stdout = berth::Stdio::Piped;
                o
            },
        )
        .await
        .unwrap();
    let mut stdout = ctr.take_stdout().unwrap();
    let dir_of = |file: &str| format!("/sys/fs/cgroup{path}/{file}");
    let max = std::fs::read_to_string(dir_of("memory.max")).unwrap();
    assert_eq!(max.trim(), (16u64 << 20).to_string());
    let procs = std::fs::read_to_string(dir_of("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), ctr.pid().to_string());
    let events = ctr.events();
    ctr.start().await.unwrap();
    assert_one_oom_kill(events).await;
    let mut seen = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut seen)
        .await
        .unwrap();
    assert_eq!(
        seen.trim(),
        (16u64 << 20).to_string(),
        "the container's view"
    );
    let counts = std::fs::read_to_string(dir_of("memory.events")).unwrap();
    assert!(counts.contains("oom_kill 1"), "{counts}");
    ctr.delete().await.unwrap();
    assert!(
        !std::path::Path::new(&format!("/sys/fs/cgroup{path}")).exists(),
        "the container's cgroup was left"
    );
    println!("delegated limits applied and enforced");
}

/// What the test below made as root, undone even when it fails.
struct Delegation {
    cgroup: Option<std::path::PathBuf>,
    userns_sysctl: Option<String>,
}

impl Drop for Delegation {
    fn drop(&mut self) {
        if let Some(top) = &self.cgroup {
            // The user's embedder has exited: its cgroup empties as the
            // kernel finishes the exit.
            for dir in [top.join("embedder"), top.clone()] {
                for _ in 0..200 {
                    if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        if let Some(old) = &self.userns_sysctl {
            let _ = std::fs::write("/proc/sys/kernel/unprivileged_userns_clone", old);
        }
    }
}

/// Rootless resource limits: refused with a typed error naming the limit
/// where no cgroup is delegated to the user (every host), applied and
/// enforced in a delegated cgroup v2 subtree (the v2 guests of `cargo xtask
/// vm-test`; a hybrid or v1 host has no such delegation). The test (root)
/// delegates a cgroup to `nobody` and runs itself again as `nobody`, placed
/// in that cgroup as a systemd user session would be.
#[test]
fn rootless_limits_apply_in_a_delegated_cgroup_and_are_refused_elsewhere() {
    use std::io::Write;
    use std::os::unix::fs::{chown, PermissionsExt};
    use std::os::unix::process::CommandExt;

    if let Some(dir) = std::env::var_os(ROOTLESS_DIR_ENV) {
        // Wait until the parent has placed this process.
        let mut go = String::new();
        std::io::stdin().read_line(&mut go).unwrap();
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let delegated = std::env::var(DELEGATED_ENV).ok();
        tokio.block_on(rootless_limits(std::path::Path::new(&dir), delegated));
        return;
    }
    berth_fixtures::require_root();
    let _ = rootfs();
    let mut made = Delegation {
        cgroup: None,
        userns_sysctl: None,
    };
    let sysctl = "/proc/sys/kernel/unprivileged_userns_clone";
    if let Ok(old) = std::fs::read_to_string(sysctl) {
        if old.trim() == "0" {
            std::fs::write(sysctl, "1").unwrap();
            made.userns_sysctl = Some(old);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    chown(dir.path(), Some(ROOTLESS_UID), Some(ROOTLESS_UID)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let me = std::env::current_exe().unwrap();
    let name = "rootless_limits_apply_in_a_delegated_cgroup_and_are_refused_elsewhere";
    let mut cmd = std::process::Command::new(&me);
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .uid(ROOTLESS_UID)
        .gid(ROOTLESS_UID)
        .env(ROOTLESS_DIR_ENV, dir.path())
        .env("XDG_RUNTIME_DIR", dir.path())
        .env_remove("BERTH_ROOT")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if v2() {
        let top = std::path::PathBuf::from(format!(
            "/sys/fs/cgroup/berth-delegated-{}",
            std::process::id()
        ));
        std::fs::create_dir(&top).unwrap();
        made.cgroup = Some(top.clone());
        std::fs::write(top.join("cgroup.subtree_control"), "+memory +pids").unwrap();
        std::fs::create_dir(top.join("embedder")).unwrap();
        for dir in [&top, &top.join("embedder")] {
            for entry in [
                "",
                "cgroup.procs",
                "cgroup.subtree_control",
                "cgroup.threads",
            ] {
                chown(dir.join(entry), Some(ROOTLESS_UID), Some(ROOTLESS_UID)).unwrap();
            }
        }
        cmd.env(
            DELEGATED_ENV,
            format!("/{}", top.file_name().unwrap().to_str().unwrap()),
        );
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(top) = &made.cgroup {
        std::fs::write(top.join("embedder/cgroup.procs"), child.id().to_string()).unwrap();
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "as nobody:\n{text}");
    assert!(text.contains("1 passed"), "{text}");
    if v2() {
        assert!(
            text.contains("delegated limits applied and enforced"),
            "{text}"
        );
    } else {
        eprintln!("not a cgroup v2 host: only the refusal was checked here");
    }
}
