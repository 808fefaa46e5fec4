//! `wait`: the exit status, observed through the pidfd (never by polling).

use std::os::fd::OwnedFd;

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
    /// Another process learns the status once the container's supervisor
    /// (its creator, or the shim of a detached container) recorded it; if
    /// that creator is gone without recording it, this returns
    /// [`Error::Unsupported`] once the container has exited.
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
                    self.shim_exited().await?;
                }
                self.recorded_exit()
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
