//! `Spec` → [`Plan`]: validation and resolution of everything the executor
//! needs.

use std::collections::{BTreeSet, HashSet};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{
    LinuxDeviceType, LinuxIdMapping, LinuxNamespaceType, PosixRlimitType, Process, Spec,
};

use super::attrs;
use super::mounts::{self, REMOUNT_ONLY};
use super::{CPath, Create, DeviceStep, Exec, InRoot, Join, MountStep, Namespace, Plan, Step};
use crate::cgroups::HierarchyMount;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::security::capabilities;

/// Choices that are not part of the OCI spec (runc's command-line flags).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Use `MS_MOVE` + `chroot` instead of `pivot_root` (for a rootfs on an
    /// initramfs).
    pub no_pivot: bool,
    /// Pass descriptors `3..3+preserve_fds` of the caller to the container.
    pub preserve_fds: u32,
    /// The container's cgroup, relative to every hierarchy root. Without a
    /// cgroup namespace, a `cgroup` mount shows the container its own
    /// cgroup directories (as runc binds them) rather than the host's
    /// whole hierarchies.
    pub cgroup_path: Option<String>,
    /// The container's `linux.seccomp`, for [`compile_exec`] (which is
    /// given only the process); [`compile`] reads the spec's own.
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    /// The container's `linux.personality`, for [`compile_exec`]: a process
    /// joining the container runs with the same.
    pub personality: Option<oci_spec::runtime::LinuxPersonality>,
    /// The runtime runs without root: the parent denies `setgroups` in the
    /// container's user namespace (to be allowed to write its gid map), so
    /// the process keeps the groups it inherits.
    pub rootless: bool,
    /// Without root: `setgroups` is allowed in the container's user
    /// namespace all the same (its gid map was written by `newgidmap` from
    /// the user's `/etc/subgid` ranges), so `process.user.additionalGids`
    /// are set as with root. [`compile`] works it out from the spec; for
    /// [`compile_exec`] the caller reads the container's
    /// `/proc/<pid>/setgroups`.
    pub rootless_setgroups: bool,
    /// A filesystem to mount on the rootfs inside the container's mount
    /// namespace ([`CreateOptions::rootfs_mount`](crate::CreateOptions::rootfs_mount)).
    pub rootfs_mount: Option<crate::RootfsMount>,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Compiles `spec` (from the bundle at `bundle`) for this `host`.
