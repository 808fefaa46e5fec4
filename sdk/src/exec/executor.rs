//! The child's walk over the plan. Raw system calls only: nothing here may
//! allocate, lock, log or touch libc's `errno`, because the child may share
//! the parent's memory and runs right after `clone` in a multi-threaded
//! process.

use core::ffi::CStr;
use libc::c_int;

use super::sys::{self, Errno, OpenHow, SysResult};
use super::{ChildArgs, Report};
use crate::plan::{Create, DeviceStep, InRoot, MountStep, Step};

const AT_FDCWD: c_int = libc::AT_FDCWD;
const PATH_CLOEXEC: c_int = libc::O_PATH | libc::O_CLOEXEC;

/// Exit code of a child whose set-up failed before `execve`.
const EXIT_SETUP_FAILED: c_int = 1;

/// The descriptors the child works with: those of [`ChildArgs`], moved
/// above the range the process is to inherit (`3..3+preserve`), so that
/// none of them can reach the container in place of one of the caller's.
struct Fds {
    sync: c_int,
    fifo: c_int,
    /// The exec report socket and the waiter's memfd. Like `fifo`, the
    /// parent already placed them above the range: their numbers are in
    /// `berth-waiter`'s arguments.
    exec_report: c_int,
    waiter: c_int,
    stdio: [c_int; 3],
    /// `args.joins`, in order (at most one per namespace type).
    joins: [c_int; MAX_JOINS],
    /// `args.cgroup_tasks` (the parent placed them above the range); -1
    /// once joined.
    cgroup_tasks: [c_int; MAX_CGROUP_TASKS],
    /// The first descriptor above the preserved range.
    first_free: c_int,
}

/// The most namespaces a plan joins: one per type.
const MAX_JOINS: usize = 8;

/// The most v1 hierarchies a container joins (one per controller, and
/// named ones such as `name=systemd`).
const MAX_CGROUP_TASKS: usize = 16;

struct Executor<'a> {
    args: &'a ChildArgs,
    fds: Fds,
    /// The rootfs, opened after it was bound onto itself.
    rootfd: c_int,
    /// Index of the executable among `plan.exec.candidates`.
    exe: usize,
    /// openat2 is known to be missing.
    no_openat2: bool,
    /// The umask the child inherited.
    caller_umask: u32,
    /// `ChdirAsRoot` succeeded.
    cwd_done: bool,
    /// Before the seccomp filter, the cwd was found to lead through no
    /// magic link (`/proc/self/fd/<n>`): the check after a late `chdir`
    /// may then do without `getcwd`, which the profile may deny.
    cwd_prechecked: bool,
    /// A procfs of the container's pid namespace mounted nowhere (so
    /// nothing can be mounted over its files), for writes to `/proc` and
    /// `/proc/self/fd` links; -1 where the kernel refused one.
    procfd: c_int,
}

/// Runs every step; never returns.
pub(super) fn run(args: &ChildArgs) -> ! {
    let fds = match relocate_fds(args) {
        Ok(fds) => fds,
        Err(errno) => {
            report(
                args.sync,
                Report {
                    kind: Report::FAILED,
                    step: 0,
                    errno,
                    _pad: 0,
                },
                None,
            );
            sys::exit_group(EXIT_SETUP_FAILED);
        }
    };
    let sync = fds.sync;
    let mut ex = Executor {
        args,
        fds,
        rootfd: -1,
        exe: 0,
        no_openat2: super::fallbacks::no_openat2(),
        caller_umask: 0o022,
        cwd_done: false,
        cwd_prechecked: false,
        procfd: -1,
    };
    // A fork-like child (one that joins a pid or user namespace) has a copy
    // of the embedder's memory of its own: it alone goes non-dumpable, so
    // that without CAP_SYS_PTRACE nothing in the namespaces it joins can
    // read that copy or reach our binary through /proc/<pid>/exe. (A
    // shared-memory child must not: the flag would be the embedder's.)
    if !args.plan.share_memory && !super::sabotage_bit(args, super::SABOTAGE_DUMPABLE) {
        let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    // The clone copied every descriptor of the embedding process: other
    // containers' sync sockets and pipes among them. Held here while this
    // container waits for `start`, they would keep those from ever seeing
    // EOF; and nothing of the host's belongs in a container.
    if let Err(errno) = close_foreign_fds(&ex.fds) {
        report(
            sync,
            Report {
                kind: Report::FAILED,
                step: 0,
                errno,
                _pad: 0,
            },
            None,
        );
        sys::exit_group(EXIT_SETUP_FAILED);
    }
    for (i, step) in args.plan.steps.iter().enumerate() {
        if let Err(errno) = ex.step(step) {
            report(
                sync,
                Report {
                    kind: Report::FAILED,
                    step: i as u32,
                    errno,
                    _pad: 0,
                },
                None,
            );
            let code = match step {
                Step::Exec if errno == libc::ENOENT => 127,
                Step::Exec => 126,
                _ => EXIT_SETUP_FAILED,
            };
            sys::exit_group(code);
        }
    }
    // The plan always ends with `Exec`, which does not return on success.
    sys::exit_group(EXIT_SETUP_FAILED)
}

/// Sends a report (and optionally a descriptor) to the parent. Failures are
/// ignored: a parent that is gone cannot be told anything.
fn report(sync: c_int, r: Report, fd: Option<c_int>) {
    let bytes: [u8; Report::SIZE] = {
        let mut b = [0u8; Report::SIZE];
        b[0..4].copy_from_slice(&r.kind.to_ne_bytes());
        b[4..8].copy_from_slice(&r.step.to_ne_bytes());
        b[8..12].copy_from_slice(&r.errno.to_ne_bytes());
        b
    };
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // Room for one SCM_RIGHTS descriptor, aligned like cmsghdr.
    let mut cbuf = [0u64; 4];
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
        let space = unsafe { libc::CMSG_SPACE(core::mem::size_of::<c_int>() as u32) } as usize;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space;
        // SAFETY: `msg_control` points at `cbuf`, large enough for one
        // header plus one int; CMSG_FIRSTHDR returns a pointer into it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(core::mem::size_of::<c_int>() as u32) as usize;
            core::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut c_int, fd);
        }
    }
    let _ = sys::sendmsg(sync, &msg, libc::MSG_NOSIGNAL);
}

