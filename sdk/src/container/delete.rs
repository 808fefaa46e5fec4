//! `delete`: remove a stopped container (or, forced, stop it first).

use nix::sys::signal::Signal;
use oci_spec::runtime::ContainerState;

use super::Container;
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::hooks;
use crate::state::Status;

impl Container {
    /// Deletes the container: its cgroup, its state, and with `force` its
    /// processes. Without `force`, a container that is created or running
    /// is refused, as the OCI runtime spec requires.
    pub async fn delete(&self, force: bool) -> Result<()> {
        let p = self.load()?;
        let mut status = self.status_of(&p);
        // (A frozen process dies only once thawed: a paused one is not.)
        if matches!(status, Status::Created | Status::Running)
            && super::kill::dying(p.pid, p.pid_start_time)
        {
            // Killed a moment ago: as good as stopped; waited for below.
            status = Status::Stopped;
        }
        if status != Status::Stopped {
            if !force {
                return Err(Error::InvalidState {
                    id: p.id,
                    status: status.to_string(),
                    op: "delete (use force)",
                });
            }
            // Processes outside the first one's pid namespace too.
            let _ = self.kill(Signal::SIGKILL);
            // Thaws a paused container too: a frozen process never dies.
            let _ = self.kill_all(Signal::SIGKILL).await;
        }
        if self.inner.is_parent {
            // Reap, so no zombie is left behind.
            let _ = self.wait().await;
        } else if let Some(pidfd) = &self.inner.pidfd {
            super::wait::exited(pidfd).await?;
        }
        let cgroup = Cgroup::open(&p.cgroup_path)?;
        // Children that escaped the pid namespace's end (shared pid ns).
        for pid in cgroup.pids().unwrap_or_default() {
            let _ = crate::exec::sys::kill(pid, libc::SIGKILL);
        }
        cgroup.delete().await?;
        if let Ok(spec) = self.spec() {
            if let Some(h) = spec.hooks() {
                let list = h.poststop().as_deref().unwrap_or_default();
                if !list.is_empty() {
                    if let Ok(state) = self.hook_state(ContainerState::Stopped) {
                        hooks::run_logged("poststop", list, &state).await;
                    }
                }
            }
        }
        crate::network::release(&self.inner.dir, &p.id).await?;
        super::host_mounts::release(&self.inner.dir)?;
        // A container made from an image: its overlay and writable layer.
        crate::image::snapshot::release(&self.inner.dir)?;
        std::fs::remove_dir_all(&self.inner.dir)
            .map_err(|e| Error::io("remove state directory", &self.inner.dir, e))?;
        Ok(())
    }

    pub(crate) async fn delete_forced(&self) -> Result<()> {
        self.delete(true).await
    }
}
