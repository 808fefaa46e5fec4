//! Container cgroups on cgroup v1, hybrid and v2 hosts.
//!
//! A container's cgroup has one relative path (`berth/web`) that exists in
//! every hierarchy the host mounts. [cgroups-rs](cgroups_rs) finds the v1
//! controllers (including `name=systemd`) or the v2 root, creates the
//! directories, copies cpuset `cpus`/`mems` into new v1 cgroups and enables
//! v2 controllers. This module adds what it leaves out: the cgroup2 mount of
//! hybrid hosts (runc joins it too) and any v1 hierarchy it does not know
//! (`misc`), retries around concurrent deletes of shared parents, a recursive
//! asynchronous delete, and `clone3(CLONE_INTO_CGROUP)` support.

mod bpf;
mod device_program;
mod devices;
mod events;
mod mountinfo;
mod resources;
mod stats;
mod validate;

pub(crate) use events::OomWatch;

pub use stats::{
    BlkioEntry, BlkioStats, CpuStats, CpuUsage, HugetlbStats, MemoryStats, MemoryUsage, PidsStats,
    Stats, StatsDetail, StatsReader, Throttling,
};
pub use validate::HostLimits;
pub(crate) use stats::Swap;
pub(crate) use validate::{needs_delegation, parse_list as parse_node_list};

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cgroups_rs::fs::hierarchies::{V1, V2};
use cgroups_rs::fs::{Controller, Hierarchy, Subsystem};
use cgroups_rs::CgroupPid;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use tokio::time::Instant;

use crate::error::{Error, Result};
use mountinfo::CgroupMount;

/// Where a pure v2 host mounts cgroup2, and where v1 hosts keep their hierarchies.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// How often [`Cgroup::create`] starts over when a concurrent delete removed
/// a parent directory under it.
const CREATE_ATTEMPTS: usize = 10;
/// How long [`Cgroup::delete`] waits for exiting processes to leave.
const DELETE_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest single wait between two `rmdir` attempts.
const DELETE_MAX_DELAY: Duration = Duration::from_millis(128);

/// How the host mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Layout {
    /// Only v1 hierarchies, one per controller (or group of controllers).
    V1,
    /// v1 controllers plus a cgroup2 mount without controllers (usually at
    /// `/sys/fs/cgroup/unified`).
    Hybrid,
    /// The unified hierarchy: cgroup2 mounted at `/sys/fs/cgroup`.
    V2,
}

/// What this module learns about the host once.
#[derive(Debug)]
struct Host {
    /// The detected layout.
    layout: Layout,
    /// The host's cgroup and cgroup2 mounts, each hierarchy once.
    mounts: Vec<CgroupMount>,
    /// cgroups-rs's v1 hierarchy (v1 and hybrid hosts), shared by every
    /// handle: making one parses `/proc/self/mountinfo` again, which cost a
    /// few hundred microseconds per container created, and a clone copies
    /// every mount of the host, hundreds of allocations.
    v1: Option<SharedV1>,
}

/// cgroups-rs's v1 hierarchy and its subsystems, worked out once and
/// shared by every cgroup handle. A clone of `V1` copies every mount of the
/// host, and `V1::subsystems` formats a controller name for each mount for
/// each of its 14 controllers: the two together made over a thousand
/// allocations per container.
#[derive(Debug, Clone)]
struct SharedV1(Arc<V1Parts>);

#[derive(Debug)]
struct V1Parts {
    hierarchy: V1,
    subsystems: Vec<Subsystem>,
}

impl SharedV1 {
    fn new() -> SharedV1 {
        let hierarchy = V1::new();
        let subsystems = hierarchy.subsystems();
        SharedV1(Arc::new(V1Parts {
            hierarchy,
            subsystems,
        }))
    }
}

impl Hierarchy for SharedV1 {
    fn subsystems(&self) -> Vec<Subsystem> {
        self.0.subsystems.clone()
    }

    fn root(&self) -> PathBuf {
        self.0.hierarchy.root()
    }

    fn root_control_group(&self) -> cgroups_rs::fs::Cgroup {
        self.0.hierarchy.root_control_group()
    }

