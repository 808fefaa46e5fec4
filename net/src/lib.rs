//! # berth-net
//!
//! Container networks for the [berth] runtime: which network a
//! container joins, and the host-side work that connects it. berth-net is
//! an [extension](berth::extension) of the runtime: register a
//! [`Networks`] in [`Config::extensions`](berth::Config::extensions), then
//! put containers on a network with [`NetworkOptions::add_to`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use berth_net::{Network, NetworkOptions, Networks, Settings};
//!
//! let networks = Networks::new(Settings::default());
//! let mut config = berth::Config::default();
//! config.extensions.push(Arc::new(networks.clone()));
//! let rt = berth::Runtime::new(config).await?;
//!
//! let mut opts = berth::CreateOptions::default();
//! let mut net = NetworkOptions::default();
//! net.mode = Some(Network::Bridge("berth0".into()));
//! net.add_to(&mut opts);
//! let ctr = rt.create_with("web", berth::Bundle::from_dir("bundle").await?, opts).await?;
//! println!("{:?}", berth_net::attachment(&ctr)?);
//! # Ok(()) }
//! ```
//!
//! Drivers, chosen per container with [`NetworkOptions::mode`]:
//! - [`Network::None`]: a network namespace of its own with only `lo` up;
//! - [`Network::Host`]: the host's network namespace;
//! - [`Network::Bridge`]: a veth pair from a bridge (created on first use)
//!   to `eth0` in the container, an address from the network's subnet
//!   (IPAM), a default route via the bridge, `/etc/hosts`,
//!   `/etc/hostname` and `/etc/resolv.conf`, outbound NAT and published
//!   ports as nftables rules (and on a dual-stack network, for `[::1]`, a
//!   userland proxy: [`Settings::port_proxy`]);
//! - [`Network::Cni`]: whatever the plugins of a CNI network configuration
//!   make (see [`CniConfig`]; `bridge`, `host-local`, `portmap`, ...);
//! - [`Network::Slirp4netns`]: user-mode networking by `slirp4netns`, for
//!   an unprivileged user's containers (published ports forwarded by
//!   slirp4netns).
//!
//! The host side runs in [`Settings::host_netns`]
//! (the runtime's own namespace by default), so a test or an embedding
//! program can give berth a namespace that plays the host.
//!
//! Everything a container's network made is removed when it is deleted,
//! and, for containers whose process is gone, when a runtime next starts
//! ([`Runtime::new`](berth::Runtime::new)).

#![deny(missing_docs)]

mod addr;
mod bridge;
mod cni;
mod command;
mod error;
mod extension;
mod files;
mod ipam;
mod link;
mod macvlan;
mod netns;
mod nft;
mod proxy;
mod slirp;
mod sysctl;

pub use addr::{Ipv4Net, Ipv6Net};
pub use cni::CniConfig;
pub use error::{Error, Result};
pub use extension::{attachment, Networks, Settings, EXTENSION_NAME};
pub use proxy::port_proxy_main;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use crate::extension::Config;

/// The network a container joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// A network namespace of its own with only `lo`.
    None,
    /// The host's network namespace.
    Host,
    /// The bridge network of this name (one of [`Settings::networks`]).
    Bridge(String),
    /// A macvlan device on this parent interface of the host, with an
    /// address of the parent's subnet.
    Macvlan(String),
    /// The VXLAN overlay network of this name (one of
    /// [`Settings::networks`] with [`BridgeNetwork::vxlan`] set).
    Overlay(String),
    /// The CNI network of this name: the configuration list in
    /// [`CniConfig::conf_dir`] whose `name` it is.
    Cni(String),
    /// User-mode networking by `slirp4netns` (in `PATH`), which needs no
    /// privilege: `tap0` with 10.0.2.100/24, the gateway 10.0.2.2 (also
    /// the host's loopback) and DNS on 10.0.2.3. Published ports are
    /// forwarded by slirp4netns (on the host's loopback too).
    Slirp4netns,
}

