//! `create`: compile the plan, clone the container's process, and wait
//! until it is set up and blocked before `execve`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oci_spec::runtime::ContainerState;

use super::spawn::{go, pass_seccomp_fd, prepare, recv, write_proc, ChildSide, Cloned};
use super::supervisor::Supervisor;
use super::{annotations, Container, Inner, Launch};
use crate::bundle::Bundle;
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::exec::{self, Report};
use crate::extension::{Attach, Extension, Prepare, Release};
use crate::hooks::{self, Where};
use crate::host::Host;
use crate::plan::{self, Plan, Step};
use crate::runtime::Config;
use crate::state::{self, Persisted, StateLock, Status};
use crate::stdio::{Pty, Stdio};

/// Choices for [`Runtime::create_with`](crate::Runtime::create_with) that
/// are not part of the OCI spec.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct CreateOptions {
    /// The container's stdin.
    pub stdin: Stdio,
    /// The container's stdout.
    pub stdout: Stdio,
    /// The container's stderr.
    pub stderr: Stdio,
    /// Do not use `pivot_root` (for a rootfs on an initramfs).
    pub no_pivot: bool,
    /// Descriptors for the container's process, which gets them as 3, 4,
    /// … in this order (systemd socket activation's `LISTEN_FDS`). They
    /// are this process's no more: closed here once the container has its
    /// copies.
    pub pass_fds: Vec<OwnedFd>,
    /// Let a shim process parent the container, so that it outlives this
    /// process (see [`Runtime::create_with`](crate::Runtime::create_with)).
    pub detached: bool,
    /// Requests to [extensions](crate::extension), by name: what each
    /// needs for this container (a network to join, an image snapshot to
    /// release). Every name must be one of
    /// [`Config::extensions`](crate::Config::extensions).
    pub extensions: std::collections::BTreeMap<String, serde_json::Value>,
    /// Capture the container's stdout and stderr in a log file that
    /// [`Container::logs`] reads (needs `detached`, and a spec without
    /// `process.terminal`): the shim reads them from pipes, so the
    /// `stdout`/`stderr` choices above apply to the shim itself. The
    /// container's stdin is then `/dev/null`.
    pub log: Option<crate::logs::LogConfig>,
    /// A filesystem mounted on the rootfs directory inside the container's
    /// mount namespace, before anything else is mounted there: an image's
    /// overlay for a container without root, which only the container's
    /// own user namespace may mount (see `berth-image`). It is never
    /// visible on the host, and goes with the container's mount namespace.
    /// Needs a new mount namespace.
    pub rootfs_mount: Option<RootfsMount>,
}

/// A filesystem to mount on a container's rootfs
/// ([`CreateOptions::rootfs_mount`]).
///
/// ```
/// let overlay = berth::RootfsMount::new(
///     "overlay",
///     "overlay",
///     "lowerdir=/l,upperdir=/u,workdir=/w,userxattr",
/// );
/// assert_eq!(overlay.fstype, "overlay");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct RootfsMount {
    /// The filesystem type.
    pub fstype: String,
    /// The `source` argument of mount(2).
    pub source: String,
    /// The filesystem's options, comma-separated, as mount(2) takes them.
    pub data: String,
}

impl RootfsMount {
    /// A mount of `fstype` from `source` with options `data`.
    pub fn new(
        fstype: impl Into<String>,
        source: impl Into<String>,
        data: impl Into<String>,
    ) -> RootfsMount {
        RootfsMount {
            fstype: fstype.into(),
            source: source.into(),
            data: data.into(),
        }
    }
}

/// Creates a container. The work runs in a task of its own so that a
/// caller who stops waiting (drops the future) never leaves a half-made
/// container: the task finishes and, finding no one to hand the container
/// to, deletes it.
pub(crate) async fn create(
    config: Arc<Config>,
    id: String,
    bundle: Bundle,
    opts: CreateOptions,
) -> Result<Container> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    crate::blocking::spawn(async move {
        let result = create_now(&config, &id, bundle, opts).await;
        if let Err(Ok(orphan)) = tx.send(result) {
            if let Err(e) = orphan.force_delete().await {
                tracing::warn!(id = orphan.id(), error = %e, "could not delete abandoned container");
            }
        }
    });
    rx.await
        .map_err(|_| Error::task("create", "ended without an answer (panic?)"))?
}

