//! Detached mode: a small shim process parents the container, so that the
//! container outlives the process that created it.
//!
//! The SDK starts `<shim binary> shim --request FILE` (the `berth` binary's
//! `shim` subcommand), which becomes a child subreaper in a session of its
//! own, creates the container itself (so the container is its child),
//! replies on descriptor 3, then waits for the container, records the exit
//! status in `state.json` and exits. Any process can then learn the exit
//! status: it waits for the container's and the shim's pidfds, then reads
//! the state. With [`CreateOptions::log`] the shim also holds the reading
//! ends of the container's stdout and stderr pipes and writes what comes
//! out to the log ([`crate::logs`]) until the container is gone, and exits
//! only once the log is complete. The shim is the only place in berth that
//! reaps children it did not start itself, and it is a process of its own.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;

use crate::bundle::Bundle;
use crate::container::{create, validate_id, Container, CreateOptions, RootfsMount};
use crate::error::{Error, Result};
use crate::exec;
use crate::extension::Extension;
use crate::host::Host;
use crate::logs::{Capture, LogConfig};
use crate::runtime::Config;
use crate::state::{self, HostProcess, Persisted};
use crate::stdio::Stdio;

/// What the SDK asks the shim to create.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    root: PathBuf,
    cgroup_parent: String,
    id: String,
    bundle: PathBuf,
    spec: Spec,
    no_pivot: bool,
    /// How many descriptors follow the reply pipe (at 4, 5, …), for the
    /// container's 3, 4, ….
    #[serde(default)]
    passed_fds: u32,
    /// The container's requests to extensions, which the shim binary
    /// must have (the `berth` binary has `berth-net`'s and
    /// `berth-image`'s).
    #[serde(default)]
    extensions: std::collections::BTreeMap<String, serde_json::Value>,
    /// The settings of each requested extension in the caller's runtime.
    #[serde(default)]
    extension_settings: std::collections::BTreeMap<String, serde_json::Value>,
    /// Capture the container's output here.
    #[serde(default)]
    log: Option<LogConfig>,
    /// [`CreateOptions::rootfs_mount`].
    #[serde(default)]
    rootfs_mount: Option<RootfsMount>,
}

/// The shim's answer on descriptor 3.
#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Created { pid: i32 },
    Failed { error: String },
}

/// The reply descriptor of the shim's calling convention.
const REPLY_FD: libc::c_int = 3;

