//! Running without root: where state goes, and how the id maps of a new
//! user namespace are written by an unprivileged parent.

use std::path::PathBuf;

/// Whether this process runs without root: its effective uid is not 0, or
/// it is root only in a user namespace other than the host's (as under
/// rootless podman, which runs its OCI runtime as root of the user's
/// namespace): what runc's rootless detection decides too.
pub fn is_rootless() -> bool {
    !nix::unistd::geteuid().is_root() || in_user_namespace()
}

/// Whether this process is in a user namespace other than the initial one
/// (its uid map is not the identity of every id).
pub fn in_user_namespace() -> bool {
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
    })
}

/// Whether `setgroups` is allowed in this process's own user namespace for
/// a root of it: root of a namespace whose gid map `newgidmap` wrote (as
/// rootless podman's is) may set supplementary groups there.
pub(crate) fn own_setgroups_allowed() -> bool {
    nix::unistd::geteuid().is_root()
        && std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "allow")
}

/// The default state root: `/run/berth` for root, else
/// `$XDG_RUNTIME_DIR/berth` (as runc uses `$XDG_RUNTIME_DIR/runc`), else
/// `/run/user/<uid>/berth`. Root of a user namespace uses
/// `$XDG_RUNTIME_DIR/berth` where that is set and `$USER` is not `root`
/// (runc's rule: the namespace is then a user's).
pub fn default_root() -> PathBuf {
    if !is_rootless() {
        return PathBuf::from("/run/berth");
    }
    if nix::unistd::geteuid().is_root() {
        let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
        let user_is_root = std::env::var_os("USER").is_some_and(|u| u == "root");
        return match xdg {
            Some(dir) if !user_is_root => PathBuf::from(dir).join("berth"),
            _ => PathBuf::from("/run/berth"),
        };
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("berth"),
        None => PathBuf::from(format!("/run/user/{}/berth", nix::unistd::geteuid())),
    }
}

/// The default cgroup parent: `berth` for root; `berth-rootless-<uid>`
/// for a user, whose containers get a cgroup only where one was delegated,
/// and must not share a parent with root's.
pub fn default_cgroup_parent() -> String {
    if is_rootless() {
        format!("berth-rootless-{}", nix::unistd::geteuid())
    } else {
        "berth".into()
    }
}

/// This process's own `oom_score_adj`, which a child inherits: without
/// `CAP_SYS_RESOURCE` a process may raise its score, never lower it.
pub(crate) fn own_oom_score_adj() -> crate::Result<i32> {
    let path = "/proc/self/oom_score_adj";
    let text = std::fs::read_to_string(path).map_err(|e| crate::Error::io("read", path, e))?;
    text.trim()
        .parse()
        .map_err(|e| crate::Error::io("parse", path, std::io::Error::other(e)))
}

/// The kind of ids a map is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ids {
    /// User ids: `/etc/subuid`, `newuidmap`.
    User,
    /// Group ids: `/etc/subgid`, `newgidmap`.
    Group,
}

impl Ids {
    fn file(self) -> &'static str {
        match self {
            Ids::User => "/etc/subuid",
            Ids::Group => "/etc/subgid",
        }
    }

    fn helper(self) -> &'static str {
        match self {
            Ids::User => "newuidmap",
            Ids::Group => "newgidmap",
        }
    }

    fn own(self) -> u32 {
        match self {
            Ids::User => nix::unistd::geteuid().as_raw(),
            Ids::Group => nix::unistd::getegid().as_raw(),
        }
    }
}

/// The ranges (first id, count) that `content` (the text of `/etc/subuid`
/// or `/etc/subgid`) gives the user named `name` with id `id`: lines
/// `name:first:count` or `id:first:count`, as shadow's `newuidmap` reads
/// them. Comments and malformed lines are skipped.
pub(crate) fn subordinate_ranges(content: &str, name: &str, id: u32) -> Vec<(u64, u64)> {
    content
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let (who, first, count) = (f.next()?, f.next()?, f.next()?);
            if f.next().is_some() || (who != name && who.parse::<u32>().ok() != Some(id)) {
                return None;
            }
            let (first, count) = (first.parse::<u64>().ok()?, count.parse::<u64>().ok()?);
            (count > 0).then_some((first, count))
        })
        .collect()
}

