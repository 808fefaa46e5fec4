//! The bridge driver: the host side of a container on a bridge network.
//!
//! Every step runs on a thread in the namespace that plays the host, under
//! the network lock of the runtime root ([`ipam::Store::lock`]).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::addr::Ipv4Net;
use super::ipam::{Locked, NetState, Store};
use super::{
    link, netns, nft, proxy, sysctl, Attachment, BridgeNetwork, NetworkOptions, PortMapping,
    Protocol,
};
use crate::error::{Error, Result};
use crate::extension::Config;
use berth::extension::{container_process, HostProcess};

/// The host's end of container `id`'s veth pair: unique per root and id,
/// at most 15 bytes.
fn veth_name(root: &Path, id: &str) -> String {
    let h = super::hash(&format!("{}\0{id}", root.display()));
    format!("bv{:012x}", h & 0xffff_ffff_ffff)
}

/// Takes an address (and checks the subnet and the ports) and records the
/// attachment in `dir`.
pub(super) async fn prepare(
    config: &Config,
    def: BridgeNetwork,
    dir: &Path,
    id: &str,
    opts: &NetworkOptions,
) -> Result<Attachment> {
    let root = config.root.clone();
    let host_netns = config.host_netns.clone();
    let (dir, id, opts) = (dir.to_path_buf(), id.to_string(), opts.clone());
    netns::run(host_netns.clone(), move || {
        let store = Store::new(&root);
        let lock = store.lock()?;
        let mut st = match store.load(&lock, &def.name)? {
            Some(st) => st,
            None => NetState {
                subnet: def.subnet,
                bridge: def.bridge.clone(),
                bridge_created: false,
                host_netns: host_netns.clone(),
                leases: Vec::new(),
                range: def.range,
                vxlan: def.vxlan.clone(),
                subnet6: def.subnet6,
            },
        };
        if let Some(s6) = st.subnet6 {
            // Every IPv4 offset must have its IPv6 twin.
            if u32::from(128 - s6.prefix()) < u32::from(32 - st.subnet.prefix()) {
                return Err(Error::Network {
                    network: def.name.clone(),
                    reason: format!("IPv6 subnet {s6} is smaller than IPv4 subnet {}", st.subnet),
                });
            }
        }
        let local = netns::block_on(check_subnet(&def.name, st.subnet, &st.bridge))??;
        check_ports(&store, &lock, &opts.publish, &local)?;
        let address = st.allocate(&def.name, &id, opts.address, opts.publish.clone())?;
        let att = Attachment {
            driver: super::Driver::Bridge,
            network: def.name.clone(),
            interface: "eth0".into(),
            address,
            prefix: st.subnet.prefix(),
            gateway: st.pool().gateway(),
            address6: st.v6(address),
            prefix6: st.subnet6.map_or(0, |s| s.prefix()),
            gateway6: st.v6(st.pool().gateway()),
            bridge: st.bridge.clone(),
            host_interface: veth_name(&root, &id),
            ports: opts.publish.clone(),
            host_netns,
        };
        // The attachment first: a crash between the two leaves a lease
        // that recovery finds, never an untracked one.
        att.save(&dir)?;
        store.save(&lock, &def.name, &st)?;
        Ok(att)
    })
    .await
}

/// The subnet must not overlap an address of the host other than the
/// network's own bridge's. Returns the host's addresses.
async fn check_subnet(network: &str, subnet: Ipv4Net, bridge: &str) -> Result<Vec<Ipv4Addr>> {
    let h = link::connect()?;
    let links = link::links(&h).await?;
    let own = links.iter().find(|l| l.name == bridge).map(|l| l.index);
    let addresses = link::addresses(&h).await?;
    for &(index, ip, prefix) in &addresses {
        if Some(index) == own {
            continue;
        }
        let net = Ipv4Net::new(ip, prefix).expect("kernel prefix is at most 32");
        if net.overlaps(&subnet) {
            let ifname = links
                .iter()
                .find(|l| l.index == index)
                .map_or("?", |l| l.name.as_str());
            return Err(Error::SubnetOverlap {
                network: network.to_string(),
                subnet: subnet.to_string(),
                other: format!("{ip}/{prefix} on {ifname}"),
            });
        }
    }
    Ok(addresses.into_iter().map(|(_, ip, _)| ip).collect())
}