/// Formats `/proc/self/fd/<fd>` into `buf` and returns it as a C string.
fn proc_fd_path(fd: c_int, buf: &mut [u8; 32]) -> &CStr {
    proc_path(b"/proc/self/fd/", fd as u32, buf)
}

fn proc_path<'b>(prefix: &[u8], n: u32, buf: &'b mut [u8; 32]) -> &'b CStr {
    // The digits of `n`, least significant first (a u32 has at most 10).
    let mut digits = [0u8; 10];
    let mut count: usize = 0;
    let mut v = n;
    for d in digits.iter_mut() {
        *d = b'0'.wrapping_add((v % 10) as u8);
        count = count.wrapping_add(1);
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let digits = digits.get(..count).unwrap_or_default();
    *buf = [0; 32];
    for (dst, &src) in buf.iter_mut().zip(prefix.iter().chain(digits.iter().rev())) {
        *dst = src;
    }
    // Every prefix used here leaves room for the NUL; were one too long,
    // the empty path would make the system call fail, not overrun.
    CStr::from_bytes_until_nul(buf).unwrap_or(c"")
}

/// Whether `path` resolves without a magic link, as far as root can look
/// (`openat2(RESOLVE_NO_MAGICLINKS)`; false where that is not possible).
fn no_magic_links(path: &CStr) -> bool {
    let how = OpenHow {
        flags: PATH_CLOEXEC as u64,
        mode: 0,
        resolve: sys::RESOLVE_NO_MAGICLINKS,
    };
    match sys::openat2(AT_FDCWD, path, &how) {
        Ok(fd) => {
            let _ = sys::close(fd);
            true
        }
        Err(_) => false,
    }
}

/// Closes a descriptor when dropped.
struct Fd(c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        if self.0 >= 0 {
            let _ = sys::close(self.0);
        }
    }
}

