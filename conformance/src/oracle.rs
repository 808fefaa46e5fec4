//! The oracle: from a spec, what the probe must report.
//!
//! [`expected`] turns an OCI spec into an [`Expected`] (what the kernel must
//! show the container's process), and [`check`] compares a probe
//! [`Report`] with it, returning one human-readable line per mismatch.
//!
//! The oracle is written from the OCI runtime spec and the kernel's rules,
//! independently of berth's code. Where the process inherits something the
//! spec leaves unset (rlimits, umask, oom_score_adj, the namespaces it does
//! not list), the oracle expects the value of the calling process, read
//! from `/proc/self` by [`Host::current`].
//!
//! Capabilities are checked as the kernel shows them *after* `execve` of
//! the probe (a file without file capabilities): for uid 0 the permitted and
//! effective sets become bounding ∪ inheritable ∪ ambient, for any other
//! uid they become the ambient set (`capabilities(7)`, "Transformation of
//! capabilities during execve()"); with no_new_privs, root gains nothing
//! over the permitted set it had before `execve` (`cap_bprm_creds_from_file`
//! intersects with the old permitted set). That is kernel behaviour, not a
//! berth choice, so the oracle models it.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use oci_spec::runtime::{Capabilities, LinuxDeviceType, LinuxNamespaceType, PosixRlimitType, Spec};

use crate::report::{
    parse_limits, parse_mountinfo, parse_status, MountEntry, PathReport, Report, Rlimit, Status,
    PATHS_ENV, SYSCTLS_ENV,
};

const EPERM: i32 = libc::EPERM;
const ENOENT: i32 = libc::ENOENT;
const EACCES: i32 = libc::EACCES;
const EROFS: i32 = libc::EROFS;

/// `CAP_DAC_OVERRIDE`: writing ignores permission bits.
const CAP_DAC_OVERRIDE: u32 = 1;

/// Capability names as the OCI spec spells them, by number
/// (`linux/capability.h`).
pub const CAPABILITY_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The devices every container gets (OCI runtime spec, "Default Devices"):
/// path, major, minor.
pub const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// The symlinks runc (and so every runtime people compare with) puts in
/// `/dev`: link, target. `/dev/ptmx` is required by the OCI spec.
pub const DEV_SYMLINKS: [(&str, &str); 5] = [
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/ptmx", "pts/ptmx"),
];

/// The five capability sets, as bit masks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    /// Inheritable.
    pub inh: u64,
    /// Permitted.
    pub prm: u64,
    /// Effective.
    pub eff: u64,
    /// Bounding.
    pub bnd: u64,
    /// Ambient.
    pub amb: u64,
}

/// What the calling process (the "host" side of a container) looks like:
/// everything a container inherits when its spec leaves a field unset.
#[derive(Debug, Clone)]
pub struct Host {
    /// Inode of each `/proc/self/ns/*`.
    pub namespaces: BTreeMap<String, u64>,
    /// `/proc/sys/kernel/hostname`.
    pub hostname: String,
    /// `/proc/sys/kernel/domainname`.
    pub domainname: String,
    /// Ids, capabilities and umask of the caller.
    pub status: Status,
    /// Resource limits of the caller, by OCI name.
    pub rlimits: BTreeMap<String, Rlimit>,
    /// The caller's `oom_score_adj`.
    pub oom_score_adj: i32,
    /// The cgroup hierarchies under `/sys/fs/cgroup`: name below it (empty
    /// for a cgroup2 mount right at `/sys/fs/cgroup`) and fs type.
    pub cgroup_mounts: Vec<(String, String)>,
    /// The highest capability number the kernel knows
    /// (`/proc/sys/kernel/cap_last_cap`).
    pub last_cap: u32,
}

impl Host {
    /// Reads the calling process's view from `/proc/self`.
    pub fn current() -> Result<Host, String> {
        let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
        let mut namespaces = BTreeMap::new();
        for entry in std::fs::read_dir("/proc/self/ns").map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            let ino = std::fs::metadata(entry.path())
                .map_err(|e| e.to_string())?
                .ino();
            namespaces.insert(entry.file_name().to_string_lossy().into_owned(), ino);
        }
        let mounts = parse_mountinfo(&read("/proc/self/mountinfo")?).map_err(|e| e.to_string())?;
        let cgroup_mounts = mounts
            .iter()
            .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
            .filter_map(|m| {
                let rel = Path::new(&m.mount_point)
                    .strip_prefix("/sys/fs/cgroup")
                    .ok()?;
                Some((rel.to_string_lossy().into_owned(), m.fstype.clone()))
            })
            .collect();
        Ok(Host {
            namespaces,
            hostname: read("/proc/sys/kernel/hostname")?.trim_end().to_string(),
            domainname: read("/proc/sys/kernel/domainname")?.trim_end().to_string(),
            status: parse_status(&read("/proc/self/status")?).map_err(|e| e.to_string())?,
            rlimits: parse_limits(&read("/proc/self/limits")?).map_err(|e| e.to_string())?,
            oom_score_adj: read("/proc/self/oom_score_adj")?
                .trim()
                .parse()
                .map_err(|e| format!("oom_score_adj: {e}"))?,
            cgroup_mounts,
            last_cap: read("/proc/sys/kernel/cap_last_cap")?
                .trim()
                .parse()
                .map_err(|e| format!("cap_last_cap: {e}"))?,
        })
    }

    /// [`Host::current`], read once per process.
    ///
    /// # Panics
    ///
    /// When `/proc/self` cannot be read.
    pub fn cached() -> &'static Host {
        static HOST: OnceLock<Host> = OnceLock::new();
        HOST.get_or_init(|| Host::current().expect("reading the host's view from /proc/self"))
    }

    /// The caller's capability sets.
    pub fn caps(&self) -> Caps {
        Caps {
            inh: self.status.cap_inh,
            prm: self.status.cap_prm,
            eff: self.status.cap_eff,
            bnd: self.status.cap_bnd,
            amb: self.status.cap_amb,
        }
    }
}