/// Checks a container id: what runc accepts (letters, digits, `_ + - .`,
/// at most 1024 bytes, not `.` or `..`), so ids are also safe as file and
/// cgroup names.
///
/// ```
/// assert!(berth::validate_id("web-1").is_ok());
/// assert!(berth::validate_id("../etc").is_err());
/// ```
pub fn validate_id(id: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidId {
            id: id.to_string(),
            reason,
        })
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if id == "." || id == ".." {
        return bad("not a name");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b))
    {
        return bad("only letters, digits and _ + - . are allowed");
    }
    Ok(())
}

/// How many descriptors are passed, as the plan counts them.
pub(crate) fn passed_count(fds: &[OwnedFd]) -> Result<u32> {
    // Far below any descriptor limit; a number the plan can hold.
    const MAX: usize = 65_536;
    match u32::try_from(fds.len()) {
        Ok(n) if fds.len() <= MAX => Ok(n),
        _ => Err(Error::Unsupported(format!(
            "passing {} descriptors: at most {MAX} can be passed",
            fds.len()
        ))),
    }
}

/// What exists so far, to be undone if a later step fails.
struct Partial<'a> {
    dir: PathBuf,
    dir_created: bool,
    /// The cgroup, if berth made it (a pre-existing one is never removed),
    /// and how many of its emptied parents may go with it.
    cgroup: Option<(Cgroup, usize)>,
    child: Option<(Arc<Supervisor>, exec::ChildMemory)>,
    /// Extensions that may have made something (their prepare began).
    extensions: Vec<&'a dyn Extension>,
    id: &'a str,
}

impl Partial<'_> {
    async fn undo(mut self) {
        if let Some((sup, memory)) = self.child.take() {
            let _ = exec::sys::pidfd_send_signal(sup.pidfd().as_raw_fd(), libc::SIGKILL);
            if sup.wait().await.is_ok() {
                // Only now, with the child gone, may its memory be freed.
                memory.release();
            }
            super::supervisor::unregister(&self.dir);
        }
        if let Some((cg, parents)) = self.cgroup.take() {
            if let Err(e) = cg.delete_with_parents(parents).await {
                tracing::warn!(error = %e, "could not remove cgroup of failed container");
            }
        }
        for ext in std::mem::take(&mut self.extensions).into_iter().rev() {
            let cx = Release {
                id: self.id,
                state_dir: &self.dir,
            };
            if let Err(e) = ext.release(cx).await {
                tracing::warn!(extension = ext.name(), error = %e, "could not release what an extension made for a failed container");
            }
        }
        if self.dir_created {
            let dir = self.dir.clone();
            let _ = super::blocking(move || {
                if let Err(e) = super::host_mounts::release(&dir) {
                    tracing::warn!(error = %e, "could not unmount the rootfs of a failed container");
                }
                state::remove_dir(&dir)
            })
            .await;
        }
    }
}

/// Compiles the bundle's spec on a blocking thread (the seccomp compile
/// alone takes tens of milliseconds), and serializes it there for the
/// state's `config.json`. The bundle moves to that thread and back: the
/// spec, with a seccomp profile's hundreds of entries, is not copied.
async fn compile(bundle: Bundle, opts: &plan::Options) -> Result<(Bundle, Arc<Plan>, Vec<u8>)> {
    let opts = opts.clone();
    super::blocking(move || compile_now(bundle, &opts)).await
}

/// [`compile`] on the calling thread.
fn compile_now(bundle: Bundle, opts: &plan::Options) -> Result<(Bundle, Arc<Plan>, Vec<u8>)> {
    let plan = plan::compile(&bundle.spec, &bundle.dir, Host::get(), opts).map(Arc::new)?;
    let json = serde_json::to_vec(&bundle.spec).map_err(|e| Error::InvalidSpec {
        field: "(the whole spec)".into(),
        reason: format!("cannot be serialized: {e}"),
    })?;
    Ok((bundle, plan, json))
}

