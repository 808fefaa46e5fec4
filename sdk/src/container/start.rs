//! `start`: release the created process into `execve`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use crate::Signal;
use oci_spec::runtime::ContainerState;

use super::create::init_error;
use super::spawn::recv;
use super::{Container, Event};
use crate::error::{Error, Result};
use crate::exec::Report;
use crate::hooks::{self, Where};
use crate::state::{self, Status};

impl Container {
    /// Starts the container's process (runs the user's program).
    ///
    /// Runs the `startContainer` hooks in the container's namespaces first
    /// and the `poststart` hooks after. When this process created the
    /// container, an `execve` failure is reported here as an error.
    ///
    /// A failing `startContainer` or `poststart` hook fails the start and
    /// stops the container, as the OCI runtime spec asks: its processes
    /// are killed, it reads `stopped` and [`Container::delete`] removes it.
    ///
    /// Exactly once: the check that the container is created, the hooks
    /// and the release happen under the container's state lock, so of any
    /// number of racing callers (in any processes) one starts it and the
    /// others get [`Error::InvalidState`].
    pub async fn start(&self) -> Result<()> {
        // The lock, the check and, without `startContainer` hooks, the
        // release: one blocking stage.
        let me = self.clone();
        let checked = super::blocking(move || {
            let lock = super::phase_now("start.lock", || {
                state::StateLock::acquire(&me.inner.dir, &me.inner.id)
            })?;
            let p = me.created_for_start()?;
            let hooks = me.hooks()?;
            if start_container_hooks(hooks.as_deref()).is_empty() {
                super::phase_now("start.release", || me.release_created(p))?;
                return Ok(None);
            }
            Ok(Some((lock, p)))
        })
        .await?;
        let hooks = self.hooks()?;
        if let Some((lock, p)) = checked {
            let state = self.hook_state(ContainerState::Created)?;
            let place = Where::Container {
                pid: p.pid,
                env: hooks::process_env(&self.spec_now()?),
            };
            let list = start_container_hooks(hooks.as_deref());
            if let Err(e) = hooks::run("startContainer", list, &state, &place).await {
                self.stop_after_failed_hook().await;
                return Err(e);
            }
            let me = self.clone();
            let released = super::blocking(move || me.release_created(p));
            super::phase("start.release", released).await?;
            drop(lock);
        }

        if let Some(sup) = &self.inner.supervisor {
            let mut launch = sup.launch.lock().await;
            if let Some(l) = launch.as_ref() {
                // EOF: the sync socket closed on execve (or the process died).
                if let Some((report, _)) = super::phase("start.exec", recv(&l.sync)).await? {
                    if report.kind == Report::FAILED {
                        return Err(init_error(&l.plan, report));
                    }
                }
                // The child no longer uses our memory.
                if let Some(l) = launch.take() {
                    l.done();
                }
            }
        }

        if let Some(h) = hooks.as_deref() {
            let list = h.poststart().as_deref().unwrap_or_default();
            if !list.is_empty() {
                let state = self.hook_state(ContainerState::Running)?;
                if let Err(e) = hooks::run("poststart", list, &state, &Where::Runtime).await {
                    self.stop_after_failed_hook().await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The record of a container that is created; an error naming its
    /// status otherwise. Blocking, under the state lock.
    fn created_for_start(&self) -> Result<state::Persisted> {
        let p = self.load()?;
        let status = self.status_of(&p);
        if status != Status::Created {
            return Err(Error::InvalidState {
                id: p.id,
                status: status.to_string(),
                op: "start",
            });
        }
        Ok(p)
    }

    /// Records the start, then lets the process `execve`. Recorded before
    /// the release: a process that exits at once may be reaped, and its
    /// exit status recorded, before `start` returns; an events stream must
    /// see the start before that exit. Blocking, under the state lock.
    fn release_created(&self, mut p: state::Persisted) -> Result<()> {
        p.status = Status::Running;
        let dir = &self.inner.dir;
        p.save(dir)?;
        if let Err(e) = super::journal::record(dir, Event::Started) {
            tracing::warn!(error = %e, "could not record a lifecycle event");
        }
        release(dir, &p.id)
    }

    /// Kills every process of the container and returns once its first
    /// one is gone (reaped, when this process is its parent).
    async fn stop_after_failed_hook(&self) {
        let _ = self.kill(Signal::KILL);
        let _ = self.kill_all(Signal::KILL).await;
        if self.inner.supervisor.is_some() {
            let _ = self.wait().await;
        } else if let Some(pidfd) = &self.inner.pidfd {
            let _ = super::wait::exited(pidfd).await;
        }
    }
}

/// The `startContainer` hooks of `hooks`.
fn start_container_hooks(hooks: Option<&oci_spec::runtime::Hooks>) -> &[oci_spec::runtime::Hook] {
    hooks
        .and_then(|h| h.start_container().as_deref())
        .unwrap_or_default()
}

/// Opens the exec fifo and writes the byte that lets the container's
/// process `execve`; then removes the fifo. Blocking (file work).
fn release(dir: &std::path::Path, id: &str) -> Result<()> {
    {
        let fifo = dir.join(state::EXEC_FIFO);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .map_err(|e| match e.raw_os_error() {
                // No reader: the process is gone.
                Some(libc::ENXIO) | Some(libc::ENOENT) => Error::InvalidState {
                    id: id.to_string(),
                    status: Status::Stopped.to_string(),
                    op: "start",
                },
                _ => Error::io("open exec fifo", &fifo, e),
            })?;
        f.write_all(b"s")
            .map_err(|e| Error::io("write exec fifo", &fifo, e))?;
        drop(f);
        let _ = std::fs::remove_file(&fifo);
        Ok(())
    }
}
