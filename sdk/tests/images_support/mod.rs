//! Test images built from the busybox rootfs: tar layers in memory,
//! written as OCI image layouts, and a guard that leaves no store behind.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use berth::image::digest;
use berth::oci_spec::image::{
    ConfigBuilder, Descriptor, ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder,
    MediaType, OciLayoutBuilder, RootFsBuilder,
};

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug)]
pub enum Comp {
    Plain,
    Gzip,
    Zstd,
}

/// An uncompressed layer being built.
pub struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    pub fn new() -> Layer {
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        Layer(b)
    }

    /// `name` (relative) from the host directory `src`, recursively.
    pub fn dir_from(mut self, name: &str, src: &Path) -> Layer {
        self.0.append_dir_all(name, src).unwrap();
        self
    }

    pub fn dir(mut self, name: &str, mode: u32) -> Layer {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        self.0.append_data(&mut h, name, std::io::empty()).unwrap();
        self
    }

    pub fn file(mut self, name: &str, data: &[u8], mode: u32) -> Layer {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        self.0.append_data(&mut h, name, data).unwrap();
        self
    }

    /// An entry whose name and link name are written raw, bypassing the
    /// tar crate's own checks (for malicious layers).
    pub fn raw(mut self, kind: tar::EntryType, name: &[u8], link: &[u8], data: &[u8]) -> Layer {
        let mut h = tar::Header::new_old();
        h.set_entry_type(kind);
        h.set_mode(0o777);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    pub fn into_tar(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// The busybox rootfs as one layer.
pub fn busybox_layer() -> Vec<u8> {
    let root = berth_fixtures::rootfs::shared().unwrap();
    let mut l = Layer::new();
    for e in fs::read_dir(&root).unwrap() {
        let e = e.unwrap();
        l = l.dir_from(e.file_name().to_str().unwrap(), &e.path());
    }
    l.into_tar()
}

pub fn compress(tar: &[u8], comp: Comp) -> Vec<u8> {
    match comp {
        Comp::Plain => tar.to_vec(),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        Comp::Zstd => zstd::encode_all(tar, 3).unwrap(),
    }
}

/// What the image config says to run.
#[derive(Default, Clone)]
pub struct Run {
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
}

pub fn sh(script: &str) -> Run {
    Run {
        cmd: vec!["sh".into(), "-c".into(), script.into()],
        ..Run::default()
    }
}

fn put(blobs: &Path, bytes: &[u8]) -> berth::oci_spec::image::Digest {
    let d = digest::of(bytes);
    fs::write(blobs.join(d.digest()), bytes).unwrap();
    d
}

/// Writes an OCI image layout with one image (named `name` in index.json)
/// made of `layers` (uncompressed tars, compressed as given). With
/// `as_index`, the manifest sits behind a nested index listing another
/// platform first. Returns the manifest digest.
pub fn write_layout(
    dir: &Path,
    name: &str,
    layers: &[(Vec<u8>, Comp)],
    run: &Run,
    as_index: bool,
) -> berth::oci_spec::image::Digest {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for (tar, comp) in layers {
        diff_ids.push(digest::of(tar).to_string());
        let blob = compress(tar, *comp);
        let mt = match comp {
            Comp::Plain => MediaType::ImageLayer,
            Comp::Gzip => MediaType::ImageLayerGzip,
            Comp::Zstd => MediaType::ImageLayerZstd,
        };
        let d = put(&blobs, &blob);
        descs.push(Descriptor::new(mt, blob.len() as u64, d));
    }
    let mut c = ConfigBuilder::default()
        .cmd(run.cmd.clone())
        .env(run.env.clone());
    if !run.entrypoint.is_empty() {
        c = c.entrypoint(run.entrypoint.clone());
    }
    if let Some(u) = &run.user {
        c = c.user(u.clone());
    }
    if let Some(w) = &run.workdir {
        c = c.working_dir(w.clone());
    }
    let config = ImageConfigurationBuilder::default()
        .architecture(berth::image::host_arch())
        .os("linux")
        .config(c.build().unwrap())
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let config = config.to_string().unwrap();
    let cd = put(&blobs, config.as_bytes());
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config.len() as u64,
            cd,
        ))
        .layers(descs)
        .build()
        .unwrap()
        .to_string()
        .unwrap();
    let md = put(&blobs, manifest.as_bytes());
    let mut top = Descriptor::new(MediaType::ImageManifest, manifest.len() as u64, md.clone());
    if as_index {
        let other_arch = if berth::image::host_arch() == "arm64" {
            "amd64"
        } else {
            "arm64"
        };
        // A complete manifest for another architecture, listed first.
        let mut other_config: serde_json::Value = serde_json::from_str(&config).unwrap();
        other_config["architecture"] = other_arch.into();
        let other_config = other_config.to_string();
        let ocd = put(&blobs, other_config.as_bytes());
        let mut other_manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        other_manifest["config"]["digest"] = ocd.to_string().into();
        other_manifest["config"]["size"] = other_config.len().into();
        let other_manifest = other_manifest.to_string();
        let omd = put(&blobs, other_manifest.as_bytes());
        let mut other = Descriptor::new(MediaType::ImageManifest, other_manifest.len() as u64, omd);
        other.set_platform(Some(
            berth::oci_spec::image::PlatformBuilder::default()
                .os("linux")
                .architecture(other_arch)
                .build()
                .unwrap(),
        ));
        top.set_platform(Some(
            berth::oci_spec::image::PlatformBuilder::default()
                .os("linux")
                .architecture(berth::image::host_arch())
                .build()
                .unwrap(),
        ));
        let nested = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![other, top])
            .build()
            .unwrap()
            .to_string()
            .unwrap();
        let nd = put(&blobs, nested.as_bytes());
        top = Descriptor::new(MediaType::ImageIndex, nested.len() as u64, nd);
    }
    top.set_annotations(Some(
        [(
            berth::oci_spec::image::ANNOTATION_REF_NAME.to_string(),
            name.to_string(),
        )]
        .into(),
    ));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .manifests(vec![top])
        .build()
        .unwrap();
    index.to_file(dir.join("index.json")).unwrap();
    OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()
        .unwrap()
        .to_file(dir.join("oci-layout"))
        .unwrap();
    md
}

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
            let store = berth::image::ImageStore::open(self.0.parent().unwrap()).unwrap();
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

/// Debian's docker-registry serving on 127.0.0.1 from a temp dir; killed
/// and removed on drop.
pub struct Registry {
    child: std::process::Child,
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`.
    pub addr: String,
}

impl Registry {
    pub async fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry (scripts/install-deps.sh installs it)");
        let reg = Registry { child, dir, addr };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(&reg.addr).await.is_ok() {
                return reg;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("docker-registry did not listen on {}", reg.addr);
    }

    /// Pushes the image named `name` of an OCI layout (all platforms) to
    /// `repo_tag` with skopeo.
    pub fn push_layout(&self, layout: &Path, name: &str, repo_tag: &str) {
        let policy = self.dir.path().join("policy.json");
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
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
