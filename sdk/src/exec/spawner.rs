//! Clones from a thread of berth's own when this process holds many
//! descriptors.
//!
//! A clone copies the cloning thread's descriptor table (a reference on
//! every open file) and the child's `close_range` drops it all again, so a
//! start in a process that holds 10,000 descriptors costs ~0.5 ms more
//! (criterion's `lifecycle/true_with_10k_fds_open`). The spawner thread
//! unshares its table once (`unshare(CLONE_FILES)`) and closes everything
//! in it but its socket and `berth-waiter`'s memfd, moved to low numbers
//! (a clone copies the table up to its highest open descriptor). A request's
//! descriptors reach it over that socket (`SCM_RIGHTS`), it clones, and the
//! child's pidfd comes back the same way. A process with fewer than
//! [`MANY_FDS`] descriptors (the CLI, most embedders) clones on the calling
//! thread as before: there the copy costs less than the hand-over.
//!
//! A descriptor number of the private table means nothing on any other
//! thread (closing it there would close one of the embedder's): every
//! descriptor of that table is received, used and closed on the spawner
//! thread. Requests are served one at a time, in order. A child `fork`ed
//! from the process has no spawner thread and clones on its calling
//! thread.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

use super::{sys, waiter, ChildFds, ChildMemory, Spawned};
use crate::plan::Plan;

/// From this lowest free descriptor on (that many open below it), the
/// clone goes through the spawner thread. The hand-over (two wake-ups of
/// another thread) cost about what copying ~2,000 descriptors does on the
/// development host: with 100 or 1,000 open, the calling thread was as
/// fast or faster; with 10,000, the spawner saved ~0.4 ms a create.
const MANY_FDS: RawFd = 2048;

/// The most descriptors one hand-over carries (the kernel's `SCM_MAX_FD`
/// is 253). A request with more is cloned on the calling thread.
const MAX_HANDED: usize = 240;

/// Clones the child of `plan` with `fds`, through the spawner thread when
/// this process holds many descriptors, else on the calling thread (see
/// the module's documentation). Blocks like [`super::spawn`]; the
/// descriptors are closed before it returns.
pub(crate) fn spawn(
    plan: Arc<Plan>,
    fds: ChildFds,
    cgroup: Option<OwnedFd>,
    pid_ns: Option<OwnedFd>,
) -> io::Result<Spawned> {
    // sync, fifo, exec report, three stdio, cgroup, pid namespace.
    let handed = [8, fds.joins.len(), fds.passed.len(), fds.cgroup_tasks.len()]
        .into_iter()
        .fold(0usize, usize::saturating_add);
    if handed <= MAX_HANDED && holds_many(&fds.sync) {
        if let Some(spawner) = spawner().filter(|s| s.owner == std::process::id()) {
            return hand_over(&spawner.channel, plan, fds, cgroup, pid_ns);
        }
    }
    super::spawn(
        plan,
        &fds,
        cgroup.as_ref().map(AsRawFd::as_raw_fd),
        pid_ns.as_ref().map(AsRawFd::as_raw_fd),
    )
}

/// Whether this process's lowest free descriptor is [`MANY_FDS`] or above.
fn holds_many(any: &OwnedFd) -> bool {
    rustix::io::fcntl_dupfd_cloexec(any, 0).is_ok_and(|probe| probe.as_raw_fd() >= MANY_FDS)
}

/// Which descriptors a hand-over carries, in this order after `sync`.
#[derive(Debug, Clone, Copy)]
struct Layout {
    fifo: bool,
    exec_report: bool,
    stdio: [bool; 3],
    joins: usize,
    passed: usize,
    cgroup_tasks: usize,
    cgroup: bool,
    pid_ns: bool,
}

struct Request {
    plan: Arc<Plan>,
    layout: Layout,
    reply: mpsc::SyncSender<io::Result<Reply>>,
}

/// A clone's outcome but its pidfd, which travels on the socket.
struct Reply {
    pid: i32,
    in_cgroup: bool,
    memory: ChildMemory,
}

struct Spawner {
    /// The process the thread runs in. A child `fork`ed from it has this
    /// handle but not the thread (and maybe a lock held by a thread it does
    /// not have either): it clones on its calling thread.
    owner: u32,
    channel: Mutex<Channel>,
}

struct Channel {
    requests: mpsc::Sender<Request>,
    /// Our end of the socket to the thread (in the process's table).
    socket: OwnedFd,
}

/// The spawner, started on first use; `None` if it could not be (the
/// calling thread clones then).
fn spawner() -> Option<&'static Spawner> {
    static SPAWNER: OnceLock<Option<Spawner>> = OnceLock::new();
    SPAWNER
        .get_or_init(|| match start() {
            Ok(channel) => Some(Spawner {
                owner: std::process::id(),
                channel: Mutex::new(channel),
            }),
            Err(e) => {
                tracing::warn!("no spawner thread, cloning on the calling thread: {e}");
                None
            }
        })
        .as_ref()
}

