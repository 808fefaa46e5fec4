//! The cgroup part of `/proc/self/mountinfo`, as pure functions of its text
//! so that v1, hybrid and v2 hosts can be unit-tested on any machine.

use std::path::PathBuf;

use super::{HierarchyMount, Layout};

/// A `cgroup` (v1) or `cgroup2` mount of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupMount {
    /// `major:minor` of the superblock: the same for two mounts of one hierarchy.
    pub dev: String,
    /// Where the hierarchy is mounted (`/sys/fs/cgroup/cpu`).
    pub mount_point: PathBuf,
    /// `cgroup` or `cgroup2`.
    pub fstype: String,
    /// The super options (`rw,cpu,cpuacct`, `rw,name=systemd`).
    pub super_opts: String,
}

impl CgroupMount {
    /// Whether this is a v1 hierarchy.
    pub fn is_v1(&self) -> bool {
        self.fstype == "cgroup"
    }

    /// Whether the super options include `opt` (a controller or `name=...`).
    pub fn has_option(&self, opt: &str) -> bool {
        self.super_opts.split(',').any(|o| o == opt)
    }
}

/// The cgroup and cgroup2 mounts listed in mountinfo `text`, in order. A
/// hierarchy mounted more than once is listed once, at its first mount.
pub(crate) fn parse(text: &str) -> Vec<CgroupMount> {
    let mut mounts: Vec<CgroupMount> = Vec::new();
    for mount in text.lines().filter_map(parse_line) {
        if !mounts.iter().any(|m| m.dev == mount.dev) {
            mounts.push(mount);
        }
    }
    mounts
}

