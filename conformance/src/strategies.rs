//! proptest strategies: valid OCI specs within what berth supports, and
//! invalid ones it must refuse.
//!
//! A valid spec is built from a [`Params`] value (so that proptest shrinks
//! the parameters and the spec follows) on top of oci-spec's runc-like
//! default: the usual namespaces, mounts, masked and read-only paths and
//! capabilities, `root.path` set to [`Context::rootfs`] and
//! `process.args[0]` the probe. The build keeps every spec valid *and safe
//! for the host*: no hostname without a UTS namespace of the container's
//! own (or the sidecar's), no sysctl of a namespace shared with the host,
//! every rlimit within the caller's hard limits (raising one needs
//! `CAP_SYS_RESOURCE`), capabilities within the caller's bounding set, an
//! `oomScoreAdj` no lower than the caller's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxDevice, LinuxDeviceType, LinuxIdMapping,
    LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceType, Mount, PosixRlimit,
    PosixRlimitBuilder, PosixRlimitType, Root, Spec, User,
};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

use crate::oracle::{with_probe_env, Host, CAPABILITY_NAMES};

/// What the strategies need to know about the test run.
#[derive(Debug, Clone)]
pub struct Context {
    /// Absolute path of the rootfs (the probe installed in it).
    pub rootfs: PathBuf,
    /// The probe's path inside the rootfs (`/probe`).
    pub probe: String,
    /// Pid of a running container whose namespaces specs may join
    /// (`/proc/<pid>/ns/*`); `None` to never join.
    pub sidecar: Option<u32>,
    /// A host directory bind mounts may use as their source; `None` for no
    /// bind mounts.
    pub bind_source: Option<PathBuf>,
    /// The caller's view (limits, capabilities, ...).
    pub host: Host,
    /// Known berth bugs the generated specs steer around (empty: every
    /// valid spec may come up).
    pub avoid: Vec<Avoid>,
}

impl Context {
    /// True when specs must steer around `bug`.
    pub fn avoids(&self, bug: Avoid) -> bool {
        self.avoid.contains(&bug)
    }
}

/// Known berth bugs found by this harness that [`build`] can steer around
/// on request, so that a run can look for other ones. By default none is
/// avoided; see [`Avoid::parse_list`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Avoid {
    /// `process.cwd` is entered after the switch to `process.user`: a
    /// directory only root may enter (`/root`, 0700) fails for another uid
    /// with `EACCES`, where runc and crun enter it first.
    CwdAfterSetuid,
    /// Writing `oomScoreAdj` from a child that shares the caller's memory
    /// changes the caller's own `oom_score_adj` (the kernel applies it to
    /// every process of the mm), and every later container inherits it.
    OomScoreAdjLeaks,
    /// A mount with `shared`/`rshared` ends up private: after `pivot_root`
    /// berth makes `.` (the new root, not the old one) `MS_SLAVE|MS_REC`.
    SharedMountsUnshared,
    /// `rootfsPropagation: unbindable` (or `runbindable`) makes the rootfs
    /// bind mount fail with `EINVAL`.
    UnbindableRootfs,
    /// `rootfsPropagation: shared` is applied recursively, overriding
    /// mounts that ask to be private.
    SharedRootfsIsRecursive,
}

impl Avoid {
    /// Every known bug.
    pub const ALL: [Avoid; 5] = [
        Avoid::CwdAfterSetuid,
        Avoid::OomScoreAdjLeaks,
        Avoid::SharedMountsUnshared,
        Avoid::UnbindableRootfs,
        Avoid::SharedRootfsIsRecursive,
    ];

    /// The name used in [`Avoid::parse_list`].
    pub fn name(self) -> &'static str {
        match self {
            Avoid::CwdAfterSetuid => "cwd-after-setuid",
            Avoid::OomScoreAdjLeaks => "oom-score-adj-leaks",
            Avoid::SharedMountsUnshared => "shared-mounts-unshared",
            Avoid::UnbindableRootfs => "unbindable-rootfs",
            Avoid::SharedRootfsIsRecursive => "shared-rootfs-is-recursive",
        }
    }

    /// Parses a comma-separated list of names (`all` for every one), as
    /// given in `BERTH_CONFORMANCE_AVOID`.
    pub fn parse_list(list: &str) -> Result<Vec<Avoid>, String> {
        let mut out = Vec::new();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word == "all" {
                out.extend(Avoid::ALL);
                continue;
            }
            match Avoid::ALL.iter().find(|a| a.name() == word) {
                Some(a) => out.push(*a),
                None => {
                    return Err(format!(
                        "unknown bug {word:?}: known ones are all, {}",
                        Avoid::ALL.map(Avoid::name).join(", ")
                    ))
                }
            }
        }
        Ok(out)
    }
}

/// Directories of the fixture rootfs a process may start in.
pub const CWDS: [&str; 5] = ["/", "/tmp", "/root", "/home/berth", "/var/tmp"];

/// Paths a spec may mask (some do not exist on every kernel: masking a
/// missing path is a no-op).
pub const MASKABLE: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/interrupts",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths a spec may make read-only.
pub const READONLY: [&str; 7] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/sys/kernel",
    "/proc/sys/net",
];

/// The file in [`Context::bind_source`] that file bind mounts use (the
/// test creates it).
pub const BIND_SOURCE_FILE: &str = "hello";

/// First host id of the user namespace mapping (container ids
/// `0..65536`).
pub const USERNS_HOST_ID: u32 = 200_000;

/// How a spec treats one namespace type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsChoice {
    /// A new namespace.
    New,
    /// Not listed: the caller's.
    Inherit,
    /// The sidecar's, by path.
    Join,
}

/// Options shared by every extra mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonOpts {
    /// `ro` / `rw` / neither.
    pub ro: Option<bool>,
    /// `nosuid` / `suid` / neither.
    pub nosuid: Option<bool>,
    /// `nodev` / `dev` / neither.
    pub nodev: Option<bool>,
    /// `noexec` / `exec` / neither.
    pub noexec: Option<bool>,
    /// An atime option.
    pub atime: Option<&'static str>,
    /// A propagation option.
    pub propagation: Option<&'static str>,
    /// A flag repeated at the end, overriding an earlier one (the last
    /// word wins).
    pub last: Option<&'static str>,
}

impl ExtraMount {
    fn common_mut(&mut self) -> &mut CommonOpts {
        match self {
            ExtraMount::Tmpfs { common, .. }
            | ExtraMount::Devpts { common, .. }
            | ExtraMount::Bind { common, .. }
            | ExtraMount::Mqueue(common)
            | ExtraMount::Proc(common)
            | ExtraMount::Sysfs(common) => common,
        }
    }

    fn without_shared(&self) -> ExtraMount {
        let mut m = self.clone();
        let c = m.common_mut();
        c.propagation = c.propagation.filter(|p| !p.contains("shared"));
        m
    }
}