/// Makes the state directory `<root>/<id>` with its first record (status
/// `creating`, what the container will own) and its lock, held by the
/// caller until the container is created: the directory appears complete
/// (made under a temporary name, then renamed), so there is no instant at
/// which `list` could miss a container that exists.
fn make_state_dir(root: &Path, first: &Persisted) -> Result<StateLock> {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = &first.id;
    std::fs::create_dir_all(root).map_err(|e| Error::io("create state root", root, e))?;
    let dir = root.join(id);
    if dir.exists() {
        return Err(Error::AlreadyExists(id.to_string()));
    }
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = root.join(format!(".{id}.creating.{}.{n}", std::process::id()));
    std::fs::create_dir(&tmp).map_err(|e| Error::io("create state directory", &tmp, e))?;
    let made = first
        .save(&tmp)
        .and_then(|()| StateLock::acquire(&tmp, id))
        .and_then(|lock| {
            match renameat2(
                AT_FDCWD,
                &tmp,
                AT_FDCWD,
                &dir,
                RenameFlags::RENAME_NOREPLACE,
            ) {
                Ok(()) => Ok(lock),
                Err(nix::errno::Errno::EEXIST | nix::errno::Errno::ENOTEMPTY) => {
                    Err(Error::AlreadyExists(id.to_string()))
                }
                Err(e) => Err(Error::io("create state directory", &dir, e.into())),
            }
        });
    if made.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    made
}

