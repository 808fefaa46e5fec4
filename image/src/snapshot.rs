//! The overlay snapshotter: a container's rootfs is an overlay mount of
//! the image's layers (lowerdirs, top first) with an upper and work
//! directory of its own, in `images/snapshots/<id>/`.
//!
//! Layers are passed one by one with the new mount API's `lowerdir+`
//! (Linux 6.8), so the number of layers is not bounded by the one-page
//! limit of mount(2)'s option string. Older kernels get mount(2) with
//! short symlinked names (`images/l/<12 hex>`), as containers-storage
//! does, which fits about a hundred layers.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags};
use serde::{Deserialize, Serialize};

use super::store::{Image, ImageStore};
use crate::error::{Error, Result};

/// What a snapshot was made from, in `snapshot.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The image reference the container was created from.
    pub image: String,
    /// Its manifest digest.
    pub manifest: String,
    /// The layers below the upper dir, base first.
    pub diff_ids: Vec<String>,
    /// A user's snapshot: its overlay is mounted in the container's own
    /// user namespace (with `userxattr`), never on the host, and its
    /// files are removed through the store's helper.
    #[serde(default)]
    pub rootless: bool,
}

/// A container's snapshot directories.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Snapshot {
    /// `images/snapshots/<id>`.
    pub dir: PathBuf,
}

impl Snapshot {
    /// The container's rootfs (the overlay mount point).
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    /// The container's writable layer.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub(crate) fn record(&self) -> Result<Record> {
        let p = self.dir.join("snapshot.json");
        let b = fs::read(&p).map_err(|e| Error::io("read snapshot record", &p, e))?;
        serde_json::from_slice(&b).map_err(|e| Error::image(p.display().to_string(), e.to_string()))
    }
}

impl ImageStore {
    /// The snapshot of container `id` (whether or not it exists).
    pub fn snapshot(&self, id: &str) -> Snapshot {
        Snapshot {
            dir: self.root().join("snapshots").join(id),
        }
    }

