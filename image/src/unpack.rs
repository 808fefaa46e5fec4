//! Streaming layer unpack into a directory, in overlayfs form.
//!
//! The layer (tar, gzip or zstd, told apart by magic bytes) is read once,
//! entry by entry; nothing larger than a copy buffer is held in memory.
//! The uncompressed stream is hashed on the way and must match the
//! config's diff-id.
//!
//! Every path is resolved from the layer directory one component at a
//! time with `O_NOFOLLOW|O_DIRECTORY`, so no entry can write through a
//! symlink; absolute paths and `..` are refused before any lookup, as are
//! hardlinks whose target is absolute or climbs out, and whiteouts of `.`
//! or `..`. Whiteouts become overlayfs whiteouts: `.wh.NAME` a 0:0
//! character device `NAME`, `.wh..wh..opq` the `trusted.overlay.opaque=y`
//! xattr on its directory (`user.overlay.opaque=y` for an overlay mounted
//! with `userxattr` in a user namespace, see [`OverlayXattrs`]).
//! `trusted.overlay.*` and `user.overlay.*` xattrs in the layer itself are
//! dropped, so a layer cannot forge overlay metadata.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use super::digest::HashReader;
use crate::error::{Error, Result};

/// Why an entry failed.
enum Fail {
    Unsafe(String),
    Io(&'static str, io::Error),
}

impl From<Errno> for Fail {
    fn from(e: Errno) -> Self {
        Fail::Io("unpack entry", e.into())
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail::Io("unpack entry", e)
    }
}

fn unsafe_(reason: impl Into<String>) -> Fail {
    Fail::Unsafe(reason.into())
}

/// Which xattrs the overlay that will use a layer reads its metadata from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverlayXattrs {
    /// `trusted.overlay.*`: an overlay mounted by the host's root.
    #[default]
    Trusted,
    /// `user.overlay.*`: an overlay mounted with `userxattr` in a user
    /// namespace (a rootless container's), where `trusted.*` cannot be set.
    User,
}

impl OverlayXattrs {
    fn opaque(self) -> &'static str {
        match self {
            OverlayXattrs::Trusted => "trusted.overlay.opaque",
            OverlayXattrs::User => "user.overlay.opaque",
        }
    }
}

/// Unpacks the layer blob at `blob` into `dest` (which must exist and be
/// empty), checking that the uncompressed stream hashes to `diff_id`.
/// On error, `dest` may hold part of the layer: the caller removes it.
pub fn unpack(blob: &Path, layer: &Digest, diff_id: &Digest, dest: &Path) -> Result<()> {
    unpack_with(blob, layer, diff_id, dest, OverlayXattrs::Trusted)
}

