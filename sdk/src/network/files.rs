//! `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` for a container on
//! a network.
//!
//! As podman does, the files live in the container's state directory and
//! are bind-mounted over the rootfs's own: the user's rootfs is never
//! written to (an empty file is created as the mount point only where the
//! rootfs has none, as for every file bind mount).

use std::net::IpAddr;
use std::path::Path;

use oci_spec::runtime::{Mount, MountBuilder};

use crate::error::{Error, Result};

/// The files and where they go in the container.
const FILES: [(&str, &str); 3] = [
    ("hosts", "/etc/hosts"),
    ("hostname", "/etc/hostname"),
    ("resolv.conf", "/etc/resolv.conf"),
];

/// Writes the files into `dir` and returns the mounts that put them in
/// place.
pub(crate) fn write(dir: &Path, hostname: &str, addresses: &[IpAddr]) -> Result<Vec<Mount>> {
    let contents = [
        hosts(hostname, addresses),
        format!("{hostname}\n"),
        resolv_conf(),
    ];
    let mut mounts = Vec::new();
    for ((name, dest), text) in FILES.iter().zip(contents) {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| Error::io("write", &path, e))?;
        mounts.push(
            MountBuilder::default()
                .destination(dest)
                .source(&path)
                .typ("bind")
                .options(vec!["rbind".to_string(), "rprivate".to_string()])
                .build()
                .map_err(|e| Error::invalid("mounts", e.to_string()))?,
        );
    }
    Ok(mounts)
}

fn hosts(hostname: &str, addresses: &[IpAddr]) -> String {
    let mut s = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string();
    for a in addresses {
        s += &format!("{a}\t{hostname}\n");
    }
    s
}

/// Rewrites the `hosts` file in `dir` with the container's `addresses`,
/// in place: the bind mount holds the file, not its name.
pub(crate) fn update_hosts(dir: &Path, hostname: &str, addresses: &[IpAddr]) -> Result<()> {
    let path = dir.join("hosts");
    std::fs::write(&path, hosts(hostname, addresses)).map_err(|e| Error::io("write", &path, e))
}

/// The host's resolver configuration, without loopback name servers (a
/// stub resolver on the host's 127.0.0.53 is out of the container's
/// reach); systemd-resolved's upstream list when the host's has only
/// loopback ones.
fn resolv_conf() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let filtered = filter(&read("/etc/resolv.conf"));
    if filtered.lines().any(|l| l.starts_with("nameserver")) {
        return filtered;
    }
    let upstream = filter(&read("/run/systemd/resolve/resolv.conf"));
    if upstream.lines().any(|l| l.starts_with("nameserver")) {
        upstream
    } else {
        filtered
    }
}

fn filter(text: &str) -> String {
    text.lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            !(w.next() == Some("nameserver")
                && w.next()
                    .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                    .is_some_and(|a| a.is_loopback()))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_name_servers_are_dropped() {
        let t = "search lan\nnameserver 127.0.0.53\nnameserver 10.0.0.1\nnameserver ::1\n";
        assert_eq!(super::filter(t), "search lan\nnameserver 10.0.0.1\n");
    }
}
