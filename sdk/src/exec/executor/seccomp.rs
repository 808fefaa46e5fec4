//! `seccomp(2)`: no_new_privs, the filter, and the hand-over of its
//! user-notification descriptor to the parent.

use libc::c_int;

use super::super::sys::{self, SysResult};
use super::super::Report;
use super::{await_byte, report_kind, Fd};
use crate::security::seccomp::Filter;

/// `Step::NoNewPrivileges`.
pub(super) fn no_new_privileges() -> SysResult<()> {
    sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).map(drop)
}

/// The `struct sock_fprog` of a program of 8-byte `struct sock_filter`s
/// (a trailing partial one is not counted).
fn sock_fprog(program: &[u8]) -> sys::SockFprog {
    sys::SockFprog {
        len: (program.len() / 8) as u16,
        filter: program.as_ptr(),
    }
}

/// `Step::Seccomp`: loads the filter; with a listener, sends the parent
/// the notify descriptor and waits for its go-ahead.
pub(super) fn load(sync: c_int, f: &Filter) -> SysResult<()> {
    let prog = sock_fprog(&f.program);
    let fd = sys::seccomp_filter(f.flags, &prog)?;
    if f.flags & crate::security::seccomp::FLAG_NEW_LISTENER != 0 {
        // The parent passes the descriptor on to the listener;
        // ours closes here (the kernel made it close-on-exec).
        let fd = Fd(fd);
        report_kind(sync, Report::SECCOMP, Some(fd.0));
        await_byte(sync)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_counts_whole_instructions() {
        assert_eq!(sock_fprog(&[]).len, 0);
        assert_eq!(sock_fprog(&[0; 8]).len, 1);
        assert_eq!(sock_fprog(&[0; 15]).len, 1);
        assert_eq!(sock_fprog(&[0; 16]).len, 2);
        // BPF_MAXINSNS, the kernel's limit.
        assert_eq!(sock_fprog(&[0; 4096 * 8]).len, 4096);
        let p = [0u8; 24];
        assert_eq!(sock_fprog(&p).filter, p.as_ptr());
    }
}