impl CommonOpts {
    fn no_atime(&self) -> CommonOpts {
        let atime = ["noatime", "atime", "strictatime", "relatime"];
        CommonOpts {
            atime: None,
            last: self.last.filter(|l| !atime.contains(l)),
            ..self.clone()
        }
    }

    fn options(&self) -> Vec<String> {
        let mut o = Vec::new();
        let mut pair = |v: Option<bool>, yes: &str, no: &str| {
            if let Some(v) = v {
                o.push(if v { yes } else { no }.to_string());
            }
        };
        pair(self.ro, "ro", "rw");
        pair(self.nosuid, "nosuid", "suid");
        pair(self.nodev, "nodev", "dev");
        pair(self.noexec, "noexec", "exec");
        o.extend(self.atime.map(str::to_string));
        o.extend(self.propagation.map(str::to_string));
        o.extend(self.last.map(str::to_string));
        o
    }
}

/// One extra mount under `/run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtraMount {
    /// A tmpfs with data options.
    Tmpfs {
        /// Flags.
        common: CommonOpts,
        /// `mode=` (octal).
        mode: Option<u32>,
        /// `size=` in KiB.
        size_k: Option<u64>,
        /// `uid=`.
        uid: Option<u32>,
        /// `gid=`.
        gid: Option<u32>,
    },
    /// An mqueue mount.
    Mqueue(CommonOpts),
    /// A second proc mount.
    Proc(CommonOpts),
    /// A sysfs mount.
    Sysfs(CommonOpts),
    /// A new devpts instance.
    Devpts {
        /// Flags.
        common: CommonOpts,
        /// `mode=`.
        mode: u32,
        /// `ptmxmode=`.
        ptmxmode: u32,
    },
    /// A bind mount of [`Context::bind_source`].
    Bind {
        /// Flags.
        common: CommonOpts,
        /// `rbind` rather than `bind`.
        recursive: bool,
        /// Bind the file `hello` in [`Context::bind_source`] rather than
        /// the directory.
        file: bool,
    },
}

/// An extra device node under `/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// `c`, `b`, `p` or `u`.
    pub kind: char,
    /// Major number.
    pub major: i64,
    /// Minor number.
    pub minor: i64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// The random choices a valid spec is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// pid, net, ipc, uts, cgroup.
    pub namespaces: [NsChoice; 5],
    /// A new user namespace (forces the others new, drops the cgroup
    /// mount, extra devices and binds).
    pub userns: bool,
    /// `hostname` (dropped without a UTS namespace of the container).
    pub hostname: Option<String>,
    /// `domainname` (same).
    pub domainname: Option<String>,
    /// Environment variables besides `PATH` (first definition kept).
    pub env: Vec<(String, String)>,
    /// Arguments after the probe's path.
    pub args: Vec<String>,
    /// `process.cwd`.
    pub cwd: &'static str,
    /// How `cwd` is spelled: 0 plain, 1 with a trailing `/`, 2 with a
    /// `/./` inside (the same directory).
    pub cwd_spelling: u8,
    /// `process.user.uid`.
    pub uid: u32,
    /// `process.user.gid`.
    pub gid: u32,
    /// `process.user.additionalGids`.
    pub additional_gids: BTreeSet<u32>,
    /// `process.user.umask`.
    pub umask: Option<u32>,
    /// `process.rlimits`, by type.
    pub rlimits: Vec<(PosixRlimitType, u64, u64)>,
    /// Capabilities: bounding, permitted, effective, inheritable, ambient
    /// (made consistent when built).
    pub caps: Option<[u64; 5]>,
    /// `process.noNewPrivileges`.
    pub no_new_privileges: Option<bool>,
    /// `process.oomScoreAdj`.
    pub oom_score_adj: Option<i32>,
    /// `linux.sysctl`.
    pub sysctls: BTreeMap<String, String>,
    /// Mount a tmpfs at `/run` (always done when there are extra mounts).
    pub run_tmpfs: bool,
    /// Mounts at `/run/m<i>`, each below `depth` more directories
    /// (`/run/m0/d/d/...`).
    pub mounts: Vec<(ExtraMount, u8)>,
    /// `/sys` read-only (the default) or not.
    pub sysfs_ro: bool,
    /// `linux.maskedPaths`.
    pub masked: Vec<&'static str>,
    /// `linux.readonlyPaths`.
    pub readonly: Vec<&'static str>,
    /// `root.readonly`.
    pub root_readonly: bool,
    /// `linux.rootfsPropagation`.
    pub rootfs_propagation: Option<&'static str>,
    /// Devices at `/dev/berth<i>`.
    pub devices: Vec<Device>,
}

fn ns_choice(join: bool) -> BoxedStrategy<NsChoice> {
    if join {
        prop_oneof![
            6 => Just(NsChoice::New),
            2 => Just(NsChoice::Inherit),
            2 => Just(NsChoice::Join),
        ]
        .boxed()
    } else {
        prop_oneof![6 => Just(NsChoice::New), 2 => Just(NsChoice::Inherit)].boxed()
    }
}

fn dns_name() -> impl Strategy<Value = String> {
    // Up to the kernel's 64 bytes.
    prop_oneof![
        9 => "[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?",
        1 => "[a-z0-9]{60,64}",
    ]
}

fn id() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => Just(0u32),
        2 => Just(1000u32),
        2 => Just(65534u32),
        1 => 1u32..70_000,
    ]
}

/// The lowest value a limit may take without stopping the probe from
/// running (an address space too small to map it, no cpu time...).
fn rlimit_floor(t: PosixRlimitType) -> u64 {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => 30,
        RlimitData | RlimitAs => 1 << 30,
        RlimitStack => 1 << 20,
        RlimitNproc => 256,
        RlimitNofile => 64,
        RlimitSigpending => 16,
        RlimitRttime => 1000,
        _ => 0,
    }
}

/// All 16 rlimit types.
pub const RLIMIT_TYPES: [PosixRlimitType; 16] = [
    PosixRlimitType::RlimitCpu,
    PosixRlimitType::RlimitFsize,
    PosixRlimitType::RlimitData,
    PosixRlimitType::RlimitStack,
    PosixRlimitType::RlimitCore,
    PosixRlimitType::RlimitRss,
    PosixRlimitType::RlimitNproc,
    PosixRlimitType::RlimitNofile,
    PosixRlimitType::RlimitMemlock,
    PosixRlimitType::RlimitAs,
    PosixRlimitType::RlimitLocks,
    PosixRlimitType::RlimitSigpending,
    PosixRlimitType::RlimitMsgqueue,
    PosixRlimitType::RlimitNice,
    PosixRlimitType::RlimitRtprio,
    PosixRlimitType::RlimitRttime,
];

