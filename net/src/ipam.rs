//! Address management: which container holds which address of a network,
//! persisted under the runtime root (`<root>/network/`).
//!
//! One lock file serialises every network change of a runtime root, across
//! threads and processes (`flock`: the kernel drops it when its holder
//! dies, so a crash never leaves it taken). The state of each network is a
//! JSON file replaced atomically, so a crash leaves the old or the new
//! state, never a mix: an address is never handed out twice.

use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::addr::{Ipv4Net, Ipv6Net};
use super::PortMapping;
use crate::error::{Error, Result};
use berth::extension::{write_atomic, HostProcess};

/// `<root>/network`.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
}

/// The held lock; dropping it unlocks.
#[derive(Debug)]
pub(crate) struct Locked(#[allow(dead_code)] Flock<File>);

/// A network in use: its bridge and its leases.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NetState {
    pub subnet: Ipv4Net,
    pub bridge: String,
    /// berth created the bridge, and deletes it with the last lease.
    pub bridge_created: bool,
    /// The namespace that plays the host (`None`: the runtime's own).
    pub host_netns: Option<PathBuf>,
    pub leases: Vec<Lease>,
    /// The addresses this host hands out, when not the whole subnet.
    #[serde(default)]
    pub range: Option<Ipv4Net>,
    /// The overlay's VXLAN device, made with the bridge.
    #[serde(default)]
    pub vxlan: Option<super::Vxlan>,
    /// The IPv6 subnet of a dual-stack network.
    #[serde(default)]
    pub subnet6: Option<Ipv6Net>,
}

/// One address held by one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Lease {
    pub address: Ipv4Addr,
    pub id: String,
    /// The process that took the lease, to tell an abandoned creation
    /// from one in progress.
    pub creator_pid: i32,
    pub creator_start: u64,
    pub ports: Vec<PortMapping>,
}

/// What berth changed on the host namespace, to undo with the last network.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct HostState {
    /// `net.ipv4.ip_forward` before berth set it to 1.
    pub ip_forward_before: Option<String>,
    /// `net.ipv6.conf.all.forwarding` before berth set it to 1.
    #[serde(default)]
    pub ip6_forward_before: Option<String>,
}

impl Store {
    pub(crate) fn new(root: &Path) -> Store {
        Store {
            dir: root.join("network"),
        }
    }

    /// Takes the lock, blocking until it is free.
    pub(crate) fn lock(&self) -> Result<Locked> {
        std::fs::create_dir_all(self.dir.join("nets"))
            .map_err(|e| Error::io("create network state directory", &self.dir, e))?;
        let path = self.dir.join("lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open network lock", &path, e))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map(Locked)
            .map_err(|(_, e)| Error::io("lock network state", &path, e.into()))
    }

    fn net_path(&self, name: &str) -> PathBuf {
        self.dir.join("nets").join(format!("{name}.json"))
    }

    /// The state of network `name`, if it is in use.
    pub(crate) fn load(&self, _: &Locked, name: &str) -> Result<Option<NetState>> {
        read_json(&self.net_path(name))
    }

    pub(crate) fn save(&self, _: &Locked, name: &str, s: &NetState) -> Result<()> {
        write_json(&self.net_path(name), s)
    }

    pub(crate) fn remove(&self, _: &Locked, name: &str) -> Result<()> {
        let p = self.net_path(name);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("remove network state", p, e))
            }
            _ => Ok(()),
        }
    }

    /// The names of the networks in use.
    pub(crate) fn names(&self) -> Result<Vec<String>> {
        let dir = self.dir.join("nets");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list networks", dir, e)),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".json")
                    .map(str::to_owned)
            })
            .collect();
        names.sort();
        Ok(names)
    }

    pub(crate) fn host(&self, _: &Locked) -> Result<HostState> {
        Ok(read_json(&self.dir.join("host.json"))?.unwrap_or_default())
    }

    pub(crate) fn save_host(&self, _: &Locked, s: &HostState) -> Result<()> {
        write_json(&self.dir.join("host.json"), s)
    }

    pub(crate) fn remove_host(&self, _: &Locked) -> Result<()> {
        let _ = std::fs::remove_file(self.dir.join("host.json"));
        Ok(())
    }
}

impl NetState {
    /// The addresses this host hands out; the first is its bridge's.
    pub(crate) fn pool(&self) -> Ipv4Net {
        self.range.unwrap_or(self.subnet)
    }

    /// The IPv6 address of a dual-stack network at the offset of `v4` in
    /// the IPv4 subnet: unique as the IPv4 one is, on every host of an
    /// overlay too.
    pub(crate) fn v6(&self, v4: Ipv4Addr) -> Option<Ipv6Addr> {
        let offset = u32::from(v4).checked_sub(u32::from(self.subnet.network()))?;
        self.subnet6?.nth(u128::from(offset))
    }