/// Removes what a creator killed between making its temporary state
/// directory and renaming it left behind (nothing else was made by then).
pub(crate) fn sweep_temporaries(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix('.') else {
            continue;
        };
        let mut parts = rest.rsplitn(4, '.');
        let (Some(_n), Some(pid), Some("creating")) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        if pid > 0 && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

async fn create_now(
    config: &Config,
    id: &str,
    mut bundle: Bundle,
    opts: CreateOptions,
) -> Result<Container> {
    validate_id(id)?;
    let extensions = crate::extension::resolve(&config.extensions, &opts.extensions)?;
    for (ext, request) in extensions.iter().zip(opts.extensions.values()) {
        ext.edit_spec(&mut bundle.spec, request)?;
    }
    let dir = config.root.join(id);
    let cgroup_path = cgroup_path(config, id, &bundle);
    let plan_opts = plan::Options {
        no_pivot: opts.no_pivot,
        preserve_fds: passed_count(&opts.pass_fds)?,
        cgroup_path: Some(cgroup_path.clone()),
        seccomp: None,
        rootless: crate::security::rootless::is_rootless(),
        // Worked out by the compiler from the gid map.
        rootless_setgroups: false,
        personality: None,
        rootfs_mount: opts.rootfs_mount.clone(),
    };
    // Every check of the spec happens here, before anything exists.
    let (root, own_parent) = (config.root.clone(), config.cgroup_parent.clone());
    let (id_owned, extensions_named) = (id.to_string(), opts.extensions.keys().cloned().collect());
    let opts_compile = plan_opts.clone();
    // The compile and the state directory in one blocking stage. The lock
    // is held until the container is created: no other start, kill or
    // delete acts on a half-made container.
    let (mut bundle, mut plan, mut spec_json, lock, first) = super::blocking(move || {
        let (bundle, plan, json) =
            super::phase_now("create.compile", || compile_now(bundle, &opts_compile))?;
        let first = Persisted {
            id: id_owned,
            bundle: bundle.dir.clone(),
            rootfs: plan.rootfs.clone(),
            pid: 0,
            pid_start_time: 0,
            status: Status::Creating,
            exit_status: None,
            cgroup_path,
            annotations: annotations(&bundle.spec),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            shim: None,
            recorder: (!super::supervisor::leaving())
                .then(crate::state::HostProcess::this)
                .flatten(),
            // Set below, in the first record, before the cgroup is made.
            cgroup_owned: None,
            cgroup_parents_owned: None,
            log: None,
            extensions: extensions_named,
        };
        let (lock, first) = super::phase_now("create.state_dir", || {
            let mut rec = first;
            // Whether berth makes the cgroup (a `cgroupsPath` may name one
            // that exists): recorded before it is made, so that a creator
            // killed at any instant leaves a record of what to remove.
            rec.cgroup_owned = Some(!Cgroup::open(&rec.cgroup_path)?.exists());
            rec.cgroup_parents_owned =
                Some(Cgroup::removable_parents(&rec.cgroup_path, &own_parent)?);
            Ok::<_, Error>((make_state_dir(&root, &rec)?, rec))
        })?;
        Ok((bundle, plan, json, lock, first))
    })
    .await?;
    let mut partial = Partial {
        dir: dir.clone(),
        dir_created: true,
        cgroup: None,
        child: None,
        extensions: Vec::new(),
        id,
    };
    let hostname = bundle
        .spec
        .hostname()
        .clone()
        .unwrap_or_else(|| id.chars().take(63).collect());
    let mut mounts = Vec::new();
    for (ext, request) in extensions.iter().zip(opts.extensions.values()) {
        // Released on failure from now on: the first record names it.
        partial.extensions.push(*ext);
        let cx = Prepare {
            id,
            state_dir: &dir,
            hostname: &hostname,
            request,
        };
        match super::phase("create.extension", ext.prepare(cx)).await {
            Ok(m) => mounts.extend(m),
            Err(e) => {
                partial.undo().await;
                return Err(e);
            }
        }
    }
    if !mounts.is_empty() {
        // Files the extensions made (a network's /etc/hosts) exist only
        // now: compile again with their mounts.
        let mut all = bundle.spec.mounts().clone().unwrap_or_default();
        all.extend(mounts);
        bundle.spec.set_mounts(Some(all));
        match compile(bundle, &plan_opts).await {
            Ok(p) => (bundle, plan, spec_json) = p,
            Err(e) => {
                partial.undo().await;
                return Err(e);
            }
        }
    }
    let result = build(
        first,
        &bundle,
        spec_json,
        opts,
        plan,
        &mut partial,
        &config.extensions,
    )
    .await;
    let result = match result {
        Ok(c) => Ok(c),
        Err(e) => {
            partial.undo().await;
            Err(e)
        }
    };
    drop(lock);
    result
}

/// Makes the cgroup (the first record says whether berth makes it) and
/// applies the spec's limits. Blocking.
fn setup_cgroup(
    p: &Persisted,
    resources: Option<&oci_spec::runtime::LinuxResources>,
    devices: &[oci_spec::runtime::LinuxDevice],
) -> Result<(Option<Cgroup>, Option<crate::cgroups::Placement>)> {
    let rootless = crate::security::rootless::is_rootless();
    let cgroup = match Cgroup::create(&p.cgroup_path) {
        Ok(cg) => Some(cg),
        // Without root, cgroups only where they were delegated to us.
        Err(e) if rootless => {
            let needs = resources.and_then(crate::cgroups::needs_delegation);
            if let Some(field) = needs {
                return Err(Error::Unsupported(format!(
                    "linux.resources.{field}: the cgroup {} is not delegated to this user ({e})",
                    p.cgroup_path
                )));
            }
            tracing::info!(cgroup = %p.cgroup_path, "rootless: no cgroup ({e})");
            None
        }
        Err(e) => return Err(e),
    };
    let mut placement = None;
    if let Some(cgroup) = &cgroup {
        if let Some(resources) = resources {
            cgroup.apply_for_create(resources, devices)?;
        }
        placement = Some(cgroup.placement()?);
    }
    Ok((cgroup, placement))
}

async fn build(
    mut persisted: Persisted,
    bundle: &Bundle,
    spec_json: Vec<u8>,
    opts: CreateOptions,
    plan: Arc<Plan>,
    partial: &mut Partial<'_>,
    config_extensions: &[Arc<dyn Extension>],
) -> Result<Container> {
    let dir = partial.dir.clone();
    let id = persisted.id.clone();
    // What the cgroup needs, not all of `linux` (its seccomp profile).
    let linux = bundle.spec.linux().as_ref();
    let limits = Limits {
        resources: linux.and_then(|l| l.resources().clone()),
        devices: linux.and_then(|l| l.devices().clone()).unwrap_or_default(),
    };
    // Only a cgroup berth made is removed if the create fails.
    let owned_cgroup = match persisted.cgroup_owned {
        Some(true) => Some((
            Cgroup::open(&persisted.cgroup_path)?,
            persisted.cgroup_parents_owned(),
        )),
        _ => None,
    };
    let (parent, child) = prepare(true, [opts.stdin, opts.stdout, opts.stderr], opts.pass_fds)?;
    let (d, p2, rec) = (dir.clone(), plan.clone(), persisted.clone());
    let made =
        super::blocking(move || make_and_clone(&d, rec, p2, &spec_json, &limits, child)).await;
    partial.cgroup = owned_cgroup;
    let (cloned, set_up) = made?;
    let (pid, sync, exec_report, ends) = (cloned.pid, parent.sync, parent.exec_report, parent.ends);
    let sup = Supervisor::start(pid, cloned.pidfd.take(), Some(dir.clone()), None);
    // Found by `Runtime::get` from now on, and kept (so the exit is
    // recorded) even if this task is cancelled with its runtime.
    sup.register();
    partial.child = Some((sup.clone(), cloned.memory));
    persisted = set_up?;
    go(&sync)?;

    let mut pty = None;
    let mut connected = false;
    loop {
        let report = super::phase("create.child_setup", recv(&sync)).await?;
        let Some((report, fd)) = report else {
            return Err(Error::Init {
                kind: crate::InitStep::Exited,
                step: "container process exited during set-up".into(),
                path: None,
                source: std::io::Error::from_raw_os_error(libc::ECHILD),
            });
        };
        match report.kind {
            Report::HOOKS => {
                // A network is there when the createRuntime hooks run.
                attach_extensions(partial, &opts.extensions, &sup, pid).await?;
                connected = true;
                run_create_hooks(bundle, &persisted, pid).await?;
                go(&sync)?;
            }
            Report::CONSOLE => {
                let fd = fd.ok_or_else(|| {
                    Error::sys(
                        "receive console",
                        std::io::Error::from_raw_os_error(libc::EBADMSG),
                    )
                })?;
                pty = Some(Pty::new(fd)?);
            }
            Report::SECCOMP => {
                let mut state = super::oci_state(&persisted, Status::Created)?;
                state.set_status(ContainerState::Creating);
                pass_seccomp_fd(&plan, &sync, fd, pid, &state).await?;
            }
            Report::CREATED => {
                if !connected {
                    attach_extensions(partial, &opts.extensions, &sup, pid).await?;
                }
                super::phase(
                    "create.waiter_exec",
                    left_shared_memory(&plan, &sync, partial.child.as_ref()),
                )
                .await?;
                break;
            }
            Report::FAILED => return Err(init_error(&plan, report)),
            other => {
                return Err(Error::sys(
                    "read child report",
                    std::io::Error::other(format!("unknown report kind {other}")),
                ))
            }
        }
    }
    persisted.status = Status::Created;
    let (d, rec) = (dir.clone(), persisted.clone());
    super::phase("create.record", super::blocking(move || rec.save(&d))).await?;

    let Some((sup, memory)) = partial.child.take() else {
        unreachable!("spawned above")
    };
    if exec::sabotage("waiter") {
        // Escape tests: the process still runs on our memory.
        std::mem::forget(memory);
    } else {
        // The first process now runs `berth-waiter`: our memory is its no more.
        memory.release();
    }
    // What `start` needs: the waiter's report of a failed `execve`.
    *sup.launch.lock().await = exec_report.map(|sync| Launch {
        sync,
        plan,
        memory: None,
    });
    sup.release_if_reaped().await;
    partial.cgroup = None;
    partial.dir_created = false;
    partial.extensions.clear();
    Ok(Container {
        inner: Arc::new(Inner {
            id,
            dir,
            pid,
            supervisor: Some(sup),
            pidfd: None,
            exit: tokio::sync::OnceCell::new(),
            stdio: Mutex::new(ends),
            pty: Mutex::new(pty),
            hooks: bundle.spec.hooks().clone().map(Arc::new).into(),
            extensions: config_extensions.to_vec(),
        }),
    })
}

/// The cgroup limits of a spec.
struct Limits {
    resources: Option<oci_spec::runtime::LinuxResources>,
    devices: Vec<oci_spec::runtime::LinuxDevice>,
}

/// The blocking part of a create from the state's files to the child's
/// pid in the record, in one stage on one thread (each hop to tokio's
/// blocking pool costs two wake-ups of another thread); each step is
/// still timed as a phase. Once the child is cloned it is returned with
/// the rest of the stage's outcome: the record with its pid, or the error.
fn make_and_clone(
    dir: &Path,
    rec: Persisted,
    plan: Arc<Plan>,
    spec_json: &[u8],
    limits: &Limits,
    child: ChildSide,
) -> Result<(Cloned, Result<Persisted>)> {
    let made = super::phase_now("create.prepare", || -> Result<_> {
        let spec_file = dir.join(state::SPEC_FILE);
        std::fs::write(&spec_file, spec_json).map_err(|e| Error::io("save spec", &spec_file, e))?;
        if !plan.new_namespaces.contains(&crate::plan::Namespace::Mount) {
            super::host_mounts::record(dir, &plan.rootfs)?;
        }
        let fifo_path = dir.join(state::EXEC_FIFO);
        nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| Error::io("create exec fifo", &fifo_path, e.into()))?;
        let fifo: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo_path)
            .map_err(|e| Error::io("open exec fifo", &fifo_path, e))?
            .into();
        let (cgroup, placement) = setup_cgroup(&rec, limits.resources.as_ref(), &limits.devices)?;
        Ok((fifo, cgroup, placement))
    });
    let (fifo, cgroup, placement) = made?;
    let cloned = super::phase_now("create.clone", || {
        child.clone_child(plan.clone(), Some(fifo), placement)
    })?;
    // The v1 cgroups it joins itself (`Step::JoinCgroup`).
    let cgroup = cgroup.filter(|_| !cloned.in_cgroup);
    let set_up = super::phase_now("create.parent_setup", || {
        parent_setup(dir, rec, &plan, cloned.pid, cgroup.as_ref())
    });
    Ok((cloned, set_up))
}