fn start() -> io::Result<Channel> {
    let waiter = waiter::fd()?.as_raw_fd();
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let (requests, incoming) = mpsc::channel::<Request>();
    let (ready_tx, ready) = mpsc::sync_channel::<io::Result<()>>(1);
    let theirs_raw = theirs.as_raw_fd();
    std::thread::Builder::new()
        .name("berth-spawner".into())
        .spawn(move || {
            let (socket, waiter) = match private_table(theirs_raw, waiter) {
                Ok(kept) => kept,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            drop(ready_tx);
            while let Ok(request) = incoming.recv() {
                let reply = serve(&socket, &waiter, &request);
                let _ = request.reply.send(reply);
            }
        })?;
    ready
        .recv()
        .map_err(|_| io::Error::other("spawner thread ended"))??;
    // The thread has its own copy now.
    drop(theirs);
    Ok(Channel {
        requests,
        socket: ours,
    })
}

/// On the spawner thread: unshares its descriptor table, closes every
/// descriptor in it but `socket` and `waiter` (`berth-waiter`'s memfd),
/// and moves those two to the lowest numbers from 3 on (none at 0 to 2,
/// where a container's inherited stdio is). A clone copies the table up
/// to its highest open descriptor, so they must not stay where they were
/// (above the embedder's). Returns them, owned in the private table.
fn private_table(socket: RawFd, waiter: RawFd) -> io::Result<(OwnedFd, OwnedFd)> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_FILES).map_err(io::Error::from)?;
    let mut keep = [socket, waiter].map(|fd| u32::try_from(fd).unwrap_or(u32::MAX));
    keep.sort_unstable();
    let mut first: u32 = 0;
    for fd in keep {
        if let Some(last) = fd.checked_sub(1).filter(|&last| last >= first) {
            sys::close_range(first, last, 0).map_err(io::Error::from_raw_os_error)?;
        }
        first = first.max(fd.saturating_add(1));
    }
    if first < u32::MAX {
        sys::close_range(first, u32::MAX, 0).map_err(io::Error::from_raw_os_error)?;
    }
    Ok((move_low(socket)?, move_low(waiter)?))
}

/// Moves `fd` (open in the calling thread's table, owned by nothing) to
/// the lowest free number from 3 on, close-on-exec, and owns it there.
fn move_low(fd: RawFd) -> io::Result<OwnedFd> {
    let moved = copy_from_3(fd)?;
    let _ = sys::close(fd);
    Ok(moved)
}

/// A close-on-exec copy of descriptor `fd` at the lowest free number from
/// 3 on.
fn copy_from_3(fd: RawFd) -> io::Result<OwnedFd> {
    let copy = sys::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3).map_err(io::Error::from_raw_os_error)?;
    let copy = RawFd::try_from(copy).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just made this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// Hands the request over to the spawner thread and waits for the clone.
fn hand_over(
    spawner: &Mutex<Channel>,
    plan: Arc<Plan>,
    fds: ChildFds,
    cgroup: Option<OwnedFd>,
    pid_ns: Option<OwnedFd>,
) -> io::Result<Spawned> {
    // The caller's own 0, 1 and 2 for inherited streams: the thread's
    // copies of them would be those of when it started.
    let mut stdio: [Option<OwnedFd>; 3] = [None, None, None];
    for ((own, given), slot) in (0..).zip(fds.stdio).zip(stdio.iter_mut()) {
        *slot = given.or_else(|| dup_own(own));
    }
    let layout = Layout {
        fifo: fds.fifo.is_some(),
        exec_report: fds.exec_report.is_some(),
        stdio: stdio.each_ref().map(Option::is_some),
        joins: fds.joins.len(),
        passed: fds.passed.len(),
        cgroup_tasks: fds.cgroup_tasks.len(),
        cgroup: cgroup.is_some(),
        pid_ns: pid_ns.is_some(),
    };
    let raw: Vec<RawFd> = std::iter::once(&fds.sync)
        .chain(&fds.fifo)
        .chain(&fds.exec_report)
        .chain(stdio.iter().flatten())
        .chain(&fds.joins)
        .chain(&fds.passed)
        .chain(&fds.cgroup_tasks)
        .chain(&cgroup)
        .chain(&pid_ns)
        .map(AsRawFd::as_raw_fd)
        .collect();
    let spawner = spawner.lock().unwrap_or_else(|e| e.into_inner());
    send_fds(&spawner.socket, &raw)?;
    // In transit the descriptors are the socket's: ours can go.
    drop((fds.sync, fds.fifo, fds.exec_report, stdio, fds.joins));
    drop((fds.passed, fds.cgroup_tasks, cgroup, pid_ns));
    let gone = || io::Error::other("spawner thread ended");
    let (reply, replied) = mpsc::sync_channel(1);
    spawner
        .requests
        .send(Request {
            plan,
            layout,
            reply,
        })
        .map_err(|_| gone())?;
    let Reply {
        pid,
        in_cgroup,
        memory,
    } = replied.recv().map_err(|_| gone())??;
    match recv_fds(&spawner.socket).map(|mut fds| fds.pop()) {
        Ok(Some(pidfd)) => Ok(Spawned {
            pid,
            pidfd,
            in_cgroup,
            memory,
        }),
        other => {
            kill_and_reap(pid);
            Err(other
                .err()
                .unwrap_or_else(|| io::Error::other("no pidfd from the spawner thread")))
        }
    }
}