impl Executor<'_> {
    fn step(&mut self, step: &Step) -> SysResult<()> {
        let a = self.args;
        let sync = self.fds.sync;
        match step {
            Step::ResetSignals => {
                for sig in 1..=64 {
                    if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                        // 32 and 33 may be refused on some kernels; nothing
                        // can be pending on them here.
                        let _ = sys::reset_signal(sig);
                    }
                }
                // Modes of created nodes are exact; the caller's umask is
                // kept for the process unless the spec sets one.
                self.caller_umask = sys::umask(0);
                Ok(())
            }
            Step::JoinCgroup => {
                for fd in self.fds.cgroup_tasks.iter_mut().filter(|fd| **fd >= 0) {
                    // `0`: this task, and only it (the process has one).
                    sys::write(*fd, b"0")?;
                    let _ = sys::close(*fd);
                    *fd = -1;
                }
                Ok(())
            }
            Step::AwaitParent | Step::AwaitHooks => {
                if matches!(step, Step::AwaitHooks) {
                    report(
                        sync,
                        Report {
                            kind: Report::HOOKS,
                            ..Default::default()
                        },
                        None,
                    );
                }
                let mut b = [0u8; 1];
                match sys::read(sync, &mut b)? {
                    1 => Ok(()),
                    _ => Err(libc::EPIPE),
                }
            }
            Step::JoinNamespace { index, ns } => {
                let fd = self.fds.joins.get(*index).copied().unwrap_or(-1);
                sys::setns(fd, ns.clone_flag() as c_int)
            }
            Step::BecomeRoot => {
                sys::setresgid(0, 0, 0)?;
                sys::setresuid(0, 0, 0)
            }
            Step::UnshareCgroup => sys::unshare(libc::CLONE_NEWCGROUP),
            Step::UnshareTime { offsets } => {
                sys::unshare(libc::CLONE_NEWTIME)?;
                match offsets {
                    // The host's /proc still: the mounts come later.
                    Some(o) => write_file(c"/proc/self/timens_offsets", o.as_c().to_bytes()),
                    None => Ok(()),
                }
            }
            Step::MemoryPolicy { mode, nodes } => sys::set_mempolicy(*mode, nodes),
            Step::SetSid => sys::setsid(),
            Step::LoopbackUp => loopback_up(),
            Step::Propagation { target, flags } => {
                sys::mount(None, target.as_c(), None, *flags, None)
            }
            Step::BindRootfs { rootfs } => {
                let r = rootfs.as_c();
                sys::mount(Some(r), r, None, libc::MS_BIND | libc::MS_REC, None)?;
                let rootfd = sys::openat(AT_FDCWD, r, PATH_CLOEXEC | libc::O_DIRECTORY, 0)?;
                self.rootfd = above(rootfd, self.fds.first_free)?;
                // Now, while the host's /proc is still in view: in a user
                // namespace the kernel allows a new procfs only where a
                // fully visible one is mounted.
                if a.sabotage & super::SABOTAGE_PROC == 0 {
                    self.procfd = private_proc()
                        .and_then(|fd| above(fd, self.fds.first_free))
                        .unwrap_or(-1);
                }
                Ok(())
            }
            Step::Mount(m) => self.mount(m),
            Step::Remount { target, flags } => {
                let fd = Fd(self.resolve(target, Create::Dir)?);
                let mut buf = [0u8; 32];
                sys::mount(None, proc_fd_path(fd.0, &mut buf), None, *flags, None)
            }
            Step::MountSetattr { target, set, clear } => {
                let fd = Fd(self.resolve(target, Create::Dir)?);
                let attr = sys::MountAttr {
                    attr_set: *set,
                    attr_clr: *clear,
                    propagation: 0,
                    userns_fd: 0,
                };
                sys::mount_setattr_recursive(fd.0, &attr)
            }
            Step::Device(d) => self.device(d),
            Step::Symlink { target, link } => {
                let parent = self.resolve_parent(link)?;
                match sys::symlinkat(target.as_c(), parent.0, last(link)) {
                    Err(libc::EEXIST) => Ok(()),
                    r => r,
                }
            }
            Step::PivotRoot => {
                let oldroot = Fd(sys::openat(
                    AT_FDCWD,
                    c"/",
                    PATH_CLOEXEC | libc::O_DIRECTORY,
                    0,
                )?);
                sys::fchdir(self.rootfd)?;
                sys::pivot_root(c".", c".")?;
                // The old root is now stacked on the new one. Step onto it
                // (a path lookup of "." would find the new root on top),
                // make it a slave so its detach cannot propagate to the
                // host, and detach it.
                sys::fchdir(oldroot.0)?;
                sys::mount(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None)?;
                sys::umount2(c".", libc::MNT_DETACH)?;
                sys::chdir(c"/")
            }
            Step::Chroot => {
                sys::fchdir(self.rootfd)?;
                sys::chroot(c".")?;
                sys::chdir(c"/")
            }
            Step::MoveRoot => {
                sys::fchdir(self.rootfd)?;
                sys::mount(Some(c"."), c"/", None, libc::MS_MOVE, None)?;
                sys::chroot(c".")?;
                sys::chdir(c"/")
            }
            Step::Console { size, bind_console } => {
                console(sync, *size, *bind_console, a.sabotage, self.procfd)
            }
            Step::Stdio => {
                for (target, &fd) in self.fds.stdio.iter().enumerate() {
                    if fd >= 0 {
                        sys::dup3(fd, target as c_int, 0)?;
                    }
                }
                Ok(())
            }
            Step::Sysctl { path, value } => self.write_proc(path.as_c(), value.as_c().to_bytes()),
            Step::MaskPath { path } => mask_path(path.as_c(), a.sabotage, self.procfd),
            Step::ReadonlyPath { path } => readonly_path(path.as_c()),
            Step::ReadonlyRoot => {
                let locked = locked_flags(c"/")?;
                sys::mount(
                    None,
                    c"/",
                    None,
                    (libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY) | locked,
                    None,
                )
            }
            Step::Hostname { name } => sys::sethostname(name.as_c().to_bytes()),
            Step::Domainname { name } => sys::setdomainname(name.as_c().to_bytes()),
            Step::Rlimit {
                resource,
                soft,
                hard,
            } => sys::prlimit(*resource, *soft, *hard),
            Step::Personality { persona } => sys::personality(*persona),
            Step::Scheduler(s) => sys::sched_setattr(&sys::SchedAttr {
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
            }),
            Step::IoPriority { value } => sys::ioprio_set(*value),
            Step::ProcAttr { path, value } => self.write_proc(path.as_c(), value.as_c().to_bytes()),
            Step::DropBoundingCaps { keep, last_cap } => {
                for cap in 0..=*last_cap {
                    if keep & (1 << cap) == 0 {
                        sys::prctl(libc::PR_CAPBSET_DROP, cap as usize, 0, 0, 0)?;
                    }
                }
                Ok(())
            }
            Step::KeepCaps => sys::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0).map(drop),
            Step::SetGroups { gids } => sys::setgroups(gids),
            Step::SetGid { gid } => sys::setresgid(*gid, *gid, *gid),
            Step::SetUid { uid } => sys::setresuid(*uid, *uid, *uid),
            Step::SetCaps {
                effective,
                permitted,
                inheritable,
            } => {
                let half = |shift: u32| sys::CapData {
                    effective: (effective >> shift) as u32,
                    permitted: (permitted >> shift) as u32,
                    inheritable: (inheritable >> shift) as u32,
                };
                sys::capset(&[half(0), half(32)])
            }
            Step::AmbientCaps { ambient } => {
                let clear = libc::PR_CAP_AMBIENT_CLEAR_ALL as usize;
                match sys::prctl(libc::PR_CAP_AMBIENT, clear, 0, 0, 0) {
                    // Kernels before 4.3 have no ambient set; fine when empty.
                    Err(libc::EINVAL) if *ambient == 0 => return Ok(()),
                    r => r?,
                };
                for cap in 0..64 {
                    if ambient & (1 << cap) != 0 {
                        let raise = libc::PR_CAP_AMBIENT_RAISE as usize;
                        sys::prctl(libc::PR_CAP_AMBIENT, raise, cap, 0, 0)?;
                    }
                }
                Ok(())
            }
            Step::ChdirAsRoot { cwd } => {
                // Failure is not final: a directory only the process's own
                // user may enter is tried again after the switch.
                self.cwd_done = self.chdir_inside(cwd.as_c()).is_ok();
                if !self.cwd_done {
                    self.cwd_prechecked = no_magic_links(cwd.as_c());
                }
                Ok(())
            }
            Step::Chdir { cwd } if !self.cwd_done => match self.chdir_inside(cwd.as_c()) {
                // chdir succeeded; getcwd, after the filter, was refused.
                Err(e) if e != libc::EXDEV && e != libc::ERANGE && self.cwd_prechecked => {
                    match sys::chdir(cwd.as_c()) {
                        Ok(()) => Ok(()),
                        Err(_) => Err(e),
                    }
                }
                r => r,
            },
            Step::Chdir { .. } => Ok(()),
            Step::Umask { mask } => {
                sys::umask(mask.unwrap_or(self.caller_umask));
                Ok(())
            }
            Step::NoNewPrivileges => sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).map(drop),
            Step::Seccomp(f) => {
                let prog = sys::SockFprog {
                    len: (f.program.len() / 8) as u16,
                    filter: f.program.as_ptr(),
                };
                let fd = sys::seccomp_filter(f.flags, &prog)?;
                if f.flags & crate::security::seccomp::FLAG_NEW_LISTENER != 0 {
                    // The parent passes the descriptor on to the listener;
                    // ours closes here (the kernel made it close-on-exec).
                    let fd = Fd(fd);
                    report(
                        sync,
                        Report {
                            kind: Report::SECCOMP,
                            ..Default::default()
                        },
                        Some(fd.0),
                    );
                    let mut b = [0u8; 1];
                    if sys::read(sync, &mut b)? != 1 {
                        return Err(libc::EPIPE);
                    }
                }
                Ok(())
            }
            Step::FindExecutable => {
                let mut first_err = libc::ENOENT;
                for (i, c) in a.plan.exec.candidates.iter().enumerate() {
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
            Step::CloseFds { preserve } => close_fds(*preserve),
            Step::AwaitStart => {
                report(
                    sync,
                    Report {
                        kind: Report::CREATED,
                        ..Default::default()
                    },
                    None,
                );
                if a.waiter >= 0 {
                    if a.sabotage & super::SABOTAGE_WAITER == 0 {
                        return Err(self.exec_waiter());
                    }
                    // Escape tests: wait as ourselves, but let `create`
                    // return as if we had left (it waits for this EOF).
                    let _ = sys::close(sync);
                }
                let mut b = [0u8; 1];
                match sys::read(self.fds.fifo, &mut b)? {
                    1 => Ok(()),
                    _ => Err(libc::EPIPE),
                }
            }
            Step::Exec => {
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
        }
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
    fn write_proc(&self, path: &CStr, data: &[u8]) -> SysResult<()> {
        let bytes = path.to_bytes_with_nul();
        if self.procfd < 0 || !bytes.starts_with(b"/proc/") {
            return write_file(path, data);
        }
        // SAFETY: a suffix of a NUL-terminated string with no NUL inside.
        let rel = unsafe { CStr::from_bytes_with_nul_unchecked(bytes.get(6..).unwrap_or(b"\0")) };
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
        if self.args.sabotage & super::SABOTAGE_CWD != 0 {
            return Ok(());
        }
        // PATH_MAX: the kernel fails with ERANGE rather than truncate.
        let mut buf = [0u8; 4096];
        sys::getcwd(&mut buf)?;
        if buf[0] == b'/' {
            Ok(())
        } else {
            Err(libc::EXDEV)
        }
    }

    /// Opens `target` inside the rootfs as an `O_PATH` descriptor, creating
    /// missing components (directories, or a file for the last one when
    /// `create` says so). Resolution is confined to the rootfs: symlinks are
    /// followed as the container would see them, never to the host.
    fn resolve(&mut self, target: &InRoot, create: Create) -> SysResult<c_int> {
        let fd = self.open_prefixes(target, target.prefixes.len(), create)?;
        let raw = fd.0;
        core::mem::forget(fd);
        Ok(raw)
    }

    /// The directory that will hold `target`'s last component.
    fn resolve_parent(&mut self, target: &InRoot) -> SysResult<Fd> {
        match target.prefixes.len().checked_sub(1) {
            Some(0) => sys::fcntl(self.rootfd, libc::F_DUPFD_CLOEXEC, 3).map(|fd| Fd(fd as c_int)),
            Some(n) => self.open_prefixes(target, n, Create::Dir),
            None => Err(libc::EINVAL),
        }
    }

    /// Opens the first `count` components of `target`, creating each that is
    /// missing inside the one before it.
    fn open_prefixes(&mut self, target: &InRoot, count: usize, create: Create) -> SysResult<Fd> {
        if count > target.prefixes.len() || count > target.names.len() {
            return Err(libc::EINVAL);
        }
        let last = count.checked_sub(1);
        let mut parent = Fd(-1);
        let components = target.prefixes.iter().zip(&target.names).take(count);
        for (i, (prefix, name)) in components.enumerate() {
            let prefix = prefix.as_c();
            let fd = match self.open_in_root(prefix) {
                Err(libc::ENOENT) => {
                    let dir = if i == 0 { self.rootfd } else { parent.0 };
                    let name = name.as_c();
                    if Some(i) == last && create == Create::File {
                        let flags =
                            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
                        drop(Fd(sys::openat(dir, name, flags, 0o644)?));
                    } else {
                        match sys::mkdirat(dir, name, 0o755) {
                            Ok(()) | Err(libc::EEXIST) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    self.open_in_root(prefix)?
                }
                r => r?,
            };
            parent = Fd(fd);
        }
        Ok(parent)
    }

    fn open_in_root(&mut self, path: &CStr) -> SysResult<c_int> {
        if self.args.sabotage & super::SABOTAGE_RESOLVE != 0 {
            return sys::openat(self.rootfd, path, PATH_CLOEXEC, 0);
        }
        if !self.no_openat2 {
            let how = OpenHow {
                flags: PATH_CLOEXEC as u64,
                mode: 0,
                resolve: sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
            };
            match sys::openat2(self.rootfd, path, &how) {
                Err(libc::ENOSYS) => self.no_openat2 = true,
                r => return r,
            }
        }
        // Before Linux 5.6: walk the components without following any
        // symlink (the plan already refused specs whose destinations need
        // one to resolve), so nothing can lead out of the rootfs.
        self.walk_nofollow(path)
    }

    fn walk_nofollow(&self, path: &CStr) -> SysResult<c_int> {
        let bytes = path.to_bytes();
        let mut dir = Fd(sys::fcntl(self.rootfd, libc::F_DUPFD_CLOEXEC, 3)? as c_int);
        let mut name = [0u8; 256];
        for comp in bytes.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            // Room for the component and its NUL.
            if comp.len() >= name.len() {
                return Err(libc::ENAMETOOLONG);
            }
            name = [0; 256];
            for (dst, &src) in name.iter_mut().zip(comp) {
                *dst = src;
            }
            let c = CStr::from_bytes_until_nul(&name).map_err(|_| libc::ENAMETOOLONG)?;
            let fd = sys::openat(dir.0, c, PATH_CLOEXEC | libc::O_NOFOLLOW, 0)?;
            dir = Fd(fd);
        }
        let fd = dir.0;
        core::mem::forget(dir);
        Ok(fd)
    }

    fn mount(&mut self, m: &MountStep) -> SysResult<()> {
        let mut buf = [0u8; 32];
        {
            let fd = Fd(self.resolve(&m.target, m.create)?);
            let target = proc_fd_path(fd.0, &mut buf);
            sys::mount(
                m.source.as_ref().map(|s| s.as_c()),
                target,
                m.fstype.as_ref().map(|s| s.as_c()),
                m.flags,
                m.data.as_ref().map(|s| s.as_c()),
            )?;
        }
        // Later calls act on the new mount: resolve the path again so that
        // it leads onto the mount just made, not the directory beneath it.
        for flags in [
            m.remount_flags,
            (m.propagation != 0).then_some(m.propagation),
        ]
        .into_iter()
        .flatten()
        {
            let fd = Fd(self.resolve(&m.target, m.create)?);
            sys::mount(None, proc_fd_path(fd.0, &mut buf), None, flags, None)?;
        }
        Ok(())
    }

    fn device(&mut self, d: &DeviceStep) -> SysResult<()> {
        if let Some(host) = &d.bind_from {
            let fd = Fd(self.resolve(&d.target, Create::File)?);
            let mut buf = [0u8; 32];
            return sys::mount(
                Some(host.as_c()),
                proc_fd_path(fd.0, &mut buf),
                None,
                libc::MS_BIND,
                None,
            );
        }
        let parent = self.resolve_parent(&d.target)?;
        let name = last(&d.target);
        match sys::mknodat(
            parent.0,
            name,
            d.mode,
            libc::makedev(d.major as u32, d.minor as u32),
        ) {
            Ok(()) => {}
            // Already there (a shared /dev or a second run): leave it.
            Err(libc::EEXIST) => return Ok(()),
            Err(e) => return Err(e),
        }
        sys::fchownat(parent.0, name, d.uid, d.gid, libc::AT_SYMLINK_NOFOLLOW)?;
        sys::fchmodat(parent.0, name, d.mode & 0o7777)
    }
}

fn last(target: &InRoot) -> &CStr {
    // A compiled target always has a name; the empty one fails its call.
    target.names.last().map_or(c"", |n| n.as_c())
}

fn write_file(path: &CStr, data: &[u8]) -> SysResult<()> {
    let fd = Fd(sys::openat(
        AT_FDCWD,
        path,
        libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        0,
    )?);
    let n = sys::write(fd.0, data)?;
    if n != data.len() {
        return Err(libc::EIO);
    }
    Ok(())
}

fn loopback_up() -> SysResult<()> {
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

/// Mount flags the kernel locks on a mount (and a remount must repeat).
fn locked_flags(path: &CStr) -> SysResult<u64> {
    // SAFETY: statfs64 is plain data; zeroed is valid before the call fills it.
    let mut st: libc::statfs64 = unsafe { core::mem::zeroed() };
    sys::statfs(path, &mut st)?;
    // ST_* and MS_* share these bit values.
    let keep = libc::MS_NOSUID
        | libc::MS_NODEV
        | libc::MS_NOEXEC
        | libc::MS_NOATIME
        | libc::MS_NODIRATIME
        | libc::MS_RELATIME;
    Ok(st.f_flags as u64 & keep)
}

/// Binds `source` onto `target`, both already opened (`O_PATH`) and
/// checked, through their `self/fd` links in the private procfs, so that
/// the mount acts on exactly those inodes even if the paths were swapped
/// since (for a symlink, say), and no mount over the container's `/proc`
/// can redirect it. Without a private procfs, by path.
fn bind_fds(source: (c_int, &CStr), target: (c_int, &CStr), procfd: c_int) -> SysResult<()> {
    if procfd < 0 {
        return sys::mount(Some(source.1), target.1, None, libc::MS_BIND, None);
    }
    let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
    let src = proc_path(b"self/fd/", source.0 as u32, &mut a);
    let dst = proc_path(b"self/fd/", target.0 as u32, &mut b);
    sys::fchdir(procfd)?;
    let r = sys::mount(Some(src), dst, None, libc::MS_BIND, None);
    // Every step after pivot_root starts from the container's root.
    sys::chdir(c"/")?;
    r
}

/// A procfs instance of our pid namespace, mounted nowhere (`fsopen`,
/// Linux 5.2).
fn private_proc() -> SysResult<c_int> {
    let fs = Fd(sys::fsopen(c"proc", sys::FSOPEN_CLOEXEC)?);
    sys::fsconfig_cmd(fs.0, sys::FSCONFIG_CMD_CREATE)?;
    sys::fsmount(
        fs.0,
        sys::FSMOUNT_CLOEXEC,
        sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
    )
}

fn mask_path(path: &CStr, sabotage: u32, procfd: c_int) -> SysResult<()> {
    let fd = match sys::openat(AT_FDCWD, path, PATH_CLOEXEC | libc::O_NOFOLLOW, 0) {
        Err(libc::ENOENT) => return Ok(()),
        r => Fd(r?),
    };
    // SAFETY: stat is plain data; zeroed is valid before fstat fills it.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    sys::fstat(fd.0, &mut st)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return sys::mount(Some(c"tmpfs"), path, Some(c"tmpfs"), libc::MS_RDONLY, None);
    }
    if sabotage & super::SABOTAGE_DEVICES != 0 {
        return sys::mount(Some(c"/dev/null"), path, None, libc::MS_BIND, None);
    }
    // Bind only the real null device, never whatever a crafted image or a
    // shared volume put at /dev/null (a symlink to a /proc file would make
    // the "masked" path a writable alias of it: CVE-2025-31133).
    let null = Fd(sys::openat(
        AT_FDCWD,
        c"/dev/null",
        PATH_CLOEXEC | libc::O_NOFOLLOW,
        0,
    )?);
    sys::fstat(null.0, &mut st)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        return Err(libc::ENODEV);
    }
    bind_fds((null.0, c"/dev/null"), (fd.0, path), procfd)
}

fn readonly_path(path: &CStr) -> SysResult<()> {
    let bind = libc::MS_BIND | libc::MS_REC;
    match sys::mount(Some(path), path, None, bind, None) {
        Err(libc::ENOENT) => return Ok(()),
        r => r?,
    }
    let flags = libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT | libc::MS_RDONLY;
    sys::mount(None, path, None, flags | locked_flags(path)?, None)
}

fn console(
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
        if sabotage & super::SABOTAGE_DEVICES != 0 {
            sys::mount(Some(pts), c"/dev/console", None, libc::MS_BIND, None)?;
        } else {
            bind_console_onto(slave.0, pts, procfd)?;
        }
    }
    report(
        sync,
        Report {
            kind: Report::CONSOLE,
            ..Default::default()
        },
        Some(master.0),
    );
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
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG | libc::S_IFCHR => {}
        libc::S_IFLNK => return Err(libc::ELOOP),
        _ => return Err(libc::ENODEV),
    }
    bind_fds((slave, pts), (target.0, c"/dev/console"), procfd)
}