/// The parent's part of the child's set-up: its id maps, `oom_score_adj`
/// and cgroup (unless born in it), then its pid in the record.
fn parent_setup(
    dir: &Path,
    mut rec: Persisted,
    plan: &Plan,
    pid: i32,
    cgroup: Option<&Cgroup>,
) -> Result<Persisted> {
    if crate::security::rootless::is_rootless() {
        crate::security::rootless::write_id_maps(
            pid,
            plan.uid_map.as_deref(),
            plan.gid_map.as_deref(),
        )?;
    } else {
        if let Some(map) = &plan.uid_map {
            write_proc(pid, "uid_map", map)?;
        }
        if let Some(map) = &plan.gid_map {
            write_proc(pid, "gid_map", map)?;
        }
    }
    if let Some(adj) = plan.oom_score_adj {
        write_proc(pid, "oom_score_adj", &adj.to_string())?;
    }
    if let Some(cgroup) = cgroup {
        cgroup.add_process_v2(pid)?;
    }
    let (_, pid_start_time) = state::proc_stat(pid).ok_or_else(|| {
        Error::sys(
            "read start time of container process",
            std::io::Error::from_raw_os_error(libc::ESRCH),
        )
    })?;
    rec.pid = pid;
    rec.pid_start_time = pid_start_time;
    rec.save(dir)?;
    Ok(rec)
}

