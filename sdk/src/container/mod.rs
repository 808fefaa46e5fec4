//! A container handle and its lifecycle verbs, one file per verb.

mod create;
mod delete;
mod events;
mod exec;
mod host_mounts;
mod journal;
mod kill;
mod logs;
mod pause;
mod sampler;
mod spawn;
mod start;
mod stop;
mod supervisor;
mod wait;

pub use create::validate_id;
pub(crate) use create::{create, passed_count, sweep_temporaries};
pub use create::{CreateOptions, RootfsMount};
pub use events::Event;
pub use exec::{ExecOptions, ExecProcess};
pub use sampler::{StatsSampler, StatsTick};
pub use stop::STOP_SIGNAL_ANNOTATION;
pub use supervisor::leave_children_to_parent;
pub(crate) use supervisor::prune as prune_supervisors;

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oci_spec::runtime::{ContainerState, Spec, State, StateBuilder};
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

use crate::error::{Error, Result};
use crate::exec::ChildMemory;
use crate::extension::Extension;
use crate::state::{self, ExitStatus, Persisted, Status};
use crate::stdio::{ParentEnds, Pty};

/// A handle to one container. Cheap to clone; every clone refers to the
/// same container. Dropping handles never affects the container: it lives
/// until it exits and is deleted.
#[derive(Debug, Clone)]
pub struct Container {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: String,
    dir: PathBuf,
    pid: i32,
    /// This process cloned the container: the one owner of its process,
    /// which reaps it and publishes the exit.
    supervisor: Option<Arc<supervisor::Supervisor>>,
    /// Another process's container: a pidfd of its first process,
    /// registered with tokio, to observe (never reap) its exit.
    pidfd: Option<AsyncFd<OwnedFd>>,
    /// The exit status as observed from another process.
    exit: tokio::sync::OnceCell<ExitStatus>,
    stdio: Mutex<ParentEnds>,
    pty: Mutex<Option<Pty>>,
    /// The spec's hooks, read once (they never change after create): most
    /// containers have none, and `start` and `delete` then parse nothing.
    hooks: std::sync::OnceLock<Option<Arc<oci_spec::runtime::Hooks>>>,
    /// The runtime's extensions, for delete to release what they made.
    extensions: Vec<Arc<dyn Extension>>,
}

/// What a shared-memory child still needs from its parent.
#[derive(Debug)]
struct Launch {
    sync: AsyncFd<OwnedFd>,
    plan: Arc<crate::plan::Plan>,
    memory: Option<ChildMemory>,
}

impl Launch {
    /// The child exec'd or died: its memory may go.
    fn done(mut self) {
        if let Some(m) = self.memory.take() {
            m.release();
        }
    }
}

impl Drop for Launch {
    /// Dropped before the child was seen to exec (the last handle went away
    /// while the container waits for `start`): hand the memory to a task
    /// that frees it once the sync socket reports the exec. Without a
    /// runtime, or if the runtime stops first, the memory is leaked rather
    /// than freed under the child.
    fn drop(&mut self) {
        let Some(memory) = self.memory.take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let fd = match self.sync.get_ref().try_clone() {
            Ok(fd) => fd,
            Err(_) => return,
        };
        handle.spawn(async move {
            let Ok(sync) = crate::exec::register(fd) else {
                return;
            };
            loop {
                match spawn::recv(&sync).await {
                    Ok(Some(_)) => continue,
                    Ok(None) => return memory.release(),
                    Err(_) => return,
                }
            }
        });
    }
}

impl Container {
    /// The container's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The pid of the container's first process, as the host sees it.
    pub fn pid(&self) -> i32 {
        self.inner.pid
    }

    /// Where berth keeps this container's state.
    pub fn state_dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The writing end of the container's stdin, if it was
    /// [`Stdio::Piped`](crate::Stdio::Piped). Returns it once.
    pub fn take_stdin(&self) -> Option<pipe::Sender> {
        self.inner
            .stdio
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stdin
            .take()
    }

    /// The reading end of the container's stdout, if piped. Returns it once.
    pub fn take_stdout(&self) -> Option<pipe::Receiver> {
        self.inner
            .stdio
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stdout
            .take()
    }

    /// The reading end of the container's stderr, if piped. Returns it once.
    pub fn take_stderr(&self) -> Option<pipe::Receiver> {
        self.inner
            .stdio
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stderr
            .take()
    }

