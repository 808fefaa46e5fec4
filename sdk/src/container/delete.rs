//! `delete`: remove a stopped container (or, forced, stop it first).

use std::os::fd::AsRawFd;

use oci_spec::runtime::ContainerState;

use super::Container;
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::exec::sys;
use crate::extension::Release;
use crate::hooks;
use crate::state::Status;

impl Container {
    /// Deletes a stopped container: its cgroup, its state, and what its
    /// extensions made. A container that is created or running is refused
    /// ([`Error::InvalidState`]), as the OCI runtime spec requires; see
    /// [`force_delete`](Self::force_delete).
    ///
    /// Runs under the container's state lock. Dropping the future does not
    /// stop the delete: it runs in a task of its own to the end.
    pub async fn delete(&self) -> Result<()> {
        let me = self.clone();
        super::to_completion(async move { me.delete_now(false).await }).await
    }

    /// Kills the container's processes, then deletes it as
    /// [`delete`](Self::delete) does (`runc delete --force`).
    ///
    /// A container whose creator died mid-way ([`Status::Creating`]) is
    /// removed completely: what its state directory records it owns.
    /// Processes are signalled through the first process's pidfd and, only
    /// in a cgroup berth made, through the cgroup (`cgroup.kill`, or
    /// freeze, signal, thaw), never by a pid read earlier; a `cgroupsPath`
    /// naming a cgroup that existed before is left as it was, with its
    /// other processes.
    pub async fn force_delete(&self) -> Result<()> {
        let me = self.clone();
        super::to_completion(async move { me.delete_now(true).await }).await
    }

    async fn delete_now(&self, force: bool) -> Result<()> {
        let _lock = super::phase("delete.lock", self.lock()).await?;
        let p = self.load()?;
        let mut status = self.status_of(&p);
        // (A frozen process dies only once thawed: a paused one is not.)
        if matches!(status, Status::Created | Status::Running)
            && super::kill::dying(p.pid, p.pid_start_time)
        {
            // Killed a moment ago: as good as stopped; waited for below.
            status = Status::Stopped;
        }
        let owned = p.owns_cgroup();
        if status != Status::Stopped {
            if !force {
                return Err(Error::InvalidState {
                    id: p.id,
                    status: status.to_string(),
                    op: "delete (use force)",
                });
            }
            self.kill_first(libc::SIGKILL);
            if owned {
                // Processes outside the first one's pid namespace too; thaws
                // a paused container (a frozen process never dies).
                let _ = Cgroup::open(&p.cgroup_path)?
                    .kill_all(crate::Signal::KILL)
                    .await;
            }
        }
        // Reaped (here, by the supervisor) or gone, so no zombie is left
        // behind.
        match (&self.inner.supervisor, &self.inner.pidfd) {
            (Some(_), _) => {
                let _ = super::phase("delete.wait", self.wait()).await;
            }
            (None, Some(pidfd)) => super::wait::exited(pidfd).await?,
            (None, None) => {}
        }
        let mut errors = Vec::new();
        if owned {
            let cgroup = Cgroup::open(&p.cgroup_path)?;
            // Children that escaped the pid namespace's end (shared pid ns):
            // frozen while signalled, so no pid is reused meanwhile.
            // (Most often none: a freeze and thaw of an empty cgroup would
            // only cost time.)
            if cgroup.exists() && cgroup.pids().is_ok_and(|p| !p.is_empty()) {
                let _ = cgroup.kill_all(crate::Signal::KILL).await;
            }
            let parents = p.cgroup_parents_owned();
            let removed = cgroup.delete_with_parents(parents);
            if let Err(e) = super::phase("delete.cgroup", removed).await {
                errors.push(e);
            }
        }
        if let Ok(Some(h)) = self.hooks() {
            let list = h.poststop().as_deref().unwrap_or_default();
            if !list.is_empty() {
                if let Ok(state) = self.hook_state(ContainerState::Stopped) {
                    hooks::run_logged("poststop", list, &state).await;
                }
            }
        }
        // Mounts made in the host's namespace (a spec without a mount
        // namespace of its own) sit on the rootfs an extension may have
        // mounted: they go first. Without extensions, one blocking stage
        // for all the files.
        let dir = self.inner.dir.clone();
        if !p.extensions.is_empty() {
            let d = dir.clone();
            if let Err(e) = super::blocking(move || super::host_mounts::release(&d)).await {
                errors.push(e);
            }
            self.release_extensions(&p.id, &p.extensions, &mut errors)
                .await;
        }
        // The state goes last, unless something failed (it stays, so a
        // later delete can finish the job).
        let host_mounts_left = p.extensions.is_empty();
        let cleaned = super::blocking(move || {
            if host_mounts_left {
                if let Err(e) = super::host_mounts::release(&dir) {
                    errors.push(e);
                }
            }
            match errors.into_iter().next() {
                Some(e) => Err(e),
                None => crate::state::remove_dir(&dir),
            }
        });
        super::phase("delete.files", cleaned).await?;
        super::supervisor::unregister(&self.inner.dir);
        Ok(())
    }

    /// Lets each extension the container was made with release what it
    /// made, the last recorded first.
    async fn release_extensions(&self, id: &str, names: &[String], errors: &mut Vec<Error>) {
        for name in names.iter().rev() {
            let released = match crate::extension::find(&self.inner.extensions, name) {
                Ok(ext) => {
                    let cx = Release {
                        id,
                        state_dir: &self.inner.dir,
                    };
                    super::phase("delete.extension", ext.release(cx)).await
                }
                Err(_) => Err(Error::Unsupported(format!(
                    "the container was made with extension {name:?}, which this runtime does not \
                     have (Config::extensions): its state stays until a runtime with it deletes it"
                ))),
            };
            if let Err(e) = released {
                errors.push(e);
            }
        }
    }

    /// SIGKILLs (or signals) the first process through its pidfd, if it
    /// is alive; never a bare pid.
    pub(super) fn kill_first(&self, sig: libc::c_int) {
        let fd = match (&self.inner.supervisor, &self.inner.pidfd) {
            (Some(s), _) => s.pidfd().as_raw_fd(),
            (None, Some(fd)) => fd.as_raw_fd(),
            (None, None) => return,
        };
        let _ = sys::pidfd_send_signal(fd, sig);
    }
}