    fn parent_control_group(&self, path: &str) -> cgroups_rs::fs::Cgroup {
        self.0.hierarchy.parent_control_group(path)
    }

    fn v2(&self) -> bool {
        false
    }
}

/// The host's layout and cgroup mounts, read once from `/proc/self/mountinfo`
/// and a `statfs` of `/sys/fs/cgroup`.
fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_else(|e| {
            tracing::warn!("cannot read /proc/self/mountinfo: {e}; assuming no cgroup mounts");
            String::new()
        });
        let mounts = mountinfo::parse(&text);
        let root_is_cgroup2 = nix::sys::statfs::statfs(CGROUP_ROOT)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
        let layout = mountinfo::layout(&mounts, root_is_cgroup2);
        Host {
            layout,
            mounts,
            v1: (layout != Layout::V2).then(SharedV1::new),
        }
    })
}

/// Detects the layout once (cached): [`Layout::V2`] if `/sys/fs/cgroup` is a
/// cgroup2 filesystem; [`Layout::Hybrid`] if v1 hierarchies are mounted and
/// so is a cgroup2 filesystem (found in `/proc/self/mountinfo`, usually at
/// `/sys/fs/cgroup/unified`); else [`Layout::V1`].
pub fn layout() -> Layout {
    host().layout
}

/// One hierarchy as the container should see it when its spec mounts
/// `cgroup` at e.g. `/sys/fs/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct HierarchyMount {
    /// The directory under the mount point (`cpu`, `memory`, `systemd`,
    /// `unified`); `""` on v2, meaning the mount point itself.
    pub name: String,
    /// `cgroup` or `cgroup2`.
    pub fstype: String,
    /// The mount data: `cpu`, `cpu,cpuacct`, `name=systemd`; `""` for cgroup2.
    pub data: String,
    /// Where the host mounts it (`/sys/fs/cgroup/cpu`, `/sys/fs/cgroup`).
    pub host_dir: PathBuf,
}

/// The hierarchies of this host as a container mounts them, sorted by name:
/// on v2 the single cgroup2 root; on v1 and hybrid hosts one entry per v1
/// hierarchy (named after its mount point, with its super options minus
/// `rw`/`ro` and the host's `release_agent`), plus `unified` on hybrid hosts.
pub(crate) fn hierarchy_mounts() -> Vec<HierarchyMount> {
    let host = host();
    mountinfo::hierarchy_mounts(&host.mounts, host.layout)
}

/// A container's cgroup: the same relative path in every hierarchy.
#[derive(Debug)]
pub struct Cgroup {
    /// The path relative to every hierarchy root, without a leading `/`.
    path: String,
    /// The host's layout.
    layout: Layout,
    /// cgroups-rs's handle, which manages the v1 controllers or the v2 root.
    inner: cgroups_rs::fs::Cgroup,
    /// The cgroup's directory in every hierarchy, each once: on v2 only
    /// `/sys/fs/cgroup/<path>`; on v1 and hybrid one per v1 hierarchy, then on
    /// hybrid the one under the cgroup2 mount.
    dirs: Vec<PathBuf>,
    /// The directory whose `cgroup.procs` lists the processes: the pids
    /// hierarchy on v1 and hybrid hosts that mount it.
    procs_dir: PathBuf,
    /// cgroups-rs's manager for reading stats, made on first use: making one
    /// parses `/proc/self/cgroup` and mountinfo, too slow for every sample.
    stats_manager: OnceLock<cgroups_rs::manager::FsManager>,
}

/// How a new process gets into its cgroup without another process moving
/// it. Moving another process (`cgroup.procs`) takes the kernel's global
/// threadgroup lock for writing, which waits for an RCU grace period
/// (milliseconds; measured here up to 19 ms on a busy host) unless another
/// move just happened. Instead:
///
/// - v2 (and a hybrid host's cgroup2 mount): the process is born in the
///   cgroup (`clone3(CLONE_INTO_CGROUP)` with `into`);
/// - v1: the process writes `0` to each hierarchy's `tasks` file (`tasks`,
///   opened by the parent): a task moving only itself takes no global lock.
#[derive(Debug)]
pub(crate) struct Placement {
    /// The v2 directory, `O_PATH`, for `CLONE_INTO_CGROUP`.
    pub into: Option<OwnedFd>,
    /// Each v1 hierarchy's `tasks` file, open for writing.
    pub tasks: Vec<OwnedFd>,
}

