//! The start plan: an OCI spec compiled to a flat list of steps.
//!
//! Everything the container's first process will do between `clone` and
//! `execve` is decided here, in the parent, in ordinary Rust: paths become
//! `CString`s, mount options become flags, names become numbers, and every
//! invalid value becomes an [`Error::InvalidSpec`](crate::Error::InvalidSpec)
//! before any process exists. The executor (`crate::exec`) then only walks
//! the steps with raw system calls.
//!
//! A plan is pure data: it is snapshot-tested, property-tested and fuzzed
//! without root.
//!
//! # Compatibility with runc and crun
//!
//! The compiler accepts what runc and crun run, and differs where a client
//! could be hurt by their behaviour:
//! - ambient capabilities outside the permitted and inheritable sets are
//!   skipped with a warning, as both do (their default specs list some);
//! - mount options: the recursive ones (`rro`, `rnosuid`, `rnoatime`, ...)
//!   are applied with `mount_setattr(AT_RECURSIVE)`; anything else a
//!   filesystem mount gets as data, for the filesystem to accept or refuse;
//!   a bind mount, whose data the kernel ignores, warns about such options;
//! - `proc` and `sysfs` are refused on anything but a directory;
//! - without a mount namespace the container is chrooted and its mounts,
//!   made in the host's namespace under a private bind of the rootfs, are
//!   removed at delete (runc leaves them); a mount namespace joined by path,
//!   and `exec` into such a container, are refused;
//! - nothing berth does after the seccomp filter is loaded needs a call a
//!   profile might deny (descriptors are closed and the cwd checked first).

mod attrs;
mod compile;
mod mounts;
#[cfg(test)]
mod snapshots;

pub use compile::Options;

pub use compile::{compile, compile_exec};

use std::ffi::{CStr, CString};
use std::fmt;
use std::path::PathBuf;

use serde::{Serialize, Serializer};

/// A NUL-terminated string the executor hands to the kernel.
#[derive(Clone, PartialEq, Eq)]
pub struct CPath(pub(crate) CString);

impl CPath {
    pub(crate) fn new(s: impl Into<Vec<u8>>) -> Option<CPath> {
        CString::new(s).ok().map(CPath)
    }

    pub(crate) fn as_c(&self) -> &CStr {
        &self.0
    }

    /// The string, lossily decoded.
    pub fn to_string_lossy(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl fmt::Debug for CPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0.to_string_lossy(), f)
    }
}

impl Serialize for CPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string_lossy())
    }
}

/// Serializes `MS_*` mount flags by name, for readable snapshots.
fn ms_flags<S: Serializer>(flags: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&mount_flag_names(*flags))
}

fn ms_flags_opt<S: Serializer>(flags: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match flags {
        Some(f) => s.serialize_str(&mount_flag_names(*f)),
        None => s.serialize_none(),
    }
}

/// `MS_BIND|MS_REC` for `libc::MS_BIND | libc::MS_REC`.
pub fn mount_flag_names(flags: u64) -> String {
    const NAMES: [(libc::c_ulong, &str); 20] = [
        (libc::MS_RDONLY, "MS_RDONLY"),
        (libc::MS_NOSUID, "MS_NOSUID"),
        (libc::MS_NODEV, "MS_NODEV"),
        (libc::MS_NOEXEC, "MS_NOEXEC"),
        (libc::MS_SYNCHRONOUS, "MS_SYNCHRONOUS"),
        (libc::MS_REMOUNT, "MS_REMOUNT"),
        (libc::MS_MANDLOCK, "MS_MANDLOCK"),
        (libc::MS_DIRSYNC, "MS_DIRSYNC"),
        (libc::MS_NOSYMFOLLOW, "MS_NOSYMFOLLOW"),
        (libc::MS_NOATIME, "MS_NOATIME"),
        (libc::MS_NODIRATIME, "MS_NODIRATIME"),
        (libc::MS_BIND, "MS_BIND"),
        (libc::MS_MOVE, "MS_MOVE"),
        (libc::MS_REC, "MS_REC"),
        (libc::MS_UNBINDABLE, "MS_UNBINDABLE"),
        (libc::MS_PRIVATE, "MS_PRIVATE"),
        (libc::MS_SLAVE, "MS_SLAVE"),
        (libc::MS_SHARED, "MS_SHARED"),
        (libc::MS_RELATIME, "MS_RELATIME"),
        (libc::MS_STRICTATIME, "MS_STRICTATIME"),
    ];
    let mut rest = flags;
    let mut out: Vec<String> = Vec::new();
    for (bit, name) in NAMES {
        if rest & bit != 0 {
            out.push(name.into());
            rest &= !bit;
        }
    }
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    if out.is_empty() {
        "0".into()
    } else {
        out.join("|")
    }
}