/// Runs each extension's attach step on the container's process.
async fn attach_extensions(
    partial: &Partial<'_>,
    requests: &std::collections::BTreeMap<String, serde_json::Value>,
    sup: &Supervisor,
    pid: i32,
) -> Result<()> {
    for (ext, request) in partial.extensions.iter().zip(requests.values()) {
        let cx = Attach {
            id: partial.id,
            state_dir: &partial.dir,
            pid,
            pidfd: std::os::fd::AsFd::as_fd(sup.pidfd()),
            request,
        };
        super::phase("create.attach", ext.attach(cx)).await?;
    }
    Ok(())
}

/// After `CREATED` the first process `execve`s `berth-waiter` (see
/// `exec::waiter`): waits for that, seen as EOF on the close-on-exec sync
/// socket, so that `create` returns only once no process of the container
/// shares our memory or runs our binary. A failed exec is reported.
async fn left_shared_memory(
    plan: &Plan,
    sync: &tokio::io::unix::AsyncFd<OwnedFd>,
    child: Option<&(Arc<Supervisor>, exec::ChildMemory)>,
) -> Result<()> {
    match recv(sync).await? {
        Some((report, _)) if report.kind == Report::FAILED => Err(init_error(plan, report)),
        Some((report, _)) => Err(Error::sys(
            "read child report",
            std::io::Error::other(format!("unexpected report kind {}", report.kind)),
        )),
        // EOF: exec'd, unless it died (a seccomp profile that kills on
        // execveat, say): a pidfd turns readable when its process exits.
        None => match child {
            Some((sup, _)) if exited(sup.pidfd()) => Err(Error::Init {
                kind: crate::InitStep::StartWaiter,
                step: "start berth-waiter".into(),
                path: None,
                source: std::io::Error::from_raw_os_error(libc::ECHILD),
            }),
            _ => Ok(()),
        },
    }
}

fn exited(pidfd: impl std::os::fd::AsFd) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
}

