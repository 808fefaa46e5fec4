//! The uncompressed `vmlinux` ELF from a bzImage (`vmlinuz`).
//!
//! Under TCG, QEMU spends a large part of a boot decompressing the kernel with
//! emulated instructions; giving it the ELF (`-kernel vmlinux`, booted through
//! its PVH entry point, present in Debian's 5.10 and later x86 kernels) about
//! halves the boot time. The payload is found like the kernel's
//! `scripts/extract-vmlinux` does, but first from the boot protocol header
//! (`payload_offset`, `payload_length`, protocol 2.08+), falling back to scanning
//! for a compressor's magic. Debian compresses 5.10 and 6.1 with xz and 6.12+
//! with zstd; gzip is also handled.

use std::fs;
use std::path::Path;

use crate::compress::{decompress, Compression};
use crate::error::{Error, Result};

/// Where a bzImage keeps its compressed kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    /// Offset of the compressed stream in the bzImage file.
    pub offset: usize,
    /// Its length (from the header; for a scanned payload, to the end of the file).
    pub length: usize,
    /// Its compression.
    pub compression: Compression,
    /// The boot protocol version (`0x020f` ...), if the file has a setup header.
    pub protocol: Option<u16>,
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Locates the compressed payload of `bzimage`.
pub fn find_payload(bzimage: &[u8]) -> Result<Payload> {
    // Boot protocol: "HdrS" at 0x202, version at 0x206, setup_sects at 0x1f1,
    // payload_offset/payload_length at 0x248/0x24c relative to the protected-mode
    // code, which starts after (setup_sects + 1) sectors.
    if bzimage.get(0x202..0x206) == Some(b"HdrS") {
        let protocol = le16(bzimage, 0x206);
        if protocol.is_some_and(|p| p >= 0x0208) {
            let setup_sects = match bzimage[0x1f1] {
                0 => 4,
                n => usize::from(n),
            };
            let pm_start = (setup_sects + 1) * 512;
            let off = le32(bzimage, 0x248).map(|v| v as usize);
            let len = le32(bzimage, 0x24c).map(|v| v as usize);
            if let (Some(off), Some(len)) = (off, len) {
                let offset = pm_start + off;
                if let Some(data) = bzimage.get(offset..offset + len) {
                    if let Some(compression) = Compression::sniff(data) {
                        return Ok(Payload {
                            offset,
                            length: len,
                            compression,
                            protocol,
                        });
                    }
                }
            }
        }
    }
    // Fall back to the first supported magic anywhere in the file.
    let protocol = le16(bzimage, 0x206).filter(|_| bzimage.get(0x202..0x206) == Some(b"HdrS"));
    (0..bzimage.len())
        .find_map(|i| {
            let rest = &bzimage[i..];
            let compression = Compression::sniff(rest).filter(|c| c.supported())?;
            Some(Payload {
                offset: i,
                length: rest.len(),
                compression,
                protocol,
            })
        })
        .ok_or_else(|| Error::format("bzImage", "no compressed payload found"))
}

/// The uncompressed ELF kernel inside `bzimage`.
///
/// If the header's payload does not decompress to an ELF file, every other
/// candidate magic offset is tried, like `extract-vmlinux`.
pub fn extract(bzimage: &[u8]) -> Result<Vec<u8>> {
    if bzimage.starts_with(b"\x7fELF") {
        return Ok(bzimage.to_vec());
    }
    let first = find_payload(bzimage)?;
    let try_at = |p: &Payload| -> Option<Vec<u8>> {
        let data = &bzimage[p.offset..p.offset + p.length];
        decompress(p.compression, data)
            .ok()
            .filter(|elf| elf.starts_with(b"\x7fELF"))
    };
    if let Some(elf) = try_at(&first) {
        return Ok(elf);
    }
    for i in 0..bzimage.len() {
        let rest = &bzimage[i..];
        let Some(c) = Compression::sniff(rest).filter(|c| c.supported()) else {
            continue;
        };
        let p = Payload {
            offset: i,
            length: rest.len(),
            compression: c,
            protocol: None,
        };
        if let Some(elf) = try_at(&p) {
            return Ok(elf);
        }
    }
    Err(Error::format(
        "bzImage",
        format!(
            "the {:?} payload at offset {} is not an ELF kernel",
            first.compression, first.offset
        ),
    ))
}