/// A path inside the container's rootfs, resolved by the executor one prefix
/// at a time with `openat2(RESOLVE_IN_ROOT)` so that no symlink in the image
/// can lead outside it. `prefixes[i]` is the path of the first `i + 1`
/// components, `names[i]` the `i`-th component.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct InRoot {
    /// The absolute path as the spec gave it (after lexical cleaning).
    pub path: PathBuf,
    #[serde(skip)]
    pub(crate) prefixes: Vec<CPath>,
    #[serde(skip)]
    pub(crate) names: Vec<CPath>,
}

impl fmt::Debug for InRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.path, f)
    }
}

/// What to create at a mount destination that does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Create {
    /// A directory (every mount but a bind of a file).
    Dir,
    /// An empty file (a bind mount whose source is not a directory).
    File,
}

/// One mount, pre-`pivot_root`, onto a path inside the rootfs.
#[derive(Debug, Clone, Serialize)]
pub struct MountStep {
    /// `source` argument of mount(2), if any.
    pub source: Option<CPath>,
    /// Where, inside the rootfs.
    pub target: InRoot,
    /// The filesystem type (`None` for binds).
    pub fstype: Option<CPath>,
    /// `MS_*` flags of the first mount(2).
    #[serde(serialize_with = "ms_flags")]
    pub flags: u64,
    /// Filesystem-specific options (`mode=755,size=65536k`).
    pub data: Option<CPath>,
    /// For binds with `ro`, `nosuid`, ...: the flags of the remount that
    /// applies them (a bind ignores them on the first call).
    #[serde(serialize_with = "ms_flags_opt")]
    pub remount_flags: Option<u64>,
    /// Propagation flags applied after mounting (`MS_SHARED`, `MS_SLAVE`, ...).
    #[serde(serialize_with = "ms_flags")]
    pub propagation: u64,
    /// What to create if the target does not exist.
    pub create: Create,
    /// Host directories to bind instead, the first that exists, if the
    /// kernel refuses this mount with `EPERM` or `EBUSY` (a cgroup2 mount
    /// in a user namespace; see the compiler's `cgroup_steps`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fallback_binds: Vec<CPath>,
}

/// A device node inside the container's `/dev`.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceStep {
    /// Where, inside the rootfs.
    pub target: InRoot,
    /// `S_IFCHR`/`S_IFBLK`/`S_IFIFO` and permission bits.
    pub mode: u32,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Owner inside the container.
    pub uid: u32,
    /// Group inside the container.
    pub gid: u32,
    /// Bind-mount this host node instead of `mknod` (inside a user namespace,
    /// where `mknod` is not permitted).
    pub bind_from: Option<CPath>,
}

/// A namespace kind, as `CLONE_NEW*` flags name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    /// `CLONE_NEWUSER`.
    User,
    /// `CLONE_NEWPID`.
    Pid,
    /// `CLONE_NEWNS`.
    Mount,
    /// `CLONE_NEWNET`.
    Network,
    /// `CLONE_NEWUTS`.
    Uts,
    /// `CLONE_NEWIPC`.
    Ipc,
    /// `CLONE_NEWCGROUP`.
    Cgroup,
    /// `CLONE_NEWTIME`.
    Time,
}