impl FromStr for Network {
    type Err = String;

    /// `none`, `host`, `bridge`, `bridge=NAME`, `macvlan=PARENT`,
    /// `overlay=NAME`, `cni=NAME`, `slirp4netns`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, arg) = match s.split_once('=') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        let need = |a: Option<&str>| match a {
            Some(a) if !a.is_empty() => Ok(a.to_string()),
            _ => Err(format!("{kind} needs a name: {kind}=NAME")),
        };
        Ok(match (kind, arg) {
            ("none", None) => Network::None,
            ("host", None) => Network::Host,
            ("bridge", None) => Network::Bridge(DEFAULT_NETWORK.into()),
            ("bridge", a) => Network::Bridge(need(a)?),
            ("macvlan", a) => Network::Macvlan(need(a)?),
            ("overlay", a) => Network::Overlay(need(a)?),
            ("cni", a) => Network::Cni(need(a)?),
            ("slirp4netns", None) => Network::Slirp4netns,
            _ => {
                return Err(format!(
                    "{s:?}: expected none, host, bridge[=NAME], macvlan=PARENT, overlay=NAME, cni=NAME or slirp4netns"
                ))
            }
        })
    }
}

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A published port: connections to the host's `host_port` go to the
/// container's `container_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Only connections to this host address; `None` for every local
    /// address, 127.0.0.1 included.
    pub host_ip: Option<Ipv4Addr>,
    /// The port on the host.
    pub host_port: u16,
    /// The port in the container.
    pub container_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl FromStr for PortMapping {
    type Err = String;

    /// `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]`, as Docker's
    /// `--publish`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (rest, protocol) = match s.rsplit_once('/') {
            Some((r, "tcp")) => (r, Protocol::Tcp),
            Some((r, "udp")) => (r, Protocol::Udp),
            Some((_, p)) => return Err(format!("{s:?}: protocol {p:?} is not tcp or udp")),
            None => (s, Protocol::Tcp),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (ip, hp, cp) = match parts[..] {
            [hp, cp] => (None, hp, cp),
            [ip, hp, cp] => (Some(ip), hp, cp),
            _ => {
                return Err(format!(
                    "{s:?}: expected [HOST_IP:]HOST_PORT:CONTAINER_PORT"
                ))
            }
        };
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{s:?}: {p:?} is not a port in 1..=65535"))
        };
        let host_ip = match ip {
            Some(ip) => Some(
                ip.parse()
                    .map_err(|_| format!("{s:?}: {ip:?} is not an IPv4 address"))?,
            ),
            None => None,
        };
        Ok(PortMapping {
            host_ip,
            host_port: port(hp)?,
            container_port: port(cp)?,
            protocol,
        })
    }
}

/// A bridge network: its name, its bridge interface and its subnet (the
/// bridge gets the first address, containers the others).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeNetwork {
    /// The network's name (`--network bridge=NAME`).
    pub name: String,
    /// The bridge interface (at most 15 bytes).
    pub bridge: String,
    /// The subnet.
    pub subnet: Ipv4Net,
    /// The part of the subnet this host hands out (the whole subnet when
    /// `None`); its first address is this host's bridge. Hosts sharing an
    /// overlay each take a range of their own.
    #[serde(default)]
    pub range: Option<Ipv4Net>,
    /// Makes the network a VXLAN overlay spanning hosts: the bridge gets a
    /// VXLAN device to its peers.
    #[serde(default)]
    pub vxlan: Option<Vxlan>,
    /// Makes the network dual-stack: each container (and the bridge) also
    /// gets the IPv6 address at the same offset in this subnet as its IPv4
    /// address in [`subnet`](BridgeNetwork::subnet), a default IPv6 route,
    /// outbound NAT and its published ports on the host's IPv6 addresses.
    /// Its prefix leaves room for the IPv4 subnet's offsets.
    #[serde(default)]
    pub subnet6: Option<Ipv6Net>,
}