/// The container's cgroup: `linux.cgroupsPath`, else `<cgroup_parent>/<id>`.
fn cgroup_path(config: &Config, id: &str, bundle: &Bundle) -> String {
    let spec_path = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone());
    match spec_path {
        // Absolute: from the hierarchy roots, as containerd and podman give it.
        Some(p) if p.is_absolute() => p.to_string_lossy().into_owned(),
        // Relative: under the runtime's own parent.
        Some(p) => format!("{}/{}", config.cgroup_parent, p.to_string_lossy()),
        None => format!("{}/{id}", config.cgroup_parent),
    }
}

/// Turns a child's failure report into an error naming the step.
pub(super) fn init_error(plan: &Plan, report: Report) -> Error {
    if report.step == Report::BEFORE_STEPS {
        return Error::Init {
            kind: crate::InitStep::Descriptors,
            step: "set up the child's descriptors".into(),
            path: None,
            source: std::io::Error::from_raw_os_error(report.errno),
        };
    }
    let (step, path) = plan.describe(report.step as usize);
    let kind = plan.step_kind(report.step as usize);
    let source = std::io::Error::from_raw_os_error(report.errno);
    if matches!(
        plan.steps.get(report.step as usize),
        Some(Step::FindExecutable)
    ) {
        return Error::Init {
            kind,
            step: format!("{step}: not found or not executable in the container"),
            path,
            source,
        };
    }
    Error::Init {
        kind,
        step,
        path,
        source,
    }
}

async fn run_create_hooks(bundle: &Bundle, p: &Persisted, pid: i32) -> Result<()> {
    let Some(h) = bundle.spec.hooks() else {
        return Ok(());
    };
    let mut s = super::oci_state(p, Status::Created)?;
    s.set_status(ContainerState::Creating);
    let state = serde_json::to_vec(&s).map_err(|e| Error::State {
        id: p.id.clone(),
        reason: e.to_string(),
    })?;
    #[allow(deprecated)]
    let prestart = h.prestart().as_deref().unwrap_or_default();
    hooks::run("prestart", prestart, &state, &Where::Runtime).await?;
    let create_runtime = h.create_runtime().as_deref().unwrap_or_default();
    hooks::run("createRuntime", create_runtime, &state, &Where::Runtime).await?;
    let create_container = h.create_container().as_deref().unwrap_or_default();
    hooks::run(
        "createContainer",
        create_container,
        &state,
        &Where::Container {
            pid,
            env: hooks::process_env(&bundle.spec),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::{init_error, validate_id, Report};
    use crate::{Error, InitStep};

    #[test]
    fn ids_are_safe_file_names() {
        assert!(validate_id("web-1.a_b+c").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ü"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_failure_report_names_its_step_or_the_descriptors_before_them() {
        // The rootfs is `/`, as in the plan's snapshot tests.
        let mut spec = oci_spec::runtime::Spec::default();
        let mut root = oci_spec::runtime::Root::default();
        root.set_path("/".into());
        spec.set_root(Some(root));
        let plan = crate::plan::compile(
            &spec,
            std::path::Path::new("/"),
            &crate::host::Host::fixture(),
            &Default::default(),
        )
        .unwrap();
        let failed = |step| Report {
            kind: Report::FAILED,
            step,
            errno: libc::EMFILE,
            _pad: 0,
        };
        let kind = |e: &Error| match e {
            Error::Init { kind, .. } => *kind,
            other => panic!("{other}"),
        };
        let e = init_error(&plan, failed(Report::BEFORE_STEPS));
        assert_eq!(kind(&e), InitStep::Descriptors, "{e}");
        assert_eq!(e.errno(), Some(libc::EMFILE));
        assert_eq!(
            e.to_string(),
            "container init: set up the child's descriptors: Too many open files (os error 24)"
        );
        // Step 0 is a step of its own, not the descriptors.
        let e = init_error(&plan, failed(0));
        assert_eq!(kind(&e), InitStep::ResetSignals, "{e}");
        let last = plan.steps.len() - 1;
        let e = init_error(&plan, failed(last as u32));
        assert_eq!(kind(&e), InitStep::Exec, "{e}");
        let e = init_error(&plan, failed(last as u32 + 1));
        assert_eq!(kind(&e), InitStep::Unknown, "{e}");
        // The executable's step says what is wrong with it.
        let find = plan
            .steps
            .iter()
            .position(|s| matches!(s, crate::plan::Step::FindExecutable))
            .unwrap();
        let e = init_error(&plan, failed(find as u32));
        assert_eq!(kind(&e), InitStep::FindExecutable, "{e}");
        assert!(e.to_string().contains("not found or not executable"), "{e}");
    }
}