impl Namespace {
    /// The `CLONE_NEW*` flag.
    pub fn clone_flag(self) -> u64 {
        (match self {
            Namespace::User => libc::CLONE_NEWUSER,
            Namespace::Pid => libc::CLONE_NEWPID,
            Namespace::Mount => libc::CLONE_NEWNS,
            Namespace::Network => libc::CLONE_NEWNET,
            Namespace::Uts => libc::CLONE_NEWUTS,
            Namespace::Ipc => libc::CLONE_NEWIPC,
            Namespace::Cgroup => libc::CLONE_NEWCGROUP,
            Namespace::Time => 0x80,
        }) as u64
    }

    /// The name under `/proc/<pid>/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Namespace::User => "user",
            Namespace::Pid => "pid",
            Namespace::Mount => "mnt",
            Namespace::Network => "net",
            Namespace::Uts => "uts",
            Namespace::Ipc => "ipc",
            Namespace::Cgroup => "cgroup",
            Namespace::Time => "time",
        }
    }
}

/// An existing namespace to join, by path.
#[derive(Debug, Clone, Serialize)]
pub struct Join {
    /// Which kind.
    pub ns: Namespace,
    /// The namespace file (`/proc/<pid>/ns/net`, a bind-mounted nsfs file).
    pub path: PathBuf,
}