impl Cgroup {
    /// Creates the cgroup `path` (relative to each hierarchy root, e.g.
    /// `berth/web`; a leading `/` is accepted and stripped; empty paths and
    /// `.`, `..` or empty components are refused) in every hierarchy, with the
    /// cgroup2 mount of hybrid hosts. Succeeds if it exists already. Starts
    /// over when a concurrent [`Cgroup::delete`] of a sibling removed a shared
    /// parent mid-way. On v1 the new cgroup (and any new parent) gets the
    /// cpuset `cpus` and `mems` of its closest populated ancestor, so that
    /// processes can join it.
    pub fn create(path: &str) -> Result<Cgroup> {
        let cgroup = Cgroup::open(path)?;
        let mut attempt = 1;
        loop {
            match cgroup.try_create() {
                // A parent vanishing mid-way shows as ENOENT, as ENODEV (it was
                // being removed), or as EEXIST (made again by another create and
                // removed again before `create_dir_all` could see it).
                Err(e)
                    if matches!(e.errno(), Some(libc::ENOENT | libc::ENODEV | libc::EEXIST))
                        && attempt < CREATE_ATTEMPTS =>
                {
                    tracing::debug!(cgroup = %cgroup.path, attempt, "parent vanished, retrying: {e}");
                    attempt += 1;
                }
                result => return result.map(|()| cgroup),
            }
        }
    }

    /// One attempt of [`Cgroup::create`]; idempotent.
    fn try_create(&self) -> Result<()> {
        if self.layout == Layout::V2 {
            // cgroups-rs creates the directories top-down and enables every
            // controller in each parent. A concurrent delete may remove a
            // parent it just made, which `create_dir_all` silently recreates
            // without controllers; the second pass, now that the new leaf pins
            // its parents, enables them again.
            for _ in 0..2 {
                self.inner
                    .create()
                    .map_err(|e| cg_error("create cgroup", &self.dirs[0], e))?;
            }
        } else {
            for sub in self.inner.subsystems() {
                let c = sub.to_controller();
                c.create()
                    .map_err(|e| cg_error("create cgroup", c.path(), e))?;
            }
        }
        for dir in self.unmanaged_dirs() {
            fs::create_dir_all(dir).map_err(|e| Error::io("create cgroup", dir, e))?;
        }
        self.check_cpuset()
    }

