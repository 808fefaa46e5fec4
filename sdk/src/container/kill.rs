//! `kill` and `kill_all`: signals to the container's processes.

use std::os::fd::AsRawFd;

use crate::Signal;

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
        let sig = signal.number();
        let r = match (&self.inner.supervisor, &self.inner.pidfd) {
            (Some(s), _) => sys::pidfd_send_signal(s.pidfd().as_raw_fd(), sig),
            (None, Some(pidfd)) => sys::pidfd_send_signal(pidfd.as_raw_fd(), sig),
            (None, None) => Err(libc::ESRCH),
        };
        r.map_err(|e| Error::sys("kill", std::io::Error::from_raw_os_error(e)))
    }

    /// Sends `signal` to every process in the container's cgroup, child
    /// cgroups included, freezing it meanwhile so that none can fork away
    /// (or one write to `cgroup.kill` for `SIGKILL` where the kernel has it).
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

/// Whether `pid` (started at `start_time`) is on its way out: exiting
/// (`PF_EXITING`) or with a `SIGKILL` pending, which nothing can block. A
/// killed process stays visible for a moment after `kill` returns; this
/// lets `delete` count it as stopped rather than refuse it.
pub(super) fn dying(pid: i32, start_time: u64) -> bool {
    const PF_EXITING: u64 = 0x4;
    const SIGKILL_BIT: u64 = 1 << (libc::SIGKILL - 1);
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // Field 9 (flags) and 22 (starttime), counted after the command name.
    let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
        return true;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    if field(22) != Some(start_time) {
        return true;
    }
    if field(9).is_some_and(|flags| flags & PF_EXITING != 0) {
        return true;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    status.lines().any(|l| {
        let pending = l
            .strip_prefix("SigPnd:")
            .or_else(|| l.strip_prefix("ShdPnd:"));
        pending
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & SIGKILL_BIT != 0)
    })
}
