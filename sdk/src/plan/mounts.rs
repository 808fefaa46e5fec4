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
}

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
        match opt.as_str() {
            "bind" => o.bind = true,
            "rbind" => {
                o.bind = true;
                o.recursive = true;
            }
            // Hints for other runtimes that change nothing here.
            "tmpcopyup" | "rro" | "rrw" | "rnosuid" | "rnodev" | "rnoexec" => {
                return Err(format!("option {opt:?} is not supported by berth yet"))
            }
            "idmap" | "ridmap" => {
                return Err(format!(
                    "option {opt:?} (id-mapped mounts) is not supported by berth yet"
                ))
            }
            "remount" => return Err("option \"remount\" makes no sense in a spec".into()),
            "" => return Err("empty option".into()),
            other if other.contains('\0') => return Err("option contains a NUL byte".into()),
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
    fn refused_options_name_themselves() {
        assert!(p(&["idmap"]).unwrap_err().contains("idmap"));
        assert!(p(&["remount"]).is_err());
        assert!(p(&[""]).is_err());
    }
}
