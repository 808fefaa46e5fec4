//! sha256 digests: parsing, and readers/writers that hash what passes
//! through them so content is verified while it streams.

use std::io::{self, Read, Write};
use std::str::FromStr;

use oci_spec::image::{Digest, DigestAlgorithm};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// Parses `sha256:<64 hex>`, the only algorithm the store keeps.
pub fn parse(s: &str, what: &str) -> Result<Digest> {
    let d = Digest::from_str(s).map_err(|e| Error::image(what, e.to_string()))?;
    if *d.algorithm() != DigestAlgorithm::Sha256 {
        return Err(Error::image(
            what,
            format!("unsupported digest algorithm in {s}"),
        ));
    }
    let hex = d.digest();
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(Error::image(what, format!("malformed sha256 digest {s}")));
    }
    Ok(d)
}

/// The digest of `bytes`.
pub fn of(bytes: &[u8]) -> Digest {
    from_hasher(Sha256::new_with_prefix(bytes))
}

fn from_hasher(h: Sha256) -> Digest {
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Digest::from_str(&format!("sha256:{hex}")).expect("well-formed sha256 digest")
}

/// A reader that hashes (and counts) everything read through it.
#[derive(Debug)]
pub struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads to the end (what a tar reader left unread, such as padding
    /// after the end-of-archive blocks, is part of the digest), then
    /// returns the digest and the byte count.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((from_hasher(self.hasher), self.count))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes (and counts) everything written through it.
#[derive(Debug)]
pub struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The digest and count so far, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        (from_hasher(self.hasher), self.count, self.inner)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_refuses_other_algorithms_and_bad_hex() {
        let good = of(b"abc").to_string();
        assert_eq!(
            good,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(parse(&good, "x").is_ok());
        assert!(parse("sha512:00", "x").is_err());
        assert!(parse("sha256:../../etc/passwd", "x").is_err());
        assert!(parse(&good.to_uppercase(), "x").is_err());
    }
}
