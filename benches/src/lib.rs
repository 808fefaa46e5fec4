//! Shared set-up of berth's benchmarks: a runtime with a state root of its
//! own, specs that run `/bin/true` on the busybox rootfs (with and without a
//! network or user namespace), and lifecycle drivers that time one phase or
//! keep many containers in flight.

pub mod phase_spans;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth::oci_spec::runtime::{
    LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Spec,
};
use berth::{Bundle, Config, Container, CreateOptions, Runtime, Stdio};

/// A runtime whose state and cgroups are named after this process.
pub async fn runtime() -> Runtime {
    let name = format!("berth-bench-{}", std::process::id());
    Runtime::new({
        let mut config = Config::default();
        config.root = format!("/run/{name}").into();
        config.cgroup_parent = name;
        config
    })
    .await
    .expect("runtime (benchmarks need root)")
}

/// runc's default spec (every namespace but user, a cgroup) running
/// `/bin/true` from the shared busybox rootfs.
pub fn true_spec() -> Spec {
    spec(&["/bin/true"])
}

/// runc's default spec running `args` from the shared busybox rootfs.
pub fn spec(args: &[&str]) -> Spec {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut spec = berth_fixtures::bundle::spec(&args);
    let mut root = spec.root().clone().expect("root");
    root.set_path(berth_fixtures::rootfs::shared().expect("rootfs"));
    spec.set_root(Some(root));
    spec
}

/// `spec` without its network namespace (the container shares the host's).
pub fn without_netns(mut spec: Spec) -> Spec {
    let mut linux = spec.linux().clone().expect("linux");
    let namespaces = linux
        .namespaces()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.typ() != LinuxNamespaceType::Network)
        .collect();
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
    spec
}

/// `spec` with a new user namespace mapping container root to host uid and
/// gid 200000 (65536 ids), and without the cgroup mount (v1 cgroupfs cannot
/// be mounted from a user namespace).
pub fn with_userns(mut spec: Spec) -> Spec {
    let mut linux = spec.linux().clone().expect("linux");
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::User)
            .build()
            .expect("namespace"),
    );
    linux.set_namespaces(Some(namespaces));
    let map = LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(200000u32)
        .size(65536u32)
        .build()
        .expect("id map");
    linux.set_uid_mappings(Some(vec![map]));
    linux.set_gid_mappings(Some(vec![map]));
    spec.set_linux(Some(linux));
    let mounts = spec
        .mounts()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.typ().as_deref() != Some("cgroup"))
        .collect();
    spec.set_mounts(Some(mounts));
    spec
}

/// A bundle around `spec`.
pub fn bundle(spec: Spec) -> Bundle {
    Bundle::new(std::env::temp_dir(), spec).expect("bundle")
}

/// A container id unique in this process.
pub fn unique_id() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("b{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Creates a container with stdio on `/dev/null`.
pub async fn create(rt: &Runtime, spec: &Spec) -> Container {
    let mut opts = CreateOptions::default();
    opts.stdin = Stdio::Null;
    opts.stdout = Stdio::Null;
    opts.stderr = Stdio::Null;
    rt.create_with(&unique_id(), bundle(spec.clone()), opts)
        .await
        .expect("create")
}

/// One create + start + wait + delete.
pub async fn lifecycle(rt: &Runtime, spec: &Spec) {
    lifecycle_phases(rt, spec).await;
}

/// How long each phase of one lifecycle took.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    /// `Runtime::create_with`.
    pub create: Duration,
    /// `Container::start`.
    pub start: Duration,
    /// `Container::wait` (the process runs and exits).
    pub wait: Duration,
    /// `Container::delete`.
    pub delete: Duration,
}

