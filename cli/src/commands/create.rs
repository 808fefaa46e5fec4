//! `create`, `start` and `run`.

use berth::{Bundle, Container, CreateOptions, Stdio};
use std::os::fd::OwnedFd;
use tokio::signal::unix::{signal, SignalKind};

use super::{runtime, send_console, write_pid_file, Outcome};
use crate::cli::{Create, CreateFlags, Global, Run};
use berth::network::{BridgeNetwork, Network, NetworkOptions};

/// The runtime, with the bridge network and host namespace the flags name.
async fn network_runtime(
    g: &Global,
    flags: &CreateFlags,
) -> Result<berth::Runtime, Box<dyn std::error::Error>> {
    let mut config = berth::Config {
        host_netns: flags.host_netns.clone(),
        ..super::config(g)
    };
    config.cni.conf_dir = flags.cni_conf_dir.clone();
    if !flags.cni_bin_dir.is_empty() {
        config.cni.bin_dirs = flags.cni_bin_dir.clone();
    }
    if let Some(path) = &flags.network_config {
        let text =
            std::fs::read(path).map_err(|e| format!("--network-config {}: {e}", path.display()))?;
        let nets: Vec<BridgeNetwork> = serde_json::from_slice(&text)
            .map_err(|e| format!("--network-config {}: {e}", path.display()))?;
        config
            .networks
            .retain(|n| !nets.iter().any(|m| m.name == n.name));
        config.networks.extend(nets);
    }
    if let (Some(Network::Bridge(name)), Some(subnet)) = (&flags.network, flags.subnet) {
        config.networks.retain(|n| &n.name != name);
        let mut net = BridgeNetwork::new(name, subnet);
        net.bridge = name.chars().take(15).collect();
        net.subnet6 = flags.subnet6;
        config.networks.push(net);
    }
    Ok(berth::Runtime::new(config).await?)
}

async fn create_container(
    g: &Global,
    flags: &CreateFlags,
    id: &str,
    command: &[String],
    preserved: Vec<OwnedFd>,
) -> Result<Container, Box<dyn std::error::Error>> {
    let rt = network_runtime(g, flags).await?;
    if flags.image.is_none() && !command.is_empty() {
        return Err(
            "a command after the id needs --image (a bundle's config.json names the process)"
                .into(),
        );
    }
    let ctr = match &flags.image {
        Some(image) => super::image::create(&rt, flags, id, image, command, preserved).await?,
        None => create_from_bundle(&rt, flags, id, preserved).await?,
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
        let _ = ctr.delete(true).await;
        return Err(e);
    }
    Ok(ctr)
}

/// The options of a container with inherited stdio, given `preserved`
/// (`--preserve-fds`) as its 3, 4, ….
pub(super) fn options(flags: &CreateFlags, preserved: Vec<OwnedFd>) -> CreateOptions {
    CreateOptions {
        stdin: Stdio::Inherit,
        stdout: Stdio::Inherit,
        stderr: Stdio::Inherit,
        no_pivot: flags.no_pivot,
        pass_fds: preserved,
        // As runc: the container's parent is this process until it exits,
        // then the caller's subreaper (conmon, containerd's shim).
        detached: false,
        network: NetworkOptions {
            mode: flags.network.clone(),
            publish: flags.publish.clone(),
            address: flags.ip,
            cni_args: Vec::new(),
        },
    }
}

async fn create_from_bundle(
    rt: &berth::Runtime,
    flags: &CreateFlags,
    id: &str,
    preserved: Vec<OwnedFd>,
) -> Result<Container, Box<dyn std::error::Error>> {
    let bundle = Bundle::from_dir(&flags.bundle)?;
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if !terminal && flags.console_socket.is_some() {
        return Err("--console-socket given but process.terminal is false".into());
    }
    Ok(rt
        .create_with(id, bundle, options(flags, preserved))
        .await?)
}

pub async fn create(g: &Global, c: Create, preserved: Vec<OwnedFd>) -> Outcome {
    // Our parent (a shim, conmon) reaps the container, as with runc.
    berth::leave_children_to_parent();
    create_container(g, &c.flags, &c.id, &c.command, preserved).await?;
    Ok(0)
}

pub async fn start(g: &Global, id: &str) -> Outcome {
    runtime(g).await?.get(id).await?.start().await?;
    Ok(0)
}

pub async fn run(g: &Global, r: Run, preserved: Vec<OwnedFd>) -> Outcome {
    if r.detach {
        berth::leave_children_to_parent();
    }
    let ctr = create_container(g, &r.flags, &r.id, &r.command, preserved).await?;
    let pty = if r.flags.console_socket.is_none() {
        ctr.take_pty()
    } else {
        None
    };
    if let Err(e) = ctr.start().await {
        let _ = ctr.delete(true).await;
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
        ctr.delete(false).await?;
    }
    Ok(u8::try_from(status.code()).unwrap_or(255))
}

/// Forwards the signals a user sends to `berth run` to the container, as
/// runc does. Never returns while the container lives.
async fn forward_signals(ctr: &Container) {
    let kinds = [
        (SignalKind::interrupt(), berth::Signal::SIGINT),
        (SignalKind::terminate(), berth::Signal::SIGTERM),
        (SignalKind::hangup(), berth::Signal::SIGHUP),
        (SignalKind::quit(), berth::Signal::SIGQUIT),
        (SignalKind::user_defined1(), berth::Signal::SIGUSR1),
        (SignalKind::user_defined2(), berth::Signal::SIGUSR2),
        (SignalKind::window_change(), berth::Signal::SIGWINCH),
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