/// One step of the executor. The order of the list is the order of work.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Reset every signal disposition to the default (handlers of the parent
    /// must never run in the child; `SIGPIPE` ignored by Rust's runtime must
    /// not be inherited by the container).
    ResetSignals,
    /// Join the container's cgroup in each v1 hierarchy by writing `0` to
    /// the `tasks` file the parent opened (a v2 cgroup is joined at the
    /// clone): a task moving only itself takes none of the kernel's global
    /// cgroup locks, so no RCU grace period is waited for, unlike a move of
    /// another process through `cgroup.procs`. Nothing without such files.
    JoinCgroup,
    /// Wait until the parent has written the id maps and placed the process
    /// in its cgroup.
    AwaitParent,
    /// `setns` into `plan.joins[index]`.
    JoinNamespace {
        /// Index into [`Plan::joins`].
        index: usize,
        /// Its kind, for messages.
        ns: Namespace,
    },
    /// Become root of the new user namespace (the parent mapped an id to 0).
    BecomeRoot,
    /// Fork into the pid namespace joined with `setns` (which only moves
    /// the caller's future children): without root, the parent cannot
    /// enter a container's pid namespace itself, so the child does after
    /// joining the user namespace, and forks, as runc's nsexec does. The
    /// new process is the parent's child (`CLONE_PARENT`); the one that
    /// forked it reports its pid (with a pidfd) and exits.
    ForkIntoPidNamespace,
    /// Write `/proc/self/oom_score_adj` (without root: the parent may not
    /// write it for the child, and only a raise is allowed). Done before
    /// the child makes itself non-dumpable, which would make the file
    /// root's.
    OomScoreAdj {
        /// `process.oomScoreAdj`.
        value: i32,
    },
    /// `unshare(CLONE_NEWCGROUP)`, after the parent placed the process in its
    /// cgroup, so that the namespace is rooted there.
    UnshareCgroup,
    /// Start a new session (the container's init leads it).
    SetSid,
    /// Bring `lo` up in the new network namespace.
    LoopbackUp,
    /// `mount(NULL, target, NULL, flags)`: propagation of an existing mount.
    Propagation {
        /// The mount point.
        target: CPath,
        /// `MS_REC | MS_SLAVE` and the like.
        #[serde(serialize_with = "ms_flags")]
        flags: u64,
    },
    /// Mount a filesystem on the rootfs directory itself, in the
    /// container's mount namespace, before [`Step::BindRootfs`]: a rootless
    /// container's image overlay, which only its user namespace may mount.
    MountRootfs {
        /// Absolute host path of the rootfs.
        rootfs: CPath,
        /// The filesystem type (`overlay`).
        fstype: CPath,
        /// `source` argument of mount(2).
        source: CPath,
        /// Its options (`lowerdir=…,upperdir=…`).
        data: CPath,
    },
    /// Bind the rootfs onto itself (so `pivot_root` can use it) and open it
    /// as the anchor of every later in-root resolution.
    BindRootfs {
        /// Absolute host path of the rootfs.
        rootfs: CPath,
    },
    /// Mount something inside the rootfs.
    Mount(MountStep),
    /// Remount an in-root mount point with new flags.
    Remount {
        /// The mount point inside the rootfs.
        target: InRoot,
        /// `MS_REMOUNT | ...`.
        #[serde(serialize_with = "ms_flags")]
        flags: u64,
    },
    /// `mount_setattr(AT_RECURSIVE)` on an in-root mount point: the
    /// recursive mount options (`rro`, `rnosuid`, `rnoatime`, ...).
    MountSetattr {
        /// The mount point inside the rootfs.
        target: InRoot,
        /// `MOUNT_ATTR_*` bits to set.
        set: u64,
        /// `MOUNT_ATTR_*` bits to clear.
        clear: u64,
    },
    /// Create a device node.
    Device(DeviceStep),
    /// Create a symlink inside the rootfs (`/dev/fd -> /proc/self/fd`).
    Symlink {
        /// What the link points to.
        target: CPath,
        /// The link, inside the rootfs.
        link: InRoot,
    },
    /// Tell the parent the mounts are done and wait while it runs the
    /// `prestart`, `createRuntime` and `createContainer` hooks.
    AwaitHooks,
    /// `pivot_root` into the rootfs and detach the old root.
    PivotRoot,
    /// For a rootfs on an initramfs (where `pivot_root` fails): move the
    /// rootfs over `/` and `chroot` into it.
    MoveRoot,
    /// Without a mount namespace of the container's own: only `chroot`
    /// into the rootfs (`pivot_root` or a move would change the host's
    /// root).
    Chroot,
    /// Allocate a pseudo-terminal from the container's `/dev/ptmx`, make it
    /// the controlling terminal and stdio, bind it on `/dev/console`, and send
    /// the master to the parent.
    Console {
        /// Initial window size (rows, columns), if the spec gives one.
        size: Option<(u16, u16)>,
        /// Bind the terminal onto `/dev/console` (the container's first
        /// process only: a joining process must not change its mounts).
        bind_console: bool,
    },
    /// Put the prepared stdio descriptors on 0, 1 and 2.
    Stdio,
    /// Write a namespaced sysctl, through a procfs of the container's own
    /// that nothing is mounted on (the container's `/proc/sys` where the
    /// kernel gives none).
    Sysctl {
        /// `/proc/sys/net/ipv4/ip_forward`.
        path: CPath,
        /// The value.
        value: CPath,
    },
    /// Hide a path: bind `/dev/null` over a file, a read-only tmpfs over a
    /// directory. A missing path is skipped.
    MaskPath {
        /// Absolute path in the container.
        path: CPath,
    },
    /// Make a path read-only (bind onto itself, remount read-only).
    ReadonlyPath {
        /// Absolute path in the container.
        path: CPath,
    },
    /// Remount the root read-only (`root.readonly`).
    ReadonlyRoot,
    /// `sethostname`.
    Hostname {
        /// The name.
        name: CPath,
    },
    /// `setdomainname`.
    Domainname {
        /// The name.
        name: CPath,
    },
    /// `prlimit` on the process.
    Rlimit {
        /// `RLIMIT_*` number.
        resource: u32,
        /// Soft limit.
        soft: u64,
        /// Hard limit.
        hard: u64,
    },
    /// `personality(2)`.
    Personality {
        /// `PER_LINUX`, `PER_LINUX32`.
        persona: u64,
    },
    /// `set_mempolicy(2)` (`linux.memoryPolicy`).
    MemoryPolicy {
        /// `MPOL_*` mode, with its `MPOL_F_*` flags.
        mode: u32,
        /// The node mask, 64 nodes a word.
        nodes: Vec<u64>,
    },
    /// `unshare(CLONE_NEWTIME)`, then the offsets of the new namespace's
    /// clocks: the process enters it at `execve` (a namespace made by the
    /// clone itself would be entered at once, its offsets then fixed at 0).
    UnshareTime {
        /// `/proc/self/timens_offsets` contents (`monotonic 10 0`), if any.
        offsets: Option<CPath>,
    },
    /// `sched_setattr(2)` on the process.
    Scheduler(SchedAttr),
    /// `ioprio_set(IOPRIO_WHO_PROCESS, 0, ...)`.
    IoPriority {
        /// `class << 13 | level`.
        value: u32,
    },
    /// Write a `/proc/self/attr` file: the LSM label for `execve`.
    ProcAttr {
        /// `/proc/self/attr/apparmor/exec`, `/proc/self/attr/exec`.
        path: CPath,
        /// `exec <profile>`, or an SELinux context.
        value: CPath,
    },
    /// Drop every capability not in `keep` from the bounding set.
    DropBoundingCaps {
        /// Bit mask of capabilities to keep.
        keep: u64,
        /// The highest capability the kernel knows.
        last_cap: u32,
    },
    /// `PR_SET_KEEPCAPS`, so capabilities survive the switch to a non-root
    /// uid until they are set explicitly.
    KeepCaps,
    /// `setgroups`.
    SetGroups {
        /// Supplementary groups.
        gids: Vec<u32>,
    },
    /// `setresgid`.
    SetGid {
        /// The gid.
        gid: u32,
    },
    /// `setresuid`.
    SetUid {
        /// The uid.
        uid: u32,
    },
    /// `capset` of the effective, permitted and inheritable sets.
    SetCaps {
        /// Effective set.
        effective: u64,
        /// Permitted set.
        permitted: u64,
        /// Inheritable set.
        inheritable: u64,
    },
    /// Clear the ambient set and raise these.
    AmbientCaps {
        /// Ambient set.
        ambient: u64,
    },
    /// `chdir` to the process's cwd while still root (as runc: a
    /// directory root may enter works for any user); failure is retried by
    /// [`Step::Chdir`] after the switch of user.
    ChdirAsRoot {
        /// Absolute path in the container.
        cwd: CPath,
    },
    /// `chdir` to the process's cwd, unless [`Step::ChdirAsRoot`] did.
    Chdir {
        /// Absolute path in the container.
        cwd: CPath,
    },
    /// `umask`.
    Umask {
        /// The mask; `None` keeps the caller's.
        mask: Option<u32>,
    },
    /// `PR_SET_NO_NEW_PRIVS`.
    NoNewPrivileges,
    /// Load the seccomp filter (`seccomp(SECCOMP_SET_MODE_FILTER)`). With a
    /// listener, send the notify descriptor to the parent and wait until
    /// it has passed it on.
    Seccomp(crate::security::seccomp::Filter),
    /// Find the executable among [`Exec::candidates`]; fail now (at create)
    /// if there is none, as runc does.
    FindExecutable,
    /// Make every descriptor above the preserved ones close-on-exec, and the
    /// preserved ones (`3..3+preserve`) inheritable.
    CloseFds {
        /// How many descriptors after stdio to pass on (`LISTEN_FDS`).
        preserve: u32,
    },
    /// Report "created" and block until `start` writes the exec FIFO.
    AwaitStart,
    /// Unblock signals and `execve`.
    Exec,
}

