//! One function per command; each is thin over the SDK.

mod create;
mod exec;
pub mod image;
mod kill;
mod logs;
mod spec;
mod state;

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use berth::{Config, Container, LogConfig, Runtime};

use crate::cli::{Cli, Command, CreateFlags, Global};

pub use image::InProcess;

/// The command's outcome: an exit code, or an error to report (exit 1).
pub type Outcome = Result<u8, Box<dyn std::error::Error>>;

/// Where the image commands are: in this binary ([`InProcess`], in
/// `berth-images`) or in another one ([`Delegated`], in `berth`, which
/// runs `berth-images` for them). A type parameter rather than a value, so
/// that `berth` has none of the image code linked in.
// Called on the current-thread runtime only: the futures need not be Send.
#[allow(async_fn_in_trait)]
pub trait Images {
    /// Whether this binary runs the image commands itself.
    const IN_PROCESS: bool;

    /// Runs an image command (`pull`, `push`, `images`, `rmi`, `commit`,
    /// `import`).
    async fn command(g: &Global, command: Command) -> Outcome;

    /// Creates a container from the stored image `image`.
    async fn create(
        rt: &Runtime,
        flags: &CreateFlags,
        id: &str,
        image: &str,
        command: &[String],
        preserved: Vec<OwnedFd>,
        log: Option<LogConfig>,
    ) -> Result<Container, Box<dyn std::error::Error>>;
}

/// `berth`'s image commands: none in this binary; `main` runs
/// `berth-images` for them before anything else.
#[derive(Debug)]
pub struct Delegated;

impl Images for Delegated {
    const IN_PROCESS: bool = false;

    async fn command(_: &Global, _: Command) -> Outcome {
        Err(NOT_HERE.into())
    }

    async fn create(
        _: &Runtime,
        _: &CreateFlags,
        _: &str,
        _: &str,
        _: &[String],
        _: Vec<OwnedFd>,
        _: Option<LogConfig>,
    ) -> Result<Container, Box<dyn std::error::Error>> {
        Err(NOT_HERE.into())
    }
}

const NOT_HERE: &str = "image commands run in berth-images (berth runs it for them)";

/// The binary holding the image commands, next to this one.
const IMAGES_BINARY: &str = "berth-images";

/// Whether `cli` is an image command, or a create/run from an image.
pub fn needs_images(cli: &Cli) -> bool {
    match &cli.command {
        Some(
            Command::Pull(_)
            | Command::Push(_)
            | Command::Images(_)
            | Command::Rmi(_)
            | Command::Commit(_)
            | Command::Import(_),
        ) => true,
        Some(Command::Create(c)) => c.flags.image.is_some(),
        Some(Command::Run(r)) => r.flags.image.is_some(),
        _ => false,
    }
}

/// `berth-images`, next to this binary: it runs the image commands, and is
/// the image store's helper without root (`berth-images image-helper`).
pub fn images_binary() -> std::io::Result<std::path::PathBuf> {
    Ok(std::env::current_exe()?.with_file_name(IMAGES_BINARY))
}

/// The image snapshots extension, with `berth-images` as the store's
/// helper (used only without root).
pub fn snapshots() -> berth_image::Snapshots {
    match images_binary() {
        Ok(helper) => berth_image::Snapshots::with_helper(helper),
        Err(_) => berth_image::Snapshots::default(),
    }
}

/// Replaces this process with `berth-images` (next to this binary), with
/// the same arguments, descriptors and environment. Returns only on
/// failure.
pub fn exec_images(cli: &Cli) -> std::process::ExitCode {
    use std::os::unix::process::CommandExt;
    let logger = crate::log::Logger::new(&cli.global);
    let binary = match images_binary() {
        Ok(binary) => binary,
        Err(e) => {
            logger.error(&format!("finding {IMAGES_BINARY}: {e}"));
            return std::process::ExitCode::FAILURE;
        }
    };
    let e = std::process::Command::new(&binary)
        .args(std::env::args_os().skip(1))
        .exec();
    logger.error(&format!(
        "image commands need {} (installed next to berth): {e}",
        binary.display()
    ));
    std::process::ExitCode::FAILURE
}

