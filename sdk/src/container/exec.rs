//! `exec`: start another process inside a running container.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use oci_spec::runtime::Process;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

use super::create::{go, init_error, recv, set_nonblocking, write_proc};
use super::Container;
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::exec::{self, ChildFds, Report};
use crate::host::Host;
use crate::plan::{self, Join, Namespace};
use crate::state::{ExitStatus, Status};
use crate::stdio::{self, ParentEnds, Pty, Stdio};

/// Choices for [`Container::exec`].
#[derive(Debug, Default)]
pub struct ExecOptions {
    /// The process's stdin.
    pub stdin: Stdio,
    /// The process's stdout.
    pub stdout: Stdio,
    /// The process's stderr.
    pub stderr: Stdio,
    /// Pass descriptors `3..3+preserve_fds` of this process on.
    pub preserve_fds: u32,
}

/// A process started in a running container by [`Container::exec`].
#[derive(Debug)]
pub struct ExecProcess {
    pid: i32,
    pidfd: AsyncFd<OwnedFd>,
    exit: tokio::sync::OnceCell<ExitStatus>,
    stdio: Mutex<ParentEnds>,
    pty: Mutex<Option<Pty>>,
}

const NAMESPACES: [(Namespace, &str); 8] = [
    (Namespace::User, "user"),
    (Namespace::Ipc, "ipc"),
    (Namespace::Uts, "uts"),
    (Namespace::Network, "net"),
    (Namespace::Pid, "pid"),
    (Namespace::Cgroup, "cgroup"),
    (Namespace::Time, "time"),
    (Namespace::Mount, "mnt"),
];

impl Container {
    /// Starts `process` inside the container: in all of its namespaces and
    /// its cgroup, with the process's own user, capabilities, cwd and
    /// environment. Returns once the process has called `execve`; a missing
    /// executable is an error here.
    pub async fn exec(&self, process: &Process, opts: ExecOptions) -> Result<ExecProcess> {
        let p = self.load()?;
        let status = self.status_of(&p);
        if status == Status::Stopped {
            return Err(Error::InvalidState {
                id: p.id,
                status: status.to_string(),
                op: "exec",
            });
        }
        let mut joins = Vec::new();
        for (ns, name) in NAMESPACES {
            let theirs = PathBuf::from(format!("/proc/{}/ns/{name}", p.pid));
            let (Ok(t), Ok(o)) = (
                std::fs::metadata(&theirs),
                std::fs::metadata(format!("/proc/self/ns/{name}")),
            ) else {
                continue;
            };
            if (t.ino(), t.dev()) != (o.ino(), o.dev()) {
                joins.push(Join { ns, path: theirs });
            }
        }
        let plan_opts = plan::Options {
            preserve_fds: opts.preserve_fds,
            ..Default::default()
        };
        let plan = Arc::new(plan::compile_exec(process, joins, Host::get(), &plan_opts)?);
        let cgroup = Cgroup::open(&p.cgroup_path)?;
        let cgroup_fd = cgroup.clone_into_fd()?;

        let mut join_fds = Vec::new();
        let mut pid_ns = None;
        for j in &plan.joins {
            // Opened now: from here on the container's init may exit, and
            // its namespaces stay reachable through these descriptors.
            let f: OwnedFd = std::fs::File::open(&j.path)
                .map_err(|e| Error::io("open namespace", &j.path, e))?
                .into();
            if j.ns == Namespace::Pid {
                pid_ns = Some(f.try_clone().map_err(|e| Error::sys("dup", e))?);
            }
            join_fds.push(f);
        }
        let (parent_sock, child_sock) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| Error::sys("socketpair", e))?;
        set_nonblocking(&parent_sock)?;
        let sync =
            exec::register(parent_sock).map_err(|e| Error::sys("register sync socket", e))?;
        let (child_stdio, ends) = stdio::prepare([opts.stdin, opts.stdout, opts.stderr])?;
        let fds = ChildFds {
            sync: child_sock,
            fifo: None,
            joins: join_fds,
            stdio: child_stdio,
        };
        let spawn_plan = plan.clone();
        let spawned = tokio::task::spawn_blocking(move || {
            let r = exec::spawn(
                spawn_plan,
                &fds,
                cgroup_fd.as_ref().map(AsRawFd::as_raw_fd),
                pid_ns.as_ref().map(AsRawFd::as_raw_fd),
            );
            drop(fds);
            r
        })
        .await
        .map_err(|e| Error::sys("spawn task", std::io::Error::other(e)))?
        .map_err(|e| Error::sys("clone3", e))?;
        let pidfd = exec::register(spawned.pidfd).map_err(|e| Error::sys("register pidfd", e))?;
        let process = ExecProcess {
            pid: spawned.pid,
            pidfd,
            exit: tokio::sync::OnceCell::new(),
            stdio: Mutex::new(ends),
            pty: Mutex::new(None),
        };
        match finish_exec(&process, &cgroup, spawned.in_cgroup, &sync, &plan).await {
            Ok(()) => Ok(process),
            Err(e) => {
                let _ = process.kill(Signal::SIGKILL);
                let _ = process.wait().await;
                Err(e)
            }
        }
    }
}

async fn finish_exec(
    process: &ExecProcess,
    cgroup: &Cgroup,
    in_cgroup: bool,
    sync: &AsyncFd<OwnedFd>,
    plan: &plan::Plan,
) -> Result<()> {
    if let Some(adj) = plan.oom_score_adj {
        write_proc(process.pid, "oom_score_adj", &adj.to_string())?;
    }
    if !in_cgroup {
        cgroup.add_process(process.pid)?;
    }
    go(sync)?;
    loop {
        match recv(sync).await? {
            // EOF: the sync socket closed on execve.
            None => return Ok(()),
            Some((r, fd)) if r.kind == Report::CONSOLE => {
                let fd = fd.ok_or_else(|| {
                    Error::sys(
                        "receive console",
                        std::io::Error::from_raw_os_error(libc::EBADMSG),
                    )
                })?;
                *process.pty.lock().unwrap_or_else(|p| p.into_inner()) = Some(Pty::new(fd)?);
            }
            Some((r, _)) if r.kind == Report::FAILED => return Err(init_error(plan, r)),
            Some((r, _)) => {
                return Err(Error::sys(
                    "read child report",
                    std::io::Error::other(format!("unexpected report kind {}", r.kind)),
                ))
            }
        }
    }
}

impl ExecProcess {
    /// The host pid of the process.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits for the process to exit. Any number of callers may wait.
    pub async fn wait(&self) -> Result<ExitStatus> {
        self.exit
            .get_or_try_init(|| super::wait::reap(&self.pidfd))
            .await
            .copied()
    }

    /// Sends `signal` to the process (through its pidfd).
    pub fn kill(&self, signal: Signal) -> Result<()> {
        exec::sys::pidfd_send_signal(self.pidfd.as_raw_fd(), signal as libc::c_int)
            .map_err(|e| Error::sys("kill", std::io::Error::from_raw_os_error(e)))
    }

    /// The writing end of its stdin, if piped.
    pub fn take_stdin(&self) -> Option<pipe::Sender> {
        self.stdio
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stdin
            .take()
    }

    /// The reading end of its stdout, if piped.
    pub fn take_stdout(&self) -> Option<pipe::Receiver> {
        self.stdio
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stdout
            .take()
    }

    /// The reading end of its stderr, if piped.
    pub fn take_stderr(&self) -> Option<pipe::Receiver> {
        self.stdio
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stderr
            .take()
    }

    /// Its terminal's master, when `process.terminal` is true.
    pub fn take_pty(&self) -> Option<Pty> {
        self.pty.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}
