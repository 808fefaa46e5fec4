//! The process itself: signal dispositions, scheduling, its `/proc` files
//! (sysctls and LSM labels, through the private procfs), the working
//! directory, the executable's lookup, the wait for `start` and `execve`.

use core::ffi::CStr;
use libc::c_int;

use super::super::sys::{self, Errno, OpenHow, SysResult};
use super::super::Report;
use super::resolve::no_magic_links;
use super::{await_byte, proc_fd_path, report_kind, write_file, Executor, Fd, AT_FDCWD};
use crate::plan::SchedAttr;

/// The signals `Step::ResetSignals` sets back to their default: all but
/// `SIGKILL` and `SIGSTOP`, whose dispositions cannot change.
fn resettable_signals() -> impl Iterator<Item = c_int> {
    (1..=64).filter(|&sig| sig != libc::SIGKILL && sig != libc::SIGSTOP)
}

/// `Step::ResetSignals`: every disposition to its default, and the umask
/// to 0 (modes of created nodes are exact). Returns the caller's umask,
/// kept for the process unless the spec sets one.
pub(super) fn reset_signals() -> u32 {
    for sig in resettable_signals() {
        // 32 and 33 may be refused on some kernels; nothing
        // can be pending on them here.
        let _ = sys::reset_signal(sig);
    }
    sys::umask(0)
}

/// `Step::Scheduler`: `sched_setattr` with the spec's attributes.
/// `Step::OomScoreAdj`: writes `value` to `/proc/self/oom_score_adj`.
pub(super) fn oom_score_adj(value: i32) -> SysResult<()> {
    let mut buf = [0u8; 12];
    write_file(c"/proc/self/oom_score_adj", decimal(value, &mut buf))
}