/// The VXLAN side of an overlay network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vxlan {
    /// The VXLAN network identifier, the same on every host.
    pub vni: u32,
    /// This host's underlay address.
    pub local: Ipv4Addr,
    /// The other hosts' underlay addresses (any number; a host joining
    /// later reaches the running containers, and
    /// [`Networks::set_overlay_peers`] adds it here to a running overlay).
    pub peers: Vec<Ipv4Addr>,
    /// The UDP port (4789, IANA's, unless set otherwise).
    pub port: u16,
}

impl Vxlan {
    /// The VXLAN device's name.
    pub(crate) fn device(&self) -> String {
        format!("bvx{}", self.vni)
    }
}

/// The network `bridge` without a name means.
pub const DEFAULT_NETWORK: &str = "berth0";

impl BridgeNetwork {
    /// `berth0`: bridge `berth0` on 10.89.0.0/16.
    pub fn default_network() -> BridgeNetwork {
        BridgeNetwork::new(
            DEFAULT_NETWORK,
            Ipv4Net::new(Ipv4Addr::new(10, 89, 0, 0), 16).expect("valid"),
        )
    }

    /// A network on bridge `name` (at most 15 bytes) over `subnet`.
    pub fn new(name: &str, subnet: Ipv4Net) -> BridgeNetwork {
        BridgeNetwork {
            name: name.into(),
            bridge: name.into(),
            subnet,
            range: None,
            vxlan: None,
            subnet6: None,
        }
    }
}

/// Network choices for one container (given to it with
/// [`NetworkOptions::add_to`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NetworkOptions {
    /// The network to join; `None` keeps what the spec's
    /// `linux.namespaces` says.
    pub mode: Option<Network>,
    /// Ports to publish (bridge, overlay, CNI and slirp4netns networks; on
    /// a CNI network, the `portMappings` capability of its plugins).
    pub publish: Vec<PortMapping>,
    /// A fixed address instead of the next free one (bridge networks only).
    pub address: Option<Ipv4Addr>,
    /// `CNI_ARGS` for the plugins of a CNI network, beside
    /// `IgnoreUnknown=1` (keys and values without `;` or `=`).
    #[serde(default)]
    pub cni_args: Vec<(String, String)>,
}

/// The kind of link a container has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// A veth pair to a bridge.
    #[default]
    Bridge,
    /// A macvlan device on a parent interface.
    Macvlan,
    /// Made by the plugins of a CNI network.
    Cni,
}

/// How a container is connected, as [`attachment`] reports it (and
/// `berth state` prints it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Attachment {
    /// The driver.
    #[serde(default)]
    pub driver: Driver,
    /// The network's name.
    pub network: String,
    /// The interface in the container.
    pub interface: String,
    /// The container's address.
    pub address: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The default gateway (the bridge's address).
    pub gateway: Ipv4Addr,
    /// The container's IPv6 address, on a dual-stack network.
    #[serde(default)]
    pub address6: Option<Ipv6Addr>,
    /// The IPv6 subnet's prefix length (0 without one).
    #[serde(default)]
    pub prefix6: u8,
    /// The IPv6 default gateway, on a dual-stack network.
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// The bridge on the host (for macvlan: the parent interface).
    pub bridge: String,
    /// The host's end of the veth pair (none for macvlan).
    pub host_interface: String,
    /// Published ports.
    pub ports: Vec<PortMapping>,
    /// The namespace that plays the host (`None`: the runtime's own).
    pub host_netns: Option<PathBuf>,
}

pub(crate) const ATTACHMENT_FILE: &str = "network.json";

impl Attachment {
    /// The attachment recorded in a container's state directory.
    pub(crate) fn load(dir: &Path) -> Result<Option<Attachment>> {
        let p = dir.join(ATTACHMENT_FILE);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Network {
                    network: p.display().to_string(),
                    reason: format!("corrupt attachment: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", p, e)),
        }
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Network {
            network: self.network.clone(),
            reason: e.to_string(),
        })?;
        Ok(berth::extension::write_atomic(
            &dir.join(ATTACHMENT_FILE),
            &json,
        )?)
    }
}