/// The most descriptors [`close_foreign_fds`] keeps besides stdio and the
/// preserved ones: sync, fifo, exec report, waiter, three stdio sources,
/// the namespaces to join (at most one per namespace type) and the cgroup
/// `tasks` files.
const MAX_KEPT: usize = 16 + MAX_CGROUP_TASKS;

/// Closes every descriptor but stdio, the spec's preserved ones (`3..3+n`)
/// and those `args` names. No allocation: the kept set is a sorted array
/// on the stack, and the gaps between its entries are closed with
/// `close_range` (listing `/proc/self/fd` before 5.9).
fn close_foreign_fds(fds: &Fds) -> SysResult<()> {
    let first_free = u32::try_from(fds.first_free).map_err(|_| libc::EBADF)?;
    // Unused slots hold u32::MAX, which sorts last and closes nothing.
    let mut kept = [u32::MAX; MAX_KEPT];
    let named = [fds.sync, fds.fifo, fds.exec_report, fds.waiter]
        .into_iter()
        .chain(fds.stdio)
        .chain(fds.joins)
        .chain(fds.cgroup_tasks)
        .filter_map(|fd| u32::try_from(fd).ok())
        .filter(|&fd| fd >= first_free);
    for (slot, fd) in kept.iter_mut().zip(named) {
        *slot = fd;
    }
    kept.sort_unstable();
    let mut lo = first_free;
    for &fd in kept.iter().chain([u32::MAX].iter()) {
        if fd > lo {
            let hi = if fd == u32::MAX {
                u32::MAX
            } else {
                fd.saturating_sub(1)
            };
            match sys::close_range(lo, hi, 0) {
                Ok(()) => {}
                Err(libc::ENOSYS) | Err(libc::EINVAL) => {
                    return close_listed(first_free, &kept);
                }
                Err(e) => return Err(e),
            }
        }
        lo = lo.max(fd.saturating_add(1));
    }
    Ok(())
}

