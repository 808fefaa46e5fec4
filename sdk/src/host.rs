//! Facts about the host that the plan compiler needs, probed once.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use crate::cgroups::{self, HierarchyMount};

/// What the kernel of this machine offers.
#[derive(Debug, Clone)]
pub struct Host {
    /// Filesystem types from `/proc/filesystems`.
    pub filesystems: BTreeSet<String>,
    /// The highest capability number (`/proc/sys/kernel/cap_last_cap`).
    pub last_cap: u32,
    /// The cgroup hierarchies a container's `cgroup` mount shows.
    pub(crate) cgroup_mounts: Vec<HierarchyMount>,
    /// The security modules that can apply a spec's labels.
    pub lsms: crate::security::lsm::Lsms,
}

impl Host {
    /// The facts of this machine, read on first use.
    pub fn get() -> &'static Host {
        static HOST: OnceLock<Host> = OnceLock::new();
        HOST.get_or_init(Host::probe)
    }

    fn probe() -> Host {
        let filesystems = std::fs::read_to_string("/proc/filesystems")
            .map(|s| parse_filesystems(&s))
            .unwrap_or_default();
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        Host {
            filesystems,
            last_cap,
            cgroup_mounts: cgroups::hierarchy_mounts(),
            lsms: crate::security::lsm::Lsms::probe(),
        }
    }
}

fn parse_filesystems(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
impl Host {
    /// A fixed host for snapshot tests: a hybrid cgroup layout like the
    /// development machines'.
    pub(crate) fn fixture() -> Host {
        let hm = |name: &str, fstype: &str, data: &str| HierarchyMount {
            name: name.into(),
            fstype: fstype.into(),
            data: data.into(),
            host_dir: format!("/sys/fs/cgroup/{name}").into(),
        };
        Host {
            filesystems: [
                "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "overlay",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            last_cap: 40,
            cgroup_mounts: vec![
                hm("cpu", "cgroup", "cpu"),
                hm("memory", "cgroup", "memory"),
                hm("unified", "cgroup2", ""),
            ],
            lsms: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn filesystems_are_the_last_column() {
        let fs = super::parse_filesystems("nodev\tsysfs\nnodev\tproc\n\text4\n");
        assert!(fs.contains("sysfs") && fs.contains("ext4") && !fs.contains("nodev"));
    }
}
