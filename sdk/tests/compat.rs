//! Spec fields berth used to ignore or refuse where runc or crun apply them
//! (issue #15): time namespace offsets, the NUMA memory policy, the
//! personality of processes that join a container, v1's TCP memory limit
//! and ambient capabilities outside the inheritable set. runc 1.1.5 knows
//! none of the first four and crun 1.8.1 does not run on a hybrid cgroup
//! host, so these are checked against what the kernel shows.

mod common;

use std::collections::HashMap;

use berth::oci_spec::runtime::{
    Capability, LinuxCapabilitiesBuilder, LinuxMemoryBuilder, LinuxMemoryPolicy,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPersonalityBuilder, LinuxPersonalityDomain,
    LinuxResourcesBuilder, LinuxTimeOffset, MemoryPolicyModeType, Spec,
};
use common::*;
use tokio::io::AsyncReadExt;

fn with_namespace(mut spec: Spec, typ: LinuxNamespaceType) -> Spec {
    let mut linux = spec.linux().clone().unwrap();
    let mut ns = linux.namespaces().clone().unwrap_or_default();
    ns.push(LinuxNamespaceBuilder::default().typ(typ).build().unwrap());
    linux.set_namespaces(Some(ns));
    spec.set_linux(Some(linux));
    spec
}

fn edit_linux(mut spec: Spec, f: impl FnOnce(&mut berth::oci_spec::runtime::Linux)) -> Spec {
    let mut linux = spec.linux().clone().unwrap();
    f(&mut linux);
    spec.set_linux(Some(linux));
    spec
}

fn host_uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// `linux.timeOffsets` shift the clocks of the container's time namespace:
/// its `/proc/uptime` (the boottime clock) runs ahead by the offset.
#[tokio::test]
async fn time_offsets_shift_the_container_clocks() {
    let rt = runtime().await;
    const DAYS_10: i64 = 864_000;
    let spec = with_namespace(
        spec("cat /proc/self/timens_offsets; cut -d. -f1 /proc/uptime"),
        LinuxNamespaceType::Time,
    );
    let spec = edit_linux(spec, |l| {
        let mut offsets = HashMap::new();
        let mut boot = LinuxTimeOffset::default();
        boot.set_secs(Some(DAYS_10));
        let mut mono = LinuxTimeOffset::default();
        mono.set_secs(Some(7)).set_nanosecs(Some(5));
        offsets.insert("boottime".to_string(), boot);
        offsets.insert("monotonic".to_string(), mono);
        l.set_time_offsets(Some(offsets));
    });
    let before = host_uptime();
    let out = run(&rt, "timens", spec).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let offsets: Vec<Vec<&str>> = lines[..2]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(offsets.contains(&vec!["monotonic", "7", "5"]), "{lines:?}");
    assert!(
        offsets.contains(&vec!["boottime", &DAYS_10.to_string(), "0"]),
        "{lines:?}"
    );
    let inside: f64 = lines[2].parse().unwrap();
    assert!(
        inside >= before + DAYS_10 as f64 - 1.0,
        "{inside} vs {before}"
    );
}

/// Offsets without a time namespace are a spec error naming the field.
#[tokio::test]
async fn time_offsets_without_a_time_namespace_are_refused() {
    let rt = runtime().await;
    let spec = edit_linux(spec("true"), |l| {
        let mut offsets = HashMap::new();
        offsets.insert("monotonic".to_string(), LinuxTimeOffset::default());
        l.set_time_offsets(Some(offsets));
    });
    let e = run(&rt, "timens-none", spec).await.unwrap_err();
    assert!(e.to_string().contains("linux.timeOffsets"), "{e}");
}

