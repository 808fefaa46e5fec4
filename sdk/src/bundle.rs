//! An OCI bundle: a directory with `config.json` and (usually) the rootfs.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

/// A spec and the directory its relative paths (`root.path`, bind sources)
/// are resolved against.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory (absolute).
    pub dir: PathBuf,
    /// The container's configuration.
    pub spec: Spec,
}

impl Bundle {
    /// Reads `dir/config.json`.
    ///
    /// ```no_run
    /// let bundle = berth::Bundle::from_dir("/srv/bundles/web")?;
    /// # Ok::<(), berth::Error>(())
    /// ```
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Bundle> {
        let dir = absolute(dir.as_ref())?;
        let config = dir.join("config.json");
        if !config.exists() {
            return Err(Error::Bundle {
                path: config,
                reason: "not found".into(),
            });
        }
        let spec = match Spec::load(&config) {
            Ok(spec) => spec,
            Err(e) => {
                // Name the field where we can (a seccomp architecture or
                // action that is not in the OCI list).
                if let Some(json) = std::fs::read(&config)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                {
                    crate::security::seccomp::check_json(&json)?;
                }
                return Err(Error::Bundle {
                    path: config.clone(),
                    reason: e.to_string(),
                });
            }
        };
        Ok(Bundle { dir, spec })
    }

    /// A bundle from a spec built in code; `dir` anchors its relative paths.
    pub fn new(dir: impl AsRef<Path>, spec: Spec) -> Result<Bundle> {
        Ok(Bundle {
            dir: absolute(dir.as_ref())?,
            spec,
        })
    }
}

fn absolute(dir: &Path) -> Result<PathBuf> {
    std::path::absolute(dir).map_err(|e| Error::Bundle {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })
}
