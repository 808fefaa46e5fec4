//! The post-clone executor and the parent's side of the clone.
//!
//! [`spawn`] clones the container's first process into [`child_entry`],
//! which walks the [`Plan`]'s steps with raw system calls only (no
//! allocation, no locks, no libc `errno`). On failure the child sends
//! `(step index, errno)` to the parent over the sync socket and exits; the
//! parent turns that into an [`Error::Init`](crate::Error::Init) naming the
//! step and its path.
//!
//! The parent/child protocol over the `SOCK_SEQPACKET` sync socket:
//!
//! | from   | message            | meaning |
//! |--------|--------------------|---------|
//! | parent | one byte           | go on (after id maps + cgroup; after hooks) |
//! | child  | [`Report::HOOKS`]   | mounts done, waiting for the hooks |
//! | child  | [`Report::CONSOLE`] | the pty master, as `SCM_RIGHTS` |
//! | child  | [`Report::SECCOMP`] | the seccomp notify fd, as `SCM_RIGHTS`; waits for a byte |
//! | child  | [`Report::CREATED`] | ready, blocked on the exec FIFO |
//! | child  | [`Report::FAILED`]  | a step failed |
//! | —      | EOF                | the child exec'd (the socket is close-on-exec) or died |
//!
//! Nothing in this module may unwind into a thread state the child shares
//! with the embedder: no indexing, unchecked arithmetic, panics or unwraps
//! (clippy's restriction lints, denied below).

#![deny(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::panic_in_result_fn
)]

pub(crate) mod clone;
mod executor;
pub(crate) mod fallbacks;
pub(crate) mod spawner;
pub(crate) mod sys;
pub(crate) mod waiter;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

use libc::c_char;

use crate::plan::{Namespace, Plan};
use clone::{ChildStack, Cloned, SignalsBlocked};

/// A message from the child.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Report {
    pub kind: u32,
    pub step: u32,
    pub errno: i32,
    pub _pad: u32,
}

impl Report {
    pub const HOOKS: u32 = 1;
    pub const CONSOLE: u32 = 2;
    pub const CREATED: u32 = 3;
    pub const FAILED: u32 = 4;
    pub const SECCOMP: u32 = 5;
    /// The child forked into a joined pid namespace: `step` holds the new
    /// process's pid, and a pidfd for it comes with the report.
    pub const FORKED: u32 = 6;
    pub const SIZE: usize = std::mem::size_of::<Report>();
    /// The `step` of a [`Report::FAILED`] before the first step: while
    /// the child moved its own descriptors out of the range the container
    /// inherits, or closed the embedder's.
    pub const BEFORE_STEPS: u32 = u32::MAX;

    pub(crate) fn from_bytes(b: &[u8]) -> Option<Report> {
        if b.len() != Self::SIZE {
            return None;
        }
        let word = |i: usize| -> Option<u32> {
            let bytes = b.get(i..i.checked_add(4)?)?;
            Some(u32::from_ne_bytes(bytes.try_into().ok()?))
        };
        Some(Report {
            kind: word(0)?,
            step: word(4)?,
            errno: word(8)? as i32,
            _pad: 0,
        })
    }

    /// The bytes of the report as [`Report::from_bytes`] reads them (the
    /// padding is zero).
    pub(crate) fn to_bytes(self) -> [u8; Report::SIZE] {
        let mut b = [0u8; Report::SIZE];
        b[0..4].copy_from_slice(&self.kind.to_ne_bytes());
        b[4..8].copy_from_slice(&self.step.to_ne_bytes());
        b[8..12].copy_from_slice(&self.errno.to_ne_bytes());
        b
    }
}

/// Descriptors the child needs, by number in its (copied) fd table.
#[derive(Debug)]
pub(crate) struct ChildFds {
    /// The child's end of the sync socket (close-on-exec).
    pub sync: OwnedFd,
    /// The exec FIFO, opened read-write (close-on-exec); only for plans
    /// that wait for `start`.
    pub fifo: Option<OwnedFd>,
    /// With `fifo`: the child's end of the socket on which `berth-waiter`
    /// reports a failed `execve` at `start` (see [`waiter`]).
    pub exec_report: Option<OwnedFd>,
    /// `plan.joins` in order.
    pub joins: Vec<OwnedFd>,
    /// Descriptors for 0, 1 and 2; `None` leaves the inherited one.
    pub stdio: [Option<OwnedFd>; 3],
    /// Descriptors the process is given at 3, 4, … in this order (the
    /// plan's `CloseFds { preserve }` counts them).
    pub passed: Vec<OwnedFd>,
    /// The `tasks` files of the v1 cgroups to join, open for writing (the
    /// plan's `JoinCgroup`).
    pub cgroup_tasks: Vec<OwnedFd>,
}