/// What a namespace of the container must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsExpect {
    /// A new namespace: its inode differs from the caller's (`host`).
    New {
        /// The caller's inode of this namespace type.
        host: u64,
    },
    /// A joined namespace: the inode of `path` (`None` when `path` could
    /// not be read, which is a mismatch).
    Joined {
        /// The path in the spec.
        path: PathBuf,
        /// Its inode, read when the expectation was made.
        ino: Option<u64>,
    },
    /// Not in the spec: the caller's namespace.
    Inherited {
        /// The caller's inode.
        ino: u64,
    },
}

/// How the spec wants a mount's propagation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// `shared`/`rshared`: a peer group (`shared:N`).
    Shared,
    /// `private`/`rprivate`: no peer group, no master.
    Private,
    /// `unbindable`/`runbindable`.
    Unbindable,
}

/// What one spec mount must look like in mountinfo (the topmost mount at
/// its destination).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountExpect {
    /// Index in `spec.mounts`.
    pub index: usize,
    /// Cleaned destination.
    pub destination: String,
    /// Filesystem type, when it is known (`None` for bind mounts).
    pub fstype: Option<String>,
    /// Per-mount options that must be present (`true`) or absent (`false`).
    pub options: Vec<(&'static str, bool)>,
    /// Superblock options that must be present (normalized as the kernel
    /// prints them: `mode=755`, `size=1024k`).
    pub super_options: Vec<String>,
    /// Propagation to check, if any.
    pub propagation: Option<Propagation>,
    /// Mounts that must exist below this one (fs type), as for the cgroup
    /// hierarchies of a v1 host.
    pub submounts: Vec<(String, String)>,
}

/// A device node the container must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceExpect {
    /// Path in the container.
    pub path: String,
    /// `char`, `block` or `fifo` (as [`crate::report::Stat::kind`]).
    pub kind: &'static str,
    /// Major number (0 for a FIFO).
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits, owner and group, when they are known (not for
    /// devices bind-mounted from the host into a user namespace).
    pub mode_owner: Option<(u32, u32, u32)>,
}

/// Everything the probe must report for a spec. `None` means "not
/// checked" (unknowable from the spec alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The probe is pid 1 (a new pid namespace) or not.
    pub pid_one: bool,
    /// `uname -n`.
    pub hostname: Option<String>,
    /// `uname`'s domain name.
    pub domainname: Option<String>,
    /// Real, effective, saved and fs uid.
    pub uid: u32,
    /// Real, effective, saved and fs gid.
    pub gid: u32,
    /// Supplementary groups, sorted.
    pub groups: Vec<u32>,
    /// Capability sets after `execve`.
    pub caps: Caps,
    /// `NoNewPrivs`.
    pub no_new_privs: bool,
    /// Seccomp mode (0: no filter in the spec).
    pub seccomp: u32,
    /// The umask.
    pub umask: u32,
    /// All 16 resource limits.
    pub rlimits: BTreeMap<String, Rlimit>,
    /// The working directory, cleaned.
    pub cwd: String,
    /// The environment, exactly, in order.
    pub environ: Vec<String>,
    /// The arguments, exactly.
    pub args: Vec<String>,
    /// Namespaces by `/proc/self/ns` name.
    pub namespaces: BTreeMap<String, NsExpect>,
    /// `oom_score_adj`.
    pub oom_score_adj: i32,
    /// Sysctl values, whitespace-normalized.
    pub sysctls: BTreeMap<String, String>,
    /// Paths that must be masked (unreadable or empty, when they exist).
    pub masked: Vec<String>,
    /// Paths that must be read-only (writes fail with `EROFS`).
    pub readonly: Vec<String>,
    /// `root.readonly`.
    pub root_readonly: bool,
    /// Propagation of `/`, when the spec sets one the oracle can check.
    pub root_propagation: Option<Propagation>,
    /// The spec's mounts.
    pub mounts: Vec<MountExpect>,
    /// Device nodes.
    pub devices: Vec<DeviceExpect>,
    /// Symlinks in `/dev`: link, target.
    pub symlinks: Vec<(String, String)>,
}

/// The `/proc/self/ns` name of a namespace type.
pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// The OCI name of an rlimit type (`RLIMIT_NOFILE`).
pub fn rlimit_name(t: PosixRlimitType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{t:?}"))
}

/// The bit mask of a list of capabilities.
pub fn cap_mask(caps: Option<&Capabilities>) -> u64 {
    caps.into_iter()
        .flatten()
        .filter_map(|c| {
            let name = serde_json::to_value(c).ok()?;
            let n = CAPABILITY_NAMES
                .iter()
                .position(|x| Some(*x) == name.as_str())?;
            Some(1u64 << n)
        })
        .fold(0, |a, b| a | b)
}

/// Lexically cleans an absolute path (`/a/./b/../c` → `/a/c`); `..` at the
/// root stays at the root.
pub fn clean(p: &Path) -> String {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out.to_string_lossy().into_owned()
}