/// A published port must be free: not another container's, not bound by
/// a socket of the host.
fn check_ports(
    store: &Store,
    lock: &Locked,
    ports: &[PortMapping],
    local: &[Ipv4Addr],
) -> Result<()> {
    let clash = |a: &PortMapping, b: &PortMapping| {
        a.host_port == b.host_port
            && a.protocol == b.protocol
            && (a.host_ip.is_none() || b.host_ip.is_none() || a.host_ip == b.host_ip)
    };
    let taken = |p: &PortMapping, by: String| Error::PortTaken {
        host_ip: p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
        port: p.host_port,
        protocol: p.protocol.as_str(),
        by,
    };
    for (i, p) in ports.iter().enumerate() {
        if ports[..i].iter().any(|q| clash(p, q)) {
            return Err(taken(p, "published twice by this container".into()));
        }
        for name in store.names()? {
            for lease in store
                .load(lock, &name)?
                .map(|s| s.leases)
                .unwrap_or_default()
            {
                if lease.ports.iter().any(|q| clash(p, q)) {
                    return Err(taken(p, format!("container {:?}", lease.id)));
                }
            }
        }
        if let Some(ip) = p.host_ip.filter(|ip| !local.contains(ip)) {
            return Err(Error::Network {
                network: format!("{ip}:{}", p.host_port),
                reason: "cannot publish on an address the host does not have".into(),
            });
        }
        let want = p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        if let Some(holder) = bound_sockets(p.protocol)?.into_iter().find(|(ip, port)| {
            *port == p.host_port && (ip.is_unspecified() || want.is_unspecified() || *ip == want)
        }) {
            return Err(taken(
                p,
                format!("a socket of the host on {}:{}", holder.0, holder.1),
            ));
        }
    }
    Ok(())
}

/// The addresses and ports of this thread's namespace that sockets are
/// bound to (listening, for TCP), from `/proc/thread-self/net`. Read, not
/// probed with a `bind`: a socket of ours could outlive the check in a
/// container cloned meanwhile.
fn bound_sockets(proto: Protocol) -> Result<Vec<(Ipv4Addr, u16)>> {
    let mut out = Vec::new();
    for v6 in [false, true] {
        let name = format!("{}{}", proto.as_str(), if v6 { "6" } else { "" });
        let path = PathBuf::from("/proc/thread-self/net").join(&name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("read", path, e)),
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (f.get(1), f.get(3)) else {
                continue;
            };
            // TCP: only listening sockets (0A) hold a port for DNAT's
            // purposes; UDP: every bound one.
            if proto == Protocol::Tcp && *state != "0A" {
                continue;
            }
            let Some((addr, port)) = local.split_once(':') else {
                continue;
            };
            let Ok(port) = u16::from_str_radix(port, 16) else {
                continue;
            };
            let ip = if v6 {
                // Only a v6 wildcard (dual-stack) socket takes the v4 port.
                if addr.bytes().any(|b| b != b'0') {
                    continue;
                }
                Ipv4Addr::UNSPECIFIED
            } else {
                match u32::from_str_radix(addr, 16) {
                    // The kernel prints the address as a native-endian word.
                    Ok(w) => Ipv4Addr::from(w.to_ne_bytes()),
                    Err(_) => continue,
                }
            };
            out.push((ip, port));
        }
    }
    Ok(out)
}

