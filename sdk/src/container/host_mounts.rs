//! Mounts a container without a mount namespace of its own makes in the
//! host's: recorded in the state directory before they exist, removed at
//! delete (runc leaves them behind).
//!
//! Every such mount lies under the bind of the rootfs onto itself (made
//! private at once, so nothing propagates to the host's copies): detaching
//! that bind removes them all. The record is the rootfs path and how many
//! mounts sat on it before, so that only berth's bind is ever detached,
//! never a mount someone else made there (an image's overlay, say).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const FILE: &str = "host-mounts.json";

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    rootfs: PathBuf,
    before: usize,
}

/// How many mounts sit on `path` now (its lines in mountinfo).
fn mounts_at(path: &Path) -> usize {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = path.to_string_lossy();
    info.lines()
        .filter(|l| l.split_whitespace().nth(4) == Some(want.as_ref()))
        .count()
}

/// Records, in state directory `dir`, that the container will mount on
/// `rootfs` in this mount namespace.
pub(crate) fn record(dir: &Path, rootfs: &Path) -> Result<()> {
    let r = Record {
        rootfs: rootfs.to_path_buf(),
        before: mounts_at(rootfs),
    };
    let json =
        serde_json::to_vec(&r).map_err(|e| Error::io("record host mounts", dir, e.into()))?;
    crate::state::write_atomic(&dir.join(FILE), &json)
}

/// Detaches what [`record`] announced, if anything is left of it.
pub(crate) fn release(dir: &Path) -> Result<()> {
    let path = dir.join(FILE);
    let Ok(json) = std::fs::read(&path) else {
        return Ok(());
    };
    let r: Record = serde_json::from_slice(&json)
        .map_err(|e| Error::io("read host mounts record", &path, e.into()))?;
    while mounts_at(&r.rootfs) > r.before {
        nix::mount::umount2(&r.rootfs, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| Error::io("unmount the container's rootfs", &r.rootfs, e.into()))?;
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}
