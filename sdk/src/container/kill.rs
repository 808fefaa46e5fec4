//! `kill` and `kill_all`: signals to the container's processes.

use std::os::fd::AsRawFd;

use nix::sys::signal::Signal;

use super::Container;
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::exec::sys;
use crate::state::{self};

impl Container {
    /// Sends `signal` to the container's first process.
    ///
    /// Through the pidfd when this handle has one, so a recycled pid can
    /// never receive it.
    pub fn kill(&self, signal: Signal) -> Result<()> {
        let p = self.require_live("kill")?;
        let sig = signal as libc::c_int;
        let r = match &self.inner.pidfd {
            Some(pidfd) => sys::pidfd_send_signal(pidfd.as_raw_fd(), sig),
            None if state::is_alive(p.pid, p.pid_start_time) => sys::kill(p.pid, sig),
            None => Err(libc::ESRCH),
        };
        r.map_err(|e| Error::sys("kill", std::io::Error::from_raw_os_error(e)))
    }

    /// Sends `signal` to every process in the container's cgroup, child
    /// cgroups included, freezing it meanwhile so that none can fork away
    /// (see [`Cgroup::kill_all`]).
    pub async fn kill_all(&self, signal: Signal) -> Result<()> {
        let p = self.load()?;
        Cgroup::open(&p.cgroup_path)?.kill_all(signal).await
    }
}