    /// The master of the container's terminal when `process.terminal` is
    /// true. Returns it once.
    pub fn take_pty(&self) -> Option<Pty> {
        self.inner
            .pty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The host path of the container's rootfs.
    pub async fn rootfs(&self) -> Result<PathBuf> {
        Ok(self.load_blocking().await?.rootfs)
    }

    /// The bundle directory it was created from.
    pub async fn bundle(&self) -> Result<PathBuf> {
        Ok(self.load_blocking().await?.bundle)
    }

    /// When it was created, in seconds since the epoch.
    pub async fn created(&self) -> Result<u64> {
        Ok(self.load_blocking().await?.created)
    }

    /// The container's current status (its state and, for a running
    /// one, its freezer), read on tokio's blocking pool.
    pub async fn status(&self) -> Result<Status> {
        let me = self.clone();
        blocking(move || me.status_now()).await
    }

    /// [`status`](Self::status) on the calling thread.
    pub(crate) fn status_now(&self) -> Result<Status> {
        let p = self.load()?;
        Ok(self.status_of(&p))
    }

    /// The OCI state of the container (what `runc state` prints), read on
    /// tokio's blocking pool. The OCI status has no `paused`: a paused
    /// container reads `running` here, and [`Status::Paused`] in
    /// [`Container::status`].
    pub async fn state(&self) -> Result<State> {
        let me = self.clone();
        blocking(move || me.state_now()).await
    }

    /// [`state`](Self::state) on the calling thread.
    pub(crate) fn state_now(&self) -> Result<State> {
        let p = self.load()?;
        oci_state(&p, self.status_of(&p))
    }

    /// The container's record, read on tokio's blocking pool.
    async fn load_blocking(&self) -> Result<Persisted> {
        let me = self.clone();
        blocking(move || me.load()).await
    }

    fn load(&self) -> Result<Persisted> {
        Persisted::load(&self.inner.dir, &self.inner.id)
    }

    /// The state of a container that is created or running; an error for
    /// a stopped one, which `op` cannot act on.
    fn require_live(&self, op: &'static str) -> Result<Persisted> {
        let p = self.load()?;
        let status = self.status_of(&p);
        if status == Status::Stopped {
            return Err(Error::InvalidState {
                id: p.id,
                status: status.to_string(),
                op,
            });
        }
        Ok(p)
    }

    fn status_of(&self, p: &Persisted) -> Status {
        let reaped = self
            .inner
            .supervisor
            .as_ref()
            .is_some_and(|s| s.exited().is_some());
        if p.status == Status::Stopped || reaped || self.inner.exit.initialized() {
            return Status::Stopped;
        }
        // Never finished being created (its creator may have died mid-way):
        // only a forced delete applies.
        if p.status == Status::Creating {
            return Status::Creating;
        }
        if !state::is_alive(p.pid, p.pid_start_time) {
            return Status::Stopped;
        }
        let frozen = crate::cgroups::Cgroup::open(&p.cgroup_path).and_then(|c| c.frozen());
        if frozen.unwrap_or(false) {
            Status::Paused
        } else {
            p.status
        }
    }

    /// Records that extension `name` made something for this container
    /// after it was created (a network connected to a running container),
    /// so that [`delete`](Self::delete) releases it. Recorded under the
    /// state lock, before the extension makes anything; recording a name
    /// twice records it once. The name must be one of the runtime's
    /// [`Config::extensions`](crate::Config::extensions).
    pub async fn record_extension(&self, name: &str) -> Result<()> {
        crate::extension::find(&self.inner.extensions, name)?;
        let _lock = self.lock().await?;
        let (dir, id, name) = (
            self.inner.dir.clone(),
            self.inner.id.clone(),
            name.to_string(),
        );
        blocking(move || {
            let mut p = Persisted::load(&dir, &id)?;
            if !p.extensions.contains(&name) {
                p.extensions.push(name);
                p.save(&dir)?;
            }
            Ok(())
        })
        .await
    }

    /// The spec the container was created from (its `config.json`, with
    /// the resources of later updates), read on tokio's blocking pool.
    pub async fn spec(&self) -> Result<Spec> {
        let me = self.clone();
        blocking(move || me.spec_now()).await
    }

    /// [`spec`](Self::spec) on the calling thread.
    pub(crate) fn spec_now(&self) -> Result<Spec> {
        let path = self.inner.dir.join(state::SPEC_FILE);
        Spec::load(&path).map_err(|e| Error::State {
            id: self.inner.id.clone(),
            reason: format!("{}: {e}", path.display()),
        })
    }

    /// The spec's hooks (from `config.json` on first use).
    fn hooks(&self) -> Result<Option<Arc<oci_spec::runtime::Hooks>>> {
        if let Some(h) = self.inner.hooks.get() {
            return Ok(h.clone());
        }
        let hooks = self.spec_now()?.hooks().clone().map(Arc::new);
        Ok(self.inner.hooks.get_or_init(|| hooks).clone())
    }

    /// The state JSON given to hooks on stdin.
    fn hook_state(&self, status: ContainerState) -> Result<Vec<u8>> {
        let p = self.load()?;
        let mut s = oci_state(&p, Status::Created)?;
        s.set_status(status);
        serde_json::to_vec(&s).map_err(|e| Error::State {
            id: p.id.clone(),
            reason: e.to_string(),
        })
    }

    /// Re-attaches to an existing container, from its state directory.
    pub(crate) fn attach(
        dir: PathBuf,
        id: &str,
        extensions: &[Arc<dyn Extension>],
    ) -> Result<Container> {
        Self::attach_with(dir, id, ParentEnds::default(), extensions)
    }

    /// Re-attaches, keeping the parent's ends of piped stdio. In the
    /// process that created the container the handle shares its
    /// supervisor, so it can wait for the exit status.
    pub(crate) fn attach_with(
        dir: PathBuf,
        id: &str,
        ends: ParentEnds,
        extensions: &[Arc<dyn Extension>],
    ) -> Result<Container> {
        let p = Persisted::load(&dir, id)?;
        // pid 0: its creator was cancelled before recording the pid.
        let supervisor = supervisor::lookup(&dir).filter(|s| s.pid() == p.pid || p.pid <= 0);
        if let Some(s) = &supervisor {
            s.ensure();
        }
        // A pidfd only for a process that is still the container's,
        // checked after the open so that the pidfd pins the right one.
        let pidfd = if supervisor.is_none() && p.pid > 0 {
            crate::exec::pidfd_open(p.pid)
                .ok()
                .filter(|_| state::is_alive(p.pid, p.pid_start_time))
                .and_then(|fd| crate::exec::register(fd).ok())
        } else {
            None
        };
        Ok(Container {
            inner: Arc::new(Inner {
                id: id.to_string(),
                dir,
                pid: p.pid,
                supervisor,
                pidfd,
                exit: match p.exit_status {
                    Some(s) => tokio::sync::OnceCell::new_with(Some(s)),
                    None => tokio::sync::OnceCell::new(),
                },
                stdio: Mutex::new(ends),
                pty: Mutex::default(),
                hooks: std::sync::OnceLock::new(),
                extensions: extensions.to_vec(),
            }),
        })
    }

    /// Takes the container's state lock (on a blocking thread).
    pub(crate) async fn lock(&self) -> Result<state::StateLock> {
        state::StateLock::acquire_async(&self.inner.dir, &self.inner.id).await
    }
}

/// Runs `fut` in a task of its own, so that it runs to completion even if
/// the caller stops waiting (drops the future): a delete or a
/// freeze-signal-thaw is never left half-done.
pub(crate) async fn to_completion<T, F>(fut: F) -> Result<T>
where
    F: std::future::Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    crate::blocking::spawn(fut)
        .await
        .map_err(|e| Error::sys("task", std::io::Error::other(e)))?
}

