//! `kill` and `kill_all`: signals to the container's processes.

use std::os::fd::AsRawFd;

use nix::sys::signal::Signal;

use super::Container;
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::exec::sys;

impl Container {
    /// Sends `signal` to the container's first process.
    ///
    /// Always through a pidfd (the supervisor's in the creating process,
    /// else one opened and checked at attach), so a recycled pid can never
    /// receive it.
    pub fn kill(&self, signal: Signal) -> Result<()> {
        self.require_live("kill")?;
        let sig = signal as libc::c_int;
        let r = match (&self.inner.supervisor, &self.inner.pidfd) {
            (Some(s), _) => sys::pidfd_send_signal(s.pidfd().as_raw_fd(), sig),
            (None, Some(pidfd)) => sys::pidfd_send_signal(pidfd.as_raw_fd(), sig),
            (None, None) => Err(libc::ESRCH),
        };
        r.map_err(|e| Error::sys("kill", std::io::Error::from_raw_os_error(e)))
    }

    /// Sends `signal` to every process in the container's cgroup, child
    /// cgroups included, freezing it meanwhile so that none can fork away
    /// (see [`Cgroup::kill_all`]).
    ///
    /// In a cgroup berth did not make (a `cgroupsPath` naming an existing
    /// one) other processes may live: then only the first process is
    /// signalled.
    pub async fn kill_all(&self, signal: Signal) -> Result<()> {
        let p = self.load()?;
        if !p.owns_cgroup() {
            return self.kill(signal);
        }
        let cgroup = Cgroup::open(&p.cgroup_path)?;
        // To the end even if dropped: never left frozen.
        super::to_completion(async move { cgroup.kill_all(signal).await }).await
    }
}
