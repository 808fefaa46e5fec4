//! Links, addresses and routes over rtnetlink (what `ip link`, `ip addr`
//! and `ip route` do, without running them). Every function works in the
//! network namespace of the thread that called [`connect`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::error::{Error, Result};

/// A netlink connection in the current thread's network namespace. Must be
/// called inside a tokio runtime, which drives the connection.
pub(crate) fn connect() -> Result<Handle> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| Error::sys("open rtnetlink socket", e))?;
    tokio::spawn(conn);
    Ok(handle)
}

fn nl(op: &'static str) -> impl FnOnce(rtnetlink::Error) -> Error {
    move |e| match e {
        rtnetlink::Error::NetlinkError(m) => Error::sys(op, m.to_io()),
        other => Error::sys(op, std::io::Error::other(other.to_string())),
    }
}

fn is_errno(e: &rtnetlink::Error, errno: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -errno)
}

/// A link as listed: index, name, and the index of its bridge if enslaved.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub index: u32,
    pub name: String,
    pub controller: Option<u32>,
}

fn link_of(m: &LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        name: String::new(),
        controller: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Controller(c) if *c != 0 => l.controller = Some(*c),
            _ => {}
        }
    }
    l
}

/// Every link of the namespace.
pub(crate) async fn links(h: &Handle) -> Result<Vec<Link>> {
    let mut out = Vec::new();
    let mut s = h.link().get().execute();
    while let Some(m) = s.try_next().await.map_err(nl("list links"))? {
        out.push(link_of(&m));
    }
    Ok(out)
}

/// The link named `name`, if it exists.
pub(crate) async fn by_name(h: &Handle, name: &str) -> Result<Option<Link>> {
    let mut s = h.link().get().match_name(name.to_string()).execute();
    match s.try_next().await {
        Ok(m) => Ok(m.as_ref().map(link_of)),
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
        Err(e) => Err(nl("look up link")(e)),
    }
}

/// Every IPv4 address: (link index, address, prefix length).
pub(crate) async fn addresses(h: &Handle) -> Result<Vec<(u32, Ipv4Addr, u8)>> {
    let mut out = Vec::new();
    let mut s = h.address().get().execute();
    while let Some(m) = s.try_next().await.map_err(nl("list addresses"))? {
        for a in &m.attributes {
            if let AddressAttribute::Address(IpAddr::V4(ip)) = a {
                out.push((m.header.index, *ip, m.header.prefix_len));
            }
        }
    }
    Ok(out)
}

/// Creates a bridge, up, with `addr/prefix` on it.
pub(crate) async fn add_bridge(h: &Handle, name: &str, addr: Ipv4Addr, prefix: u8) -> Result<Link> {
    h.link()
        .add(LinkBridge::new(name).build())
        .execute()
        .await
        .map_err(nl("create bridge"))?;
    let link = by_name(h, name).await?.ok_or_else(|| {
        Error::sys(
            "create bridge",
            std::io::Error::from_raw_os_error(libc::ENODEV),
        )
    })?;
    h.address()
        .add(link.index, IpAddr::V4(addr), prefix)
        .execute()
        .await
        .map_err(nl("add bridge address"))?;
    Ok(link)
}

/// Adds the IPv6 address `addr/prefix` to link `index`, usable at once
/// (no duplicate address detection: berth hands out distinct addresses).
pub(crate) async fn add_address6(h: &Handle, index: u32, addr: Ipv6Addr, prefix: u8) -> Result<()> {
    use rtnetlink::packet_route::address::AddressHeaderFlags;
    let mut req = h.address().add(index, IpAddr::V6(addr), prefix);
    req.message_mut().header.flags |= AddressHeaderFlags::Nodad;
    req.execute().await.map_err(nl("add IPv6 address"))
}

/// Inside a container's namespace, after [`configure`]: adds `addr/prefix`
/// to `ifname` and a default IPv6 route via `gateway`.
pub(crate) async fn configure6(
    h: &Handle,
    ifname: &str,
    addr: Ipv6Addr,
    prefix: u8,
    gateway: Ipv6Addr,
) -> Result<()> {
    let link = by_name(h, ifname).await?.ok_or_else(|| {
        Error::sys(
            "find container interface",
            std::io::Error::from_raw_os_error(libc::ENODEV),
        )
    })?;
    add_address6(h, link.index, addr, prefix).await?;
    let route = RouteMessageBuilder::<Ipv6Addr>::new()
        .gateway(gateway)
        .output_interface(link.index)
        .build();
    h.route()
        .add(route)
        .execute()
        .await
        .map_err(nl("add IPv6 default route"))
}

