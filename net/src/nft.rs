//! NAT rules in nftables, in tables of berth's own (`ip berth`, and
//! `ip6 berth` for dual-stack networks).
//!
//! Rules are written by the `nft` tool from one script per change: `nft -f`
//! applies a script as one transaction, so a container's rules appear and
//! disappear together or not at all. Each rule carries a comment naming its
//! owner (`berth ctr ID` or `berth net NAME`), which is how they are found
//! again to be removed, also by a later process after a crash.
//!
//! Runs `nft` in the network namespace of the calling thread.

use std::net::Ipv4Addr;
use std::process::Command;

use super::addr::Ipv4Net;
use super::{PortMapping, Protocol};
use crate::error::{Error, Result};

/// berth's table.
pub(crate) const TABLE: &str = "berth";

/// The comment on the rules of container `id`.
pub(crate) fn ctr_tag(id: &str) -> String {
    // nftables comments hold at most 128 bytes.
    if id.len() <= 100 {
        format!("berth ctr {id}")
    } else {
        format!("berth ctr #{:016x}", super::hash(id))
    }
}

/// The comment on the rules of network `name`.
pub(crate) fn net_tag(name: &str) -> String {
    format!("berth net {name}")
}

/// The table and its chains; `add` is a no-op for what exists.
pub(crate) fn base() -> String {
    FAMILIES
        .iter()
        .map(|f| {
            format!(
                "add table {f} {TABLE}\n\
                 add chain {f} {TABLE} prerouting {{ type nat hook prerouting priority -100; }}\n\
                 add chain {f} {TABLE} output {{ type nat hook output priority -100; }}\n\
                 add chain {f} {TABLE} postrouting {{ type nat hook postrouting priority 100; }}\n"
            )
        })
        .collect()
}

/// The families of berth's tables.
const FAMILIES: [&str; 2] = ["ip", "ip6"];

/// Outbound NAT for the IPv6 subnet of a dual-stack network. (The kernel
/// lets no packet from `::1` leave the host, so there is no loopback
/// rule as for IPv4.)
pub(crate) fn masquerade6(name: &str, subnet: super::Ipv6Net) -> String {
    let tag = net_tag(name);
    format!(
        "add rule ip6 {TABLE} postrouting ip6 saddr {subnet} ip6 daddr != {subnet} masquerade comment \"{tag}\"\n"
    )
}

/// The IPv6 side of [`ports`]: mappings without a host address, to the
/// container's IPv6 address `addr`. Not for `::1`: a connection to it
/// rewritten towards the container never gets its replies (IPv6 has no
/// `route_localnet`), so the port proxy listens there instead.
pub(crate) fn ports6(id: &str, addr: std::net::Ipv6Addr, ports: &[PortMapping]) -> String {
    let tag = ctr_tag(id);
    let mut s = String::new();
    for p in ports.iter().filter(|p| p.host_ip.is_none()) {
        for (chain, skip) in [("prerouting", ""), ("output", "ip6 daddr != ::1 ")] {
            s += &format!(
                "add rule ip6 {TABLE} {chain} {skip}fib daddr type local {} dport {} dnat to [{addr}]:{} comment \"{tag}\"\n",
                p.protocol.as_str(),
                p.host_port,
                p.container_port
            );
        }
    }
    s
}

/// Outbound NAT for a network: traffic from the subnet to elsewhere, and
/// traffic from the host's loopback addresses to a published port (which
/// `route_localnet` lets out through the bridge), leaves with the address
/// of the outgoing interface.
pub(crate) fn masquerade(name: &str, subnet: Ipv4Net, bridge: &str) -> String {
    let tag = net_tag(name);
    format!(
        "add rule ip {TABLE} postrouting ip saddr {subnet} ip daddr != {subnet} masquerade comment \"{tag}\"\n\
         add rule ip {TABLE} postrouting ip saddr 127.0.0.0/8 oifname \"{bridge}\" masquerade comment \"{tag}\"\n"
    )
}

/// Port mappings of container `id` at `addr`: connections to a local
/// address of the host (or to `host_ip` only) on the host port go to the
/// container, from elsewhere (prerouting) and from the host itself
/// (output).
pub(crate) fn ports(id: &str, addr: Ipv4Addr, ports: &[PortMapping]) -> String {
    let tag = ctr_tag(id);
    let mut s = String::new();
    for p in ports {
        let proto = match p.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let dst = match p.host_ip {
            Some(ip) => format!("ip daddr {ip}"),
            None => "fib daddr type local".to_string(),
        };
        for chain in ["prerouting", "output"] {
            s += &format!(
                "add rule ip {TABLE} {chain} {dst} {proto} dport {} dnat to {addr}:{} comment \"{tag}\"\n",
                p.host_port, p.container_port
            );
        }
    }
    s
}