fn normalize_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The paths the probe must inspect for [`check`] to judge `spec`:
/// `/`, the masked and read-only paths and the devices and `/dev`
/// symlinks.
pub fn probe_paths(spec: &Spec) -> Vec<String> {
    let e = expected(spec);
    let mut paths: BTreeSet<String> = BTreeSet::new();
    paths.insert("/".into());
    paths.extend(e.masked.iter().cloned());
    paths.extend(e.readonly.iter().cloned());
    paths.extend(e.devices.iter().map(|d| d.path.clone()));
    paths.extend(e.symlinks.iter().map(|(l, _)| l.clone()));
    paths.into_iter().collect()
}

/// The sysctl keys the probe must read: those the spec sets.
pub fn probe_sysctls(spec: &Spec) -> Vec<String> {
    let mut keys: Vec<String> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().as_ref())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Sets [`PATHS_ENV`] and [`SYSCTLS_ENV`] in the spec's environment (at
/// the end, replacing earlier definitions) so that the probe reports what
/// [`check`] needs.
pub fn with_probe_env(mut spec: Spec) -> Spec {
    let paths = probe_paths(&spec).join(",");
    let sysctls = probe_sysctls(&spec).join(",");
    if let Some(p) = spec.process_mut().as_mut() {
        let mut env: Vec<String> = p
            .env()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| {
                !e.starts_with(&format!("{PATHS_ENV}="))
                    && !e.starts_with(&format!("{SYSCTLS_ENV}="))
            })
            .collect();
        env.push(format!("{PATHS_ENV}={paths}"));
        env.push(format!("{SYSCTLS_ENV}={sysctls}"));
        p.set_env(Some(env));
    }
    spec
}

/// What the probe must report for `spec`, on the calling process's
/// [`Host::cached`] view.
pub fn expected(spec: &Spec) -> Expected {
    expected_on(spec, Host::cached())
}

/// Mount flags as the spec's option list sets them (later options win).
#[derive(Debug, Default, Clone)]
struct Flags {
    ro: bool,
    nosuid: bool,
    nodev: bool,
    noexec: bool,
    noatime: bool,
    nodiratime: bool,
    strictatime: bool,
    nosymfollow: bool,
    bind: bool,
    propagation: Option<&'static str>,
    data: Vec<(String, Option<String>)>,
}

fn flags(options: &[String]) -> Flags {
    let mut f = Flags::default();
    for o in options {
        match o.as_str() {
            "ro" => f.ro = true,
            "rw" => f.ro = false,
            "nosuid" => f.nosuid = true,
            "suid" => f.nosuid = false,
            "nodev" => f.nodev = true,
            "dev" => f.nodev = false,
            "noexec" => f.noexec = true,
            "exec" => f.noexec = false,
            "noatime" => f.noatime = true,
            "atime" => f.noatime = false,
            "nodiratime" => f.nodiratime = true,
            "diratime" => f.nodiratime = false,
            "strictatime" => f.strictatime = true,
            "nostrictatime" => f.strictatime = false,
            "nosymfollow" => f.nosymfollow = true,
            "symfollow" => f.nosymfollow = false,
            "bind" | "rbind" => f.bind = true,
            "shared" | "rshared" => f.propagation = Some("shared"),
            "private" | "rprivate" => f.propagation = Some("private"),
            "slave" | "rslave" => f.propagation = Some("slave"),
            "unbindable" | "runbindable" => f.propagation = Some("unbindable"),
            "defaults" | "relatime" | "norelatime" | "sync" | "async" | "dirsync" | "mand"
            | "nomand" => {}
            other => {
                let (k, v) = match other.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (other.to_string(), None),
                };
                f.data.push((k, v));
            }
        }
    }
    f
}

impl Flags {
    /// The per-mount options mountinfo must show (present or absent), by
    /// the kernel's rules: relatime unless noatime or strictatime, and
    /// strictatime beats noatime.
    fn shown(&self) -> Vec<(&'static str, bool)> {
        let noatime = self.noatime && !self.strictatime;
        let relatime = !self.noatime && !self.strictatime;
        vec![
            ("ro", self.ro),
            ("rw", !self.ro),
            ("nosuid", self.nosuid),
            ("nodev", self.nodev),
            ("noexec", self.noexec),
            ("noatime", noatime),
            ("relatime", relatime),
            ("nodiratime", self.nodiratime),
            ("nosymfollow", self.nosymfollow),
        ]
    }

    fn remounts(&self) -> bool {
        self.ro
            || self.nosuid
            || self.nodev
            || self.noexec
            || self.noatime
            || self.nodiratime
            || self.strictatime
            || self.nosymfollow
    }

    fn propagation(&self) -> Option<Propagation> {
        match self.propagation? {
            "shared" => Some(Propagation::Shared),
            "private" => Some(Propagation::Private),
            "unbindable" => Some(Propagation::Unbindable),
            _ => None,
        }
    }
}

/// An octal mode as the kernel prints it (`%03o`).
fn octal(v: &str) -> Option<String> {
    u32::from_str_radix(v, 8).ok().map(|m| format!("{m:03o}"))
}

/// A tmpfs `size=` as `shmem_show_options` prints it: KiB of whole pages.
fn tmpfs_size(v: &str) -> Option<String> {
    let (num, mult) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&v[..v.len() - 1], 1 << 20),
        b'g' | b'G' => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    let bytes = num.parse::<u64>().ok()? * mult;
    let pages = bytes.div_ceil(4096);
    Some(format!("size={}k", pages * 4))
}