/// Creates a veth pair: `host` here, enslaved to `bridge` and up, and its
/// peer `peer` directly in the network namespace of process `pid`.
pub(crate) async fn add_veth(
    h: &Handle,
    host: &str,
    peer: &str,
    pid: i32,
    bridge: u32,
) -> Result<()> {
    let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer.to_string())
        .setns_by_pid(pid as u32)
        .build();
    let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(host.to_string())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
        .build();
    h.link()
        .add(msg)
        .execute()
        .await
        .map_err(nl("create veth pair"))?;
    let link = by_name(h, host).await?.ok_or_else(|| {
        Error::sys(
            "create veth pair",
            std::io::Error::from_raw_os_error(libc::ENODEV),
        )
    })?;
    h.link()
        .set(
            LinkUnspec::new_with_index(link.index)
                .controller(bridge)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl("attach veth to bridge"))
}

/// Deletes the link `name`; `false` if there was none.
pub(crate) async fn delete(h: &Handle, name: &str) -> Result<bool> {
    let Some(link) = by_name(h, name).await? else {
        return Ok(false);
    };
    match h.link().del(link.index).execute().await {
        Ok(()) => Ok(true),
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(false),
        Err(e) => Err(nl("delete link")(e)),
    }
}

/// Inside a container's namespace: brings `ifname` up with `addr/prefix`
/// and a default route via `gateway`.
pub(crate) async fn configure(
    h: &Handle,
    ifname: &str,
    addr: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<()> {
    let link = by_name(h, ifname).await?.ok_or_else(|| {
        Error::sys(
            "find container interface",
            std::io::Error::from_raw_os_error(libc::ENODEV),
        )
    })?;
    h.address()
        .add(link.index, IpAddr::V4(addr), prefix)
        .execute()
        .await
        .map_err(nl("add container address"))?;
    h.link()
        .set(LinkUnspec::new_with_index(link.index).up().build())
        .execute()
        .await
        .map_err(nl("bring container interface up"))?;
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(link.index)
        .build();
    h.route()
        .add(route)
        .execute()
        .await
        .map_err(nl("add default route"))
}

/// Creates a macvlan device (bridge mode) on link `parent`, born as `name`
/// in the network namespace of process `pid`.
pub(crate) async fn add_macvlan(h: &Handle, parent: u32, name: &str, pid: i32) -> Result<()> {
    use rtnetlink::packet_route::link::MacVlanMode;
    let msg = rtnetlink::LinkMacVlan::new(name, parent, MacVlanMode::Bridge)
        .setns_by_pid(pid as u32)
        .build();
    h.link()
        .add(msg)
        .execute()
        .await
        .map_err(nl("create macvlan device"))
}

/// Creates a VXLAN device `name` (VNI `vni`, UDP `port`, from `local`),
/// enslaved to `bridge` and up, with a flooding entry for each peer.
pub(crate) async fn add_vxlan(
    h: &Handle,
    name: &str,
    vxlan: &super::Vxlan,
    bridge: u32,
) -> Result<()> {
    let b = rtnetlink::LinkVxlan::new(name, vxlan.vni)
        .local(vxlan.local)
        .port(vxlan.port)
        .learning(true);
    h.link()
        .add(b.controller(bridge).up().build())
        .execute()
        .await
        .map_err(nl("create vxlan device"))?;
    let link = by_name(h, name).await?.ok_or_else(|| {
        Error::sys(
            "create vxlan device",
            std::io::Error::from_raw_os_error(libc::ENODEV),
        )
    })?;
    for peer in &vxlan.peers {
        flood_to(h, link.index, *peer, true).await?;
    }
    Ok(())
}

/// Adds (or removes) peer `peer` to the flooding list of VXLAN device
/// `index`: an all-zeros MAC entry in its forwarding database, which sends
/// broadcasts, unknown unicast and multicast to every such peer (what
/// `bridge fdb append 00:00:00:00:00:00 dev DEV dst PEER` does). Unicast
/// addresses are then learned from the traffic.
pub(crate) async fn flood_to(h: &Handle, index: u32, peer: Ipv4Addr, add: bool) -> Result<()> {
    use futures::StreamExt;
    use rtnetlink::packet_core::{
        NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST,
    };
    use rtnetlink::packet_route::neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
    };
    use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = index;
    m.header.state = NeighbourState::Permanent;
    m.header.flags = NeighbourFlags::Own;
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(vec![0; 6]));
    m.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
            peer,
        )));
    let (msg, flags) = if add {
        (
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND,
        )
    } else {
        (
            RouteNetlinkMessage::DelNeighbour(m),
            NLM_F_REQUEST | NLM_F_ACK,
        )
    };
    let mut req = NetlinkMessage::from(msg);
    req.header.flags = flags;
    let op = if add {
        "add vxlan peer"
    } else {
        "remove vxlan peer"
    };
    let mut resp = h
        .clone()
        .request(req)
        .map_err(|e| Error::sys(op, std::io::Error::other(e.to_string())))?;
    while let Some(m) = resp.next().await {
        if let NetlinkPayload::Error(e) = m.payload {
            let e = rtnetlink::Error::NetlinkError(e);
            // Already there (add), or already gone (remove).
            if is_errno(&e, libc::EEXIST) || is_errno(&e, libc::ENOENT) {
                continue;
            }
            return Err(nl(op)(e));
        }
    }
    Ok(())
}