/// [`unpack`], with opaque directories marked for an overlay that reads
/// `xattrs`.
pub fn unpack_with(
    blob: &Path,
    layer: &Digest,
    diff_id: &Digest,
    dest: &Path,
    xattrs: OverlayXattrs,
) -> Result<()> {
    let file = File::open(blob).map_err(|e| Error::io("open layer blob", blob, e))?;
    let mut buffered = BufReader::with_capacity(1 << 20, file);
    let head = buffered
        .fill_buf()
        .map_err(|e| Error::io("read layer blob", blob, e))?;
    let stream: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered)
                .map_err(|e| Error::io("open zstd layer", blob, e))?,
        )
    } else {
        Box::new(buffered)
    };
    let mut hashed = HashReader::new(stream);
    let root: OwnedFd = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open layer directory", dest, e.into()))?;
    let mut unpacker = Unpacker {
        root,
        cached: None,
        buf: vec![0; 1 << 17],
        xattrs,
    };
    {
        let mut archive = tar::Archive::new(&mut hashed);
        let entries = archive
            .entries()
            .map_err(|e| Error::io("read layer", blob, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Error::io("read layer entry", blob, e))?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            unpacker.entry(&mut entry).map_err(|f| match f {
                Fail::Unsafe(reason) => Error::UnsafeLayer {
                    layer: layer.to_string(),
                    entry: name.clone(),
                    reason,
                },
                Fail::Io(op, e) => Error::io(op, dest.join(&name), e),
            })?;
        }
    }
    let (actual, _) = hashed
        .finish()
        .map_err(|e| Error::io("read layer", blob, e))?;
    if actual != *diff_id {
        return Err(Error::DigestMismatch {
            what: "layer diff-id",
            expected: diff_id.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// Splits a tar path into its components, refusing absolute paths and
/// `..`. `.` and empty components are dropped.
pub(crate) fn components(path: &[u8]) -> std::result::Result<Vec<&[u8]>, String> {
    if path.first() == Some(&b'/') {
        return Err("absolute path".into());
    }
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path contains ..".into()),
            c if c.contains(&0) => return Err("path contains NUL".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

struct Unpacker {
    root: OwnedFd,
    /// The last parent directory opened, by its components.
    cached: Option<(Vec<Vec<u8>>, OwnedFd)>,
    buf: Vec<u8>,
    xattrs: OverlayXattrs,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Unpacker {
    /// Opens the directory `parent` below the root, creating missing
    /// directories when `create`; a symlink or non-directory on the way
    /// is refused.
    fn dir(&mut self, parent: &[&[u8]], create: bool) -> std::result::Result<OwnedFd, Fail> {
        if let Some((p, fd)) = &self.cached {
            if p.len() == parent.len() && p.iter().zip(parent).all(|(a, b)| a == b) {
                return Ok(fd.try_clone()?);
            }
        }
        let mut fd = self.root.try_clone()?;
        for c in parent {
            fd = match rustix::fs::openat(&fd, *c, DIR_FLAGS, Mode::empty()) {
                Ok(f) => f,
                Err(Errno::NOENT) if create => {
                    rustix::fs::mkdirat(&fd, *c, Mode::from_raw_mode(0o755))?;
                    rustix::fs::openat(&fd, *c, DIR_FLAGS, Mode::empty())?
                }
                Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                    return Err(unsafe_(format!(
                        "parent {:?} is a symlink or not a directory",
                        String::from_utf8_lossy(c)
                    )))
                }
                Err(e) => return Err(e.into()),
            };
        }
        self.cached = Some((parent.iter().map(|c| c.to_vec()).collect(), fd.try_clone()?));
        Ok(fd)
    }

    /// Removes whatever is at `name` in `dir` (a directory with its
    /// contents), so a new entry can take its place.
    fn clear(&mut self, dir: &OwnedFd, name: &[u8]) -> std::result::Result<(), Fail> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                self.cached = None;
                // std's remove_dir_all walks fd-relative without following
                // symlinks; the magic link only names `dir` itself.
                let path = PathBuf::from(format!(
                    "/proc/self/fd/{}/{}",
                    std::os::fd::AsRawFd::as_raw_fd(dir),
                    String::from_utf8_lossy(name)
                ));
                std::fs::remove_dir_all(path)?;
                Ok(())
            }
            Ok(_) => Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?),
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> std::result::Result<(), Fail> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let path_bytes: Vec<u8> = entry.path_bytes().into_owned();
        let comps = components(&path_bytes).map_err(unsafe_)?;
        let Some((name, parent)) = comps.split_last() else {
            // The layer root itself ("./"): its metadata is the image's
            // business only for the bottom layer; keep the directory as is.
            return Ok(());
        };
        let meta = Meta::of(entry)?;

        if let Some(target) = name.strip_prefix(b".wh.") {
            let dir = self.dir(parent, true)?;
            if target == b".wh..opq" {
                rustix::fs::fsetxattr(&dir, self.xattrs.opaque(), b"y", XattrFlags::empty())?;
                return Ok(());
            }
            if target.starts_with(b".wh.") {
                // Other AUFS metadata (.wh..wh.plnk, ...): not content.
                return Ok(());
            }
            if target.is_empty() || target == b"." || target == b".." {
                return Err(unsafe_("whiteout of . or .."));
            }
            self.clear(&dir, target)?;
            rustix::fs::mknodat(
                &dir,
                target,
                FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            )?;
            return Ok(());
        }

        let dir = self.dir(parent, true)?;
        match kind {
            EntryType::Directory => {
                match rustix::fs::mkdirat(&dir, *name, Mode::from_raw_mode(0o755)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        let st = rustix::fs::statat(&dir, *name, AtFlags::SYMLINK_NOFOLLOW)?;
                        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                            self.clear(&dir, name)?;
                            rustix::fs::mkdirat(&dir, *name, Mode::from_raw_mode(0o755))?;
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
                let fd = rustix::fs::openat(&dir, *name, DIR_FLAGS, Mode::empty())?;
                meta.apply_fd(&fd, false)?;
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.clear(&dir, name)?;
                let fd = rustix::fs::openat(
                    &dir,
                    *name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                let mut file = File::from(fd);
                copy(entry, &mut file, &mut self.buf)?;
                meta.apply_fd(&file.as_fd(), true)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_("symlink without a target"))?
                    .into_owned();
                self.clear(&dir, name)?;
                rustix::fs::symlinkat(target.as_slice(), &dir, *name)?;
                meta.apply_at(&dir, name)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| unsafe_("hardlink without a target"))?
                    .into_owned();
                let tcomps =
                    components(&target).map_err(|r| unsafe_(format!("hardlink target: {r}")))?;
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(unsafe_("hardlink to the layer root"));
                };
                let tdir = self.dir(tparent, false).map_err(|f| match f {
                    Fail::Io(_, e) if e.kind() == io::ErrorKind::NotFound => {
                        unsafe_("hardlink target is not in this layer")
                    }
                    f => f,
                })?;
                match rustix::fs::statat(&tdir, *tname, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                        return Err(unsafe_("hardlink to a directory"))
                    }
                    Ok(_) => {}
                    Err(Errno::NOENT) => {
                        return Err(unsafe_("hardlink target is not in this layer"))
                    }
                    Err(e) => return Err(e.into()),
                }
                if tcomps == comps {
                    return Ok(());
                }
                self.clear(&dir, name)?;
                // Without AT_SYMLINK_FOLLOW: a symlink target is linked as
                // the symlink itself, never followed.
                rustix::fs::linkat(&tdir, *tname, &dir, *name, AtFlags::empty())?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let ft = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                self.clear(&dir, name)?;
                rustix::fs::mknodat(
                    &dir,
                    *name,
                    ft,
                    Mode::empty(),
                    rustix::fs::makedev(major, minor),
                )?;
                meta.apply_at(&dir, name)?;
                rustix::fs::chmodat(
                    &dir,
                    *name,
                    Mode::from_raw_mode(meta.mode),
                    AtFlags::empty(),
                )?;
            }
            other => return Err(unsafe_(format!("unsupported entry type {other:?}"))),
        }
        Ok(())
    }
}

