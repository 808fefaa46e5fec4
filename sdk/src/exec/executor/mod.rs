//! The child's walk over the plan. Raw system calls only: nothing here may
//! allocate, lock, log or touch libc's `errno`, because the child may share
//! the parent's memory and runs right after `clone` in a multi-threaded
//! process.
//!
//! A file per kernel interface:
//!
//! | file | interface | steps |
//! |------|-----------|-------|
//! | [`fds`] | the descriptor table (`fcntl`, `dup3`, `close_range`, `getdents64` of `/proc/self/fd`) | `Stdio`, `CloseFds`, and the relocation before the first step |
//! | [`namespaces`] | `setns`, `unshare`, UTS names, the loopback device | `JoinNamespace`, `UnshareCgroup`, `UnshareTime`, `LoopbackUp`, `Hostname`, `Domainname` |
//! | [`resolve`] | in-root path resolution (`openat2`, or a walk without symlinks) | (used by the mount steps) |
//! | [`mounts`] | `mount`, `mount_setattr`, `fsopen`, `pivot_root`, `mknodat` | `BindRootfs` … `Symlink`, `PivotRoot`, `MoveRoot`, `Chroot`, `MaskPath`, `ReadonlyPath`, `ReadonlyRoot` |
//! | [`console`] | the pseudo-terminal (`/dev/ptmx` ioctls) | `Console` |
//! | [`creds`] | ids and capabilities (`setres[ug]id`, `setgroups`, `capset`, capability `prctl`s) | `BecomeRoot`, `DropBoundingCaps`, `KeepCaps`, `SetGroups`, `SetGid`, `SetUid`, `SetCaps`, `AmbientCaps` |
//! | [`seccomp`] | `seccomp(2)` and the notify descriptor's hand-over | `NoNewPrivileges`, `Seccomp` |
//! | [`process`] | the process's own attributes, its `/proc` files, the cwd and `execve` | the rest |

mod console;
mod creds;
mod fds;
mod mounts;
mod namespaces;
mod process;
mod resolve;
mod seccomp;

use core::ffi::CStr;
use libc::c_int;

use super::sys::{self, SysResult};
use super::{ChildArgs, Report};
use crate::plan::Step;
use fds::Fds;

pub(super) use fds::preserved;

const AT_FDCWD: c_int = libc::AT_FDCWD;
const PATH_CLOEXEC: c_int = libc::O_PATH | libc::O_CLOEXEC;