impl Step {
    /// The public kind of this step, which [`Error::Init`](crate::Error::Init)
    /// carries.
    pub(crate) fn kind(&self) -> crate::InitStep {
        use crate::InitStep as K;
        match self {
            Step::ResetSignals => K::ResetSignals,
            Step::JoinCgroup => K::JoinCgroup,
            Step::AwaitParent => K::AwaitParent,
            Step::JoinNamespace { .. } => K::JoinNamespace,
            Step::BecomeRoot => K::BecomeRoot,
            Step::ForkIntoPidNamespace => K::ForkIntoPidNamespace,
            Step::OomScoreAdj { .. } => K::OomScoreAdj,
            Step::UnshareCgroup => K::UnshareCgroup,
            Step::SetSid => K::SetSid,
            Step::LoopbackUp => K::LoopbackUp,
            Step::Propagation { .. } => K::Propagation,
            Step::MountRootfs { .. } => K::Mount,
            Step::BindRootfs { .. } => K::BindRootfs,
            Step::Mount(_) => K::Mount,
            Step::Remount { .. } => K::Remount,
            Step::MountSetattr { .. } => K::MountSetattr,
            Step::Device(_) => K::Device,
            Step::Symlink { .. } => K::Symlink,
            Step::AwaitHooks => K::AwaitHooks,
            Step::PivotRoot => K::PivotRoot,
            Step::MoveRoot => K::MoveRoot,
            Step::Chroot => K::Chroot,
            Step::Console { .. } => K::Console,
            Step::Stdio => K::Stdio,
            Step::Sysctl { .. } => K::Sysctl,
            Step::MaskPath { .. } => K::MaskPath,
            Step::ReadonlyPath { .. } => K::ReadonlyPath,
            Step::ReadonlyRoot => K::ReadonlyRoot,
            Step::Hostname { .. } => K::SetHostname,
            Step::Domainname { .. } => K::SetDomainname,
            Step::Rlimit { .. } => K::Rlimit,
            Step::Personality { .. } => K::Personality,
            Step::MemoryPolicy { .. } => K::MemoryPolicy,
            Step::UnshareTime { .. } => K::UnshareTime,
            Step::Scheduler(_) => K::Scheduler,
            Step::IoPriority { .. } => K::IoPriority,
            Step::ProcAttr { .. } => K::LsmLabel,
            Step::DropBoundingCaps { .. } => K::DropBoundingCaps,
            Step::KeepCaps => K::KeepCaps,
            Step::SetGroups { .. } => K::SetGroups,
            Step::SetGid { .. } => K::SetGid,
            Step::SetUid { .. } => K::SetUid,
            Step::SetCaps { .. } => K::SetCaps,
            Step::AmbientCaps { .. } => K::AmbientCaps,
            Step::ChdirAsRoot { .. } | Step::Chdir { .. } => K::Chdir,
            Step::Umask { .. } => K::Umask,
            Step::NoNewPrivileges => K::NoNewPrivileges,
            Step::Seccomp(_) => K::Seccomp,
            Step::FindExecutable => K::FindExecutable,
            Step::CloseFds { .. } => K::CloseFds,
            Step::AwaitStart => K::AwaitStart,
            Step::Exec => K::Exec,
        }
    }
}