/// One limit: `floor <= soft <= hard <= the caller's hard limit`, with
/// "unlimited" (`u64::MAX`) when the caller has it.
fn rlimit(t: PosixRlimitType, host_hard: u64) -> BoxedStrategy<(PosixRlimitType, u64, u64)> {
    let floor = rlimit_floor(t).min(host_hard);
    let top = if host_hard == u64::MAX {
        floor.saturating_mul(64).max(floor.saturating_add(1 << 20))
    } else {
        host_hard
    };
    let hard = if host_hard == u64::MAX {
        prop_oneof![1 => Just(u64::MAX), 3 => floor..=top].boxed()
    } else {
        (floor..=top).boxed()
    };
    (hard, any::<u64>(), 0u8..4)
        .prop_map(move |(hard, r, pick)| {
            let soft = match pick {
                0 => hard,
                _ if hard == u64::MAX => floor + r % (top - floor + 1),
                _ => floor + r % (hard - floor + 1),
            };
            (t, soft, hard)
        })
        .boxed()
}

fn rlimits(host: &Host) -> impl Strategy<Value = Vec<(PosixRlimitType, u64, u64)>> {
    let per_type: Vec<_> = RLIMIT_TYPES
        .iter()
        .map(|&t| {
            let hard = host
                .rlimits
                .get(&crate::oracle::rlimit_name(t))
                .map(|l| l.hard)
                .unwrap_or(0);
            proptest::option::weighted(0.3, rlimit(t, hard))
        })
        .collect();
    per_type.prop_map(|v| v.into_iter().flatten().collect())
}

/// Namespaced sysctls this kernel has, with a strategy for valid values,
/// and the namespace each needs.
fn sysctls() -> Vec<(&'static str, LinuxNamespaceType, BoxedStrategy<String>)> {
    use LinuxNamespaceType::{Ipc, Network};
    let n = |r: std::ops::RangeInclusive<u64>| r.prop_map(|v| v.to_string()).boxed();
    let all: Vec<(&'static str, LinuxNamespaceType, BoxedStrategy<String>)> = vec![
        ("net.ipv4.ip_forward", Network, n(0..=1)),
        (
            "net.ipv4.ping_group_range",
            Network,
            (0u32..=65535, 0u32..=65535)
                .prop_map(|(a, b)| format!("{} {}", a.min(b), a.max(b)))
                .boxed(),
        ),
        ("net.ipv4.ip_unprivileged_port_start", Network, n(0..=1024)),
        ("net.ipv4.tcp_syncookies", Network, n(0..=2)),
        ("net.ipv4.ip_default_ttl", Network, n(1..=255)),
        ("net.core.somaxconn", Network, n(16..=65535)),
        ("kernel.shmmni", Ipc, n(1..=32768)),
        ("kernel.shmmax", Ipc, n(1..=1 << 40)),
        ("kernel.shmall", Ipc, n(1..=1 << 40)),
        ("kernel.msgmax", Ipc, n(1..=1_000_000)),
        ("kernel.msgmnb", Ipc, n(1..=1_000_000)),
        ("kernel.msgmni", Ipc, n(1..=32000)),
        ("kernel.shm_rmid_forced", Ipc, n(0..=1)),
        (
            "kernel.sem",
            Ipc,
            (1u32..=32000, 1u32..=1_024_000, 1u32..=1000, 1u32..=32000)
                .prop_map(|(a, b, c, d)| format!("{a} {b} {c} {d}"))
                .boxed(),
        ),
        ("fs.mqueue.msg_max", Ipc, n(1..=65536)),
        ("fs.mqueue.msgsize_max", Ipc, n(128..=16_777_216)),
        ("fs.mqueue.queues_max", Ipc, n(0..=1000)),
    ];
    all.into_iter()
        .filter(|(k, _, _)| {
            std::path::Path::new("/proc/sys")
                .join(k.replace('.', "/"))
                .exists()
        })
        .collect()
}

fn sysctl_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    let per_key: Vec<_> = sysctls()
        .into_iter()
        .map(|(k, _, v)| proptest::option::weighted(0.15, v.prop_map(move |v| (k.to_string(), v))))
        .collect();
    per_key.prop_map(|v| v.into_iter().flatten().collect())
}

fn common_opts() -> impl Strategy<Value = CommonOpts> {
    let b = || proptest::option::of(any::<bool>());
    (
        b(),
        b(),
        b(),
        b(),
        proptest::option::of(select(vec![
            "noatime",
            "relatime",
            "strictatime",
            "nodiratime",
            "atime",
        ])),
        proptest::option::weighted(
            0.3,
            select(vec![
                "private",
                "rprivate",
                "shared",
                "rshared",
                "slave",
                "rslave",
                "unbindable",
                "runbindable",
            ]),
        ),
        proptest::option::weighted(
            0.2,
            select(vec![
                "ro",
                "rw",
                "nosuid",
                "suid",
                "nodev",
                "dev",
                "noexec",
                "exec",
                "noatime",
                "atime",
                "strictatime",
                "relatime",
                "defaults",
            ]),
        ),
    )
        .prop_map(
            |(ro, nosuid, nodev, noexec, atime, propagation, last)| CommonOpts {
                ro,
                nosuid,
                nodev,
                noexec,
                atime,
                propagation,
                last,
            },
        )
}

fn extra_mount(bind: bool) -> BoxedStrategy<ExtraMount> {
    let mode = || select(vec![0o700u32, 0o755, 0o1777, 0o750, 0o711, 0o070, 0o2775]);
    let tmpfs = (
        common_opts(),
        proptest::option::of(mode()),
        proptest::option::of((1u64..=4096).prop_map(|p| p * 4)),
        proptest::option::weighted(0.3, id()),
        proptest::option::weighted(0.3, id()),
    )
        .prop_map(|(common, mode, size_k, uid, gid)| ExtraMount::Tmpfs {
            common,
            mode,
            size_k,
            uid,
            gid,
        });
    let devpts = (
        common_opts(),
        select(vec![0o620u32, 0o600, 0o666]),
        select(vec![0o666u32, 0o000, 0o600]),
    )
        .prop_map(|(common, mode, ptmxmode)| ExtraMount::Devpts {
            common,
            mode,
            ptmxmode,
        });
    let mut choices = vec![
        (6, tmpfs.boxed()),
        (1, common_opts().prop_map(ExtraMount::Mqueue).boxed()),
        (1, common_opts().prop_map(ExtraMount::Proc).boxed()),
        (1, common_opts().prop_map(ExtraMount::Sysfs).boxed()),
        (1, devpts.boxed()),
    ];
    if bind {
        choices.push((
            2,
            (common_opts(), any::<bool>(), proptest::bool::weighted(0.3))
                .prop_map(|(common, recursive, file)| ExtraMount::Bind {
                    common,
                    recursive,
                    file,
                })
                .boxed(),
        ));
    }
    proptest::strategy::Union::new_weighted(choices).boxed()
}

fn device() -> impl Strategy<Value = Device> {
    (
        select(vec!['c', 'b', 'p', 'u']),
        1i64..=511,
        0i64..=1023,
        select(vec![0o666u32, 0o600, 0o644, 0o620, 0o000, 0o777]),
        select(vec![0u32, 5, 1000, 65534]),
        select(vec![0u32, 5, 1000, 65534]),
    )
        .prop_map(|(kind, major, minor, mode, uid, gid)| Device {
            kind,
            major,
            minor,
            mode,
            uid,
            gid,
        })
}