    /// Gives container `id` an address: `requested`, or the first free one.
    pub(crate) fn allocate(
        &mut self,
        network: &str,
        id: &str,
        requested: Option<Ipv4Addr>,
        ports: Vec<PortMapping>,
    ) -> Result<Ipv4Addr> {
        self.allocate_avoiding(network, id, requested, ports, &[])
    }

    /// As [`NetState::allocate`], never giving out one of `used` (addresses
    /// the host itself has).
    pub(crate) fn allocate_avoiding(
        &mut self,
        network: &str,
        id: &str,
        requested: Option<Ipv4Addr>,
        ports: Vec<PortMapping>,
        used: &[Ipv4Addr],
    ) -> Result<Ipv4Addr> {
        let taken = |a: Ipv4Addr| used.contains(&a) || self.leases.iter().any(|l| l.address == a);
        let address = match requested {
            Some(a) => {
                if !self.pool().hosts().any(|h| h == a) {
                    return Err(Error::AddressOutsideSubnet {
                        address: a,
                        subnet: self.pool().to_string(),
                        network: network.to_string(),
                    });
                }
                if taken(a) {
                    return Err(Error::Network {
                        network: network.to_string(),
                        reason: format!("address {a} is in use"),
                    });
                }
                a
            }
            None => self
                .pool()
                .hosts()
                .find(|a| !taken(*a))
                .ok_or_else(|| Error::Network {
                    network: network.to_string(),
                    reason: format!("no free address left in {}", self.pool()),
                })?,
        };
        let (creator_pid, creator_start) = me();
        self.leases.push(Lease {
            address,
            id: id.to_string(),
            creator_pid,
            creator_start,
            ports,
        });
        Ok(address)
    }

    /// Drops the lease of container `id`.
    pub(crate) fn release(&mut self, id: &str) -> Option<Lease> {
        let i = self.leases.iter().position(|l| l.id == id)?;
        Some(self.leases.remove(i))
    }
}

/// This process, as a lease records it.
pub(crate) fn me() -> (i32, u64) {
    let pid = std::process::id() as i32;
    HostProcess::this().map_or((pid, 0), |me| (me.pid, me.start_time))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Network {
                network: path.display().to_string(),
                reason: format!("corrupt network state: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read network state", path, e)),
    }
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let json = serde_json::to_vec_pretty(v).map_err(|e| Error::Network {
        network: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(write_atomic(path, &json)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> NetState {
        NetState {
            subnet: "10.1.0.0/29".parse().unwrap(),
            bridge: "b".into(),
            bridge_created: true,
            host_netns: None,
            leases: Vec::new(),
            range: None,
            vxlan: None,
            subnet6: None,
        }
    }

    #[test]
    fn addresses_are_distinct_until_released() {
        let mut n = net();
        let got: Vec<_> = (0..5)
            .map(|i| n.allocate("n", &format!("c{i}"), None, vec![]).unwrap())
            .collect();
        assert_eq!(got[0], Ipv4Addr::new(10, 1, 0, 2));
        assert_eq!(got[4], Ipv4Addr::new(10, 1, 0, 6));
        assert!(matches!(
            n.allocate("n", "x", None, vec![]),
            Err(Error::Network { .. })
        ));
        assert_eq!(n.release("c1").unwrap().address, got[1]);
        assert_eq!(n.allocate("n", "x", None, vec![]).unwrap(), got[1]);
    }

    #[test]
    fn v6_addresses_follow_the_v4_offset() {
        let mut n = net();
        assert_eq!(n.v6(Ipv4Addr::new(10, 1, 0, 2)), None);
        n.subnet6 = Some("fd00:1::/120".parse().unwrap());
        assert_eq!(
            n.v6(Ipv4Addr::new(10, 1, 0, 2)),
            Some("fd00:1::2".parse().unwrap())
        );
        assert_eq!(n.v6(n.pool().gateway()), Some("fd00:1::1".parse().unwrap()));
        // Below the subnet: none.
        assert_eq!(n.v6(Ipv4Addr::new(10, 0, 255, 255)), None);
    }

    #[test]
    fn requested_addresses_are_checked() {
        let mut n = net();
        for bad in [[10, 1, 0, 1], [10, 1, 0, 7], [10, 2, 0, 3]] {
            let e = n.allocate("n", "c", Some(Ipv4Addr::from(bad)), vec![]);
            assert!(
                matches!(e, Err(Error::AddressOutsideSubnet { .. })),
                "{bad:?}"
            );
        }
        n.allocate("n", "a", Some(Ipv4Addr::new(10, 1, 0, 3)), vec![])
            .unwrap();
        let e = n.allocate("n", "b", Some(Ipv4Addr::new(10, 1, 0, 3)), vec![]);
        assert!(matches!(e, Err(Error::Network { .. })));
        assert!(n.leases.len() == 1);
    }
}