/// Makes the spec's network namespace what `opts.mode` asks for. Checks
/// the options; runs before the spec is compiled.
pub(crate) fn adjust_spec(spec: &mut Spec, opts: &NetworkOptions) -> Result<()> {
    let bridged = matches!(opts.mode, Some(Network::Bridge(_) | Network::Overlay(_)));
    let cni = matches!(opts.mode, Some(Network::Cni(_)));
    let slirp = opts.mode == Some(Network::Slirp4netns);
    if !bridged && !cni && !slirp && !opts.publish.is_empty() {
        return Err(Error::invalid_option(
            "network.publish",
            "ports can be published only on a bridge, overlay, CNI or slirp4netns network",
        ));
    }
    if !cni && !opts.cni_args.is_empty() {
        return Err(Error::invalid_option(
            "network.cni_args",
            "CNI_ARGS are for a CNI network only",
        ));
    }
    let addressed = bridged || matches!(opts.mode, Some(Network::Macvlan(_)));
    if !addressed && opts.address.is_some() {
        return Err(Error::invalid_option(
            "network.address",
            "an address can be given only on a bridge or macvlan network",
        ));
    }
    let Some(mode) = &opts.mode else {
        return Ok(());
    };
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    let at = namespaces
        .iter()
        .position(|n| n.typ() == LinuxNamespaceType::Network);
    match mode {
        Network::Host => {
            if let Some(i) = at {
                namespaces.remove(i);
            }
        }
        Network::None
        | Network::Bridge(_)
        | Network::Macvlan(_)
        | Network::Overlay(_)
        | Network::Cni(_)
        | Network::Slirp4netns => {
            if let Some(i) = at {
                if namespaces[i].path().is_some() {
                    return Err(Error::invalid_spec(
                        format!("linux.namespaces[{i}].path"),
                        "a container joining a network needs a network namespace of its own",
                    ));
                }
            } else {
                let mut ns = LinuxNamespace::default();
                ns.set_typ(LinuxNamespaceType::Network);
                namespaces.push(ns);
            }
        }
    }
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
    Ok(())
}

/// Before the container's process exists: takes an address and writes the
/// container's `/etc` files into its state directory `dir`. Returns the
/// mounts to add to the spec, or `None` when the container joins no bridge.
pub(crate) async fn prepare(
    config: &Config,
    dir: &Path,
    id: &str,
    hostname: &str,
    opts: &NetworkOptions,
) -> Result<Option<Vec<oci_spec::runtime::Mount>>> {
    let (name, overlay) = match &opts.mode {
        Some(Network::Bridge(name)) => (name, false),
        Some(Network::Overlay(name)) => (name, true),
        Some(Network::Macvlan(parent)) => {
            let att = macvlan::prepare(config, parent.clone(), dir, id, opts).await?;
            return files::write(dir, hostname, &[att.address.into()]).map(Some);
        }
        Some(Network::Cni(name)) => {
            cni::prepare(config, dir, id, hostname, name, opts)?;
            // The address is known after ADD, which rewrites /etc/hosts.
            return files::write(dir, hostname, &[]).map(Some);
        }
        _ => return Ok(None),
    };
    let def = config
        .networks
        .iter()
        .find(|n| &n.name == name && (!overlay || n.vxlan.is_some()))
        .cloned()
        .ok_or_else(|| Error::Network {
            network: name.clone(),
            reason: format!(
                "no such {} network in Settings::networks",
                if overlay { "overlay" } else { "bridge" }
            ),
        })?;
    if let Some(r) = def.range {
        if !def.subnet.overlaps(&r) || r.prefix() < def.subnet.prefix() {
            return Err(Error::Network {
                network: name.clone(),
                reason: format!("range {r} is not inside subnet {}", def.subnet),
            });
        }
    }
    let att = bridge::prepare(config, def, dir, id, opts).await?;
    let mut ips = vec![att.address.into()];
    ips.extend(att.address6.map(std::net::IpAddr::from));
    files::write(dir, hostname, &ips).map(Some)
}

