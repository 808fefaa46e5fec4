//! Mounts: `mount(2)` (binds, remounts, propagation), `mount_setattr`,
//! `fsopen`/`fsmount` for the private procfs, `pivot_root` and `chroot`,
//! `mknodat` for devices, and the masked and read-only paths.

use core::ffi::CStr;
use libc::c_int;

use super::super::sys::{self, SysResult};
use super::fds::above;
use super::resolve::last;
use super::{proc_fd_path, proc_path, Executor, Fd, AT_FDCWD, PATH_CLOEXEC};
use crate::plan::{Create, DeviceStep, InRoot, MountStep};

impl Executor<'_> {
    /// `Step::BindRootfs`: the rootfs bound onto itself and opened, and
    /// the private procfs made while the host's `/proc` is in view.
    pub(super) fn bind_rootfs(&mut self, r: &CStr) -> SysResult<()> {
        sys::mount(Some(r), r, None, libc::MS_BIND | libc::MS_REC, None)?;
        let rootfd = sys::openat(AT_FDCWD, r, PATH_CLOEXEC | libc::O_DIRECTORY, 0)?;
        self.rootfd = above(rootfd, self.fds.first_free)?;
        // Now, while the host's /proc is still in view: in a user
        // namespace the kernel allows a new procfs only where a
        // fully visible one is mounted.
        if self.args.sabotage & super::super::SABOTAGE_PROC == 0 {
            self.procfd = private_proc()
                .and_then(|fd| above(fd, self.fds.first_free))
                .unwrap_or(-1);
        }
        Ok(())
    }

    /// `Step::Mount`, on the target's descriptor (its `self/fd` link).
    pub(super) fn mount(&mut self, m: &MountStep) -> SysResult<()> {
        let mut buf = [0u8; 32];
        let mut remount_flags = m.remount_flags;
        {
            let fd = Fd(self.resolve(&m.target, m.create)?);
            let target = proc_fd_path(fd.0, &mut buf);
            match sys::mount(
                m.source.as_ref().map(|s| s.as_c()),
                target,
                m.fstype.as_ref().map(|s| s.as_c()),
                m.flags,
                m.data.as_ref().map(|s| s.as_c()),
            ) {
                Ok(()) => {}
                Err(e @ (libc::EPERM | libc::EBUSY)) if !m.fallback_binds.is_empty() => {
                    bind_first(&m.fallback_binds, target, e)?;
                    // A bind takes its flags from a remount.
                    let kept = m.flags & libc::MS_RDONLY;
                    remount_flags = Some(
                        libc::MS_REMOUNT
                            | libc::MS_BIND
                            | libc::MS_NOSUID
                            | libc::MS_NODEV
                            | libc::MS_NOEXEC
                            | kept,
                    );
                }
                Err(e) => return Err(e),
            }
        }
        // Later calls act on the new mount: resolve the path again so that
        // it leads onto the mount just made, not the directory beneath it.
        for flags in after_mount(remount_flags, m.propagation) {
            let fd = Fd(self.resolve(&m.target, m.create)?);
            sys::mount(None, proc_fd_path(fd.0, &mut buf), None, flags, None)?;
        }
        Ok(())
    }

    /// `Step::Device`: a node made (and owned, and its mode set), or a
    /// host device bound onto a file.
    pub(super) fn device(&mut self, d: &DeviceStep) -> SysResult<()> {
        if let Some(host) = &d.bind_from {
            let fd = Fd(self.resolve(&d.target, Create::File)?);
            let mut buf = [0u8; 32];
            return sys::mount(
                Some(host.as_c()),
                proc_fd_path(fd.0, &mut buf),
                None,
                libc::MS_BIND,
                None,
            );
        }
        let parent = self.resolve_parent(&d.target)?;
        let name = last(&d.target);
        match sys::mknodat(
            parent.0,
            name,
            d.mode,
            libc::makedev(d.major as u32, d.minor as u32),
        ) {
            Ok(()) => {}
            // Already there (a shared /dev or a second run): leave it.
            Err(libc::EEXIST) => return Ok(()),
            Err(e) => return Err(e),
        }
        sys::fchownat(parent.0, name, d.uid, d.gid, libc::AT_SYMLINK_NOFOLLOW)?;
        sys::fchmodat(parent.0, name, d.mode & 0o7777)
    }

    /// `Step::Remount`.
    pub(super) fn remount(&mut self, target: &InRoot, flags: u64) -> SysResult<()> {
        let fd = Fd(self.resolve(target, Create::Dir)?);
        let mut buf = [0u8; 32];
        sys::mount(None, proc_fd_path(fd.0, &mut buf), None, flags, None)
    }

    /// `Step::MountSetattr`: recursive mount attributes.
    pub(super) fn mount_setattr(&mut self, target: &InRoot, set: u64, clear: u64) -> SysResult<()> {
        let fd = Fd(self.resolve(target, Create::Dir)?);
        let attr = sys::MountAttr {
            attr_set: set,
            attr_clr: clear,
            propagation: 0,
            userns_fd: 0,
        };
        sys::mount_setattr_recursive(fd.0, &attr)
    }

    /// `Step::Symlink`; one already there is left.
    pub(super) fn symlink(&mut self, target: &CStr, link: &InRoot) -> SysResult<()> {
        let parent = self.resolve_parent(link)?;
        match sys::symlinkat(target, parent.0, last(link)) {
            Err(libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// `Step::PivotRoot`: into the rootfs, the old root detached.
    pub(super) fn pivot_root(&mut self) -> SysResult<()> {
        let oldroot = Fd(sys::openat(
            AT_FDCWD,
            c"/",
            PATH_CLOEXEC | libc::O_DIRECTORY,
            0,
        )?);
        sys::fchdir(self.rootfd)?;
        sys::pivot_root(c".", c".")?;
        // The old root is now stacked on the new one. Step onto it
        // (a path lookup of "." would find the new root on top),
        // make it a slave so its detach cannot propagate to the
        // host, and detach it.
        sys::fchdir(oldroot.0)?;
        sys::mount(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None)?;
        if self.procfd >= 0 {
            // Closing a mount that was never attached anywhere (fsmount's)
            // unmounts it then and waits for an expedited RCU grace period,
            // serialized across the whole machine: one more per container
            // besides this detach and the namespace's end. Attached in the
            // old root (over its /proc, now a slave: seen by nobody), it
            // leaves with it below and stays usable through the descriptor.
            // Where that fails, it is closed as before.
            let _ = sys::move_mount_fd(self.procfd, oldroot.0, c"proc");
        }
        sys::umount2(c".", libc::MNT_DETACH)?;
        sys::chdir(c"/")
    }

    /// `Step::Chroot`.
    pub(super) fn chroot(&mut self) -> SysResult<()> {
        sys::fchdir(self.rootfd)?;
        sys::chroot(c".")?;
        sys::chdir(c"/")
    }

    /// `Step::MoveRoot`: the rootfs moved over `/`, then `chroot`.
    pub(super) fn move_root(&mut self) -> SysResult<()> {
        sys::fchdir(self.rootfd)?;
        sys::mount(Some(c"."), c"/", None, libc::MS_MOVE, None)?;
        sys::chroot(c".")?;
        sys::chdir(c"/")
    }
}

/// `Step::ReadonlyRoot`.
pub(super) fn readonly_root() -> SysResult<()> {
    let locked = locked_flags(c"/")?;
    sys::mount(
        None,
        c"/",
        None,
        (libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY) | locked,
        None,
    )
}

/// Mount flags the kernel locks on a mount (and a remount must repeat).
fn locked_flags(path: &CStr) -> SysResult<u64> {
    // SAFETY: statfs64 is plain data; zeroed is valid before the call fills it.
    let mut st: libc::statfs64 = unsafe { core::mem::zeroed() };
    sys::statfs(path, &mut st)?;
    Ok(locked(st.f_flags as u64))
}

/// Of a `statfs` `f_flags`, those the kernel locks on a mount.
fn locked(f_flags: u64) -> u64 {
    // ST_* and MS_* share these bit values.
    let keep = libc::MS_NOSUID
        | libc::MS_NODEV
        | libc::MS_NOEXEC
        | libc::MS_NOATIME
        | libc::MS_NODIRATIME
        | libc::MS_RELATIME;
    f_flags & keep
}

/// The flags of the `mount` calls that follow a mount's own: its remount
/// (read-only binds), then its propagation (none when 0).
/// Binds the first of `sources` that exists onto `target`; `refused`
/// (the error of the mount they stand in for) if none does.
fn bind_first(sources: &[crate::plan::CPath], target: &CStr, refused: c_int) -> SysResult<()> {
    for source in sources {
        match sys::mount(
            Some(source.as_c()),
            target,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        ) {
            Err(libc::ENOENT) => continue,
            r => return r,
        }
    }
    Err(refused)
}

fn after_mount(remount_flags: Option<u64>, propagation: u64) -> impl Iterator<Item = u64> {
    [remount_flags, (propagation != 0).then_some(propagation)]
        .into_iter()
        .flatten()
}

/// Whether `st` is the real null device, a character device 1:3.
fn is_null_device(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3)
}

/// Binds `source` onto `target`, both already opened (`O_PATH`) and
/// checked, through their `self/fd` links in the private procfs, so that
/// the mount acts on exactly those inodes even if the paths were swapped
/// since (for a symlink, say), and no mount over the container's `/proc`
/// can redirect it. Without a private procfs, by path.
pub(super) fn bind_fds(
    source: (c_int, &CStr),
    target: (c_int, &CStr),
    procfd: c_int,
) -> SysResult<()> {
    if procfd < 0 {
        return sys::mount(Some(source.1), target.1, None, libc::MS_BIND, None);
    }
    let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
    let src = proc_path(b"self/fd/", source.0 as u32, &mut a);
    let dst = proc_path(b"self/fd/", target.0 as u32, &mut b);
    sys::fchdir(procfd)?;
    let r = sys::mount(Some(src), dst, None, libc::MS_BIND, None);
    // Every step after pivot_root starts from the container's root.
    sys::chdir(c"/")?;
    r
}

/// A procfs instance of our pid namespace, mounted nowhere (`fsopen`,
/// Linux 5.2).
fn private_proc() -> SysResult<c_int> {
    let fs = Fd(sys::fsopen(c"proc", sys::FSOPEN_CLOEXEC)?);
    sys::fsconfig_cmd(fs.0, sys::FSCONFIG_CMD_CREATE)?;
    sys::fsmount(
        fs.0,
        sys::FSMOUNT_CLOEXEC,
        sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
    )
}

pub(super) fn mask_path(path: &CStr, sabotage: u32, procfd: c_int) -> SysResult<()> {
    let fd = match sys::openat(AT_FDCWD, path, PATH_CLOEXEC | libc::O_NOFOLLOW, 0) {
        Err(libc::ENOENT) => return Ok(()),
        r => Fd(r?),
    };
    // SAFETY: stat is plain data; zeroed is valid before fstat fills it.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    sys::fstat(fd.0, &mut st)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return sys::mount(Some(c"tmpfs"), path, Some(c"tmpfs"), libc::MS_RDONLY, None);
    }
    if sabotage & super::super::SABOTAGE_DEVICES != 0 {
        return sys::mount(Some(c"/dev/null"), path, None, libc::MS_BIND, None);
    }
    // Bind only the real null device, never whatever a crafted image or a
    // shared volume put at /dev/null (a symlink to a /proc file would make
    // the "masked" path a writable alias of it: CVE-2025-31133).
    let null = Fd(sys::openat(
        AT_FDCWD,
        c"/dev/null",
        PATH_CLOEXEC | libc::O_NOFOLLOW,
        0,
    )?);
    sys::fstat(null.0, &mut st)?;
    if !is_null_device(&st) {
        return Err(libc::ENODEV);
    }
    bind_fds((null.0, c"/dev/null"), (fd.0, path), procfd)
}