/// One create + start + wait + delete, timing each phase.
pub async fn lifecycle_phases(rt: &Runtime, spec: &Spec) -> Phases {
    let t0 = Instant::now();
    let ctr = create(rt, spec).await;
    let t1 = Instant::now();
    ctr.start().await.expect("start");
    let t2 = Instant::now();
    let status = ctr.wait().await.expect("wait");
    assert!(status.success(), "{status}");
    let t3 = Instant::now();
    ctr.delete().await.expect("delete");
    let t4 = Instant::now();
    Phases {
        create: t1 - t0,
        start: t2 - t1,
        wait: t3 - t2,
        delete: t4 - t3,
    }
}

/// Runs `total` lifecycles with at most `in_flight` at a time (a new one
/// starts as soon as one ends), and returns the wall time.
pub async fn concurrent(rt: &Runtime, spec: &Spec, in_flight: usize, total: usize) -> Duration {
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let mut started = 0;
    while started < total.min(in_flight) {
        set.spawn(spawn_one(rt.clone(), spec.clone()));
        started += 1;
    }
    while let Some(r) = set.join_next().await {
        r.expect("lifecycle task");
        if started < total {
            set.spawn(spawn_one(rt.clone(), spec.clone()));
            started += 1;
        }
    }
    t0.elapsed()
}

async fn spawn_one(rt: Runtime, spec: Spec) {
    lifecycle(&rt, &spec).await
}

/// Removes the runtime's (empty) state root and cgroup parent after a run.
pub fn cleanup(rt: &Runtime) {
    let _ = std::fs::remove_dir(&rt.config().root);
    let parent = &rt.config().cgroup_parent;
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            let _ = std::fs::remove_dir(e.path().join(parent));
        }
    }
    let _ = std::fs::remove_dir(std::path::Path::new("/sys/fs/cgroup").join(parent));
}

/// The kind of filesystem `path` is on, by its `statfs` magic: `tmpfs`,
/// `ext2/3/4`, … or the magic number in hex.
///
/// Throughput figures depend on it: every container makes and frees about
/// ten inodes in its state directory, cheap on a tmpfs and, on an ext4
/// without a journal, slower with every inode freed in the last minutes.
pub fn filesystem_of(path: &std::path::Path) -> String {
    use nix::sys::statfs::{
        statfs, BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC,
    };
    let Ok(fs) = statfs(path) else {
        return "unknown".into();
    };
    let kind = fs.filesystem_type();
    [
        (TMPFS_MAGIC, "tmpfs"),
        (EXT4_SUPER_MAGIC, "ext2/3/4"),
        (XFS_SUPER_MAGIC, "xfs"),
        (BTRFS_SUPER_MAGIC, "btrfs"),
    ]
    .iter()
    .find(|(magic, _)| *magic == kind)
    .map_or_else(|| format!("{:#x}", kind.0), |(_, name)| name.to_string())
}

/// Allocates `bytes` and writes every page, so the memory is really mapped
/// (as in a large embedding process).
pub fn touched_memory(bytes: usize) -> Vec<u8> {
    let mut v = vec![0u8; bytes];
    for i in (0..bytes).step_by(4096) {
        v[i] = 1;
    }
    v
}

/// Opens up to `n` descriptors on `/dev/null`, as a server embedding berth
/// holds its sockets (a clone from one of its threads would copy them
/// all, and the child close them). Raises the soft descriptor limit
/// towards the hard one; opens fewer if the hard limit is lower.
pub fn open_descriptors(n: usize) -> Vec<std::fs::File> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // Room for what the runtime and its containers open meanwhile.
    const HEADROOM: u64 = 512;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return Vec::new();
    };
    let want = n as u64 + HEADROOM;
    let limit = match soft < want {
        true if setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard).is_ok() => want.min(hard),
        _ => soft,
    };
    let count = (n as u64).min(limit.saturating_sub(HEADROOM)) as usize;
    if count < n {
        eprintln!("descriptor limit {limit}: holding {count} descriptors, not {n}");
    }
    (0..count)
        .map_while(|_| std::fs::File::open("/dev/null").ok())
        .collect()
}
