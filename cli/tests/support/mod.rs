//! What the tests of captured output, stop and events share: a state root
//! of their own, bundles on the shared rootfs, detached options.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use berth::{Bundle, Config, CreateOptions, LogConfig, Runtime};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// A state root and cgroup parent of the test's own, removed on drop.
pub struct Env {
    pub config: Config,
}

impl Env {
    pub fn new(tag: &str) -> Env {
        berth_fixtures::require_root();
        let name = format!("berth-test-{tag}-{}", std::process::id());
        Env {
            config: {
                let mut config = Config::default();
                config.root = PathBuf::from("/run").join(&name);
                config.cgroup_parent = name;
                config.shim = Some(BERTH.into());
                config
            },
        }
    }

    pub fn root(&self) -> &Path {
        &self.config.root
    }

    pub async fn runtime(&self) -> Runtime {
        Runtime::new(self.config.clone()).await.unwrap()
    }

    /// `berth --root ROOT args...`, output in files.
    pub fn berth(&self, args: &[&str]) -> std::process::Output {
        berth_fixtures::output_via_files(
            Command::new(BERTH)
                .arg("--root")
                .arg(self.root())
                .args(args),
        )
    }

    /// `berth run -d --log-path LOG ID` of a container running `script`,
    /// checked to succeed; its output, and the bundle (kept while the
    /// container may still read it).
    pub fn run_detached_with_log(
        &self,
        id: &str,
        script: &str,
        log: &Path,
    ) -> (std::process::Output, tempfile::TempDir) {
        let b = bundle_dir(&spec(script));
        let out = self.berth(&[
            "run",
            "-d",
            "--bundle",
            b.path().to_str().unwrap(),
            "--log-path",
            log.to_str().unwrap(),
            id,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (out, b)
    }

    /// Deletes whatever is left, then checks nothing of it remains.
    pub async fn finish(self) {
        let rt = self.runtime().await;
        for s in rt.list().await.unwrap() {
            let c = rt.get(s.id()).await.unwrap();
            c.force_delete().await.unwrap();
        }
        let left = std::fs::read_dir(self.root())
            .map(|d| d.count())
            .unwrap_or(0);
        let cgroups =
            berth_fixtures::leaks::Snapshot::take(self.root(), &self.config.cgroup_parent)
                .unwrap()
                .cgroups;
        let _ = std::fs::remove_dir_all(self.root());
        assert_eq!(left, 0, "state left under {}", self.root().display());
        assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // After a failure: what finish() did not get to.
        if self.root().exists() {
            let _ = Command::new(BERTH)
                .arg("--root")
                .arg(self.root())
                .args(["list", "-q"])
                .output()
                .map(|o| {
                    for id in String::from_utf8_lossy(&o.stdout).lines() {
                        let _ = Command::new(BERTH)
                            .arg("--root")
                            .arg(self.root())
                            .args(["delete", "-f", id])
                            .output();
                    }
                });
            let _ = std::fs::remove_dir_all(self.root());
        }
    }
}

pub fn spec(script: &str) -> berth::oci_spec::runtime::Spec {
    let mut spec = berth_fixtures::bundle::spec(&["sh".into(), "-c".into(), script.into()]);
    let mut root = spec.root().clone().unwrap();
    root.set_path(berth_fixtures::rootfs::shared().unwrap());
    spec.set_root(Some(root));
    spec
}

/// `spec` with the host directory `dir` bound on `/mnt` (read-write).
pub fn with_mnt(
    mut spec: berth::oci_spec::runtime::Spec,
    dir: &Path,
) -> berth::oci_spec::runtime::Spec {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(
        berth::oci_spec::runtime::MountBuilder::default()
            .destination("/mnt")
            .typ("bind")
            .source(dir)
            .options(vec!["rbind".into(), "rw".into()])
            .build()
            .unwrap(),
    );
    spec.set_mounts(Some(mounts));
    spec
}

pub fn bundle(spec: berth::oci_spec::runtime::Spec) -> Bundle {
    Bundle::new(std::env::temp_dir(), spec).unwrap()
}

/// A bundle directory for the CLI (config.json; the rootfs is the shared
/// one, by absolute path).
pub fn bundle_dir(spec: &berth::oci_spec::runtime::Spec) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    berth_fixtures::bundle::write_config(dir.path(), spec).unwrap();
    dir
}

pub fn captured(log: LogConfig) -> CreateOptions {
    {
        let mut create_options = CreateOptions::default();
        create_options.stdin = berth::Stdio::Null;
        create_options.stdout = berth::Stdio::Null;
        create_options.stderr = berth::Stdio::Null;
        create_options.detached = true;
        create_options.log = Some(log);
        create_options
    }
}

/// The pid of the shim that a detached container's state records.
pub fn shim_pid(ctr: &berth::Container) -> i64 {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ctr.state_dir().join("state.json")).unwrap())
            .unwrap();
    state["shim"]["pid"]
        .as_i64()
        .expect("the shim recorded itself")
}