/// Superblock options the kernel must print for the spec's data options.
fn super_options(fstype: &str, f: &Flags, in_userns: bool) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in &f.data {
        let Some(v) = v else { continue };
        let shown = match (fstype, k.as_str()) {
            ("tmpfs", "mode") => octal(v)
                .filter(|m| m != "1777")
                .map(|m| format!("mode={m}")),
            ("tmpfs", "size") => tmpfs_size(v),
            ("tmpfs", "uid" | "gid") if !in_userns && v != "0" => Some(format!("{k}={v}")),
            ("devpts", "mode" | "ptmxmode") => octal(v).map(|m| format!("{k}={m}")),
            ("devpts", "uid" | "gid") if !in_userns => Some(format!("{k}={v}")),
            _ => None,
        };
        // A later occurrence replaces an earlier one.
        if let Some(s) = shown {
            out.retain(|o: &String| o.split('=').next() != s.split('=').next());
            out.push(s);
        }
    }
    out
}

/// [`expected`] against an explicit host view.
pub fn expected_on(spec: &Spec, host: &Host) -> Expected {
    let process = spec.process().clone().unwrap_or_default();
    let linux = spec.linux().clone().unwrap_or_default();
    let user = process.user();

    // Namespaces.
    let listed: BTreeMap<&str, Option<PathBuf>> = linux
        .namespaces()
        .iter()
        .flatten()
        .map(|n| (ns_name(n.typ()), n.path().clone()))
        .collect();
    let mut namespaces = BTreeMap::new();
    for (name, &ino) in &host.namespaces {
        // pid_for_children and time_for_children follow pid and time.
        let base = name.trim_end_matches("_for_children");
        let e = match listed.get(base) {
            Some(None) => NsExpect::New { host: ino },
            Some(Some(path)) => NsExpect::Joined {
                path: path.clone(),
                ino: std::fs::metadata(path).ok().map(|m| m.ino()),
            },
            None => NsExpect::Inherited { ino },
        };
        namespaces.insert(name.clone(), e);
    }
    let new_ns = |n: &str| matches!(listed.get(n), Some(None));
    let in_userns = listed.contains_key("user");

    // Hostname: the spec's, else a new UTS namespace starts as a copy of
    // the caller's; a joined one is whatever it is.
    let uts = listed.get("uts");
    let inherited_name = |spec_value: &Option<String>, host_value: &str| match (spec_value, uts) {
        (Some(v), _) => Some(v.clone()),
        (None, Some(Some(_))) => None,
        (None, _) => Some(host_value.to_string()),
    };
    let hostname = inherited_name(spec.hostname(), &host.hostname);
    let domainname = inherited_name(spec.domainname(), &host.domainname);

    // Capabilities: what the runtime sets, then execve's transformation.
    let uid = user.uid();
    // Entering a user namespace (new or joined) gives a full permitted,
    // effective and bounding set and empty inheritable and ambient ones
    // (`set_cred_user_ns`).
    let full = if host.last_cap >= 63 {
        u64::MAX
    } else {
        (1u64 << (host.last_cap + 1)) - 1
    };
    let caller = if in_userns {
        Caps {
            inh: 0,
            prm: full,
            eff: full,
            bnd: full,
            amb: 0,
        }
    } else {
        host.caps()
    };
    let set = match process.capabilities() {
        Some(c) => Caps {
            bnd: cap_mask(c.bounding().as_ref()) & caller.bnd,
            prm: cap_mask(c.permitted().as_ref()),
            eff: cap_mask(c.effective().as_ref()),
            inh: cap_mask(c.inheritable().as_ref()),
            amb: cap_mask(c.ambient().as_ref()),
        },
        // Without capabilities in the spec nothing is changed, but a uid
        // change away from 0 clears permitted, effective and ambient.
        None if uid == 0 => caller,
        None => Caps {
            prm: 0,
            eff: 0,
            amb: 0,
            ..caller
        },
    };
    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    let caps = {
        // Root gets the bounding and inheritable sets as if the file had
        // them all; no_new_privs refuses any gain over the permitted set
        // before execve.
        let mut prm = if uid == 0 { set.bnd | set.inh } else { 0 };
        if no_new_privs && prm & !set.prm != 0 {
            prm &= set.prm;
        }
        let prm = prm | set.amb;
        Caps {
            prm,
            eff: if uid == 0 { prm } else { set.amb },
            ..set
        }
    };

    let mut rlimits = host.rlimits.clone();
    for r in process.rlimits().iter().flatten() {
        rlimits.insert(
            rlimit_name(r.typ()),
            Rlimit {
                soft: r.soft(),
                hard: r.hard(),
            },
        );
    }

    let mut groups = user.additional_gids().clone().unwrap_or_default();
    groups.sort_unstable();

    let sysctls = linux
        .sysctl()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), normalize_ws(v)))
        .collect();

    // Mounts: the topmost at each destination is the one checked.
    let mut by_dest: BTreeMap<String, MountExpect> = BTreeMap::new();
    for (index, m) in spec.mounts().iter().flatten().enumerate() {
        let destination = clean(m.destination());
        let f = flags(m.options().as_deref().unwrap_or_default());
        let typ = m.typ().clone().unwrap_or_default();
        let bind = f.bind || typ == "bind";
        let e = if bind {
            // A bind keeps the source mount's flags unless a remount
            // changes them: only flags the spec sets are checked then.
            let options = if f.remounts() { f.shown() } else { Vec::new() };
            MountExpect {
                index,
                destination: destination.clone(),
                fstype: None,
                options,
                super_options: Vec::new(),
                propagation: f.propagation(),
                submounts: Vec::new(),
            }
        } else if typ == "cgroup" || typ == "cgroup2" {
            let v2 = matches!(host.cgroup_mounts.as_slice(), [(name, _)] if name.is_empty());
            let mut options = vec![("ro", f.ro), ("rw", !f.ro)];
            let submounts = if v2 {
                Vec::new()
            } else {
                options.extend([("nosuid", true), ("nodev", true), ("noexec", true)]);
                host.cgroup_mounts
                    .iter()
                    .map(|(name, fstype)| {
                        (clean(&Path::new(&destination).join(name)), fstype.clone())
                    })
                    .collect()
            };
            MountExpect {
                index,
                destination: destination.clone(),
                fstype: Some(if v2 { "cgroup2" } else { "tmpfs" }.into()),
                options,
                super_options: Vec::new(),
                propagation: None,
                submounts,
            }
        } else {
            MountExpect {
                index,
                destination: destination.clone(),
                fstype: Some(typ.clone()),
                options: f.shown(),
                super_options: super_options(&typ, &f, in_userns),
                propagation: f.propagation(),
                submounts: Vec::new(),
            }
        };
        by_dest.insert(destination, e);
    }
    let mut mounts: Vec<MountExpect> = by_dest.into_values().collect();
    mounts.sort_by_key(|m| m.index);
    // A recursive rootfsPropagation (runc's `rshared`, ...; the OCI spec
    // only has the plain words, about the rootfs mount alone) may be
    // applied to the whole tree after the mounts: their own propagation
    // is not checked then.
    if linux
        .rootfs_propagation()
        .as_deref()
        .is_some_and(|p| p.starts_with('r'))
    {
        for m in &mut mounts {
            m.propagation = None;
        }
    }

    // Devices: the defaults (unless /dev is a bind mount), then the spec's.
    let dev_bound = spec.mounts().iter().flatten().any(|m| {
        clean(m.destination()) == "/dev"
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    });
    let mut devices: Vec<DeviceExpect> = Vec::new();
    for d in linux.devices().iter().flatten() {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => "char",
            LinuxDeviceType::B => "block",
            LinuxDeviceType::P => "fifo",
            LinuxDeviceType::A => continue,
        };
        let fifo = kind == "fifo";
        devices.push(DeviceExpect {
            path: clean(d.path()),
            kind,
            major: if fifo { 0 } else { d.major() as u64 },
            minor: if fifo { 0 } else { d.minor() as u64 },
            mode_owner: (!in_userns).then(|| {
                (
                    d.file_mode().unwrap_or(0o666) & 0o7777,
                    d.uid().unwrap_or(0),
                    d.gid().unwrap_or(0),
                )
            }),
        });
    }
    let mut symlinks = Vec::new();
    if !dev_bound {
        for (path, major, minor) in DEFAULT_DEVICES {
            if devices.iter().any(|d| d.path == path) {
                continue;
            }
            devices.push(DeviceExpect {
                path: path.into(),
                kind: "char",
                major,
                minor,
                mode_owner: (!in_userns).then_some((0o666, 0, 0)),
            });
        }
        symlinks = DEV_SYMLINKS
            .iter()
            .map(|(l, t)| (l.to_string(), t.to_string()))
            .collect();
    }

    let root_propagation = linux.rootfs_propagation().as_deref().and_then(|p| match p {
        "shared" | "rshared" => Some(Propagation::Shared),
        "private" | "rprivate" => Some(Propagation::Private),
        "unbindable" | "runbindable" => Some(Propagation::Unbindable),
        _ => None,
    });

    Expected {
        pid_one: new_ns("pid"),
        hostname,
        domainname,
        uid,
        gid: user.gid(),
        groups,
        caps,
        no_new_privs,
        seccomp: if linux.seccomp().is_some() { 2 } else { 0 },
        umask: user.umask().unwrap_or(host.status.umask),
        rlimits,
        cwd: clean(process.cwd()),
        environ: process.env().clone().unwrap_or_default(),
        args: process.args().clone().unwrap_or_default(),
        namespaces,
        oom_score_adj: process.oom_score_adj().unwrap_or(host.oom_score_adj),
        sysctls,
        masked: linux
            .masked_paths()
            .iter()
            .flatten()
            .map(|p| clean(Path::new(p)))
            .collect(),
        readonly: linux
            .readonly_paths()
            .iter()
            .flatten()
            .map(|p| clean(Path::new(p)))
            .collect(),
        root_readonly: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        root_propagation,
        mounts,
        devices,
        symlinks,
    }
}