///
/// Every check that can be made without creating a process is made here;
/// the error names the offending field as it appears in `config.json`.
pub fn compile(spec: &Spec, bundle: &Path, host: &Host, opts: &Options) -> Result<Plan> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::invalid("process", "missing: berth needs a process to run"))?;
    // Borrowed: a clone copies the seccomp profile, hundreds of strings.
    let no_linux;
    let linux = match spec.linux() {
        Some(l) => l,
        None => {
            no_linux = oci_spec::runtime::Linux::default();
            &no_linux
        }
    };

    let rootfs = rootfs_path(spec, bundle)?;

    // Namespaces.
    let mut new_namespaces = BTreeSet::new();
    let mut joins = Vec::new();
    let mut seen = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        let kind = namespace(ns.typ());
        if !seen.insert(kind) {
            return Err(Error::invalid(
                format!("linux.namespaces[{i}]"),
                format!("{} namespace listed twice", kind.proc_name()),
            ));
        }
        match ns.path() {
            Some(path) => {
                if !path.is_absolute() {
                    return Err(Error::invalid(
                        format!("linux.namespaces[{i}].path"),
                        format!("{} is not absolute", path.display()),
                    ));
                }
                if !path.exists() {
                    return Err(Error::invalid(
                        format!("linux.namespaces[{i}].path"),
                        format!("{} does not exist", path.display()),
                    ));
                }
                joins.push(Join {
                    ns: kind,
                    path: path.clone(),
                })
            }
            None => {
                new_namespaces.insert(kind);
            }
        }
    }
    // The user namespace is joined first: it decides the rights for the rest.
    joins.sort_by_key(|j| j.ns != Namespace::User);
    let has = |ns| seen.contains(&ns);
    let is_new = |ns| new_namespaces.contains(&ns);
    // Without a mount namespace of its own the container's mounts are made
    // in the host's, under a private bind of the rootfs that the state
    // records and delete removes (see `container::host_mounts`). Joining
    // another one by path would leave them where berth cannot clean up.
    let own_mounts = is_new(Namespace::Mount);
    if has(Namespace::Mount) && !own_mounts {
        return Err(Error::invalid(
            "linux.namespaces",
            "joining a mount namespace by path is not supported: list a new one, or none",
        ));
    }

    let (uid_map, gid_map) = id_maps(linux, is_new(Namespace::User), opts.rootless)?;
    let opts = &Options {
        // Allowed in a new user namespace whose gid map newgidmap wrote;
        // without one, where this process's own namespace allows it to
        // its root (rootless podman's).
        rootless_setgroups: opts.rootless
            && if is_new(Namespace::User) {
                crate::security::rootless::setgroups_allowed(gid_map.as_deref())
            } else {
                crate::security::rootless::own_setgroups_allowed()
            },
        ..opts.clone()
    };

    let mut steps = Vec::new();
    steps.extend(rootless_oom_score_adj(process, opts)?);
    steps.extend([Step::ResetSignals, Step::JoinCgroup, Step::AwaitParent]);
    for (index, join) in joins.iter().enumerate() {
        // A pid namespace is entered by the cloning thread (setns only
        // affects children), not by the child itself.
        if join.ns != Namespace::Pid {
            steps.push(Step::JoinNamespace { index, ns: join.ns });
        }
    }
    if is_new(Namespace::User) {
        steps.push(Step::BecomeRoot);
    }
    if is_new(Namespace::Cgroup) {
        steps.push(Step::UnshareCgroup);
    }
    let offsets = linux
        .time_offsets()
        .as_ref()
        .map(attrs::time_offsets)
        .transpose()?
        .filter(|o| !o.is_empty());
    if is_new(Namespace::Time) {
        steps.push(Step::UnshareTime {
            offsets: offsets.map(|o| cpath(o, "linux.timeOffsets")).transpose()?,
        });
    } else if offsets.is_some() {
        return Err(Error::invalid(
            "linux.timeOffsets",
            "offsets need a new time namespace in linux.namespaces",
        ));
    }
    steps.push(Step::SetSid);
    if is_new(Namespace::Network) {
        steps.push(Step::LoopbackUp);
    }
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(Error::invalid(
                "process.oomScoreAdj",
                format!("{adj} is outside -1000..=1000"),
            ));
        }
    }
    let sysctls = sorted(linux.sysctl().iter().flatten())
        .into_iter()
        .map(|(key, value)| sysctl(key, value, &has))
        .collect::<Result<Vec<_>>>()?;

    // The rootfs and its mounts.
    let (initial_propagation, final_propagation) = propagation(linux.rootfs_propagation())?;
    let rootfs_c = cpath(rootfs.as_os_str().as_encoded_bytes(), "root.path")?;
    if own_mounts {
        steps.push(Step::Propagation {
            target: cpath("/", "linux.rootfsPropagation")?,
            flags: initial_propagation,
        });
    } else if final_propagation.is_some() {
        return Err(Error::invalid(
            "linux.rootfsPropagation",
            "shared or unbindable needs a mount namespace of the container's own",
        ));
    }
    if let Some(m) = &opts.rootfs_mount {
        if !own_mounts {
            return Err(Error::Unsupported(format!(
                "a {} mount on the rootfs needs a mount namespace of the container's own",
                m.fstype
            )));
        }
        let field = "the rootfs mount";
        steps.push(Step::MountRootfs {
            rootfs: rootfs_c.clone(),
            fstype: cpath(m.fstype.as_bytes(), field)?,
            source: cpath(m.source.as_bytes(), field)?,
            data: cpath(m.data.as_bytes(), field)?,
        });
    }
    steps.push(Step::BindRootfs {
        rootfs: rootfs_c.clone(),
    });
    if !own_mounts {
        // Nothing mounted under the bind may propagate to the host's copy.
        steps.push(Step::Propagation {
            target: rootfs_c,
            flags: libc::MS_PRIVATE | libc::MS_REC,
        });
    }
    let mut dev_is_bound = false;
    let mount_label = attrs::mount_label(linux.mount_label().as_deref(), host)?;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let cgroup_view = match (is_new(Namespace::Cgroup), &opts.cgroup_path) {
            (false, Some(path)) => CgroupView::Bind(path, opts.rootless),
            (_, path) => CgroupView::Mount(path.as_deref()),
        };
        let at = MountAt {
            rootfs: &rootfs,
            bundle,
            host,
            cgroup_view,
            label: mount_label.as_deref(),
        };
        dev_is_bound |= mount_steps(i, m, &at, &mut steps)?;
    }
    // (Or the runtime itself runs in one, as root of a user's namespace
    // under rootless podman: mknod is refused there too, and devices are
    // bound from the host, as runc does.)
    let in_userns = is_new(Namespace::User)
        || has(Namespace::User)
        || (opts.rootless && crate::security::rootless::in_user_namespace());
    device_steps(linux, dev_is_bound, in_userns, &mut steps)?;

    if let Some(h) = spec.hooks() {
        let any = |l: &Option<Vec<_>>| l.as_ref().is_some_and(|l| !l.is_empty());
        #[allow(deprecated)]
        if any(h.prestart()) || any(h.create_runtime()) || any(h.create_container()) {
            steps.push(Step::AwaitHooks);
        }
    }
    steps.push(if !own_mounts {
        Step::Chroot
    } else if opts.no_pivot {
        Step::MoveRoot
    } else {
        Step::PivotRoot
    });
    let terminal = process.terminal().unwrap_or(false);
    steps.push(if terminal {
        Step::Console {
            size: process
                .console_size()
                .map(|b| (b.height() as u16, b.width() as u16)),
            bind_console: true,
        }
    } else {
        Step::Stdio
    });
    // Written through a procfs of the container's own (see the executor),
    // once every namespace is in place, before /proc/sys turns read-only.
    steps.extend(sysctls);
    for (i, p) in linux.masked_paths().iter().flatten().enumerate() {
        steps.push(Step::MaskPath {
            path: container_path(p, &format!("linux.maskedPaths[{i}]"))?,
        });
    }
    for (i, p) in linux.readonly_paths().iter().flatten().enumerate() {
        steps.push(Step::ReadonlyPath {
            path: container_path(p, &format!("linux.readonlyPaths[{i}]"))?,
        });
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        steps.push(Step::ReadonlyRoot);
    }
    // Last of the mounts: binds from an unbindable tree would fail.
    if let Some(flags) = final_propagation {
        steps.push(Step::Propagation {
            target: cpath("/", "linux.rootfsPropagation")?,
            flags,
        });
    }
    if let Some(name) = spec.hostname() {
        if !has(Namespace::Uts) {
            return Err(Error::invalid(
                "hostname",
                "setting a hostname needs a UTS namespace",
            ));
        }
        if name.len() > 64 {
            return Err(Error::invalid("hostname", "longer than 64 bytes"));
        }
        steps.push(Step::Hostname {
            name: cpath(name.as_str(), "hostname")?,
        });
    }
    if let Some(name) = spec.domainname() {
        if !has(Namespace::Uts) {
            return Err(Error::invalid(
                "domainname",
                "setting a domainname needs a UTS namespace",
            ));
        }
        if name.len() > 64 {
            return Err(Error::invalid("domainname", "longer than 64 bytes"));
        }
        steps.push(Step::Domainname {
            name: cpath(name.as_str(), "domainname")?,
        });
    }
    if let Some(p) = linux.personality() {
        steps.push(attrs::personality(p)?);
    }
    if let Some(p) = linux.memory_policy() {
        steps.push(attrs::memory_policy(
            p,
            &crate::cgroups::HostLimits::get().mems,
        )?);
    }
    let late_seccomp = process_steps(process, host, opts, linux.seccomp().as_ref(), &mut steps)?;
    let exec = exec(process)?;
    steps.push(Step::FindExecutable);
    steps.extend(late_seccomp);
    steps.push(Step::AwaitStart);
    steps.push(Step::Exec);

    Ok(Plan {
        // The kernel refuses to join a user namespace from a task that
        // shares its mm; a pid namespace is joined at birth, and the child
        // must then be non-dumpable on its own (see `exec::spawn`).
        share_memory: !joins
            .iter()
            .any(|j| j.ns == Namespace::User || j.ns == Namespace::Pid)
            // The kernel applies oom_score_adj to every process sharing the
            // mm: the caller's own score would change with the container's.
            && process.oom_score_adj().is_none()
            // A child whose ids become others than the caller's makes the
            // kernel mark its mm non-dumpable (commit_creds): shared, that
            // would be the embedder's, whose /proc files would turn root's
            // and whose core dumps would stop (and an unprivileged embedder
            // could no longer write a later child's maps, nor newuidmap
            // check it).
            && !(changes_ids(process, uid_map.as_deref(), gid_map.as_deref())
                || opts.rootless && maps_others(uid_map.as_deref(), gid_map.as_deref())),
        rootless: opts.rootless,
        new_namespaces: new_namespaces.into_iter().collect(),
        joins,
        uid_map,
        gid_map,
        rootfs,
        terminal,
        // Without root the child writes its own (`Step::OomScoreAdj`).
        oom_score_adj: process.oom_score_adj().filter(|_| !opts.rootless),
        steps,
        exec,
    })
}