/// Everything the child reads. Lives at a fixed address (boxed) until the
/// child has exec'd or died.
struct ChildArgs {
    plan: Arc<Plan>,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    sync: RawFd,
    fifo: RawFd,
    exec_report: RawFd,
    /// The sealed `berth-waiter` memfd; -1 for plans that do not wait.
    waiter: RawFd,
    /// `berth-waiter FIFO REPORT STEP PATH argv...`, one per executable
    /// candidate of the plan (the child picks one; it may not allocate).
    waiter_argv: Vec<Vec<*const c_char>>,
    /// Owns the strings `waiter_argv` points at.
    _waiter_strings: [CString; 3],
    joins: Vec<RawFd>,
    stdio: [RawFd; 3],
    /// `fds.passed`, placed above the range they go to: the child moves
    /// `passed[i]` to `3 + i`.
    passed: Vec<RawFd>,
    /// `fds.cgroup_tasks`, placed above that range.
    cgroup_tasks: Vec<RawFd>,
    /// `SABOTAGE_*` bits (debug builds, escape tests only).
    sabotage: u32,
}

/// Memory a shared-memory child may still be using (its stack and the
/// plan). It is freed only through [`ChildMemory::release`], once the child
/// is known to have exec'd or died; dropped without that (a create dropped
/// while the child sets up), it is leaked on purpose: the child may still
/// run on it, even after this process has exited, since it holds the
/// address space.
pub(crate) struct ChildMemory {
    args: Option<Box<ChildArgs>>,
    stack: Option<ChildStack>,
}

impl ChildMemory {
    /// Frees the memory: the caller saw the child exec (EOF on the sync
    /// socket) or reaped it.
    pub(crate) fn release(mut self) {
        self.args.take();
        self.stack.take();
    }
}

impl Drop for ChildMemory {
    fn drop(&mut self) {
        // A private (fork-like) child has its own copy: nothing to protect.
        let shared = self.args.as_ref().is_some_and(|a| a.plan.share_memory);
        if shared {
            std::mem::forget(self.stack.take());
            std::mem::forget(self.args.take());
        }
    }
}

impl std::fmt::Debug for ChildMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChildMemory")
    }
}

// SAFETY: the raw pointers in `ChildArgs` point into the `Arc<Plan>` and
// the strings it owns; nothing dereferences them in the parent.
unsafe impl Send for ChildMemory {}
// SAFETY: as above; the parent never reads through them.
unsafe impl Sync for ChildMemory {}

/// A cloned child, waiting at its first step for the parent's go-ahead.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// Whether the child was started inside its cgroup (`CLONE_INTO_CGROUP`).
    pub in_cgroup: bool,
    /// Keep alive until the sync socket reports EOF (exec or exit).
    pub memory: ChildMemory,
}

/// Clones the container's first process. Blocks the calling thread for the
/// duration of the clone (~1 ms with a new network namespace): call it from
/// a blocking-capable thread.
///
/// `pid_ns` is a pid namespace to start the child in (joined by path).
/// Nothing of this process's own state changes (not its dumpable flag, not
/// its signal dispositions).
pub(crate) fn spawn(
    plan: Arc<Plan>,
    fds: &ChildFds,
    cgroup: Option<RawFd>,
    pid_ns: Option<RawFd>,
) -> io::Result<Spawned> {
    spawn_with_waiter(plan, fds, cgroup, pid_ns, None)
}

