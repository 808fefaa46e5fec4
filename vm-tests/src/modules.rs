//! Kernel modules for the guest: the `insmod` order of a set of modules, from
//! each module's `.modinfo` `depends=` and the kernel's `modules.builtin`.
//!
//! Debian's kernel packages carry no `modules.dep` (their postinst runs
//! `depmod`), and the guest's busybox has no modprobe database either, so the
//! host resolves the order: [`ModuleTree::resolve`] reads the `.modinfo` ELF
//! section of each module (decompressing `.ko.xz`, `.ko.zst` and `.ko.gz`), skips
//! modules that are built in, and returns dependencies before dependents.
//! [`ModuleTree::read`] gives the plain ELF bytes to put into the initramfs, so
//! the guest's `insmod` never needs a decompressor.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::compress::{decompress, Compression};
use crate::error::{Error, Result};

/// A module name in the kernel's canonical form: `-` becomes `_`.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a file name or path: `kernel/net/9p/9pnet_virtio.ko.xz`
/// → `9pnet_virtio`. `None` if it is not a `.ko[.xz|.zst|.gz]`.
pub fn module_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    (!stem.is_empty()).then(|| normalize(stem))
}

// ---------------------------------------------------------------------------
// A small ELF section reader
// ---------------------------------------------------------------------------

/// The contents of the section named `name` of an ELF file (32 or 64 bit, either
/// byte order), or `None` if it has no such section.
pub fn elf_section<'a>(elf: &'a [u8], name: &str) -> Result<Option<&'a [u8]>> {
    let bad = |detail: &str| Error::format("ELF file", detail.to_string());
    if elf.len() < 52 || &elf[..4] != b"\x7fELF" {
        return Err(bad("no ELF magic"));
    }
    let is64 = match elf[4] {
        1 => false,
        2 => true,
        _ => return Err(bad("unknown ELF class")),
    };
    let le = match elf[5] {
        1 => true,
        2 => false,
        _ => return Err(bad("unknown ELF byte order")),
    };
    let get = |off: usize, len: usize| -> Result<u64> {
        let b = elf
            .get(off..off + len)
            .ok_or_else(|| bad("header field past the end of the file"))?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if le { b[len - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Ok(v)
    };
    let to_usize = |v: u64| usize::try_from(v).map_err(|_| bad("offset overflows usize"));
    let (shoff, shentsize, shnum, shstrndx) = if is64 {
        (get(0x28, 8)?, get(0x3a, 2)?, get(0x3c, 2)?, get(0x3e, 2)?)
    } else {
        (get(0x20, 4)?, get(0x2e, 2)?, get(0x30, 2)?, get(0x32, 2)?)
    };
    let (shoff, shentsize, shnum, shstrndx) = (
        to_usize(shoff)?,
        to_usize(shentsize)?,
        to_usize(shnum)?,
        to_usize(shstrndx)?,
    );
    if shnum == 0 {
        return Ok(None);
    }
    if shentsize < if is64 { 64 } else { 40 } || shstrndx >= shnum {
        return Err(bad("bad section header table"));
    }
    // (name offset, file offset, size) of section i.
    let section = |i: usize| -> Result<(usize, usize, usize)> {
        let base = shoff
            .checked_add(i.checked_mul(shentsize).ok_or_else(|| bad("overflow"))?)
            .ok_or_else(|| bad("overflow"))?;
        let (name, off, size) = if is64 {
            (get(base, 4)?, get(base + 24, 8)?, get(base + 32, 8)?)
        } else {
            (get(base, 4)?, get(base + 16, 4)?, get(base + 20, 4)?)
        };
        Ok((to_usize(name)?, to_usize(off)?, to_usize(size)?))
    };
    let data = |off: usize, size: usize| -> Result<&'a [u8]> {
        off.checked_add(size)
            .and_then(|end| elf.get(off..end))
            .ok_or_else(|| bad("section past the end of the file"))
    };
    let (_, stroff, strsize) = section(shstrndx)?;
    let strtab = data(stroff, strsize)?;
    for i in 0..shnum {
        let (name_off, off, size) = section(i)?;
        let Some(rest) = strtab.get(name_off..) else {
            continue;
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        if &rest[..end] == name.as_bytes() {
            return Ok(Some(data(off, size)?));
        }
    }
    Ok(None)
}

/// What a module's `.modinfo` section says about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// `name=`, when present (5.x and later always set it).
    pub name: Option<String>,
    /// `depends=`, split at commas, normalized.
    pub depends: Vec<String>,
    /// `softdep=` lines, unparsed (`pre: crc32c` ...). Not followed by [`ModuleTree::resolve`].
    pub softdeps: Vec<String>,
    /// `vermagic=`.
    pub vermagic: Option<String>,
}

