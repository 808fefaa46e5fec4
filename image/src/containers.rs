//! How berth-image meets the runtime: containers made from stored images,
//! and the [`Snapshots`] extension that removes their writable layer when
//! they are deleted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth::extension::{Extension, ExtensionFuture, Release};
use berth::{Container, CreateOptions, Runtime, Status};

use crate::error::{Error, Result};
use crate::{ImageOverrides, ImageStore};

/// The name berth-image registers under, and the key of its request in
/// [`CreateOptions::extensions`].
pub const EXTENSION_NAME: &str = "image";

/// Image snapshots as a runtime extension: a container made with
/// [`create_container`] is recorded with it, and deleting the container
/// unmounts its rootfs and removes its writable layer. Register it in
/// [`Config::extensions`](berth::Config::extensions).
///
/// A runtime without root also needs the store's helper program
/// ([`Snapshots::with_helper`], [`ImageStore::with_helper`]): its
/// containers' files belong to the user's subordinate ids.
#[derive(Debug, Clone, Default)]
pub struct Snapshots {
    helper: Option<PathBuf>,
}

impl Snapshots {
    /// Snapshots of a store that, without root, writes and removes through
    /// `helper` (see [`ImageStore::with_helper`]).
    ///
    /// ```
    /// let images = berth_image::Snapshots::with_helper("/usr/bin/berth-images");
    /// let mut config = berth::Config::default();
    /// config.extensions.push(std::sync::Arc::new(images));
    /// ```
    pub fn with_helper(helper: impl Into<PathBuf>) -> Snapshots {
        Snapshots {
            helper: Some(helper.into()),
        }
    }

    /// The image store of runtime root `root`, with the helper if any.
    fn store(&self, root: &Path) -> Result<ImageStore> {
        let store = ImageStore::open(root)?;
        Ok(match &self.helper {
            Some(h) => store.with_helper(h),
            None => store,
        })
    }
}

impl Extension for Snapshots {
    fn name(&self) -> &str {
        EXTENSION_NAME
    }

    fn settings(&self) -> serde_json::Value {
        serde_json::json!({ "helper": self.helper })
    }

    fn with_settings(
        &self,
        settings: &serde_json::Value,
    ) -> berth::Result<Option<Arc<dyn Extension>>> {
        let helper = settings
            .get("helper")
            .and_then(|h| h.as_str())
            .map(PathBuf::from);
        Ok(Some(Arc::new(Snapshots { helper })))
    }

    fn release<'a>(&'a self, cx: Release<'a>) -> ExtensionFuture<'a, ()> {
        let dir = cx.state_dir.to_path_buf();
        let this = self.clone();
        Box::pin(async move {
            berth::blocking::run(move || crate::snapshot::release(&dir, |root| this.store(root)))
                .await
                .map_err(|e| Error::TaskFailed {
                    task: "snapshot release",
                    reason: e.to_string(),
                })??;
            Ok(())
        })
    }
}

/// The image store of `rt`'s root (`<root>/images`), with the helper of
/// `rt`'s [`Snapshots`] extension if it has one.
pub fn store(rt: &Runtime) -> Result<ImageStore> {
    let root = &rt.config().root;
    let snapshots = rt
        .config()
        .extensions
        .iter()
        .find(|e| e.name() == EXTENSION_NAME)
        .map(|e| e.settings());
    match snapshots
        .as_ref()
        .and_then(|s| s.get("helper"))
        .and_then(|h| h.as_str())
    {
        Some(helper) => Ok(ImageStore::open(root)?.with_helper(helper)),
        None => ImageStore::open(root),
    }
}

