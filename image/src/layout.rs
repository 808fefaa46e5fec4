//! OCI image-layout import and export, with platform selection from an
//! image index.

use std::fs::{self, File};
use std::path::Path;

use oci_spec::image::{
    Descriptor, ImageIndex, ImageIndexBuilder, ImageManifest, MediaType, OciLayoutBuilder,
    Platform, ANNOTATION_REF_NAME,
};

use super::digest;
use super::store::{check_layers, ImageStore};
use crate::error::{Error, Result};

/// The GOARCH name of this machine, as image platforms spell it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Whether a descriptor's media type is an index (OCI or Docker list).
pub(crate) fn is_index(media_type: &MediaType) -> bool {
    let s = media_type.to_string();
    s.contains("image.index") || s.contains("manifest.list")
}

/// Picks the manifest for linux on this machine's architecture.
pub(crate) fn select_platform<'a>(index: &'a ImageIndex, what: &str) -> Result<&'a Descriptor> {
    let fits = |p: &Option<Platform>| {
        p.as_ref().is_some_and(|p| {
            p.os().to_string() == "linux" && p.architecture().to_string() == host_arch()
        })
    };
    index
        .manifests()
        .iter()
        .find(|d| fits(d.platform()))
        .or_else(|| match index.manifests().as_slice() {
            [only] if only.platform().is_none() => Some(only),
            _ => None,
        })
        .ok_or_else(|| Error::image(what, format!("no manifest for linux/{}", host_arch())))
}

impl ImageStore {
    /// Imports the image named `name_in_layout` (its
    /// `org.opencontainers.image.ref.name` annotation; `None` when the
    /// layout has one image) from the OCI image layout at `dir`, verifying
    /// every blob, and tags it `reference`. An index is resolved to the
    /// manifest for this machine's platform. Returns the normalised
    /// reference.
    pub fn import_layout(
        &self,
        dir: &Path,
        name_in_layout: Option<&str>,
        reference: &str,
    ) -> Result<String> {
        let layout_file = dir.join("oci-layout");
        let text =
            fs::read(&layout_file).map_err(|e| Error::io("read oci-layout", &layout_file, e))?;
        let layout = oci_spec::image::OciLayout::from_reader(&text[..])
            .map_err(|e| Error::image("oci-layout", e.to_string()))?;
        if layout.image_layout_version() != "1.0.0" {
            return Err(Error::image(
                "oci-layout.imageLayoutVersion",
                format!("unsupported version {}", layout.image_layout_version()),
            ));
        }
        let index_file = dir.join("index.json");
        let index = ImageIndex::from_file(&index_file)
            .map_err(|e| Error::image("index.json", e.to_string()))?;
        let chosen = match name_in_layout {
            Some(n) => index
                .manifests()
                .iter()
                .find(|d| {
                    d.annotations()
                        .as_ref()
                        .and_then(|a| a.get(ANNOTATION_REF_NAME))
                        .is_some_and(|v| v == n)
                })
                .ok_or_else(|| Error::image("index.json", format!("no image named {n:?}")))?,
            None => match index.manifests().as_slice() {
                [only] => only,
                [] => return Err(Error::image("index.json", "no images")),
                _ => {
                    return Err(Error::image(
                        "index.json",
                        "several images: name the one to import",
                    ))
                }
            },
        };
        let _lock = self.lock()?;
        let mut desc = chosen.clone();
        for _ in 0..4 {
            if !is_index(desc.media_type()) {
                break;
            }
            self.copy_blob(dir, &desc)?;
            let nested = ImageIndex::from_reader(&self.read_blob(desc.digest())?[..])
                .map_err(|e| Error::image(format!("index {}", desc.digest()), e.to_string()))?;
            desc = select_platform(&nested, &format!("index {}", desc.digest()))?.clone();
        }
        self.copy_blob(dir, &desc)?;
        let manifest = ImageManifest::from_reader(&self.read_blob(desc.digest())?[..])
            .map_err(|e| Error::image(format!("manifest {}", desc.digest()), e.to_string()))?;
        self.copy_blob(dir, manifest.config())?;
        for layer in manifest.layers() {
            self.copy_blob(dir, layer)?;
        }
        let d = digest::parse(desc.digest().as_ref(), "manifest digest")?;
        let image = self.image_by_digest(reference.to_string(), d.clone())?;
        check_layers(&image)?;
        drop(_lock);
        self.tag(reference, &d)
    }

    /// Copies one blob of a layout into the store, verified.
    fn copy_blob(&self, dir: &Path, desc: &Descriptor) -> Result<()> {
        let d = digest::parse(desc.digest().as_ref(), "descriptor digest")?;
        let src = dir.join("blobs/sha256").join(d.digest());
        let f = File::open(&src).map_err(|e| Error::io("open layout blob", &src, e))?;
        let size = self.write_blob(&d, f)?;
        if size != desc.size() {
            return Err(Error::image(
                format!("descriptor {d}"),
                format!("size {} but the blob has {size} bytes", desc.size()),
            ));
        }
        Ok(())
    }

    /// Writes the image `reference` as an OCI image layout in `dir`
    /// (created if missing; blobs added to those already there), named by
    /// its reference in `index.json`.
    pub fn export_layout(&self, reference: &str, dir: &Path) -> Result<()> {
        let image = self.image(reference)?;
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|e| Error::io("create layout", &blobs, e))?;
        let mut all = vec![image.manifest.config().clone()];
        all.extend(image.manifest.layers().iter().cloned());
        for d in all.iter().map(|d| d.digest()).chain([&image.digest]) {
            let dest = blobs.join(d.digest());
            if !dest.exists() {
                fs::copy(self.blob_path(d), &dest)
                    .map_err(|e| Error::io("export blob", &dest, e))?;
            }
        }
        let size = fs::metadata(self.blob_path(&image.digest))
            .map_err(|e| Error::io("stat manifest", self.blob_path(&image.digest), e))?
            .len();
        let mut desc = Descriptor::new(MediaType::ImageManifest, size, image.digest.clone());
        desc.set_annotations(Some(
            [(ANNOTATION_REF_NAME.to_string(), image.reference.clone())].into(),
        ));
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![desc])
            .build()
            .map_err(|e| Error::image("index.json", e.to_string()))?;
        let layout = OciLayoutBuilder::default()
            .image_layout_version("1.0.0")
            .build()
            .map_err(|e| Error::image("oci-layout", e.to_string()))?;
        index.to_file_pretty(dir.join("index.json")).map_err(|e| {
            Error::io(
                "write index.json",
                dir.join("index.json"),
                std::io::Error::other(e),
            )
        })?;
        layout.to_file(dir.join("oci-layout")).map_err(|e| {
            Error::io(
                "write oci-layout",
                dir.join("oci-layout"),
                std::io::Error::other(e),
            )
        })
    }
}