impl ModInfo {
    /// Parses the `key=value\0key=value\0...` contents of a `.modinfo` section.
    pub fn parse(section: &[u8]) -> Self {
        let mut info = ModInfo::default();
        for field in section.split(|&b| b == 0).filter(|f| !f.is_empty()) {
            let field = String::from_utf8_lossy(field);
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            match key {
                "name" => info.name = Some(value.to_string()),
                "depends" => {
                    info.depends = value
                        .split(',')
                        .map(str::trim)
                        .filter(|d| !d.is_empty())
                        .map(normalize)
                        .collect();
                }
                "softdep" => info.softdeps.push(value.to_string()),
                "vermagic" => info.vermagic = Some(value.to_string()),
                _ => {}
            }
        }
        info
    }

    /// The `.modinfo` of an uncompressed module.
    pub fn from_elf(elf: &[u8]) -> Result<Self> {
        let section = elf_section(elf, ".modinfo")?
            .ok_or_else(|| Error::format("ELF module", "no .modinfo section"))?;
        Ok(ModInfo::parse(section))
    }
}

/// Reads a module file and decompresses it by its extension (or magic): the
/// plain ELF bytes `insmod` takes.
pub fn read_module_file(path: &Path) -> Result<Vec<u8>> {
    let raw = fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let kind = match ext {
        "xz" => Some(Compression::Xz),
        "zst" => Some(Compression::Zstd),
        "gz" => Some(Compression::Gzip),
        _ => Compression::sniff(&raw).filter(|c| c.supported()),
    };
    let elf = match kind {
        Some(kind) => decompress(kind, &raw).map_err(|e| match e {
            Error::Format { detail, .. } => {
                Error::format(format!("module {}", path.display()), detail)
            }
            other => other,
        })?,
        None => raw,
    };
    if !elf.starts_with(b"\x7fELF") {
        return Err(Error::format(
            format!("module {}", path.display()),
            "not an ELF file after decompression",
        ));
    }
    Ok(elf)
}

// ---------------------------------------------------------------------------
// Load order
// ---------------------------------------------------------------------------

/// Orders `wanted` and everything they depend on so that every module comes
/// after its dependencies; built-in modules (and their dependencies) are left
/// out. `depends(name)` gives a module's `depends=` list, or an error if the
/// module does not exist. Names are normalized; duplicates are loaded once.
pub fn load_order<F>(
    wanted: &[&str],
    builtin: &BTreeSet<String>,
    mut depends: F,
) -> Result<Vec<String>>
where
    F: FnMut(&str) -> Result<Vec<String>>,
{
    #[derive(PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    let mut marks: BTreeMap<String, Mark> = BTreeMap::new();
    let mut order = Vec::new();
    // Iterative DFS: (module, its deps, index of the next dep to visit).
    for root in wanted {
        let root = normalize(root);
        if builtin.contains(&root) || marks.contains_key(&root) {
            continue;
        }
        let mut stack: Vec<(String, Vec<String>, usize)> = Vec::new();
        let deps = depends(&root)?;
        marks.insert(root.clone(), Mark::Visiting);
        stack.push((root, deps, 0));
        while let Some((name, deps, next)) = stack.last_mut() {
            if *next == deps.len() {
                let name = name.clone();
                stack.pop();
                marks.insert(name.clone(), Mark::Done);
                order.push(name);
                continue;
            }
            let dep = normalize(&deps[*next]);
            *next += 1;
            if builtin.contains(&dep) {
                continue;
            }
            match marks.get(&dep) {
                Some(Mark::Done) => continue,
                Some(Mark::Visiting) => {
                    let mut path: Vec<&str> = stack.iter().map(|(n, _, _)| n.as_str()).collect();
                    let start = path.iter().position(|n| *n == dep).unwrap_or(0);
                    path.drain(..start);
                    path.push(&dep);
                    return Err(Error::Cycle(path.join(" -> ")));
                }
                None => {}
            }
            let dep_deps = depends(&dep)?;
            marks.insert(dep.clone(), Mark::Visiting);
            stack.push((dep, dep_deps, 0));
        }
    }
    Ok(order)
}

