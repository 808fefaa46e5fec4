//! Raw Linux system calls for the post-clone executor.
//!
//! The container's first process may share the parent's address space
//! (`CLONE_VM`) and therefore its thread-local storage. libc's wrappers write
//! `errno` (TLS) on failure, so calling them here would scribble on a parent
//! thread's state. These wrappers issue the `syscall` instruction directly and
//! return the error as a value; they touch nothing but their arguments.
//!
//! Every function here is safe to call after `clone`: no allocation, no locks.

#![allow(clippy::too_many_arguments)]

use core::arch::asm;
use core::ffi::CStr;
use libc::{c_int, c_long};

/// An errno value returned by the kernel.
pub(crate) type Errno = i32;
/// Result of a raw system call.
pub(crate) type SysResult<T> = Result<T, Errno>;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("berth's post-clone executor supports x86_64 and aarch64");

/// Issues system call `nr` with six arguments and returns the raw result.
///
/// # Safety
/// The caller must pass arguments valid for `nr` (pointers to live memory of
/// the right type and size).
#[inline(always)]
pub(crate) unsafe fn syscall6(
    nr: c_long,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
    a6: usize,
) -> isize {
    let ret: isize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the `syscall` instruction clobbers rcx and r11 only; the
    // caller vouches for the arguments.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a1, in("rsi") a2, in("rdx") a3,
            in("r10") a4, in("r8") a5, in("r9") a6,
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: `svc 0` preserves every register but x0; the caller vouches
    // for the arguments.
    unsafe {
        asm!(
            "svc 0",
            in("x8") nr as usize,
            inlateout("x0") a1 => ret,
            in("x1") a2, in("x2") a3, in("x3") a4, in("x4") a5, in("x5") a6,
            options(nostack),
        );
    }
    ret
}

#[inline(always)]
fn check(ret: isize) -> SysResult<usize> {
    if (-4095..0).contains(&ret) {
        Err(ret.wrapping_neg() as Errno)
    } else {
        Ok(ret as usize)
    }
}

macro_rules! sys {
    ($nr:expr) => { sys!(@ $nr, 0, 0, 0, 0, 0, 0) };
    ($nr:expr, $a:expr) => { sys!(@ $nr, $a, 0, 0, 0, 0, 0) };
    ($nr:expr, $a:expr, $b:expr) => { sys!(@ $nr, $a, $b, 0, 0, 0, 0) };
    ($nr:expr, $a:expr, $b:expr, $c:expr) => { sys!(@ $nr, $a, $b, $c, 0, 0, 0) };
    ($nr:expr, $a:expr, $b:expr, $c:expr, $d:expr) => { sys!(@ $nr, $a, $b, $c, $d, 0, 0) };
    ($nr:expr, $a:expr, $b:expr, $c:expr, $d:expr, $e:expr) => { sys!(@ $nr, $a, $b, $c, $d, $e, 0) };
    (@ $nr:expr, $a:expr, $b:expr, $c:expr, $d:expr, $e:expr, $f:expr) => {
        // SAFETY: each wrapper in this module passes arguments that match
        // the kernel's signature of the call; pointers come from references
        // or `CStr`s that outlive the call.
        check(unsafe {
            syscall6(
                $nr,
                $a as usize,
                $b as usize,
                $c as usize,
                $d as usize,
                $e as usize,
                $f as usize,
            )
        })
    };
}

fn opt_ptr(s: Option<&CStr>) -> usize {
    s.map_or(0, |s| s.as_ptr() as usize)
}

pub(crate) fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: u64,
    data: Option<&CStr>,
) -> SysResult<()> {
    sys!(
        libc::SYS_mount,
        opt_ptr(source),
        target.as_ptr(),
        opt_ptr(fstype),
        flags,
        opt_ptr(data)
    )
    .map(drop)
}

pub(crate) fn umount2(target: &CStr, flags: c_int) -> SysResult<()> {
    sys!(libc::SYS_umount2, target.as_ptr(), flags).map(drop)
}

pub(crate) fn pivot_root(new_root: &CStr, put_old: &CStr) -> SysResult<()> {
    sys!(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()).map(drop)
}

pub(crate) fn chroot(path: &CStr) -> SysResult<()> {
    sys!(libc::SYS_chroot, path.as_ptr()).map(drop)
}

pub(crate) fn chdir(path: &CStr) -> SysResult<()> {
    sys!(libc::SYS_chdir, path.as_ptr()).map(drop)
}

/// `getcwd` into `buf`; returns the length with the NUL. The kernel starts
/// the path with "(unreachable)" when the cwd is outside the root.
pub(crate) fn getcwd(buf: &mut [u8]) -> SysResult<usize> {
    sys!(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len())
}

pub(crate) fn fchdir(fd: c_int) -> SysResult<()> {
    sys!(libc::SYS_fchdir, fd).map(drop)
}