/// Connects container `id` (process `pid`): the bridge if missing, the
/// sysctls, the NAT rules, the veth pair, inside the container the
/// address and the default route, and on a dual-stack network the port
/// proxy (`port_proxy`) for its published ports on `[::1]`.
pub(super) async fn attach(
    dir: &Path,
    id: &str,
    att: Attachment,
    pid: i32,
    port_proxy: Option<PathBuf>,
) -> Result<()> {
    let root = dir.parent().unwrap_or(dir).to_path_buf();
    let dir = dir.to_path_buf();
    let id = id.to_string();
    netns::run(att.host_netns.clone(), move || {
        let store = Store::new(&root);
        let lock = store.lock()?;
        let mut st = store
            .load(&lock, &att.network)?
            .ok_or_else(|| Error::Network {
                network: att.network.clone(),
                reason: "the network's state is gone".into(),
            })?;
        let subnet = st.subnet;
        let bridge = netns::block_on(async {
            let h = link::connect()?;
            match link::by_name(&h, &st.bridge).await? {
                Some(l) => Ok::<_, Error>((l, false)),
                None => {
                    let l = link::add_bridge(&h, &st.bridge, st.pool().gateway(), subnet.prefix())
                        .await?;
                    if let (Some(gw6), Some(s6)) = (att.gateway6, st.subnet6) {
                        link::add_address6(&h, l.index, gw6, s6.prefix()).await?;
                    }
                    Ok((l, true))
                }
            }
        })??;
        if let Some(vx) = &st.vxlan {
            let index = bridge.0.index;
            netns::block_on(async {
                let h = link::connect()?;
                if link::by_name(&h, &vx.device()).await?.is_none() {
                    link::add_vxlan(&h, &vx.device(), vx, index).await?;
                }
                Ok::<_, Error>(())
            })??;
        }
        if bridge.1 {
            st.bridge_created = true;
            store.save(&lock, &att.network, &st)?;
        }
        sysctl::set(&format!("ipv4/conf/{}/route_localnet", st.bridge), "1")?;
        let mut host = store.host(&lock)?;
        if sysctl::get("ipv4/ip_forward")? != "1" {
            host.ip_forward_before
                .get_or_insert(sysctl::get("ipv4/ip_forward")?);
            store.save_host(&lock, &host)?;
            sysctl::set("ipv4/ip_forward", "1")?;
        }
        if st.subnet6.is_some() && sysctl::get(FORWARD6)? != "1" {
            host.ip6_forward_before
                .get_or_insert(sysctl::get(FORWARD6)?);
            store.save_host(&lock, &host)?;
            sysctl::set(FORWARD6, "1")?;
        }

        let rules = nft::rules()?;
        let mut script = nft::base();
        if !rules
            .iter()
            .any(|r| r.comment == nft::net_tag(&att.network))
        {
            script += &nft::masquerade(&att.network, subnet, &st.bridge);
            if let Some(s6) = st.subnet6 {
                script += &nft::masquerade6(&att.network, s6);
            }
        }
        script += &nft::ports(&id, att.address, &att.ports);
        if let Some(a6) = att.address6 {
            script += &nft::ports6(&id, a6, &att.ports);
        }
        nft::apply(&script)?;

        netns::block_on(async {
            let h = link::connect()?;
            link::add_veth(&h, &att.host_interface, &att.interface, pid, bridge.0.index).await
        })??;
        let ns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        netns::run_blocking(&ns, || {
            netns::block_on(async {
                let h = link::connect()?;
                link::configure(&h, &att.interface, att.address, att.prefix, att.gateway).await?;
                if let (Some(a6), Some(gw6)) = (att.address6, att.gateway6) {
                    link::configure6(&h, &att.interface, a6, att.prefix6, gw6).await?;
                }
                Ok(())
            })?
        })?;
        // Last, once the container has its addresses; started from this
        // thread, in the namespace playing the host.
        if let (Some(program), Some(a6)) = (&port_proxy, att.address6) {
            proxy::start(
                program,
                &dir,
                att.host_netns.as_deref(),
                &att.network,
                a6.into(),
                &att.ports,
            )?;
        }
        Ok(())
    })
    .await
}

/// `net.ipv6.conf.all.forwarding`, which a dual-stack network needs.
const FORWARD6: &str = "ipv6/conf/all/forwarding";

