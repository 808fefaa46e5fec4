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
        let lock = super::phase("start.lock", self.lock()).await?;
        let mut p = self.load()?;
        let status = self.status_of(&p);
        if status != Status::Created {
            return Err(Error::InvalidState {
                id: p.id,
                status: status.to_string(),
                op: "start",
            });
        }
        let hooks = self.hooks()?;
        if let Some(h) = hooks.as_deref() {
            let list = h.start_container().as_deref().unwrap_or_default();
            if !list.is_empty() {
                let state = self.hook_state(ContainerState::Created)?;
                let place = Where::Container {
                    pid: p.pid,
                    env: hooks::process_env(&self.spec_now()?),
                };
                if let Err(e) = hooks::run("startContainer", list, &state, &place).await {
                    self.stop_after_failed_hook().await;
                    return Err(e);
                }
            }
        }

        // Recorded before the release: a process that exits at once may be
        // reaped, and its exit status recorded, before this call returns;
        // an events stream must see the start before that exit.
        p.status = Status::Running;
        let dir = self.inner.dir.clone();
        let id = p.id.clone();
        let released = super::blocking(move || {
            p.save(&dir)?;
            if let Err(e) = super::journal::record(&dir, Event::Started) {
                tracing::warn!(error = %e, "could not record a lifecycle event");
            }
            release(&dir, &id)
        });
        super::phase("start.release", released).await?;
        drop(lock);

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