/// Random [`Params`] for `ctx`.
pub fn params(ctx: &Context) -> impl Strategy<Value = Params> {
    let join = ctx.sidecar.is_some();
    // Capabilities of the kernel (the bounding set of the caller limits
    // them outside a user namespace: see `build`).
    let last = ctx.host.last_cap.min(63);
    let caps = proptest::bits::u64::masked(u64::MAX >> (63 - last));
    let min_oom = ctx.host.oom_score_adj;
    let identity = (
        [
            ns_choice(join),
            ns_choice(join),
            ns_choice(join),
            ns_choice(join),
            ns_choice(join),
        ],
        proptest::bool::weighted(0.15),
        proptest::option::weighted(0.8, dns_name()),
        proptest::option::weighted(0.3, dns_name()),
        proptest::collection::vec(("E_[A-Z0-9_]{0,8}", "\\PC{0,16}"), 0..6),
        proptest::collection::vec("\\PC{0,12}", 0..4),
        (
            select(CWDS.to_vec()),
            prop_oneof![4 => Just(0u8), 1 => 1u8..=2],
        ),
        id(),
        id(),
        prop_oneof![
            9 => proptest::collection::btree_set(id(), 0..5),
            1 => proptest::collection::btree_set(1u32..70_000, 20..70),
        ],
        proptest::option::of(0u32..=0o777),
    );
    let process = (
        rlimits(&ctx.host),
        proptest::option::weighted(0.8, [caps; 5]),
        proptest::option::of(any::<bool>()),
        proptest::option::weighted(0.5, min_oom..=1000),
        sysctl_map(),
    );
    let fs = (
        any::<bool>(),
        proptest::collection::vec(
            (
                extra_mount(ctx.bind_source.is_some()),
                prop_oneof![6 => Just(0u8), 1 => 1u8..=20],
            ),
            0..4,
        ),
        proptest::bool::weighted(0.8),
        subsequence(MASKABLE.to_vec(), 0..=MASKABLE.len()),
        subsequence(READONLY.to_vec(), 0..=READONLY.len()),
        proptest::bool::weighted(0.7),
        proptest::option::weighted(
            0.2,
            select(vec![
                "private",
                "rprivate",
                "slave",
                "rslave",
                "shared",
                "rshared",
                "unbindable",
                "runbindable",
            ]),
        ),
        proptest::collection::vec(device(), 0..3),
    );
    (identity, process, fs).prop_map(
        |(
            (
                namespaces,
                userns,
                hostname,
                domainname,
                env,
                args,
                (cwd, cwd_spelling),
                uid,
                gid,
                additional_gids,
                umask,
            ),
            (rlimits, caps, no_new_privileges, oom_score_adj, sysctls),
            (
                run_tmpfs,
                mounts,
                sysfs_ro,
                masked,
                readonly,
                root_readonly,
                rootfs_propagation,
                devices,
            ),
        )| Params {
            namespaces,
            userns,
            hostname,
            domainname,
            env,
            args,
            cwd,
            cwd_spelling,
            uid,
            gid,
            additional_gids,
            umask,
            rlimits,
            caps,
            no_new_privileges,
            oom_score_adj,
            sysctls,
            run_tmpfs,
            mounts,
            sysfs_ro,
            masked,
            readonly,
            root_readonly,
            rootfs_propagation,
            devices,
        },
    )
}

/// Valid specs for `ctx`: [`params`] built by [`build`].
pub fn valid_spec(ctx: &Context) -> impl Strategy<Value = Spec> {
    let ctx = ctx.clone();
    params(&ctx).prop_map(move |p| build(&ctx, &p))
}

fn capabilities(mask: u64) -> Vec<Capability> {
    (0..64)
        .filter(|n| mask & (1 << n) != 0)
        .filter_map(|n| CAPABILITY_NAMES.get(n))
        .filter_map(|name| serde_json::from_value(serde_json::Value::from(*name)).ok())
        .collect()
}

fn mount(destination: &str, typ: &str, source: &str, options: Vec<String>) -> Mount {
    let mut m = Mount::default();
    m.set_destination(destination.into());
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(source.into()));
    m.set_options((!options.is_empty()).then_some(options));
    m
}

/// The runc-like default spec berth's fixtures use, on `ctx.rootfs`,
/// running the probe: oci-spec's default with `root.readonly`, hostname
/// `berth`, no terminal.
pub fn base_spec(ctx: &Context) -> Spec {
    let mut spec = Spec::default();
    let mut root = Root::default();
    root.set_path(ctx.rootfs.clone());
    root.set_readonly(Some(true));
    spec.set_root(Some(root));
    spec.set_hostname(Some("berth".into()));
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(false));
        p.set_args(Some(vec![ctx.probe.clone()]));
    }
    with_probe_env(spec)
}

