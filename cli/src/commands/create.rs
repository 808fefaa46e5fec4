//! `create`, `start` and `run`.

use std::io::IsTerminal;
use std::os::fd::OwnedFd;

use berth::{Bundle, Container, CreateOptions, LogConfig, Stdio};
use tokio::signal::unix::{signal, SignalKind};

use super::{runtime, send_console, write_pid_file, Outcome};
use crate::cli::{Create, CreateFlags, Global, Run};
use berth_net::{BridgeNetwork, Network, NetworkOptions, Networks, Settings};

/// The runtime with its extensions (networks, image snapshots), the
/// networks with the bridge network and host namespace the flags name.
async fn network_runtime(
    g: &Global,
    flags: &CreateFlags,
    shim: bool,
) -> Result<berth::Runtime, Box<dyn std::error::Error>> {
    let mut settings = Settings::default();
    settings.host_netns = flags.host_netns.clone();
    // This very binary's `port-proxy` subcommand serves published ports
    // of dual-stack networks on [::1]; it outlives this process.
    settings.port_proxy = Some(std::env::current_exe()?);
    settings.cni.conf_dir = flags.cni_conf_dir.clone();
    if !flags.cni_bin_dir.is_empty() {
        settings.cni.bin_dirs = flags.cni_bin_dir.clone();
    }
    if let Some(path) = &flags.network_config {
        let text =
            std::fs::read(path).map_err(|e| format!("--network-config {}: {e}", path.display()))?;
        let nets: Vec<BridgeNetwork> = serde_json::from_slice(&text)
            .map_err(|e| format!("--network-config {}: {e}", path.display()))?;
        settings
            .networks
            .retain(|n| !nets.iter().any(|m| m.name == n.name));
        settings.networks.extend(nets);
    }
    if let (Some(Network::Bridge(name)), Some(subnet)) = (&flags.network, flags.subnet) {
        settings.networks.retain(|n| &n.name != name);
        let mut net = BridgeNetwork::new(name, subnet);
        net.bridge = name.chars().take(15).collect();
        net.subnet6 = flags.subnet6;
        settings.networks.push(net);
    }
    let networks = Networks::new(settings);
    let mut config = super::config_with_extensions(g, networks);
    if shim {
        // This very binary's `shim` subcommand.
        config.shim = Some(std::env::current_exe()?);
    }
    Ok(berth::Runtime::new(config).await?)
}

async fn create_container<I: super::Images>(
    g: &Global,
    flags: &CreateFlags,
    id: &str,
    command: &[String],
    preserved: Vec<OwnedFd>,
    log: Option<LogConfig>,
) -> Result<Container, Box<dyn std::error::Error>> {
    if log.is_some() && flags.console_socket.is_some() {
        return Err("--log-path captures output from pipes: not with --console-socket".into());
    }
    let rt = network_runtime(g, flags, log.is_some()).await?;
    if flags.image.is_none() && !command.is_empty() {
        return Err(
            "a command after the id needs --image (a bundle's config.json names the process)"
                .into(),
        );
    }
    let ctr = match &flags.image {
        Some(image) => I::create(&rt, flags, id, image, command, preserved, log).await?,
        None => create_from_bundle(&rt, flags, id, preserved, log).await?,
    };
    let finish = || -> Result<(), Box<dyn std::error::Error>> {
        if let Some(socket) = &flags.console_socket {
            let pty = ctr.take_pty().ok_or("no terminal was allocated")?;
            send_console(socket, pty.into_fd())?;
        }
        if let Some(path) = &flags.pid_file {
            write_pid_file(path, ctr.pid())?;
        }
        Ok(())
    };
    if let Err(e) = finish() {
        let _ = ctr.force_delete().await;
        return Err(e);
    }
    Ok(ctr)
}

/// The options of a container: with inherited stdio, or with `log` its
/// output captured by a shim; `preserved` (`--preserve-fds`) become its 3,
/// 4, ….
pub(super) fn options(
    flags: &CreateFlags,
    preserved: Vec<OwnedFd>,
    log: Option<LogConfig>,
) -> CreateOptions {
    let capture = log.is_some();
    // The shim's own stdio: nothing of ours stays open in it.
    let stdio = || if capture { Stdio::Null } else { Stdio::Inherit };
    let mut opts = CreateOptions::default();
    opts.stdin = stdio();
    opts.stdout = stdio();
    opts.stderr = stdio();
    opts.no_pivot = flags.no_pivot;
    opts.pass_fds = preserved;
    // As runc: the container's parent is this process until it exits,
    // then the caller's subreaper (conmon, containerd's shim). Only
    // with captured output does a berth shim parent it.
    opts.detached = capture;
    opts.log = log;
    if flags.network.is_some() || !flags.publish.is_empty() || flags.ip.is_some() {
        let mut net = NetworkOptions::default();
        net.mode = flags.network.clone();
        net.publish = flags.publish.clone();
        net.address = flags.ip;
        net.add_to(&mut opts);
    }
    opts
}