/// Extracts `vmlinuz` to `out` unless `out` already exists and is newer;
/// writes through a temporary file so a crash never leaves a truncated kernel.
/// Returns whether it wrote.
pub fn extract_file(vmlinuz: &Path, out: &Path) -> Result<bool> {
    let src_time = fs::metadata(vmlinuz)
        .and_then(|m| m.modified())
        .map_err(|e| Error::io("stat", vmlinuz, e))?;
    if let Ok(t) = fs::metadata(out).and_then(|m| m.modified()) {
        if t >= src_time {
            return Ok(false);
        }
    }
    let bz = fs::read(vmlinuz).map_err(|e| Error::io("read", vmlinuz, e))?;
    let elf = extract(&bz).map_err(|e| match e {
        Error::Format { detail, .. } => {
            Error::format(format!("bzImage {}", vmlinuz.display()), detail)
        }
        other => other,
    })?;
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    fs::write(&tmp, &elf).map_err(|e| Error::io("write", &tmp, e))?;
    fs::rename(&tmp, out).map_err(|e| Error::io("rename into", out, e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::tests::{gzip, xz, zstd};

    /// A fake bzImage: a setup header pointing at `payload` (+ the 4-byte size
    /// trailer the kernel build appends).
    fn bzimage(payload: &[u8], header: bool) -> Vec<u8> {
        let setup_sects = 3u8;
        let pm_start = (usize::from(setup_sects) + 1) * 512;
        let mut img = vec![0u8; pm_start + 0x300];
        if header {
            img[0x1f1] = setup_sects;
            img[0x202..0x206].copy_from_slice(b"HdrS");
            img[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
            img[0x248..0x24c].copy_from_slice(&0x300u32.to_le_bytes());
            img[0x24c..0x250].copy_from_slice(&(payload.len() as u32 + 4).to_le_bytes());
        }
        // Decoy bytes that look like a gzip header in the decompressor code.
        img[pm_start + 16..pm_start + 19].copy_from_slice(&[0x1f, 0x8b, 0x08]);
        img.extend_from_slice(payload);
        img.extend_from_slice(&1234u32.to_le_bytes());
        img.extend_from_slice(&[0u8; 100]);
        img
    }

    fn fake_vmlinux() -> Vec<u8> {
        let mut v = b"\x7fELF\x02\x01\x01".to_vec();
        v.extend((0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()));
        v
    }

    #[test]
    fn extracts_each_format_via_header() {
        let elf = fake_vmlinux();
        for (kind, packed) in [
            (Compression::Xz, xz(&elf)),
            (Compression::Zstd, zstd(&elf)),
            (Compression::Gzip, gzip(&elf)),
        ] {
            let img = bzimage(&packed, true);
            let p = find_payload(&img).unwrap();
            assert_eq!(p.compression, kind);
            assert_eq!(p.offset, 4 * 512 + 0x300);
            assert_eq!(p.length, packed.len() + 4);
            assert_eq!(p.protocol, Some(0x020f));
            assert_eq!(extract(&img).unwrap(), elf, "{kind:?}");
        }
    }

    #[test]
    fn falls_back_to_scanning_past_decoys() {
        let elf = fake_vmlinux();
        let img = bzimage(&xz(&elf), false);
        // The scan first sees the gzip decoy, which fails, then finds the xz stream.
        assert_eq!(find_payload(&img).unwrap().compression, Compression::Gzip);
        assert_eq!(extract(&img).unwrap(), elf);
    }

    #[test]
    fn not_a_kernel() {
        assert!(extract(&vec![0u8; 4096]).is_err());
        let img = bzimage(&xz(b"not an ELF"), true);
        assert!(extract(&img).is_err());
        assert_eq!(extract(b"\x7fELF already").unwrap(), b"\x7fELF already");
    }

    #[test]
    fn extract_file_is_cached() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("vmlinuz");
        let out = tmp.path().join("vmlinux");
        fs::write(&src, bzimage(&zstd(&fake_vmlinux()), true)).unwrap();
        assert!(extract_file(&src, &out).unwrap());
        assert!(!extract_file(&src, &out).unwrap());
        assert_eq!(fs::read(&out).unwrap(), fake_vmlinux());
    }

    /// Extracts the vmlinux of every kernel in the cache.
    #[test]
    fn real_kernels_in_cache() {
        let cache = crate::default_cache_dir();
        for series in crate::KernelSeries::ALL {
            let Ok(Some(k)) = crate::kernels::cached(&cache, series) else {
                println!(
                    "skipped {series}: no kernel unpacked in {}",
                    cache.display()
                );
                continue;
            };
            let bz = fs::read(&k.vmlinuz).unwrap();
            let t = std::time::Instant::now();
            let p = find_payload(&bz).unwrap();
            let elf = extract(&bz).unwrap();
            println!(
                "{series} {}: vmlinuz {} bytes, protocol {:?}, {:?} payload of {} bytes -> vmlinux {} bytes in {:?}",
                k.release,
                bz.len(),
                p.protocol.map(|v| format!("{v:#06x}")),
                p.compression,
                p.length,
                elf.len(),
                t.elapsed()
            );
            assert!(elf.starts_with(b"\x7fELF\x02\x01"));
            // A real kernel has a .notes section carrying the Xen/PVH entry note.
            let notes = crate::modules::elf_section(&elf, ".notes").unwrap();
            assert!(notes.is_some(), "{series}: no .notes section");
        }
    }
}