pub(crate) fn openat(dirfd: c_int, path: &CStr, flags: c_int, mode: u32) -> SysResult<c_int> {
    sys!(libc::SYS_openat, dirfd, path.as_ptr(), flags, mode).map(|fd| fd as c_int)
}

/// `struct open_how` of openat2(2).
#[repr(C)]
pub(crate) struct OpenHow {
    pub flags: u64,
    pub mode: u64,
    pub resolve: u64,
}

pub(crate) const RESOLVE_NO_XDEV: u64 = 0x01;
pub(crate) const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub(crate) const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub(crate) const RESOLVE_BENEATH: u64 = 0x08;
pub(crate) const RESOLVE_IN_ROOT: u64 = 0x10;

pub(crate) fn openat2(dirfd: c_int, path: &CStr, how: &OpenHow) -> SysResult<c_int> {
    sys!(
        libc::SYS_openat2,
        dirfd,
        path.as_ptr(),
        how as *const OpenHow,
        core::mem::size_of::<OpenHow>()
    )
    .map(|fd| fd as c_int)
}

pub(crate) const FSOPEN_CLOEXEC: u32 = 1;
pub(crate) const FSCONFIG_CMD_CREATE: u32 = 6;
pub(crate) const FSMOUNT_CLOEXEC: u32 = 1;
pub(crate) const MOUNT_ATTR_NOSUID: u32 = 0x2;
pub(crate) const MOUNT_ATTR_NODEV: u32 = 0x4;
pub(crate) const MOUNT_ATTR_NOEXEC: u32 = 0x8;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
pub(crate) struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, attr)` (Linux 5.12).
pub(crate) fn mount_setattr_recursive(fd: c_int, attr: &MountAttr) -> SysResult<()> {
    sys!(
        libc::SYS_mount_setattr,
        fd,
        c"".as_ptr(),
        libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
        attr as *const MountAttr,
        core::mem::size_of::<MountAttr>()
    )
    .map(drop)
}

pub(crate) fn fsopen(fstype: &CStr, flags: u32) -> SysResult<c_int> {
    sys!(libc::SYS_fsopen, fstype.as_ptr(), flags).map(|fd| fd as c_int)
}

/// `fsconfig` for commands without key or value (`FSCONFIG_CMD_CREATE`).
pub(crate) fn fsconfig_cmd(fd: c_int, cmd: u32) -> SysResult<()> {
    sys!(libc::SYS_fsconfig, fd, cmd, 0, 0, 0).map(drop)
}

pub(crate) fn fsmount(fd: c_int, flags: u32, attrs: u32) -> SysResult<c_int> {
    sys!(libc::SYS_fsmount, fd, flags, attrs).map(|fd| fd as c_int)
}

/// `MOVE_MOUNT_F_EMPTY_PATH`: the source is the mount `from` itself.
pub(crate) const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;

/// `move_mount(from, "", to_dir, to, MOVE_MOUNT_F_EMPTY_PATH)` (Linux 5.2):
/// attaches the detached mount `from` at `to` (relative to `to_dir`).
pub(crate) fn move_mount_fd(from: c_int, to_dir: c_int, to: &CStr) -> SysResult<()> {
    sys!(
        libc::SYS_move_mount,
        from,
        c"".as_ptr(),
        to_dir,
        to.as_ptr(),
        MOVE_MOUNT_F_EMPTY_PATH
    )
    .map(drop)
}

pub(crate) fn close(fd: c_int) -> SysResult<()> {
    sys!(libc::SYS_close, fd).map(drop)
}

pub(crate) fn close_range(first: u32, last: u32, flags: u32) -> SysResult<()> {
    sys!(libc::SYS_close_range, first, last, flags).map(drop)
}

pub(crate) fn dup3(old: c_int, new: c_int, flags: c_int) -> SysResult<()> {
    sys!(libc::SYS_dup3, old, new, flags).map(drop)
}

pub(crate) fn fcntl(fd: c_int, cmd: c_int, arg: usize) -> SysResult<usize> {
    sys!(libc::SYS_fcntl, fd, cmd, arg)
}

pub(crate) fn read(fd: c_int, buf: &mut [u8]) -> SysResult<usize> {
    sys!(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len())
}

pub(crate) fn write(fd: c_int, buf: &[u8]) -> SysResult<usize> {
    sys!(libc::SYS_write, fd, buf.as_ptr(), buf.len())
}

pub(crate) fn mkdirat(dirfd: c_int, path: &CStr, mode: u32) -> SysResult<()> {
    sys!(libc::SYS_mkdirat, dirfd, path.as_ptr(), mode).map(drop)
}

pub(crate) fn mknodat(dirfd: c_int, path: &CStr, mode: u32, dev: u64) -> SysResult<()> {
    sys!(libc::SYS_mknodat, dirfd, path.as_ptr(), mode, dev).map(drop)
}

pub(crate) fn symlinkat(target: &CStr, dirfd: c_int, link: &CStr) -> SysResult<()> {
    sys!(libc::SYS_symlinkat, target.as_ptr(), dirfd, link.as_ptr()).map(drop)
}

pub(crate) fn fchownat(
    dirfd: c_int,
    path: &CStr,
    uid: u32,
    gid: u32,
    flags: c_int,
) -> SysResult<()> {
    sys!(libc::SYS_fchownat, dirfd, path.as_ptr(), uid, gid, flags).map(drop)
}

pub(crate) fn fchmodat(dirfd: c_int, path: &CStr, mode: u32) -> SysResult<()> {
    sys!(libc::SYS_fchmodat, dirfd, path.as_ptr(), mode).map(drop)
}

pub(crate) fn faccessat(dirfd: c_int, path: &CStr, mode: c_int) -> SysResult<()> {
    sys!(libc::SYS_faccessat, dirfd, path.as_ptr(), mode).map(drop)
}

pub(crate) fn fstat(fd: c_int, st: &mut libc::stat) -> SysResult<()> {
    sys!(libc::SYS_fstat, fd, st as *mut libc::stat).map(drop)
}

pub(crate) fn getdents64(fd: c_int, buf: &mut [u8]) -> SysResult<usize> {
    sys!(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len())
}

pub(crate) fn setns(fd: c_int, nstype: c_int) -> SysResult<()> {
    sys!(libc::SYS_setns, fd, nstype).map(drop)
}

/// `clone(CLONE_PARENT | CLONE_PIDFD)` on the caller's own stack: a fork
/// whose new process is a sibling of the caller (a child of the caller's
/// parent). It returns twice: 0 in the new process, the new pid (in the
/// caller's pid namespace) in the caller, which gets a pidfd for it in
/// `pidfd`. Only for a caller that shares its memory with no one (each
/// process goes on with its own copy of the stack). The exit signal is
/// the caller's own, as `CLONE_PARENT` makes it.
pub(crate) fn fork_sibling(pidfd: &mut c_int) -> SysResult<usize> {
    let flags = (libc::CLONE_PARENT | libc::CLONE_PIDFD) as usize;
    // parent_tid, where CLONE_PIDFD stores the pidfd, is the third
    // argument on x86_64 and aarch64 alike.
    sys!(libc::SYS_clone, flags, 0, pidfd as *mut c_int)
}

pub(crate) fn unshare(flags: c_int) -> SysResult<()> {
    sys!(libc::SYS_unshare, flags).map(drop)
}

pub(crate) fn sethostname(name: &[u8]) -> SysResult<()> {
    sys!(libc::SYS_sethostname, name.as_ptr(), name.len()).map(drop)
}

pub(crate) fn setdomainname(name: &[u8]) -> SysResult<()> {
    sys!(libc::SYS_setdomainname, name.as_ptr(), name.len()).map(drop)
}

pub(crate) fn setsid() -> SysResult<()> {
    sys!(libc::SYS_setsid).map(drop)
}

pub(crate) fn setresuid(r: u32, e: u32, s: u32) -> SysResult<()> {
    sys!(libc::SYS_setresuid, r, e, s).map(drop)
}

pub(crate) fn setresgid(r: u32, e: u32, s: u32) -> SysResult<()> {
    sys!(libc::SYS_setresgid, r, e, s).map(drop)
}

pub(crate) fn setgroups(groups: &[u32]) -> SysResult<()> {
    sys!(libc::SYS_setgroups, groups.len(), groups.as_ptr()).map(drop)
}

pub(crate) fn umask(mask: u32) -> u32 {
    sys!(libc::SYS_umask, mask).unwrap_or(0) as u32
}

pub(crate) fn prlimit(resource: u32, soft: u64, hard: u64) -> SysResult<()> {
    let lim = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    sys!(
        libc::SYS_prlimit64,
        0,
        resource,
        &lim as *const libc::rlimit64,
        0
    )
    .map(drop)
}

/// `set_mempolicy(mode, nodes, maxnode)`; an empty mask is a NULL one.
pub(crate) fn set_mempolicy(mode: u32, nodes: &[u64]) -> SysResult<()> {
    let mask = if nodes.is_empty() {
        core::ptr::null()
    } else {
        nodes.as_ptr()
    };
    // The kernel reads `maxnode - 1` bits.
    let maxnode = nodes
        .len()
        .checked_mul(64)
        .and_then(|bits| bits.checked_add(1))
        .ok_or(libc::EINVAL)?;
    sys!(libc::SYS_set_mempolicy, mode, mask, maxnode).map(drop)
}

pub(crate) fn personality(persona: u64) -> SysResult<()> {
    sys!(libc::SYS_personality, persona).map(drop)
}

pub(crate) fn ioprio_set(value: u32) -> SysResult<()> {
    const IOPRIO_WHO_PROCESS: usize = 1;
    sys!(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value).map(drop)
}

/// The kernel's `struct sched_attr` (with the utilization clamps, 56
/// bytes, Linux 5.3; older kernels accept it as long as those are 0).
#[repr(C)]
pub(crate) struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
    pub util_min: u32,
    pub util_max: u32,
}

pub(crate) fn sched_setattr(attr: &SchedAttr) -> SysResult<()> {
    sys!(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0).map(drop)
}

pub(crate) fn prctl(option: c_int, a2: usize, a3: usize, a4: usize, a5: usize) -> SysResult<usize> {
    sys!(libc::SYS_prctl, option, a2, a3, a4, a5)
}

pub(crate) fn ioctl(fd: c_int, req: u64, arg: usize) -> SysResult<usize> {
    sys!(libc::SYS_ioctl, fd, req, arg)
}

pub(crate) fn socket(domain: c_int, ty: c_int, proto: c_int) -> SysResult<c_int> {
    sys!(libc::SYS_socket, domain, ty, proto).map(|fd| fd as c_int)
}

pub(crate) fn sendmsg(fd: c_int, msg: &libc::msghdr, flags: c_int) -> SysResult<usize> {
    sys!(libc::SYS_sendmsg, fd, msg as *const libc::msghdr, flags)
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
pub(crate) struct CapHeader {
    pub version: u32,
    pub pid: c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct CapData {
    pub effective: u32,
    pub permitted: u32,
    pub inheritable: u32,
}

pub(crate) const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

pub(crate) fn capset(data: &[CapData; 2]) -> SysResult<()> {
    let hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    sys!(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()).map(drop)
}

/// The kernel's `struct sigaction` for `rt_sigaction` (not libc's).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Resets the disposition of `sig` to `SIG_DFL`.
pub(crate) fn reset_signal(sig: c_int) -> SysResult<()> {
    let act = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    sys!(
        libc::SYS_rt_sigaction,
        sig,
        &act as *const KernelSigaction,
        0,
        8
    )
    .map(drop)
}

/// Sets the signal mask of the calling thread to `mask` (a kernel sigset).
pub(crate) fn set_sigmask(mask: u64) -> SysResult<()> {
    sys!(
        libc::SYS_rt_sigprocmask,
        libc::SIG_SETMASK,
        &mask as *const u64,
        0,
        8
    )
    .map(drop)
}

pub(crate) fn execve(
    path: &CStr,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> Errno {
    match sys!(libc::SYS_execve, path.as_ptr(), argv, envp) {
        Ok(_) => 0,
        Err(e) => e,
    }
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: runs the program open on
/// `fd`, which needs no path (and so no `/proc`) to reach it.
pub(crate) fn execveat_fd(
    fd: c_int,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> Errno {
    match sys!(
        libc::SYS_execveat,
        fd,
        c"".as_ptr(),
        argv,
        envp,
        libc::AT_EMPTY_PATH
    ) {
        Ok(_) => 0,
        Err(e) => e,
    }
}

/// Ends the calling process (its whole thread group) with `code`.
pub(crate) fn exit_group(code: c_int) -> ! {
    loop {
        let _ = sys!(libc::SYS_exit_group, code);
    }
}

/// `struct sock_fprog`.
#[repr(C)]
pub(crate) struct SockFprog {
    pub len: u16,
    pub filter: *const u8,
}

pub(crate) const SECCOMP_SET_MODE_FILTER: u32 = 1;

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`: the new listener's
/// descriptor with `SECCOMP_FILTER_FLAG_NEW_LISTENER`, else 0.
pub(crate) fn seccomp_filter(flags: u32, prog: &SockFprog) -> SysResult<c_int> {
    sys!(
        libc::SYS_seccomp,
        SECCOMP_SET_MODE_FILTER,
        flags,
        prog as *const SockFprog
    )
    .map(|fd| fd as c_int)
}

pub(crate) fn statfs(path: &CStr, buf: &mut libc::statfs64) -> SysResult<()> {
    sys!(libc::SYS_statfs, path.as_ptr(), buf as *mut libc::statfs64).map(drop)
}

pub(crate) fn pidfd_open(pid: i32) -> SysResult<c_int> {
    sys!(libc::SYS_pidfd_open, pid, 0).map(|fd| fd as c_int)
}

pub(crate) fn pidfd_send_signal(pidfd: c_int, sig: c_int) -> SysResult<()> {
    sys!(libc::SYS_pidfd_send_signal, pidfd, sig, 0, 0).map(drop)
}

pub(crate) fn kill(pid: i32, sig: c_int) -> SysResult<()> {
    sys!(libc::SYS_kill, pid, sig).map(drop)
}
