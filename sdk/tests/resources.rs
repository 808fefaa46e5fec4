//! Limits the kernel enforces, checked through what the cgroup files and
//! the container's processes show (this machine: cgroup v1 controllers).

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

fn v1(rt: &TestRuntime, controller: &str, id: &str, file: &str) -> String {
    let p = format!(
        "/sys/fs/cgroup/{controller}/{}/{id}/{file}",
        rt.config().cgroup_parent
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
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
    let all: Vec<Event> = tokio::time::timeout(Duration::from_secs(30), events.collect::<Vec<_>>())
        .await
        .expect("the events stream did not end with the container")
        .into_iter()
        .map(|e| e.unwrap())
        .collect();
    // One OOM kill, of the container's only process.
    assert_eq!(all, [Event::Oom, Event::Exited(ExitStatus::Signaled(9))]);
    let control = v1(&rt, "memory", ctr.id(), "memory.oom_control");
    assert!(control.contains("oom_kill 1"), "{control}");
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
    let current: u64 = v1(&rt, "pids", ctr.id(), "pids.current")
        .trim()
        .parse()
        .unwrap();
    assert!(current <= 10, "pids.current {current} over the limit");
    let events = v1(&rt, "pids", ctr.id(), "pids.events");
    let denied: u64 = events.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(denied > 0, "no fork was refused: {events}");
    ctr.delete(true).await.unwrap();
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
    let before = ctr.stats_now().unwrap().cpu.usage.total;
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let used = ctr.stats_now().unwrap().cpu.usage.total - before;
    let wall = started.elapsed().as_nanos() as u64;
    let stat = v1(&rt, "cpu", ctr.id(), "cpu.stat");
    let throttled: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("nr_throttled "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ctr.delete(true).await.unwrap();
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
    let list = v1(&rt, "devices", ctr.id(), "devices.list");
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
    .unwrap();
    ctr.start().await.unwrap();
    let out = finish(ctr).await.unwrap();
    assert!(list.contains("c 10:229 rwm"), "{list}");
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
    assert_eq!(
        v1(&rt, "freezer", ctr.id(), "freezer.state").trim(),
        "FROZEN"
    );
    let frozen = read();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(read(), frozen, "the counter moved while paused");
    ctr.resume().unwrap();
    let mut moved = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if read() > frozen {
            moved = true;
            break;
        }
    }
    assert!(moved, "the counter did not go on after resume");
    ctr.delete(true).await.unwrap();
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
        v1(&rt, "memory", ctr.id(), "memory.limit_in_bytes").trim(),
        (64u64 << 20).to_string()
    );
    ctr.update(&mem(128 << 20)).unwrap();
    assert_eq!(
        v1(&rt, "memory", ctr.id(), "memory.limit_in_bytes").trim(),
        (128u64 << 20).to_string()
    );
    let s = ctr.stats_now().unwrap();
    assert_eq!(s.memory.usage.limit, 128 << 20);
    ctr.delete(true).await.unwrap();
}

#[tokio::test]
async fn the_stats_stream_samples_until_the_container_ends() {
    let rt = runtime().await;
    let ctr = create_piped(&rt, "stats", spec("sleep 1")).await.unwrap();
    ctr.start().await.unwrap();
    let samples: Vec<_> = ctr.stats(Duration::from_millis(100)).collect().await;
    assert!(samples.len() >= 3, "{} samples", samples.len());
    for s in &samples {
        let s = s.as_ref().unwrap();
        assert!(s.pids.current >= 1);
        assert!(s.memory.usage.usage > 0);
    }
    finish(ctr).await.unwrap();
}

#[tokio::test]
async fn a_paused_container_can_be_force_deleted() {
    let rt = runtime().await;
    let ctr = create_piped(&rt, "frozen", spec("sleep 100"))
        .await
        .unwrap();
    ctr.start().await.unwrap();
    ctr.pause().await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), ctr.delete(true))
        .await
        .expect("delete of a paused container hung")
        .unwrap();
}