/// Creates a detached container through a shim process.
pub(crate) async fn create_detached(
    config: Arc<Config>,
    shim: &Path,
    id: String,
    bundle: Bundle,
    opts: CreateOptions,
) -> Result<Container> {
    validate_id(&id)?;
    let extension_settings = crate::extension::resolve(&config.extensions, &opts.extensions)?
        .iter()
        .map(|e| (e.name().to_string(), e.settings()))
        .collect();
    // Refuse a bad spec here, with a typed error, before any process.
    let plan_opts = crate::plan::Options {
        no_pivot: opts.no_pivot,
        preserve_fds: crate::container::passed_count(&opts.pass_fds)?,
        cgroup_path: None,
        seccomp: None,
        rootless: crate::security::rootless::is_rootless(),
        // Worked out by the compiler from the gid map.
        rootless_setgroups: false,
        personality: None,
        rootfs_mount: opts.rootfs_mount.clone(),
    };
    if opts.log.is_some() {
        let terminal = bundle
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        if terminal {
            return Err(Error::InvalidOption {
                option: "log".into(),
                reason: "the spec's process.terminal is true: its output goes to the terminal, \
                         not to pipes the shim could capture"
                    .into(),
            });
        }
    }
    let (spec, dir, root) = (bundle.spec.clone(), bundle.dir.clone(), config.root.clone());
    crate::container::blocking(move || {
        crate::plan::compile(&spec, &dir, Host::get(), &plan_opts)?;
        std::fs::create_dir_all(&root).map_err(|e| Error::io("create state root", &root, e))
    })
    .await?;
    if config.root.join(&id).exists() {
        return Err(Error::AlreadyExists(id));
    }
    let request = Request {
        root: config.root.clone(),
        cgroup_parent: config.cgroup_parent.clone(),
        id: id.clone(),
        bundle: bundle.dir,
        spec: bundle.spec,
        no_pivot: opts.no_pivot,
        passed_fds: crate::container::passed_count(&opts.pass_fds)?,
        extensions: opts.extensions.clone(),
        extension_settings,
        log: opts.log.clone(),
        rootfs_mount: opts.rootfs_mount.clone(),
    };
    let request_path = config.root.join(format!(".{id}.shim-request.json"));
    let json = serde_json::to_vec(&request).map_err(|e| Error::State {
        id: id.clone(),
        reason: e.to_string(),
    })?;
    state::write_atomic(&request_path, &json)?;

    let (reply_r, reply_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe2", e))?;
    let (child_stdio, ends) = crate::stdio::prepare([opts.stdin, opts.stdout, opts.stderr])?;
    let mut cmd = tokio::process::Command::new(shim);
    cmd.arg("shim").arg("--request").arg(&request_path);
    let [stdin, stdout, stderr] = child_stdio;
    let to_std = |fd: Option<std::os::fd::OwnedFd>| {
        fd.map_or(std::process::Stdio::inherit(), std::process::Stdio::from)
    };
    cmd.stdin(to_std(stdin))
        .stdout(to_std(stdout))
        .stderr(to_std(stderr));
    let fds = std::iter::once(reply_w).chain(opts.pass_fds).collect();
    exec::pass_fds(&mut cmd, fds, REPLY_FD)
        .map_err(|e| Error::sys("pass descriptors to the shim", e))?;
    let spawned = cmd.spawn();
    let result = async {
        let mut child = spawned.map_err(|e| Error::io("start shim", shim, e))?;
        // One line: the container holds a copy of the pipe until it execs,
        // so EOF cannot mark the end of the reply; a shim that dies before
        // replying (killed mid-create) ends the wait instead.
        let r = tokio::net::unix::pipe::Receiver::from_owned_fd(reply_r)
            .map_err(|e| Error::sys("register shim reply pipe", e))?;
        let mut reply = Vec::new();
        let mut reader = tokio::io::BufReader::new(r);
        tokio::select! {
            read = reader.read_until(b'\n', &mut reply) => {
                read.map_err(|e| Error::sys("read shim reply", e))?;
            }
            status = child.wait() => {
                // It may have replied just before exiting.
                let _ = tokio::time::timeout(
                    std::time::Duration::from_millis(1),
                    reader.read_until(b'\n', &mut reply),
                )
                .await;
                if reply.is_empty() {
                    return Err(Error::Shim(format!(
                        "the shim {} exited ({}) before replying",
                        shim.display(),
                        status.map_or_else(|e| e.to_string(), |s| s.to_string())
                    )));
                }
            }
        }
        // Dropping the handle lets tokio reap the shim whenever it exits.
        drop(child);
        match serde_json::from_slice::<Reply>(&reply) {
            Ok(Reply::Created { .. }) => {
                Container::attach_with(config.root.join(&id), &id, ends, &config.extensions)
            }
            Ok(Reply::Failed { error }) => Err(Error::Shim(error)),
            Err(_) => Err(Error::Shim(format!(
                "the shim {} gave no valid reply (did it crash?)",
                shim.display()
            ))),
        }
    }
    .await;
    let _ = std::fs::remove_file(&request_path);
    result
}

/// The shim's main: what `berth shim --request FILE` runs. Returns the
/// process's exit code. `extensions` are those the shim binary offers;
/// a request naming another fails.
///
/// An embedder that ships its own binary as [`Config::shim`] calls it from
/// that binary's `main` when started as `BINARY shim --request FILE`,
/// before starting any async runtime (the shim runs its own).
///
/// [`Config::shim`]: crate::Config::shim
pub fn run_shim(request: &Path, extensions: Vec<Arc<dyn Extension>>) -> i32 {
    let reply = exec::inherited_fd(REPLY_FD).map(std::fs::File::from);
    // Orphans of the container become ours (and are reaped below), and
    // signals to the SDK's process group or terminal no longer reach us.
    let _ = exec::sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    let _ = exec::sys::setsid();
    let setup = read_request(request).and_then(|req| {
        // The descriptors for the container follow the reply pipe.
        let passed = exec::inherited_fds(REPLY_FD + 1, req.passed_fds)
            .map_err(|e| format!("descriptors to pass to the container: {e}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(((req, passed), rt))
    });
    let ((req, passed), rt) = match setup {
        Ok(x) => x,
        Err(error) => {
            send(reply, Reply::Failed { error });
            return 1;
        }
    };
    // The shim drives one container and serves nothing meanwhile, so its
    // blocking calls run on its one thread, as the CLI's do: no pool
    // thread is started for the container's whole life.
    rt.block_on(crate::blocking::on_caller(async move {
        let (ctr, capture) = match create_and_record(req, passed, extensions).await {
            Ok(c) => c,
            Err(e) => {
                send(
                    reply,
                    Reply::Failed {
                        error: e.to_string(),
                    },
                );
                return 1;
            }
        };
        send(reply, Reply::Created { pid: ctr.pid() });
        // Records the exit status in state.json.
        let _ = ctr.wait().await;
        // The log is complete before the shim's exit tells other processes
        // that the container is gone.
        if let Some(c) = capture {
            c.finish();
        }
        // Reap whatever was reparented to us, then go.
        while nix::sys::wait::wait().is_ok() {}
        0
    }))
}

fn read_request(path: &Path) -> std::result::Result<Request, String> {
    let mut v = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut v))
        .map_err(|e| format!("shim request {}: {e}", path.display()))?;
    serde_json::from_slice(&v).map_err(|e| format!("shim request {}: {e}", path.display()))
}

/// Writes the one-line reply (the container keeps a copy of the pipe until
/// it execs, so the reader cannot wait for EOF).
fn send(reply: Option<std::fs::File>, r: Reply) {
    if let Some(mut f) = reply {
        let mut line = serde_json::to_vec(&r).unwrap_or_default();
        line.push(b'\n');
        let _ = f.write_all(&line);
    }
}

async fn create_and_record(
    req: Request,
    pass_fds: Vec<std::os::fd::OwnedFd>,
    offered: Vec<Arc<dyn Extension>>,
) -> Result<(Container, Option<Capture>)> {
    // Each requested extension with the caller's settings.
    let mut extensions = Vec::new();
    for (name, settings) in &req.extension_settings {
        let ext = crate::extension::find(&offered, name)?;
        extensions.push(ext.with_settings(settings)?.unwrap_or_else(|| ext.clone()));
    }
    let config = Arc::new(Config {
        root: req.root,
        cgroup_parent: req.cgroup_parent,
        shim: None,
        extensions,
    });
    let mut opts = CreateOptions {
        no_pivot: req.no_pivot,
        pass_fds,
        extensions: req.extensions,
        rootfs_mount: req.rootfs_mount,
        ..Default::default()
    };
    // The container writes into pipes that only the shim reads.
    let mut pipes = None;
    if req.log.is_some() {
        let pipe =
            || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe2", e));
        let ((out_r, out_w), (err_r, err_w)) = (pipe()?, pipe()?);
        opts.stdin = Stdio::Null;
        opts.stdout = Stdio::Fd(out_w);
        opts.stderr = Stdio::Fd(err_w);
        pipes = Some((out_r, err_r));
    }
    let bundle = Bundle {
        dir: req.bundle,
        spec: req.spec,
    };
    let ctr = create(config, req.id, bundle, opts).await?;
    let mut log = None;
    let mut capture = None;
    if let (Some(cfg), Some((out, err))) = (req.log, pipes) {
        let file = cfg.file(ctr.state_dir());
        match Capture::start(file.clone(), &cfg, out, err) {
            Ok(c) => capture = Some(c),
            Err(e) => {
                let _ = ctr.force_delete().await;
                return Err(e);
            }
        }
        log = Some(cfg.path(file));
    }
    if let Err(e) = record_shim(&ctr, log).await {
        let _ = ctr.force_delete().await;
        return Err(e);
    }
    Ok((ctr, capture))
}

/// Records the shim in the state, under the container's lock (a `start`
/// from another process may be saving it at the same time).
async fn record_shim(ctr: &Container, log: Option<LogConfig>) -> Result<()> {
    let _lock = ctr.lock().await?;
    let dir = ctr.state_dir();
    let mut p = Persisted::load(dir, ctr.id())?;
    p.shim = HostProcess::this();
    p.log = log;
    p.save(dir)
}