/// Whether a rendered map (`"inside host count\n"` lines) maps only the
/// caller's own id `own`, once: a map the kernel lets an unprivileged
/// process write itself. Anything else needs `newuidmap`/`newgidmap`.
pub(crate) fn maps_only_own_id(map: &str, own: u32) -> bool {
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    matches!(lines.as_slice(), [l] if l.get(1) == Some(&own.to_string().as_str()) && l.get(2) == Some(&"1"))
}

/// The name of user `uid`, as `/etc/subuid` lines name it: from
/// `/etc/passwd` first (as runc and shadow's `newuidmap` read it; a static
/// binary's NSS cannot load its modules reliably), then from NSS (LDAP and
/// the like), else the number.
pub(crate) fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| passwd_name(&passwd, uid))
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| uid.to_string())
}

/// The name of the first `passwd(5)` entry of `uid`.
fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let id = f.nth(1)?;
        (!name.is_empty() && !name.starts_with('#') && id.parse::<u32>().ok() == Some(uid))
            .then(|| name.to_string())
    })
}

/// Checks, before any process exists, that every range of `maps` (the
/// spec's `field`) is the caller's to map without root: its own id (a
/// range of one), or within a range `/etc/subuid` (`/etc/subgid`) gives it.
/// A map that is only the caller's own id needs no file at all.
pub(crate) fn check_mappings(
    maps: &[oci_spec::runtime::LinuxIdMapping],
    field: &str,
    ids: Ids,
) -> crate::Result<()> {
    let own = ids.own();
    let only_own = matches!(maps, [m] if m.host_id() == own && m.size() == 1);
    // Root of a user namespace maps what its namespace maps, itself.
    if only_own || nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let uid = nix::unistd::geteuid().as_raw();
    let user = user_name(uid);
    let content = std::fs::read_to_string(ids.file()).unwrap_or_default();
    let ranges = subordinate_ranges(&content, &user, uid);
    check_ranges(maps, field, ids, own, &user, &ranges)
}

fn check_ranges(
    maps: &[oci_spec::runtime::LinuxIdMapping],
    field: &str,
    ids: Ids,
    own: u32,
    user: &str,
    ranges: &[(u64, u64)],
) -> crate::Result<()> {
    for (i, m) in maps.iter().enumerate() {
        let (first, count) = (u64::from(m.host_id()), u64::from(m.size()));
        if first == u64::from(own) && count == 1 {
            continue;
        }
        let within = ranges
            .iter()
            .any(|&(s, n)| first >= s && first + count <= s + n);
        if within {
            continue;
        }
        let reason = if ranges.is_empty() {
            format!("{} has no range for {user}", ids.file())
        } else {
            let list: Vec<String> = ranges
                .iter()
                .map(|(s, n)| format!("{s}-{}", s + n - 1))
                .collect();
            format!("{}'s ranges for {user} are {}", ids.file(), list.join(", "))
        };
        return Err(crate::Error::SubordinateIds {
            field: format!("{field}[{i}]"),
            range: format!("{first}-{}", first + count.max(1) - 1),
            user: user.to_string(),
            reason,
        });
    }
    Ok(())
}

/// Writes the id maps of the new user namespace of `pid` from an
/// unprivileged parent (or root of a user namespace, which writes them
/// itself): a map of only the caller's own id directly (the
/// gid map after denying `setgroups`, which the kernel requires), any
/// other through the setuid `newuidmap`/`newgidmap`, which check the
/// ranges against `/etc/subuid`/`/etc/subgid` and leave `setgroups`
/// allowed (runc does the same). Blocking.
pub(crate) fn write_id_maps(
    pid: i32,
    uid_map: Option<&str>,
    gid_map: Option<&str>,
) -> crate::Result<()> {
    let write = |file: &str, content: &str| -> crate::Result<()> {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&path, content).map_err(|e| crate::Error::io("write", path, e))
    };
    if nix::unistd::geteuid().is_root() {
        // Root of a user namespace (rootless podman's): CAP_SETUID and
        // CAP_SETGID there let it write any map of the ids it has.
        if let Some(map) = uid_map {
            write("uid_map", map)?;
        }
        if let Some(map) = gid_map {
            write("gid_map", map)?;
        }
        return Ok(());
    }
    if let Some(map) = uid_map {
        if maps_only_own_id(map, Ids::User.own()) {
            write("uid_map", map)?;
        } else {
            run_helper(Ids::User, pid, map)?;
        }
    }
    if let Some(map) = gid_map {
        if maps_only_own_id(map, Ids::Group.own()) {
            write("setgroups", "deny")?;
            write("gid_map", map)?;
        } else {
            run_helper(Ids::Group, pid, map)?;
        }
    }
    Ok(())
}

