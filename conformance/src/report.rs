//! What the probe reports: the kernel's view of one container process, as
//! JSON.
//!
//! The probe binary (`berth-probe`, `src/bin/probe.rs`) builds a [`Report`]
//! and prints it as one JSON object on stdout; the tests parse it back with
//! [`Report::parse`] and hand it to the oracle. Every field the probe reads
//! from the kernel is a [`Probed`] value: a failed read becomes an `Err`
//! with the errno in the report, never a panic of the probe.
//!
//! This module depends on `serde` and `std` only: the probe includes it
//! with `#[path]` so that it stays a small binary with few dependencies.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Environment variable naming the sysctls the probe reads: comma-separated
/// keys such as `net.ipv4.ip_forward,kernel.shmmni`.
pub const SYSCTLS_ENV: &str = "BERTH_PROBE_SYSCTLS";

/// Environment variable naming the paths the probe inspects, comma
/// separated.
pub const PATHS_ENV: &str = "BERTH_PROBE_PATHS";

/// Name of the directory the probe tries to create (and removes at once) in
/// a directory to learn whether it is writable.
pub const WRITE_TEST_NAME: &str = ".berth-probe-write-test";

/// A value the probe read, or why it could not.
pub type Probed<T> = Result<T, Failure>;

/// Why the probe could not read or do something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The errno, when the kernel refused (`EROFS` = 30, ...).
    pub errno: Option<i32>,
    /// What failed, human-readable.
    pub message: String,
}

impl Failure {
    /// A failure without an errno (a parse error, say).
    pub fn msg(message: impl Into<String>) -> Failure {
        Failure {
            errno: None,
            message: message.into(),
        }
    }

    /// A failure from an I/O error, keeping its errno; `what` says what was
    /// attempted.
    pub fn io(what: &str, e: &std::io::Error) -> Failure {
        Failure {
            errno: e.raw_os_error(),
            message: format!("{what}: {e}"),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errno {
            Some(n) => write!(f, "{} (errno {n})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Everything the probe saw, as one JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The probe's pid, in its own pid namespace.
    pub pid: u32,
    /// `/proc/sys/kernel/hostname` (the UTS namespace's `uname -n`).
    pub hostname: Probed<String>,
    /// `/proc/sys/kernel/domainname`.
    pub domainname: Probed<String>,
    /// Ids, capabilities, no_new_privs, seccomp mode and umask, from
    /// `/proc/self/status`.
    pub status: Probed<Status>,
    /// Every resource limit of `/proc/self/limits`, by OCI name
    /// (`RLIMIT_NOFILE`); `u64::MAX` is "unlimited".
    pub rlimits: Probed<BTreeMap<String, Rlimit>>,
    /// The working directory (`getcwd`).
    pub cwd: Probed<String>,
    /// The environment as the kernel passed it (`/proc/self/environ`), in
    /// order, duplicates kept.
    pub environ: Probed<Vec<String>>,
    /// The same environment as a map (the first definition of a name
    /// wins, as with `getenv`).
    pub env: BTreeMap<String, String>,
    /// The arguments (`/proc/self/cmdline`).
    pub args: Probed<Vec<String>>,
    /// `/proc/self/mountinfo`, in order.
    pub mounts: Probed<Vec<MountEntry>>,
    /// Inode number of each `/proc/self/ns/*` link (`net`, `pid`,
    /// `pid_for_children`, ...).
    pub namespaces: BTreeMap<String, Probed<u64>>,
    /// `/proc/self/oom_score_adj`.
    pub oom_score_adj: Probed<i32>,
    /// The sysctls named in [`SYSCTLS_ENV`], value trimmed.
    pub sysctls: BTreeMap<String, Probed<String>>,
    /// What the probe found at each path named in [`PATHS_ENV`].
    pub paths: BTreeMap<String, PathReport>,
}

impl Report {
    /// Parses the probe's stdout (one JSON object, surrounding whitespace
    /// allowed).
    pub fn parse(stdout: &str) -> Result<Report, String> {
        serde_json::from_str(stdout.trim())
            .map_err(|e| format!("probe output is not a report ({e}): {stdout:?}"))
    }
}

/// The fields of `/proc/self/status` the oracle checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `Uid:` real, effective, saved and filesystem uid.
    pub uid: [u32; 4],
    /// `Gid:` real, effective, saved and filesystem gid.
    pub gid: [u32; 4],
    /// `Groups:` the supplementary groups, as the kernel lists them.
    pub groups: Vec<u32>,
    /// `CapInh:` the inheritable set.
    pub cap_inh: u64,
    /// `CapPrm:` the permitted set.
    pub cap_prm: u64,
    /// `CapEff:` the effective set.
    pub cap_eff: u64,
    /// `CapBnd:` the bounding set.
    pub cap_bnd: u64,
    /// `CapAmb:` the ambient set.
    pub cap_amb: u64,
    /// `NoNewPrivs:` 0 or 1.
    pub no_new_privs: u32,
    /// `Seccomp:` 0 (off), 1 (strict) or 2 (filter).
    pub seccomp: u32,
    /// `Umask:` (octal in the file).
    pub umask: u32,
}

/// One resource limit; `u64::MAX` stands for `RLIM_INFINITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    /// The soft limit.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// One line of `/proc/self/mountinfo`, octal escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountEntry {
    /// Mount id.
    pub id: u32,
    /// Parent mount id.
    pub parent: u32,
    /// `major:minor` of the filesystem.
    pub dev: String,
    /// Root of the mount within its filesystem.
    pub root: String,
    /// Mount point, relative to the process's root.
    pub mount_point: String,
    /// Per-mount options (`ro`, `nosuid`, `relatime`, ...).
    pub options: Vec<String>,
    /// Optional fields (`shared:N`, `master:N`, `unbindable`, ...).
    pub optional: Vec<String>,
    /// Filesystem type.
    pub fstype: String,
    /// Mount source.
    pub source: String,
    /// Per-superblock options (`mode=755`, `size=65536k`, ...).
    pub super_options: Vec<String>,
}

impl MountEntry {
    /// True when the per-mount options include `opt`.
    pub fn has_option(&self, opt: &str) -> bool {
        self.options.iter().any(|o| o == opt)
    }

    /// True when the superblock options include `opt`.
    pub fn has_super_option(&self, opt: &str) -> bool {
        self.super_options.iter().any(|o| o == opt)
    }
}

/// What `stat` says about a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// `file`, `dir`, `symlink`, `char`, `block`, `fifo`, `socket`.
    pub kind: String,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device major number (character and block devices; 0 otherwise).
    pub major: u64,
    /// Device minor number.
    pub minor: u64,
    /// Size in bytes.
    pub size: u64,
}

/// What the probe found at one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathReport {
    /// `lstat`: fails with `ENOENT` (errno 2) when nothing is there.
    pub lstat: Probed<Stat>,
    /// `stat` (symlinks followed).
    pub stat: Probed<Stat>,
    /// The symlink's target, when the path is a symlink.
    pub link: Option<String>,
    /// Reading: bytes read from a file (at most 4096), or entries of a
    /// directory.
    pub read: Probed<u64>,
    /// Writing: for a directory, creating (and removing) a subdirectory
    /// named [`WRITE_TEST_NAME`]; for anything else, opening it for writing
    /// (never writing). `Ok` when that worked.
    pub write: Probed<()>,
}