/// Whether a rendered uid or gid map maps more than the caller's own id.
/// Whether the process's user and group, as the host sees them (through
/// the id maps of a new user namespace), are other than this process's
/// effective ones: then its `setresuid`/`setresgid` change the ids the
/// kernel checks for the dumpable flag.
fn changes_ids(process: &Process, uid_map: Option<&str>, gid_map: Option<&str>) -> bool {
    let user = process.user();
    let host_uid = host_id(user.uid(), uid_map);
    let host_gid = host_id(user.gid(), gid_map);
    host_uid != Some(nix::unistd::geteuid().as_raw())
        || host_gid != Some(nix::unistd::getegid().as_raw())
}

/// The host id of `id` through `map` (lines of `inside outside count`, as
/// `/proc/PID/uid_map` takes them); `id` itself without a map; `None` if
/// the map does not map it.
fn host_id(id: u32, map: Option<&str>) -> Option<u32> {
    let Some(map) = map else { return Some(id) };
    map.lines().find_map(|line| {
        let mut f = line.split_ascii_whitespace().map(str::parse::<u32>);
        let (Some(Ok(inside)), Some(Ok(outside)), Some(Ok(count))) = (f.next(), f.next(), f.next())
        else {
            return None;
        };
        let offset = id.checked_sub(inside).filter(|o| *o < count)?;
        outside.checked_add(offset)
    })
}

fn maps_others(uid_map: Option<&str>, gid_map: Option<&str>) -> bool {
    use crate::security::rootless::maps_only_own_id;
    uid_map.is_some_and(|m| !maps_only_own_id(m, nix::unistd::geteuid().as_raw()))
        || gid_map.is_some_and(|m| !maps_only_own_id(m, nix::unistd::getegid().as_raw()))
}

/// Without root, `process.oomScoreAdj` is written by the child itself, as
/// its first step (`Step::OomScoreAdj`): only a raise over the caller's
/// own value is allowed without `CAP_SYS_RESOURCE`, and a lower value is
/// refused here with [`Error::OomScoreAdjLowered`].
fn rootless_oom_score_adj(process: &Process, opts: &Options) -> Result<Option<Step>> {
    let Some(value) = process.oom_score_adj().filter(|_| opts.rootless) else {
        return Ok(None);
    };
    if !(-1000..=1000).contains(&value) {
        return Err(Error::invalid(
            "process.oomScoreAdj",
            format!("{value} is outside -1000..=1000"),
        ));
    }
    let current = crate::security::rootless::own_oom_score_adj()?;
    if value < current {
        return Err(Error::OomScoreAdjLowered {
            requested: value,
            current,
        });
    }
    Ok(Some(Step::OomScoreAdj { value }))
}

/// The process's own settings, common to the container's first process and
/// to processes that join it later (`exec`): rlimits, the cwd (entered and
/// checked as root) and the descriptors to pass on, then identity and
/// privileges in the kernel's order — bounding set while still root, the
/// ids (keeping capabilities across setuid), the cwd again as the new user
/// if root could not enter it, the remaining capability sets, umask,
/// no_new_privs.
///
/// The seccomp filter goes where runc puts it. Without no_new_privs the
/// kernel lets only a holder of `CAP_SYS_ADMIN` load a filter, so it is
/// loaded before any capability is dropped, but after the descriptors are
/// closed and the cwd checked: what follows it is only what runc does after
/// its own load (prctl, setgroups, setresuid, capset, chdir). With
/// no_new_privs it is loaded as late as possible, so that the profile need
/// not allow berth's own set-up calls: it is returned, for the caller to
/// place just before the wait for `start` and `execve`.
fn process_steps(
    process: &Process,
    host: &Host,
    opts: &Options,
    seccomp: Option<&oci_spec::runtime::LinuxSeccomp>,
    steps: &mut Vec<Step>,
) -> Result<Option<Step>> {
    let rootless = opts.rootless;
    rlimit_steps(process.rlimits().as_deref().unwrap_or_default(), steps)?;
    // While still privileged (a real-time policy needs CAP_SYS_NICE), and
    // before a filter that might not allow the calls.
    steps.extend(attrs::scheduler(process)?);
    steps.extend(attrs::io_priority(process)?);
    let labels = attrs::labels(process, host)?;
    let user = process.user();
    let cwd = process.cwd();
    if !cwd.is_absolute() {
        return Err(Error::invalid(
            "process.cwd",
            format!("{} is not absolute", cwd.display()),
        ));
    }
    let cwd = cpath(cwd.as_os_str().as_encoded_bytes(), "process.cwd")?;
    // Before the filter: nothing berth does once it is loaded may need a
    // call the profile might deny (close_range, getcwd, ...), since an
    // allow-list only has to cover what the process needs.
    steps.push(Step::ChdirAsRoot { cwd: cwd.clone() });
    steps.push(Step::CloseFds {
        preserve: opts.preserve_fds,
    });
    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    let filter = seccomp
        .map(crate::security::seccomp::compile)
        .transpose()?
        .map(Step::Seccomp);
    let late_seccomp = if no_new_privs {
        filter
    } else {
        steps.extend(filter);
        None
    };
    let caps = process
        .capabilities()
        .as_ref()
        .map(|c| -> Result<_> {
            let m = |set: &Option<oci_spec::runtime::Capabilities>, field: &str| {
                capabilities::mask(set.iter().flatten(), host.last_cap)
                    .map_err(|e| Error::invalid(format!("process.capabilities.{field}"), e))
            };
            Ok((
                m(c.bounding(), "bounding")?,
                m(c.effective(), "effective")?,
                m(c.permitted(), "permitted")?,
                m(c.inheritable(), "inheritable")?,
                m(c.ambient(), "ambient")?,
            ))
        })
        .transpose()?;
    if let Some((bounding, effective, permitted, inheritable, _)) = caps {
        // What capset(2) would refuse with a bare EPERM, named here.
        let outside = |set: u64, within: u64, field: &str, what: &str| -> Result<()> {
            match (0..64).find(|b| set & !within & (1 << b) != 0) {
                Some(b) => Err(Error::invalid(
                    format!("process.capabilities.{field}"),
                    format!(
                        "{} is not in the {what}",
                        capabilities::name(b).unwrap_or("a capability")
                    ),
                )),
                None => Ok(()),
            }
        };
        outside(inheritable, bounding, "inheritable", "bounding set")?;
        outside(effective, permitted, "effective", "permitted set")?;
    }
    // runc and crun raise each ambient capability they can and skip, with
    // a warning, those outside the permitted and inheritable sets: their
    // own default specs list ambient capabilities without inheritable ones.
    let caps = caps.map(|(bounding, effective, permitted, inheritable, ambient)| {
        let raisable = ambient & permitted & inheritable;
        let skipped: Vec<&str> = (0..64)
            .filter(|b| ambient & !raisable & (1 << b) != 0)
            .filter_map(capabilities::name)
            .collect();
        if !skipped.is_empty() {
            tracing::warn!(
                capabilities = ?skipped,
                "process.capabilities.ambient: not raised (not in both the permitted and inheritable sets)"
            );
        }
        (bounding, effective, permitted, inheritable, raisable)
    });
    if let Some((bounding, ..)) = caps {
        steps.push(Step::DropBoundingCaps {
            keep: bounding,
            last_cap: host.last_cap,
        });
        steps.push(Step::KeepCaps);
    }
    let gids = user.additional_gids().clone().unwrap_or_default();
    match (rootless && !opts.rootless_setgroups, gids.is_empty()) {
        (true, true) => {}
        (true, false) => {
            return Err(Error::invalid(
                "process.user.additionalGids",
                "without root, setgroups is denied in the container's user namespace",
            ))
        }
        (false, _) => steps.push(Step::SetGroups { gids }),
    }
    steps.push(Step::SetGid { gid: user.gid() });
    steps.push(Step::SetUid { uid: user.uid() });
    steps.push(Step::Chdir { cwd });
    if let Some((_, effective, permitted, inheritable, ambient)) = caps {
        steps.push(Step::SetCaps {
            effective,
            permitted,
            inheritable,
        });
        steps.push(Step::AmbientCaps { ambient });
    }
    // Unset: the caller's umask is kept, as the runtime spec says.
    steps.push(Step::Umask { mask: user.umask() });
    // The label for execve, before no_new_privs (which limits transitions).
    steps.extend(labels);
    if no_new_privs {
        steps.push(Step::NoNewPrivileges);
    }
    Ok(late_seccomp)
}