/// The log settings the flags ask for: with `--log-path`, or when
/// `default_here` (run -d on a terminal), in the state directory.
fn log_config(
    flags: &CreateFlags,
    default_here: bool,
) -> Result<Option<LogConfig>, Box<dyn std::error::Error>> {
    let tuned = flags.log_max_size.is_some() || flags.log_max_files.is_some();
    if flags.log_path.is_none() && !default_here {
        if tuned {
            return Err("--log-max-size and --log-max-files need --log-path".into());
        }
        return Ok(None);
    }
    let mut log = LogConfig::default();
    if let Some(path) = &flags.log_path {
        log = log.path(std::path::absolute(path)?);
    }
    if let Some(size) = &flags.log_max_size {
        log = log.max_size(parse_size(size)?);
    }
    if let Some(n) = flags.log_max_files {
        log = log.max_files(n);
    }
    Ok(Some(log))
}

/// `4096`, `512k`, `10m`, `1g` (powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let (num, mult) = match lower.strip_suffix(['k', 'm', 'g']) {
        Some(n) => {
            let shift = match lower.chars().last() {
                Some('k') => 10,
                Some('m') => 20,
                _ => 30,
            };
            (n, 1u64 << shift)
        }
        None => (lower.as_str(), 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("--log-max-size: bad size {s:?} (e.g. 10m, 512k, 65536)"))
}

async fn create_from_bundle(
    rt: &berth::Runtime,
    flags: &CreateFlags,
    id: &str,
    preserved: Vec<OwnedFd>,
    log: Option<LogConfig>,
) -> Result<Container, Box<dyn std::error::Error>> {
    let bundle = Bundle::from_dir(&flags.bundle).await?;
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if !terminal && flags.console_socket.is_some() {
        return Err("--console-socket given but process.terminal is false".into());
    }
    // The default capture of run -d does not apply to a terminal.
    let log = log.filter(|_| !terminal || flags.log_path.is_some());
    Ok(rt
        .create_with(id, bundle, options(flags, preserved, log))
        .await?)
}

pub async fn create<I: super::Images>(g: &Global, c: Create, preserved: Vec<OwnedFd>) -> Outcome {
    // Our parent (a shim, conmon) reaps the container, as with runc.
    berth::leave_children_to_parent();
    let log = log_config(&c.flags, false)?;
    create_container::<I>(g, &c.flags, &c.id, &c.command, preserved, log).await?;
    Ok(0)
}

pub async fn start(g: &Global, id: &str) -> Outcome {
    runtime(g).await?.get(id).await?.start().await?;
    Ok(0)
}

pub async fn run<I: super::Images>(g: &Global, r: Run, preserved: Vec<OwnedFd>) -> Outcome {
    if r.detach {
        berth::leave_children_to_parent();
    }
    if !r.detach && r.flags.log_path.is_some() {
        return Err("--log-path needs --detach (or create)".into());
    }
    // Detached on a terminal, no one would read the container's output
    // where it would go: capture it instead.
    let on_terminal = r.detach
        && r.flags.console_socket.is_none()
        && !r.flags.tty
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal();
    let log = log_config(&r.flags, on_terminal)?;
    let ctr = create_container::<I>(g, &r.flags, &r.id, &r.command, preserved, log).await?;
    let pty = if r.flags.console_socket.is_none() {
        ctr.take_pty()
    } else {
        None
    };
    if let Err(e) = ctr.start().await {
        let _ = ctr.force_delete().await;
        return Err(e.into());
    }
    if r.detach {
        return Ok(0);
    }
    // Copy between our terminal and the container's.
    let output = pty.map(super::attach_terminal);
    let status = tokio::select! {
        s = ctr.wait() => s?,
        _ = forward_signals(&ctr) => ctr.wait().await?,
    };
    if let Some(output) = output {
        let _ = output.await;
    }
    if !r.keep {
        ctr.delete().await?;
    }
    Ok(u8::try_from(status.code()).unwrap_or(255))
}

/// Forwards the signals a user sends to `berth run` to the container, as
/// runc does. Never returns while the container lives.
async fn forward_signals(ctr: &Container) {
    let kinds = [
        (SignalKind::interrupt(), berth::Signal::INT),
        (SignalKind::terminate(), berth::Signal::TERM),
        (SignalKind::hangup(), berth::Signal::HUP),
        (SignalKind::quit(), berth::Signal::QUIT),
        (SignalKind::user_defined1(), berth::Signal::USR1),
        (SignalKind::user_defined2(), berth::Signal::USR2),
        (SignalKind::window_change(), berth::Signal::WINCH),
    ];
    let mut streams = Vec::new();
    for (kind, sig) in kinds {
        if let Ok(s) = signal(kind) {
            streams.push((s, sig));
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    for (mut stream, sig) in streams {
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(sig).await.is_err() {
                    break;
                }
            }
        });
    }
    while let Some(sig) = rx.recv().await {
        let _ = ctr.kill(sig);
    }
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn log_sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("k").is_err());
        assert!(parse_size("99999999999g").is_err());
    }
}
