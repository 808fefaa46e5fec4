//! The pseudo-terminal: a pty from the container's `/dev/ptmx` (`TIOCSPTLCK`,
//! `TIOCGPTN`, `TIOCGPTPEER`, `TIOCSWINSZ`, `TIOCSCTTY`), bound onto
//! `/dev/console`, its master sent to the parent.

use core::ffi::CStr;
use libc::c_int;

use super::super::sys::{self, SysResult};
use super::super::Report;
use super::mounts::bind_fds;
use super::{proc_path, report_kind, Fd, AT_FDCWD, PATH_CLOEXEC};

/// `Step::Console`.
pub(super) fn console(
    sync: c_int,
    size: Option<(u16, u16)>,
    bind_console: bool,
    sabotage: u32,
    procfd: c_int,
) -> SysResult<()> {
    let master = Fd(sys::openat(
        AT_FDCWD,
        c"/dev/ptmx",
        libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        0,
    )?);
    let unlock: c_int = 0;
    sys::ioctl(master.0, libc::TIOCSPTLCK, &unlock as *const c_int as usize)?;
    let mut n: libc::c_uint = 0;
    sys::ioctl(
        master.0,
        libc::TIOCGPTN,
        &mut n as *mut libc::c_uint as usize,
    )?;
    let slave = sys::ioctl(
        master.0,
        libc::TIOCGPTPEER,
        (libc::O_RDWR | libc::O_NOCTTY) as usize,
    )? as c_int;
    let slave = Fd(slave);
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        sys::ioctl(
            slave.0,
            libc::TIOCSWINSZ,
            &ws as *const libc::winsize as usize,
        )?;
    }
    if bind_console {
        // /dev/console is the container's terminal, as on a real machine.
        let mut buf = [0u8; 32];
        let pts = proc_path(b"/dev/pts/", n, &mut buf);
        if sabotage & super::super::SABOTAGE_DEVICES != 0 {
            sys::mount(Some(pts), c"/dev/console", None, libc::MS_BIND, None)?;
        } else {
            bind_console_onto(slave.0, pts, procfd)?;
        }
    }
    report_kind(sync, Report::CONSOLE, Some(master.0));
    drop(master);
    sys::ioctl(slave.0, libc::TIOCSCTTY, 0)?;
    for target in 0..3 {
        sys::dup3(slave.0, target, 0)?;
    }
    Ok(())
}

/// Binds the terminal onto `/dev/console`: onto the file found there (or
/// made) and checked, through its descriptor, never through a symlink a
/// crafted image or a shared volume put there, which would bind the
/// terminal over whatever it names (CVE-2025-52565).
fn bind_console_onto(slave: c_int, pts: &CStr, procfd: c_int) -> SysResult<()> {
    let open = || {
        sys::openat(
            AT_FDCWD,
            c"/dev/console",
            PATH_CLOEXEC | libc::O_NOFOLLOW,
            0,
        )
    };
    let target = match open() {
        Err(libc::ENOENT) => {
            // O_EXCL with O_CREAT never follows a symlink; O_NOCTTY: a
            // node found in its place is not made our terminal.
            let flags = libc::O_CREAT
                | libc::O_EXCL
                | libc::O_WRONLY
                | libc::O_CLOEXEC
                | libc::O_NOFOLLOW
                | libc::O_NOCTTY;
            drop(Fd(sys::openat(AT_FDCWD, c"/dev/console", flags, 0o600)?));
            Fd(open()?)
        }
        r => Fd(r?),
    };
    // SAFETY: stat is plain data; zeroed is valid before fstat fills it.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    sys::fstat(target.0, &mut st)?;
    console_target(st.st_mode)?;
    bind_fds((slave, pts), (target.0, c"/dev/console"), procfd)
}

/// Whether a file of mode `mode` may have the terminal bound onto it as
/// `/dev/console`: a regular file or a character device; a symlink is
/// `ELOOP`, anything else `ENODEV`.
fn console_target(mode: libc::mode_t) -> SysResult<()> {
    match mode & libc::S_IFMT {
        libc::S_IFREG | libc::S_IFCHR => Ok(()),
        libc::S_IFLNK => Err(libc::ELOOP),
        _ => Err(libc::ENODEV),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_terminal_is_bound_only_onto_a_file_or_a_device() {
        assert_eq!(console_target(libc::S_IFREG | 0o600), Ok(()));
        assert_eq!(console_target(libc::S_IFCHR | 0o620), Ok(()));
        assert_eq!(console_target(libc::S_IFLNK | 0o777), Err(libc::ELOOP));
        assert_eq!(console_target(libc::S_IFDIR | 0o755), Err(libc::ENODEV));
        assert_eq!(console_target(libc::S_IFIFO | 0o600), Err(libc::ENODEV));
        assert_eq!(console_target(libc::S_IFSOCK), Err(libc::ENODEV));
        assert_eq!(console_target(libc::S_IFBLK), Err(libc::ENODEV));
    }
}