/// Whether `setgroups` stays allowed in a user namespace whose gid map is
/// `gid_map`, as written by [`write_id_maps`].
pub(crate) fn setgroups_allowed(gid_map: Option<&str>) -> bool {
    gid_map.is_some_and(|m| !maps_only_own_id(m, Ids::Group.own()))
}

fn run_helper(ids: Ids, pid: i32, map: &str) -> crate::Result<()> {
    let helper = ids.helper();
    let out = std::process::Command::new(helper)
        .arg(pid.to_string())
        .args(map.split_whitespace())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            let e = if e.kind() == std::io::ErrorKind::NotFound {
                std::io::Error::new(
                    e.kind(),
                    format!("{helper} not found: a map of more than the caller's own id needs it (Debian: uidmap)"),
                )
            } else {
                e
            };
            crate::Error::sys(helper_op(ids), e)
        })?;
    if !out.status.success() {
        return Err(crate::Error::sys(
            helper_op(ids),
            std::io::Error::other(format!(
                "{helper} {pid} {}: {} ({})",
                map.split_whitespace().collect::<Vec<_>>().join(" "),
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status
            )),
        ));
    }
    Ok(())
}

fn helper_op(ids: Ids) -> &'static str {
    match ids {
        Ids::User => "newuidmap",
        Ids::Group => "newgidmap",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxIdMappingBuilder;

    #[test]
    fn a_user_name_comes_from_its_passwd_entry() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      # a comment:x:1000\n\
                      alice:x:1000:1000::/home/alice:/bin/sh\n\
                      alias:x:1000:1000::/home/alias:/bin/sh\n";
        assert_eq!(passwd_name(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(passwd_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(passwd_name(passwd, 1001), None);
        // This machine's own file agrees with NSS for root.
        assert_eq!(user_name(0), "root");
    }

    fn map(c: u32, h: u32, n: u32) -> oci_spec::runtime::LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(c)
            .host_id(h)
            .size(n)
            .build()
            .unwrap()
    }

    #[test]
    fn subordinate_ranges_are_found_by_name_or_uid() {
        let text = "# c\nalice:100000:65536\nbob:200000:65536\n1001:300000:10\nalice:400000:0\nbad line\nalice:x:1\n";
        assert_eq!(subordinate_ranges(text, "alice", 1000), [(100000, 65536)]);
        assert_eq!(subordinate_ranges(text, "carol", 1001), [(300000, 10)]);
        assert!(subordinate_ranges(text, "dave", 1002).is_empty());
    }

    #[test]
    fn only_a_single_own_id_is_written_without_the_helpers() {
        assert!(maps_only_own_id("0 1000 1\n", 1000));
        assert!(maps_only_own_id("5 1000 1\n", 1000));
        assert!(!maps_only_own_id("0 1000 2\n", 1000));
        assert!(!maps_only_own_id("0 1001 1\n", 1000));
        assert!(!maps_only_own_id("0 1000 1\n1 100000 65536\n", 1000));
    }

    #[test]
    fn a_range_outside_the_users_ranges_is_named() {
        let ranges = [(100000, 65536)];
        let ok = [map(0, 1000, 1), map(1, 100000, 65536)];
        check_ranges(&ok, "linux.uidMappings", Ids::User, 1000, "alice", &ranges).unwrap();
        let bad = [map(0, 100000, 65537)];
        let e =
            check_ranges(&bad, "linux.uidMappings", Ids::User, 1000, "alice", &ranges).unwrap_err();
        match &e {
            crate::Error::SubordinateIds { field, range, .. } => {
                assert_eq!(field, "linux.uidMappings[0]");
                assert_eq!(range, "100000-165536");
            }
            e => panic!("{e:?}"),
        }
        assert!(e.to_string().contains("100000-165535"), "{e}");
        let e =
            check_ranges(&bad, "linux.gidMappings", Ids::Group, 1000, "alice", &[]).unwrap_err();
        assert!(
            e.to_string().contains("/etc/subgid has no range for alice"),
            "{e}"
        );
    }
}