    /// cgroups-rs only logs a failed cpuset copy; an empty `cpus` or `mems`
    /// would make every later `add_process` fail with `ENOSPC`.
    fn check_cpuset(&self) -> Result<()> {
        for sub in self.inner.subsystems() {
            let Subsystem::CpuSet(c) = sub else { continue };
            if c.v2() {
                continue;
            }
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let p = c.path().join(file);
                let value = fs::read_to_string(&p).map_err(|e| Error::io("read", &p, e))?;
                if value.trim().is_empty() {
                    return Err(self.error(format!("{} is empty", p.display())));
                }
            }
        }
        Ok(())
    }

    /// A handle to the cgroup `path` (validated as in [`Cgroup::create`]),
    /// e.g. to delete it from another process. Creates nothing and does not
    /// check that the cgroup exists.
    pub fn open(path: &str) -> Result<Cgroup> {
        let path = normalize(path)?;
        let host = host();
        let layout = host.layout;
        let hier: Box<dyn Hierarchy> = match layout {
            Layout::V2 => Box::new(V2::new()),
            Layout::V1 | Layout::Hybrid => match &host.v1 {
                Some(v1) => Box::new(v1.clone()),
                None => Box::new(V1::default()),
            },
        };
        let inner = cgroups_rs::fs::Cgroup::load(hier, &path);
        let (dirs, procs_dir) = match layout {
            Layout::V2 => {
                let dir = Path::new(CGROUP_ROOT).join(&path);
                (vec![dir.clone()], dir)
            }
            Layout::V1 | Layout::Hybrid => {
                let v1 = host.mounts.iter().filter(|m| m.is_v1());
                let cg2 = host.mounts.iter().filter(|m| !m.is_v1()).take(1);
                let dirs: Vec<PathBuf> = v1.chain(cg2).map(|m| m.mount_point.join(&path)).collect();
                let procs_dir = host
                    .mounts
                    .iter()
                    .find(|m| m.is_v1() && m.has_option("pids"))
                    .map(|m| m.mount_point.join(&path))
                    .or_else(|| dirs.first().cloned());
                let Some(procs_dir) = procs_dir else {
                    return Err(Error::Cgroup {
                        path,
                        reason: "no cgroup hierarchy is mounted".into(),
                        source: None,
                    });
                };
                (dirs, procs_dir)
            }
        };
        Ok(Cgroup {
            path,
            layout,
            inner,
            dirs,
            procs_dir,
            stats_manager: OnceLock::new(),
        })
    }

    /// How many ancestors of the cgroup `path` a container's delete may
    /// remove once they are empty, from the closest up: those missing now
    /// (the create about to happen makes them), and those at or below
    /// `own_parent` (the runtime's `cgroup_parent`, berth's to tidy); the
    /// count stops at the first ancestor that is neither. Checked before
    /// [`Cgroup::create`], like [`Cgroup::exists`].
    pub(crate) fn removable_parents(path: &str, own_parent: &str) -> Result<usize> {
        let path = normalize(path)?;
        let own = own_parent.trim_matches('/');
        let mut count = 0;
        for (i, _) in path.rmatch_indices('/') {
            let ancestor = &path[..i];
            let below_own = !own.is_empty()
                && (ancestor == own
                    || ancestor
                        .strip_prefix(own)
                        .is_some_and(|rest| rest.starts_with('/')));
            if below_own || !Cgroup::open(ancestor)?.exists() {
                count += 1;
            } else {
                break;
            }
        }
        Ok(count)
    }

    /// Whether the cgroup exists (in any hierarchy). Checked before
    /// [`Cgroup::create`] to record whether berth made it: only a cgroup
    /// berth made is killed in and removed on delete.
    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|d| d.is_dir())
    }

    /// The path relative to the hierarchy roots, without a leading `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// How a new process enters the cgroup without being moved into it by
    /// another (see [`Placement`]).
    pub(crate) fn placement(&self) -> Result<Placement> {
        let into = self
            .cgroup2_dir()
            .map(|dir| {
                let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
                nix::fcntl::open(dir, flags, Mode::empty())
                    .map_err(|e| Error::io("open cgroup directory", dir, e.into()))
            })
            .transpose()?;
        let tasks = match self.layout {
            Layout::V2 => Vec::new(),
            Layout::V1 | Layout::Hybrid => self
                .dirs
                .iter()
                .filter(|d| Some(*d) != self.cgroup2_dir())
                .map(|dir| {
                    let file = dir.join("tasks");
                    fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(libc::O_CLOEXEC)
                        .open(&file)
                        .map(OwnedFd::from)
                        .map_err(|e| Error::io("open cgroup tasks", file, e))
                })
                .collect::<Result<_>>()?,
        };
        Ok(Placement { into, tasks })
    }

    /// The cgroup's directory in the cgroup2 hierarchy (v2, or a hybrid
    /// host's cgroup2 mount, the last of `dirs`), if the host has one.
    fn cgroup2_dir(&self) -> Option<&PathBuf> {
        match self.layout {
            Layout::V2 => self.dirs.first(),
            Layout::Hybrid => self.dirs.last(),
            Layout::V1 => None,
        }
    }

    /// Moves process `pid` into the cgroup's v2 directory only (the
    /// unified hierarchy, or a hybrid host's cgroup2 mount): for a process
    /// that could not be cloned into it and joins its v1 cgroups itself.
    pub(crate) fn add_process_v2(&self, pid: i32) -> Result<()> {
        let Some(dir) = self.cgroup2_dir() else {
            return Ok(());
        };
        let procs = dir.join("cgroup.procs");
        fs::write(&procs, pid.to_string())
            .map_err(|e| Error::io("move process into cgroup", procs, e))
    }

    /// Moves process `pid` (its whole thread group) into the cgroup in every
    /// hierarchy, including the cgroup2 mount of hybrid hosts.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // used by tests and the conformance oracle
    pub fn add_process(&self, pid: i32) -> Result<()> {
        let tgid = match u64::try_from(pid) {
            Ok(tgid) if tgid > 0 => CgroupPid::from(tgid),
            // Writing 0 to cgroup.procs would move the caller itself.
            _ => return Err(self.error(format!("invalid pid {pid}"))),
        };
        let mut done: Vec<&Path> = Vec::new();
        for sub in self.inner.subsystems() {
            let c = sub.to_controller();
            if !done.contains(&c.path()) {
                c.add_task_by_tgid(&tgid)
                    .map_err(|e| cg_error("move process into cgroup", c.path(), e))?;
                done.push(c.path());
            }
        }
        for dir in self.unmanaged_dirs() {
            let procs = dir.join("cgroup.procs");
            fs::write(&procs, pid.to_string())
                .map_err(|e| Error::io("move process into cgroup", procs, e))?;
        }
        Ok(())
    }

    /// The pids of all processes in the cgroup and its child cgroups, sorted,
    /// from the pids hierarchy on v1 (else any mounted one) or `cgroup.procs`
    /// on v2. A cgroup that does not exist (or vanishes while being read) has
    /// no processes.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut pids = Vec::new();
        collect_pids(&self.procs_dir, &mut pids)?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Removes the cgroup in every hierarchy, child cgroups first. While a
    /// directory is busy (processes still exiting) it retries with a backoff
    /// from 1 ms, for up to 2 s in all, then fails with [`Error::Io`] carrying
    /// `EBUSY`. Then removes the parents that became empty, up to but not
    /// including the hierarchy root, leaving those still in use or that
    /// the caller may not remove. A cgroup that
    /// does not exist is deleted already.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // containers delete with their parents' count
    pub async fn delete(&self) -> Result<()> {
        self.delete_with_parents(usize::MAX).await
    }

    /// [`Cgroup::delete`], removing at most `parents` emptied ancestors
    /// (the closest first).
    pub(crate) async fn delete_with_parents(&self, parents: usize) -> Result<()> {
        let deadline = Instant::now() + DELETE_TIMEOUT;
        let depth = self.path.split('/').count();
        for dir in &self.dirs {
            remove_tree(dir, deadline).await?;
            // Stop at the first parent still in use (or being removed by
            // another delete), or not ours to remove (rootless, the top of
            // the subtree delegated to the user).
            for parent in dir.ancestors().skip(1).take((depth - 1).min(parents)) {
                match fs::remove_dir(parent) {
                    Ok(()) => {}
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(
                                libc::ENOTEMPTY
                                    | libc::EBUSY
                                    | libc::ENOENT
                                    | libc::ENODEV
                                    | libc::EACCES
                                    | libc::EPERM
                            )
                        ) =>
                    {
                        break
                    }
                    Err(e) => return Err(Error::io("remove empty parent cgroup", parent, e)),
                }
            }
        }
        Ok(())
    }

    /// The directories cgroups-rs does not manage: the cgroup2 one of hybrid
    /// hosts and those of v1 hierarchies it does not know.
    fn unmanaged_dirs(&self) -> impl Iterator<Item = &PathBuf> {
        let managed: Vec<&Path> = self
            .inner
            .subsystems()
            .iter()
            .map(|s| s.to_controller().path())
            .collect();
        self.dirs
            .iter()
            .filter(move |d| !managed.contains(&d.as_path()))
    }

    /// The first of the cgroup's directories that has `file`. On v1 and
    /// hybrid hosts the hierarchy of the controller the file is named after
    /// (`devices.allow`: `devices`) is looked at first, one `stat` where
    /// trying every hierarchy in turn took up to ten.
    fn dir_with(&self, file: &str) -> Option<&PathBuf> {
        let has = |d: &&PathBuf| d.join(file).exists();
        if self.layout != Layout::V2 {
            if let Some((controller, _)) = file.split_once('.') {
                // `dirs` starts with one directory per v1 hierarchy, in
                // the order of the host's mounts (see `Cgroup::open`).
                let v1 = host().mounts.iter().filter(|m| m.is_v1());
                let named = v1.zip(&self.dirs).find(|(m, _)| m.has_option(controller));
                if let Some((_, dir)) = named.filter(|(_, d)| has(d)) {
                    return Some(dir);
                }
            }
        }
        self.dirs.iter().find(has)
    }

    /// An [`Error::Cgroup`] about this cgroup.
    fn error(&self, reason: String) -> Error {
        Error::Cgroup {
            path: self.path.clone(),
            reason,
            source: None,
        }
    }

    /// An error of this cgroup with its cause kept (and its errno with it).
    fn error_from(
        &self,
        reason: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Cgroup {
            path: self.path.clone(),
            reason: reason.to_string(),
            source: Some(Box::new(source)),
        }
    }
}

