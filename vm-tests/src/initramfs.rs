//! Initramfs images: a pure-Rust writer (and reader) of `newc` cpio archives.
//!
//! The kernel unpacks every archive it finds in the initrd, one after another:
//! uncompressed ones, compressed ones (gzip, xz, zstd... whatever it was built
//! with), separated by zero padding, as long as each uncompressed archive starts
//! on a 4-byte boundary. Later entries replace earlier ones. So a run's image is
//! a cached *base* (busybox, libraries, modules; gzip-compressed once) followed by
//! a small uncompressed per-run archive (the test binaries and `/init`), joined
//! by [`concat()`] without recompressing the base.
//!
//! ```no_run
//! use berth_vm_tests::initramfs::{Attr, CpioWriter};
//! # fn main() -> std::io::Result<()> {
//! let file = std::fs::File::create("run.cpio")?;
//! let mut cpio = CpioWriter::new(std::io::BufWriter::new(file));
//! cpio.file("init", Attr::mode(0o755), b"#!/bin/sh\necho hi\n")?;
//! cpio.symlink("bin/sh", "busybox")?;
//! cpio.char_device("dev/console", Attr::mode(0o600), 5, 1)?;
//! cpio.finish()?;
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFIFO: u32 = 0o010_000;
const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &str = "TRAILER!!!";

/// Permission bits, owner and mtime of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Permission bits including setuid/setgid/sticky (`0o7777`); the file type is
    /// added by the writer.
    pub perm: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Modification time (seconds since the epoch); 0 keeps images reproducible.
    pub mtime: u32,
}

impl Attr {
    /// `perm`, owned by root, mtime 0.
    pub fn mode(perm: u32) -> Self {
        Attr {
            perm: perm & 0o7777,
            uid: 0,
            gid: 0,
            mtime: 0,
        }
    }

    /// The same with owner `uid:gid`.
    pub fn owner(self, uid: u32, gid: u32) -> Self {
        Attr { uid, gid, ..self }
    }
}

/// Writes a `newc` (`070701`) cpio archive.
///
/// Paths are stored relative (`/init` and `./init` become `init`). Missing parent
/// directories are added automatically (mode 0755, root) the first time a path
/// below them is written, since the kernel does not create them. Every entry has
/// its own inode number and `nlink` 1 (no hard links). [`finish`](Self::finish)
/// writes the trailer; the archive's length is a multiple of 4.
#[derive(Debug)]
pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
    dirs: BTreeSet<String>,
}