/// Compares the probe's report with what `spec` says; one line per
/// mismatch, empty when the container is as specified.
pub fn check(spec: &Spec, report: &Report) -> Vec<String> {
    check_expected(&expected(spec), report)
}

fn errno_name(e: Option<i32>) -> String {
    match e {
        Some(EROFS) => "EROFS".into(),
        Some(EACCES) => "EACCES".into(),
        Some(EPERM) => "EPERM".into(),
        Some(ENOENT) => "ENOENT".into(),
        Some(n) => format!("errno {n}"),
        None => "no errno".into(),
    }
}

/// Compares `report` with an [`Expected`].
pub fn check_expected(e: &Expected, r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let mut mismatch = |what: String| out.push(what);

    if (r.pid == 1) != e.pid_one {
        mismatch(format!(
            "pid: probe is pid {} but the spec {} a new pid namespace",
            r.pid,
            if e.pid_one {
                "asks for"
            } else {
                "does not ask for"
            }
        ));
    }
    let mut eq = |what: &str, got: String, want: String| {
        if got != want {
            mismatch(format!("{what}: got {got}, want {want}"));
        }
    };
    match (&e.hostname, &r.hostname) {
        (Some(want), Ok(got)) => eq("hostname", format!("{got:?}"), format!("{want:?}")),
        (Some(_), Err(err)) => eq("hostname", format!("error {err}"), "a hostname".into()),
        (None, _) => {}
    }
    match (&e.domainname, &r.domainname) {
        (Some(want), Ok(got)) => eq("domainname", format!("{got:?}"), format!("{want:?}")),
        (Some(_), Err(err)) => eq("domainname", format!("error {err}"), "a domainname".into()),
        (None, _) => {}
    }
    match &r.status {
        Ok(s) => {
            eq("uids", format!("{:?}", s.uid), format!("{:?}", [e.uid; 4]));
            eq("gids", format!("{:?}", s.gid), format!("{:?}", [e.gid; 4]));
            let mut groups = s.groups.clone();
            groups.sort_unstable();
            eq("groups", format!("{groups:?}"), format!("{:?}", e.groups));
            for (name, got, want) in [
                ("CapInh", s.cap_inh, e.caps.inh),
                ("CapPrm", s.cap_prm, e.caps.prm),
                ("CapEff", s.cap_eff, e.caps.eff),
                ("CapBnd", s.cap_bnd, e.caps.bnd),
                ("CapAmb", s.cap_amb, e.caps.amb),
            ] {
                eq(name, format!("{got:#x}"), format!("{want:#x}"));
            }
            eq(
                "NoNewPrivs",
                s.no_new_privs.to_string(),
                u32::from(e.no_new_privs).to_string(),
            );
            eq("Seccomp", s.seccomp.to_string(), e.seccomp.to_string());
            eq(
                "umask",
                format!("{:04o}", s.umask),
                format!("{:04o}", e.umask),
            );
        }
        Err(err) => eq(
            "/proc/self/status",
            format!("error {err}"),
            "readable".into(),
        ),
    }
    match &r.rlimits {
        Ok(got) => {
            for (name, want) in &e.rlimits {
                let g = got.get(name);
                if g != Some(want) {
                    let show = |l: &Rlimit| {
                        let v = |x: u64| {
                            if x == u64::MAX {
                                "unlimited".to_string()
                            } else {
                                x.to_string()
                            }
                        };
                        format!("{}/{}", v(l.soft), v(l.hard))
                    };
                    eq(
                        &format!("{name} (soft/hard)"),
                        g.map(show).unwrap_or_else(|| "missing".into()),
                        show(want),
                    );
                }
            }
        }
        Err(err) => eq(
            "/proc/self/limits",
            format!("error {err}"),
            "readable".into(),
        ),
    }
    match &r.cwd {
        Ok(c) => eq("cwd", format!("{c:?}"), format!("{:?}", e.cwd)),
        Err(err) => eq("cwd", format!("error {err}"), format!("{:?}", e.cwd)),
    }
    match &r.environ {
        Ok(env) => eq("env", format!("{env:?}"), format!("{:?}", e.environ)),
        Err(err) => eq("env", format!("error {err}"), "readable".into()),
    }
    match &r.args {
        Ok(args) => eq("args", format!("{args:?}"), format!("{:?}", e.args)),
        Err(err) => eq("args", format!("error {err}"), "readable".into()),
    }
    match &r.oom_score_adj {
        Ok(v) => eq("oom_score_adj", v.to_string(), e.oom_score_adj.to_string()),
        Err(err) => eq("oom_score_adj", format!("error {err}"), "readable".into()),
    }
    for (key, want) in &e.sysctls {
        match r.sysctls.get(key) {
            Some(Ok(v)) => eq(&format!("sysctl {key}"), normalize_ws(v), want.clone()),
            Some(Err(err)) => eq(
                &format!("sysctl {key}"),
                format!("error {err}"),
                want.clone(),
            ),
            None => eq(&format!("sysctl {key}"), "not probed".into(), want.clone()),
        }
    }

    for (name, want) in &e.namespaces {
        let got = r.namespaces.get(name);
        let got = match got {
            Some(Ok(ino)) => *ino,
            Some(Err(err)) => {
                mismatch(format!("namespace {name}: error {err}"));
                continue;
            }
            None => {
                mismatch(format!("namespace {name}: missing from /proc/self/ns"));
                continue;
            }
        };
        match want {
            NsExpect::New { host } if got == *host => mismatch(format!(
                "namespace {name}: the spec asks for a new one but it is the caller's ({got})"
            )),
            NsExpect::Joined { path, ino } if *ino != Some(got) => mismatch(format!(
                "namespace {name}: joined {} ({ino:?}) but the process is in {got}",
                path.display()
            )),
            NsExpect::Inherited { ino } if got != *ino => mismatch(format!(
                "namespace {name}: not in the spec, so the caller's ({ino}), but it is {got}"
            )),
            _ => {}
        }
    }

    let path = |p: &str| -> Result<&PathReport, String> {
        r.paths.get(p).ok_or_else(|| format!("{p}: not probed"))
    };
    let exists = |pr: &PathReport| -> Result<bool, String> {
        match &pr.lstat {
            Ok(_) => Ok(true),
            Err(f) if f.errno == Some(ENOENT) => Ok(false),
            Err(f) => Err(format!("lstat failed: {f}")),
        }
    };
    let caps_eff = r.status.as_ref().map(|s| s.cap_eff).unwrap_or(0);
    let euid = r.status.as_ref().map(|s| s.uid[1]).unwrap_or(u32::MAX);

    for p in &e.masked {
        let pr = match path(p) {
            Ok(pr) => pr,
            Err(m) => {
                mismatch(format!("masked path {m}"));
                continue;
            }
        };
        match exists(pr) {
            Ok(false) => continue,
            Err(m) => {
                mismatch(format!("masked path {p}: {m}"));
                continue;
            }
            Ok(true) => {}
        }
        match &pr.read {
            Ok(0) => {}
            Ok(n) => mismatch(format!(
                "masked path {p}: readable ({n} {} read)",
                if pr.stat.as_ref().is_ok_and(|s| s.kind == "dir") {
                    "entries"
                } else {
                    "bytes"
                }
            )),
            Err(f) if matches!(f.errno, Some(EACCES | EPERM)) => {}
            Err(f) => mismatch(format!("masked path {p}: reading failed oddly: {f}")),
        }
    }

    for p in &e.readonly {
        let pr = match path(p) {
            Ok(pr) => pr,
            Err(m) => {
                mismatch(format!("read-only path {m}"));
                continue;
            }
        };
        match exists(pr) {
            Ok(false) => continue,
            Err(m) => {
                mismatch(format!("read-only path {p}: {m}"));
                continue;
            }
            Ok(true) => {}
        }
        // The mount the path is on must be read-only.
        if let Ok(mounts) = &r.mounts {
            match containing_mount(mounts, p) {
                Some(m) if m.has_option("ro") => {}
                Some(m) => mismatch(format!(
                    "read-only path {p}: on the {} mount at {}, which is {}",
                    m.fstype,
                    m.mount_point,
                    m.options.join(",")
                )),
                None => mismatch(format!("read-only path {p}: on no mount")),
            }
        }
        // And writing must fail: with EROFS, or earlier with EACCES for a
        // file the process may not write anyway, or with ENOENT for mkdir
        // in a procfs directory (procfs fails the lookup of a new name
        // before the read-only check).
        let is_dir = pr.stat.as_ref().is_ok_and(|s| s.kind == "dir");
        let in_userns = !matches!(
            e.namespaces.get("user"),
            None | Some(NsExpect::Inherited { .. })
        );
        let may_write = match &pr.stat {
            Ok(s) if s.kind == "dir" => true,
            Ok(s) => {
                caps_eff & (1 << CAP_DAC_OVERRIDE) != 0 || (s.uid == euid && s.mode & 0o200 != 0)
            }
            Err(_) => true,
        };
        match &pr.write {
            Err(f) if f.errno == Some(EROFS) => {}
            Err(f) if !may_write && matches!(f.errno, Some(EACCES | EPERM)) => {}
            // In a user namespace the kernel may refuse a file of the
            // initial namespace's procfs entries (sysrq-trigger on 6.1)
            // before it gets to the read-only check.
            Err(f) if in_userns && p.starts_with("/proc/") && f.errno == Some(EACCES) => {}
            Err(f) if is_dir && p.starts_with("/proc/") && f.errno == Some(ENOENT) => {}
            Ok(()) => mismatch(format!("read-only path {p}: writable")),
            Err(f) => mismatch(format!(
                "read-only path {p}: writing failed with {} instead of EROFS ({f})",
                errno_name(f.errno)
            )),
        }
    }

    match path("/") {
        Ok(pr) => match (&pr.write, e.root_readonly) {
            (Err(f), true) if f.errno == Some(EROFS) => {}
            (Err(f), true) => mismatch(format!(
                "root.readonly: creating a directory in / failed with {} instead of EROFS",
                errno_name(f.errno)
            )),
            (Ok(()), true) => mismatch("root.readonly: / is writable".into()),
            (Err(f), false) if f.errno == Some(EROFS) => {
                mismatch("root is read-only but root.readonly is not set".into())
            }
            _ => {}
        },
        Err(m) => mismatch(format!("root: {m}")),
    }

    for d in &e.devices {
        let pr = match path(&d.path) {
            Ok(pr) => pr,
            Err(m) => {
                mismatch(format!("device {m}"));
                continue;
            }
        };
        match &pr.lstat {
            Ok(s) => {
                let got = (s.kind.as_str(), s.major, s.minor);
                if got != (d.kind, d.major, d.minor) {
                    mismatch(format!(
                        "device {}: got {} {}:{}, want {} {}:{}",
                        d.path, s.kind, s.major, s.minor, d.kind, d.major, d.minor
                    ));
                }
                if let Some((mode, uid, gid)) = d.mode_owner {
                    if (s.mode, s.uid, s.gid) != (mode, uid, gid) {
                        mismatch(format!(
                            "device {}: mode {:04o} owner {}:{}, want mode {:04o} owner {}:{}",
                            d.path, s.mode, s.uid, s.gid, mode, uid, gid
                        ));
                    }
                }
            }
            Err(f) => mismatch(format!("device {}: {f}", d.path)),
        }
    }
    for (link, target) in &e.symlinks {
        match path(link) {
            Ok(pr) if pr.link.as_deref() == Some(target.as_str()) => {}
            Ok(pr) => mismatch(format!(
                "{link}: want a symlink to {target}, got {:?}",
                pr.link
            )),
            Err(m) => mismatch(m),
        }
    }

    match &r.mounts {
        Ok(mounts) => check_mounts(e, mounts, &mut mismatch),
        Err(err) => mismatch(format!("mountinfo: error {err}")),
    }
    out
}