/// Creates a container from a stored image: its layers (unpacked once,
/// shared) under an overlay with a writable layer of the container's own,
/// and a spec from the image config (entrypoint, cmd, env, workdir, user)
/// with `overrides` on top. Deleting the container removes the writable
/// layer; `rt` must have [`Snapshots`] among its extensions.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = berth::Config::default();
/// config.extensions.push(std::sync::Arc::new(berth_image::Snapshots::default()));
/// let rt = berth::Runtime::new(config).await?;
/// let store = berth_image::store(&rt)?;
/// store.import_layout(std::path::Path::new("busybox-oci"), None, "busybox")?;
/// let ctr = berth_image::create_container(
///     &rt,
///     "bb",
///     "busybox",
///     berth_image::ImageOverrides::default(),
///     berth::CreateOptions::default(),
/// )
/// .await?;
/// ctr.start().await?;
/// ctr.wait().await?;
/// ctr.delete().await?; // unmounts and removes the container's layer
/// # Ok(()) }
/// ```
pub async fn create_container(
    rt: &Runtime,
    id: &str,
    image_ref: &str,
    overrides: ImageOverrides,
    mut opts: CreateOptions,
) -> Result<Container> {
    berth::validate_id(id)?;
    if rt.config().root.join(id).exists() {
        return Err(berth::Error::AlreadyExists(id.to_string()).into());
    }
    let store = store(rt)?;
    let (id_owned, image_ref) = (id.to_string(), image_ref.to_string());
    let s = store.clone();
    let (snap, spec, rootfs_mount) = berth::blocking::run(move || {
        let image = s.image(&image_ref)?;
        let snap = s.prepare(&id_owned, &image)?;
        let built = spec_and_mount(&s, &image, &snap, &id_owned, &overrides);
        match built {
            Ok((spec, mount)) => Ok((snap, spec, mount)),
            Err(e) => {
                let _ = s.remove_snapshot(&id_owned);
                Err(e)
            }
        }
    })
    .await
    .map_err(|e| Error::TaskFailed {
        task: "image preparation",
        reason: e.to_string(),
    })??;
    let bundle = match berth::Bundle::new(&snap.dir, spec) {
        Ok(b) => b,
        Err(e) => {
            let _ = store.remove_snapshot(id);
            return Err(e.into());
        }
    };
    opts.extensions
        .insert(EXTENSION_NAME.into(), serde_json::Value::Null);
    opts.rootfs_mount = rootfs_mount;
    match rt.create_with(id, bundle, opts).await {
        Ok(c) => Ok(c),
        Err(e) => {
            // The snapshot is this call's own: prepare refuses an id that
            // has one.
            let _ = store.remove_snapshot(id);
            Err(e.into())
        }
    }
}

/// The spec of container `id` made from `image` with snapshot `snap`, and
/// the overlay the container mounts itself (a user's snapshot; `None` for
/// one mounted on the host).
fn spec_and_mount(
    store: &ImageStore,
    image: &crate::Image,
    snap: &crate::Snapshot,
    id: &str,
    overrides: &ImageOverrides,
) -> Result<(berth::oci_spec::runtime::Spec, Option<berth::RootfsMount>)> {
    let Some(mount) = store.rootfs_mount(id)? else {
        let spec = crate::build_spec(&image.config, &image.reference, &snap.rootfs(), overrides)?;
        return Ok((spec, None));
    };
    // Not mounted here: the image's files are read from its layers, top
    // first.
    let mut dirs: Vec<PathBuf> = image
        .diff_ids()?
        .iter()
        .rev()
        .map(|d| store.layer_dir(d))
        .collect();
    dirs.insert(0, snap.upper());
    let mut spec = crate::spec::build_in(
        &image.config,
        &image.reference,
        &snap.rootfs(),
        &dirs,
        overrides,
    )?;
    if let Some(mappings) = store.mappings()? {
        crate::spec::in_user_namespace(&mut spec, &mappings);
    }
    Ok((spec, Some(mount)))
}

/// Resets a stopped container's rootfs to its image (drops every change it
/// made).
pub async fn rollback(rt: &Runtime, id: &str) -> Result<()> {
    let ctr = rt.get(id).await?;
    let status = ctr.status().await?;
    if status != Status::Stopped {
        return Err(berth::Error::InvalidState {
            id: id.to_string(),
            status: status.to_string(),
            op: "roll back (stop it first)",
        }
        .into());
    }
    let store = store(rt)?;
    let id = id.to_string();
    berth::blocking::run(move || store.rollback(&id))
        .await
        .map_err(|e| Error::TaskFailed {
            task: "rollback",
            reason: e.to_string(),
        })?
}

/// Commits container `id`'s changes as a new image tagged `reference` and
/// returns its manifest digest.
pub async fn commit(rt: &Runtime, id: &str, reference: &str) -> Result<oci_spec::image::Digest> {
    berth::validate_id(id)?;
    let store = store(rt)?;
    let (id, reference) = (id.to_string(), reference.to_string());
    berth::blocking::run(move || store.commit(&id, &reference))
        .await
        .map_err(|e| Error::TaskFailed {
            task: "commit",
            reason: e.to_string(),
        })?
}