/// `linux.memoryPolicy` is the policy of the container's process: its
/// mappings show `bind:0` in numa_maps.
#[tokio::test]
async fn memory_policy_binds_the_process_memory() {
    let rt = runtime().await;
    let spec = edit_linux(spec("grep -c 'bind:0' /proc/self/numa_maps"), |l| {
        let mut p = LinuxMemoryPolicy::default();
        p.set_mode(MemoryPolicyModeType::MpolBind)
            .set_nodes(Some("0".into()));
        l.set_memory_policy(Some(p));
    });
    let out = run(&rt, "mempolicy", spec).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let n: u32 = out.stdout.trim().parse().unwrap();
    assert!(n > 0, "{out:?}");
    // Without a policy, none is bound.
    let out = run(
        &rt,
        "mempolicy",
        common::spec("grep -c 'bind:' /proc/self/numa_maps"),
    )
    .await
    .unwrap();
    assert_eq!(out.stdout.trim(), "0", "{out:?}");
}

/// A node the host does not have is a spec error naming the field.
#[tokio::test]
async fn memory_policy_on_a_missing_node_is_refused() {
    let rt = runtime().await;
    let spec = edit_linux(spec("true"), |l| {
        let mut p = LinuxMemoryPolicy::default();
        p.set_mode(MemoryPolicyModeType::MpolBind)
            .set_nodes(Some("1000".into()));
        l.set_memory_policy(Some(p));
    });
    let e = run(&rt, "mempolicy-bad", spec).await.unwrap_err();
    assert!(e.to_string().contains("linux.memoryPolicy.nodes"), "{e}");
}

/// A process that joins a container runs with the container's
/// `linux.personality`, like its first process.
#[tokio::test]
async fn exec_runs_with_the_container_personality() {
    let rt = runtime().await;
    let spec = edit_linux(spec("uname -m; sleep 100"), |l| {
        l.set_personality(Some(
            LinuxPersonalityBuilder::default()
                .domain(LinuxPersonalityDomain::PerLinux32)
                .build()
                .unwrap(),
        ));
    });
    let ctr = create_piped(&rt, "personality", spec).await.unwrap();
    ctr.start().await.unwrap();
    let mut process = common::spec("").process().clone().unwrap();
    process.set_args(Some(vec!["uname".into(), "-m".into()]));
    let mut opts = berth::ExecOptions::default();
    opts.stdout = berth::Stdio::Piped;
    let p = ctr.exec(&process, opts).await.unwrap();
    let mut out = p.take_stdout().unwrap();
    let mut exec_arch = String::new();
    out.read_to_string(&mut exec_arch).await.unwrap();
    assert!(p.wait().await.unwrap().success());
    ctr.kill(berth::Signal::KILL).unwrap();
    let init = finish(ctr).await.unwrap();
    let init_arch = init.stdout.lines().next().unwrap_or_default().to_string();
    assert!(
        init_arch.starts_with('i') && init_arch.ends_with("86"),
        "{init_arch}"
    );
    assert_eq!(exec_arch.trim(), init_arch);
}

/// `linux.resources.memory.kernelTCP` is the v1 TCP buffer limit, as crun
/// applies it.
#[tokio::test]
async fn kernel_tcp_limit_is_applied_on_v1() {
    if berth::cgroup_layout() == berth::CgroupLayout::V2 {
        eprintln!("skipped: cgroup v2 has no kernelTCP limit (crun ignores it there too)");
        return;
    }
    let rt = runtime().await;
    let mut s = spec("sleep 100");
    let limit: i64 = 16 << 20;
    let resources = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .kernel_tcp(limit)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let mut linux = s.linux().clone().unwrap();
    linux.set_resources(Some(resources));
    s.set_linux(Some(linux));
    let ctr = create_piped(&rt, "kerneltcp", s).await.unwrap();
    let file = format!(
        "/sys/fs/cgroup/memory/{}/{}/memory.kmem.tcp.limit_in_bytes",
        rt.config().cgroup_parent,
        ctr.id()
    );
    let value = std::fs::read_to_string(&file);
    ctr.kill(berth::Signal::KILL).unwrap();
    let _ = ctr.wait().await;
    ctr.force_delete().await.unwrap();
    assert_eq!(value.unwrap().trim(), limit.to_string());
}