/// Compiles the plan of a process that joins a running container (`exec`):
/// it enters every namespace in `joins` (the container's, as
/// `/proc/<pid>/ns/*` paths), sets up its stdio or terminal and its own
/// identity, and runs at once (no start barrier).
///
/// It never shares memory with the caller: the caller's memory flags (its
/// "dumpable" bit) are then copied, not shared, so the joining process is
/// born non-dumpable and the container cannot reach the host binary through
/// `/proc/<pid>/exe` (CVE-2019-5736).
pub fn compile_exec(
    process: &Process,
    joins: Vec<Join>,
    host: &Host,
    opts: &Options,
) -> Result<Plan> {
    let terminal = process.terminal().unwrap_or(false);
    let mut steps = Vec::new();
    steps.extend(rootless_oom_score_adj(process, opts)?);
    steps.extend([Step::ResetSignals, Step::JoinCgroup, Step::AwaitParent]);
    let mut joins = joins;
    joins.sort_by_key(|j| (j.ns != Namespace::User, j.ns == Namespace::Mount));
    // Without root the parent cannot enter a pid namespace that a user
    // namespace owns: the child joins the user namespace first, then the
    // others (pid included), and forks into the pid namespace, as runc's
    // nsexec does.
    let joins_ns = |ns| joins.iter().any(|j: &Join| j.ns == ns);
    let fork = opts.rootless && joins_ns(Namespace::User) && joins_ns(Namespace::Pid);
    for (index, join) in joins.iter().enumerate() {
        if join.ns != Namespace::Pid || fork {
            steps.push(Step::JoinNamespace { index, ns: join.ns });
        }
    }
    if fork {
        steps.push(Step::ForkIntoPidNamespace);
        // The parent learns the new pid, then lets it go on.
        steps.push(Step::AwaitParent);
    }
    if terminal {
        steps.push(Step::SetSid);
        steps.push(Step::Console {
            size: process
                .console_size()
                .map(|b| (b.height() as u16, b.width() as u16)),
            bind_console: false,
        });
    } else {
        steps.push(Step::Stdio);
    }
    if let Some(p) = &opts.personality {
        steps.push(attrs::personality(p)?);
    }
    let late_seccomp = process_steps(process, host, opts, opts.seccomp.as_ref(), &mut steps)?;
    let exec = exec(process)?;
    steps.push(Step::FindExecutable);
    steps.extend(late_seccomp);
    steps.push(Step::Exec);
    Ok(Plan {
        new_namespaces: Vec::new(),
        joins,
        share_memory: false,
        rootless: opts.rootless,
        uid_map: None,
        gid_map: None,
        rootfs: PathBuf::from("/"),
        terminal,
        oom_score_adj: process.oom_score_adj().filter(|_| !opts.rootless),
        steps,
        exec,
    })
}

fn sorted<'a, K: Ord, V>(it: impl Iterator<Item = (&'a K, &'a V)>) -> Vec<(&'a K, &'a V)> {
    let mut v: Vec<_> = it.collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

fn cpath(s: impl Into<Vec<u8>>, field: &str) -> Result<CPath> {
    CPath::new(s).ok_or_else(|| Error::invalid(field, "contains a NUL byte"))
}

fn namespace(t: LinuxNamespaceType) -> Namespace {
    match t {
        LinuxNamespaceType::Mount => Namespace::Mount,
        LinuxNamespaceType::Cgroup => Namespace::Cgroup,
        LinuxNamespaceType::Uts => Namespace::Uts,
        LinuxNamespaceType::Ipc => Namespace::Ipc,
        LinuxNamespaceType::User => Namespace::User,
        LinuxNamespaceType::Pid => Namespace::Pid,
        LinuxNamespaceType::Network => Namespace::Network,
        LinuxNamespaceType::Time => Namespace::Time,
    }
}

fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::invalid("root", "missing"))?;
    let path = bundle.join(root.path());
    let meta = std::fs::metadata(&path)
        .map_err(|e| Error::invalid("root.path", format!("{}: {e}", path.display())))?;
    if !meta.is_dir() {
        return Err(Error::invalid(
            "root.path",
            format!("{} is not a directory", path.display()),
        ));
    }
    std::fs::canonicalize(&path)
        .map_err(|e| Error::invalid("root.path", format!("{}: {e}", path.display())))
}

/// The id maps of a new user namespace. Without root and without maps
/// (`crun spec --rootless` writes none), the caller's own uid and gid are
/// mapped to root, as crun does.
fn id_maps(
    linux: &oci_spec::runtime::Linux,
    new_userns: bool,
    rootless: bool,
) -> Result<(Option<String>, Option<String>)> {
    fn render(maps: &[LinuxIdMapping], field: &str) -> Result<String> {
        if maps.is_empty() {
            return Err(Error::invalid(
                field,
                "empty: a new user namespace needs a mapping",
            ));
        }
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        let mut out = String::new();
        for (i, m) in maps.iter().enumerate() {
            let f = format!("{field}[{i}]");
            if m.size() == 0 {
                return Err(Error::invalid(f, "size is 0"));
            }
            let (c, h, n) = (m.container_id() as u64, m.host_id() as u64, m.size() as u64);
            if c + n > 1 << 32 || h + n > 1 << 32 {
                return Err(Error::invalid(
                    f,
                    "range goes past the last id (4294967295)",
                ));
            }
            if ranges.iter().any(|&(s, l)| c < s + l && s < c + n) {
                return Err(Error::invalid(
                    f,
                    "container ids overlap an earlier mapping",
                ));
            }
            ranges.push((c, n));
            out.push_str(&format!("{c} {h} {n}\n"));
        }
        Ok(out)
    }
    let uids = linux.uid_mappings().as_deref().unwrap_or_default();
    let gids = linux.gid_mappings().as_deref().unwrap_or_default();
    if !new_userns {
        if !uids.is_empty() || !gids.is_empty() {
            return Err(Error::invalid(
                "linux.uidMappings",
                "id mappings need a new user namespace in linux.namespaces",
            ));
        }
        return Ok((None, None));
    }
    if rootless && uids.is_empty() && gids.is_empty() {
        return Ok((
            Some(format!("0 {} 1\n", nix::unistd::geteuid())),
            Some(format!("0 {} 1\n", nix::unistd::getegid())),
        ));
    }
    if rootless {
        use crate::security::rootless::{check_mappings, Ids};
        check_mappings(uids, "linux.uidMappings", Ids::User)?;
        check_mappings(gids, "linux.gidMappings", Ids::Group)?;
    }
    Ok((
        Some(render(uids, "linux.uidMappings")?),
        Some(render(gids, "linux.gidMappings")?),
    ))
}

fn sysctl(key: &str, value: &str, has: &dyn Fn(Namespace) -> bool) -> Result<Step> {
    let field = format!("linux.sysctl.{key}");
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let needs = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Namespace::Ipc
    } else if key.starts_with("net.") {
        Namespace::Network
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Namespace::Uts
    } else {
        return Err(Error::invalid(
            field,
            "not a namespaced sysctl: it would change the host",
        ));
    };
    if !has(needs) {
        return Err(Error::invalid(
            field,
            format!("needs a {} namespace", needs.proc_name()),
        ));
    }
    if key.contains('/') || key.split('.').any(|c| c.is_empty() || c == "..") {
        return Err(Error::invalid(field, "malformed key"));
    }
    Ok(Step::Sysctl {
        path: cpath(format!("/proc/sys/{}", key.replace('.', "/")), &field)?,
        value: cpath(value, &field)?,
    })
}

/// Returns (propagation of `/` before the mounts, propagation of the
/// rootfs mount after `pivot_root` if the spec asks for one).
///
/// Before the mounts everything is made a slave (the default) or private,
/// so nothing the container mounts reaches the host; `pivot_root` and the
/// bind of the rootfs need a parent that is neither shared nor unbindable.
/// `shared` and `unbindable` therefore apply to the rootfs mount once
/// inside, and only recursively for their `r` forms, so that mounts with a
/// propagation of their own keep it.
fn propagation(p: &Option<String>) -> Result<(u64, Option<u64>)> {
    let rec = libc::MS_REC;
    let slave = libc::MS_SLAVE | rec;
    let private = libc::MS_PRIVATE | rec;
    Ok(match p.as_deref() {
        None | Some("") | Some("slave") | Some("rslave") => (slave, None),
        Some("private") | Some("rprivate") => (private, None),
        Some("shared") => (private, Some(libc::MS_SHARED)),
        Some("rshared") => (private, Some(libc::MS_SHARED | rec)),
        Some("unbindable") => (private, Some(libc::MS_UNBINDABLE)),
        Some("runbindable") => (private, Some(libc::MS_UNBINDABLE | rec)),
        Some(other) => {
            return Err(Error::invalid(
                "linux.rootfsPropagation",
                format!("unknown propagation {other:?}"),
            ))
        }
    })
}

/// Lexically cleans an absolute container path; refuses relative paths and
/// `..` that would climb above `/`.
pub(crate) fn clean_absolute(p: &Path, field: &str) -> Result<PathBuf> {
    if !p.is_absolute() {
        return Err(Error::invalid(
            field,
            format!("{} is not absolute", p.display()),
        ));
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(Error::invalid(
                        field,
                        format!("{} escapes the container's root", p.display()),
                    ));
                }
            }
            Component::Normal(n) => out.push(n),
            Component::Prefix(_) => unreachable!("no prefixes on Linux"),
        }
    }
    Ok(out)
}

pub(crate) fn in_root(p: &Path, field: &str) -> Result<InRoot> {
    let path = clean_absolute(p, field)?;
    let mut prefixes = Vec::new();
    let mut names = Vec::new();
    let mut acc = PathBuf::new();
    for c in path.components().skip(1) {
        acc.push(c);
        prefixes.push(cpath(acc.as_os_str().as_encoded_bytes(), field)?);
        names.push(cpath(c.as_os_str().as_encoded_bytes(), field)?);
    }
    if names.is_empty() {
        return Err(Error::invalid(field, "cannot be the container's root"));
    }
    Ok(InRoot {
        path,
        prefixes,
        names,
    })
}