/// The mount `path` is on: the topmost mount whose mount point is the
/// longest prefix of `path` (paths taken as they are: no symlink in them).
pub fn containing_mount<'a>(mounts: &'a [MountEntry], path: &str) -> Option<&'a MountEntry> {
    let p = Path::new(path);
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| p.starts_with(&m.mount_point))
        .max_by_key(|(i, m)| (Path::new(&m.mount_point).components().count(), *i))
        .map(|(_, m)| m)
}

fn propagation_of(m: &MountEntry) -> &'static str {
    if m.optional.iter().any(|o| o.starts_with("shared:")) {
        "shared"
    } else if m.optional.iter().any(|o| o == "unbindable") {
        "unbindable"
    } else if m.optional.iter().any(|o| o.starts_with("master:")) {
        "slave"
    } else {
        "private"
    }
}

fn check_propagation(
    what: &str,
    want: Option<Propagation>,
    m: &MountEntry,
    mismatch: &mut impl FnMut(String),
) {
    let got = propagation_of(m);
    let ok = match want {
        None => true,
        Some(Propagation::Shared) => got == "shared",
        Some(Propagation::Private) => got == "private",
        Some(Propagation::Unbindable) => got == "unbindable",
    };
    if !ok {
        mismatch(format!(
            "{what}: propagation {got} ({:?}), want {want:?}",
            m.optional
        ));
    }
}