/// Makes `peers` the peers of overlay `name` on this host: its VXLAN
/// device floods to them, and the containers attached later use them.
/// `false` if the overlay has no container on this host (nothing runs to
/// update).
pub(super) async fn set_peers(
    root: PathBuf,
    host_netns: Option<PathBuf>,
    name: String,
    peers: Vec<Ipv4Addr>,
) -> Result<bool> {
    netns::run(host_netns, move || {
        let store = Store::new(&root);
        let lock = store.lock()?;
        let Some(mut st) = store.load(&lock, &name)? else {
            return Ok(false);
        };
        let Some(vx) = st.vxlan.as_mut() else {
            return Err(Error::Network {
                network: name.clone(),
                reason: "not an overlay network".into(),
            });
        };
        let (old, device) = (std::mem::replace(&mut vx.peers, peers.clone()), vx.device());
        netns::block_on(async {
            let h = link::connect()?;
            if let Some(l) = link::by_name(&h, &device).await? {
                for p in old.iter().filter(|p| !peers.contains(p)) {
                    link::flood_to(&h, l.index, *p, false).await?;
                }
                for p in peers.iter().filter(|p| !old.contains(p)) {
                    link::flood_to(&h, l.index, *p, true).await?;
                }
            }
            Ok::<_, Error>(())
        })??;
        store.save(&lock, &name, &st)?;
        Ok(true)
    })
    .await
}

/// Removes what container `id` has on network `name`.
pub(super) async fn release(
    root: PathBuf,
    name: String,
    id: String,
    host_netns: Option<PathBuf>,
) -> Result<()> {
    if host_netns.as_ref().is_some_and(|p| !p.exists()) {
        // The namespace that played the host is gone, and with it every
        // link and rule in it: only the lease is left to drop, and the
        // port proxy, which would keep the namespace alive.
        proxy::stop(&root.join(&id))?;
        let store = Store::new(&root);
        let lock = store.lock()?;
        if let Some(mut st) = store.load(&lock, &name)? {
            st.release(&id);
            if st.leases.is_empty() {
                store.remove(&lock, &name)?;
            } else {
                store.save(&lock, &name, &st)?;
            }
        }
        return Ok(());
    }
    netns::run(host_netns, move || {
        let store = Store::new(&root);
        let lock = store.lock()?;
        teardown(&store, &lock, &root, &name, &id)
    })
    .await
}

/// Under the lock, in the host namespace.
fn teardown(store: &Store, lock: &Locked, root: &Path, name: &str, id: &str) -> Result<()> {
    proxy::stop(&root.join(id))?;
    let Some(mut st) = store.load(lock, name)? else {
        return Ok(());
    };
    let rules = nft::rules()?;
    let tag = nft::ctr_tag(id);
    let mut gone: Vec<nft::Rule> = rules.iter().filter(|r| r.comment == tag).cloned().collect();
    st.release(id);
    let last = st.leases.is_empty();
    if last {
        let net = nft::net_tag(name);
        gone.extend(rules.iter().filter(|r| r.comment == net).cloned());
    }
    nft::apply(&nft::delete(&gone))?;
    let veth = veth_name(root, id);
    let bridge = (last && st.bridge_created).then(|| st.bridge.clone());
    let vxlan = st.vxlan.as_ref().filter(|_| last).map(|v| v.device());
    netns::block_on(async {
        let h = link::connect()?;
        link::delete(&h, &veth).await?;
        if let Some(v) = vxlan {
            link::delete(&h, &v).await?;
        }
        if let Some(b) = bridge {
            link::delete(&h, &b).await?;
        }
        Ok::<_, Error>(())
    })??;
    if !last {
        return store.save(lock, name, &st);
    }
    store.remove(lock, name)?;
    if store.names()?.is_empty() {
        // The last network: berth's table and sysctl go too.
        let left = nft::rules()?;
        if left.is_empty() {
            nft::apply(&nft::delete_tables(&nft::tables()?))?;
        }
        let host = store.host(lock)?;
        if let Some(v) = host.ip_forward_before {
            sysctl::set("ipv4/ip_forward", &v)?;
        }
        if let Some(v) = host.ip6_forward_before {
            sysctl::set(FORWARD6, &v)?;
        }
        store.remove_host(lock)?;
    }
    Ok(())
}

