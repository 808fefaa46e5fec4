//! Every call into the berth SDK, behind small functions.
//!
//! The rest of the shim never names a `berth` item: when the SDK's public
//! API changes (option structs, `delete`, signals, sync/async status), this
//! module is the only one to adapt.
//!
//! Option structs are made with `Default::default()` and then assigned
//! field by field (never with a struct literal), so that they may become
//! `#[non_exhaustive]`.
#![allow(clippy::field_reassign_with_default)]

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use futures::stream::{BoxStream, StreamExt};
use oci_spec::runtime::{LinuxResources, LinuxSeccomp, Process, Spec};
use tokio::net::unix::pipe;

pub use berth::{Container, ExecProcess, Pty, Runtime};

use containerd_shim::protos::ttrpc::Code;

use crate::error::{Error, Result};

/// How a process ended, as containerd reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code; `128 + signal` for a process a signal killed.
    pub code: u32,
}

/// A container's status, as the shim needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Set up, waiting for start.
    Created,
    /// Started and not exited.
    Running,
    /// Frozen.
    Paused,
    /// Exited (or never finished being created).
    Stopped,
}

/// Where a new process's standard streams go: `None` is `/dev/null`.
#[derive(Debug, Default)]
pub struct Streams {
    /// Give the process a pipe for stdin, whose write end
    /// [`take_stdin`] / [`take_exec_stdin`] hands back.
    pub stdin_piped: bool,
    /// Its stdout.
    pub stdout: Option<OwnedFd>,
    /// Its stderr.
    pub stderr: Option<OwnedFd>,
}

/// The resource usage sample type the SDK produces.
pub type Stats = berth::Stats;

/// One device's block I/O counter in [`Stats`].
pub type BlkioEntry = berth::BlkioEntry;

fn sdk(op: &'static str) -> impl FnOnce(berth::Error) -> Error {
    move |source| Error::Sdk {
        op,
        code: code_of(&source),
        source: Box::new(source),
    }
}

/// The TTRPC status code containerd maps to the right `errdefs` error.
fn code_of(e: &berth::Error) -> Code {
    match e {
        berth::Error::AlreadyExists(_) => Code::ALREADY_EXISTS,
        berth::Error::InvalidState { .. } => Code::FAILED_PRECONDITION,
        berth::Error::InvalidSpec { .. }
        | berth::Error::InvalidId { .. }
        | berth::Error::InvalidOption { .. } => Code::INVALID_ARGUMENT,
        berth::Error::NotFound(_) => Code::NOT_FOUND,
        berth::Error::Unsupported(_) => Code::UNIMPLEMENTED,
        _ => Code::UNKNOWN,
    }
}

fn stdio(fd: Option<OwnedFd>) -> berth::Stdio {
    match fd {
        Some(fd) => berth::Stdio::Fd(fd),
        None => berth::Stdio::Null,
    }
}

/// Opens (creating it if needed) the runtime whose state lives in `root`.
pub async fn runtime(root: &Path, cgroup_parent: Option<&str>) -> Result<Runtime> {
    let mut config = berth::Config::default();
    config.root = root.to_path_buf();
    if let Some(parent) = cgroup_parent {
        config.cgroup_parent = parent.to_string();
    }
    // No extensions (networks, images): a containerd task gets the
    // namespaces its spec names and nothing more, and the host's network
    // is never touched.
    Runtime::new(config).await.map_err(sdk("open runtime"))
}

/// Reads the OCI spec in `bundle`'s `config.json`.
pub fn load_spec(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    Spec::load(&path).map_err(|e| Error::Spec(format!("{}: {e}", path.display())))
}

/// Creates container `id` from `bundle`, with `seccomp` (if any) in place
/// of the spec's own seccomp profile.
pub async fn create(
    rt: &Runtime,
    id: &str,
    bundle: &Path,
    seccomp: Option<LinuxSeccomp>,
    streams: Streams,
) -> Result<Container> {
    let bundle = match seccomp {
        None => berth::Bundle::from_dir(bundle).await,
        Some(profile) => {
            let mut spec = load_spec(bundle)?;
            let mut linux = spec.linux().clone().unwrap_or_default();
            linux.set_seccomp(Some(profile));
            spec.set_linux(Some(linux));
            berth::Bundle::new(bundle, spec)
        }
    }
    .map_err(sdk("read bundle"))?;
    let mut opts = berth::CreateOptions::default();
    opts.stdin = if streams.stdin_piped {
        berth::Stdio::Piped
    } else {
        berth::Stdio::Null
    };
    opts.stdout = stdio(streams.stdout);
    opts.stderr = stdio(streams.stderr);
    rt.create_with(id, bundle, opts)
        .await
        .map_err(sdk("create"))
}

/// Finds an existing container.
pub async fn get(rt: &Runtime, id: &str) -> Result<Container> {
    rt.get(id).await.map_err(sdk("find container"))
}

/// The first process's pid.
pub fn pid(ctr: &Container) -> u32 {
    u32::try_from(ctr.pid()).unwrap_or(0)
}