/// One module to load, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleToLoad {
    /// The normalized module name.
    pub name: String,
    /// Its file (possibly compressed) in the modules dir.
    pub path: PathBuf,
    /// Its `depends=`.
    pub depends: Vec<String>,
}

/// The result of [`ModuleTree::resolve`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadPlan {
    /// The modules to `insmod`, dependencies first.
    pub modules: Vec<ModuleToLoad>,
    /// The requested modules that are built into the kernel (nothing to load).
    pub builtin: Vec<String>,
}

/// The modules of one kernel: `lib/modules/<release>/kernel/**.ko*` and
/// `modules.builtin`.
#[derive(Debug, Clone, Default)]
pub struct ModuleTree {
    paths: BTreeMap<String, PathBuf>,
    builtin: BTreeSet<String>,
}

impl ModuleTree {
    /// Indexes a modules dir (`.../lib/modules/<release>`): walks it for module
    /// files and reads `modules.builtin` (absent means nothing is built in).
    pub fn open(modules_dir: &Path) -> Result<Self> {
        let mut paths = BTreeMap::new();
        let mut dirs = vec![modules_dir.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let rd = fs::read_dir(&dir).map_err(|e| Error::io("read dir", &dir, e))?;
            for entry in rd {
                let entry = entry.map_err(|e| Error::io("read dir", &dir, e))?;
                let path = entry.path();
                let ft = entry.file_type().map_err(|e| Error::io("stat", &path, e))?;
                if ft.is_dir() {
                    dirs.push(path);
                } else if let Some(name) = path.to_str().and_then(module_name) {
                    paths.entry(name).or_insert(path);
                }
            }
        }
        let builtin_file = modules_dir.join("modules.builtin");
        let builtin = match fs::read_to_string(&builtin_file) {
            Ok(text) => parse_builtin(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(Error::io("read", &builtin_file, e)),
        };
        Ok(ModuleTree { paths, builtin })
    }

    /// A tree from explicit parts (for tests and unusual layouts).
    pub fn from_parts(paths: BTreeMap<String, PathBuf>, builtin: BTreeSet<String>) -> Self {
        let paths = paths.into_iter().map(|(k, v)| (normalize(&k), v)).collect();
        ModuleTree { paths, builtin }
    }

    /// How many module files it has.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether it has no module files.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Whether `name` is built into the kernel.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize(name))
    }

    /// The file of module `name`, if it is a loadable module.
    pub fn path(&self, name: &str) -> Option<&Path> {
        self.paths.get(&normalize(name)).map(PathBuf::as_path)
    }

    /// The plain ELF bytes of module `name`.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = self
            .path(name)
            .ok_or_else(|| Error::NotFound(format!("module {name}")))?;
        read_module_file(path)
    }

    /// The `.modinfo` of module `name`.
    pub fn modinfo(&self, name: &str) -> Result<ModInfo> {
        let path = self
            .path(name)
            .ok_or_else(|| Error::NotFound(format!("module {name}")))?;
        let elf = read_module_file(path)?;
        ModInfo::from_elf(&elf).map_err(|e| match e {
            Error::Format { detail, .. } => {
                Error::format(format!("module {}", path.display()), detail)
            }
            other => other,
        })
    }

    /// The insmod order for `wanted`: every needed module after its
    /// dependencies, built-ins skipped. A module that is neither a file nor built
    /// in is an [`Error::NotFound`] naming who needed it.
    pub fn resolve(&self, wanted: &[&str]) -> Result<LoadPlan> {
        let mut infos: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let order = load_order(wanted, &self.builtin, |name| {
            if self.path(name).is_none() {
                let needed_by: Vec<&str> = infos
                    .iter()
                    .filter(|(_, deps)| deps.iter().any(|d| d == name))
                    .map(|(n, _)| n.as_str())
                    .collect();
                return Err(Error::NotFound(if needed_by.is_empty() {
                    format!("module {name} (neither a file nor in modules.builtin)")
                } else {
                    format!("module {name}, needed by {}", needed_by.join(", "))
                }));
            }
            let deps = self.modinfo(name)?.depends;
            infos.insert(name.to_string(), deps.clone());
            Ok(deps)
        })?;
        let modules = order
            .into_iter()
            .map(|name| ModuleToLoad {
                path: self.paths[&name].clone(),
                depends: infos.remove(&name).unwrap_or_default(),
                name,
            })
            .collect();
        let builtin = wanted
            .iter()
            .map(|w| normalize(w))
            .filter(|w| self.builtin.contains(w))
            .collect();
        Ok(LoadPlan { modules, builtin })
    }
}