/// `struct sched_attr` of `sched_setattr(2)`, as the spec gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SchedAttr {
    /// `SCHED_*` policy number.
    pub policy: u32,
    /// `SCHED_FLAG_*` bits.
    pub flags: u64,
    /// Nice value (`SCHED_OTHER`, `SCHED_BATCH`).
    pub nice: i32,
    /// Static priority (`SCHED_FIFO`, `SCHED_RR`).
    pub priority: u32,
    /// `SCHED_DEADLINE` runtime, in ns.
    pub runtime: u64,
    /// `SCHED_DEADLINE` deadline, in ns.
    pub deadline: u64,
    /// `SCHED_DEADLINE` period, in ns.
    pub period: u64,
}

/// What to `execve`.
#[derive(Debug, Clone, Serialize)]
pub struct Exec {
    /// Paths to try, in order: `args[0]` if it has a slash, else each `PATH`
    /// directory joined with it.
    pub candidates: Vec<CPath>,
    /// `argv`.
    pub argv: Vec<CPath>,
    /// `envp`.
    pub env: Vec<CPath>,
}

/// The compiled form of a spec: what the parent and the child will do.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Namespaces created by `clone` (or `unshare` for cgroup).
    pub new_namespaces: Vec<Namespace>,
    /// Namespaces joined by path.
    pub joins: Vec<Join>,
    /// `CLONE_VM`: the child shares memory with the parent until `execve`.
    /// False when joining a user namespace (the kernel wants a private mm),
    /// a pid namespace (the child must be non-dumpable on its own), or with
    /// `oomScoreAdj` (the kernel applies it to every process sharing the
    /// mm, the caller included).
    pub share_memory: bool,
    /// Planned for a runtime without root: a child that does not share
    /// memory stays dumpable until the parent's set-up is done (a
    /// non-dumpable process's `/proc` files are root's, which an
    /// unprivileged parent, and `newuidmap`, could not write), and writes
    /// its own `oom_score_adj` ([`Step::OomScoreAdj`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rootless: bool,
    /// Contents of `/proc/<pid>/uid_map`, written by the parent.
    pub uid_map: Option<String>,
    /// Contents of `/proc/<pid>/gid_map`.
    pub gid_map: Option<String>,
    /// The host path of the rootfs.
    pub rootfs: PathBuf,
    /// Whether the process gets a pseudo-terminal.
    pub terminal: bool,
    /// Written to `/proc/<pid>/oom_score_adj` by the parent, before the
    /// child goes on: from inside a new user namespace the child may not
    /// write its own.
    pub oom_score_adj: Option<i32>,
    /// The executor's steps.
    pub steps: Vec<Step>,
    /// The process to run.
    pub exec: Exec,
}

