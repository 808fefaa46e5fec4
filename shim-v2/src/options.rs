//! Runtime options: what containerd passes with a task (runc's
//! `containerd.runc.v1.Options`, or CRI's `runtimeoptions.v1.Options`
//! naming a configuration file), kept in the bundle for the `delete`
//! subcommand.

use std::path::{Path, PathBuf};

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::empty::Empty;
use containerd_shim::protos::protobuf::{Message, UnknownValueRef};
use containerd_shim::protos::shim::oci::Options as RuncOptions;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The file in the bundle that keeps a task's options.
const FILE: &str = "berth-options.json";

/// The options of one task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeOptions {
    /// berth's state root (default `/run/containerd/berth/<namespace>`).
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// The cgroup under which containers without `linux.cgroupsPath` go.
    #[serde(default)]
    pub cgroup_parent: Option<String>,
    /// A file holding an OCI `LinuxSeccomp` profile (JSON) to use instead
    /// of the one in the spec.
    #[serde(default)]
    pub seccomp_profile: Option<PathBuf>,
}

impl RuntimeOptions {
    /// Reads the options containerd attached to a task, if any.
    pub fn from_any(any: Option<&Any>) -> Result<RuntimeOptions> {
        let Some(any) = any.filter(|a| !a.type_url.is_empty() || !a.value.is_empty()) else {
            return Ok(RuntimeOptions::default());
        };
        let name = any.type_url.rsplit('/').next().unwrap_or_default();
        match name {
            "containerd.runc.v1.Options" => {
                let runc = RuncOptions::parse_from_bytes(&any.value)
                    .map_err(|e| Error::InvalidArgument(format!("runc options: {e}")))?;
                Ok(RuntimeOptions {
                    root: Some(runc.root).filter(|r| !r.is_empty()).map(PathBuf::from),
                    ..Default::default()
                })
            }
            "runtimeoptions.v1.Options" => match config_path(&any.value)? {
                Some(path) => RuntimeOptions::from_file(Path::new(&path)),
                None => Ok(RuntimeOptions::default()),
            },
            other => Err(Error::InvalidArgument(format!(
                "unknown runtime options type {other:?}"
            ))),
        }
    }

    /// Reads a configuration file (JSON: `root`, `cgroup_parent`,
    /// `seccomp_profile`).
    pub fn from_file(path: &Path) -> Result<RuntimeOptions> {
        let text = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        serde_json::from_slice(&text)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))
    }

    /// Saves the options in `bundle`.
    pub fn save(&self, bundle: &Path) -> Result<()> {
        let path = bundle.join(FILE);
        let json = serde_json::to_vec(self)
            .map_err(|e| Error::InvalidArgument(format!("options: {e}")))?;
        std::fs::write(&path, json).map_err(|e| Error::io("write", &path, e))
    }

    /// The options saved in `bundle` (the defaults if none were).
    pub fn load(bundle: &Path) -> Result<RuntimeOptions> {
        let path = bundle.join(FILE);
        if !path.exists() {
            return Ok(RuntimeOptions::default());
        }
        RuntimeOptions::from_file(&path)
    }

    /// The state root for a task of containerd namespace `namespace`.
    pub fn root_for(&self, namespace: &str) -> PathBuf {
        self.root
            .clone()
            .unwrap_or_else(|| crate::containers::default_root(namespace))
    }

    /// The seccomp profile override, read.
    pub fn seccomp(&self) -> Result<Option<oci_spec::runtime::LinuxSeccomp>> {
        let Some(path) = &self.seccomp_profile else {
            return Ok(None);
        };
        let text = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))
    }
}

/// Field 2 (`config_path`) of a `runtimeoptions.v1.Options` message, read
/// without its generated type (the protos crate has none).
fn config_path(bytes: &[u8]) -> Result<Option<String>> {
    let msg = Empty::parse_from_bytes(bytes)
        .map_err(|e| Error::InvalidArgument(format!("runtime options: {e}")))?;
    match msg.special_fields.unknown_fields().get(2) {
        Some(UnknownValueRef::LengthDelimited(b)) => String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| Error::InvalidArgument("config_path is not UTF-8".into())),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_config_path_option() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("berth.json");
        std::fs::write(&file, r#"{"root": "/tmp/x", "cgroup_parent": "p"}"#).unwrap();
        // runtimeoptions.v1.Options { config_path = 2 }
        let path = file.to_str().unwrap().as_bytes();
        let mut value = vec![0x12, u8::try_from(path.len()).unwrap()];
        value.extend_from_slice(path);
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value,
            ..Default::default()
        };
        let o = RuntimeOptions::from_any(Some(&any)).unwrap();
        assert_eq!(o.root, Some(PathBuf::from("/tmp/x")));
        assert_eq!(o.cgroup_parent.as_deref(), Some("p"));
    }

    #[test]
    fn bad_options_are_errors() {
        let any = Any {
            type_url: "example.Unknown".into(),
            value: vec![1, 2, 3],
            ..Default::default()
        };
        assert!(RuntimeOptions::from_any(Some(&any)).is_err());
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: vec![0xff, 0xff],
            ..Default::default()
        };
        assert!(RuntimeOptions::from_any(Some(&any)).is_err());
    }
}
