//! One owner per child process: a task that holds the pidfd, reaps the
//! child exactly once, records its exit and publishes it to any number of
//! observers.
//!
//! Handles ([`Container`](super::Container), [`ExecProcess`](super::ExecProcess))
//! only observe: dropping one, or any of their futures or streams, never
//! loses an exit status nor leaves a zombie. If the tokio runtime that ran
//! the task shuts down first, the next observer on another runtime starts a
//! new task (see [`Supervisor::ensure`]); a child whose every owner is
//! gone before its reap is reaped by a thread of its own.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use tokio::sync::watch;

use super::Launch;

/// Set by [`leave_children_to_parent`]: no supervisor reaps unless asked to
/// wait.
static LEAVE_TO_PARENT: AtomicBool = AtomicBool::new(false);

/// For a runc-style command line (`create`, `run -d`, `exec -d`): the
/// processes this process starts are left to its own parent (containerd's
/// shim, conmon: a child subreaper), which must see their exits. They are
/// reaped here only when this process waits for them itself
/// ([`crate::Container::wait`], a failed create); otherwise, when this
/// process exits, they pass to that parent, exited or not.
pub fn leave_children_to_parent() {
    LEAVE_TO_PARENT.store(true, Ordering::Relaxed);
}

pub(crate) fn leaving() -> bool {
    LEAVE_TO_PARENT.load(Ordering::Relaxed)
}
use crate::error::{Error, Result};
use crate::state::ExitStatus;

/// What a supervisor publishes: `None` while the child runs; then its exit
/// status, or the errno of a failed reap.
pub(crate) type Outcome = Option<std::result::Result<ExitStatus, i32>>;

/// The owner of one child process of this process.
#[derive(Debug)]
pub(crate) struct Supervisor {
    pid: i32,
    pidfd: OwnedFd,
    /// The container's state directory, where the exit is recorded; `None`
    /// for an exec'd process.
    dir: Option<PathBuf>,
    tx: watch::Sender<Outcome>,
    /// A task is watching the pidfd now.
    running: AtomicBool,
    /// Set the instant the child is reaped, before anything awaits, so
    /// that a task cancelled after the reap never reaps again.
    reaped: OnceLock<std::result::Result<ExitStatus, i32>>,
    /// Memory a shared-memory child may still use, freed once it is reaped
    /// (or seen to exec by `start`).
    pub(super) launch: tokio::sync::Mutex<Option<Launch>>,
    /// Started inside [`crate::blocking::on_caller`]: the exit is recorded
    /// on the thread that polls the watching task.
    record_on_caller: bool,
}

/// Supervisors of this process's containers, by state directory: any
/// `Runtime::get` in this process finds the one that can reap.
struct Registry {
    /// The process they are in. A child `fork`ed from it inherits a copy
    /// whose supervisors can neither reap (the children are its parent's)
    /// nor learn of an exit (the tasks that watch were its parent's):
    /// there they are none of its own.
    owner: u32,
    supervisors: HashMap<PathBuf, Arc<Supervisor>>,
}

