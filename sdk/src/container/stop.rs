//! `stop`: the stop signal, a grace period, then SIGKILL to the cgroup.

use std::time::Duration;

use crate::Signal;

use super::Container;
use crate::error::{Error, Result};
use crate::state::{ExitStatus, Status};

/// The annotation (set from an image's `StopSignal`) naming the signal that
/// asks the container to stop.
pub const STOP_SIGNAL_ANNOTATION: &str = "org.opencontainers.image.stopSignal";

impl Container {
    /// Stops the container as `docker stop` does: sends its stop signal
    /// (the [`STOP_SIGNAL_ANNOTATION`] annotation, else `SIGTERM`) to its
    /// first process; if that has not exited after `grace`, SIGKILLs every
    /// process in its cgroup. Resolves with the exit status.
    ///
    /// A paused container is thawed first (a frozen process handles no
    /// signal); a created one, which never ran its program, is killed at
    /// once. Once the first process is gone, what is left in a cgroup berth
    /// made (processes outside its pid namespace) is killed too, so nothing
    /// of the container runs afterwards. Works from any process: the exit
    /// status comes as [`Container::wait`] gives it. A stopped container
    /// gives its recorded status at once.
    ///
    /// An annotation naming no signal is an [`Error::InvalidSpec`] and
    /// nothing is sent. Dropping the future does not cut the stop short:
    /// it runs in a task of its own to the end.
    ///
    /// ```no_run
    /// # async fn demo(ctr: berth::Container) -> berth::Result<()> {
    /// let status = ctr.stop(std::time::Duration::from_secs(10)).await?;
    /// println!("stopped: {status}");
    /// # Ok(()) }
    /// ```
    pub async fn stop(&self, grace: Duration) -> Result<ExitStatus> {
        let me = self.clone();
        super::to_completion(async move { me.stop_now(grace).await }).await
    }

    async fn stop_now(&self, grace: Duration) -> Result<ExitStatus> {
        let p = self.load()?;
        let status = self.status_of(&p);
        match status {
            Status::Stopped => return self.wait().await,
            Status::Creating => {
                return Err(Error::InvalidState {
                    id: p.id,
                    status: status.to_string(),
                    op: "stop (delete it with force)",
                })
            }
            _ => {}
        }
        let signal = stop_signal(&p.annotations)?;
        if status == Status::Paused {
            self.resume().await?;
        }
        if status == Status::Created {
            // Still in berth's code before execve, which has no handler
            // for the stop signal.
            self.kill_first(libc::SIGKILL);
            self.first_exited().await;
        } else {
            // Gone meanwhile is fine: the wait below says how it ended.
            let _ = self.kill(signal);
            if tokio::time::timeout(grace, self.first_exited())
                .await
                .is_err()
            {
                self.kill_first(libc::SIGKILL);
                if let Err(e) = self.kill_all(Signal::KILL).await {
                    tracing::debug!(error = %e, "SIGKILL to the cgroup");
                }
                self.first_exited().await;
            }
        }
        // Before the wait: a detached container's shim, which records the
        // status, exits only once every process it inherited is gone.
        self.kill_leftovers(&p).await;
        self.wait().await
    }

    /// Returns once the first process has exited (reaped, when this
    /// process is its parent).
    async fn first_exited(&self) {
        match (&self.inner.supervisor, &self.inner.pidfd) {
            (Some(s), _) => {
                let _ = s.wait().await;
            }
            (None, Some(fd)) => {
                let _ = super::wait::exited(fd).await;
            }
            (None, None) => {}
        }
    }

    /// Kills what is left in the container's own cgroup after its first
    /// process exited.
    async fn kill_leftovers(&self, p: &crate::state::Persisted) {
        if !p.owns_cgroup() {
            return;
        }
        let Ok(cgroup) = crate::cgroups::Cgroup::open(&p.cgroup_path) else {
            return;
        };
        if cgroup.exists() && cgroup.pids().is_ok_and(|pids| !pids.is_empty()) {
            let _ = super::to_completion(async move { cgroup.kill_all(Signal::KILL).await }).await;
        }
    }
}

/// The signal the annotations ask for, else SIGTERM: `SIGTERM`, `TERM` or
/// `15`.
fn stop_signal(annotations: &std::collections::HashMap<String, String>) -> Result<Signal> {
    let Some(name) = annotations.get(STOP_SIGNAL_ANNOTATION) else {
        return Ok(Signal::TERM);
    };
    name.trim().parse().map_err(|_| {
        Error::invalid(
            format!("annotations[{STOP_SIGNAL_ANNOTATION:?}]"),
            format!("{name:?} names no signal"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_by_name_or_number() {
        let with = |v: &str| {
            let mut m = std::collections::HashMap::new();
            m.insert(STOP_SIGNAL_ANNOTATION.to_string(), v.to_string());
            stop_signal(&m)
        };
        assert_eq!(stop_signal(&Default::default()).unwrap(), Signal::TERM);
        assert_eq!(with("SIGQUIT").unwrap(), Signal::QUIT);
        assert_eq!(with("int").unwrap(), Signal::INT);
        assert_eq!(with("10").unwrap(), Signal::USR1);
        let e = with("SIGNOPE").unwrap_err();
        assert!(e.to_string().contains("stopSignal"), "{e}");
        assert!(with("99").is_err());
    }
}