/// Moves `fd` to the lowest free descriptor from `first` on (close-on-exec)
/// if it is below, and closes the original.
fn above(fd: c_int, first: c_int) -> SysResult<c_int> {
    if fd >= first {
        return Ok(fd);
    }
    let moved = sys::fcntl(fd, libc::F_DUPFD_CLOEXEC, first as usize)? as c_int;
    let _ = sys::close(fd);
    Ok(moved)
}

/// The descriptors of `args`, those inside the preserved range
/// (`3..3+preserve`) moved above it, then the passed descriptors moved
/// into it. Before anything else: whatever the embedder had at those
/// numbers (copied by the clone) must not reach the container.
fn relocate_fds(args: &ChildArgs) -> SysResult<Fds> {
    let preserve = args
        .plan
        .steps
        .iter()
        .find_map(|s| match s {
            Step::CloseFds { preserve } => Some(*preserve),
            _ => None,
        })
        .unwrap_or(0);
    let first_free = c_int::try_from(preserve.saturating_add(3)).map_err(|_| libc::EMFILE)?;
    let mut fds = Fds {
        sync: args.sync,
        fifo: args.fifo,
        exec_report: args.exec_report,
        waiter: args.waiter,
        stdio: args.stdio,
        joins: [-1; MAX_JOINS],
        cgroup_tasks: [-1; MAX_CGROUP_TASKS],
        first_free,
    };
    if args.joins.len() > MAX_JOINS || args.cgroup_tasks.len() > MAX_CGROUP_TASKS {
        return Err(libc::E2BIG);
    }
    for (slot, &fd) in fds.joins.iter_mut().zip(args.joins.iter()) {
        *slot = fd;
    }
    for (slot, &fd) in fds.cgroup_tasks.iter_mut().zip(args.cgroup_tasks.iter()) {
        *slot = fd;
    }
    // Copies first, closes after: two entries may name one descriptor.
    let mut old = [-1; 5 + MAX_JOINS];
    let mut old_slots = old.iter_mut();
    let slots = [&mut fds.sync, &mut fds.fifo]
        .into_iter()
        .chain(fds.stdio.iter_mut())
        .chain(fds.joins.iter_mut());
    for fd in slots {
        if *fd >= 3 && *fd < first_free {
            if let Some(o) = old_slots.next() {
                *o = *fd;
            }
            *fd = sys::fcntl(*fd, libc::F_DUPFD_CLOEXEC, first_free as usize)? as c_int;
        }
    }
    for &fd in old.iter().filter(|&&fd| fd >= 0) {
        let _ = sys::close(fd);
    }
    // The passed descriptors into the range, in order. The parent placed
    // their sources above it; `close_foreign_fds` closes those after.
    for (target, &fd) in (3..first_free).zip(args.passed.iter()) {
        sys::dup3(fd, target, 0)?;
    }
    Ok(fds)
}

