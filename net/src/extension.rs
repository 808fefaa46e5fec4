//! How berth-net meets the runtime: [`Networks`], an
//! [`Extension`](berth::extension::Extension) holding the [`Settings`],
//! and a container's request, its [`NetworkOptions`].

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth::extension::{Attach, Extension, ExtensionFuture, Prepare, Release};
use berth::{Container, CreateOptions, Runtime, Status};
use oci_spec::runtime::{Mount, Spec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{Attachment, BridgeNetwork, CniConfig, NetworkOptions};

/// The name berth-net registers under, and the key of its request in
/// [`CreateOptions::extensions`].
pub const EXTENSION_NAME: &str = "net";

/// Which networks exist and where their host side lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Settings {
    /// The bridge networks containers may join (`berth0` on 10.89.0.0/16
    /// by default).
    pub networks: Vec<BridgeNetwork>,
    /// The network namespace (a `/run/netns/NAME` or `/proc/PID/ns/net`
    /// file) in which berth makes the host side of container networks:
    /// bridges, veths, nftables rules, sysctls. `None` is the namespace of
    /// the process using the runtime. A test gives a namespace of its own
    /// here so the machine's network stays untouched.
    pub host_netns: Option<PathBuf>,
    /// Where CNI network configurations and plugins are found, for
    /// containers on a [`Network::Cni`](crate::Network::Cni).
    pub cni: CniConfig,
    /// The program that serves published ports of dual-stack networks on
    /// `[::1]`, which nftables cannot (IPv6 has no `route_localnet`): the
    /// `berth` binary, or berth-net's `berth-port-proxy`. It is started as
    /// `PROGRAM port-proxy SPEC` when a container with published ports
    /// joins a dual-stack bridge, runs as a process of its own in
    /// [`host_netns`](Settings::host_netns) (its creator may exit), and is
    /// killed when the container is deleted, or by a later runtime's
    /// recovery once the container is gone. `None`: no proxy, and the
    /// ports answer on every address of the host but `[::1]`.
    #[serde(default)]
    pub port_proxy: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            networks: vec![BridgeNetwork::default_network()],
            host_netns: None,
            cni: CniConfig::default(),
            port_proxy: None,
        }
    }
}

/// The settings on one runtime root: what the network code works with.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The runtime's state root: leases and network state live in
    /// `<root>/network`.
    pub root: PathBuf,
    pub networks: Vec<BridgeNetwork>,
    pub host_netns: Option<PathBuf>,
    pub cni: CniConfig,
    pub port_proxy: Option<PathBuf>,
}

impl Config {
    fn new(root: &Path, settings: Settings) -> Config {
        Config {
            root: root.to_path_buf(),
            networks: settings.networks,
            host_netns: settings.host_netns,
            cni: settings.cni,
            port_proxy: settings.port_proxy,
        }
    }
}

/// A container's request to berth-net.
fn parse(request: &serde_json::Value) -> Result<NetworkOptions> {
    NetworkOptions::deserialize(request)
        .map_err(|e| Error::invalid_option("extensions.net", e.to_string()))
}

impl NetworkOptions {
    /// Asks, in `opts`, for this network for the container: its runtime
    /// must have [`Networks`] among its extensions.
    ///
    /// ```
    /// let mut opts = berth::CreateOptions::default();
    /// let mut net = berth_net::NetworkOptions::default();
    /// net.mode = Some(berth_net::Network::None);
    /// net.add_to(&mut opts);
    /// assert!(opts.extensions.contains_key(berth_net::EXTENSION_NAME));
    /// ```
    pub fn add_to(&self, opts: &mut CreateOptions) {
        // Plain data: it always serializes.
        if let Ok(value) = serde_json::to_value(self) {
            opts.extensions.insert(EXTENSION_NAME.into(), value);
        }
    }
}

/// Container networks as a runtime extension: register it in
/// [`Config::extensions`](berth::Config::extensions), then ask for a
/// network per container with [`NetworkOptions::add_to`].
#[derive(Debug, Clone, Default)]
pub struct Networks {
    settings: Settings,
}

