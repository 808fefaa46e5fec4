//! The parent's side of starting a process from a plan: what the child is
//! given (namespace descriptors, the sync socket, stdio), the clone off the
//! tokio workers, and the sync protocol's two verbs.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use tokio::io::unix::AsyncFd;

use super::supervisor::Unsupervised;
use crate::error::{Error, Result};
use crate::exec::{self, ChildFds, ChildMemory, Report};
use crate::plan::{Namespace, Plan};
use crate::stdio::{self, ParentEnds, Stdio};

/// The parent's side of a child about to be cloned: what stays with the
/// async caller.
pub(super) struct ParentSide {
    /// The parent's end of the sync socket.
    pub sync: AsyncFd<OwnedFd>,
    /// With an exec FIFO: the parent's end of the socket on which
    /// `berth-waiter` reports a failed `execve` at `start` (EOF: it exec'd).
    pub exec_report: Option<AsyncFd<OwnedFd>>,
    /// The parent's ends of piped stdio.
    pub ends: ParentEnds,
}

/// The child's side: its descriptors, moved to the thread that clones.
pub(super) struct ChildSide {
    fds: ChildFds,
}

/// The child just cloned, before its supervisor takes it.
pub(super) struct Cloned {
    pub pid: i32,
    /// Reaped by a thread if dropped before a supervisor takes it.
    pub pidfd: Unsupervised,
    /// Started inside its cgroup (`CLONE_INTO_CGROUP`).
    pub in_cgroup: bool,
    pub memory: ChildMemory,
}

/// Makes the sync socket (and, for a child that waits for `start`, the
/// socket of its exec report) and stdio: no blocking call, so on the
/// caller's thread (registering the parent's ends needs its runtime).
/// `passed` become the child's descriptors 3, 4, ….
pub(super) fn prepare(
    waits_for_start: bool,
    stdio: [Stdio; 3],
    passed: Vec<OwnedFd>,
) -> Result<(ParentSide, ChildSide)> {
    let (sync, child_sock) = sync_socket()?;
    let (exec_report, child_report) = match waits_for_start {
        true => {
            let (parent, child) = sync_socket()?;
            (Some(parent), Some(child))
        }
        false => (None, None),
    };
    let (child_stdio, ends) = stdio::prepare(stdio)?;
    let fds = ChildFds {
        sync: child_sock,
        fifo: None,
        exec_report: child_report,
        joins: Vec::new(),
        stdio: child_stdio,
        passed,
        cgroup_tasks: Vec::new(),
    };
    let parent = ParentSide {
        sync,
        exec_report,
        ends,
    };
    Ok((parent, ChildSide { fds }))
}

impl ChildSide {
    /// Opens the namespaces `plan` joins and clones the child into
    /// `placement` (blocking: the clone takes its thread for about a
    /// millisecond with a new network namespace). `fifo` is the exec FIFO
    /// of a child that waits for `start`. Our copies of the child's
    /// descriptors are closed before this returns: EOF on the sync socket
    /// must mean the child is gone.
    pub(super) fn clone_child(
        mut self,
        plan: Arc<Plan>,
        fifo: Option<OwnedFd>,
        placement: Option<crate::cgroups::Placement>,
    ) -> Result<Cloned> {
        let (cgroup_fd, cgroup_tasks) = match placement {
            Some(p) => (p.into, p.tasks),
            None => (None, Vec::new()),
        };
        let mut pid_ns = None;
        for j in &plan.joins {
            // Opened now, so the namespaces stay reachable even if the
            // process they were named after exits.
            let f: OwnedFd = std::fs::File::open(&j.path)
                .map_err(|e| Error::io("open namespace", &j.path, e))?
                .into();
            // (Unless the child forks into it itself, after joining its
            // user namespace.)
            if j.ns == Namespace::Pid && !plan.forks_into_pid_namespace() {
                pid_ns = Some(f.try_clone().map_err(|e| Error::sys("dup", e))?);
            }
            self.fds.joins.push(f);
        }
        self.fds.fifo = fifo;
        self.fds.cgroup_tasks = cgroup_tasks;
        let s = exec::spawner::spawn(plan, self.fds, cgroup_fd, pid_ns)
            .map_err(|e| Error::sys("clone3", e))?;
        Ok(Cloned {
            pid: s.pid,
            // Owned from here on, even if no one awaits this thread's work.
            pidfd: Unsupervised::new(s.pidfd),
            in_cgroup: s.in_cgroup,
            memory: s.memory,
        })
    }
}

/// A `SOCK_SEQPACKET` pair: the parent's end registered with tokio, the
/// child's end close-on-exec.
fn sync_socket() -> Result<(AsyncFd<OwnedFd>, OwnedFd)> {
    let (parent, child) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::sys("socketpair", e))?;
    set_nonblocking(&parent)?;
    let parent = exec::register(parent).map_err(|e| Error::sys("register sync socket", e))?;
    Ok((parent, child))
}