/// Times `fut` as one phase of a verb: a debug-level `tracing` span named
/// `phase` whose `name` field says which (`create.clone`). The phase
/// benchmark (`benches/examples/phases.rs`) reads them.
pub(crate) fn phase<F: std::future::Future>(
    name: &'static str,
    fut: F,
) -> tracing::instrument::Instrumented<F> {
    use tracing::Instrument;
    fut.instrument(tracing::debug_span!("phase", name))
}

/// Times the blocking `f` as one phase, like [`phase`]: for the steps of
/// one blocking stage.
pub(crate) fn phase_now<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    tracing::debug_span!("phase", name).in_scope(f)
}

/// Runs `f` on tokio's blocking pool: file, cgroup and `/proc` work never
/// runs on an async worker (unless the caller asked for its own thread,
/// [`crate::blocking::on_caller`]). The exception is the cgroup calls
/// that wait between system calls (freeze, `kill_all`, the `rmdir`s of a
/// delete): they make each call on the polling thread and wait with
/// tokio's timer (see "Blocking stages" in docs/ARCHITECTURE.md).
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    crate::blocking::run(f)
        .await
        .map_err(|e| Error::task("blocking", e))?
}

pub(crate) fn oci_state(p: &Persisted, status: Status) -> Result<State> {
    let status = match status {
        Status::Creating => ContainerState::Creating,
        Status::Created => ContainerState::Created,
        // The OCI state has no `paused` (runc's own addition): a paused
        // container's process is still there, as a running one's is.
        Status::Running | Status::Paused => ContainerState::Running,
        Status::Stopped => ContainerState::Stopped,
    };
    let mut b = StateBuilder::default()
        .version("1.2.0")
        .id(p.id.clone())
        .status(status)
        .bundle(p.bundle.clone())
        .annotations(p.annotations.clone());
    if status != ContainerState::Stopped && p.pid > 0 {
        b = b.pid(p.pid);
    }
    b.build().map_err(|e| Error::State {
        id: p.id.clone(),
        reason: e.to_string(),
    })
}

pub(crate) fn annotations(spec: &Spec) -> HashMap<String, String> {
    spec.annotations().clone().unwrap_or_default()
}
