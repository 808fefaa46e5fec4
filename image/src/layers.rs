//! Unpacked layers: each layer unpacked once, by diff-id, into
//! `images/layers/<hex>`, shared by every image that has it. Layers of one
//! image are unpacked in parallel.

use std::fs;
use std::path::PathBuf;

use oci_spec::image::Digest;

use super::store::{Image, ImageStore};
use super::{digest, unpack};
use crate::error::{Error, Result};

impl ImageStore {
    /// Makes sure every layer of `image` is unpacked; returns the layer
    /// directories, base first. The caller holds the store lock.
    pub(crate) fn ensure_layers(&self, image: &Image) -> Result<Vec<PathBuf>> {
        let diff_ids = image.diff_ids()?;
        let mut todo = Vec::new();
        for (i, (layer, diff_id)) in image.manifest.layers().iter().zip(&diff_ids).enumerate() {
            if self.layer_dir(diff_id).is_dir() {
                continue;
            }
            let blob = digest::parse(
                layer.digest().as_ref(),
                &format!("manifest.layers[{i}].digest"),
            )?;
            if !self.has_blob(&blob) {
                return Err(Error::image(
                    format!("manifest.layers[{i}]"),
                    format!("blob {blob} is not in the store"),
                ));
            }
            if !todo.iter().any(|(_, d): &(Digest, Digest)| d == diff_id) {
                todo.push((blob, diff_id.clone()));
            }
        }
        let width = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2);
        for chunk in todo.chunks(width) {
            let results: Vec<Result<()>> = std::thread::scope(|s| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|(blob, diff_id)| s.spawn(move || self.unpack_one(blob, diff_id)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(Error::TaskFailed {
                                task: "layer unpack",
                                reason: "the thread panicked".into(),
                            })
                        })
                    })
                    .collect()
            });
            results.into_iter().collect::<Result<()>>()?;
        }
        Ok(diff_ids.iter().map(|d| self.layer_dir(d)).collect())
    }

    /// Unpacks into a temporary directory and renames it into place; on
    /// any error nothing of the layer is left.
    fn unpack_one(&self, blob: &Digest, diff_id: &Digest) -> Result<()> {
        // A user's layers are written as the ids its containers map.
        let mappings = self.mappings()?;
        if mappings.is_none() && !nix::unistd::geteuid().is_root() {
            return Err(Error::Unsupported(
                "unpacking a layer without root needs the store's helper \
                 (ImageStore::with_helper, Snapshots::with_helper): its files belong to \
                 several users"
                    .into(),
            ));
        }
        let dest = self.layer_dir(diff_id);
        let tmp = self.root().join("layers").join(format!(
            ".tmp-{}",
            self.ingest_path()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("x")
        ));
        fs::create_dir(&tmp).map_err(|e| Error::io("create layer directory", &tmp, e))?;
        let blob_path = self.blob_path(blob);
        let unpacked = match (self.unprivileged(), &mappings) {
            (Some(u), Some(m)) => u.unpack(m, &blob_path, blob, diff_id, &tmp),
            _ => unpack::unpack(&blob_path, blob, diff_id, &tmp),
        };
        let result = unpacked
            .and_then(|()| fs::rename(&tmp, &dest).map_err(|e| Error::io("store layer", &dest, e)));
        if result.is_err() {
            let _ = self.remove_tree(&tmp);
        }
        result
    }
}