pub(super) fn readonly_path(path: &CStr) -> SysResult<()> {
    let bind = libc::MS_BIND | libc::MS_REC;
    match sys::mount(Some(path), path, None, bind, None) {
        Err(libc::ENOENT) => return Ok(()),
        r => r?,
    }
    let flags = libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT | libc::MS_RDONLY;
    sys::mount(None, path, None, flags | locked_flags(path)?, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_is_followed_by_its_remount_then_its_propagation() {
        let ro = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
        let all = |r, p| after_mount(r, p).collect::<Vec<_>>();
        assert!(all(None, 0).is_empty());
        assert_eq!(all(Some(ro), 0), [ro]);
        assert_eq!(all(None, libc::MS_SLAVE), [libc::MS_SLAVE]);
        assert_eq!(all(Some(ro), libc::MS_PRIVATE), [ro, libc::MS_PRIVATE]);
    }

    #[test]
    fn only_the_flags_the_kernel_locks_are_repeated() {
        let locked_ones = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RELATIME;
        // ST_RDONLY (1) and ST_SYNCHRONOUS (16) are not repeated.
        assert_eq!(locked(locked_ones | libc::MS_RDONLY | 16), locked_ones);
        assert_eq!(locked(0), 0);
        assert_eq!(
            locked(u64::MAX),
            libc::MS_NOSUID
                | libc::MS_NODEV
                | libc::MS_NOEXEC
                | libc::MS_NOATIME
                | libc::MS_NODIRATIME
                | libc::MS_RELATIME
        );
    }

    #[test]
    fn only_a_character_device_1_3_is_the_null_device() {
        // SAFETY: stat is plain data; zeroed is a valid value.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        st.st_mode = libc::S_IFCHR | 0o666;
        st.st_rdev = libc::makedev(1, 3);
        assert!(is_null_device(&st));
        // /dev/zero, a block device 1:3, a regular file, a symlink.
        st.st_rdev = libc::makedev(1, 5);
        assert!(!is_null_device(&st));
        st.st_rdev = libc::makedev(1, 3);
        for kind in [libc::S_IFBLK, libc::S_IFREG, libc::S_IFLNK] {
            st.st_mode = kind | 0o666;
            assert!(!is_null_device(&st));
        }
    }
}
