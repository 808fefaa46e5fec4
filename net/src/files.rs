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
                .map_err(|e| Error::invalid_spec("mounts", e.to_string()))?,
        );
    }
    Ok(mounts)
}

/// Bind-mounts the files of `mounts` over their destinations in the mount
/// namespace of the running process `pid`: for a container connected after
/// its mounts were made. A destination the container lacks is left alone
/// (its rootfs is never written to). Returns the destinations mounted on.
pub(crate) fn mount_into(pid: i32, mounts: &[Mount]) -> Result<Vec<std::path::PathBuf>> {
    use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};
    // Detached copies of the files, made here, moved there.
    let trees = mounts
        .iter()
        .map(|m| {
            let src = m.source().clone().unwrap_or_default();
            let fd = open_tree(
                rustix::fs::CWD,
                &src,
                OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
            )
            .map_err(|e| Error::io("open_tree", &src, e.into()))?;
            Ok((fd, m.destination().clone()))
        })
        .collect::<Result<Vec<_>>>()?;
    in_mount_ns(pid, || {
        let mut done = Vec::new();
        for (fd, dest) in &trees {
            if !dest.is_file() {
                continue;
            }
            let moved = move_mount(
                fd,
                "",
                rustix::fs::CWD,
                dest,
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            );
            if let Err(e) = moved {
                unmount(&done);
                return Err(Error::io("mount", dest, e.into()));
            }
            done.push(dest.clone());
        }
        Ok(done)
    })
}

/// Undoes [`mount_into`].
pub(crate) fn unmount_from(pid: i32, dests: &[std::path::PathBuf]) -> Result<()> {
    in_mount_ns(pid, || {
        unmount(dests);
        Ok(())
    })
}

fn unmount(dests: &[std::path::PathBuf]) {
    for d in dests {
        let _ = nix::mount::umount2(d, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Runs `work` on a thread in the mount namespace of process `pid`, where
/// paths resolve under the container's root.
fn in_mount_ns<T: Send>(pid: i32, work: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    use nix::sched::CloneFlags;
    let ns = std::path::PathBuf::from(format!("/proc/{pid}/ns/mnt"));
    std::thread::scope(|s| {
        s.spawn(|| -> Result<T> {
            // A thread sharing its filesystem context may not change mount
            // namespace; this one stops sharing, and ends after.
            nix::sched::unshare(CloneFlags::CLONE_FS)
                .map_err(|e| Error::sys("unshare CLONE_FS", e))?;
            let f = std::fs::File::open(&ns).map_err(|e| Error::io("open", &ns, e))?;
            nix::sched::setns(f, CloneFlags::CLONE_NEWNS)
                .map_err(|e| Error::io("enter mount namespace", &ns, e.into()))?;
            work()
        })
        .join()
        .map_err(|_| Error::sys("mount thread", std::io::Error::other("panicked")))?
    })
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