/// One mountinfo line, if it is a cgroup mount:
/// `id parent major:minor root mount_point options [optional...] - fstype source super_options`.
fn parse_line(line: &str) -> Option<CgroupMount> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let sep = 6 + fields.get(6..)?.iter().position(|f| *f == "-")?;
    let fstype = *fields.get(sep + 1)?;
    if fstype != "cgroup" && fstype != "cgroup2" {
        return None;
    }
    Some(CgroupMount {
        dev: fields.get(2)?.to_string(),
        mount_point: PathBuf::from(unescape(fields.get(4)?)),
        fstype: fstype.to_string(),
        super_opts: fields.get(sep + 3).unwrap_or(&"").to_string(),
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match octal {
            Some(b) => {
                out.push(b);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The host's layout: `root_is_cgroup2` is whether `/sys/fs/cgroup` itself
/// is a cgroup2 filesystem.
pub(crate) fn layout(mounts: &[CgroupMount], root_is_cgroup2: bool) -> Layout {
    if root_is_cgroup2 {
        Layout::V2
    } else if mounts.iter().any(CgroupMount::is_v1) && mounts.iter().any(|m| !m.is_v1()) {
        Layout::Hybrid
    } else {
        Layout::V1
    }
}

/// The hierarchies a container sees under its own cgroup mount, sorted by
/// name (see [`super::hierarchy_mounts`]).
pub(crate) fn hierarchy_mounts(mounts: &[CgroupMount], layout: Layout) -> Vec<HierarchyMount> {
    if layout == Layout::V2 {
        return vec![HierarchyMount {
            name: String::new(),
            fstype: "cgroup2".into(),
            data: String::new(),
            host_dir: PathBuf::from(super::CGROUP_ROOT),
        }];
    }
    let mut out: Vec<HierarchyMount> = mounts
        .iter()
        .filter(|m| m.is_v1())
        .filter_map(|m| {
            let name = m.mount_point.file_name()?.to_string_lossy().into_owned();
            // A container may not set (and must not learn) the host's release agent.
            let data: Vec<&str> = m
                .super_opts
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro" | "") && !o.starts_with("release_agent="))
                .collect();
            Some(HierarchyMount {
                name,
                fstype: "cgroup".into(),
                data: data.join(","),
                host_dir: m.mount_point.clone(),
            })
        })
        .collect();
    if layout == Layout::Hybrid {
        if let Some(unified) = mounts.iter().find(|m| !m.is_v1()) {
            out.push(HierarchyMount {
                name: "unified".into(),
                fstype: "cgroup2".into(),
                data: String::new(),
                host_dir: unified.mount_point.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This development machine: v1 controllers, cpu and cpuacct apart, plus cgroup2 at unified.
    const HYBRID: &str = "\
22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A systemd v1 host (CentOS 7 style): combined mounts, optional fields,
    /// a release agent, and one hierarchy bind-mounted a second time.
    const V1: &str = "\
25 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:6 - tmpfs tmpfs ro,mode=755
26 25 0:22 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:7 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
28 25 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
29 25 0:25 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,net_cls,net_prio
30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,memory
31 25 0:27 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,pids
32 25 0:28 / /sys/fs/cgroup/misc rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,misc
90 60 0:26 /docker /var/lib/x/mem\\040dir rw,relatime - cgroup cgroup rw,memory
";

    /// A pure v2 host.
    const V2: &str = "\
25 18 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    /// The samples mount every hierarchy at `/sys/fs/cgroup/<name>`.
    fn hm(name: &str, fstype: &str, data: &str) -> HierarchyMount {
        HierarchyMount {
            name: name.into(),
            fstype: fstype.into(),
            data: data.into(),
            host_dir: PathBuf::from("/sys/fs/cgroup").join(name),
        }
    }

    #[test]
    fn hybrid_host() {
        let mounts = parse(HYBRID);
        assert_eq!(mounts.len(), 10, "{mounts:#?}");
        assert_eq!(layout(&mounts, false), Layout::Hybrid);
        let cg2 = mounts.iter().find(|m| !m.is_v1()).unwrap();
        assert_eq!(cg2.mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(
            hierarchy_mounts(&mounts, Layout::Hybrid),
            vec![
                hm("blkio", "cgroup", "blkio"),
                hm("cpu", "cgroup", "cpu"),
                hm("cpuacct", "cgroup", "cpuacct"),
                hm("cpuset", "cgroup", "cpuset"),
                hm("devices", "cgroup", "devices"),
                hm("freezer", "cgroup", "freezer"),
                hm("memory", "cgroup", "memory"),
                hm("pids", "cgroup", "pids"),
                hm("systemd", "cgroup", "name=systemd"),
                hm("unified", "cgroup2", ""),
            ]
        );
    }

    #[test]
    fn v1_host() {
        let mounts = parse(V1);
        // The second mount of the memory hierarchy (same dev 0:26) is dropped.
        assert_eq!(mounts.len(), 6, "{mounts:#?}");
        assert!(mounts[1].has_option("cpuacct") && !mounts[1].has_option("cpu,cpuacct"));
        assert_eq!(layout(&mounts, false), Layout::V1);
        assert_eq!(
            hierarchy_mounts(&mounts, Layout::V1),
            vec![
                hm("cpu,cpuacct", "cgroup", "cpu,cpuacct"),
                hm("memory", "cgroup", "memory"),
                hm("misc", "cgroup", "misc"),
                hm("net_cls,net_prio", "cgroup", "net_cls,net_prio"),
                hm("pids", "cgroup", "pids"),
                hm("systemd", "cgroup", "xattr,name=systemd"),
            ]
        );
    }

    #[test]
    fn v2_host() {
        let mounts = parse(V2);
        assert_eq!(mounts.len(), 1);
        assert_eq!(layout(&mounts, true), Layout::V2);
        assert_eq!(
            hierarchy_mounts(&mounts, Layout::V2),
            vec![hm("", "cgroup2", "")]
        );
    }

    #[test]
    fn no_cgroups_and_garbage() {
        let text = "garbage\n\n1 2 3\n- - - -\n22 1 0:21 / / rw - overlay overlay rw\n";
        let mounts = parse(text);
        assert!(mounts.is_empty());
        assert_eq!(layout(&mounts, false), Layout::V1);
        assert!(hierarchy_mounts(&mounts, Layout::V1).is_empty());
        // A cgroup line cut short after the separator still parses without options.
        let short = parse("9 1 0:5 / /cg rw - cgroup");
        assert_eq!(short.len(), 1);
        assert_eq!(short[0].super_opts, "");
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape(r"/a\040b\011c\134d"), "/a b\tc\\d");
        assert_eq!(unescape(r"/trailing\04"), r"/trailing\04");
        assert_eq!(unescape(r"/big\777"), r"/big\777");
        assert_eq!(unescape("/ünï"), "/ünï");
    }
}
