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

/// Parses `/proc/<pid>/status`.
pub fn parse_status(text: &str) -> Probed<Status> {
    let field = |name: &str| -> Probed<&str> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .ok_or_else(|| Failure::msg(format!("no {name}: line in /proc/self/status")))
    };
    let nums = |name: &str| -> Probed<Vec<u32>> {
        field(name)?
            .split_whitespace()
            .map(|n| {
                n.parse()
                    .map_err(|e| Failure::msg(format!("{name}: {n:?}: {e}")))
            })
            .collect()
    };
    let four = |name: &str| -> Probed<[u32; 4]> {
        let v = nums(name)?;
        v.as_slice()
            .try_into()
            .map_err(|_| Failure::msg(format!("{name}: wanted 4 ids, got {v:?}")))
    };
    let radix = |name: &str, radix: u32| -> Probed<u64> {
        let v = field(name)?;
        u64::from_str_radix(v, radix).map_err(|e| Failure::msg(format!("{name}: {v:?}: {e}")))
    };
    Ok(Status {
        uid: four("Uid")?,
        gid: four("Gid")?,
        groups: nums("Groups")?,
        cap_inh: radix("CapInh", 16)?,
        cap_prm: radix("CapPrm", 16)?,
        cap_eff: radix("CapEff", 16)?,
        cap_bnd: radix("CapBnd", 16)?,
        cap_amb: radix("CapAmb", 16)?,
        no_new_privs: radix("NoNewPrivs", 10)? as u32,
        seccomp: radix("Seccomp", 10)? as u32,
        umask: radix("Umask", 8)? as u32,
    })
}

/// `/proc/self/limits` row titles and the OCI names of the limits.
pub const LIMITS: [(&str, &str); 16] = [
    ("Max cpu time", "RLIMIT_CPU"),
    ("Max file size", "RLIMIT_FSIZE"),
    ("Max data size", "RLIMIT_DATA"),
    ("Max stack size", "RLIMIT_STACK"),
    ("Max core file size", "RLIMIT_CORE"),
    ("Max resident set", "RLIMIT_RSS"),
    ("Max processes", "RLIMIT_NPROC"),
    ("Max open files", "RLIMIT_NOFILE"),
    ("Max locked memory", "RLIMIT_MEMLOCK"),
    ("Max address space", "RLIMIT_AS"),
    ("Max file locks", "RLIMIT_LOCKS"),
    ("Max pending signals", "RLIMIT_SIGPENDING"),
    ("Max msgqueue size", "RLIMIT_MSGQUEUE"),
    ("Max nice priority", "RLIMIT_NICE"),
    ("Max realtime priority", "RLIMIT_RTPRIO"),
    ("Max realtime timeout", "RLIMIT_RTTIME"),
];

/// Parses `/proc/<pid>/limits`: OCI name (`RLIMIT_NOFILE`) to limits.
pub fn parse_limits(text: &str) -> Probed<BTreeMap<String, Rlimit>> {
    let value = |s: &str| -> Probed<u64> {
        if s == "unlimited" {
            Ok(u64::MAX)
        } else {
            s.parse()
                .map_err(|e| Failure::msg(format!("limit {s:?}: {e}")))
        }
    };
    let mut out = BTreeMap::new();
    for line in text.lines().skip(1) {
        let Some((title, name)) = LIMITS.iter().find(|(t, _)| line.starts_with(t)) else {
            return Err(Failure::msg(format!("unknown limit line {line:?}")));
        };
        let mut rest = line[title.len()..].split_whitespace();
        let (Some(soft), Some(hard)) = (rest.next(), rest.next()) else {
            return Err(Failure::msg(format!("short limit line {line:?}")));
        };
        out.insert(
            name.to_string(),
            Rlimit {
                soft: value(soft)?,
                hard: value(hard)?,
            },
        );
    }
    Ok(out)
}