/// Builds the spec `p` describes (always valid and safe for the host; see
/// the module documentation).
pub fn build(ctx: &Context, p: &Params) -> Spec {
    use LinuxNamespaceType as T;
    let mut spec = base_spec(ctx);
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut process = spec.process().clone().unwrap_or_default();

    // Namespaces.
    let kinds = [T::Pid, T::Network, T::Ipc, T::Uts, T::Cgroup];
    let mut choice: HashMap<T, NsChoice> = kinds.iter().copied().zip(p.namespaces).collect();
    if p.userns || ctx.sidecar.is_none() {
        for c in choice.values_mut() {
            if p.userns || *c == NsChoice::Join {
                *c = NsChoice::New;
            }
        }
    }
    let mut namespaces = vec![ns(T::Mount, None)];
    for t in kinds {
        match choice[&t] {
            NsChoice::New => namespaces.push(ns(t, None)),
            NsChoice::Inherit => {}
            NsChoice::Join => {
                let pid = ctx.sidecar.unwrap_or(1);
                let name = crate::oracle::ns_name(t);
                namespaces.push(ns(t, Some(format!("/proc/{pid}/ns/{name}").into())));
            }
        }
    }
    if p.userns {
        namespaces.push(ns(T::User, None));
        linux.set_uid_mappings(Some(vec![id_map(USERNS_HOST_ID, 65536)]));
        linux.set_gid_mappings(Some(vec![id_map(USERNS_HOST_ID, 65536)]));
    }
    linux.set_namespaces(Some(namespaces));
    let own = |t: T| choice[&t] != NsChoice::Inherit;

    // Names only in a UTS namespace that is not the host's.
    spec.set_hostname(p.hostname.clone().filter(|_| own(T::Uts)));
    spec.set_domainname(p.domainname.clone().filter(|_| own(T::Uts)));

    // Identity. In a user namespace ids must be mapped.
    let mapped = |id: u32| if p.userns { id % 65536 } else { id };
    let mut user = User::default();
    user.set_uid(mapped(p.uid));
    user.set_gid(mapped(p.gid));
    let gids: BTreeSet<u32> = p.additional_gids.iter().map(|&g| mapped(g)).collect();
    user.set_additional_gids((!gids.is_empty()).then(|| gids.into_iter().collect()));
    user.set_umask(p.umask);
    process.set_user(user);
    // An unmapped 0700 directory cannot be entered from a user namespace.
    let cwd = if p.cwd == "/root" && (p.userns || (p.uid != 0 && ctx.avoids(Avoid::CwdAfterSetuid)))
    {
        "/"
    } else {
        p.cwd
    };
    let cwd = match p.cwd_spelling {
        1 if cwd != "/" => format!("{cwd}/"),
        2 => format!("/.{cwd}"),
        _ => cwd.to_string(),
    };
    process.set_cwd(cwd.into());

    let mut env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
    let mut seen = BTreeSet::new();
    for (k, v) in &p.env {
        if seen.insert(k.clone()) {
            env.push(format!("{k}={v}"));
        }
    }
    process.set_env(Some(env));
    let mut args = vec![ctx.probe.clone()];
    args.extend(p.args.iter().cloned());
    process.set_args(Some(args));

    let rlimits: Vec<PosixRlimit> = p
        .rlimits
        .iter()
        .map(|&(t, soft, hard)| rlimit_entry(t, soft, hard))
        .collect();
    process.set_rlimits((!rlimits.is_empty()).then_some(rlimits));

    process.set_capabilities(p.caps.map(|[b, pr, e, i, a]| {
        // effective ⊆ permitted ⊆ bounding, inheritable ⊆ bounding,
        // ambient ⊆ permitted ∩ inheritable: what capset(2) and
        // PR_CAP_AMBIENT_RAISE accept.
        let bnd = if p.userns {
            b
        } else {
            b & ctx.host.status.cap_bnd
        };
        let prm = pr & bnd;
        let eff = e & prm;
        let inh = i & bnd;
        let amb = a & prm & inh;
        let mut c = LinuxCapabilities::default();
        c.set_bounding(Some(capabilities(bnd).into_iter().collect()));
        c.set_permitted(Some(capabilities(prm).into_iter().collect()));
        c.set_effective(Some(capabilities(eff).into_iter().collect()));
        c.set_inheritable(Some(capabilities(inh).into_iter().collect()));
        c.set_ambient(Some(capabilities(amb).into_iter().collect()));
        c
    }));
    process.set_no_new_privileges(p.no_new_privileges);
    process.set_oom_score_adj(
        p.oom_score_adj
            .filter(|_| !ctx.avoids(Avoid::OomScoreAdjLeaks)),
    );
    spec.set_process(Some(process));

    // Sysctls only in namespaces that are not the host's, and none that
    // kernels before 6.7 hide in a network namespace a user namespace owns
    // (net.core.somaxconn: `sysctl_core_net_init`).
    let sysctl: HashMap<String, String> = p
        .sysctls
        .iter()
        .filter(|(k, _)| {
            own(if k.starts_with("net.") {
                T::Network
            } else {
                T::Ipc
            })
        })
        .filter(|(k, _)| !(p.userns && k.starts_with("net.core.")))
        // IPC sysctls became writable from a user namespace in 5.19.
        .filter(|(k, _)| !(p.userns && !k.starts_with("net.") && !kernel_at_least(5, 19)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    linux.set_sysctl((!sysctl.is_empty()).then_some(sysctl));

    // Mounts.
    let mut mounts: Vec<Mount> = spec
        .mounts()
        .clone()
        .unwrap_or_default()
        .into_iter()
        // v1 cgroupfs cannot be mounted from a user namespace.
        .filter(|m| !(p.userns && m.typ().as_deref() == Some("cgroup")))
        .map(|mut m| {
            if m.typ().as_deref() == Some("sysfs") && !p.sysfs_ro {
                let opts = m
                    .options()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|o| o != "ro")
                    .collect();
                m.set_options(Some(opts));
            }
            m
        })
        .collect();
    let extras: Vec<&(ExtraMount, u8)> = p
        .mounts
        .iter()
        .filter(|(m, _)| !(p.userns && matches!(m, ExtraMount::Bind { .. })))
        .collect();
    if p.run_tmpfs || !extras.is_empty() {
        mounts.push(mount(
            "/run",
            "tmpfs",
            "tmpfs",
            vec!["nosuid".into(), "nodev".into(), "mode=755".into()],
        ));
    }
    for (i, (m, depth)) in extras.into_iter().enumerate() {
        let dest = format!("/run/m{i}{}", "/d".repeat(usize::from(*depth)));
        let m = &if ctx.avoids(Avoid::SharedMountsUnshared) {
            m.without_shared()
        } else {
            m.clone()
        };
        mounts.push(match m {
            ExtraMount::Tmpfs {
                common,
                mode,
                size_k,
                uid,
                gid,
            } => {
                let mut o = common.options();
                o.extend(mode.map(|m| format!("mode={m:o}")));
                o.extend(size_k.map(|s| format!("size={s}k")));
                o.extend(uid.map(|u| format!("uid={}", mapped(u))));
                o.extend(gid.map(|g| format!("gid={}", mapped(g))));
                mount(&dest, "tmpfs", "tmpfs", o)
            }
            ExtraMount::Mqueue(c) => mount(&dest, "mqueue", "mqueue", c.options()),
            // From a user namespace, the kernel lets proc and sysfs be
            // mounted only with the atime flags of a visible mount of
            // theirs (`mount_too_revealing`): keep the default.
            ExtraMount::Proc(c) if p.userns => mount(&dest, "proc", "proc", c.no_atime().options()),
            ExtraMount::Sysfs(c) if p.userns => {
                mount(&dest, "sysfs", "sysfs", c.no_atime().options())
            }
            ExtraMount::Proc(c) => mount(&dest, "proc", "proc", c.options()),
            ExtraMount::Sysfs(c) => mount(&dest, "sysfs", "sysfs", c.options()),
            ExtraMount::Devpts {
                common,
                mode,
                ptmxmode,
            } => {
                let mut o = common.options();
                o.push("newinstance".into());
                o.push(format!("mode={mode:04o}"));
                o.push(format!("ptmxmode={ptmxmode:04o}"));
                mount(&dest, "devpts", "devpts", o)
            }
            ExtraMount::Bind {
                common,
                recursive,
                file,
            } => {
                let mut o = vec![if *recursive { "rbind" } else { "bind" }.to_string()];
                o.extend(common.options());
                let mut source = ctx.bind_source.clone().unwrap_or_else(|| "/".into());
                if *file {
                    source.push(BIND_SOURCE_FILE);
                }
                mount(&dest, "bind", &source.to_string_lossy(), o)
            }
        });
    }
    spec.set_mounts(Some(mounts));

    linux.set_masked_paths(Some(p.masked.iter().map(|s| s.to_string()).collect()));
    linux.set_readonly_paths(Some(p.readonly.iter().map(|s| s.to_string()).collect()));
    let rootfs_propagation = p.rootfs_propagation.filter(|rp| {
        !(rp.contains("unbindable") && ctx.avoids(Avoid::UnbindableRootfs)
            || *rp == "shared" && ctx.avoids(Avoid::SharedRootfsIsRecursive))
    });
    linux.set_rootfs_propagation(rootfs_propagation.map(str::to_string));
    if !p.userns && !p.devices.is_empty() {
        let devices = p
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mut dev = LinuxDevice::default();
                dev.set_path(format!("/dev/berth{i}").into());
                dev.set_typ(match d.kind {
                    'b' => LinuxDeviceType::B,
                    'p' => LinuxDeviceType::P,
                    'u' => LinuxDeviceType::U,
                    _ => LinuxDeviceType::C,
                });
                dev.set_major(d.major);
                dev.set_minor(d.minor);
                dev.set_file_mode(Some(d.mode));
                dev.set_uid(Some(d.uid));
                dev.set_gid(Some(d.gid));
                dev
            })
            .collect();
        linux.set_devices(Some(devices));
    }
    if let Some(r) = spec.root_mut() {
        r.set_readonly(Some(p.root_readonly));
    }
    spec.set_linux(Some(linux));
    with_probe_env(spec)
}

