//! IPv4 and IPv6 subnets: parsing, membership, overlap.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IPv4 subnet such as `10.89.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// A subnet of `prefix` bits; host bits of `addr` are cleared. `None`
    /// for a prefix over 32.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Net> {
        (prefix <= 32).then(|| Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix))
    }

    /// Whether `ip` is inside the subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether the two subnets share an address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let p = self.prefix.min(other.prefix);
        u32::from(self.addr) & mask(p) == u32::from(other.addr) & mask(p)
    }

    /// The first host address, which berth gives the bridge (the gateway).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    /// The addresses containers may get: every host address but the
    /// gateway, in order.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.addr) + 2;
        let last = u32::from(self.broadcast()).saturating_sub(1);
        (first..=last).map(Ipv4Addr::from)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not ADDRESS/PREFIX"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| (1..=30).contains(p))
            .ok_or_else(|| format!("prefix {p:?} is not in 1..=30"))?;
        Ok(Ipv4Net::new(addr, prefix).expect("prefix checked"))
    }
}

impl TryFrom<String> for Ipv4Net {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Ipv4Net> for String {
    fn from(n: Ipv4Net) -> String {
        n.to_string()
    }
}

/// An IPv6 subnet such as `fd00:89::/64`: the IPv6 side of a dual-stack
/// network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv6Net {
    addr: Ipv6Addr,
    prefix: u8,
}

fn mask6(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

impl Ipv6Net {
    /// A subnet of `prefix` bits; host bits of `addr` are cleared. `None`
    /// for a prefix over 128.
    pub fn new(addr: Ipv6Addr, prefix: u8) -> Option<Ipv6Net> {
        (prefix <= 128).then(|| Ipv6Net {
            addr: Ipv6Addr::from(u128::from(addr) & mask6(prefix)),
            prefix,
        })
    }

    /// The network address.
    pub fn network(&self) -> Ipv6Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside the subnet.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & mask6(self.prefix) == u128::from(self.addr)
    }

    /// The address `offset` after the network address, if inside.
    pub fn nth(&self, offset: u128) -> Option<Ipv6Addr> {
        let a = Ipv6Addr::from(u128::from(self.addr).checked_add(offset)?);
        self.contains(a).then_some(a)
    }
}

impl std::fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv6Net {
    type Err = String;

    /// `ADDRESS/PREFIX` with a prefix in 64..=120: room for the addresses
    /// of an IPv4 subnet, and the /64 of common practice.
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not ADDRESS/PREFIX"))?;
        let addr: Ipv6Addr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IPv6 address"))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| (48..=120).contains(p))
            .ok_or_else(|| format!("prefix {p:?} is not in 48..=120"))?;
        Ok(Ipv6Net::new(addr, prefix).expect("prefix checked"))
    }
}

impl TryFrom<String> for Ipv6Net {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Ipv6Net> for String {
    fn from(n: Ipv6Net) -> String {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_contain_and_overlap() {
        let a: Ipv4Net = "10.89.0.7/16".parse().unwrap();
        assert_eq!(a.to_string(), "10.89.0.0/16");
        assert_eq!(a.gateway(), Ipv4Addr::new(10, 89, 0, 1));
        assert_eq!(a.broadcast(), Ipv4Addr::new(10, 89, 255, 255));
        assert!(a.contains(Ipv4Addr::new(10, 89, 3, 4)));
        assert!(!a.contains(Ipv4Addr::new(10, 90, 0, 1)));
        let b: Ipv4Net = "10.89.5.0/24".parse().unwrap();
        let c: Ipv4Net = "10.90.0.0/24".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        let small: Ipv4Net = "192.168.1.0/30".parse().unwrap();
        assert_eq!(
            small.hosts().collect::<Vec<_>>(),
            [Ipv4Addr::new(192, 168, 1, 2)]
        );
        for bad in ["10.0.0.0", "10.0.0.0/0", "10.0.0.0/31", "x/8", "10.0.0.0/a"] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad}");
        }
    }

    #[test]
    fn v6_subnets_parse_and_contain() {
        let n: Ipv6Net = "fd00:89::7/64".parse().unwrap();
        assert_eq!(n.to_string(), "fd00:89::/64");
        assert_eq!(n.nth(2), Some("fd00:89::2".parse().unwrap()));
        assert!(n.contains("fd00:89::ffff".parse().unwrap()));
        assert!(!n.contains("fd00:90::1".parse().unwrap()));
        let small: Ipv6Net = "fd00::/120".parse().unwrap();
        assert_eq!(small.nth(256), None);
        for bad in ["fd00::", "fd00::/0", "fd00::/127", "10.0.0.0/24", "x/64"] {
            assert!(bad.parse::<Ipv6Net>().is_err(), "{bad}");
        }
    }
}