/// Exit code of a child whose set-up failed before `execve`.
const EXIT_SETUP_FAILED: c_int = 1;

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
    let fds = match fds::relocate_fds(args) {
        Ok(fds) => fds,
        Err(errno) => {
            report(
                args.sync,
                Report {
                    kind: Report::FAILED,
                    step: Report::BEFORE_STEPS,
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
    // Without root, the child raises its own oom_score_adj first, while
    // the file is still its own (see below).
    let mut first = 0;
    if let Some(step @ Step::OomScoreAdj { .. }) = args.plan.steps.first() {
        first = 1;
        if let Err(errno) = ex.step(step) {
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
    }
    // A fork-like child (one that joins a pid or user namespace) has a copy
    // of the embedder's memory of its own: it alone goes non-dumpable, so
    // that without CAP_SYS_PTRACE nothing in the namespaces it joins can
    // read that copy or reach our binary through /proc/<pid>/exe. (A
    // shared-memory child must not: the flag would be the embedder's.)
    //
    // Without root, the child stays dumpable until the parent has written
    // its id maps (the first `AwaitParent`): a non-dumpable process's /proc
    // files are root's, which the unprivileged parent (and newuidmap)
    // could not write. Until then it is in no namespace of a container's
    // (an `exec` joins them after that step), and every process that could
    // trace it is the same user's, who could trace the parent too.
    let mut nondumpable =
        !args.plan.share_memory && !super::sabotage_bit(args, super::SABOTAGE_DUMPABLE);
    if nondumpable && !args.plan.rootless {
        let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        nondumpable = false;
    }
    // The clone copied every descriptor of the embedding process: other
    // containers' sync sockets and pipes among them. Held here while this
    // container waits for `start`, they would keep those from ever seeing
    // EOF; and nothing of the host's belongs in a container.
    if let Err(errno) = fds::close_foreign_fds(&ex.fds) {
        report(
            sync,
            Report {
                kind: Report::FAILED,
                step: Report::BEFORE_STEPS,
                errno,
                _pad: 0,
            },
            None,
        );
        sys::exit_group(EXIT_SETUP_FAILED);
    }
    for (i, step) in args.plan.steps.iter().enumerate().skip(first) {
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
            sys::exit_group(exit_code(step, errno));
        }
        if nondumpable && matches!(step, Step::AwaitParent) {
            let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
            nondumpable = false;
        }
    }
    // The plan always ends with `Exec`, which does not return on success.
    sys::exit_group(EXIT_SETUP_FAILED)
}

/// The exit code of a child whose `step` failed with `errno`: a shell's
/// 127 for an executable not found, 126 for one that would not run.
fn exit_code(step: &Step, errno: c_int) -> c_int {
    match step {
        Step::Exec if errno == libc::ENOENT => 127,
        Step::Exec => 126,
        _ => EXIT_SETUP_FAILED,
    }
}

/// Sends a report (and optionally a descriptor) to the parent. Failures are
/// ignored: a parent that is gone cannot be told anything.
fn report(sync: c_int, r: Report, fd: Option<c_int>) {
    let bytes = r.to_bytes();
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

/// Sends the parent a report of `kind` with nothing else in it.
fn report_kind(sync: c_int, kind: u32, fd: Option<c_int>) {
    report(
        sync,
        Report {
            kind,
            ..Default::default()
        },
        fd,
    );
}

/// Reads the parent's one-byte go-ahead from the sync socket (or the exec
/// FIFO); anything else, EOF included, is `EPIPE`.
fn await_byte(fd: c_int) -> SysResult<()> {
    let mut b = [0u8; 1];
    match sys::read(fd, &mut b)? {
        1 => Ok(()),
        _ => Err(libc::EPIPE),
    }
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

/// Closes a descriptor when dropped.
struct Fd(c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        if self.0 >= 0 {
            let _ = sys::close(self.0);
        }
    }
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

impl Executor<'_> {
    /// One step: the table from plan to kernel interface.
    fn step(&mut self, step: &Step) -> SysResult<()> {
        let a = self.args;
        let sync = self.fds.sync;
        match step {
            Step::ResetSignals => {
                self.caller_umask = process::reset_signals();
                Ok(())
            }
            Step::JoinCgroup => self.fds.join_cgroup(),
            Step::AwaitParent => await_byte(sync),
            Step::AwaitHooks => {
                report_kind(sync, Report::HOOKS, None);
                await_byte(sync)
            }
            Step::JoinNamespace { index, ns } => namespaces::join(&self.fds, *index, *ns),
            Step::BecomeRoot => creds::become_root(),
            Step::ForkIntoPidNamespace => namespaces::fork_into_pid_namespace(sync),
            Step::OomScoreAdj { value } => process::oom_score_adj(*value),
            Step::UnshareCgroup => namespaces::unshare_cgroup(),
            Step::UnshareTime { offsets } => namespaces::unshare_time(offsets.as_ref()),
            Step::MemoryPolicy { mode, nodes } => sys::set_mempolicy(*mode, nodes),
            Step::SetSid => sys::setsid(),
            Step::LoopbackUp => namespaces::loopback_up(),
            Step::Propagation { target, flags } => {
                sys::mount(None, target.as_c(), None, *flags, None)
            }
            Step::MountRootfs {
                rootfs,
                fstype,
                source,
                data,
            } => sys::mount(
                Some(source.as_c()),
                rootfs.as_c(),
                Some(fstype.as_c()),
                0,
                Some(data.as_c()),
            ),
            Step::BindRootfs { rootfs } => self.bind_rootfs(rootfs.as_c()),
            Step::Mount(m) => self.mount(m),
            Step::Remount { target, flags } => self.remount(target, *flags),
            Step::MountSetattr { target, set, clear } => self.mount_setattr(target, *set, *clear),
            Step::Device(d) => self.device(d),
            Step::Symlink { target, link } => self.symlink(target.as_c(), link),
            Step::PivotRoot => self.pivot_root(),
            Step::Chroot => self.chroot(),
            Step::MoveRoot => self.move_root(),
            Step::Console { size, bind_console } => {
                console::console(sync, *size, *bind_console, a.sabotage, self.procfd)
            }
            Step::Stdio => self.fds.stdio(),
            Step::Sysctl { path, value } => self.write_proc(path.as_c(), value.as_c().to_bytes()),
            Step::MaskPath { path } => mounts::mask_path(path.as_c(), a.sabotage, self.procfd),
            Step::ReadonlyPath { path } => mounts::readonly_path(path.as_c()),
            Step::ReadonlyRoot => mounts::readonly_root(),
            Step::Hostname { name } => sys::sethostname(name.as_c().to_bytes()),
            Step::Domainname { name } => sys::setdomainname(name.as_c().to_bytes()),
            Step::Rlimit {
                resource,
                soft,
                hard,
            } => sys::prlimit(*resource, *soft, *hard),
            Step::Personality { persona } => sys::personality(*persona),
            Step::Scheduler(s) => process::scheduler(s),
            Step::IoPriority { value } => sys::ioprio_set(*value),
            Step::ProcAttr { path, value } => self.write_proc(path.as_c(), value.as_c().to_bytes()),
            Step::DropBoundingCaps { keep, last_cap } => creds::drop_bounding(*keep, *last_cap),
            Step::KeepCaps => creds::keep_caps(),
            Step::SetGroups { gids } => sys::setgroups(gids),
            Step::SetGid { gid } => sys::setresgid(*gid, *gid, *gid),
            Step::SetUid { uid } => sys::setresuid(*uid, *uid, *uid),
            Step::SetCaps {
                effective,
                permitted,
                inheritable,
            } => sys::capset(&creds::cap_data(*effective, *permitted, *inheritable)),
            Step::AmbientCaps { ambient } => creds::ambient(*ambient),
            Step::ChdirAsRoot { cwd } => {
                self.chdir_as_root(cwd.as_c());
                Ok(())
            }
            Step::Chdir { cwd } => self.chdir(cwd.as_c()),
            Step::Umask { mask } => {
                sys::umask(mask.unwrap_or(self.caller_umask));
                Ok(())
            }
            Step::NoNewPrivileges => seccomp::no_new_privileges(),
            Step::Seccomp(f) => seccomp::load(sync, f),
            Step::FindExecutable => self.find_executable(),
            Step::CloseFds { preserve } => fds::close_fds(*preserve),
            Step::AwaitStart => self.await_start(),
            Step::Exec => self.exec(),
        }
    }
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
    fn proc_paths_fill_the_buffer_to_its_last_byte_but_one() {
        let mut buf = [0xffu8; 32];
        // 21 bytes of prefix and 10 digits: 31, and the NUL in the last.
        let prefix = [b'p'; 21];
        let path = proc_path(&prefix, 1_000_000_000, &mut buf);
        assert_eq!(path.to_bytes().len(), 31);
        assert!(path.to_bytes().ends_with(b"p1000000000"));
        // One more byte and nothing is left for the NUL.
        assert_eq!(proc_path(&[b'p'; 22], 1_000_000_000, &mut buf), c"");
        // A negative descriptor is formatted as its u32 (the call fails).
        assert_eq!(proc_fd_path(-1, &mut buf), c"/proc/self/fd/4294967295");
    }

    #[test]
    fn a_failed_execve_exits_as_a_shell_would() {
        assert_eq!(exit_code(&Step::Exec, libc::ENOENT), 127);
        assert_eq!(exit_code(&Step::Exec, libc::EACCES), 126);
        assert_eq!(exit_code(&Step::Exec, libc::ENOEXEC), 126);
        // Every other step: the set-up failure code, whatever the errno.
        assert_eq!(exit_code(&Step::FindExecutable, libc::ENOENT), 1);
        assert_eq!(exit_code(&Step::PivotRoot, libc::EINVAL), 1);
    }
}