/// [`spawn`], with `waiter` as `berth-waiter`'s memfd (`None`: the
/// process's, [`waiter::fd`]; the spawner thread has a copy in its own
/// descriptor table).
pub(crate) fn spawn_with_waiter(
    plan: Arc<Plan>,
    fds: &ChildFds,
    cgroup: Option<RawFd>,
    pid_ns: Option<RawFd>,
    waiter: Option<BorrowedFd<'_>>,
) -> io::Result<Spawned> {
    fallbacks::init();
    let cstrs = |v: &[crate::plan::CPath]| {
        v.iter()
            .map(|c| c.as_c().as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect::<Vec<_>>()
    };
    let argv = cstrs(&plan.exec.argv);
    // The numbers of these three go into berth-waiter's arguments: they
    // must be where the child keeps them, above the descriptors the
    // container inherits (`3..3+preserve`, which the child clears of its
    // own). Copies made here live until the clone has copied our table.
    let first_free = executor::preserved(&plan.steps).saturating_add(3);
    let mut moved = Vec::new();
    let mut above = |fd: Option<BorrowedFd<'_>>| -> io::Result<RawFd> {
        let Some(fd) = fd else { return Ok(-1) };
        if fd.as_raw_fd() as u32 >= first_free {
            return Ok(fd.as_raw_fd());
        }
        let copy = rustix::io::fcntl_dupfd_cloexec(fd, first_free.min(i32::MAX as u32) as RawFd)?;
        moved.push(copy);
        Ok(moved.last().map_or(-1, AsRawFd::as_raw_fd))
    };
    let fifo = above(fds.fifo.as_ref().map(AsFd::as_fd))?;
    let exec_report = above(fds.exec_report.as_ref().map(AsFd::as_fd))?;
    let waiter = if fifo >= 0 && exec_report >= 0 {
        let memfd = match waiter {
            Some(fd) => fd,
            None => waiter::fd()?,
        };
        above(Some(memfd))?
    } else {
        -1
    };
    // Above the range too, so that the child's moves into it never
    // overwrite a descriptor still to be moved.
    let passed = fds
        .passed
        .iter()
        .map(|fd| above(Some(fd.as_fd())))
        .collect::<io::Result<Vec<_>>>()?;
    let cgroup_tasks = fds
        .cgroup_tasks
        .iter()
        .map(|fd| above(Some(fd.as_fd())))
        .collect::<io::Result<Vec<_>>>()?;
    if passed.len() != first_free.saturating_sub(3) as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the plan's preserved range does not match the descriptors passed",
        ));
    }
    let exec_step = plan
        .steps
        .iter()
        .position(|s| matches!(s, crate::plan::Step::Exec))
        .unwrap_or(0);
    // (Digits never hold a NUL.)
    let number = |n: usize| CString::new(n.to_string()).unwrap_or_default();
    let strings = [
        number(fifo.max(0) as usize),
        number(exec_report.max(0) as usize),
        number(exec_step),
    ];
    let waiter_argv = plan
        .exec
        .candidates
        .iter()
        .map(|path| {
            [waiter::ARGV0.as_ptr()]
                .into_iter()
                .chain(strings.iter().map(|s| s.as_ptr()))
                .chain([path.as_c().as_ptr()])
                .chain(argv.iter().copied())
                .collect()
        })
        .collect();
    let args = Box::new(ChildArgs {
        envp: cstrs(&plan.exec.env),
        argv,
        sync: fds.sync.as_raw_fd(),
        fifo,
        exec_report,
        waiter,
        waiter_argv,
        _waiter_strings: strings,
        joins: fds.joins.iter().map(AsRawFd::as_raw_fd).collect(),
        stdio: fds
            .stdio
            .each_ref()
            .map(|fd| fd.as_ref().map_or(-1, AsRawFd::as_raw_fd)),
        passed,
        cgroup_tasks,
        sabotage: sabotage_bits(),
        plan,
    });
    let stack = if args.plan.share_memory {
        Some(ChildStack::new()?)
    } else {
        None
    };
    let mut flags = args.plan.clone_flags();
    if args.plan.share_memory {
        flags |= libc::CLONE_VM as u64;
    }
    let pid_ns_guard = pid_ns.map(PidNsGuard::enter).transpose()?;
    if pid_ns_guard.is_some() {
        flags &= !(Namespace::Pid.clone_flag());
    }
    let arg = &*args as *const ChildArgs as *mut libc::c_void;
    let result = {
        let _blocked = SignalsBlocked::new();
        // SAFETY: `child_entry` only makes raw system calls and reads
        // `args` and the plan, both kept alive by the returned
        // `ChildMemory` until the child is gone or exec'd; signals are
        // blocked around the clone.
        unsafe { clone::clone_child(flags, stack.as_ref(), cgroup, child_entry, arg) }
    };
    drop(pid_ns_guard);
    drop(moved);
    let (Cloned { pid, pidfd }, in_cgroup) = result?;
    Ok(Spawned {
        pid,
        pidfd,
        in_cgroup,
        memory: ChildMemory {
            args: Some(args),
            stack,
        },
    })
}