/// Once the container's network namespace exists (its process is `pid`):
/// connects it, and starts `port_proxy` for its published ports on
/// `[::1]` on a dual-stack bridge. A no-op for a container on no bridge.
pub(crate) async fn attach(
    dir: &Path,
    id: &str,
    pid: i32,
    port_proxy: Option<&Path>,
) -> Result<()> {
    if cni::is_attached(dir) {
        return cni::attach(dir, pid).await;
    }
    match Attachment::load(dir)? {
        Some(att) if att.driver == Driver::Macvlan => macvlan::attach(att, pid).await,
        Some(att) => bridge::attach(dir, id, att, pid, port_proxy.map(Path::to_path_buf)).await,
        None => Ok(()),
    }
}

/// Connects an existing container (process `pid`, state directory `dir`)
/// that has a network namespace of its own and no network yet. Its
/// `/etc/hosts`, `hostname` and `resolv.conf` are written to its state
/// directory and bind-mounted into its mount namespace (over the files its
/// rootfs has; one it lacks is not made).
pub(crate) async fn connect(
    config: &Config,
    dir: &Path,
    id: &str,
    pid: i32,
    opts: &NetworkOptions,
) -> Result<Attachment> {
    if !matches!(
        opts.mode,
        Some(Network::Bridge(_) | Network::Macvlan(_) | Network::Overlay(_) | Network::Cni(_))
    ) {
        return Err(Error::invalid_option(
            "network.mode",
            "a running container can join a bridge, macvlan, overlay or CNI network",
        ));
    }
    if Attachment::load(dir)?.is_some() {
        return Err(Error::Network {
            network: id.to_string(),
            reason: "the container is connected to a network already".into(),
        });
    }
    let ns = |p: &Path| std::fs::metadata(p).map(|m| (m.dev(), m.ino()));
    use std::os::unix::fs::MetadataExt;
    let theirs = ns(&PathBuf::from(format!("/proc/{pid}/ns/net")))
        .map_err(|e| Error::io("open network namespace of", format!("/proc/{pid}"), e))?;
    let host = config
        .host_netns
        .clone()
        .unwrap_or_else(|| PathBuf::from("/proc/self/ns/net"));
    if ns(&host).ok() == Some(theirs) || ns(Path::new("/proc/self/ns/net")).ok() == Some(theirs) {
        return Err(Error::invalid_spec(
            "linux.namespaces",
            "the container shares the host's network namespace",
        ));
    }
    let mounts = match prepare(config, dir, id, id, opts).await {
        Ok(m) => m.unwrap_or_default(),
        Err(e) => {
            let _ = release(dir, id).await;
            return Err(e);
        }
    };
    // The files first: once the container sees its address, its
    // /etc/hosts names it.
    let mounted = match files::mount_into(pid, &mounts) {
        Ok(m) => m,
        Err(e) => {
            let _ = release(dir, id).await;
            return Err(e);
        }
    };
    if let Err(e) = attach(dir, id, pid, config.port_proxy.as_deref()).await {
        let _ = files::unmount_from(pid, &mounted);
        let _ = release(dir, id).await;
        return Err(e);
    }
    Attachment::load(dir)?.ok_or_else(|| Error::Network {
        network: id.to_string(),
        reason: "the attachment vanished".into(),
    })
}