/// Whether the container holding a lease is gone: no state directory, a
/// dead process, or a creation whose creator died before it recorded one.
/// A container still being created (no pid yet) is gone only with its
/// creator: another process's `Runtime::new` must not release its network
/// mid-create.
fn is_gone(root: &Path, lease: &super::ipam::Lease) -> bool {
    let dir = root.join(&lease.id);
    let creator = HostProcess::new(lease.creator_pid, lease.creator_start);
    gone(dir.is_dir(), container_process(&dir), creator)
}

/// [`is_gone`] once the facts are read: whether the state directory
/// exists, the container's recorded process, and the lease's creator.
fn gone(has_state: bool, process: Option<HostProcess>, creator: HostProcess) -> bool {
    match (has_state, process) {
        (false, _) => true,
        (true, Some(p)) => !p.is_alive(),
        (true, None) => !creator.is_alive(),
    }
}

/// Releases the leases (and so the veths and rules) of gone containers,
/// and rules that belong to no lease.
pub(super) async fn recover(root: PathBuf) -> Result<()> {
    let store = Store::new(&root);
    let names = store.names()?;
    for name in names {
        // The host namespace the network lives in, read without the lock
        // (it never changes while the network exists).
        let host_netns = {
            let p = root
                .join("network")
                .join("nets")
                .join(format!("{name}.json"));
            match std::fs::read(&p)
                .ok()
                .and_then(|b| serde_json::from_slice::<NetState>(&b).ok())
            {
                Some(st) => st.host_netns,
                None => continue,
            }
        };
        if host_netns.as_ref().is_some_and(|p| !p.exists()) {
            // The namespace itself is gone, and with it everything in it
            // but the port proxies, which would keep it alive.
            let lock = store.lock()?;
            for lease in store
                .load(&lock, &name)?
                .map(|s| s.leases)
                .unwrap_or_default()
            {
                proxy::stop(&root.join(&lease.id))?;
            }
            store.remove(&lock, &name)?;
            continue;
        }
        let root = root.clone();
        netns::run(host_netns, move || {
            let store = Store::new(&root);
            let lock = store.lock()?;
            let Some(st) = store.load(&lock, &name)? else {
                return Ok(());
            };
            for lease in &st.leases {
                if is_gone(&root, lease) {
                    tracing::info!(
                        id = lease.id,
                        network = name,
                        "releasing the network of a gone container"
                    );
                    teardown(&store, &lock, &root, &name, &lease.id)?;
                    let _ = std::fs::remove_file(root.join(&lease.id).join(super::ATTACHMENT_FILE));
                }
            }
            // Rules whose container holds no lease on any network.
            let mut ids = Vec::new();
            for n in store.names()? {
                ids.extend(
                    store
                        .load(&lock, &n)?
                        .into_iter()
                        .flat_map(|s| s.leases)
                        .map(|l| nft::ctr_tag(&l.id)),
                );
            }
            let stray: Vec<_> = nft::rules()?
                .into_iter()
                .filter(|r| r.comment.starts_with("berth ctr ") && !ids.contains(&r.comment))
                .collect();
            nft::apply(&nft::delete(&stray))
        })
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_being_created_is_gone_only_with_its_creator() {
        let me = HostProcess::this().unwrap();
        // A start time no process has.
        let dead = HostProcess::new(me.pid, me.start_time + 1);
        // Being created (no process recorded) by a live creator: not gone.
        assert!(!gone(true, None, me));
        // Its creator dead: gone.
        assert!(gone(true, None, dead));
        // Created, with a live process: not gone, whoever made it.
        assert!(!gone(true, Some(me), dead));
        // Its process dead: gone, even with the creator alive.
        assert!(gone(true, Some(dead), me));
        // No state: gone.
        assert!(gone(false, Some(me), me));
    }
}
