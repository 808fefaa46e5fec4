//! The macvlan driver: a macvlan device on a parent interface of the host,
//! as `eth0` in the container, with an address of the parent's subnet.
//!
//! The container is then a peer on the parent's network (no NAT, no
//! published ports). Containers on one parent reach each other through the
//! device's bridge mode; as with every macvlan, not the host's parent
//! interface itself.

use std::path::{Path, PathBuf};

use super::addr::Ipv4Net;
use super::ipam::{NetState, Store};
use super::{link, netns, Attachment, Driver, NetworkOptions};
use crate::error::{Error, Result};
use crate::extension::Config;

/// The IPAM network of a parent interface.
pub(super) fn network_name(parent: &str) -> String {
    format!("macvlan-{parent}")
}

/// Checks the parent, takes an address of its subnet (never one the host
/// uses), and records the attachment in `dir`.
pub(super) async fn prepare(
    config: &Config,
    parent: String,
    dir: &Path,
    id: &str,
    opts: &NetworkOptions,
) -> Result<Attachment> {
    let root = config.root.clone();
    let host_netns = config.host_netns.clone();
    let (dir, id, requested) = (dir.to_path_buf(), id.to_string(), opts.address);
    netns::run(host_netns.clone(), move || {
        let (found, addrs) = netns::block_on(async {
            let h = link::connect()?;
            Ok::<_, Error>((
                link::by_name(&h, &parent).await?,
                link::addresses(&h).await?,
            ))
        })??;
        let parent_link = found.ok_or_else(|| Error::UnknownInterface {
            field: "network.mode (macvlan parent)",
            name: parent.clone(),
        })?;
        let name = network_name(&parent);
        let (ip, prefix) = addrs
            .iter()
            .find(|(i, _, _)| *i == parent_link.index)
            .map(|(_, ip, p)| (*ip, *p))
            .ok_or_else(|| Error::Network {
                network: name.clone(),
                reason: format!("parent {parent} has no IPv4 address to take a subnet from"),
            })?;
        let subnet = Ipv4Net::new(ip, prefix).expect("kernel prefix is at most 32");
        let store = Store::new(&root);
        let lock = store.lock()?;
        let mut st = store.load(&lock, &name)?.unwrap_or(NetState {
            subnet,
            bridge: parent.clone(),
            bridge_created: false,
            host_netns: host_netns.clone(),
            leases: Vec::new(),
            range: None,
            vxlan: None,
            subnet6: None,
        });
        // The host's own addresses on that subnet are not to be handed out.
        let used: Vec<_> = addrs.iter().map(|(_, a, _)| *a).collect();
        let address = st.allocate_avoiding(&name, &id, requested, Vec::new(), &used)?;
        let att = Attachment {
            driver: Driver::Macvlan,
            network: name.clone(),
            interface: "eth0".into(),
            address,
            prefix: subnet.prefix(),
            gateway: subnet.gateway(),
            address6: None,
            prefix6: 0,
            gateway6: None,
            bridge: parent.clone(),
            host_interface: String::new(),
            ports: Vec::new(),
            host_netns,
        };
        att.save(&dir)?;
        store.save(&lock, &name, &st)?;
        Ok(att)
    })
    .await
}

/// Creates the device in the container's namespace (process `pid`) and
/// configures it there.
pub(super) async fn attach(att: Attachment, pid: i32) -> Result<()> {
    netns::run(att.host_netns.clone(), move || {
        netns::block_on(async {
            let h = link::connect()?;
            let parent =
                link::by_name(&h, &att.bridge)
                    .await?
                    .ok_or_else(|| Error::UnknownInterface {
                        field: "network.mode (macvlan parent)",
                        name: att.bridge.clone(),
                    })?;
            link::add_macvlan(&h, parent.index, &att.interface, pid).await
        })??;
        let ns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        netns::run_blocking(&ns, || {
            netns::block_on(async {
                let h = link::connect()?;
                link::configure(&h, &att.interface, att.address, att.prefix, att.gateway).await
            })?
        })
    })
    .await
}
