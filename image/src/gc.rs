//! Garbage collection: a mark and sweep from the tags and the live
//! snapshots. A blob or unpacked layer is kept while at least one tagged
//! image or one container snapshot refers to it.

use std::collections::HashSet;
use std::fs;

use super::digest;
use super::store::ImageStore;
use crate::error::{Error, Result};

/// What [`ImageStore::gc`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Blobs removed.
    pub blobs: usize,
    /// Unpacked layers removed.
    pub layers: usize,
    /// Bytes of blobs removed.
    pub bytes: u64,
}

impl ImageStore {
    /// How many tagged images and snapshots use each blob and layer; what
    /// none uses is removed, together with leftovers of interrupted
    /// writes.
    pub fn gc(&self) -> Result<GcReport> {
        let _pulls = self.gc_guard(true)?;
        let _lock = self.lock()?;
        let mut blobs = HashSet::new();
        let mut layers = HashSet::new();
        for (name, d) in self.refs()? {
            let image = self.image_by_digest(name, digest::parse(&d, "refs.json")?)?;
            blobs.insert(image.digest.digest().to_string());
            blobs.insert(image.manifest.config().digest().digest().to_string());
            for l in image.manifest.layers() {
                blobs.insert(l.digest().digest().to_string());
            }
            for d in image.diff_ids()? {
                layers.insert(d.digest().to_string());
            }
        }
        let snaps = self.root().join("snapshots");
        for e in fs::read_dir(&snaps).map_err(|e| Error::io("list snapshots", &snaps, e))? {
            let e = e.map_err(|e| Error::io("list snapshots", &snaps, e))?;
            let Some(id) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(record) = self.snapshot(&id).record() else {
                continue;
            };
            // The snapshot's image may be untagged: keep its blobs for a
            // later commit.
            if let Ok(d) = digest::parse(&record.manifest, "snapshot.json") {
                if let Ok(image) = self.image_by_digest(record.image.clone(), d) {
                    blobs.insert(image.digest.digest().to_string());
                    blobs.insert(image.manifest.config().digest().digest().to_string());
                    for l in image.manifest.layers() {
                        blobs.insert(l.digest().digest().to_string());
                    }
                }
            }
            for d in &record.diff_ids {
                layers.insert(digest::parse(d, "snapshot.json")?.digest().to_string());
            }
        }

        let mut report = GcReport::default();
        let dir = self.root().join("blobs/sha256");
        for e in fs::read_dir(&dir)
            .map_err(|e| Error::io("list blobs", &dir, e))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !blobs.contains(&name) {
                report.bytes += e.metadata().map_or(0, |m| m.len());
                fs::remove_file(e.path()).map_err(|err| Error::io("remove blob", e.path(), err))?;
                report.blobs += 1;
            }
        }
        let dir = self.root().join("layers");
        for e in fs::read_dir(&dir)
            .map_err(|e| Error::io("list layers", &dir, e))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") && pid_alive(&name[5..]) {
                continue;
            }
            if !layers.contains(&name) {
                self.remove_tree(&e.path())?;
                if !name.starts_with(".tmp-") {
                    report.layers += 1;
                }
            }
        }
        let links = self.root().join("l");
        if let Ok(rd) = fs::read_dir(&links) {
            for e in rd.flatten() {
                if !e.path().exists() {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let ingest = self.root().join("ingest");
        for e in fs::read_dir(&ingest)
            .map_err(|e| Error::io("list ingest", &ingest, e))?
            .flatten()
        {
            // Partial downloads (`partial-<hex>`) of ended pulls go too.
            if !pid_alive(&e.file_name().to_string_lossy()) {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(report)
    }
}

/// Whether the writer of an ingest or temporary name (`<pid>-<n>`) still
/// runs, so its file is work in progress.
fn pid_alive(name: &str) -> bool {
    name.split('-')
        .next()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
}