/// A rule found in berth's table.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub family: String,
    pub chain: String,
    pub handle: u64,
    pub comment: String,
}

/// Deletes `rules` (by handle).
pub(crate) fn delete(rules: &[Rule]) -> String {
    rules
        .iter()
        .map(|r| {
            format!(
                "delete rule {} {TABLE} {} handle {}\n",
                r.family, r.chain, r.handle
            )
        })
        .collect()
}

/// Deletes berth's tables of these `families` and everything in them.
pub(crate) fn delete_tables(families: &[&str]) -> String {
    families
        .iter()
        .map(|f| format!("delete table {f} {TABLE}\n"))
        .collect()
}

/// Applies `script` as one transaction.
pub(crate) fn apply(script: &str) -> Result<()> {
    if script.is_empty() {
        return Ok(());
    }
    let out = run(&["-f", "-"], Some(script))?;
    if !out.status.success() {
        return Err(Error::Network {
            network: TABLE.into(),
            reason: format!(
                "nft refused the rules: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Every rule in berth's tables (none when there is no table).
pub(crate) fn rules() -> Result<Vec<Rule>> {
    let mut found = Vec::new();
    for family in FAMILIES {
        found.extend(rules_of(family)?);
    }
    Ok(found)
}

fn rules_of(family: &str) -> Result<Vec<Rule>> {
    let out = run(&["-j", "list", "table", family, TABLE], None)?;
    if !out.status.success() {
        // No such table.
        return Ok(Vec::new());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| Error::Network {
        network: TABLE.into(),
        reason: format!("unreadable `nft -j` output: {e}"),
    })?;
    let mut found = Vec::new();
    for item in v["nftables"].as_array().into_iter().flatten() {
        let r = &item["rule"];
        if let (Some(chain), Some(handle)) = (r["chain"].as_str(), r["handle"].as_u64()) {
            found.push(Rule {
                family: family.to_string(),
                chain: chain.to_string(),
                handle,
                comment: r["comment"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    Ok(found)
}

/// The families in which berth has a table.
pub(crate) fn tables() -> Result<Vec<&'static str>> {
    let mut out = Vec::new();
    for f in FAMILIES {
        if run(&["list", "table", f, TABLE], None)?.status.success() {
            out.push(f);
        }
    }
    Ok(out)
}

fn run(args: &[&str], stdin: Option<&str>) -> Result<std::process::Output> {
    let mut cmd = Command::new("nft");
    cmd.args(args);
    let out = super::command::run(cmd, stdin.unwrap_or_default().as_bytes(), None)?;
    out.ok_or_else(|| {
        Error::sys(
            "run nft",
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_rules_name_their_container() {
        let p: PortMapping = "127.0.0.1:8080:80/udp".parse().unwrap();
        let s = ports("web", Ipv4Addr::new(10, 89, 0, 2), &[p]);
        assert_eq!(
            s,
            "add rule ip berth prerouting ip daddr 127.0.0.1 udp dport 8080 dnat to 10.89.0.2:80 comment \"berth ctr web\"\n\
             add rule ip berth output ip daddr 127.0.0.1 udp dport 8080 dnat to 10.89.0.2:80 comment \"berth ctr web\"\n"
        );
        assert!(ctr_tag(&"x".repeat(300)).len() <= 128);
    }

    #[test]
    fn v6_rules_go_to_the_ip6_table_and_skip_v4_host_addresses_and_ipv6_loopback() {
        let any: PortMapping = "8080:80".parse().unwrap();
        let v4only: PortMapping = "127.0.0.1:8081:81/udp".parse().unwrap();
        let s = ports6("web", "fd00::2".parse().unwrap(), &[any, v4only]);
        assert_eq!(
            s,
            "add rule ip6 berth prerouting fib daddr type local tcp dport 8080 dnat to [fd00::2]:80 comment \"berth ctr web\"\n\
             add rule ip6 berth output ip6 daddr != ::1 fib daddr type local tcp dport 8080 dnat to [fd00::2]:80 comment \"berth ctr web\"\n"
        );
        assert_eq!(
            masquerade6("n", "fd00::/64".parse().unwrap()),
            "add rule ip6 berth postrouting ip6 saddr fd00::/64 ip6 daddr != fd00::/64 masquerade comment \"berth net n\"\n"
        );
        assert!(base().contains("add table ip6 berth") && base().contains("add table ip berth"));
    }
}