fn container_path(p: &str, field: &str) -> Result<CPath> {
    let clean = clean_absolute(Path::new(p), field)?;
    cpath(clean.as_os_str().as_encoded_bytes(), field)
}

/// Follows `dest` through the rootfs the way the container will see it and
/// returns the path it leads to (absolute, inside the rootfs, with no
/// symlink left in the part that exists). Refuses a symlink whose target
/// climbs out of the rootfs with `..`.
///
/// The executor resolves again with `openat2(RESOLVE_IN_ROOT)`, which could
/// not escape anyway; this turns such an image into a clear error instead
/// of a mount in a surprising place, and lets the executor create missing
/// directories behind a symlink. Absolute symlinks are followed inside the
/// rootfs, as the container itself follows them (`/var/run -> /run`).
fn resolve_in_rootfs(rootfs: &Path, dest: &Path, field: &str) -> Result<PathBuf> {
    let comps = |p: &Path| -> Vec<PathBuf> {
        p.components()
            .rev()
            .map(|c| PathBuf::from(c.as_os_str()))
            .collect()
    };
    let mut todo = comps(dest);
    let mut at = PathBuf::from("/");
    let mut links = 0;
    let mut exists = true;
    while let Some(c) = todo.pop() {
        match c.to_str() {
            Some("/") | Some(".") | Some("") => continue,
            Some("..") => {
                if !at.pop() {
                    return Err(Error::invalid(
                        field,
                        format!(
                            "{} leads out of the rootfs through a symlink",
                            dest.display()
                        ),
                    ));
                }
                continue;
            }
            _ => {}
        }
        if !exists {
            at.push(&c);
            continue;
        }
        let p = rootfs.join(at.strip_prefix("/").unwrap_or(&at)).join(&c);
        match std::fs::symlink_metadata(&p) {
            // Missing components are created later, as directories.
            Err(_) => {
                exists = false;
                at.push(&c);
            }
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(Error::invalid(
                        field,
                        format!("{}: too many symlinks", dest.display()),
                    ));
                }
                let target = std::fs::read_link(&p)
                    .map_err(|e| Error::invalid(field, format!("{}: {e}", p.display())))?;
                if target.is_absolute() {
                    at = PathBuf::from("/");
                }
                todo.extend(comps(&target));
            }
            Ok(_) => at.push(&c),
        }
    }
    Ok(at)
}

/// Where mounts go, and what every mount of a container shares.
struct MountAt<'a> {
    rootfs: &'a Path,
    bundle: &'a Path,
    host: &'a Host,
    cgroup_view: CgroupView<'a>,
    /// `context="..."` of `linux.mountLabel`, for filesystems that take it.
    label: Option<&'a str>,
}

/// Adds the steps for `mounts[i]`; returns whether it binds over `/dev`.
fn mount_steps(
    i: usize,
    m: &oci_spec::runtime::Mount,
    at: &MountAt,
    steps: &mut Vec<Step>,
) -> Result<bool> {
    let MountAt {
        rootfs,
        bundle,
        host,
        cgroup_view,
        label,
    } = *at;
    let field = |f: &str| format!("mounts[{i}].{f}");
    let dest = clean_absolute(m.destination(), &field("destination"))?;
    let resolved = resolve_in_rootfs(rootfs, &dest, &field("destination"))?;
    let mut target = in_root(&resolved, &field("destination"))?;
    target.path = dest;
    let mut opts = mounts::parse(m.options().as_deref().unwrap_or_default())
        .map_err(|e| Error::invalid(field("options"), e))?;
    let fstype = m.typ().as_deref().unwrap_or("");
    // Recursive attributes, applied once the mount (and its remount and
    // propagation) is in place, to it and every mount beneath it.
    let rec_attrs = (opts.rec_set | opts.rec_clear != 0).then(|| Step::MountSetattr {
        target: target.clone(),
        set: opts.rec_set,
        clear: opts.rec_clear,
    });
    if fstype == "proc" || fstype == "sysfs" {
        refuse_non_directory(rootfs, &target.path, fstype, &field("destination"))?;
    }
    let data = |extra: &[String]| -> Result<Option<CPath>> {
        let all: Vec<&str> = opts.data.iter().chain(extra).map(String::as_str).collect();
        if all.is_empty() {
            Ok(None)
        } else {
            Some(cpath(all.join(","), &field("options"))).transpose()
        }
    };

    if opts.bind || fstype == "bind" {
        let source = m
            .source()
            .as_ref()
            .ok_or_else(|| Error::invalid(field("source"), "a bind mount needs a source"))?;
        let source = bundle.join(source);
        let meta = std::fs::metadata(&source)
            .map_err(|e| Error::invalid(field("source"), format!("{}: {e}", source.display())))?;
        if !opts.data.is_empty() {
            // runc passes them to mount(2), which ignores data for a bind:
            // accepted as runc does, but not silently.
            tracing::warn!(
                options = ?opts.data,
                mount = %field("options"),
                "options a bind mount cannot apply are ignored"
            );
            opts.data.clear();
        }
        let flags = libc::MS_BIND | if opts.recursive { libc::MS_REC } else { 0 };
        let remount = opts.flags & REMOUNT_ONLY;
        let is_dev = target.path == Path::new("/dev");
        steps.push(Step::Mount(MountStep {
            source: Some(cpath(
                source.as_os_str().as_encoded_bytes(),
                &field("source"),
            )?),
            target,
            fstype: None,
            flags,
            data: None,
            remount_flags: (remount != 0).then_some(libc::MS_REMOUNT | libc::MS_BIND | opts.flags),
            propagation: opts.propagation,
            create: if meta.is_dir() {
                Create::Dir
            } else {
                Create::File
            },
            fallback_binds: Vec::new(),
        }));
        steps.extend(rec_attrs);
        return Ok(is_dev);
    }

    if fstype.is_empty() {
        return Err(Error::invalid(
            field("type"),
            "missing (and not a bind mount)",
        ));
    }
    let source = m
        .source()
        .as_ref()
        .map(|s| cpath(s.as_os_str().as_encoded_bytes(), &field("source")))
        .transpose()?
        .or_else(|| CPath::new(fstype));

    if fstype == "cgroup" || fstype == "cgroup2" {
        cgroup_steps(target, &opts, host, cgroup_view, &field("type"), steps)?;
        steps.extend(rec_attrs);
        return Ok(false);
    }
    if !host.filesystems.contains(fstype) {
        return Err(Error::invalid(
            field("type"),
            format!("unknown filesystem type {fstype:?} (not in /proc/filesystems)"),
        ));
    }
    let labelled = ["tmpfs", "devpts", "mqueue"].contains(&fstype);
    let context: Vec<String> = label
        .filter(|_| labelled)
        .map(String::from)
        .into_iter()
        .collect();
    steps.push(Step::Mount(MountStep {
        source,
        target,
        fstype: Some(cpath(fstype, &field("type"))?),
        flags: opts.flags,
        data: data(&context)?,
        remount_flags: None,
        propagation: opts.propagation,
        create: Create::Dir,
        fallback_binds: Vec::new(),
    }));
    steps.extend(rec_attrs);
    Ok(false)
}