/// `value` in decimal, in `buf` (an i32 takes at most 11 bytes).
fn decimal(value: i32, buf: &mut [u8; 12]) -> &[u8] {
    let mut v = value.unsigned_abs();
    let mut at = buf.len();
    loop {
        at = at.saturating_sub(1);
        if let Some(b) = buf.get_mut(at) {
            *b = b'0'.wrapping_add((v % 10) as u8);
        }
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if value < 0 {
        at = at.saturating_sub(1);
        if let Some(b) = buf.get_mut(at) {
            *b = b'-';
        }
    }
    buf.get(at..).unwrap_or_default()
}

pub(super) fn scheduler(s: &SchedAttr) -> SysResult<()> {
    sys::sched_setattr(&sys::SchedAttr {
        size: core::mem::size_of::<sys::SchedAttr>() as u32,
        policy: s.policy,
        flags: s.flags,
        nice: s.nice,
        priority: s.priority,
        runtime: s.runtime,
        deadline: s.deadline,
        period: s.period,
        util_min: 0,
        util_max: 0,
    })
}

/// `path` relative to `/proc/`, if it is under it.
fn under_proc(path: &CStr) -> Option<&CStr> {
    let bytes = path.to_bytes_with_nul();
    if !bytes.starts_with(b"/proc/") {
        return None;
    }
    // SAFETY: a suffix of a NUL-terminated string with no NUL inside.
    Some(unsafe { CStr::from_bytes_with_nul_unchecked(bytes.get(6..).unwrap_or(b"\0")) })
}

/// Whether what `getcwd` wrote into `buf` is a path: the kernel writes
/// `(unreachable)…` for a cwd outside the process's root.
fn reachable(buf: &[u8]) -> bool {
    buf.first() == Some(&b'/')
}

impl Executor<'_> {
    /// `Step::ChdirAsRoot`: failure is not final; a directory only the
    /// process's own user may enter is tried again after the switch.
    pub(super) fn chdir_as_root(&mut self, cwd: &CStr) {
        self.cwd_done = self.chdir_inside(cwd).is_ok();
        if !self.cwd_done {
            self.cwd_prechecked = no_magic_links(cwd);
        }
    }

    /// `Step::Chdir`, unless `ChdirAsRoot` did it.
    pub(super) fn chdir(&mut self, cwd: &CStr) -> SysResult<()> {
        if self.cwd_done {
            return Ok(());
        }
        match self.chdir_inside(cwd) {
            // chdir succeeded; getcwd, after the filter, was refused.
            Err(e) if e != libc::EXDEV && e != libc::ERANGE && self.cwd_prechecked => {
                match sys::chdir(cwd) {
                    Ok(()) => Ok(()),
                    Err(_) => Err(e),
                }
            }
            r => r,
        }
    }

    /// `Step::FindExecutable`: the first candidate that may be executed.
    pub(super) fn find_executable(&mut self) -> SysResult<()> {
        let mut first_err = libc::ENOENT;
        for (i, c) in self.args.plan.exec.candidates.iter().enumerate() {
            match sys::faccessat(AT_FDCWD, c.as_c(), libc::X_OK) {
                Ok(()) => {
                    self.exe = i;
                    return Ok(());
                }
                Err(libc::ENOENT) | Err(libc::ENOTDIR) => {}
                Err(e) => first_err = e,
            }
        }
        Err(first_err)
    }

    /// `Step::AwaitStart`: tells the parent the container is created, then
    /// waits for `start` as `berth-waiter`, or (without one) on the FIFO.
    pub(super) fn await_start(&mut self) -> SysResult<()> {
        let a = self.args;
        let sync = self.fds.sync;
        report_kind(sync, Report::CREATED, None);
        if a.waiter >= 0 {
            if a.sabotage & super::super::SABOTAGE_WAITER == 0 {
                return Err(self.exec_waiter());
            }
            // Escape tests: wait as ourselves, but let `create`
            // return as if we had left (it waits for this EOF).
            let _ = sys::close(sync);
        }
        await_byte(self.fds.fifo)
    }

    /// `Step::Exec`: returns only on failure.
    pub(super) fn exec(&mut self) -> SysResult<()> {
        let a = self.args;
        sys::set_sigmask(0)?;
        let exe = a
            .plan
            .exec
            .candidates
            .get(self.exe)
            .ok_or(libc::ENOENT)?
            .as_c();
        Err(sys::execve(exe, a.argv.as_ptr(), a.envp.as_ptr()))
    }

    /// Leaves this process's memory and binary (the embedder's) for the
    /// sealed `berth-waiter`, which waits for `start` and then runs the
    /// container's program (see `exec::waiter`). Returns only on failure.
    fn exec_waiter(&self) -> Errno {
        let a = self.args;
        // The waiter inherits the FIFO and the report socket; the sync
        // socket stays close-on-exec, so its EOF tells the parent we left.
        for fd in [self.fds.fifo, self.fds.exec_report] {
            if let Err(e) = sys::fcntl(fd, libc::F_SETFD, 0) {
                return e;
            }
        }
        let Some(argv) = a.waiter_argv.get(self.exe) else {
            return libc::EINVAL;
        };
        let err = sys::execveat_fd(a.waiter, argv.as_ptr(), a.envp.as_ptr());
        // A seccomp profile without execveat (or a kernel before 3.19): the
        // same memfd by path, where the container has a /proc.
        let mut buf = [0u8; 32];
        match sys::execve(
            proc_fd_path(a.waiter, &mut buf),
            argv.as_ptr(),
            a.envp.as_ptr(),
        ) {
            libc::ENOENT => err,
            other => other,
        }
    }

    /// Writes `data` to `path` (`/proc/sys/...`) through the private
    /// procfs: what the container mounted over its own `/proc` (a file of
    /// the host bound onto a sysctl, say) cannot redirect the write
    /// (CVE-2025-52881). Without one, through `/proc`, refusing symlinks.
    pub(super) fn write_proc(&self, path: &CStr, data: &[u8]) -> SysResult<()> {
        let rel = match under_proc(path) {
            Some(rel) if self.procfd >= 0 => rel,
            _ => return write_file(path, data),
        };
        let how = OpenHow {
            flags: (libc::O_WRONLY | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: sys::RESOLVE_BENEATH
                | sys::RESOLVE_NO_XDEV
                | sys::RESOLVE_NO_SYMLINKS
                | sys::RESOLVE_NO_MAGICLINKS,
        };
        let fd = Fd(sys::openat2(self.procfd, rel, &how)?);
        if sys::write(fd.0, data)? != data.len() {
            return Err(libc::EIO);
        }
        Ok(())
    }

    /// `chdir`, then refuses a cwd outside the container's root: a cwd of
    /// `/proc/self/fd/<n>` would otherwise follow any descriptor still open
    /// here to wherever it leads on the host (CVE-2024-21626).
    fn chdir_inside(&self, cwd: &CStr) -> SysResult<()> {
        sys::chdir(cwd)?;
        if self.args.sabotage & super::super::SABOTAGE_CWD != 0 {
            return Ok(());
        }
        // PATH_MAX: the kernel fails with ERANGE rather than truncate.
        let mut buf = [0u8; 4096];
        sys::getcwd(&mut buf)?;
        if reachable(&buf) {
            Ok(())
        } else {
            Err(libc::EXDEV)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_score_adj_is_written_in_decimal_without_allocating() {
        let mut buf = [0u8; 12];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(500, &mut buf), b"500");
        assert_eq!(decimal(-1000, &mut buf), b"-1000");
        assert_eq!(decimal(i32::MIN, &mut buf), b"-2147483648");
        assert_eq!(decimal(i32::MAX, &mut buf), b"2147483647");
    }

    #[test]
    fn every_signal_but_kill_and_stop_is_reset() {
        let sigs: Vec<_> = resettable_signals().collect();
        assert_eq!(sigs.len(), 62);
        assert_eq!(sigs.first(), Some(&1));
        assert_eq!(sigs.last(), Some(&64));
        assert!(!sigs.contains(&libc::SIGKILL));
        assert!(!sigs.contains(&libc::SIGSTOP));
        assert!(sigs.contains(&libc::SIGPIPE));
        assert!(!sigs.contains(&0));
    }

    #[test]
    fn proc_writes_go_through_the_private_procfs_only_under_proc() {
        assert_eq!(
            under_proc(c"/proc/sys/net/ipv4/ip_forward"),
            Some(c"sys/net/ipv4/ip_forward")
        );
        assert_eq!(under_proc(c"/proc/self/attr/exec"), Some(c"self/attr/exec"));
        // The prefix alone: the procfs root itself.
        assert_eq!(under_proc(c"/proc/"), Some(c""));
        assert_eq!(under_proc(c"/proc"), None);
        assert_eq!(under_proc(c"/procfs/x"), None);
        assert_eq!(under_proc(c"proc/sys"), None);
        assert_eq!(under_proc(c"/sys/fs/cgroup"), None);
        assert_eq!(under_proc(c""), None);
    }

    #[test]
    fn a_cwd_is_reachable_only_as_an_absolute_path() {
        assert!(reachable(b"/srv\0"));
        assert!(reachable(b"/\0"));
        assert!(!reachable(b"(unreachable)/tmp\0"));
        assert!(!reachable(b"\0"));
        assert!(!reachable(b""));
    }
}
