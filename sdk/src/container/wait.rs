//! `wait`: the exit status, observed through the pidfd (never by polling).

use std::os::fd::OwnedFd;

use futures::FutureExt;
use nix::sys::inotify::AddWatchFlags;
use tokio::io::unix::AsyncFd;

use super::Container;
use crate::error::{Error, Result};
use crate::state::{ExitStatus, Persisted};

/// Waits until the process behind `pidfd` (not necessarily our child) has
/// exited.
pub(crate) async fn exited(pidfd: &AsyncFd<OwnedFd>) -> Result<()> {
    let _guard = pidfd
        .readable()
        .await
        .map_err(|e| Error::sys("wait for container exit", e))?;
    Ok(())
}

impl Container {
    /// Waits for the container's process to exit and returns how it ended.
    ///
    /// Any number of callers may wait at once; all get the same status.
    /// Dropping the future stops only this wait, never the container, and
    /// loses nothing: in the process that created the container a
    /// supervisor task reaps it and records the status whether or not
    /// anyone waits, and every handle from [`Runtime::get`](crate::Runtime::get)
    /// in that process shares it.
    ///
    /// Another process learns the status from the container's recorder:
    ///
    /// - for a detached container, its shim: this returns once the shim
    ///   has exited, after it recorded the status and drained the captured
    ///   output (see [`Container::logs`]);
    /// - else the creating process: once the container has exited, this
    ///   waits for the record while the creator lives, woken by the record
    ///   itself or by the creator's exit. A creator gone without recording
    ///   it (one that left its children to its own parent, as the CLI does)
    ///   makes this return [`Error::ExitStatusUnknown`].
    pub async fn wait(&self) -> Result<ExitStatus> {
        let inner = &self.inner;
        if let Some(sup) = &inner.supervisor {
            return sup.wait().await;
        }
        inner
            .exit
            .get_or_try_init(|| async {
                if let Some(pidfd) = &inner.pidfd {
                    exited(pidfd).await?;
                }
                self.recorded_exit().await
            })
            .await
            .copied()
    }

    /// Whether the container's exit is known now, without waiting: for a
    /// child of this process, whether its supervisor reaped it (a check of
    /// a flag, for the `StatsSampler`'s every member at every tick).
    pub(crate) fn exit_seen(&self) -> bool {
        match &self.inner.supervisor {
            Some(sup) => {
                sup.ensure();
                sup.is_done()
            }
            // Polled once: a recorded or observed exit is ready at once,
            // and dropping the wait is harmless.
            None => self.wait().now_or_never().is_some(),
        }
    }

    /// The exit status the recorder wrote, waiting for it while the
    /// recorder lives.
    async fn recorded_exit(&self) -> Result<ExitStatus> {
        let (dir, id) = (&self.inner.dir, &self.inner.id);
        let p = Persisted::load(dir, id)?;
        if let Some(shim) = p.shim {
            // A detached container: its shim exits once it has recorded
            // the status and drained the captured output.
            shim_exited(shim).await?;
            return Persisted::load(dir, id)?
                .exit_status
                .ok_or_else(|| unknown(id));
        }
        if let Some(status) = p.exit_status {
            return Ok(status);
        }
        let Some(recorder) = p.recorder else {
            return Err(unknown(id));
        };
        // Watch first, then look: a record made in between is not missed.
        let changes = crate::inotify::Watch::new(
            dir,
            AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_DELETE_SELF,
        )?;
        let recorder = match crate::exec::pidfd_open(recorder.pid) {
            Ok(fd) if recorder.is_alive() => {
                Some(crate::exec::register(fd).map_err(|e| Error::sys("register pidfd", e))?)
            }
            _ => None,
        };
        loop {
            if let Some(status) = crate::state::read_exit(dir) {
                return Ok(status);
            }
            let Some(recorder) = &recorder else {
                return Err(unknown(id));
            };
            tokio::select! {
                r = changes.changed() => r?,
                r = exited(recorder) => {
                    r?;
                    // It may have recorded just before exiting.
                    return crate::state::read_exit(dir).ok_or_else(|| unknown(id));
                }
            }
        }
    }
}

fn unknown(id: &str) -> Error {
    Error::ExitStatusUnknown { id: id.to_string() }
}

/// Waits until `shim` has exited (at once if it is gone).
async fn shim_exited(shim: crate::state::HostProcess) -> Result<()> {
    let fd = match crate::exec::pidfd_open(shim.pid) {
        // Alive after the open: the pidfd is the shim's, not a reused pid's.
        Ok(fd) if shim.is_alive() => fd,
        _ => return Ok(()),
    };
    let fd = crate::exec::register(fd).map_err(|e| Error::sys("register pidfd", e))?;
    exited(&fd).await
}