impl Networks {
    /// Networks with these settings.
    pub fn new(settings: Settings) -> Networks {
        Networks { settings }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Connects a created or running container that has a network
    /// namespace of its own and no network yet (one made with
    /// [`Network::None`](crate::Network::None)) to a bridge, macvlan,
    /// overlay or CNI network. Deleting the container releases it (the
    /// runtime must have this extension registered).
    pub async fn connect(
        &self,
        rt: &Runtime,
        ctr: &Container,
        opts: &NetworkOptions,
    ) -> Result<Attachment> {
        if ctr.status().await? == Status::Stopped {
            return Err(Error::Runtime(berth::Error::InvalidState {
                id: ctr.id().to_string(),
                status: "stopped".into(),
                op: "connect to a network",
            }));
        }
        ctr.record_extension(EXTENSION_NAME).await?;
        let config = Config::new(&rt.config().root, self.settings.clone());
        crate::connect(&config, ctr.state_dir(), ctr.id(), ctr.pid(), opts).await
    }

    /// Makes `peers` the other hosts of overlay network `network` on this
    /// host while it runs: its VXLAN device floods broadcasts to them (a
    /// host that joins later becomes reachable from the running
    /// containers; one removed no longer gets their traffic), and the
    /// containers attached later use them. The list in
    /// [`Settings::networks`] is what the overlay starts with on this
    /// host; while no container of it runs here, there is nothing to
    /// change.
    pub async fn set_overlay_peers(
        &self,
        rt: &Runtime,
        network: &str,
        peers: Vec<Ipv4Addr>,
    ) -> Result<()> {
        let config = Config::new(&rt.config().root, self.settings.clone());
        crate::set_overlay_peers(&config, network, peers).await
    }

    /// Runs CNI's CHECK on the network of a container on a CNI network:
    /// its plugins verify that what they made is still in place. A
    /// container on no CNI network, or on one whose `cniVersion` is older
    /// than 0.4.0, gets [`Error::Unsupported`].
    pub async fn check(&self, ctr: &Container) -> Result<()> {
        crate::check(ctr.state_dir()).await
    }
}

/// How `ctr` is connected to a network: its address, gateway, interfaces
/// and published ports. `None` for a container on no network of
/// berth-net's.
pub fn attachment(ctr: &Container) -> Result<Option<Attachment>> {
    Attachment::load(ctr.state_dir())
}

/// The runtime root a container's state directory is in.
fn root_of(state_dir: &Path) -> &Path {
    state_dir.parent().unwrap_or(state_dir)
}

impl Extension for Networks {
    fn name(&self) -> &str {
        EXTENSION_NAME
    }

    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(&self.settings).unwrap_or_default()
    }

    fn with_settings(
        &self,
        settings: &serde_json::Value,
    ) -> berth::Result<Option<Arc<dyn Extension>>> {
        let settings = Settings::deserialize(settings)
            .map_err(|e| Error::invalid_option("settings", e.to_string()))?;
        Ok(Some(Arc::new(Networks::new(settings))))
    }

    fn edit_spec(&self, spec: &mut Spec, request: &serde_json::Value) -> berth::Result<()> {
        Ok(crate::adjust_spec(spec, &parse(request)?)?)
    }

    fn prepare<'a>(&'a self, cx: Prepare<'a>) -> ExtensionFuture<'a, Vec<Mount>> {
        Box::pin(async move {
            let options = parse(cx.request)?;
            let config = Config::new(root_of(cx.state_dir), self.settings.clone());
            let mounts =
                crate::prepare(&config, cx.state_dir, cx.id, cx.hostname, &options).await?;
            Ok(mounts.unwrap_or_default())
        })
    }

    fn attach<'a>(&'a self, cx: Attach<'a>) -> ExtensionFuture<'a, ()> {
        Box::pin(async move {
            let options = parse(cx.request)?;
            if options.mode == Some(crate::Network::Slirp4netns) {
                return Ok(crate::attach_slirp(cx.state_dir, cx.pid, options.publish).await?);
            }
            let proxy = self.settings.port_proxy.as_deref();
            Ok(crate::attach(cx.state_dir, cx.id, cx.pid, proxy).await?)
        })
    }

    fn release<'a>(&'a self, cx: Release<'a>) -> ExtensionFuture<'a, ()> {
        Box::pin(async move { Ok(crate::release(cx.state_dir, cx.id).await?) })
    }

    fn recover<'a>(&'a self, root: &'a Path) -> ExtensionFuture<'a, ()> {
        Box::pin(async move { Ok(crate::recover(root).await?) })
    }
}