fn check_mounts(e: &Expected, mounts: &[MountEntry], mismatch: &mut impl FnMut(String)) {
    let top = |dest: &str| mounts.iter().rev().find(|m| m.mount_point == dest);
    match top("/") {
        Some(root) => {
            if root.has_option("ro") != e.root_readonly {
                mismatch(format!(
                    "/: mounted {:?}, but root.readonly is {}",
                    root.options, e.root_readonly
                ));
            }
            check_propagation("/", e.root_propagation, root, mismatch);
        }
        None => mismatch("/: not in mountinfo".into()),
    }
    for want in &e.mounts {
        let what = format!("mounts[{}] {}", want.index, want.destination);
        let Some(m) = top(&want.destination) else {
            mismatch(format!("{what}: not in mountinfo"));
            continue;
        };
        if let Some(t) = &want.fstype {
            if &m.fstype != t {
                mismatch(format!("{what}: type {}, want {t}", m.fstype));
            }
        }
        for (opt, present) in &want.options {
            if m.has_option(opt) != *present {
                mismatch(format!(
                    "{what}: option {opt} should be {} (options {})",
                    if *present { "set" } else { "unset" },
                    m.options.join(",")
                ));
            }
        }
        for opt in &want.super_options {
            if !m.has_super_option(opt) {
                mismatch(format!(
                    "{what}: superblock option {opt} missing (got {})",
                    m.super_options.join(",")
                ));
            }
        }
        check_propagation(&what, want.propagation, m, mismatch);
        for (sub, fstype) in &want.submounts {
            match top(sub) {
                Some(s) if &s.fstype == fstype => {}
                Some(s) => mismatch(format!("{what}: {sub} is {}, want {fstype}", s.fstype)),
                None => mismatch(format!("{what}: {sub} ({fstype}) not mounted")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atime_rules_follow_the_kernel() {
        let f = |o: &[&str]| {
            let v: Vec<String> = o.iter().map(|s| s.to_string()).collect();
            flags(&v)
                .shown()
                .into_iter()
                .filter(|(_, p)| *p)
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        };
        assert_eq!(f(&[]), ["rw", "relatime"]);
        assert_eq!(f(&["noatime"]), ["rw", "noatime"]);
        assert_eq!(f(&["noatime", "strictatime"]), ["rw"]);
        assert_eq!(
            f(&["ro", "rw", "nosuid", "suid", "nodev"]),
            ["rw", "nodev", "relatime"]
        );
    }

    #[test]
    fn tmpfs_options_are_normalized() {
        assert_eq!(tmpfs_size("1m").unwrap(), "size=1024k");
        assert_eq!(tmpfs_size("65536k").unwrap(), "size=65536k");
        assert_eq!(tmpfs_size("5000").unwrap(), "size=8k");
        assert_eq!(octal("0755").unwrap(), "755");
        assert_eq!(octal("70").unwrap(), "070");
        let v: Vec<String> = ["mode=1777", "size=4k", "mode=0700"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            super_options("tmpfs", &flags(&v), false),
            ["size=4k", "mode=700"]
        );
    }

    #[test]
    fn capabilities_after_exec() {
        let mut host = Host::current().unwrap();
        host.status.cap_bnd = 0xff;
        host.status.cap_inh = 0;
        let mut spec = Spec::default();
        // oci-spec's default: the same three capabilities in all five sets.
        let e = expected_on(&spec, &host);
        let three = (1 << 5) | (1 << 10) | (1 << 29);
        assert_eq!(e.caps.bnd, three & 0xff);
        assert_eq!(e.caps.prm, (three & 0xff) | three);
        let p = spec.process_mut().as_mut().unwrap();
        let mut u = p.user().clone();
        u.set_uid(1000);
        p.set_user(u);
        let e = expected_on(&spec, &host);
        assert_eq!((e.caps.prm, e.caps.eff, e.caps.amb), (three, three, three));
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean(Path::new("/a/./b/../c/")), "/a/c");
        assert_eq!(clean(Path::new("/../x")), "/x");
        assert_eq!(clean(Path::new("/")), "/");
    }
}