/// [`close_foreign_fds`] before Linux 5.9: closes each descriptor from
/// `first` on, but those in `kept`.
fn close_listed(first: u32, kept: &[u32]) -> SysResult<()> {
    for_each_fd(first, |fd| {
        if !kept.contains(&fd) {
            let _ = sys::close(fd as c_int);
        }
    })
}

/// Calls `f` with each open descriptor from `first` on, as `/proc/self/fd`
/// lists them (without the one reading the list).
fn for_each_fd(first: u32, mut f: impl FnMut(u32)) -> SysResult<()> {
    let dir = Fd(sys::openat(
        AT_FDCWD,
        c"/proc/self/fd",
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    )?);
    let mut buf = [0u8; 1024];
    loop {
        let n = sys::getdents64(dir.0, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        // `struct linux_dirent64`: d_ino (8), d_off (8), d_reclen (2),
        // d_type (1), then the NUL-terminated name.
        let mut rest = buf.get(..n).unwrap_or_default();
        while let Some(&[lo, hi]) = rest.get(16..18) {
            let reclen = usize::from(u16::from_ne_bytes([lo, hi]));
            let name = rest.get(19..reclen).unwrap_or_default();
            rest = rest.get(reclen.max(1)..).unwrap_or_default();
            match parse_fd(name) {
                Some(fd) if fd >= first && fd as c_int != dir.0 => f(fd),
                _ => {}
            }
        }
    }
}

/// A descriptor number from a `/proc/self/fd` entry's name (`.` and `..`
/// are none).
fn parse_fd(name: &[u8]) -> Option<u32> {
    let digits = name.split(|&b| b == 0).next()?;
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u32, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?
            .checked_add(u32::from(b.wrapping_sub(b'0')))
    })
}