fn rlimit_entry(t: PosixRlimitType, soft: u64, hard: u64) -> PosixRlimit {
    PosixRlimitBuilder::default()
        .typ(t)
        .soft(soft)
        .hard(hard)
        .build()
        .expect("an rlimit has no required field left unset")
}

/// Container ids `0..size` to host ids `host..host + size`.
fn id_map(host: u32, size: u32) -> LinuxIdMapping {
    LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(host)
        .size(size)
        .build()
        .expect("an id mapping has no required field left unset")
}

fn ns(t: LinuxNamespaceType, path: Option<PathBuf>) -> LinuxNamespace {
    let mut n = LinuxNamespace::default();
    n.set_typ(t);
    n.set_path(path);
    n
}

/// How berth must refuse an invalid spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Error::InvalidSpec` whose field starts with this prefix.
    InvalidSpec(&'static str),
    /// `Error::Init` of this kind of step: the kernel refuses it inside
    /// the new container.
    Init(berth::InitStep),
}

/// An invalid spec and how it must be refused.
#[derive(Debug, Clone)]
pub struct InvalidCase {
    /// What was broken.
    pub mutation: Mutation,
    /// The spec.
    pub spec: Spec,
    /// The expected refusal.
    pub refusal: Refusal,
}

/// Ways to break a valid spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// A mount destination that is not absolute.
    RelativeMountDestination,
    /// A mount destination that climbs out of `/` with `..`.
    EscapingMountDestination,
    /// A mount on `/` itself.
    MountOnRoot,
    /// A filesystem type the kernel does not know.
    UnknownFsType,
    /// Neither a type nor `bind`.
    MountWithoutType,
    /// A bind mount without a source.
    BindWithoutSource,
    /// A bind mount of a missing path.
    MissingBindSource,
    /// A mount option berth refuses (`idmap`, `remount`, empty).
    RefusedMountOption,
    /// An rlimit whose soft limit is above its hard limit.
    SoftAboveHard,
    /// The same rlimit type twice.
    DuplicateRlimit,
    /// A sysctl that is not namespaced (the host's value, harmless if
    /// ever applied).
    NonNamespacedSysctl,
    /// A net sysctl without a network namespace (the host's value).
    SysctlWithoutNamespace,
    /// A hostname without a UTS namespace (the host's name).
    HostnameWithoutUts,
    /// A hostname longer than 64 bytes.
    HostnameTooLong,
    /// A relative `process.cwd`.
    RelativeCwd,
    /// No arguments.
    EmptyArgs,
    /// An empty `args[0]`.
    EmptyArg0,
    /// A NUL byte in an argument.
    NulInArg,
    /// An environment entry without `=`.
    EnvWithoutEquals,
    /// A namespace type listed twice.
    DuplicateNamespace,
    /// A namespace path that is relative.
    RelativeNamespacePath,
    /// A namespace path that does not exist.
    MissingNamespacePath,
    /// A mount namespace joined by path (berth could not clean up the
    /// mounts it would make there; with none listed it mounts in its own).
    JoinedMountNamespace,
    /// `oomScoreAdj` outside -1000..=1000.
    OomOutOfRange,
    /// Id mappings without a user namespace.
    MappingsWithoutUserns,
    /// A user namespace without mappings.
    UsernsWithoutMappings,
    /// A device of type `a`.
    DeviceTypeA,
    /// A negative device number.
    NegativeDeviceNumber,
    /// A missing rootfs.
    MissingRootfs,
    /// An unknown `rootfsPropagation`.
    UnknownRootfsPropagation,
    /// A relative masked path.
    RelativeMaskedPath,
    /// A relative read-only path.
    RelativeReadonlyPath,
    /// No process.
    NoProcess,
    /// A tmpfs option the kernel refuses (`size=nonsense`).
    KernelRefusedMountOption,
    /// An executable missing from the rootfs.
    MissingExecutable,
}

/// Every [`Mutation`].
pub const MUTATIONS: [Mutation; 35] = {
    use Mutation::*;
    [
        RelativeMountDestination,
        EscapingMountDestination,
        MountOnRoot,
        UnknownFsType,
        MountWithoutType,
        BindWithoutSource,
        MissingBindSource,
        RefusedMountOption,
        SoftAboveHard,
        DuplicateRlimit,
        NonNamespacedSysctl,
        SysctlWithoutNamespace,
        HostnameWithoutUts,
        HostnameTooLong,
        RelativeCwd,
        EmptyArgs,
        EmptyArg0,
        NulInArg,
        EnvWithoutEquals,
        DuplicateNamespace,
        RelativeNamespacePath,
        MissingNamespacePath,
        JoinedMountNamespace,
        OomOutOfRange,
        MappingsWithoutUserns,
        UsernsWithoutMappings,
        DeviceTypeA,
        NegativeDeviceNumber,
        MissingRootfs,
        UnknownRootfsPropagation,
        RelativeMaskedPath,
        RelativeReadonlyPath,
        NoProcess,
        KernelRefusedMountOption,
        MissingExecutable,
    ]
};