/// Checks a cgroup path and strips its leading slashes.
fn normalize(path: &str) -> Result<String> {
    let refuse = |reason: &str| Error::Cgroup {
        path: path.to_string(),
        reason: reason.to_string(),
        source: None,
    };
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return Err(refuse("the path is empty"));
    }
    for component in rel.split('/') {
        match component {
            "" => return Err(refuse("empty path component ('//' or a trailing '/')")),
            "." | ".." => return Err(refuse("'.' and '..' components are not allowed")),
            c if c.contains('\0') => return Err(refuse("the path contains a NUL byte")),
            _ => {}
        }
    }
    Ok(rel.to_string())
}

/// Turns a cgroups-rs error about `path` into an [`Error::Io`], keeping the errno.
fn cg_error(op: &'static str, path: &Path, e: cgroups_rs::fs::error::Error) -> Error {
    let errno = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<io::Error>())
        .and_then(io::Error::raw_os_error);
    let source = match errno {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::other(e.to_string()),
    };
    Error::io(op, path, source)
}

/// Appends the pids in `dir` and its child cgroups to `pids`.
fn collect_pids(dir: &Path, pids: &mut Vec<i32>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    match fs::read_to_string(&procs) {
        Ok(text) => pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", procs, e)),
    }
    for child in child_dirs(dir).map_err(|e| Error::io("list cgroup", dir, e))? {
        collect_pids(&child, pids)?;
    }
    Ok(())
}