/// Kills and reaps our child `pid` (not reaped yet, so its pid cannot have
/// been reused).
fn kill_and_reap(pid: i32) {
    let _ = sys::kill(pid, libc::SIGKILL);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
}

/// A close-on-exec copy of this process's descriptor `fd` (0 to 2), at 3
/// or above; `None` if it is not open.
fn dup_own(fd: RawFd) -> Option<OwnedFd> {
    copy_from_3(fd).ok()
}

/// On the spawner thread: receives one request's descriptors, clones, and
/// sends the pidfd back. Every descriptor received is closed here.
fn serve(socket: &OwnedFd, waiter: &OwnedFd, request: &Request) -> io::Result<Reply> {
    let layout = request.layout;
    let mut received = recv_fds(socket)?.into_iter();
    let mut next = || {
        received
            .next()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADMSG))
    };
    let sync = next()?;
    let fifo = layout.fifo.then(&mut next).transpose()?;
    let exec_report = layout.exec_report.then(&mut next).transpose()?;
    let mut stdio: [Option<OwnedFd>; 3] = [None, None, None];
    for (slot, present) in stdio.iter_mut().zip(layout.stdio) {
        *slot = present.then(&mut next).transpose()?;
    }
    let mut several = |n: usize| (0..n).map(|_| next()).collect::<io::Result<Vec<_>>>();
    let joins = several(layout.joins)?;
    let passed = several(layout.passed)?;
    let cgroup_tasks = several(layout.cgroup_tasks)?;
    let cgroup = layout.cgroup.then(&mut next).transpose()?;
    let pid_ns = layout.pid_ns.then(&mut next).transpose()?;
    if received.next().is_some() {
        return Err(io::Error::from_raw_os_error(libc::EBADMSG));
    }
    let fds = ChildFds {
        sync,
        fifo,
        exec_report,
        joins,
        stdio,
        passed,
        cgroup_tasks,
    };
    let spawned = super::spawn_with_waiter(
        request.plan.clone(),
        &fds,
        cgroup.as_ref().map(AsRawFd::as_raw_fd),
        pid_ns.as_ref().map(AsRawFd::as_raw_fd),
        Some(waiter.as_fd()),
    )?;
    // The child has its own copies: EOF on the sync socket must mean it
    // is gone.
    drop((fds, cgroup, pid_ns));
    if let Err(e) = send_fds(socket, &[spawned.pidfd.as_raw_fd()]) {
        kill_and_reap(spawned.pid);
        return Err(e);
    }
    Ok(Reply {
        pid: spawned.pid,
        in_cgroup: spawned.in_cgroup,
        memory: spawned.memory,
    })
}

/// Sends `fds` with a one-byte message.
fn send_fds(socket: &OwnedFd, fds: &[RawFd]) -> io::Result<()> {
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs = if fds.is_empty() { &[][..] } else { &rights[..] };
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[io::IoSlice::new(b"f")],
        cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map(drop)
    .map_err(io::Error::from)
}

/// Receives one message's descriptors (close-on-exec), each moved to 3 or
/// above: on the spawner thread 0 to 2 stay free, so that a container that
/// inherits them never gets one of berth's descriptors there.
fn recv_fds(socket: &OwnedFd) -> io::Result<Vec<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = [io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; MAX_HANDED]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let (bytes, truncated) = (msg.bytes, msg.flags.contains(MsgFlags::MSG_CTRUNC));
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for fd in raw {
                // SAFETY: SCM_RIGHTS installed this descriptor in the
                // calling thread's table just now; nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    if bytes != 1 {
        return Err(io::Error::from_raw_os_error(libc::EPIPE));
    }
    if truncated {
        return Err(io::Error::from_raw_os_error(libc::E2BIG));
    }
    fds.into_iter()
        .map(|fd| {
            if fd.as_raw_fd() >= 3 {
                return Ok(fd);
            }
            rustix::io::fcntl_dupfd_cloexec(&fd, 3).map_err(io::Error::from)
        })
        .collect()
}
