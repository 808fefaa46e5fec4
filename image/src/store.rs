//! The content store under the runtime root (`<root>/images`):
//! digest-verified blobs, tags, unpacked layers and container snapshots.
//!
//! ```text
//! images/blobs/sha256/<hex>     blobs (manifests, configs, compressed layers)
//! images/ingest/                blobs being written, verified, then renamed
//! images/layers/<hex>           unpacked layers, keyed by diff-id
//! images/snapshots/<id>/        a container's upper, work and merged dirs
//! images/refs.json              tags: reference -> manifest digest
//! images/lock                   flock held by every change
//! ```
//!
//! A blob is written to `ingest/`, hashed while it streams, and renamed
//! into `blobs/` only if it hashes to the digest it was announced with.
//! Every change holds the store lock, so garbage collection (a mark and
//! sweep from the tags and the live snapshots) never sees a half-made
//! image.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::image::{Digest, ImageConfiguration, ImageManifest};

use super::digest::{self, HashWriter};
use super::reference;
use crate::error::{Error, Result};

/// The image store of a runtime root.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    /// Without root: how layers are written as the containers' users.
    unprivileged: Option<crate::userns::Unprivileged>,
}

/// The store lock; released on drop.
#[derive(Debug)]
pub(crate) struct Lock(#[allow(dead_code)] OwnedFd);

/// A resolved image: its manifest and config.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Image {
    /// The reference it was found by (normalised), or its digest.
    pub reference: String,
    /// The digest of its manifest.
    pub digest: Digest,
    /// The manifest.
    pub manifest: ImageManifest,
    /// The config.
    pub config: ImageConfiguration,
}

impl Image {
    /// The layer diff-ids, base first.
    pub fn diff_ids(&self) -> Result<Vec<Digest>> {
        self.config
            .rootfs()
            .diff_ids()
            .iter()
            .enumerate()
            .map(|(i, d)| digest::parse(d, &format!("config.rootfs.diff_ids[{i}]")))
            .collect()
    }

    /// The sum of the compressed layer sizes and the config.
    pub fn size(&self) -> u64 {
        self.manifest.layers().iter().map(|l| l.size()).sum::<u64>() + self.manifest.config().size()
    }
}

/// One tag in [`ImageStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageSummary {
    /// The normalised reference (`name:tag`).
    pub reference: String,
    /// The manifest digest.
    pub digest: Digest,
    /// Compressed size of config and layers, in bytes.
    pub size: u64,
}

impl ImageStore {
    /// Opens (creating if needed) the store of the runtime root `root`.
    pub fn open(runtime_root: impl AsRef<Path>) -> Result<ImageStore> {
        let root = runtime_root.as_ref().join("images");
        for dir in ["blobs/sha256", "ingest", "layers", "snapshots"] {
            let d = root.join(dir);
            fs::create_dir_all(&d).map_err(|e| Error::io("create image store", &d, e))?;
        }
        Ok(ImageStore {
            root,
            unprivileged: None,
        })
    }

    /// The store as a user without root uses it: layers written, and the
    /// containers' files removed, by `helper` (run as `helper image-helper
    /// …`, see [`helper_main`](crate::helper_main)) in a user namespace
    /// with the ids the user's containers get
    /// ([`berth::rootless::default_id_mappings`]); containers' overlays
    /// mounted in their own user namespace. A store used by root is
    /// returned as it is.
    ///
    /// Writing a layer fails with [`berth::Error::SubordinateIds`] (as
    /// [`Error::Runtime`]) when the user has no subordinate ids: an image's
    /// files belong to several users.
    pub fn with_helper(mut self, helper: impl Into<PathBuf>) -> ImageStore {
        if !nix::unistd::geteuid().is_root() {
            self.unprivileged = Some(crate::userns::Unprivileged {
                program: helper.into(),
            });
        }
        self
    }

    /// The id mappings of a user's store (its layers' and its containers'),
    /// `None` for root's.
    pub(crate) fn mappings(&self) -> Result<Option<berth::rootless::IdMappings>> {
        self.unprivileged
            .as_ref()
            .map(|u| u.mappings(&self.root))
            .transpose()
    }