/// The child cgroups (subdirectories) of `dir`; none if `dir` is gone.
fn child_dirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

/// Removes `dir` and its child cgroups, waiting with a backoff while one is
/// busy, until `deadline`.
async fn remove_tree(dir: &Path, deadline: Instant) -> Result<()> {
    let mut delay = Duration::from_millis(1);
    loop {
        let (path, e) = match try_remove_tree(dir) {
            Ok(()) => return Ok(()),
            Err(failed) => failed,
        };
        let now = Instant::now();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(Error::io("remove cgroup", path, e));
        }
        if now >= deadline {
            return Err(Error::io("remove cgroup (still busy after 2 s)", path, e));
        }
        tokio::time::sleep(delay.min(deadline - now)).await;
        delay = (delay * 2).min(DELETE_MAX_DELAY);
    }
}

/// One pass of [`remove_tree`]: the directory that could not be removed, and why.
fn try_remove_tree(dir: &Path) -> std::result::Result<(), (PathBuf, io::Error)> {
    // A container's cgroup rarely has children: one rmdir, and a listing
    // only when it is busy (child cgroups, or processes still exiting).
    match fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV)) => return Ok(()),
        Err(e) if !matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => {
            return Err((dir.to_path_buf(), e))
        }
        Err(_) => {}
    }
    for child in child_dirs(dir).map_err(|e| (dir.to_path_buf(), e))? {
        try_remove_tree(&child)?;
    }
    match fs::remove_dir(dir) {
        // ENODEV: another delete is removing it right now.
        Err(e) if !matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV)) => {
            Err((dir.to_path_buf(), e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