/// Takes the write end of the container's stdin pipe.
pub fn take_stdin(ctr: &Container) -> Option<pipe::Sender> {
    ctr.take_stdin()
}

/// Takes the master of the container's terminal.
pub fn take_pty(ctr: &Container) -> Option<OwnedFd> {
    ctr.take_pty().map(Pty::into_fd)
}

/// Releases the container's process.
pub async fn start(ctr: &Container) -> Result<()> {
    ctr.start().await.map_err(sdk("start"))
}

fn exit_of(status: berth::ExitStatus) -> Exit {
    Exit {
        code: u32::try_from(status.code()).unwrap_or(255),
    }
}

/// Waits for the container's first process to exit.
pub async fn wait(ctr: &Container) -> Result<Exit> {
    ctr.wait().await.map(exit_of).map_err(sdk("wait"))
}

fn signal(sig: u32) -> Result<berth::Signal> {
    i32::try_from(sig)
        .ok()
        .and_then(|s| berth::Signal::try_from(s).ok())
        .ok_or(Error::InvalidArgument(format!("no signal {sig}")))
}

/// Signals the container's first process (`all`: every process in it).
pub async fn kill(ctr: &Container, sig: u32, all: bool) -> Result<()> {
    let sig = signal(sig)?;
    if all {
        ctr.kill_all(sig).await.map_err(sdk("kill"))
    } else {
        ctr.kill(sig).map_err(sdk("kill"))
    }
}

/// The container's status now.
pub async fn status(ctr: &Container) -> Result<Status> {
    let status = ctr.status().await.map_err(sdk("state"))?;
    Ok(match status {
        berth::Status::Created => Status::Created,
        berth::Status::Running => Status::Running,
        berth::Status::Paused => Status::Paused,
        _ => Status::Stopped,
    })
}

/// Deletes the container (`force`: even if it is not stopped).
pub async fn delete(ctr: &Container, force: bool) -> Result<()> {
    let deleted = if force {
        ctr.force_delete().await
    } else {
        ctr.delete().await
    };
    deleted.map_err(sdk("delete"))
}

/// Freezes the container.
pub async fn pause(ctr: &Container) -> Result<()> {
    ctr.pause().await.map_err(sdk("pause"))
}

/// Thaws the container.
pub async fn resume(ctr: &Container) -> Result<()> {
    ctr.resume().await.map_err(sdk("resume"))
}

/// Changes the container's resource limits.
pub async fn update(ctr: &Container, resources: &LinuxResources) -> Result<()> {
    ctr.update(resources).await.map_err(sdk("update"))
}

/// Host pids of every process in the container.
pub async fn pids(ctr: &Container) -> Result<Vec<i32>> {
    ctr.pids().await.map_err(sdk("pids"))
}

/// Whether the host has only the unified (v2) cgroup hierarchy.
pub fn unified_cgroups() -> bool {
    matches!(berth::cgroup_layout(), berth::CgroupLayout::V2)
}

/// One sample of the container's resource usage.
pub async fn stats(ctr: &Container) -> Result<Stats> {
    ctr.stats_now().await.map_err(sdk("stats"))
}

/// A stream with one item per OOM kill in the container, ending when the
/// container exits.
pub fn oom_kills(ctr: &Container) -> BoxStream<'static, ()> {
    ctr.events()
        .filter_map(|e| async move { matches!(e, Ok(berth::Event::Oom)).then_some(()) })
        .boxed()
}

/// Starts `process` in the container.
pub async fn exec(ctr: &Container, process: &Process, streams: Streams) -> Result<ExecProcess> {
    let mut opts = berth::ExecOptions::default();
    opts.stdin = if streams.stdin_piped {
        berth::Stdio::Piped
    } else {
        berth::Stdio::Null
    };
    opts.stdout = stdio(streams.stdout);
    opts.stderr = stdio(streams.stderr);
    ctr.exec(process, opts).await.map_err(sdk("exec"))
}

/// An exec'd process's pid.
pub fn exec_pid(p: &ExecProcess) -> u32 {
    u32::try_from(p.pid()).unwrap_or(0)
}

/// Takes the write end of an exec'd process's stdin pipe.
pub fn take_exec_stdin(p: &ExecProcess) -> Option<pipe::Sender> {
    p.take_stdin()
}

/// Takes the master of an exec'd process's terminal.
pub fn take_exec_pty(p: &ExecProcess) -> Option<OwnedFd> {
    p.take_pty().map(Pty::into_fd)
}

/// Waits for an exec'd process to exit.
pub async fn exec_wait(p: &ExecProcess) -> Result<Exit> {
    p.wait().await.map(exit_of).map_err(sdk("wait exec"))
}

/// Signals an exec'd process.
pub fn exec_kill(p: &ExecProcess, sig: u32) -> Result<()> {
    p.kill(signal(sig)?).map_err(sdk("kill exec"))
}

/// The default state root for containerd namespace `namespace`.
pub fn default_root(namespace: &str) -> PathBuf {
    Path::new("/run/containerd/berth").join(namespace)
}