    /// How this store writes as the containers' users, if it is a user's.
    pub(crate) fn unprivileged(&self) -> Option<&crate::userns::Unprivileged> {
        self.unprivileged.as_ref()
    }

    /// Removes `dir` (a layer, a container's writable layer); what the
    /// user of a user's store may not remove (files of the container's
    /// other users), through the helper.
    pub(crate) fn remove_tree(&self, dir: &Path) -> Result<()> {
        match fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => match &self.unprivileged {
                Some(u) if e.kind() == io::ErrorKind::PermissionDenied => {
                    u.remove_tree(&u.mappings(&self.root)?, dir)
                }
                _ => Err(Error::io("remove", dir, e)),
            },
        }
    }

    /// The store directory (`<runtime root>/images`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the store lock (blocking).
    pub(crate) fn lock(&self) -> Result<Lock> {
        let path = self.root.join("lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open store lock", &path, e))?;
        let fd = OwnedFd::from(f);
        rustix::fs::flock(&fd, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io("lock image store", &path, e.into()))?;
        Ok(Lock(fd))
    }

    /// Held shared by pulls (whose blobs are not tagged yet) and
    /// exclusive by [`gc`](Self::gc) (blocking).
    pub(crate) fn gc_guard(&self, exclusive: bool) -> Result<Lock> {
        let path = self.root.join("gc.lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open gc lock", &path, e))?;
        let fd = OwnedFd::from(f);
        let op = if exclusive {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::LockShared
        };
        rustix::fs::flock(&fd, op).map_err(|e| Error::io("lock image store", &path, e.into()))?;
        Ok(Lock(fd))
    }

    /// Where the blob `d` lives (whether or not it is there).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.digest())
    }

    /// Whether the blob is stored.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// A fresh path in `ingest/`.
    pub(crate) fn ingest_path(&self) -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        self.root.join("ingest").join(format!(
            "{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Stores the content read from `r` as blob `expected`: written to
    /// `ingest/`, hashed as it streams, and renamed into place only if it
    /// hashes to `expected`. A mismatch is refused with
    /// [`Error::DigestMismatch`] and nothing is stored. Returns the size.
    pub fn write_blob(&self, expected: &Digest, r: impl Read) -> Result<u64> {
        let expected = digest::parse(expected.as_ref(), "blob digest")?;
        let dest = self.blob_path(&expected);
        if let Ok(m) = fs::metadata(&dest) {
            return Ok(m.len());
        }
        let tmp = self.ingest_path();
        let result = self.ingest(&tmp, &expected, r);
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        let size = result?;
        fs::rename(&tmp, &dest).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io("store blob", &dest, e)
        })?;
        Ok(size)
    }

    fn ingest(&self, tmp: &Path, expected: &Digest, mut r: impl Read) -> Result<u64> {
        let f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
            .map_err(|e| Error::io("create ingest file", tmp, e))?;
        let mut w = HashWriter::new(io::BufWriter::with_capacity(1 << 20, f));
        io::copy(&mut r, &mut w).map_err(|e| Error::io("write blob", tmp, e))?;
        let (actual, size, inner) = w.finish();
        let f = inner
            .into_inner()
            .map_err(|e| Error::io("write blob", tmp, e.into_error()))?;
        if actual != *expected {
            return Err(Error::DigestMismatch {
                what: "blob",
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        f.sync_all().map_err(|e| Error::io("sync blob", tmp, e))?;
        Ok(size)
    }

    /// Stores `bytes` (a manifest or config berth made) and returns their
    /// digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let d = digest::of(bytes);
        self.write_blob(&d, bytes)?;
        Ok(d)
    }

    /// Moves a file already hashed to `d` (made in `ingest/`) into place.
    pub(crate) fn commit_ingested(&self, tmp: &Path, d: &Digest) -> Result<()> {
        let dest = self.blob_path(d);
        fs::rename(tmp, &dest).map_err(|e| Error::io("store blob", &dest, e))
    }

    /// Reads a whole (small) blob: a manifest, index or config.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        let mut out = Vec::new();
        File::open(&p)
            .and_then(|mut f| f.read_to_end(&mut out))
            .map_err(|e| Error::io("read blob", &p, e))?;
        Ok(out)
    }

    /// The tags.
    pub(crate) fn refs(&self) -> Result<BTreeMap<String, String>> {
        let p = self.root.join("refs.json");
        match fs::read(&p) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|e| Error::image("refs.json", e.to_string()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io("read tags", &p, e)),
        }
    }

    fn save_refs(&self, refs: &BTreeMap<String, String>) -> Result<()> {
        let p = self.root.join("refs.json");
        let tmp = self.ingest_path();
        let bytes = serde_json::to_vec_pretty(refs).expect("a map of strings serialises");
        fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&bytes).and_then(|_| f.sync_all()))
            .and_then(|_| fs::rename(&tmp, &p))
            .map_err(|e| {
                let _ = fs::remove_file(&tmp);
                Error::io("write tags", &p, e)
            })
    }

    /// Points `reference` at the manifest `d` (which must be stored).
    pub fn tag(&self, reference: &str, d: &Digest) -> Result<String> {
        let name = reference::normalize(reference)?;
        if !self.has_blob(d) {
            return Err(Error::image(
                &name,
                format!("manifest {d} is not in the store"),
            ));
        }
        let _lock = self.lock()?;
        let mut refs = self.refs()?;
        refs.insert(name.clone(), d.to_string());
        self.save_refs(&refs)?;
        Ok(name)
    }

    /// Removes a tag; the content goes at the next [`gc`](Self::gc) if
    /// nothing else refers to it.
    pub fn untag(&self, reference: &str) -> Result<Digest> {
        let name = reference::normalize(reference)?;
        let _lock = self.lock()?;
        let mut refs = self.refs()?;
        let d = refs
            .remove(&name)
            .ok_or_else(|| Error::image(&name, "no such image"))?;
        self.save_refs(&refs)?;
        digest::parse(&d, "refs.json")
    }

    /// Finds an image by reference (`name[:tag]`) or manifest digest.
    pub fn image(&self, reference: &str) -> Result<Image> {
        let (name, d) = if reference.starts_with("sha256:") {
            let d = digest::parse(reference, "image reference")?;
            (reference.to_string(), d)
        } else {
            let name = reference::normalize(reference)?;
            let refs = self.refs()?;
            let d = refs
                .get(&name)
                .ok_or_else(|| Error::image(&name, "no such image"))?;
            (name, digest::parse(d, "refs.json")?)
        };
        self.image_by_digest(name, d)
    }

    pub(crate) fn image_by_digest(&self, reference: String, d: Digest) -> Result<Image> {
        if !self.has_blob(&d) {
            return Err(Error::image(
                &reference,
                format!("manifest {d} is not in the store"),
            ));
        }
        let manifest = ImageManifest::from_reader(&self.read_blob(&d)?[..])
            .map_err(|e| Error::image(format!("manifest {d}"), e.to_string()))?;
        let cd = manifest.config().digest();
        let config = ImageConfiguration::from_reader(&self.read_blob(cd)?[..])
            .map_err(|e| Error::image(format!("config {cd}"), e.to_string()))?;
        let image = Image {
            reference,
            digest: d,
            manifest,
            config,
        };
        check_layers(&image)?;
        Ok(image)
    }

    /// Every tag, sorted by reference.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let mut out = Vec::new();
        for (name, d) in self.refs()? {
            let image = self.image_by_digest(name.clone(), digest::parse(&d, "refs.json")?)?;
            out.push(ImageSummary {
                reference: name,
                size: image.size(),
                digest: image.digest,
            });
        }
        Ok(out)
    }

    /// The directory of the unpacked layer `diff_id`.
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.digest())
    }
}

/// A manifest's layers and its config's diff-ids must pair up.
pub(crate) fn check_layers(image: &Image) -> Result<()> {
    let layers = image.manifest.layers().len();
    let diffs = image.config.rootfs().diff_ids().len();
    if layers != diffs {
        return Err(Error::image(
            format!("manifest {}", image.digest),
            format!("{layers} layers but the config lists {diffs} diff_ids"),
        ));
    }
    image.diff_ids()?;
    for (i, l) in image.manifest.layers().iter().enumerate() {
        digest::parse(l.digest().as_ref(), &format!("manifest.layers[{i}].digest"))?;
    }
    Ok(())
}
