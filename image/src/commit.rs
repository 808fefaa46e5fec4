//! Commit: a container's upper dir becomes a new layer (an OCI diff,
//! overlay whiteouts turned back into `.wh.` entries) on top of its
//! image, with a new config and manifest.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use oci_spec::image::{Descriptor, Digest, HistoryBuilder, MediaType};

use super::digest::{self, HashWriter};
use super::store::ImageStore;
use crate::error::{Error, Result};

impl ImageStore {
    /// Turns container `id`'s changes into a new image tagged `reference`:
    /// its layers plus one gzip layer made from the upper dir. Returns the
    /// new manifest digest. For a consistent layer, commit a stopped or
    /// paused container.
    pub fn commit(&self, id: &str, reference: &str) -> Result<Digest> {
        let name = super::reference::normalize(reference)?;
        let snap = self.snapshot(id);
        let record = snap.record()?;
        if record.rootless {
            // Its files belong to host ids of the user's subordinate range,
            // which the diff would have to map back.
            return Err(Error::Unsupported(format!(
                "commit of {id}: a rootless container's layer cannot be committed yet"
            )));
        }
        let base = self.image_by_digest(
            record.image.clone(),
            digest::parse(&record.manifest, "snapshot.json")?,
        )?;

        let tmp = self.ingest_path();
        let made = write_diff(&snap.upper(), &tmp);
        let (diff_id, blob, size) = match made {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(Error::io("write layer", snap.upper(), e));
            }
        };
        let _lock = self.lock()?;
        if self.has_blob(&blob) {
            let _ = fs::remove_file(&tmp);
        } else {
            self.commit_ingested(&tmp, &blob)?;
        }

        let mut config = base.config.clone();
        config.rootfs_mut().diff_ids_mut().push(diff_id.to_string());
        let now = rfc3339_now();
        let history = HistoryBuilder::default()
            .created(now.clone())
            .created_by(format!("berth commit {id}"))
            .build()
            .map_err(|e| Error::image("history", e.to_string()))?;
        config
            .history_mut()
            .get_or_insert_with(Vec::new)
            .push(history);
        config.set_created(Some(now));
        let config_bytes = config
            .to_string()
            .map_err(|e| Error::image("config", e.to_string()))?;
        let config_digest = self.put_blob(config_bytes.as_bytes())?;

        let mut manifest = base.manifest.clone();
        manifest.set_config(Descriptor::new(
            MediaType::ImageConfig,
            config_bytes.len() as u64,
            config_digest,
        ));
        manifest
            .layers_mut()
            .push(Descriptor::new(MediaType::ImageLayerGzip, size, blob));
        manifest.set_media_type(Some(MediaType::ImageManifest));
        let manifest_bytes = manifest
            .to_string()
            .map_err(|e| Error::image("manifest", e.to_string()))?;
        let d = self.put_blob(manifest_bytes.as_bytes())?;
        drop(_lock);
        self.tag(&name, &d)?;
        Ok(d)
    }
}

/// Writes the upper dir as a gzip tar to `out`; returns the diff-id (of
/// the tar), the blob digest (of the gzip) and the blob size.
fn write_diff(upper: &Path, out: &Path) -> io::Result<(Digest, Digest, u64)> {
    let file = File::create_new(out)?;
    let blob = HashWriter::new(BufWriter::with_capacity(1 << 20, file));
    let gz = flate2::write::GzEncoder::new(blob, flate2::Compression::fast());
    let tar_stream = HashWriter::new(gz);
    let mut builder = tar::Builder::new(tar_stream);
    let mut links = HashMap::new();
    walk(&mut builder, upper, Path::new(""), &mut links)?;
    let tar_stream = builder.into_inner()?;
    let (diff_id, _, gz) = tar_stream.finish();
    let blob = gz.finish()?;
    let (blob_digest, size, buf) = blob.finish();
    buf.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok((diff_id, blob_digest, size))
}

fn walk<W: io::Write>(
    b: &mut tar::Builder<W>,
    dir: &Path,
    rel: &Path,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = rel.join(e.file_name());
        let meta = fs::symlink_metadata(&path)?;
        let ft = meta.file_type();
        if ft.is_char_device() && meta.rdev() == 0 {
            let mut h = header(&meta, tar::EntryType::Regular);
            h.set_size(0);
            h.set_mode(0o644);
            let mut wh = e.file_name();
            wh = std::ffi::OsString::from(format!(".wh.{}", wh.to_string_lossy()));
            b.append_data(&mut h, rel.join(wh), io::empty())?;
            continue;
        }
        if ft.is_socket() {
            // Sockets are not content.
            continue;
        }
        xattrs(b, &path)?;
        if ft.is_dir() {
            let mut h = header(&meta, tar::EntryType::Directory);
            b.append_data(&mut h, &name, io::empty())?;
            if opaque(&path) {
                let mut h = header(&meta, tar::EntryType::Regular);
                h.set_size(0);
                h.set_mode(0o644);
                b.append_data(&mut h, name.join(".wh..wh..opq"), io::empty())?;
            }
            walk(b, &path, &name, links)?;
        } else if ft.is_symlink() {
            let mut h = header(&meta, tar::EntryType::Symlink);
            b.append_link(&mut h, &name, fs::read_link(&path)?)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    let mut h = header(&meta, tar::EntryType::Link);
                    b.append_link(&mut h, &name, first)?;
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), name.clone());
            }
            let mut h = header(&meta, tar::EntryType::Regular);
            h.set_size(meta.len());
            b.append_data(&mut h, &name, File::open(&path)?)?;
        } else {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else if ft.is_fifo() {
                tar::EntryType::Fifo
            } else {
                continue;
            };
            let mut h = header(&meta, kind);
            let rdev = meta.rdev();
            h.set_device_major(libc::major(rdev))?;
            h.set_device_minor(libc::minor(rdev))?;
            b.append_data(&mut h, &name, io::empty())?;
        }
    }
    Ok(())
}

fn header(meta: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(meta.uid() as u64);
    h.set_gid(meta.gid() as u64);
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(0);
    h
}

fn opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(path, "trusted.overlay.opaque", &mut buf), Ok(1) if buf[0] == b'y')
}

/// Emits the file's xattrs (except overlay's own) as a PAX header for the
/// next entry.
fn xattrs<W: io::Write>(b: &mut tar::Builder<W>, path: &Path) -> io::Result<()> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(path, &mut names) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    for name in names[..n].split(|&c| c == 0).filter(|s| !s.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        let mut value = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(path, name.as_str(), &mut value)?;
        value.truncate(len);
        pax.push((format!("SCHILY.xattr.{name}"), value));
    }
    if !pax.is_empty() {
        b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
    }
    Ok(())
}

/// Now as RFC 3339 UTC, without a date crate.
fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}