/// Ambient capabilities outside the inheritable set (as `runc spec` and
/// `crun spec` write them) are skipped, not refused: the set stays empty.
#[tokio::test]
async fn ambient_capabilities_outside_inheritable_are_skipped() {
    let rt = runtime().await;
    let mut s = spec("grep -E '^Cap(Amb|Inh|Eff)' /proc/self/status");
    let caps = [Capability::Kill, Capability::NetBindService];
    let mut process = s.process().clone().unwrap();
    process.set_capabilities(Some(
        LinuxCapabilitiesBuilder::default()
            .bounding(caps)
            .effective(caps)
            .permitted(caps)
            .ambient(caps)
            .inheritable(std::collections::HashSet::new())
            .build()
            .unwrap(),
    ));
    s.set_process(Some(process));
    let out = run(&rt, "ambient", s).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.contains("CapAmb:\t0000000000000000"), "{out:?}");
    assert!(out.stdout.contains("CapEff:\t0000000000000420"), "{out:?}");
}

/// The mount points under `path` in this process's mountinfo, and the
/// propagation fields of `/`.
fn mounts_under(path: &std::path::Path) -> (Vec<String>, String) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = path.to_str().unwrap();
    let under = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .map(String::from)
        .collect();
    let root = info
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .map(|l| {
            l.split_whitespace()
                .skip(6)
                .take_while(|f| *f != "-")
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    (under, root)
}

/// Without a mount namespace (OCI: an unlisted namespace is inherited) the
/// container runs chrooted in its rootfs, its mounts made in the host's
/// namespace under a private bind of the rootfs; delete removes every one
/// of them, and the host's `/` keeps its propagation.
#[tokio::test]
async fn no_mount_namespace_runs_and_delete_removes_its_host_mounts() {
    let rt = runtime().await;
    let rootfs = tempfile::tempdir().unwrap();
    berth_fixtures::rootfs::build(rootfs.path()).unwrap();
    let mut s = spec("ls /");
    let mut root = s.root().clone().unwrap();
    root.set_path(rootfs.path().to_path_buf());
    s.set_root(Some(root));
    let s = edit_linux(s, |l| {
        let ns = l
            .namespaces()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.typ() != LinuxNamespaceType::Mount)
            .collect();
        l.set_namespaces(Some(ns));
    });
    let spec_without_mountns = s.clone();
    let (before, root_before) = mounts_under(rootfs.path());
    assert!(before.is_empty(), "{before:?}");
    let ctr = create_piped(&rt, "no-mountns", s).await.unwrap();
    let (during, _) = mounts_under(rootfs.path());
    // The rootfs bind, /proc, /dev and the rest: on the host, for now.
    assert!(during.len() >= 3, "{during:?}");
    assert!(during.iter().any(|m| m.ends_with("/proc")), "{during:?}");
    let own = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let its = std::fs::read_link(format!("/proc/{}/ns/mnt", ctr.pid())).unwrap();
    assert_eq!(own, its, "the container has a mount namespace of its own");
    ctr.start().await.unwrap();
    let out = finish(ctr).await.unwrap();
    // It saw its rootfs as /.
    assert!(out.stdout.lines().any(|l| l == "bin"), "{out:?}");
    let (after, root_after) = mounts_under(rootfs.path());
    assert!(after.is_empty(), "left on the host: {after:?}");
    assert_eq!(root_before, root_after, "the host's / changed propagation");

    // A create that fails after some mounts were made removes them too.
    let mut bad = spec_without_mountns.clone();
    let mut mounts = bad.mounts().clone().unwrap_or_default();
    mounts.push(
        berth::oci_spec::runtime::MountBuilder::default()
            .destination("/scratch")
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec!["nosuchoption".to_string()])
            .build()
            .unwrap(),
    );
    bad.set_mounts(Some(mounts));
    let e = create_piped(&rt, "no-mountns-bad", bad).await.unwrap_err();
    assert!(e.to_string().contains("/scratch"), "{e}");
    let (after, _) = mounts_under(rootfs.path());
    assert!(
        after.is_empty(),
        "left on the host after a failed create: {after:?}"
    );
}
