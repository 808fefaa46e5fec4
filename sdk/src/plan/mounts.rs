//! Mount options of the OCI spec (`fstab`-style strings) to mount(2) flags.

/// The parsed form of a mount's `options`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct MountOptions {
    /// Flags for mount(2).
    pub flags: u64,
    /// Propagation flags (`MS_SHARED`, `MS_PRIVATE`, ... with `MS_REC`).
    pub propagation: u64,
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `rbind`: recursive bind.
    pub recursive: bool,
    /// Everything the kernel flags do not cover, comma-joined, for the
    /// filesystem (`mode=755`, `size=65536k`, `newinstance`).
    pub data: Vec<String>,
    /// `MOUNT_ATTR_*` bits of the recursive options (`rro`, `rnosuid`, ...)
    /// to set on the mount and every mount beneath it.
    pub rec_set: u64,
    /// `MOUNT_ATTR_*` bits the recursive options clear (`rrw`, `rsuid`, ...).
    pub rec_clear: u64,
}

/// `MOUNT_ATTR_*` of mount_setattr(2) (`linux/mount.h`).
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x4;
pub(crate) const MOUNT_ATTR_NOEXEC: u64 = 0x8;
/// The atime mode field: one of `RELATIME` (0), `NOATIME`, `STRICTATIME`.
pub(crate) const MOUNT_ATTR__ATIME: u64 = 0x70;
pub(crate) const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub(crate) const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub(crate) const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub(crate) const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub(crate) const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// The recursive options runc and crun know: (name, set, clear). An atime
/// mode clears the whole atime field (the kernel accepts no partial clear
/// of it), so `ratime`, `rnorelatime` and `rnostrictatime` go back to the
/// kernel's default, `relatime`.
const RECURSIVE: [(&str, u64, u64); 18] = [
    ("rro", MOUNT_ATTR_RDONLY, 0),
    ("rrw", 0, MOUNT_ATTR_RDONLY),
    ("rnosuid", MOUNT_ATTR_NOSUID, 0),
    ("rsuid", 0, MOUNT_ATTR_NOSUID),
    ("rnodev", MOUNT_ATTR_NODEV, 0),
    ("rdev", 0, MOUNT_ATTR_NODEV),
    ("rnoexec", MOUNT_ATTR_NOEXEC, 0),
    ("rexec", 0, MOUNT_ATTR_NOEXEC),
    ("rnodiratime", MOUNT_ATTR_NODIRATIME, 0),
    ("rdiratime", 0, MOUNT_ATTR_NODIRATIME),
    ("rrelatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
    ("rnorelatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
    ("rnoatime", MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
    ("ratime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
    ("rstrictatime", MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
    ("rnostrictatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
    ("rnosymfollow", MOUNT_ATTR_NOSYMFOLLOW, 0),
    ("rsymfollow", 0, MOUNT_ATTR_NOSYMFOLLOW),
];

const MS: fn(libc::c_ulong) -> u64 = |f| f;

/// Parses `options`. `Err` carries the first option berth refuses.
pub(crate) fn parse(options: &[String]) -> Result<MountOptions, String> {
    let mut o = MountOptions::default();
    for opt in options {
        // (set, clear)
        let flag = match opt.as_str() {
            "defaults" => Some((0, 0)),
            "ro" => Some((MS(libc::MS_RDONLY), 0)),
            "rw" => Some((0, MS(libc::MS_RDONLY))),
            "suid" => Some((0, MS(libc::MS_NOSUID))),
            "nosuid" => Some((MS(libc::MS_NOSUID), 0)),
            "dev" => Some((0, MS(libc::MS_NODEV))),
            "nodev" => Some((MS(libc::MS_NODEV), 0)),
            "exec" => Some((0, MS(libc::MS_NOEXEC))),
            "noexec" => Some((MS(libc::MS_NOEXEC), 0)),
            "sync" => Some((MS(libc::MS_SYNCHRONOUS), 0)),
            "async" => Some((0, MS(libc::MS_SYNCHRONOUS))),
            "dirsync" => Some((MS(libc::MS_DIRSYNC), 0)),
            "mand" => Some((MS(libc::MS_MANDLOCK), 0)),
            "nomand" => Some((0, MS(libc::MS_MANDLOCK))),
            "atime" => Some((0, MS(libc::MS_NOATIME))),
            "noatime" => Some((MS(libc::MS_NOATIME), 0)),
            "diratime" => Some((0, MS(libc::MS_NODIRATIME))),
            "nodiratime" => Some((MS(libc::MS_NODIRATIME), 0)),
            "relatime" => Some((MS(libc::MS_RELATIME), 0)),
            "norelatime" => Some((0, MS(libc::MS_RELATIME))),
            "strictatime" => Some((MS(libc::MS_STRICTATIME), 0)),
            "nostrictatime" => Some((0, MS(libc::MS_STRICTATIME))),
            "nosymfollow" => Some((MS(libc::MS_NOSYMFOLLOW), 0)),
            "symfollow" => Some((0, MS(libc::MS_NOSYMFOLLOW))),
            _ => None,
        };
        if let Some((set, clear)) = flag {
            o.flags = (o.flags | set) & !clear;
            continue;
        }
        let propagation = match opt.as_str() {
            "private" => Some(MS(libc::MS_PRIVATE)),
            "rprivate" => Some(MS(libc::MS_PRIVATE | libc::MS_REC)),
            "shared" => Some(MS(libc::MS_SHARED)),
            "rshared" => Some(MS(libc::MS_SHARED | libc::MS_REC)),
            "slave" => Some(MS(libc::MS_SLAVE)),
            "rslave" => Some(MS(libc::MS_SLAVE | libc::MS_REC)),
            "unbindable" => Some(MS(libc::MS_UNBINDABLE)),
            "runbindable" => Some(MS(libc::MS_UNBINDABLE | libc::MS_REC)),
            _ => None,
        };
        if let Some(p) = propagation {
            o.propagation = p;
            continue;
        }
        if let Some(&(_, set, clear)) = RECURSIVE.iter().find(|(n, ..)| *n == opt.as_str()) {
            // A later option wins over an earlier one, as for the flags.
            let field = if clear & MOUNT_ATTR__ATIME != 0 {
                MOUNT_ATTR__ATIME
            } else {
                set | clear
            };
            o.rec_set = (o.rec_set & !field) | set;
            o.rec_clear = (o.rec_clear & !field) | clear;
            continue;
        }
        match opt.as_str() {
            "bind" => o.bind = true,
            "rbind" => {
                o.bind = true;
                o.recursive = true;
            }
            "tmpcopyup" => return Err(format!("option {opt:?} is not supported by berth yet")),
            "idmap" | "ridmap" => {
                return Err(format!(
                    "option {opt:?} (id-mapped mounts) is not supported by berth yet"
                ))
            }
            "remount" => return Err("option \"remount\" makes no sense in a spec".into()),
            "" => return Err("empty option".into()),
            other if other.contains('\0') => return Err("option contains a NUL byte".into()),
            // Filesystem data, as runc and crun pass it: the filesystem's
            // own parser refuses what it does not know (a bind mount has
            // none: the compiler refuses data there).
            other => o.data.push(other.to_string()),
        }
    }
    Ok(o)
}

/// Flags a bind mount can change only by a remount.
pub(crate) const REMOUNT_ONLY: u64 = libc::MS_RDONLY
    | libc::MS_NOSUID
    | libc::MS_NODEV
    | libc::MS_NOEXEC
    | libc::MS_NOATIME
    | libc::MS_NODIRATIME
    | libc::MS_RELATIME
    | libc::MS_STRICTATIME
    | libc::MS_NOSYMFOLLOW;

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> Result<MountOptions, String> {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_data_and_propagation_are_separated() {
        let o = p(&["nosuid", "noexec", "mode=755", "size=65536k", "rslave"]).unwrap();
        assert_eq!(o.flags, MS(libc::MS_NOSUID | libc::MS_NOEXEC));
        assert_eq!(o.propagation, MS(libc::MS_SLAVE | libc::MS_REC));
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert!(!o.bind);
    }

    #[test]
    fn later_options_override_earlier_ones() {
        assert_eq!(p(&["ro", "rw"]).unwrap().flags, 0);
        assert_eq!(p(&["rw", "ro"]).unwrap().flags, MS(libc::MS_RDONLY));
    }

    #[test]
    fn rbind_is_a_recursive_bind() {
        let o = p(&["rbind", "ro"]).unwrap();
        assert!(o.bind && o.recursive);
    }

    #[test]
    fn recursive_options_set_and_clear_attributes() {
        let o = p(&[
            "rbind",
            "rro",
            "rnosuid",
            "rnodev",
            "rnoexec",
            "rnosymfollow",
        ])
        .unwrap();
        let all = MOUNT_ATTR_RDONLY
            | MOUNT_ATTR_NOSUID
            | MOUNT_ATTR_NODEV
            | MOUNT_ATTR_NOEXEC
            | MOUNT_ATTR_NOSYMFOLLOW;
        assert_eq!((o.rec_set, o.rec_clear), (all, 0));
        assert!(o.data.is_empty() && o.flags == 0);
        let o = p(&["rro", "rrw"]).unwrap();
        assert_eq!((o.rec_set, o.rec_clear), (0, MOUNT_ATTR_RDONLY));
        let o = p(&["rnoatime", "rnodiratime"]).unwrap();
        assert_eq!(
            (o.rec_set, o.rec_clear),
            (
                MOUNT_ATTR_NOATIME | MOUNT_ATTR_NODIRATIME,
                MOUNT_ATTR__ATIME
            )
        );
        let o = p(&["rnoatime", "rstrictatime"]).unwrap();
        assert_eq!(o.rec_set, MOUNT_ATTR_STRICTATIME);
        let o = p(&["rrelatime"]).unwrap();
        assert_eq!((o.rec_set, o.rec_clear), (0, MOUNT_ATTR__ATIME));
    }

    #[test]
    fn filesystem_data_passes_through() {
        let o = p(&["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]).unwrap();
        assert_eq!(
            o.data,
            ["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
        );
    }

    #[test]
    fn refused_options_name_themselves() {
        assert!(p(&["idmap"]).unwrap_err().contains("idmap"));
        assert!(p(&["remount"]).is_err());
        assert!(p(&[""]).is_err());
    }
}
