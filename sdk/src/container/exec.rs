//! `exec`: start another process inside a running container.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::Signal;
use oci_spec::runtime::Process;
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

use super::create::init_error;
use super::spawn::{go, pass_seccomp_fd, prepare, recv, write_proc};
use super::supervisor::{Supervisor, Unsupervised};
use super::Container;
use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::exec::{self, Report};
use crate::host::Host;
use crate::plan::{self, Join, Namespace};
use crate::state::ExitStatus;
use crate::stdio::{ParentEnds, Pty, Stdio};

/// Choices for [`Container::exec`].
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ExecOptions {
    /// The process's stdin.
    pub stdin: Stdio,
    /// The process's stdout.
    pub stdout: Stdio,
    /// The process's stderr.
    pub stderr: Stdio,
    /// Descriptors for the process, which gets them as 3, 4, … in this
    /// order; closed here once the process has its copies.
    pub pass_fds: Vec<OwnedFd>,
}

/// A process started in a running container by [`Container::exec`].
///
/// A supervisor task reaps it whether or not anyone waits: dropping this
/// handle (or a `wait` future) leaves no zombie.
#[derive(Debug)]
pub struct ExecProcess {
    pid: i32,
    supervisor: Arc<Supervisor>,
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
        let p = self.require_live("exec")?;
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
        // The container's seccomp filter applies to every process in it.
        let spec_path = self.inner.dir.join(crate::state::SPEC_FILE);
        let spec = oci_spec::runtime::Spec::load(&spec_path).map_err(|e| Error::State {
            id: p.id.clone(),
            reason: format!("{}: {e}", spec_path.display()),
        })?;
        let own_mounts = spec.linux().as_ref().is_some_and(|l| {
            l.namespaces().iter().flatten().any(|n| {
                n.typ() == oci_spec::runtime::LinuxNamespaceType::Mount && n.path().is_none()
            })
        });
        if !own_mounts {
            // Its root is a chroot, which joining namespaces does not enter.
            return Err(Error::Unsupported(
                "exec into a container without a mount namespace of its own".into(),
            ));
        }
        let rootless = crate::security::rootless::is_rootless();
        // Without root, the process joins the container's user namespace
        // first, then the others, and forks into its pid namespace
        // (`Step::ForkIntoPidNamespace`). It may set supplementary groups
        // where the container's gid map was written by newgidmap (which
        // leaves setgroups allowed).
        let setgroups = rootless
            && std::fs::read_to_string(format!("/proc/{}/setgroups", p.pid))
                .is_ok_and(|s| s.trim() == "allow");
        let plan_opts = plan::Options {
            preserve_fds: super::create::passed_count(&opts.pass_fds)?,
            seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
            personality: spec.linux().as_ref().and_then(|l| l.personality().clone()),
            rootless,
            rootless_setgroups: setgroups,
            ..Default::default()
        };
        // The compile (seccomp included), the cgroup open and the clone
        // run in one blocking stage.
        let (parent, child) =
            prepare(false, [opts.stdin, opts.stdout, opts.stderr], opts.pass_fds)?;
        let (process, cgroup_path) = (process.clone(), p.cgroup_path.clone());
        let (plan, cgroup, mut cloned) = super::blocking(move || {
            let plan = Arc::new(plan::compile_exec(
                &process,
                joins,
                Host::get(),
                &plan_opts,
            )?);
            let cgroup = Cgroup::open(&cgroup_path)?;
            // Without root the container may have no cgroup (none
            // delegated): the process then joins none either.
            let rootless = crate::security::rootless::is_rootless();
            let placement = match cgroup.placement() {
                Err(_) if rootless => None,
                r => Some(r?),
            };
            let cloned = child.clone_child(plan.clone(), None, placement)?;
            Ok((plan, cgroup, cloned))
        })
        .await?;
        if plan.forks_into_pid_namespace() {
            // The first child joins the namespaces and forks; the process
            // that goes on is ours too (CLONE_PARENT), and the first one
            // exits (reaped as its `Unsupervised` handle drops).
            go(&parent.sync)?;
            match recv(&parent.sync).await? {
                Some((r, Some(fd))) if r.kind == Report::FORKED => {
                    cloned.pid = r.step as i32;
                    cloned.pidfd = Unsupervised::new(fd);
                }
                Some((r, _)) if r.kind == Report::FAILED => return Err(init_error(&plan, r)),
                _ => {
                    return Err(Error::Init {
                        kind: crate::InitStep::ForkIntoPidNamespace,
                        step: "fork into the container's pid namespace".into(),
                        path: None,
                        source: std::io::Error::from_raw_os_error(libc::ECHILD),
                    })
                }
            }
        }
        let sync = parent.sync;
        let in_cgroup = cloned.in_cgroup;
        // A plan that joins a container never shares our memory.
        cloned.memory.release();
        let process = ExecProcess {
            pid: cloned.pid,
            supervisor: Supervisor::start(cloned.pid, cloned.pidfd.take(), None, None),
            stdio: Mutex::new(parent.ends),
            pty: Mutex::new(None),
        };
        let state = super::oci_state(&p, crate::state::Status::Running)?;
        match finish_exec(&process, &cgroup, in_cgroup, &sync, &plan, &state).await {
            Ok(()) => Ok(process),
            Err(e) => {
                let _ = process.kill(Signal::KILL);
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
    state: &oci_spec::runtime::State,
) -> Result<()> {
    let (pid, adj) = (process.pid, plan.oom_score_adj);
    let cgroup = Cgroup::open(cgroup.path())?;
    super::blocking(move || {
        if let Some(adj) = adj {
            write_proc(pid, "oom_score_adj", &adj.to_string())?;
        }
        // The v1 cgroups it joins itself (`Step::JoinCgroup`).
        if !in_cgroup {
            match cgroup.add_process_v2(pid) {
                Err(_) if crate::security::rootless::is_rootless() => {}
                r => r?,
            }
        }
        Ok(())
    })
    .await?;
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
            Some((r, fd)) if r.kind == Report::SECCOMP => {
                pass_seccomp_fd(plan, sync, fd, process.pid, state).await?;
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
        self.supervisor.wait().await
    }

    /// Sends `signal` to the process (through its pidfd).
    pub fn kill(&self, signal: Signal) -> Result<()> {
        let fd = self.supervisor.pidfd().as_raw_fd();
        exec::sys::pidfd_send_signal(fd, signal.number())
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
