//! Test images built from the busybox rootfs: tar layers in memory,
//! written as OCI image layouts, and a guard that leaves no store behind.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

pub use berth_fixtures::image::*;

/// Bytes and inodes under a directory, each inode counted once.
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let m = fs::symlink_metadata(e.path()).unwrap();
            if seen.insert((m.dev(), m.ino())) {
                total += m.blocks() * 512;
            }
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

/// Removes the image store of a test runtime when the test ends: on
/// success it first checks that untagging everything and a GC leave no
/// blob, layer or snapshot; on a panic it unmounts and removes what is
/// left.
pub struct StoreGuard(pub PathBuf);

impl StoreGuard {
    pub fn new(rt: &berth::Runtime) -> StoreGuard {
        StoreGuard(rt.config().root.join("images"))
    }
}

fn count(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

impl Drop for StoreGuard {
    fn drop(&mut self) {
        if !self.0.exists() {
            return;
        }
        for id in count(&self.0.join("snapshots")) {
            let _ = nix::mount::umount2(
                &self.0.join("snapshots").join(&id).join("rootfs"),
                nix::mount::MntFlags::MNT_DETACH,
            );
        }
        let panicking = std::thread::panicking();
        let check = if panicking {
            None
        } else {
            let store = berth_image::ImageStore::open(self.0.parent().unwrap()).unwrap();
            for img in store.list().unwrap() {
                store.untag(&img.reference).unwrap();
            }
            store.gc().unwrap();
            Some((
                count(&self.0.join("blobs/sha256")),
                count(&self.0.join("layers")),
                count(&self.0.join("snapshots")),
                count(&self.0.join("ingest")),
            ))
        };
        fs::remove_dir_all(&self.0).unwrap();
        if let Some((blobs, layers, snaps, ingest)) = check {
            assert!(blobs.is_empty(), "blobs left after gc: {blobs:?}");
            assert!(layers.is_empty(), "layers left after gc: {layers:?}");
            assert!(snaps.is_empty(), "snapshots left: {snaps:?}");
            assert!(ingest.is_empty(), "ingest files left: {ingest:?}");
        }
    }
}

/// Whether anything is mounted at or below `path` (from mountinfo).
pub fn mounted_below(path: &Path) -> bool {
    let p = path.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&p)))
}

/// Debian's docker-registry serving on 127.0.0.1 from a temp dir
/// ([`berth_fixtures::image::Registry`]), with skopeo pushes and a look at
/// its storage.
pub struct Registry {
    inner: berth_fixtures::image::Registry,
    /// `127.0.0.1:<port>`.
    pub addr: String,
}

impl Registry {
    pub async fn start() -> Registry {
        let inner = tokio::task::spawn_blocking(berth_fixtures::image::Registry::start)
            .await
            .unwrap();
        let addr = inner.addr().to_string();
        Registry { inner, addr }
    }

    /// Pushes the image named `name` of an OCI layout (all platforms) to
    /// `repo_tag` with skopeo.
    pub fn push_layout(&self, layout: &Path, name: &str, repo_tag: &str) {
        let policy = self.inner.dir().join("policy.json");
        fs::write(
            &policy,
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
        let out = std::process::Command::new("skopeo")
            .arg("--policy")
            .arg(&policy)
            .args([
                "copy",
                "--all",
                "--preserve-digests",
                "--dest-tls-verify=false",
            ])
            .arg(format!("oci:{}:{name}", layout.display()))
            .arg(format!("docker://{}/{repo_tag}", self.addr))
            .output()
            .expect("skopeo (scripts/install-deps.sh installs it)");
        assert!(
            out.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The registry's stored copy of blob `hex`.
    pub fn blob_file(&self, hex: &str) -> PathBuf {
        self.inner
            .dir()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}