/// Refuses a `proc` or `sysfs` mount whose destination exists and is not a
/// directory (a symlink, say, that would move the mount elsewhere in the
/// rootfs), as runc does: "must be mounted on ordinary directory".
fn refuse_non_directory(rootfs: &Path, dest: &Path, fstype: &str, field: &str) -> Result<()> {
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Ok(());
    };
    let parent = resolve_in_rootfs(rootfs, parent, field)?;
    let at = rootfs
        .join(parent.strip_prefix("/").unwrap_or(&parent))
        .join(name);
    match std::fs::symlink_metadata(&at) {
        Ok(m) if !m.is_dir() => Err(Error::invalid(
            field,
            format!(
                "{}: a {fstype} filesystem must be mounted on an ordinary directory, not {}",
                dest.display(),
                if m.file_type().is_symlink() {
                    "a symlink"
                } else {
                    "a file"
                }
            ),
        )),
        _ => Ok(()),
    }
}

/// How a `cgroup` mount shows the container its cgroups.
#[derive(Debug, Clone, Copy)]
enum CgroupView<'a> {
    /// Fresh cgroup mounts: inside a cgroup namespace they are rooted at the
    /// container's own cgroup (this path, if it has one). Where the kernel
    /// refuses a fresh cgroup2 mount, that directory is bound instead.
    Mount(Option<&'a str>),
    /// Binds of the container's own directories (this path in every
    /// hierarchy), for a container sharing the host's cgroup namespace.
    /// Rootless (`true`), a hierarchy where that directory does not exist
    /// (none was delegated) shows the caller's own cgroup instead, as runc
    /// shows a rootless container the cgroups it runs in.
    Bind(&'a str, bool),
}

/// A `cgroup` mount shows the host's hierarchies: on v2 one cgroup2 mount;
/// on v1 and hybrid hosts a tmpfs with one mount per hierarchy in it, as
/// runc lays it out.
fn cgroup_steps(
    target: InRoot,
    opts: &mounts::MountOptions,
    host: &Host,
    view: CgroupView,
    field: &str,
    steps: &mut Vec<Step>,
) -> Result<()> {
    let flags = opts.flags;
    let bind = |h: &HierarchyMount, target: InRoot, path: &str| -> Result<Step> {
        let mut source = h.host_dir.join(path.trim_start_matches('/'));
        if let CgroupView::Bind(_, true) = view {
            if !source.exists() {
                if let Some(own) = own_cgroup(h) {
                    source = h.host_dir.join(own.trim_start_matches('/'));
                }
            }
        }
        let fs_flags = flags | (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
        Ok(Step::Mount(MountStep {
            source: Some(cpath(source.as_os_str().as_encoded_bytes(), field)?),
            target,
            fstype: None,
            flags: libc::MS_BIND | libc::MS_REC,
            data: None,
            remount_flags: Some(libc::MS_REMOUNT | libc::MS_BIND | fs_flags),
            propagation: 0,
            create: Create::Dir,
            fallback_binds: Vec::new(),
        }))
    };
    if let [only] = host.cgroup_mounts.as_slice() {
        if only.name.is_empty() {
            if let CgroupView::Bind(path, _) = view {
                steps.push(bind(only, target, path)?);
                return Ok(());
            }
            // The kernel refuses a fresh cgroup2 mount in a user namespace
            // without a cgroup namespace of its own (EPERM), and onto a
            // mount of the same hierarchy (EBUSY: a rootless spec binds the
            // host's /sys, which has it). runc binds the container's cgroup
            // instead, else (none was made: nothing delegated) the caller's.
            let mut fallback_binds = Vec::new();
            if let CgroupView::Mount(Some(path)) = view {
                let own = only.host_dir.join(path.trim_start_matches('/'));
                fallback_binds.push(cpath(own.as_os_str().as_encoded_bytes(), field)?);
            }
            if let Some(own) = own_cgroup(only) {
                let own = only.host_dir.join(own.trim_start_matches('/'));
                fallback_binds.push(cpath(own.as_os_str().as_encoded_bytes(), field)?);
            }
            steps.push(Step::Mount(MountStep {
                source: CPath::new("cgroup2"),
                target,
                fstype: CPath::new("cgroup2"),
                flags,
                data: None,
                remount_flags: None,
                propagation: opts.propagation,
                create: Create::Dir,
                fallback_binds,
            }));
            return Ok(());
        }
    }
    let tmpfs_flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    steps.push(Step::Mount(MountStep {
        source: CPath::new("tmpfs"),
        target: target.clone(),
        fstype: CPath::new("tmpfs"),
        flags: tmpfs_flags,
        data: CPath::new("mode=755"),
        remount_flags: None,
        propagation: 0,
        create: Create::Dir,
        fallback_binds: Vec::new(),
    }));
    for h in &host.cgroup_mounts {
        let sub = in_root(&target.path.join(&h.name), field)?;
        if let CgroupView::Bind(path, _) = view {
            steps.push(bind(h, sub, path)?);
            continue;
        }
        steps.push(Step::Mount(MountStep {
            source: CPath::new(h.fstype.as_str()),
            target: sub,
            fstype: Some(cpath(h.fstype.as_str(), field)?),
            flags: flags | tmpfs_flags,
            data: (!h.data.is_empty())
                .then(|| cpath(h.data.as_str(), field))
                .transpose()?,
            remount_flags: None,
            propagation: 0,
            create: Create::Dir,
            fallback_binds: Vec::new(),
        }));
    }
    if flags & libc::MS_RDONLY != 0 {
        steps.push(Step::Remount {
            target,
            flags: libc::MS_REMOUNT | tmpfs_flags | libc::MS_RDONLY,
        });
    }
    Ok(())
}

/// This process's cgroup in hierarchy `h`, from `/proc/self/cgroup`.
fn own_cgroup(h: &HierarchyMount) -> Option<String> {
    let list = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let opts: HashSet<&str> = h.data.split(',').collect();
    list.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let matches = if h.fstype == "cgroup2" {
            controllers.is_empty()
        } else {
            !controllers.is_empty() && controllers.split(',').all(|c| opts.contains(c))
        };
        matches.then(|| path.to_string())
    })
}