impl<W: Write> CpioWriter<W> {
    /// A writer to `out` (wrap it in a `BufWriter` or a `flate2::write::GzEncoder`).
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            written: 0,
            next_ino: 1,
            dirs: BTreeSet::new(),
        }
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.written
    }

    /// A directory (its parents are added as needed).
    pub fn dir(&mut self, path: &str, attr: Attr) -> io::Result<()> {
        let path = clean(path)?;
        self.parents(&path)?;
        self.dirs.insert(path.clone());
        self.header(&path, S_IFDIR | attr.perm, attr, 0, (0, 0))?;
        Ok(())
    }

    /// A directory and all its parents, each 0755 root, skipping those already written.
    pub fn dir_all(&mut self, path: &str) -> io::Result<()> {
        let path = clean(path)?;
        self.parents(&format!("{path}/x"))
    }

    /// A regular file with `data`.
    pub fn file(&mut self, path: &str, attr: Attr, data: &[u8]) -> io::Result<()> {
        let path = clean(path)?;
        self.parents(&path)?;
        self.header(&path, S_IFREG | attr.perm, attr, data.len() as u64, (0, 0))?;
        self.data(data)
    }

    /// A regular file whose contents are read from `reader`, which must yield
    /// exactly `len` bytes (e.g. a host file of known size).
    pub fn file_from_reader(
        &mut self,
        path: &str,
        attr: Attr,
        len: u64,
        reader: &mut dyn Read,
    ) -> io::Result<()> {
        let path = clean(path)?;
        self.parents(&path)?;
        self.header(&path, S_IFREG | attr.perm, attr, len, (0, 0))?;
        let copied = io::copy(&mut reader.take(len), &mut self.out)?;
        if copied != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{path}: expected {len} bytes, got {copied}"),
            ));
        }
        self.written += copied;
        self.pad()
    }

    /// A copy of the host file `host` (its contents, not its mode or owner).
    pub fn host_file(&mut self, path: &str, attr: Attr, host: &Path) -> io::Result<()> {
        let mut f = fs::File::open(host)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", host.display())))?;
        let len = f.metadata()?.len();
        self.file_from_reader(path, attr, len, &mut f)
    }

    /// A copy of the host directory tree `host` at `path`: directories, regular
    /// files and symlinks with their permission bits and owners (other file
    /// types are skipped). Hard links become separate files.
    pub fn host_tree(&mut self, path: &str, host: &Path) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::symlink_metadata(host)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", host.display())))?;
        let attr = Attr::mode(meta.mode()).owner(meta.uid(), meta.gid());
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(host)?;
            return self.symlink(path, &target.to_string_lossy());
        }
        if ft.is_file() {
            return self.host_file(path, attr, host);
        }
        if !ft.is_dir() {
            return Ok(());
        }
        self.dir(path, attr)?;
        let mut names: Vec<_> = fs::read_dir(host)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for name in names {
            let child = format!("{path}/{}", name.to_string_lossy());
            self.host_tree(&child, &host.join(&name))?;
        }
        Ok(())
    }

    /// A symbolic link to `target` (mode 0777, root).
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let path = clean(path)?;
        self.parents(&path)?;
        let attr = Attr::mode(0o777);
        self.header(&path, S_IFLNK | 0o777, attr, target.len() as u64, (0, 0))?;
        self.data(target.as_bytes())
    }

    /// A character device `major:minor`.
    pub fn char_device(
        &mut self,
        path: &str,
        attr: Attr,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        self.special(path, S_IFCHR | attr.perm, attr, (major, minor))
    }

    /// A block device `major:minor`.
    pub fn block_device(
        &mut self,
        path: &str,
        attr: Attr,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        self.special(path, S_IFBLK | attr.perm, attr, (major, minor))
    }

    /// A named pipe.
    pub fn fifo(&mut self, path: &str, attr: Attr) -> io::Result<()> {
        self.special(path, S_IFIFO | attr.perm, attr, (0, 0))
    }

    /// Writes the trailer and returns the inner writer (call `finish` on a
    /// compressor yourself).
    pub fn finish(mut self) -> io::Result<W> {
        self.header(TRAILER, 0, Attr::mode(0), 0, (0, 0))?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn special(&mut self, path: &str, mode: u32, attr: Attr, rdev: (u32, u32)) -> io::Result<()> {
        let path = clean(path)?;
        self.parents(&path)?;
        self.header(&path, mode, attr, 0, rdev)
    }

    fn parents(&mut self, path: &str) -> io::Result<()> {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let dir = &path[..end + i];
            end += i + 1;
            if self.dirs.insert(dir.to_string()) {
                self.header(dir, S_IFDIR | 0o755, Attr::mode(0o755), 0, (0, 0))?;
            }
        }
        Ok(())
    }

    fn header(
        &mut self,
        name: &str,
        mode: u32,
        attr: Attr,
        size: u64,
        rdev: (u32, u32),
    ) -> io::Result<()> {
        let size = u32::try_from(size).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: over 4 GiB"))
        })?;
        let ino = if name == TRAILER { 0 } else { self.next_ino };
        self.next_ino += 1;
        let nlink = if name == TRAILER {
            1
        } else if mode & S_IFMT == S_IFDIR {
            2
        } else {
            1
        };
        let fields = [
            ino,
            mode,
            attr.uid,
            attr.gid,
            nlink,
            attr.mtime,
            size,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        let mut h = Vec::with_capacity(110 + name.len() + 4);
        h.extend_from_slice(MAGIC);
        for f in fields {
            h.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        h.extend_from_slice(name.as_bytes());
        h.push(0);
        self.data(&h)
    }

    /// Writes `bytes` then zero padding to a multiple of 4.
    fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        self.pad()
    }

    fn pad(&mut self) -> io::Result<()> {
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.out.write_all(&[0u8; 3][..pad])?;
        self.written += pad as u64;
        Ok(())
    }
}

