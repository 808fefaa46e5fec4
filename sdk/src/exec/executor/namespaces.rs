//! Namespaces: `setns` into those the plan joins, `unshare` of the cgroup
//! and time namespaces, and the loopback device of a new network
//! namespace (netdevice ioctls).

use libc::c_int;

use super::super::sys::{self, SysResult};
use super::fds::Fds;
use super::{report, write_file, Fd, Report};
use crate::plan::{CPath, Namespace};

/// `Step::JoinNamespace`: `setns` into `plan.joins[index]` (a missing
/// descriptor, -1, fails the call).
pub(super) fn join(fds: &Fds, index: usize, ns: Namespace) -> SysResult<()> {
    let fd = fds.joins.get(index).copied().unwrap_or(-1);
    sys::setns(fd, ns.clone_flag() as c_int)
}

/// `Step::ForkIntoPidNamespace`: after `setns` into a pid namespace, a
/// fork puts the new process in it. The new process (the parent's child,
/// through `CLONE_PARENT`) returns and goes on with the plan; this one
/// reports its pid and pidfd to the parent and exits.
pub(super) fn fork_into_pid_namespace(sync: c_int) -> SysResult<()> {
    let mut pidfd: c_int = -1;
    let pid = sys::fork_sibling(&mut pidfd)?;
    if pid == 0 {
        return Ok(());
    }
    report(
        sync,
        Report {
            kind: Report::FORKED,
            step: pid as u32,
            errno: 0,
            _pad: 0,
        },
        Some(pidfd),
    );
    sys::exit_group(0)
}

/// `Step::UnshareCgroup`.
pub(super) fn unshare_cgroup() -> SysResult<()> {
    sys::unshare(libc::CLONE_NEWCGROUP)
}

/// `Step::UnshareTime`: a new time namespace, entered at `execve`, with
/// its clocks' offsets.
pub(super) fn unshare_time(offsets: Option<&CPath>) -> SysResult<()> {
    sys::unshare(libc::CLONE_NEWTIME)?;
    match offsets {
        // The host's /proc still: the mounts come later.
        Some(o) => write_file(c"/proc/self/timens_offsets", o.as_c().to_bytes()),
        None => Ok(()),
    }
}

/// `Step::LoopbackUp`: `lo` up (`SIOCSIFFLAGS` with `IFF_UP`).
pub(super) fn loopback_up() -> SysResult<()> {
    let sock = Fd(sys::socket(
        libc::AF_INET,
        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
        0,
    )?);
    // SAFETY: ifreq is plain data; zeroed is a valid empty request.
    let mut ifr: libc::ifreq = unsafe { core::mem::zeroed() };
    ifr.ifr_name[0] = b'l' as libc::c_char;
    ifr.ifr_name[1] = b'o' as libc::c_char;
    sys::ioctl(
        sock.0,
        libc::SIOCGIFFLAGS,
        &mut ifr as *mut libc::ifreq as usize,
    )?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member of the union.
    unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    sys::ioctl(
        sock.0,
        libc::SIOCSIFFLAGS,
        &ifr as *const libc::ifreq as usize,
    )
    .map(drop)
}