/// The registry of this process, locked.
fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    let me = std::process::id();
    let mut registry = REGISTRY
        .get_or_init(|| {
            Mutex::new(Registry {
                owner: me,
                supervisors: HashMap::new(),
            })
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if registry.owner != me {
        // Forgotten, not dropped: a dropped supervisor that has not
        // reaped would start a thread to reap its parent's child.
        std::mem::forget(std::mem::take(&mut registry.supervisors));
        registry.owner = me;
    }
    registry
}

/// The supervisor of the container in `dir`, if this process is its parent.
pub(crate) fn lookup(dir: &Path) -> Option<Arc<Supervisor>> {
    registry().supervisors.get(dir).cloned()
}

/// Forgets the supervisor of the container in `dir` (on delete).
pub(crate) fn unregister(dir: &Path) {
    registry().supervisors.remove(dir);
}

/// Forgets supervisors whose child was reaped and whose state directory is
/// gone (a delete or failed create cut short by its runtime's shutdown),
/// so their pidfds do not stay open; makes sure one not reaped yet is
/// watched.
///
/// Only a reaped child's directory is looked at: a `stat` for every
/// container in flight at every registration made many starts at once
/// quadratic in the containers in flight.
pub(crate) fn prune() {
    registry().supervisors.retain(|dir, s| {
        if !s.is_done() {
            // Maybe no task watching (its runtime went): one on this
            // runtime reaps it, and a later prune forgets it.
            s.ensure();
            return true;
        }
        dir.join(crate::state::STATE_FILE).exists()
    });
}

impl Supervisor {
    /// Starts supervising the child behind `pidfd` on the current runtime.
    pub(crate) fn start(
        pid: i32,
        pidfd: OwnedFd,
        dir: Option<PathBuf>,
        launch: Option<Launch>,
    ) -> Arc<Supervisor> {
        let sup = Arc::new(Supervisor {
            pid,
            pidfd,
            dir,
            tx: watch::channel(None).0,
            running: AtomicBool::new(false),
            reaped: OnceLock::new(),
            launch: tokio::sync::Mutex::new(launch),
            record_on_caller: crate::blocking::is_on_caller(),
        });
        sup.ensure();
        sup
    }

    /// Makes this supervisor the one `Runtime::get` finds for its container.
    pub(crate) fn register(self: &Arc<Self>) {
        prune();
        if let Some(dir) = &self.dir {
            registry().supervisors.insert(dir.clone(), self.clone());
        }
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// The child's pidfd (for signals).
    pub(crate) fn pidfd(&self) -> &OwnedFd {
        &self.pidfd
    }

    /// The exit status, if the child was reaped.
    pub(crate) fn exited(&self) -> Option<ExitStatus> {
        self.reaped.get().and_then(|r| r.ok())
    }

    /// Whether the child was reaped (or reaping failed).
    pub(crate) fn is_done(&self) -> bool {
        // The exit is published only after `reaped` is set: a child not
        // reaped yet (what a sampler sees at every tick) is answered from
        // this struct, without the channel's lock on a line of its own.
        self.reaped.get().is_some() && self.tx.borrow().is_some()
    }

    /// Frees the launch memory handed over after the child was reaped
    /// (the task had nothing to free then).
    pub(crate) async fn release_if_reaped(&self) {
        if self.reaped.get().is_some() {
            if let Some(l) = self.launch.lock().await.take() {
                l.done();
            }
        }
    }

    /// Starts a task on the current runtime unless one is watching the
    /// pidfd already or the child was reaped. Without a runtime nothing
    /// happens: the next observer that has one does it.
    pub(crate) fn ensure(self: &Arc<Self>) {
        if leaving() {
            return;
        }
        self.watch();
    }

    /// [`Supervisor::ensure`], also for children left to our parent: for
    /// callers that wait for the exit.
    fn watch(self: &Arc<Self>) {
        // The load first: a watched child (the common case) costs no write.
        if self.running.load(Ordering::Acquire)
            || self.is_done()
            || self.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.running.store(false, Ordering::Release);
            return;
        };
        let guard = Running(self.clone());
        handle.spawn(async move {
            guard.0.supervise().await;
            drop(guard);
        });
    }

    /// Waits until the child is reaped and returns its exit status.
    pub(crate) async fn wait(self: &Arc<Self>) -> Result<ExitStatus> {
        self.watch();
        let mut rx = self.tx.subscribe();
        let outcome = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Error::sys("wait for exit", std::io::Error::other("supervisor gone")))?;
        match *outcome {
            Some(Ok(s)) => Ok(s),
            Some(Err(errno)) => Err(Error::sys(
                "waitid",
                std::io::Error::from_raw_os_error(errno),
            )),
            // `wait_for` returns only an outcome that is `Some`.
            None => Err(Error::sys(
                "wait for exit",
                std::io::Error::other("no outcome"),
            )),
        }
    }

    /// The task: wait for the pidfd to be readable, reap once, record,
    /// publish. Cancelled (runtime shutdown) before the reap, it leaves the
    /// child for the next task; after it, the next task only records and
    /// publishes.
    async fn supervise(self: &Arc<Self>) {
        let outcome = match self.reaped.get() {
            Some(o) => *o,
            None => {
                let o = self.reap().await;
                *self.reaped.get_or_init(|| o)
            }
        };
        let me = self.clone();
        let recorded = crate::blocking::run_on(self.record_on_caller, move || {
            if let (Some(dir), Ok(status)) = (&me.dir, outcome) {
                // A directory removed meanwhile (a failed create) needs
                // no record.
                if dir.join(crate::state::STATE_FILE).exists() {
                    if crate::exec::sabotage("slow-exit-record") {
                        // Tests of observers in other processes: the exit
                        // is visible well before it is recorded.
                        std::thread::sleep(std::time::Duration::from_millis(500));
                    }
                    if let Err(e) = crate::state::record_exit(dir, status) {
                        tracing::debug!(error = %e, "could not record exit status");
                    }
                }
            }
        })
        .await;
        if recorded.is_err() {
            return;
        }
        // The child is gone: memory it shared with us is free.
        if let Some(l) = self.launch.lock().await.take() {
            l.done();
        }
        self.tx.send_replace(Some(outcome));
        // Its state went before the exit: nothing will unregister it.
        if let Some(dir) = &self.dir {
            if !dir.join(crate::state::STATE_FILE).exists() {
                let mut registry = registry();
                let map = &mut registry.supervisors;
                if map.get(dir).is_some_and(|s| Arc::ptr_eq(s, self)) {
                    map.remove(dir);
                }
            }
        }
    }

    async fn reap(&self) -> std::result::Result<ExitStatus, i32> {
        let dup = self
            .pidfd
            .try_clone()
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EBADF))?;
        let fd = crate::exec::register(dup).map_err(|e| e.raw_os_error().unwrap_or(libc::EBADF))?;
        loop {
            let mut guard = fd
                .readable()
                .await
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
            match reap_now(fd.get_ref()) {
                Ok(None) => guard.clear_ready(),
                Ok(Some(s)) => return Ok(s),
                Err(errno) => return Err(errno),
            }
        }
    }
}