/// Decodes mountinfo's octal escapes (`\040` for a space).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // `\ooo` up to `\377`: a larger "escape" (`\400`) is not one.
        let octal = (b[i] == b'\\' && i + 3 < b.len())
            .then(|| &b[i + 1..i + 4])
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u16, |v, c| v * 8 + u16::from(c - b'0')))
            .and_then(|v| u8::try_from(v).ok());
        if let Some(byte) = octal {
            out.push(byte);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/<pid>/mountinfo`.
pub fn parse_mountinfo(text: &str) -> Probed<Vec<MountEntry>> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .filter(|o| !o.is_empty())
            .map(unescape)
            .collect()
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let bad = || Failure::msg(format!("bad mountinfo line {line:?}"));
            let f: Vec<&str> = line.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-").ok_or_else(bad)?;
            if sep < 6 || f.len() < sep + 3 {
                return Err(bad());
            }
            Ok(MountEntry {
                id: f[0].parse().map_err(|_| bad())?,
                parent: f[1].parse().map_err(|_| bad())?,
                dev: f[2].to_string(),
                root: unescape(f[3]),
                mount_point: unescape(f[4]),
                options: split(f[5]),
                optional: f[6..sep].iter().map(|s| s.to_string()).collect(),
                fstype: unescape(f[sep + 1]),
                source: unescape(f[sep + 2]),
                super_options: f.get(sep + 3).map(|s| split(s)).unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let s = parse_status(
            "Name:\tx\nUmask:\t0027\nUid:\t1000\t1000\t1000\t1000\nGid:\t5\t5\t5\t5\n\
             Groups:\t2000 65534 \nCapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\n\
             CapEff:\t00000000a80425fb\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n\
             NoNewPrivs:\t1\nSeccomp:\t2\n",
        )
        .unwrap();
        assert_eq!(s.uid, [1000; 4]);
        assert_eq!(s.gid, [5; 4]);
        assert_eq!(s.groups, [2000, 65534]);
        assert_eq!(s.umask, 0o027);
        assert_eq!(s.cap_prm, 0xa80425fb);
        assert_eq!(s.cap_bnd, 0x1ffffffffff);
        assert_eq!((s.no_new_privs, s.seccomp), (1, 2));
        assert!(parse_status("Uid:\t0\n").is_err());
    }

    #[test]
    fn parses_limits() {
        let l = parse_limits(
            "Limit                     Soft Limit           Hard Limit           Units     \n\
             Max cpu time              unlimited            unlimited            seconds   \n\
             Max open files            1024                 4096                 files     \n\
             Max nice priority         0                    0                    \n",
        )
        .unwrap();
        assert_eq!(
            l["RLIMIT_CPU"],
            Rlimit {
                soft: u64::MAX,
                hard: u64::MAX
            }
        );
        assert_eq!(
            l["RLIMIT_NOFILE"],
            Rlimit {
                soft: 1024,
                hard: 4096
            }
        );
        assert_eq!(l["RLIMIT_NICE"], Rlimit { soft: 0, hard: 0 });
        assert!(parse_limits("header\nMax widgets 1 2\n").is_err());
    }

    #[test]
    fn parses_mountinfo() {
        let m = parse_mountinfo(
            "36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n\
             40 36 0:5 / /run rw - tmpfs tmpfs rw,mode=755\n",
        )
        .unwrap();
        assert_eq!(m[0].mount_point, "/mnt/a b");
        assert_eq!(m[0].root, "/mnt1");
        assert_eq!(m[0].options, ["rw", "noatime"]);
        assert_eq!(m[0].optional, ["master:1", "shared:2"]);
        assert_eq!(
            (m[0].fstype.as_str(), m[0].source.as_str()),
            ("ext3", "/dev/root")
        );
        assert!(m[0].has_super_option("errors=continue"));
        assert!(m[1].optional.is_empty());
        assert_eq!((m[1].id, m[1].parent), (40, 36));
        assert!(parse_mountinfo("garbage\n").is_err());
    }

    #[test]
    fn a_report_round_trips_through_json() {
        let r = Report {
            pid: 1,
            hostname: Ok("h".into()),
            domainname: Err(Failure::msg("no")),
            status: Err(Failure::io("read", &std::io::Error::from_raw_os_error(2))),
            rlimits: Ok(BTreeMap::new()),
            cwd: Ok("/".into()),
            environ: Ok(vec!["A=1".into()]),
            env: BTreeMap::from([("A".into(), "1".into())]),
            args: Ok(vec!["/probe".into()]),
            mounts: Ok(Vec::new()),
            namespaces: BTreeMap::new(),
            oom_score_adj: Ok(0),
            sysctls: BTreeMap::new(),
            paths: BTreeMap::new(),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(Report::parse(&format!("  {json}\n")).unwrap(), r);
        assert!(Report::parse("{}").is_err());
    }
}