/// The devices every container gets (OCI runtime spec, "Default Devices").
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

fn device_steps(
    linux: &oci_spec::runtime::Linux,
    dev_is_bound: bool,
    in_userns: bool,
    steps: &mut Vec<Step>,
) -> Result<()> {
    let mut seen = HashSet::new();
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        let field = format!("linux.devices[{i}]");
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(Error::invalid(
                    format!("{field}.type"),
                    "\"a\" is only valid in device cgroup rules",
                ))
            }
        };
        if d.major() < 0 || d.minor() < 0 {
            return Err(Error::invalid(field, "negative major or minor number"));
        }
        let target = in_root(d.path(), &format!("{field}.path"))?;
        seen.insert(target.path.clone());
        steps.push(device(
            target,
            kind | (d.file_mode().unwrap_or(0o666) & 0o7777),
            d.major() as u64,
            d.minor() as u64,
            (d.uid().unwrap_or(0), d.gid().unwrap_or(0)),
            in_userns,
            &field,
        )?);
    }
    if dev_is_bound {
        return Ok(());
    }
    for (path, major, minor) in DEFAULT_DEVICES {
        if seen.contains(Path::new(path)) {
            continue;
        }
        let target = in_root(Path::new(path), "linux.devices")?;
        steps.push(device(
            target,
            libc::S_IFCHR | 0o666,
            major,
            minor,
            (0, 0),
            in_userns,
            "linux.devices",
        )?);
    }
    let links = [
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
        ("pts/ptmx", "/dev/ptmx"),
    ];
    for (target, link) in links {
        steps.push(Step::Symlink {
            target: cpath(target, "linux.devices")?,
            link: in_root(Path::new(link), "linux.devices")?,
        });
    }
    Ok(())
}

fn device(
    target: InRoot,
    mode: u32,
    major: u64,
    minor: u64,
    (uid, gid): (u32, u32),
    in_userns: bool,
    field: &str,
) -> Result<Step> {
    let bind_from = if in_userns {
        Some(cpath(target.path.as_os_str().as_encoded_bytes(), field)?)
    } else {
        None
    };
    Ok(Step::Device(DeviceStep {
        target,
        mode,
        major,
        minor,
        uid,
        gid,
        bind_from,
    }))
}

fn rlimit_steps(rlimits: &[oci_spec::runtime::PosixRlimit], steps: &mut Vec<Step>) -> Result<()> {
    let mut seen = HashSet::new();
    for (i, r) in rlimits.iter().enumerate() {
        let field = format!("process.rlimits[{i}]");
        let resource = rlimit_number(r.typ());
        if !seen.insert(resource) {
            return Err(Error::invalid(field, format!("{:?} given twice", r.typ())));
        }
        if r.soft() > r.hard() {
            return Err(Error::invalid(
                field,
                format!("soft limit {} is above hard limit {}", r.soft(), r.hard()),
            ));
        }
        steps.push(Step::Rlimit {
            resource,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    Ok(())
}

fn rlimit_number(t: PosixRlimitType) -> u32 {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

fn exec(process: &oci_spec::runtime::Process) -> Result<Exec> {
    let args = process.args().as_deref().unwrap_or_default();
    let Some(arg0) = args.first() else {
        return Err(Error::invalid("process.args", "empty: nothing to run"));
    };
    if arg0.is_empty() {
        return Err(Error::invalid("process.args[0]", "empty"));
    }
    let argv = args
        .iter()
        .enumerate()
        .map(|(i, a)| cpath(a.as_str(), &format!("process.args[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let env_list = process.env().as_deref().unwrap_or_default();
    let env = env_list
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let f = format!("process.env[{i}]");
            if !e.contains('=') {
                return Err(Error::invalid(f, format!("{e:?} is not NAME=VALUE")));
            }
            cpath(e.as_str(), &f)
        })
        .collect::<Result<Vec<_>>>()?;
    let candidates = if arg0.contains('/') {
        vec![argv[0].clone()]
    } else {
        let path = env_list
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| {
                cpath(
                    format!("{}/{arg0}", d.trim_end_matches('/')),
                    "process.env.PATH",
                )
            })
            .collect::<Result<Vec<_>>>()?
    };
    Ok(Exec {
        candidates,
        argv,
        env,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_ids_go_through_the_map() {
        use super::host_id;
        assert_eq!(host_id(1000, None), Some(1000));
        assert_eq!(host_id(0, Some("0 100000 65536")), Some(100_000));
        assert_eq!(host_id(1000, Some("0 100000 65536")), Some(101_000));
        assert_eq!(host_id(65536, Some("0 100000 65536")), None);
        assert_eq!(host_id(5, Some("0 1000 1\n1 200000 100")), Some(200_004));
        assert_eq!(host_id(0, Some("garbage")), None);
        assert_eq!(host_id(9, Some("0 4294967290 10")), None);
    }

    use super::*;

    #[test]
    fn clean_absolute_refuses_relative_and_escaping_paths() {
        assert_eq!(
            clean_absolute(Path::new("/a/./b/../c"), "f").unwrap(),
            Path::new("/a/c")
        );
        assert!(clean_absolute(Path::new("a/b"), "f").is_err());
        let e = clean_absolute(Path::new("/../etc"), "mounts[0].destination").unwrap_err();
        assert!(e.to_string().contains("mounts[0].destination"), "{e}");
        assert!(e.to_string().contains("escapes"), "{e}");
    }

    #[test]
    fn in_root_lists_every_prefix() {
        let r = in_root(Path::new("/dev/pts"), "f").unwrap();
        let p: Vec<_> = r.prefixes.iter().map(CPath::to_string_lossy).collect();
        assert_eq!(p, ["dev", "dev/pts"]);
        assert!(in_root(Path::new("/"), "f").is_err());
    }
}