fn copy<R: Read>(r: &mut R, w: &mut File, buf: &mut [u8]) -> io::Result<()> {
    use io::Write;
    loop {
        match r.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => w.write_all(&buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Ownership, mode, times and xattrs of an entry.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    fn of<R: Read>(entry: &mut tar::Entry<'_, R>) -> std::result::Result<Meta, Fail> {
        let h = entry.header();
        let mut m = Meta {
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
            mode: h.mode().unwrap_or(0o644) & 0o7777,
            mtime: h.mtime().unwrap_or(0) as i64,
            xattrs: Vec::new(),
        };
        if let Some(pax) = entry.pax_extensions()? {
            for ext in pax.flatten() {
                let Ok(key) = ext.key() else { continue };
                let num = || {
                    ext.value()
                        .ok()
                        .and_then(|v| v.split('.').next()?.parse::<i64>().ok())
                };
                match key {
                    "uid" => m.uid = num().unwrap_or(m.uid as i64) as u32,
                    "gid" => m.gid = num().unwrap_or(m.gid as i64) as u32,
                    "mtime" => m.mtime = num().unwrap_or(m.mtime),
                    k => {
                        if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                            if !name.starts_with("trusted.overlay.")
                                && !name.starts_with("user.overlay.")
                            {
                                m.xattrs
                                    .push((name.to_string(), ext.value_bytes().to_vec()));
                            }
                        }
                    }
                }
            }
        }
        Ok(m)
    }

    fn apply_fd(&self, fd: &impl AsFd, times: bool) -> std::result::Result<(), Fail> {
        rustix::fs::fchown(fd, Some(uid(self.uid)), Some(gid(self.gid)))?;
        // After chown, which clears set-id bits.
        rustix::fs::fchmod(fd, Mode::from_raw_mode(self.mode))?;
        for (k, v) in &self.xattrs {
            rustix::fs::fsetxattr(fd, k.as_str(), v, XattrFlags::empty())?;
        }
        if times {
            rustix::fs::futimens(fd, &self.times())?;
        }
        Ok(())
    }

    fn apply_at(&self, dir: &OwnedFd, name: &[u8]) -> std::result::Result<(), Fail> {
        rustix::fs::chownat(
            dir,
            name,
            Some(uid(self.uid)),
            Some(gid(self.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        rustix::fs::utimensat(dir, name, &self.times(), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }

    fn times(&self) -> Timestamps {
        let t = rustix::fs::Timespec {
            tv_sec: self.mtime,
            tv_nsec: 0,
        };
        Timestamps {
            last_access: t,
            last_modification: t,
        }
    }
}

fn uid(u: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(u)
}

fn gid(g: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(g)
}

#[cfg(test)]
mod tests {
    use super::components;

    #[test]
    fn components_refuse_escapes() {
        assert_eq!(
            components(b"./a//b/./c").unwrap(),
            vec![&b"a"[..], b"b", b"c"]
        );
        assert!(components(b"./").unwrap().is_empty());
        assert!(components(b"/etc/passwd").is_err());
        assert!(components(b"a/../../x").is_err());
        assert!(components(b"..").is_err());
    }
}