/// Removes everything the container's network made (rules, veth, lease,
/// port proxy, and with the network's last container its bridge and NAT).
/// Idempotent.
pub(crate) async fn release(dir: &Path, id: &str) -> Result<()> {
    let d = dir.to_path_buf();
    berth::blocking::run(move || slirp::stop(&d))
        .await
        .map_err(|e| Error::sys("stop slirp4netns", std::io::Error::other(e)))??;
    if cni::release(dir).await? {
        return Ok(());
    }
    let Some(att) = Attachment::load(dir)? else {
        return Ok(());
    };
    let root = dir.parent().unwrap_or(dir).to_path_buf();
    bridge::release(
        root,
        att.network.clone(),
        id.to_string(),
        att.host_netns.clone(),
    )
    .await?;
    let p = dir.join(ATTACHMENT_FILE);
    match std::fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", p, e)),
        _ => Ok(()),
    }
}

/// Releases the networks of containers that are gone (their state removed,
/// their process dead, or their creation abandoned by a crashed process).
pub(crate) async fn recover(root: &Path) -> Result<()> {
    let r = root.to_path_buf();
    berth::blocking::run(move || slirp::recover(&r))
        .await
        .map_err(|e| Error::sys("stop slirp4netns", std::io::Error::other(e)))??;
    cni::recover(root).await?;
    bridge::recover(root.to_path_buf()).await
}

/// Starts slirp4netns for a container on [`Network::Slirp4netns`] (its
/// process is `pid`, its state directory `dir`).
pub(crate) async fn attach_slirp(dir: &Path, pid: i32, ports: Vec<PortMapping>) -> Result<()> {
    let d = dir.to_path_buf();
    berth::blocking::run(move || slirp::start(&d, pid, &ports))
        .await
        .map_err(|e| Error::sys("start slirp4netns", std::io::Error::other(e)))?
}

/// Makes `peers` the peers of overlay `name` on this host (see
/// [`Networks::set_overlay_peers`]).
pub(crate) async fn set_overlay_peers(
    config: &Config,
    name: &str,
    peers: Vec<Ipv4Addr>,
) -> Result<()> {
    if !config
        .networks
        .iter()
        .any(|n| n.name == name && n.vxlan.is_some())
    {
        return Err(Error::Network {
            network: name.to_string(),
            reason: "no such overlay network in Settings::networks".into(),
        });
    }
    bridge::set_peers(
        config.root.clone(),
        config.host_netns.clone(),
        name.to_string(),
        peers,
    )
    .await
    .map(drop)
}

/// Runs CNI's CHECK for a container on a CNI network (state directory
/// `dir`).
pub(crate) async fn check(dir: &Path) -> Result<()> {
    cni::check(dir).await
}

/// FNV-1a: short stable names from long ids.
pub(crate) fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes_parse() {
        assert_eq!("none".parse(), Ok(Network::None));
        assert_eq!("host".parse(), Ok(Network::Host));
        assert_eq!("bridge".parse(), Ok(Network::Bridge("berth0".into())));
        assert_eq!("bridge=b1".parse(), Ok(Network::Bridge("b1".into())));
        assert_eq!("macvlan=eth0".parse(), Ok(Network::Macvlan("eth0".into())));
        assert_eq!("overlay=o".parse(), Ok(Network::Overlay("o".into())));
        assert_eq!("cni=podman".parse(), Ok(Network::Cni("podman".into())));
        assert_eq!("slirp4netns".parse(), Ok(Network::Slirp4netns));
        for bad in [
            "",
            "bridge=",
            "macvlan",
            "host=x",
            "wifi",
            "cni",
            "cni=",
            "slirp4netns=x",
        ] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    #[test]
    fn published_ports_parse() {
        let p: PortMapping = "8080:80".parse().unwrap();
        assert_eq!(
            (p.host_ip, p.host_port, p.container_port, p.protocol),
            (None, 8080, 80, Protocol::Tcp)
        );
        let p: PortMapping = "127.0.0.1:53:5353/udp".parse().unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(p.protocol, Protocol::Udp);
        for bad in [
            "80",
            "0:80",
            "1:2:3:4",
            "x:80",
            "80:80/sctp",
            "1.2.3:80:80",
            "70000:80",
        ] {
            assert!(bad.parse::<PortMapping>().is_err(), "{bad}");
        }
    }
}
