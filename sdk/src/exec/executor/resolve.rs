//! In-root path resolution: `openat2(RESOLVE_IN_ROOT)` from the rootfs,
//! or before Linux 5.6 a walk of the components that follows no symlink,
//! so that no mount target can lead out of the rootfs.

use core::ffi::CStr;
use libc::c_int;

use super::super::sys::{self, OpenHow, SysResult};
use super::{Executor, Fd, AT_FDCWD, PATH_CLOEXEC};
use crate::plan::{Create, InRoot};

/// Whether `path` resolves without a magic link, as far as root can look
/// (`openat2(RESOLVE_NO_MAGICLINKS)`; false where that is not possible).
pub(super) fn no_magic_links(path: &CStr) -> bool {
    let how = OpenHow {
        flags: PATH_CLOEXEC as u64,
        mode: 0,
        resolve: sys::RESOLVE_NO_MAGICLINKS,
    };
    match sys::openat2(AT_FDCWD, path, &how) {
        Ok(fd) => {
            let _ = sys::close(fd);
            true
        }
        Err(_) => false,
    }
}

impl Executor<'_> {
    /// Opens `target` inside the rootfs as an `O_PATH` descriptor, creating
    /// missing components (directories, or a file for the last one when
    /// `create` says so). Resolution is confined to the rootfs: symlinks are
    /// followed as the container would see them, never to the host.
    pub(super) fn resolve(&mut self, target: &InRoot, create: Create) -> SysResult<c_int> {
        let fd = self.open_prefixes(target, target.prefixes.len(), create)?;
        let raw = fd.0;
        core::mem::forget(fd);
        Ok(raw)
    }

    /// The directory that will hold `target`'s last component.
    pub(super) fn resolve_parent(&mut self, target: &InRoot) -> SysResult<Fd> {
        match target.prefixes.len().checked_sub(1) {
            Some(0) => sys::fcntl(self.rootfd, libc::F_DUPFD_CLOEXEC, 3).map(|fd| Fd(fd as c_int)),
            Some(n) => self.open_prefixes(target, n, Create::Dir),
            None => Err(libc::EINVAL),
        }
    }

    /// Opens the first `count` components of `target`, creating each that is
    /// missing inside the one before it.
    ///
    /// The deepest prefix that exists is found first, from the whole path
    /// up: most targets exist (a rootfs has its /proc, /dev and /sys), or
    /// lack only their last component (`/sys/fs/cgroup/cpu` in a fresh
    /// tmpfs), so one or two resolutions do where a walk took one per
    /// component.
    fn open_prefixes(&mut self, target: &InRoot, count: usize, create: Create) -> SysResult<Fd> {
        if count > target.prefixes.len() || count > target.names.len() {
            return Err(libc::EINVAL);
        }
        let mut parent = Fd(-1);
        let mut first_missing = 0;
        for (i, prefix) in target.prefixes.iter().take(count).enumerate().rev() {
            match self.open_in_root(prefix.as_c()) {
                Err(libc::ENOENT) => {}
                Err(e) => return Err(e),
                Ok(fd) => {
                    parent = Fd(fd);
                    first_missing = i.saturating_add(1);
                    break;
                }
            }
        }
        let last = count.checked_sub(1);
        let components = target.prefixes.iter().zip(&target.names).take(count);
        for (i, (prefix, name)) in components.enumerate().skip(first_missing) {
            let dir = if i == 0 { self.rootfd } else { parent.0 };
            let name = name.as_c();
            if Some(i) == last && create == Create::File {
                let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
                drop(Fd(sys::openat(dir, name, flags, 0o644)?));
            } else {
                match sys::mkdirat(dir, name, 0o755) {
                    Ok(()) | Err(libc::EEXIST) => {}
                    Err(e) => return Err(e),
                }
            }
            parent = Fd(self.open_in_root(prefix.as_c())?);
        }
        Ok(parent)
    }

    fn open_in_root(&mut self, path: &CStr) -> SysResult<c_int> {
        if self.args.sabotage & super::super::SABOTAGE_RESOLVE != 0 {
            return sys::openat(self.rootfd, path, PATH_CLOEXEC, 0);
        }
        if !self.no_openat2 {
            let how = OpenHow {
                flags: PATH_CLOEXEC as u64,
                mode: 0,
                resolve: sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
            };
            match sys::openat2(self.rootfd, path, &how) {
                Err(libc::ENOSYS) => self.no_openat2 = true,
                r => return r,
            }
        }
        // Before Linux 5.6: walk the components without following any
        // symlink (the plan already refused specs whose destinations need
        // one to resolve), so nothing can lead out of the rootfs.
        self.walk_nofollow(path)
    }

    fn walk_nofollow(&self, path: &CStr) -> SysResult<c_int> {
        let bytes = path.to_bytes();
        let mut dir = Fd(sys::fcntl(self.rootfd, libc::F_DUPFD_CLOEXEC, 3)? as c_int);
        let mut name = [0u8; 256];
        for comp in components(bytes) {
            let c = component_name(comp, &mut name)?;
            let fd = sys::openat(dir.0, c, PATH_CLOEXEC | libc::O_NOFOLLOW, 0)?;
            dir = Fd(fd);
        }
        let fd = dir.0;
        core::mem::forget(dir);
        Ok(fd)
    }
}

pub(super) fn last(target: &InRoot) -> &CStr {
    // A compiled target always has a name; the empty one fails its call.
    target.names.last().map_or(c"", |n| n.as_c())
}

/// The components of a path, without the empty ones of `/` runs.
fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty())
}

/// `comp` as a C string in `name` (no allocation): `ENAMETOOLONG` for a
/// component that leaves no room for its NUL.
fn component_name<'n>(comp: &[u8], name: &'n mut [u8; 256]) -> SysResult<&'n CStr> {
    // Room for the component and its NUL.
    if comp.len() >= name.len() {
        return Err(libc::ENAMETOOLONG);
    }
    *name = [0; 256];
    for (dst, &src) in name.iter_mut().zip(comp) {
        *dst = src;
    }
    CStr::from_bytes_until_nul(name).map_err(|_| libc::ENAMETOOLONG)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_their_named_components() {
        let all = |p: &[u8]| components(p).map(<[u8]>::to_vec).collect::<Vec<_>>();
        assert_eq!(all(b"/a//bc/"), [b"a".to_vec(), b"bc".to_vec()]);
        assert_eq!(all(b"dev/pts"), [b"dev".to_vec(), b"pts".to_vec()]);
        assert!(all(b"").is_empty());
        assert!(all(b"///").is_empty());
        // `..` is a name like any other here: the walk opens it without
        // following symlinks, and the plan refused destinations with it.
        assert_eq!(all(b"/..").len(), 1);
    }

    #[test]
    fn a_component_must_leave_room_for_its_nul() {
        let mut name = [0xffu8; 256];
        assert_eq!(component_name(b"proc", &mut name), Ok(c"proc"));
        // The rest of the buffer is cleared of the last, longer name.
        assert_eq!(
            component_name(&[b'x'; 255], &mut name)
                .map(CStr::to_bytes)
                .map(<[u8]>::len),
            Ok(255)
        );
        assert_eq!(component_name(b"a", &mut name), Ok(c"a"));
        assert_eq!(name[1..].iter().filter(|&&b| b != 0).count(), 0);
        assert_eq!(
            component_name(&[b'x'; 256], &mut name),
            Err(libc::ENAMETOOLONG)
        );
        assert_eq!(component_name(b"", &mut name), Ok(c""));
    }
}