impl Plan {
    /// The `CLONE_NEW*` flags passed to `clone3` (the cgroup namespace is
    /// unshared later, once the process is in its cgroup; the time
    /// namespace too, so that its offsets can still be set).
    pub fn clone_flags(&self) -> u64 {
        self.new_namespaces
            .iter()
            .filter(|ns| **ns != Namespace::Cgroup && **ns != Namespace::Time)
            .fold(0, |acc, ns| acc | ns.clone_flag())
    }

    /// Whether the child forks into a pid namespace it joined
    /// ([`Step::ForkIntoPidNamespace`]) rather than being cloned into it.
    pub fn forks_into_pid_namespace(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::ForkIntoPidNamespace))
    }

    /// The kind of step `index`, for [`Error::Init`](crate::Error::Init).
    pub(crate) fn step_kind(&self, index: usize) -> crate::InitStep {
        self.steps
            .get(index)
            .map_or(crate::InitStep::Unknown, Step::kind)
    }

    /// Describes step `index` for error messages: what it did and on which
    /// path.
    pub fn describe(&self, index: usize) -> (String, Option<PathBuf>) {
        let Some(step) = self.steps.get(index) else {
            return (format!("step {index}"), None);
        };
        let p = |c: &CPath| Some(PathBuf::from(c.to_string_lossy()));
        match step {
            Step::ResetSignals => ("reset signal handlers".into(), None),
            Step::JoinCgroup => ("join the container's cgroup".into(), None),
            Step::AwaitParent => ("wait for the parent's set-up".into(), None),
            Step::JoinNamespace { index, ns } => (
                format!("join {} namespace", ns.proc_name()),
                self.joins.get(*index).map(|j| j.path.clone()),
            ),
            Step::BecomeRoot => ("become root in the user namespace".into(), None),
            Step::ForkIntoPidNamespace => (
                "fork into the container's pid namespace".into(),
                self.joins
                    .iter()
                    .find(|j| j.ns == Namespace::Pid)
                    .map(|j| j.path.clone()),
            ),
            Step::OomScoreAdj { value } => (
                format!("set oom_score_adj to {value} (process.oomScoreAdj)"),
                Some("/proc/self/oom_score_adj".into()),
            ),
            Step::UnshareCgroup => ("create cgroup namespace".into(), None),
            Step::UnshareTime { .. } => (
                "create time namespace (linux.timeOffsets)".into(),
                Some("/proc/self/timens_offsets".into()),
            ),
            Step::MemoryPolicy { .. } => ("set_mempolicy (linux.memoryPolicy)".into(), None),
            Step::SetSid => ("setsid".into(), None),
            Step::LoopbackUp => ("bring up lo".into(), None),
            Step::Propagation { target, .. } => ("set mount propagation".into(), p(target)),
            Step::MountRootfs { rootfs, fstype, .. } => (
                format!("mount {} on the rootfs", fstype.as_c().to_string_lossy()),
                p(rootfs),
            ),
            Step::BindRootfs { rootfs } => ("bind rootfs".into(), p(rootfs)),
            Step::Mount(m) => (
                format!(
                    "mount {} on {}",
                    m.fstype
                        .as_ref()
                        .map_or("bind".into(), CPath::to_string_lossy),
                    m.target.path.display()
                ),
                Some(m.target.path.clone()),
            ),
            Step::Remount { target, .. } => ("remount".into(), Some(target.path.clone())),
            Step::MountSetattr { target, .. } => (
                "set recursive mount attributes (mount_setattr)".into(),
                Some(target.path.clone()),
            ),
            Step::Device(d) => ("create device".into(), Some(d.target.path.clone())),
            Step::Symlink { link, .. } => ("create symlink".into(), Some(link.path.clone())),
            Step::AwaitHooks => ("wait for hooks".into(), None),
            Step::PivotRoot => ("pivot_root".into(), Some(self.rootfs.clone())),
            Step::MoveRoot => ("move rootfs to /".into(), Some(self.rootfs.clone())),
            Step::Chroot => ("chroot into the rootfs".into(), Some(self.rootfs.clone())),
            Step::Console { .. } => ("set up console".into(), Some("/dev/ptmx".into())),
            Step::Stdio => ("set up stdio".into(), None),
            Step::Sysctl { path, .. } => ("write sysctl".into(), p(path)),
            Step::MaskPath { path } => ("mask path".into(), p(path)),
            Step::ReadonlyPath { path } => ("make path read-only".into(), p(path)),
            Step::ReadonlyRoot => ("remount root read-only".into(), Some("/".into())),
            Step::Hostname { .. } => ("set hostname".into(), None),
            Step::Domainname { .. } => ("set domainname".into(), None),
            Step::Rlimit { resource, .. } => (format!("set rlimit {resource}"), None),
            Step::Personality { .. } => ("set personality (linux.personality)".into(), None),
            Step::Scheduler(_) => ("sched_setattr (process.scheduler)".into(), None),
            Step::IoPriority { .. } => ("ioprio_set (process.ioPriority)".into(), None),
            Step::ProcAttr { path, .. } => ("set LSM label".into(), p(path)),
            Step::DropBoundingCaps { .. } => ("drop bounding capabilities".into(), None),
            Step::KeepCaps => ("keep capabilities".into(), None),
            Step::SetGroups { .. } => ("setgroups".into(), None),
            Step::SetGid { gid } => (format!("setgid {gid}"), None),
            Step::SetUid { uid } => (format!("setuid {uid}"), None),
            Step::SetCaps { .. } => ("set capabilities".into(), None),
            Step::AmbientCaps { .. } => ("set ambient capabilities".into(), None),
            Step::ChdirAsRoot { cwd } | Step::Chdir { cwd } => (
                "chdir to process.cwd (a directory inside the container)".into(),
                p(cwd),
            ),
            Step::Umask { .. } => ("umask".into(), None),
            Step::NoNewPrivileges => ("set no_new_privs".into(), None),
            Step::Seccomp(f) => ("load seccomp filter".into(), f.listener.clone()),
            Step::FindExecutable => ("find executable".into(), self.exec.argv.first().and_then(p)),
            Step::CloseFds { .. } => ("close inherited descriptors".into(), None),
            Step::AwaitStart => ("wait for start".into(), None),
            Step::Exec => ("execve".into(), self.exec.argv.first().and_then(p)),
        }
    }
}
