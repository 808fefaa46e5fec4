//! `wait`: the exit status, observed through the pidfd (never by polling).

use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

use super::Container;
use crate::error::{Error, Result};
use crate::exec::sys::{self, Reaped};
use crate::state::{ExitStatus, Persisted, Status};

/// Waits until the child behind `pidfd` exits and reaps it.
pub(crate) async fn reap(pidfd: &AsyncFd<OwnedFd>) -> Result<ExitStatus> {
    loop {
        let mut guard = pidfd
            .readable()
            .await
            .map_err(|e| Error::sys("wait for container exit", e))?;
        match sys::waitid_pidfd(pidfd.as_raw_fd()) {
            Ok(Reaped::Running) => guard.clear_ready(),
            Ok(Reaped::Exited(code)) => return Ok(ExitStatus::Exited(code)),
            Ok(Reaped::Signaled(sig)) => return Ok(ExitStatus::Signaled(sig)),
            Err(errno) => {
                return Err(Error::sys(
                    "waitid",
                    std::io::Error::from_raw_os_error(errno),
                ))
            }
        }
    }
}

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
    /// Dropping the future stops only this wait, never the container.
    ///
    /// The exit status is known to the process that created the container
    /// (its parent). Another process that re-attached with
    /// [`Runtime::get`](crate::Runtime::get) learns it only if the parent
    /// recorded it; otherwise this returns [`Error::Unsupported`] once the
    /// container has exited.
    pub async fn wait(&self) -> Result<ExitStatus> {
        let inner = &self.inner;
        inner
            .exit
            .get_or_try_init(|| async {
                let status = match (&inner.pidfd, inner.is_parent) {
                    (Some(pidfd), true) => reap(pidfd).await?,
                    (Some(pidfd), false) => {
                        exited(pidfd).await?;
                        self.shim_exited().await?;
                        self.recorded_exit()?
                    }
                    (None, _) => self.recorded_exit()?,
                };
                // The child is gone: memory it shared with us is free.
                if inner.is_parent {
                    if let Some(l) = inner.launch.lock().await.take() {
                        l.done();
                    }
                }
                if let Ok(mut p) = Persisted::load(&inner.dir, &inner.id) {
                    p.status = Status::Stopped;
                    p.exit_status = Some(status);
                    if let Err(e) = p.save(&inner.dir) {
                        tracing::debug!(error = %e, "could not record exit status");
                    }
                }
                Ok(status)
            })
            .await
            .copied()
    }

    /// A detached container's shim records the exit status, then exits:
    /// wait for that.
    async fn shim_exited(&self) -> Result<()> {
        let Some(shim) = Persisted::load(&self.inner.dir, &self.inner.id)?.shim else {
            return Ok(());
        };
        if !crate::state::is_alive(shim.pid, shim.start_time) {
            return Ok(());
        }
        let Ok(fd) = crate::exec::pidfd_open(shim.pid) else {
            return Ok(());
        };
        let fd = crate::exec::register(fd).map_err(|e| Error::sys("register pidfd", e))?;
        exited(&fd).await
    }

    fn recorded_exit(&self) -> Result<ExitStatus> {
        Persisted::load(&self.inner.dir, &self.inner.id)?
            .exit_status
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "container {:?} has exited, but its exit status is known only to the process that created it",
                    self.inner.id
                ))
            })
    }
}