/// Runs `cli`'s command. `preserved` are the descriptors of
/// `--preserve-fds`, taken by `main` (this process's 3..3+n).
pub async fn run<I: Images>(cli: Cli, preserved: Vec<OwnedFd>) -> Outcome {
    let Some(command) = cli.command else {
        return spec::version();
    };
    if cli.global.systemd_cgroup {
        return Err(
            "--systemd-cgroup is not supported: berth manages cgroups through cgroupfs \
                    (configure the caller's cgroup manager as cgroupfs)"
                .into(),
        );
    }
    let g = &cli.global;
    match command {
        Command::Create(c) => create::create::<I>(g, c, preserved).await,
        Command::Start(c) => create::start(g, &c.id).await,
        Command::Run(c) => create::run::<I>(g, c, preserved).await,
        Command::State(c) => state::state(g, &c.id).await,
        Command::List(c) => state::list(g, c).await,
        Command::Ps(c) => state::ps(g, c).await,
        Command::Events(c) => state::events(g, c).await,
        Command::Logs(c) => logs::logs(g, c).await,
        Command::Stop(c) => logs::stop(g, c).await,
        Command::Kill(c) => kill::kill(g, c).await,
        Command::Delete(c) => kill::delete(g, c).await,
        Command::Pause(c) => kill::pause(g, &c.id, true).await,
        Command::Resume(c) => kill::pause(g, &c.id, false).await,
        Command::Update(c) => kill::update(g, c).await,
        Command::Exec(c) => exec::exec(g, c, preserved).await,
        Command::Features => spec::features(),
        Command::Spec(c) => spec::spec(c),
        Command::Version => spec::version(),
        c @ (Command::Pull(_)
        | Command::Push(_)
        | Command::Images(_)
        | Command::Rmi(_)
        | Command::Commit(_)
        | Command::Import(_)) => I::command(g, c).await,
        Command::Checkpoint(_) | Command::Restore(_) => Err(
            "checkpoint and restore are not supported by berth (no CRIU support): \
             nothing was done"
                .into(),
        ),
        Command::Shim(_) => unreachable!("handled in main before the runtime starts"),
        Command::PortProxy(_) => unreachable!("handled in main before the runtime starts"),
    }
}

/// The runtime's settings from the global flags (`--root`, else the
/// default: `/run/berth`, or `$XDG_RUNTIME_DIR/berth` without root).
pub fn config(g: &Global) -> Config {
    let mut config = Config::default();
    if let Some(root) = &g.root {
        config.root = root.clone();
    }
    config
}

/// [`config`] with the extensions that create and delete need:
/// `networks` and image snapshots.
pub fn config_with_extensions(g: &Global, networks: berth_net::Networks) -> Config {
    let mut config = config(g);
    config.extensions = vec![Arc::new(networks), Arc::new(snapshots())];
    config
}

/// The runtime for commands that make nothing and release nothing
/// (`state`, `kill`, `start`, `exec`, …): no extension is loaded.
pub async fn runtime(g: &Global) -> berth::Result<Runtime> {
    Runtime::new(config(g)).await
}

/// The runtime for commands that may release what extensions made
/// (`delete`, `rollback`): with networks and image snapshots.
pub async fn runtime_with_extensions(g: &Global) -> berth::Result<Runtime> {
    let networks = berth_net::Networks::new(berth_net::Settings::default());
    Runtime::new(config_with_extensions(g, networks)).await
}

/// Writes `pid` to `path` as runc does: a temporary file, then a rename.
pub fn write_pid_file(path: &Path, pid: i32) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("berth-tmp.{}", std::process::id()));
    std::fs::write(&tmp, pid.to_string())?;
    std::fs::rename(&tmp, path)
}

/// Sends the pseudo-terminal master to the console socket (`SCM_RIGHTS`,
/// with the terminal's name as the message, as runc does).
pub fn send_console(socket: &Path, master: OwnedFd) -> std::io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let stream = UnixStream::connect(socket)?;
    let fds = [master.as_raw_fd()];
    let name = b"/dev/ptmx";
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(name)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// Copies our stdin to the container's terminal and its output to our
/// stdout, in the background.
///
/// Returns the copy of the container's output, which ends once the
/// terminal's last user is gone: await it after the container's exit, or
/// the output's tail is lost.
pub fn attach_terminal(pty: berth::Pty) -> tokio::task::JoinHandle<()> {
    let (mut from, mut to) = tokio::io::split(pty);
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut to).await;
    });
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from, &mut tokio::io::stdout()).await;
    })
}

/// Parses `KILL`, `SIGKILL`, `9` or `RTMIN+3`.
pub fn parse_signal(s: &str) -> Result<berth::Signal, String> {
    s.parse().map_err(|_| format!("unknown signal {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::parse_signal;
    use berth::Signal;

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("9"), Ok(Signal::KILL));
        assert_eq!(parse_signal("KILL"), Ok(Signal::KILL));
        assert_eq!(parse_signal("sigterm"), Ok(Signal::TERM));
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