fn host_sysctl(key: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/")))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Invalid specs: a valid spec from [`valid_spec`] broken by one
/// [`Mutation`] (with a random number for the mutations that take one).
pub fn invalid_spec(ctx: &Context) -> impl Strategy<Value = InvalidCase> {
    let ctx2 = ctx.clone();
    (valid_spec(ctx), select(MUTATIONS.to_vec()), any::<u32>())
        .prop_map(move |(spec, m, r)| mutate(&ctx2, spec, m, r))
}

/// Applies `m` to a valid `spec`; `r` is a random number some mutations
/// use.
pub fn mutate(ctx: &Context, mut spec: Spec, m: Mutation, r: u32) -> InvalidCase {
    use LinuxNamespaceType as T;
    use Mutation::*;
    use Refusal::*;
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut process = spec.process().clone().unwrap_or_default();
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    let has = |ns: &[LinuxNamespace], t: T| ns.iter().any(|n| n.typ() == t);
    let tmpfs = |dest: &str, options: Vec<String>| mount(dest, "tmpfs", "tmpfs", options);
    let refusal = match m {
        RelativeMountDestination => {
            mounts.push(tmpfs("run/x", vec![]));
            InvalidSpec("mounts[")
        }
        EscapingMountDestination => {
            let up = "/..".repeat(1 + (r % 3) as usize);
            mounts.push(tmpfs(&format!("{up}/etc"), vec![]));
            InvalidSpec("mounts[")
        }
        MountOnRoot => {
            mounts.push(tmpfs(if r % 2 == 0 { "/" } else { "/run/.." }, vec![]));
            InvalidSpec("mounts[")
        }
        UnknownFsType => {
            mounts.push(mount("/run/x", "berthfs", "none", vec![]));
            InvalidSpec("mounts[")
        }
        MountWithoutType => {
            let mut mt = tmpfs("/run/x", vec![]);
            mt.set_typ(None);
            mounts.push(mt);
            InvalidSpec("mounts[")
        }
        BindWithoutSource => {
            let mut mt = mount("/run/x", "bind", "", vec!["rbind".into()]);
            mt.set_source(None);
            mounts.push(mt);
            InvalidSpec("mounts[")
        }
        MissingBindSource => {
            mounts.push(mount(
                "/run/x",
                "bind",
                "/nonexistent/berth-conformance",
                vec!["bind".into()],
            ));
            InvalidSpec("mounts[")
        }
        RefusedMountOption => {
            let opt = ["idmap", "remount", "", "tmpcopyup"][(r % 4) as usize];
            mounts.push(tmpfs("/run/x", vec![opt.into()]));
            InvalidSpec("mounts[")
        }
        SoftAboveHard => {
            let t = RLIMIT_TYPES[(r % 16) as usize];
            let hard = u64::from(r % 1000);
            let mut rl = process.rlimits().clone().unwrap_or_default();
            rl.retain(|x| x.typ() != t);
            rl.push(rlimit_entry(t, hard + 1 + u64::from(r % 7), hard));
            process.set_rlimits(Some(rl));
            InvalidSpec("process.rlimits[")
        }
        DuplicateRlimit => {
            let mut rl = process.rlimits().clone().unwrap_or_default();
            let x = rlimit_entry(PosixRlimitType::RlimitNofile, 64, 64);
            rl.push(x);
            rl.push(x);
            process.set_rlimits(Some(rl));
            InvalidSpec("process.rlimits[")
        }
        NonNamespacedSysctl => {
            let key = ["vm.swappiness", "kernel.panic", "fs.file-max"][(r % 3) as usize];
            let mut s = linux.sysctl().clone().unwrap_or_default();
            s.insert(key.into(), host_sysctl(key));
            linux.set_sysctl(Some(s));
            InvalidSpec("linux.sysctl.")
        }
        SysctlWithoutNamespace => {
            namespaces.retain(|n| n.typ() != T::Network);
            let mut s = linux.sysctl().clone().unwrap_or_default();
            s.retain(|k, _| !k.starts_with("net."));
            s.insert(
                "net.ipv4.ip_forward".into(),
                host_sysctl("net.ipv4.ip_forward"),
            );
            linux.set_sysctl(Some(s));
            InvalidSpec("linux.sysctl.")
        }
        HostnameWithoutUts => {
            namespaces.retain(|n| n.typ() != T::Uts);
            spec.set_hostname(Some(ctx.host.hostname.clone()));
            spec.set_domainname(None);
            InvalidSpec("hostname")
        }
        HostnameTooLong => {
            if !has(&namespaces, T::Uts) {
                namespaces.push(ns(T::Uts, None));
            }
            spec.set_hostname(Some("h".repeat(65 + (r % 100) as usize)));
            InvalidSpec("hostname")
        }
        RelativeCwd => {
            process.set_cwd(["tmp", "./", "home/berth"][(r % 3) as usize].into());
            InvalidSpec("process.cwd")
        }
        EmptyArgs => {
            process.set_args(if r % 2 == 0 { Some(vec![]) } else { None });
            InvalidSpec("process.args")
        }
        EmptyArg0 => {
            let mut a = process.args().clone().unwrap_or_default();
            if a.is_empty() {
                a.push(String::new());
            } else {
                a[0] = String::new();
            }
            process.set_args(Some(a));
            InvalidSpec("process.args")
        }
        NulInArg => {
            let mut a = process.args().clone().unwrap_or_default();
            a.push("a\0b".into());
            process.set_args(Some(a));
            InvalidSpec("process.args")
        }
        EnvWithoutEquals => {
            let mut e = process.env().clone().unwrap_or_default();
            e.insert((r as usize) % (e.len() + 1), "NO_EQUALS_SIGN".into());
            process.set_env(Some(e));
            InvalidSpec("process.env[")
        }
        DuplicateNamespace => {
            let dup = namespaces[(r as usize) % namespaces.len()].clone();
            namespaces.push(dup);
            InvalidSpec("linux.namespaces[")
        }
        RelativeNamespacePath => {
            namespaces.retain(|n| n.typ() != T::Network);
            namespaces.push(ns(T::Network, Some("proc/1/ns/net".into())));
            InvalidSpec("linux.namespaces[")
        }
        MissingNamespacePath => {
            namespaces.retain(|n| n.typ() != T::Ipc);
            namespaces.push(ns(T::Ipc, Some("/proc/999999999/ns/ipc".into())));
            InvalidSpec("linux.namespaces[")
        }
        JoinedMountNamespace => {
            namespaces.retain(|n| n.typ() != T::Mount);
            namespaces.push(ns(T::Mount, Some("/proc/self/ns/mnt".into())));
            InvalidSpec("linux.namespaces")
        }
        OomOutOfRange => {
            let v = 1001 + (r % 5000) as i32;
            process.set_oom_score_adj(Some(if r % 2 == 0 { v } else { -v }));
            InvalidSpec("process.oomScoreAdj")
        }
        MappingsWithoutUserns => {
            namespaces.retain(|n| n.typ() != T::User);
            linux.set_uid_mappings(Some(vec![id_map(USERNS_HOST_ID, 1000)]));
            linux.set_gid_mappings(Some(vec![id_map(USERNS_HOST_ID, 1000)]));
            InvalidSpec("linux.uidMappings")
        }
        UsernsWithoutMappings => {
            if !has(&namespaces, T::User) {
                namespaces.push(ns(T::User, None));
            }
            linux.set_uid_mappings(None);
            linux.set_gid_mappings(if r % 2 == 0 { None } else { Some(vec![]) });
            InvalidSpec("linux.uidMappings")
        }
        DeviceTypeA | NegativeDeviceNumber => {
            let mut dev = LinuxDevice::default();
            dev.set_path("/dev/berth-bad".into());
            if m == DeviceTypeA {
                dev.set_typ(LinuxDeviceType::A);
                dev.set_major(1);
                dev.set_minor(3);
            } else {
                dev.set_typ(LinuxDeviceType::C);
                dev.set_major(-1 - i64::from(r % 10));
                dev.set_minor(3);
            }
            let mut d = linux.devices().clone().unwrap_or_default();
            d.push(dev);
            linux.set_devices(Some(d));
            InvalidSpec("linux.devices[")
        }
        MissingRootfs => {
            if let Some(root) = spec.root_mut() {
                root.set_path("/nonexistent/berth-conformance-rootfs".into());
            }
            InvalidSpec("root.path")
        }
        UnknownRootfsPropagation => {
            linux.set_rootfs_propagation(Some("sideways".into()));
            InvalidSpec("linux.rootfsPropagation")
        }
        RelativeMaskedPath => {
            let mut v = linux.masked_paths().clone().unwrap_or_default();
            v.push("proc/kcore".into());
            linux.set_masked_paths(Some(v));
            InvalidSpec("linux.maskedPaths[")
        }
        RelativeReadonlyPath => {
            let mut v = linux.readonly_paths().clone().unwrap_or_default();
            v.push("proc/sys".into());
            linux.set_readonly_paths(Some(v));
            InvalidSpec("linux.readonlyPaths[")
        }
        NoProcess => InvalidSpec("process"),
        KernelRefusedMountOption => {
            if !mounts
                .iter()
                .any(|m| m.destination() == std::path::Path::new("/run"))
            {
                mounts.push(tmpfs("/run", vec![]));
            }
            mounts.push(tmpfs("/run/bad", vec!["size=nonsense".into()]));
            Init(berth::InitStep::Mount)
        }
        MissingExecutable => {
            let mut a = process.args().clone().unwrap_or_default();
            a[0] = "/no/such/probe".into();
            process.set_args(Some(a));
            Init(berth::InitStep::FindExecutable)
        }
    };
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
    spec.set_mounts(Some(mounts));
    spec.set_process(if m == NoProcess { None } else { Some(process) });
    InvalidCase {
        mutation: m,
        spec,
        refusal,
    }
}

/// Whether the running kernel is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    version >= (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    fn ctx() -> Context {
        Context {
            rootfs: "/nonexistent/rootfs".into(),
            probe: "/probe".into(),
            sidecar: Some(1),
            bind_source: Some("/tmp".into()),
            host: Host::current().unwrap(),
            avoid: Vec::new(),
        }
    }

    /// Every part of the generator comes up in a few hundred specs, and
    /// every spec keeps the host safe.
    #[test]
    fn generated_specs_cover_every_feature_and_stay_safe() {
        let ctx = ctx();
        let strategy = valid_spec(&ctx);
        let mut runner = TestRunner::deterministic();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for _ in 0..500 {
            let spec = strategy.new_tree(&mut runner).unwrap().current();
            let linux = spec.linux().clone().unwrap();
            let process = spec.process().clone().unwrap();
            let ns = linux.namespaces().clone().unwrap();
            let listed = |t: LinuxNamespaceType| ns.iter().find(|n| n.typ() == t);
            let mut count = |what: &'static str, yes: bool| {
                *seen.entry(what).or_default() += usize::from(yes);
            };
            count("user namespace", listed(LinuxNamespaceType::User).is_some());
            count("joined namespace", ns.iter().any(|n| n.path().is_some()));
            count(
                "host network namespace",
                listed(LinuxNamespaceType::Network).is_none(),
            );
            count(
                "sysctl",
                linux.sysctl().as_ref().is_some_and(|s| !s.is_empty()),
            );
            count(
                "device",
                linux.devices().as_ref().is_some_and(|d| !d.is_empty()),
            );
            count(
                "rlimit",
                process.rlimits().as_ref().is_some_and(|r| r.len() > 1),
            );
            count("capabilities", process.capabilities().is_some());
            count("no capabilities", process.capabilities().is_none());
            count("oomScoreAdj", process.oom_score_adj().is_some());
            count("non-root uid", process.user().uid() != 0);
            count("umask", process.user().umask().is_some());
            count(
                "root.readonly",
                spec.root().as_ref().unwrap().readonly() == Some(true),
            );
            count("rootfsPropagation", linux.rootfs_propagation().is_some());
            let mounts = spec.mounts().clone().unwrap();
            for t in ["tmpfs", "bind", "proc", "sysfs", "mqueue", "devpts"] {
                count(
                    t,
                    mounts.iter().any(|m| {
                        m.destination().starts_with("/run/") && m.typ().as_deref() == Some(t)
                    }),
                );
            }
            // Safety: nothing that would change the host.
            let own = |t| listed(t).is_some();
            if spec.hostname().is_some() || spec.domainname().is_some() {
                assert!(own(LinuxNamespaceType::Uts), "hostname on the host's UTS");
            }
            for key in linux.sysctl().iter().flatten().map(|(k, _)| k) {
                let t = if key.starts_with("net.") {
                    LinuxNamespaceType::Network
                } else {
                    LinuxNamespaceType::Ipc
                };
                assert!(own(t), "sysctl {key} on a host namespace");
            }
            assert!(listed(LinuxNamespaceType::Mount).is_some_and(|n| n.path().is_none()));
            for r in process.rlimits().iter().flatten() {
                let host = ctx.host.rlimits[&crate::oracle::rlimit_name(r.typ())];
                assert!(r.soft() <= r.hard() && r.hard() <= host.hard, "{r:?}");
            }
            // The probe is told what to report.
            let env = process.env().clone().unwrap();
            assert!(env.iter().any(|e| e.starts_with("BERTH_PROBE_PATHS=/,")));
        }
        eprintln!("features in 500 specs: {seen:?}");
        for (what, n) in &seen {
            assert!(*n > 0, "no generated spec has {what}: {seen:?}");
        }
    }

    #[test]
    fn every_mutation_comes_up() {
        let ctx = ctx();
        let strategy = invalid_spec(&ctx);
        let mut runner = TestRunner::deterministic();
        let mut seen = BTreeSet::new();
        for _ in 0..2000 {
            let case = strategy.new_tree(&mut runner).unwrap().current();
            seen.insert(format!("{:?}", case.mutation));
        }
        assert_eq!(seen.len(), MUTATIONS.len(), "{seen:?}");
    }

    #[test]
    fn avoid_lists_parse() {
        assert_eq!(Avoid::parse_list("").unwrap(), []);
        assert_eq!(Avoid::parse_list("all").unwrap(), Avoid::ALL);
        assert_eq!(
            Avoid::parse_list("unbindable-rootfs, oom-score-adj-leaks").unwrap(),
            [Avoid::UnbindableRootfs, Avoid::OomScoreAdjLeaks]
        );
        assert!(Avoid::parse_list("nope")
            .unwrap_err()
            .contains("cwd-after-setuid"));
    }
}