/// Reaps the child behind `pidfd` if it exited; `None` while it runs.
/// `__WALL`: berth's children have no exit signal, which makes them
/// "clone" children that a plain `waitid` does not see.
fn reap_now(pidfd: &OwnedFd) -> std::result::Result<Option<ExitStatus>, i32> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::__WALL;
    loop {
        return match waitid(Id::PIDFd(pidfd.as_fd()), flags) {
            Ok(WaitStatus::Exited(_, code)) => Ok(Some(ExitStatus::Exited(code))),
            Ok(WaitStatus::Signaled(_, sig, _)) => Ok(Some(ExitStatus::Signaled(sig as i32))),
            Ok(WaitStatus::StillAlive) => Ok(None),
            Ok(_) => Ok(None),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => Err(e as i32),
        };
    }
}

/// Marks the supervisor as watched while its task lives; a task dropped
/// with its runtime before the reap lets the next observer start another.
struct Running(Arc<Supervisor>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // The last reference went (with its runtime) before the reap.
        if self.reaped.get().is_none() && !leaving() {
            if let Ok(fd) = self.pidfd.try_clone() {
                reap_in_thread(fd, self.dir.clone());
            }
        }
    }
}

/// A child's pidfd not yet handed to a [`Supervisor`]: if the task that
/// cloned the child is cancelled first (a dropped future, a runtime shut
/// down), the child is still reaped.
#[derive(Debug)]
pub(crate) struct Unsupervised(Option<OwnedFd>);

impl Unsupervised {
    pub(crate) fn new(pidfd: OwnedFd) -> Unsupervised {
        Unsupervised(Some(pidfd))
    }

    /// The pidfd, for the supervisor that takes over.
    pub(crate) fn take(mut self) -> OwnedFd {
        match self.0.take() {
            Some(fd) => fd,
            // Only `take` empties it, and it consumes `self`.
            None => unreachable!("an Unsupervised always holds its pidfd until taken"),
        }
    }
}

impl Drop for Unsupervised {
    fn drop(&mut self) {
        if leaving() {
            return;
        }
        if let Some(fd) = self.0.take() {
            reap_in_thread(fd, None);
        }
    }
}

/// Reaps an unowned child on a thread of its own (as tokio's orphan
/// queue does for a dropped `Child`, without needing a runtime): such
/// children are rare, since only cancellation makes them, and a child
/// that lost its parent's end of the sync socket exits at once.
/// The exit is recorded in `dir` (if the container's state is still
/// there).
fn reap_in_thread(fd: OwnedFd, dir: Option<PathBuf>) {
    let spawned = std::thread::Builder::new()
        .name("berth-reaper".into())
        .spawn(move || {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::__WALL;
            let status = loop {
                match waitid(Id::PIDFd(fd.as_fd()), flags) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    Ok(WaitStatus::Exited(_, code)) => break Some(ExitStatus::Exited(code)),
                    Ok(WaitStatus::Signaled(_, sig, _)) => {
                        break Some(ExitStatus::Signaled(sig as i32))
                    }
                    _ => break None,
                }
            };
            if let (Some(dir), Some(status)) = (dir, status) {
                if dir.join(crate::state::STATE_FILE).exists() {
                    let _ = crate::state::record_exit(&dir, status);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread to reap an unowned child: it stays a zombie");
    }
}