fn close_fds(preserve: u32) -> SysResult<()> {
    let first = preserve.saturating_add(3);
    for fd in 3..first {
        match sys::fcntl(fd as c_int, libc::F_SETFD, 0) {
            Ok(_) | Err(libc::EBADF) => {}
            Err(e) => return Err(e),
        }
    }
    match sys::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) {
        Ok(()) => return Ok(()),
        Err(libc::EINVAL) | Err(libc::ENOSYS) => {}
        Err(e) => return Err(e),
    }
    // Before Linux 5.11: list our descriptors and mark each.
    for_each_fd(first, |fd| {
        let _ = sys::fcntl(fd as c_int, libc::F_SETFD, libc::FD_CLOEXEC as usize);
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn proc_paths_are_formatted_without_allocating() {
        let mut buf = [0xffu8; 32];
        assert_eq!(proc_fd_path(7, &mut buf), c"/proc/self/fd/7");
        assert_eq!(proc_path(b"/dev/pts/", 0, &mut buf), c"/dev/pts/0");
        assert_eq!(
            proc_path(b"/proc/self/fd/", u32::MAX, &mut buf),
            c"/proc/self/fd/4294967295"
        );
        // Too long for the buffer: the empty path, never an overrun.
        assert_eq!(proc_path(&[b'x'; 30], 123, &mut buf), c"");
    }

    #[test]
    fn proc_fd_entries_parse_as_numbers_only() {
        assert_eq!(parse_fd(b"12\0\0\0"), Some(12));
        assert_eq!(parse_fd(b"0\0"), Some(0));
        assert_eq!(parse_fd(b".\0"), None);
        assert_eq!(parse_fd(b"..\0"), None);
        assert_eq!(parse_fd(b"\0"), None);
        assert_eq!(parse_fd(b"99999999999\0"), None);
    }
}