/// The module names listed in a `modules.builtin` file.
pub fn parse_builtin(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(|l| module_name(l.trim())).collect()
}

/// The modules berth's tests need in a guest: overlayfs, veth, bridge, and 9p
/// over virtio for a host share. (`llc`, `stp`, `9pnet`, `netfs` come in as
/// dependencies.)
pub const GUEST_MODULES: &[&str] = &["overlay", "veth", "bridge", "9p", "9pnet_virtio"];

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal little-endian ELF64 relocatable with the given sections.
    pub(crate) fn elf64(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut strtab = vec![0u8];
        let mut names = Vec::new();
        for (name, _) in sections.iter().chain([(".shstrtab", &[][..])].iter()) {
            names.push(strtab.len() as u32);
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
        }
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // 64-bit
        out[5] = 1; // little endian
        out[6] = 1;
        out[16] = 1; // ET_REL
        out[18] = 62; // x86_64
        let mut offsets = Vec::new();
        for (_, data) in sections {
            offsets.push(out.len() as u64);
            out.extend_from_slice(data);
        }
        let stroff = out.len() as u64;
        out.extend_from_slice(&strtab);
        while out.len() % 8 != 0 {
            out.push(0);
        }
        let shoff = out.len() as u64;
        out.extend_from_slice(&[0u8; 64]); // the null section
        let mut push_sh = |name: u32, ty: u32, off: u64, size: u64| {
            let mut sh = [0u8; 64];
            sh[..4].copy_from_slice(&name.to_le_bytes());
            sh[4..8].copy_from_slice(&ty.to_le_bytes());
            sh[24..32].copy_from_slice(&off.to_le_bytes());
            sh[32..40].copy_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&sh);
        };
        for (i, (_, data)) in sections.iter().enumerate() {
            push_sh(names[i], 1, offsets[i], data.len() as u64);
        }
        push_sh(names[sections.len()], 3, stroff, strtab.len() as u64);
        let shnum = sections.len() as u16 + 2;
        out[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        out[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
        out[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        out[0x3c..0x3e].copy_from_slice(&shnum.to_le_bytes());
        out[0x3e..0x40].copy_from_slice(&(shnum - 1).to_le_bytes());
        out
    }

    fn ko(name: &str, depends: &str) -> Vec<u8> {
        let modinfo = format!(
            "license=GPL\0softdep=pre: crc32c\0depends={depends}\0retpoline=Y\0intree=Y\0name={name}\0vermagic=6.1.0 SMP mod_unload\0\0"
        );
        elf64(&[
            (".text", b"\xc3"),
            (".modinfo", modinfo.as_bytes()),
            (".data", b"xx"),
        ])
    }

    #[test]
    fn reads_modinfo_from_synthetic_elf() {
        let elf = ko("bridge", "stp,llc");
        let info = ModInfo::from_elf(&elf).unwrap();
        assert_eq!(info.name.as_deref(), Some("bridge"));
        assert_eq!(info.depends, ["stp", "llc"]);
        assert_eq!(info.softdeps, ["pre: crc32c"]);
        assert_eq!(info.vermagic.as_deref(), Some("6.1.0 SMP mod_unload"));
        assert_eq!(elf_section(&elf, ".data").unwrap(), Some(&b"xx"[..]));
        assert_eq!(elf_section(&elf, ".nope").unwrap(), None);
        let empty = ModInfo::from_elf(&ko("llc", "")).unwrap();
        assert!(empty.depends.is_empty());
    }

    #[test]
    fn rejects_broken_elf() {
        assert!(elf_section(
            b"not an elf at all, just some bytes........................",
            ".modinfo"
        )
        .is_err());
        let mut elf = ko("x", "");
        let len = elf.len();
        elf.truncate(len - 40);
        assert!(elf_section(&elf, ".modinfo").is_err());
        assert!(ModInfo::from_elf(&elf64(&[(".text", b"\xc3")])).is_err());
    }

    #[test]
    fn names_are_normalized() {
        assert_eq!(
            module_name("kernel/net/9p/9pnet_virtio.ko.xz").as_deref(),
            Some("9pnet_virtio")
        );
        assert_eq!(
            module_name("kernel/fs/nls/nls-utf8.ko").as_deref(),
            Some("nls_utf8")
        );
        assert_eq!(module_name("kernel/x.ko.zst").as_deref(), Some("x"));
        assert_eq!(module_name("modules.builtin"), None);
        assert_eq!(module_name("vmlinuz"), None);
        let b = parse_builtin("kernel/fs/ext4/ext4.ko\nkernel/net/unix/unix.ko\n\n");
        assert!(b.contains("ext4") && b.contains("unix") && b.len() == 2);
    }

    fn deps_map(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn order(
        map: &BTreeMap<String, Vec<String>>,
        builtin: &[&str],
        wanted: &[&str],
    ) -> Result<Vec<String>> {
        let builtin = builtin.iter().map(|s| s.to_string()).collect();
        load_order(wanted, &builtin, |n| {
            map.get(n)
                .cloned()
                .ok_or_else(|| Error::NotFound(n.to_string()))
        })
    }

    #[test]
    fn dependencies_come_first() {
        let map = deps_map(&[
            ("overlay", &[]),
            ("veth", &[]),
            ("bridge", &["stp", "llc"]),
            ("stp", &["llc"]),
            ("llc", &[]),
            ("9p", &["9pnet", "netfs"]),
            ("9pnet", &[]),
            ("9pnet_virtio", &["9pnet", "virtio_ring", "virtio"]),
            ("netfs", &["fscache"]),
        ]);
        let got = order(
            &map,
            &["virtio", "virtio_ring", "fscache"],
            &["overlay", "veth", "bridge", "9p", "9pnet_virtio", "9p"],
        )
        .unwrap();
        assert_eq!(
            got,
            [
                "overlay",
                "veth",
                "llc",
                "stp",
                "bridge",
                "9pnet",
                "netfs",
                "9p",
                "9pnet_virtio"
            ]
        );
        // Every module after its dependencies.
        for (i, m) in got.iter().enumerate() {
            for d in &map[m] {
                if let Some(j) = got.iter().position(|x| x == d) {
                    assert!(j < i, "{d} must precede {m}");
                }
            }
        }
    }

    #[test]
    fn builtin_wanted_module_is_skipped() {
        let map = deps_map(&[("bridge", &["stp", "llc"]), ("stp", &["llc"]), ("llc", &[])]);
        assert_eq!(
            order(&map, &["llc", "stp"], &["bridge"]).unwrap(),
            ["bridge"]
        );
        assert!(order(&map, &["bridge"], &["bridge"]).unwrap().is_empty());
    }

    #[test]
    fn missing_and_cyclic_modules_are_errors() {
        let map = deps_map(&[
            ("a", &["b"]),
            ("b", &["c"]),
            ("c", &["a"]),
            ("d", &["nope"]),
        ]);
        match order(&map, &[], &["a"]) {
            Err(Error::Cycle(path)) => assert_eq!(path, "a -> b -> c -> a"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(order(&map, &[], &["d"]), Err(Error::NotFound(n)) if n == "nope"));
        // Dashes normalize to underscores on the way in.
        let map = deps_map(&[("nls_utf8", &[])]);
        assert_eq!(order(&map, &[], &["nls-utf8"]).unwrap(), ["nls_utf8"]);
    }

    /// A synthetic modules dir with plain, xz and zstd modules.
    #[test]
    fn tree_resolves_from_files() {
        use crate::compress::tests::{xz, zstd};
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("lib/modules/6.1.0-1-amd64");
        let put = |rel: &str, data: Vec<u8>| {
            let p = dir.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, data).unwrap();
        };
        put(
            "kernel/net/bridge/bridge.ko.xz",
            xz(&ko("bridge", "stp,llc")),
        );
        put("kernel/net/802/stp.ko.zst", zstd(&ko("stp", "llc")));
        put("kernel/net/llc/llc.ko", ko("llc", ""));
        put("kernel/drivers/net/veth.ko.xz", xz(&ko("veth", "")));
        put("kernel/fs/9p/9p.ko.xz", xz(&ko("9p", "9pnet,netfs")));
        put("kernel/net/9p/9pnet.ko.xz", xz(&ko("9pnet", "")));
        put(
            "kernel/fs/broken.ko.xz",
            b"\xfd7zXZ\x00 not really".to_vec(),
        );
        fs::write(
            dir.join("modules.builtin"),
            "kernel/fs/overlayfs/overlay.ko\n",
        )
        .unwrap();

        let tree = ModuleTree::open(&dir).unwrap();
        assert_eq!(tree.len(), 7);
        assert!(tree.is_builtin("overlay"));
        let plan = tree.resolve(&["overlay", "veth", "bridge"]).unwrap();
        let names: Vec<&str> = plan.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["veth", "llc", "stp", "bridge"]);
        assert_eq!(plan.builtin, ["overlay"]);
        assert_eq!(plan.modules[3].depends, ["stp", "llc"]);
        assert!(tree.read("bridge").unwrap().starts_with(b"\x7fELF"));

        let err = tree.resolve(&["9p"]).unwrap_err().to_string();
        assert!(
            err.contains("netfs") && err.contains("needed by 9p"),
            "{err}"
        );
        let err = tree.resolve(&["broken"]).unwrap_err().to_string();
        assert!(err.contains("broken.ko.xz"), "{err}");
        assert!(tree.resolve(&["nothing"]).is_err());
    }

    /// Resolves [`GUEST_MODULES`] on every kernel unpacked in the cache (see
    /// `kernels::tests::fetch_newest_6_1` to fill it).
    #[test]
    fn real_kernels_in_cache() {
        let cache = crate::default_cache_dir();
        let mut seen = 0;
        for series in crate::KernelSeries::ALL {
            let kernel = match crate::kernels::cached(&cache, series) {
                Ok(Some(k)) => k,
                Ok(None) => {
                    println!(
                        "skipped {series}: no kernel unpacked in {}",
                        cache.display()
                    );
                    continue;
                }
                Err(e) => panic!("{series}: {e}"),
            };
            let t = std::time::Instant::now();
            let tree = ModuleTree::open(&kernel.modules_dir).unwrap();
            let plan = tree.resolve(GUEST_MODULES).unwrap();
            let names: Vec<&str> = plan.modules.iter().map(|m| m.name.as_str()).collect();
            println!(
                "{series} {}: {} modules indexed, load order {names:?}, built in {:?} ({:?})",
                kernel.release,
                tree.len(),
                plan.builtin,
                t.elapsed()
            );
            for (i, m) in plan.modules.iter().enumerate() {
                for d in &m.depends {
                    if tree.is_builtin(d) {
                        continue;
                    }
                    let j = names
                        .iter()
                        .position(|n| n == d)
                        .expect("dependency in plan");
                    assert!(j < i, "{d} before {}", m.name);
                }
                let elf = tree.read(&m.name).unwrap();
                let info = ModInfo::from_elf(&elf).unwrap();
                if let Some(n) = &info.name {
                    assert_eq!(normalize(n), m.name);
                }
                let vermagic = info.vermagic.unwrap_or_default();
                assert!(
                    vermagic.starts_with(&kernel.release),
                    "{vermagic} vs {}",
                    kernel.release
                );
            }
            for m in [
                "bridge",
                "llc",
                "stp",
                "9pnet",
                "9pnet_virtio",
                "9p",
                "veth",
            ] {
                assert!(
                    names.contains(&m) || plan.builtin.contains(&m.to_string()),
                    "{m}"
                );
            }
            seen += 1;
        }
        println!("resolved modules of {seen} cached kernels");
    }
}