/// Sabotage bits the child reads (it may not read the environment).
pub(crate) const SABOTAGE_CWD: u32 = 1;
/// Resolve in-root paths with plain `openat`, following symlinks anywhere.
pub(crate) const SABOTAGE_RESOLVE: u32 = 2;
/// Bind `/dev/null` and `/dev/console` by path, unverified.
pub(crate) const SABOTAGE_DEVICES: u32 = 4;
/// Write sysctls through the container's `/proc` by path.
pub(crate) const SABOTAGE_PROC: u32 = 8;
/// Wait for `start` as the cloned process itself, not as `berth-waiter`.
pub(crate) const SABOTAGE_WAITER: u32 = 16;
/// Leave a fork-like child dumpable.
pub(crate) const SABOTAGE_DUMPABLE: u32 = 32;

fn sabotage_bit(args: &ChildArgs, bit: u32) -> bool {
    args.sabotage & bit != 0
}

fn sabotage_bits() -> u32 {
    [
        ("cwd", SABOTAGE_CWD),
        ("resolve", SABOTAGE_RESOLVE),
        ("devices", SABOTAGE_DEVICES),
        ("proc", SABOTAGE_PROC),
        ("waiter", SABOTAGE_WAITER),
        ("dumpable", SABOTAGE_DUMPABLE),
    ]
    .iter()
    .filter(|(name, _)| sabotage(name))
    .fold(0, |acc, (_, bit)| acc | bit)
}

/// Whether the escape tests asked to switch off protection `name`
/// (`BERTH_TEST_SABOTAGE=dumpable,...`), to show that they then fail.
/// Only in debug builds: a release build ignores the variable.
pub(crate) fn sabotage(name: &str) -> bool {
    cfg!(debug_assertions)
        && std::env::var("BERTH_TEST_SABOTAGE").is_ok_and(|v| v.split(',').any(|s| s == name))
}

/// Points the calling thread's future children at another pid namespace and
/// back on drop.
struct PidNsGuard(OwnedFd);

impl PidNsGuard {
    fn enter(target: RawFd) -> io::Result<PidNsGuard> {
        let own = std::fs::File::open("/proc/thread-self/ns/pid")?;
        nix_setns(target)?;
        Ok(PidNsGuard(own.into()))
    }
}

impl Drop for PidNsGuard {
    fn drop(&mut self) {
        let _ = nix_setns(self.0.as_raw_fd());
    }
}

fn nix_setns(fd: RawFd) -> io::Result<()> {
    sys::setns(fd, libc::CLONE_NEWPID).map_err(io::Error::from_raw_os_error)
}

/// The child's entry point.
extern "C" fn child_entry(arg: *mut libc::c_void) -> ! {
    // SAFETY: `arg` is the `ChildArgs` the parent keeps alive (and does not
    // modify) until this process has exec'd or exited.
    let args = unsafe { &*(arg as *const ChildArgs) };
    executor::run(args)
}

/// Makes `cmd` run inside the namespaces behind `fds` (each with its
/// `CLONE_NEW*` type), entered in the forked child just before `execve`.
/// Used for hooks that the OCI spec runs "in the container namespace".
pub(crate) fn enter_namespaces(
    cmd: &mut tokio::process::Command,
    fds: Vec<(OwnedFd, libc::c_int)>,
) {
    // SAFETY: the closure runs between fork and exec in the child; it only
    // makes raw setns calls (no allocation: `from_raw_os_error` builds an
    // inline value) on descriptors it owns.
    unsafe {
        cmd.pre_exec(move || {
            for (fd, nstype) in &fds {
                sys::setns(fd.as_raw_fd(), *nstype).map_err(io::Error::from_raw_os_error)?;
            }
            Ok(())
        });
    }
}

/// A pidfd for `pid` (`pidfd_open`, Linux 5.3).
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let fd = sys::pidfd_open(pid).map_err(io::Error::from_raw_os_error)?;
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Receives one [`Report`] (and a descriptor passed with it) from the
/// child. `Ok(None)` is EOF: the child exec'd or died.
pub(crate) fn recv_report(sock: &OwnedFd) -> io::Result<Option<(Report, Option<OwnedFd>)>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; Report::SIZE];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let n = msg.bytes;
    let mut passed = None;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: SCM_RIGHTS installed these descriptors in our
                // table just now; we are their only owner.
                let owned = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                passed.get_or_insert(owned);
            }
        }
    }
    if n == 0 {
        return Ok(None);
    }
    let report = Report::from_bytes(buf.get(..n).unwrap_or_default())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short report from child"))?;
    Ok(Some((report, passed)))
}