/// `path` without leading `/` and `./`, without empty or `.` components; `..` is refused.
fn clean(path: &str) -> io::Result<String> {
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{path}: `..` in an archive path"),
                ))
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty archive path",
        ));
    }
    Ok(parts.join("/"))
}

/// Joins initramfs images into `out`: the bytes of each input, each padded with
/// zeros to a multiple of 4 so that the next archive starts aligned, as the
/// kernel requires. Use it to put a per-run cpio after a cached (compressed) base.
pub fn concat(inputs: &[&Path], out: &Path) -> Result<()> {
    let mut w = io::BufWriter::new(fs::File::create(out).map_err(|e| Error::io("create", out, e))?);
    for input in inputs {
        let mut f = fs::File::open(input).map_err(|e| Error::io("open", input, e))?;
        let n = io::copy(&mut f, &mut w).map_err(|e| Error::io("copy", input, e))?;
        let pad = (4 - (n % 4) as usize) % 4;
        w.write_all(&[0u8; 3][..pad])
            .map_err(|e| Error::io("write", out, e))?;
    }
    w.flush().map_err(|e| Error::io("write", out, e))
}

/// An entry read back by [`read_archives`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpioEntry {
    /// The stored path.
    pub name: String,
    /// Full mode: file type and permission bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// mtime.
    pub mtime: u32,
    /// Device major and minor for device nodes.
    pub rdev: (u32, u32),
    /// File contents, or the target of a symlink.
    pub data: Vec<u8>,
}

/// The type of a [`CpioEntry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// Anything else (sockets).
    Other,
}

impl CpioEntry {
    /// The entry's type from its mode.
    pub fn kind(&self) -> EntryKind {
        match self.mode & S_IFMT {
            S_IFDIR => EntryKind::Dir,
            S_IFREG => EntryKind::File,
            S_IFLNK => EntryKind::Symlink,
            S_IFCHR => EntryKind::CharDevice,
            S_IFBLK => EntryKind::BlockDevice,
            S_IFIFO => EntryKind::Fifo,
            _ => EntryKind::Other,
        }
    }

    /// The permission bits.
    pub fn perm(&self) -> u32 {
        self.mode & 0o7777
    }
}

/// Reads every entry of an initramfs image the way the kernel does: a sequence
/// of newc archives, gzip-compressed or not, separated by zero padding. Trailers
/// are not returned; later entries with the same name are returned too (the
/// kernel would let them replace the earlier ones).
pub fn read_archives(mut buf: &[u8]) -> Result<Vec<CpioEntry>> {
    let mut entries = Vec::new();
    let bad = |d: String| Error::format("cpio archive", d);
    while !buf.is_empty() {
        if buf[0] == 0 {
            buf = &buf[1..];
            continue;
        }
        if buf.starts_with(&[0x1f, 0x8b]) {
            let mut dec = flate2::bufread::GzDecoder::new(buf);
            let mut plain = Vec::new();
            dec.read_to_end(&mut plain)
                .map_err(|e| bad(format!("gzip: {e}")))?;
            let rest = dec.into_inner();
            entries.extend(read_archives(&plain)?);
            buf = rest;
            continue;
        }
        let (mut archive, rest) = read_one(buf)?;
        entries.append(&mut archive);
        buf = rest;
    }
    Ok(entries)
}