    /// Unpacks what is missing of `image` and mounts a fresh rootfs for
    /// container `id`. On error nothing of the snapshot is left.
    pub fn prepare(&self, id: &str, image: &Image) -> Result<Snapshot> {
        berth::validate_id(id)?;
        let _lock = self.lock()?;
        let snap = self.snapshot(id);
        match fs::create_dir(&snap.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(id.to_string()))
            }
            Err(e) => return Err(Error::io("create snapshot", &snap.dir, e)),
        }
        let result = self.prepare_in(&snap, image);
        if result.is_err() {
            let _ = self.remove_tree(&snap.dir);
        }
        result.map(|()| snap)
    }

    fn prepare_in(&self, snap: &Snapshot, image: &Image) -> Result<()> {
        let record = Record {
            image: image.reference.clone(),
            manifest: image.digest.to_string(),
            diff_ids: image.diff_ids()?.iter().map(|d| d.to_string()).collect(),
            rootless: self.unprivileged().is_some(),
        };
        let p = snap.dir.join("snapshot.json");
        fs::write(&p, serde_json::to_vec(&record).expect("serialisable"))
            .map_err(|e| Error::io("write snapshot record", &p, e))?;
        let lowers = self.ensure_layers(image)?;
        for d in [snap.upper(), snap.work(), snap.rootfs()] {
            fs::create_dir(&d).map_err(|e| Error::io("create snapshot", &d, e))?;
        }
        if record.rootless {
            // Mounted by the container, in its user namespace.
            return Ok(());
        }
        self.mount(snap, &image.diff_ids()?, &lowers)
    }

    /// The overlay a user's container mounts on its rootfs, in its own
    /// user namespace ([`berth::CreateOptions::rootfs_mount`]); `None` for
    /// a snapshot root mounted on the host.
    pub fn rootfs_mount(&self, id: &str) -> Result<Option<berth::RootfsMount>> {
        let snap = self.snapshot(id);
        let record = snap.record()?;
        if !record.rootless {
            return Ok(None);
        }
        let ids = record
            .diff_ids
            .iter()
            .map(|d| super::digest::parse(d, "snapshot.json"))
            .collect::<Result<Vec<_>>>()?;
        let _lock = self.lock()?;
        // `userxattr` implies no metacopy and no redirects followed (the
        // kernel refuses them spelled out), so the upper dir is a full diff.
        let data = self.overlay_data(&snap, &ids, "userxattr,index=off")?;
        Ok(Some(berth::RootfsMount::new("overlay", "overlay", data)))
    }

    /// mount(2)'s options for `snap`'s overlay of layers `ids` (base
    /// first), by their short links, with `more` options after them; at
    /// most a page, as mount(2) takes.
    fn overlay_data(&self, snap: &Snapshot, ids: &[Digest], more: &str) -> Result<String> {
        let lowers = self.short_lowers(snap, ids)?;
        let data = format!(
            "lowerdir={},upperdir={},workdir={},{more}",
            lowers.join(":"),
            snap.upper().display(),
            snap.work().display()
        );
        if data.len() >= 4096 {
            return Err(Error::Unsupported(format!(
                "{} layers do not fit mount(2)'s options",
                ids.len()
            )));
        }
        Ok(data)
    }

    /// The lower directories of `snap` (its layers `ids`, base first), top
    /// first, by the short links of `images/l` (an empty directory for an
    /// image without layers). The caller holds the lock.
    fn short_lowers(&self, snap: &Snapshot, ids: &[Digest]) -> Result<Vec<String>> {
        if ids.is_empty() {
            let empty = snap.dir.join("empty");
            if !empty.is_dir() {
                fs::create_dir(&empty).map_err(|e| Error::io("create snapshot", &empty, e))?;
            }
            return Ok(vec![empty.display().to_string()]);
        }
        let links = self.root().join("l");
        fs::create_dir_all(&links).map_err(|e| Error::io("create layer links", &links, e))?;
        let mut names = Vec::new();
        for id in ids.iter().rev() {
            let link = links.join(&id.digest()[..12]);
            if fs::symlink_metadata(&link).is_err() {
                symlink(format!("../layers/{}", id.digest()), &link)
                    .map_err(|e| Error::io("create layer link", &link, e))?;
            }
            names.push(link.display().to_string());
        }
        Ok(names)
    }

    fn mount(&self, snap: &Snapshot, diff_ids: &[Digest], lowers: &[PathBuf]) -> Result<()> {
        let lowers: Vec<PathBuf> = if lowers.is_empty() {
            let empty = snap.dir.join("empty");
            fs::create_dir(&empty).map_err(|e| Error::io("create snapshot", &empty, e))?;
            vec![empty]
        } else {
            lowers.iter().rev().cloned().collect()
        };
        match mount_fsconfig(snap, &lowers) {
            Ok(()) => Ok(()),
            Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::INVAL => {
                self.mount_legacy(snap, diff_ids)
            }
            Err(e) => Err(Error::io("mount overlay", snap.rootfs(), e.into())),
        }
    }

    fn mount_legacy(&self, snap: &Snapshot, diff_ids: &[Digest]) -> Result<()> {
        // (No `lowerdir+` on this kernel: one page of options.)
        let data = self.overlay_data(snap, diff_ids, "index=off,redirect_dir=off,metacopy=off")?;
        nix::mount::mount(
            Some("overlay"),
            &snap.rootfs(),
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|e| Error::io("mount overlay", snap.rootfs(), e.into()))
    }

    /// Unmounts and removes the snapshot of container `id`, if any.
    pub fn remove_snapshot(&self, id: &str) -> Result<()> {
        let snap = self.snapshot(id);
        if !snap.dir.exists() {
            return Ok(());
        }
        let _lock = self.lock()?;
        // A user's store never mounts on the host.
        if self.unprivileged().is_none() {
            unmount(&snap.rootfs())?;
        }
        self.remove_tree(&snap.dir)
    }

    /// Resets container `id`'s rootfs to its image: the upper dir is
    /// emptied and the overlay mounted afresh. The container must not be
    /// running (its own mount namespace would keep the old mount).
    pub fn rollback(&self, id: &str) -> Result<()> {
        let snap = self.snapshot(id);
        let record = snap.record()?;
        let _lock = self.lock()?;
        if !record.rootless {
            unmount(&snap.rootfs())?;
        }
        for d in [snap.upper(), snap.work()] {
            self.remove_tree(&d)?;
            fs::create_dir(&d).map_err(|e| Error::io("reset snapshot", &d, e))?;
        }
        if record.rootless {
            // The container mounts it again when it is created.
            return Ok(());
        }
        let ids = record
            .diff_ids
            .iter()
            .map(|d| super::digest::parse(d, "snapshot.json"))
            .collect::<Result<Vec<_>>>()?;
        let lowers: Vec<PathBuf> = ids.iter().map(|d| self.layer_dir(d)).collect();
        self.mount(&snap, &ids, &lowers)
    }
}

/// Mounts with fsopen/fsconfig, one `lowerdir+` per layer (top first).
fn mount_fsconfig(snap: &Snapshot, lowers: &[PathBuf]) -> rustix::io::Result<()> {
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    rustix::mount::fsconfig_set_string(&fs, "source", "berth")?;
    for l in lowers {
        rustix::mount::fsconfig_set_string(&fs, "lowerdir+", l.as_path())?;
    }
    rustix::mount::fsconfig_set_string(&fs, "upperdir", snap.upper().as_path())?;
    rustix::mount::fsconfig_set_string(&fs, "workdir", snap.work().as_path())?;
    // Commit reads the upper dir as a diff: every change must be there in
    // full (no metacopy-only files, no redirected directories).
    for (k, v) in [
        ("index", "off"),
        ("redirect_dir", "off"),
        ("metacopy", "off"),
    ] {
        rustix::mount::fsconfig_set_string(&fs, k, v)?;
    }
    rustix::mount::fsconfig_create(&fs)?;
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        snap.rootfs().as_path(),
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
}

fn unmount(p: &Path) -> Result<()> {
    match rustix::mount::unmount(p, UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(Error::io("unmount rootfs", p, e.into())),
    }
}

/// Removes the snapshot of the container whose state directory is
/// `state_dir` (`<root>/<id>`), if it has one, from the store `open`
/// gives for the runtime root: called by delete.
pub(crate) fn release(
    state_dir: &Path,
    open: impl FnOnce(&Path) -> Result<ImageStore>,
) -> Result<()> {
    let (Some(root), Some(id)) = (
        state_dir.parent(),
        state_dir.file_name().and_then(|n| n.to_str()),
    ) else {
        return Ok(());
    };
    if !root.join("images/snapshots").join(id).exists() {
        return Ok(());
    }
    open(root)?.remove_snapshot(id)
}