/// Registers an owned descriptor with tokio's reactor.
pub(crate) fn register(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` owns its descriptor: it stays open and the same
    // for as long as the `AsyncFd` holds it.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}

/// Makes `cmd` start with `fds` as its descriptors `first`, `first + 1`,
/// … (dup3 in the forked child, which also clears close-on-exec on the
/// copies). The sources are first copied above the range here, so that no
/// move in the child overwrites a descriptor still to be moved.
pub(crate) fn pass_fds(
    cmd: &mut tokio::process::Command,
    fds: Vec<OwnedFd>,
    first: libc::c_int,
) -> io::Result<()> {
    let end =
        range_end(first, fds.len()).ok_or_else(|| io::Error::from_raw_os_error(libc::EMFILE))?;
    let sources = fds
        .into_iter()
        .map(|fd| {
            if fd.as_raw_fd() >= end {
                Ok(fd)
            } else {
                rustix::io::fcntl_dupfd_cloexec(&fd, end).map_err(io::Error::from)
            }
        })
        .collect::<io::Result<Vec<OwnedFd>>>()?;
    // SAFETY: the closure runs between fork and exec; it makes raw dup3
    // calls (no allocation) on descriptors it owns.
    unsafe {
        cmd.pre_exec(move || {
            for (target, fd) in (first..).zip(&sources) {
                sys::dup3(fd.as_raw_fd(), target, 0).map_err(io::Error::from_raw_os_error)?;
            }
            Ok(())
        });
    }
    Ok(())
}

/// The end of the range `first..first + n` of descriptors passed, if it
/// is a descriptor number (a negative `first` is none).
fn range_end(first: libc::c_int, n: usize) -> Option<libc::c_int> {
    usize::try_from(first)
        .ok()
        .and_then(|f| f.checked_add(n))
        .and_then(|e| libc::c_int::try_from(e).ok())
}

/// Takes ownership of descriptors `first..first + n` this process was
/// started with (the shim's reply pipe and the descriptors it passes on),
/// making them close-on-exec. A descriptor of the range that is not open
/// is an error naming it.
pub(crate) fn inherited_fds(first: libc::c_int, n: u32) -> io::Result<Vec<OwnedFd>> {
    (0..n)
        .map(|i| {
            let fd = libc::c_int::try_from(i)
                .ok()
                .and_then(|i| first.checked_add(i))
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
            inherited_fd(fd).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("descriptor {fd} is not open"),
                )
            })
        })
        .collect()
}

/// Takes ownership of a descriptor this process was started with (the
/// shim's reply pipe on fd 3), if it is open.
pub(crate) fn inherited_fd(fd: libc::c_int) -> Option<OwnedFd> {
    // F_GETFD fails with EBADF on a descriptor that is not open.
    sys::fcntl(fd, libc::F_GETFD, 0).ok()?;
    let _ = sys::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC as usize);
    // SAFETY: the descriptor is open and, by the shim's calling convention,
    // nothing else in this process uses it.
    Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_back_as_written() {
        let r = Report {
            kind: Report::FAILED,
            step: 41,
            errno: -libc::ENOENT,
            _pad: 7,
        };
        let b = r.to_bytes();
        assert_eq!(b.len(), 16);
        // The padding goes out as zero.
        assert_eq!(&b[12..], &[0; 4]);
        let back = Report::from_bytes(&b).unwrap();
        assert_eq!(back, Report { _pad: 0, ..r });
        assert_eq!(
            Report::from_bytes(&Report::default().to_bytes()),
            Some(Report::default())
        );
    }

    #[test]
    fn a_report_of_another_size_is_refused() {
        let b = Report {
            kind: Report::CREATED,
            ..Default::default()
        }
        .to_bytes();
        assert_eq!(Report::from_bytes(&b[..15]), None);
        assert_eq!(Report::from_bytes(&[]), None);
        let mut long = b.to_vec();
        long.push(0);
        assert_eq!(Report::from_bytes(&long), None);
    }

    #[test]
    fn passed_ranges_end_within_the_descriptor_numbers() {
        assert_eq!(range_end(3, 0), Some(3));
        assert_eq!(range_end(3, 4), Some(7));
        assert_eq!(range_end(libc::c_int::MAX - 2, 2), Some(libc::c_int::MAX));
        assert_eq!(range_end(libc::c_int::MAX - 2, 3), None);
        assert_eq!(range_end(-1, 1), None);
        assert_eq!(range_end(0, usize::MAX), None);
    }
}