/// Reads one uncompressed archive up to and including its trailer.
fn read_one(mut buf: &[u8]) -> Result<(Vec<CpioEntry>, &[u8])> {
    let bad = |d: String| Error::format("cpio archive", d);
    let start = buf.len();
    let mut out = Vec::new();
    loop {
        let off = start - buf.len();
        if buf.len() < 110 {
            return Err(bad(format!("truncated header at offset {off}")));
        }
        if &buf[..6] != MAGIC {
            return Err(bad(format!(
                "bad magic {:?} at offset {off}",
                String::from_utf8_lossy(&buf[..6])
            )));
        }
        let mut f = [0u32; 13];
        for (i, v) in f.iter_mut().enumerate() {
            let s = std::str::from_utf8(&buf[6 + 8 * i..14 + 8 * i])
                .map_err(|_| bad(format!("non-ASCII header at offset {off}")))?;
            *v = u32::from_str_radix(s, 16)
                .map_err(|_| bad(format!("bad hex {s:?} at offset {off}")))?;
        }
        let [_ino, mode, uid, gid, nlink, mtime, size, _dmaj, _dmin, rmaj, rmin, namesize, _check] =
            f;
        let name_end = 110 + namesize as usize;
        let data_start = align4(name_end);
        let data_end = data_start + size as usize;
        if buf.len() < data_end || namesize == 0 {
            return Err(bad(format!("entry at offset {off} runs past the end")));
        }
        let name = String::from_utf8_lossy(&buf[110..name_end - 1]).into_owned();
        let data = buf[data_start..data_end].to_vec();
        buf = &buf[align4(data_end).min(buf.len())..];
        if name == TRAILER {
            return Ok((out, buf));
        }
        out.push(CpioEntry {
            name,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            rdev: (rmaj, rmin),
            data,
        });
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn sample() -> Vec<u8> {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("/bin", Attr::mode(0o755)).unwrap();
        w.file("bin/busybox", Attr::mode(0o4755), b"\x7fELF fake busybox")
            .unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        w.file(
            "./etc/passwd",
            Attr::mode(0o644).owner(0, 0),
            b"root:x:0:0::/:/bin/sh\n",
        )
        .unwrap();
        w.file(
            "home/user/.profile",
            Attr::mode(0o600).owner(1000, 100),
            b"",
        )
        .unwrap();
        w.char_device("dev/console", Attr::mode(0o600), 5, 1)
            .unwrap();
        w.block_device("dev/vda", Attr::mode(0o660).owner(0, 6), 254, 0)
            .unwrap();
        w.fifo("run/fifo", Attr::mode(0o644)).unwrap();
        w.dir_all("sys/fs/cgroup").unwrap();
        w.file("init", Attr::mode(0o755), b"#!/bin/sh\nexec sh\n")
            .unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn round_trip_through_own_reader() {
        let bytes = sample();
        assert_eq!(bytes.len() % 4, 0);
        let entries = read_archives(&bytes).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/busybox",
                "bin/sh",
                "etc",
                "etc/passwd",
                "home",
                "home/user",
                "home/user/.profile",
                "dev",
                "dev/console",
                "dev/vda",
                "run",
                "run/fifo",
                "sys",
                "sys/fs",
                "sys/fs/cgroup",
                "init"
            ]
        );
        let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
        assert_eq!(get("bin/busybox").perm(), 0o4755);
        assert_eq!(get("bin/busybox").kind(), EntryKind::File);
        assert_eq!(get("bin/sh").kind(), EntryKind::Symlink);
        assert_eq!(get("bin/sh").data, b"busybox");
        assert_eq!(get("home/user/.profile").uid, 1000);
        assert_eq!(get("home/user/.profile").gid, 100);
        assert_eq!(get("dev/console").kind(), EntryKind::CharDevice);
        assert_eq!(get("dev/console").rdev, (5, 1));
        assert_eq!(get("dev/vda").kind(), EntryKind::BlockDevice);
        assert_eq!(get("dev/vda").rdev, (254, 0));
        assert_eq!(get("run/fifo").kind(), EntryKind::Fifo);
        assert_eq!(get("sys/fs/cgroup").kind(), EntryKind::Dir);
        assert_eq!(get("init").data, b"#!/bin/sh\nexec sh\n");
    }

    #[test]
    fn inode_numbers_are_unique() {
        let bytes = sample();
        let mut inos = BTreeSet::new();
        let mut buf = &bytes[..];
        while buf.len() >= 110 && &buf[..6] == MAGIC {
            let ino = u32::from_str_radix(std::str::from_utf8(&buf[6..14]).unwrap(), 16).unwrap();
            let size = u32::from_str_radix(std::str::from_utf8(&buf[54..62]).unwrap(), 16).unwrap()
                as usize;
            let namesize = u32::from_str_radix(std::str::from_utf8(&buf[94..102]).unwrap(), 16)
                .unwrap() as usize;
            let name = &buf[110..110 + namesize - 1];
            if name != TRAILER.as_bytes() {
                assert!(inos.insert(ino), "duplicate inode {ino}");
            }
            buf = &buf[align4(align4(110 + namesize) + size)..];
        }
        assert_eq!(inos.len(), 17);
    }

    #[test]
    fn bad_paths_are_refused() {
        let mut w = CpioWriter::new(Vec::new());
        assert!(w.file("../etc/passwd", Attr::mode(0o644), b"").is_err());
        assert!(w.file("/", Attr::mode(0o644), b"").is_err());
        let mut short = &b"abc"[..];
        assert!(w
            .file_from_reader("x", Attr::mode(0o644), 10, &mut short)
            .is_err());
    }

    #[test]
    fn corrupt_archives_are_errors() {
        let bytes = sample();
        assert!(read_archives(&bytes[..bytes.len() - 200]).is_err());
        let mut bad = bytes.clone();
        bad[3] = b'9';
        assert!(read_archives(&bad).is_err());
    }

    #[test]
    fn gzip_base_plus_plain_run_archive() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base.cpio.gz");
        let gz = flate2::write::GzEncoder::new(
            fs::File::create(&base).unwrap(),
            flate2::Compression::default(),
        );
        let mut w = CpioWriter::new(gz);
        w.file("bin/busybox", Attr::mode(0o755), &[7u8; 1001])
            .unwrap();
        w.file("init", Attr::mode(0o755), b"old init").unwrap();
        w.finish().unwrap().finish().unwrap();

        let run = tmp.path().join("run.cpio");
        let mut w = CpioWriter::new(fs::File::create(&run).unwrap());
        w.host_file("init", Attr::mode(0o755), &tmp.path().join("base.cpio.gz"))
            .unwrap();
        w.file("init", Attr::mode(0o755), b"new init").unwrap();
        w.finish().unwrap();

        let out = tmp.path().join("initrd");
        concat(&[&base, &run], &out).unwrap();
        let bytes = fs::read(&out).unwrap();
        let base_len = fs::metadata(&base).unwrap().len() as usize;
        assert_eq!(
            bytes.len(),
            align4(base_len) + fs::metadata(&run).unwrap().len() as usize
        );
        let entries = read_archives(&bytes).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["bin", "bin/busybox", "init", "init", "init"]);
        assert_eq!(entries[1].data, vec![7u8; 1001]);
        assert_eq!(entries.last().unwrap().data, b"new init");
    }

    /// `cpio -t` (GNU cpio) agrees with what we wrote, when installed.
    #[test]
    fn gnu_cpio_lists_and_extracts_it() {
        if Command::new("cpio").arg("--version").output().is_err() {
            println!("skipped: `cpio` is not installed (apt-get install cpio)");
            return;
        }
        let bytes = sample();
        let mut child = Command::new("cpio")
            .args(["-t", "-v", "--quiet", "--numeric-uid-gid"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 17, "{listing}");
        let line = |name: &str| {
            *lines
                .iter()
                .find(|l| l.ends_with(&format!(" {name}")) || l.contains(&format!(" {name} -> ")))
                .unwrap_or_else(|| panic!("{name} in {listing}"))
        };
        assert!(line("bin/busybox").starts_with("-rwsr-xr-x"), "{listing}");
        assert!(line("bin/sh").starts_with("lrwxrwxrwx") && line("bin/sh").ends_with("-> busybox"));
        assert!(line("dev/console").starts_with("crw-------"));
        assert!(line("dev/console").contains("5,"), "{listing}");
        assert!(line("dev/vda").starts_with("brw-rw----"));
        assert!(line("run/fifo").starts_with("prw-r--r--"));
        assert!(line("home/user/.profile").contains(" 1000 "), "{listing}");
        assert!(line("sys/fs/cgroup").starts_with("drwxr-xr-x"));

        // Extract the regular files and compare contents.
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new("cpio")
            .args([
                "-i",
                "-d",
                "--quiet",
                "--no-absolute-filenames",
                "--nonmatching",
                "dev/*",
                "run/fifo",
            ])
            .current_dir(tmp.path())
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            fs::read(tmp.path().join("init")).unwrap(),
            b"#!/bin/sh\nexec sh\n"
        );
        assert_eq!(
            fs::read_link(tmp.path().join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
    }
}