/// Writes `/proc/<pid>/<file>` (id maps, oom_score_adj) for the child.
pub(super) fn write_proc(pid: i32, file: &str, content: &str) -> Result<()> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    std::fs::write(&path, content).map_err(|e| Error::io("write", path, e))
}

fn set_nonblocking(fd: &OwnedFd) -> Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL).map_err(|e| Error::sys("fcntl", e))?;
    fcntl(
        fd.as_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(|e| Error::sys("fcntl", e))?;
    Ok(())
}

/// Lets the child go on past its current wait. `MSG_NOSIGNAL`: a child
/// that died meanwhile is an error here, never a SIGPIPE in the embedder.
pub(super) fn go(sync: &AsyncFd<OwnedFd>) -> Result<()> {
    use nix::sys::socket::{send, MsgFlags};
    send(
        sync.get_ref().as_raw_fd(),
        b"g",
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
    )
    .map_err(|e| Error::sys("signal container process", e))?;
    Ok(())
}

/// How long a seccomp `listenerPath` may take to accept the notify
/// descriptor before the create fails.
const LISTENER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Passes the seccomp notify descriptor the child sent (with
/// [`Report::SECCOMP`]) to the listener of the plan's filter, then lets
/// the child go on. The socket is asynchronous and the whole exchange
/// bounded by a timeout: a slow or stuck listener fails the create rather
/// than freezing a tokio worker.
pub(super) async fn pass_seccomp_fd(
    plan: &Plan,
    sync: &AsyncFd<OwnedFd>,
    fd: Option<OwnedFd>,
    pid: i32,
    state: &oci_spec::runtime::State,
) -> Result<()> {
    use crate::security::seccomp::ProcessState;
    let fd = fd.ok_or_else(|| {
        Error::sys(
            "receive seccomp notify descriptor",
            std::io::Error::from_raw_os_error(libc::EBADMSG),
        )
    })?;
    let filter = plan.steps.iter().find_map(|s| match s {
        crate::plan::Step::Seccomp(f) => Some(f),
        _ => None,
    });
    let Some((filter, listener)) = filter.and_then(|f| Some((f, f.listener.as_ref()?))) else {
        return Err(Error::sys(
            "receive seccomp notify descriptor",
            std::io::Error::other("the plan has no seccomp listener"),
        ));
    };
    let msg = ProcessState {
        oci_version: "1.2.0",
        fds: ["seccompFd"],
        pid,
        metadata: filter.metadata.as_deref(),
        state,
    };
    let json = serde_json::to_vec(&msg)
        .map_err(|e| Error::io("encode seccomp listener message", listener, e.into()))?;
    match tokio::time::timeout(LISTENER_TIMEOUT, send_to_listener(listener, &json, &fd)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Error::io(
                "send to seccomp listener",
                listener,
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", LISTENER_TIMEOUT.as_secs()),
                ),
            ))
        }
    }
    go(sync)
}

/// Sends `json` with `fd` attached (`SCM_RIGHTS`) to the unix socket
/// `listener`, without blocking a worker.
async fn send_to_listener(listener: &std::path::Path, json: &[u8], fd: &OwnedFd) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::io::IoSlice;
    let err = |op: &'static str, e: std::io::Error| Error::io(op, listener, e);
    let stream = tokio::net::UnixStream::connect(listener)
        .await
        .map_err(|e| err("connect to seccomp listener", e))?;
    let fds = [fd.as_raw_fd()];
    let sent = loop {
        stream
            .writable()
            .await
            .map_err(|e| err("send to seccomp listener", e))?;
        let r = stream.try_io(tokio::io::Interest::WRITABLE, || {
            sendmsg::<()>(
                stream.as_raw_fd(),
                &[IoSlice::new(json)],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(std::io::Error::from)
        });
        match r {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(err("send to seccomp listener", e)),
        }
    };
    if sent != json.len() {
        return Err(err(
            "send to seccomp listener",
            std::io::Error::from(std::io::ErrorKind::WriteZero),
        ));
    }
    Ok(())
}

/// The child's next report; `None` once it exec'd or died.
pub(super) async fn recv(sync: &AsyncFd<OwnedFd>) -> Result<Option<(Report, Option<OwnedFd>)>> {
    loop {
        let mut guard = sync
            .readable()
            .await
            .map_err(|e| Error::sys("wait for container process", e))?;
        match guard.try_io(|fd| exec::recv_report(fd.get_ref())) {
            // A child that exited without reading a go-ahead the parent
            // had sent (it failed first) resets the socket; the kernel
            // reports that before the report the child sent, which is
            // still queued: read again.
            Ok(Err(e)) if e.raw_os_error() == Some(libc::ECONNRESET) => continue,
            Ok(r) => return r.map_err(|e| Error::sys("read child report", e)),
            Err(_would_block) => continue,
        }
    }
}
