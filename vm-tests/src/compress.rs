//! Decompression of the formats Debian kernels use: gzip, xz and zstd.
//!
//! Used for compressed modules (`.ko.xz`, `.ko.zst`, `.ko.gz`) and for the
//! payload of a bzImage (see [`crate::vmlinux`]).

use std::io::Read;

use crate::error::{Error, Result};

/// A compression format recognised by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// gzip (`1f 8b 08`).
    Gzip,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
    /// zstd (`28 b5 2f fd`).
    Zstd,
    /// bzip2 (`BZh`), recognised but not decompressed.
    Bzip2,
    /// legacy lzma (`5d 00 00`), recognised but not decompressed.
    Lzma,
    /// lz4 legacy frame (`02 21 4c 18`), recognised but not decompressed.
    Lz4,
    /// lzo (`89 4c 5a 4f`), recognised but not decompressed.
    Lzo,
}

impl Compression {
    /// Every format, in the order the kernel's `extract-vmlinux` tries them.
    pub const ALL: [Compression; 7] = [
        Compression::Gzip,
        Compression::Xz,
        Compression::Bzip2,
        Compression::Lzma,
        Compression::Lzo,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The magic bytes that start a stream in this format.
    pub fn magic(self) -> &'static [u8] {
        match self {
            Compression::Gzip => &[0x1f, 0x8b, 0x08],
            Compression::Xz => &[0xfd, b'7', b'z', b'X', b'Z', 0x00],
            Compression::Zstd => &[0x28, 0xb5, 0x2f, 0xfd],
            Compression::Bzip2 => b"BZh",
            Compression::Lzma => &[0x5d, 0x00, 0x00],
            Compression::Lz4 => &[0x02, 0x21, 0x4c, 0x18],
            Compression::Lzo => &[0x89, b'L', b'Z', b'O'],
        }
    }

    /// The format whose magic starts `data`, if any.
    pub fn sniff(data: &[u8]) -> Option<Compression> {
        Compression::ALL
            .into_iter()
            .find(|c| data.starts_with(c.magic()))
    }

    /// Whether [`decompress`] supports this format.
    pub fn supported(self) -> bool {
        matches!(
            self,
            Compression::Gzip | Compression::Xz | Compression::Zstd
        )
    }
}

/// Decompresses the first stream of `data` in format `kind`. Bytes after the
/// end of that stream are ignored (a bzImage payload is followed by its
/// uncompressed size; a module may be followed by padding).
pub fn decompress(kind: Compression, data: &[u8]) -> Result<Vec<u8>> {
    let what = || format!("{kind:?} stream");
    let mut out = Vec::with_capacity(data.len().saturating_mul(3));
    match kind {
        Compression::Gzip => {
            flate2::bufread::GzDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(|e| Error::format(what(), e.to_string()))?;
        }
        Compression::Xz => {
            // A single-stream decoder reports StreamEnd after the first stream's
            // footer; whatever follows is left alone.
            let mut stream = xz2::stream::Stream::new_stream_decoder(u64::MAX, 0)
                .map_err(|e| Error::format(what(), e.to_string()))?;
            loop {
                if out.len() == out.capacity() {
                    out.reserve(out.len().max(1 << 16));
                }
                let consumed = stream.total_in() as usize;
                let input = data.get(consumed..).unwrap_or_default();
                let before = (stream.total_in(), stream.total_out());
                let action = if input.is_empty() {
                    xz2::stream::Action::Finish
                } else {
                    xz2::stream::Action::Run
                };
                let status = stream
                    .process_vec(input, &mut out, action)
                    .map_err(|e| Error::format(what(), e.to_string()))?;
                if status == xz2::stream::Status::StreamEnd {
                    break;
                }
                let progressed = (stream.total_in(), stream.total_out()) != before;
                if !progressed && out.len() < out.capacity() {
                    return Err(Error::format(what(), "truncated xz stream"));
                }
            }
        }
        Compression::Zstd => {
            let mut dec = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|e| Error::format(what(), e.to_string()))?
                .single_frame();
            // The kernel compresses with `zstd -22 --ultra` from a pipe: the
            // window can exceed zstd's default decoding limit of 2^27.
            dec.window_log_max(31)
                .map_err(|e| Error::format(what(), e.to_string()))?;
            dec.read_to_end(&mut out)
                .map_err(|e| Error::format(what(), e.to_string()))?;
        }
        other => {
            return Err(Error::format(
                what(),
                format!("{other:?} decompression is not supported"),
            ))
        }
    }
    Ok(out)
}

/// Decompresses `data` if it starts with a supported magic, otherwise returns it unchanged.
pub fn decompress_auto(data: Vec<u8>) -> Result<Vec<u8>> {
    match Compression::sniff(&data) {
        Some(kind) if kind.supported() => decompress(kind, &data),
        _ => Ok(data),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    pub(crate) fn xz(data: &[u8]) -> Vec<u8> {
        let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    pub(crate) fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::stream::encode_all(data, 3).unwrap()
    }

    #[test]
    fn round_trips_with_trailing_garbage() {
        let text: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for (kind, mut packed) in [
            (Compression::Gzip, gzip(&text)),
            (Compression::Xz, xz(&text)),
            (Compression::Zstd, zstd(&text)),
        ] {
            assert_eq!(Compression::sniff(&packed), Some(kind));
            packed.extend_from_slice(&[0x12, 0x34, 0x56, 0x78]);
            assert_eq!(decompress(kind, &packed).unwrap(), text, "{kind:?}");
        }
    }

    #[test]
    fn auto_leaves_plain_data_alone() {
        let elf = b"\x7fELF rest".to_vec();
        assert_eq!(decompress_auto(elf.clone()).unwrap(), elf);
        assert_eq!(decompress_auto(xz(&elf)).unwrap(), elf);
    }

    #[test]
    fn unsupported_and_corrupt_are_errors() {
        assert!(decompress(Compression::Lz4, b"\x02\x21\x4c\x18xx").is_err());
        assert!(decompress(Compression::Xz, b"\xfd7zXZ\x00garbage").is_err());
    }
}
