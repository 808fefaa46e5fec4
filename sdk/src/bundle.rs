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
    /// Reads `dir/config.json`, on tokio's blocking pool.
    ///
    /// ```no_run
    /// # async fn demo() -> berth::Result<()> {
    /// let bundle = berth::Bundle::from_dir("/srv/bundles/web").await?;
    /// # Ok(()) }
    /// ```
    pub async fn from_dir(dir: impl AsRef<Path>) -> Result<Bundle> {
        let dir = dir.as_ref().to_path_buf();
        crate::container::blocking(move || Bundle::read(&dir)).await
    }

    /// [`from_dir`](Self::from_dir) on the calling thread.
    fn read(dir: &Path) -> Result<Bundle> {
        let dir = absolute(dir)?;
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
                    reason: std::fs::read(&config)
                        .ok()
                        .and_then(|b| parse_error(&b))
                        .unwrap_or_else(|| e.to_string()),
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

/// Why `json` is not a spec: the JSON path of the value that failed, the
/// line and column, and what was expected (`process.capabilities.bounding[2]:
/// unknown variant `CAP_NOPE`, expected one of ... at line 12 column 20`).
/// `None` when it parses after all.
fn parse_error(json: &[u8]) -> Option<String> {
    let de = &mut serde_json::Deserializer::from_slice(json);
    let e = match serde_path_to_error::deserialize::<_, Spec>(de) {
        Ok(_) => return None,
        Err(e) => e,
    };
    let path = e.path().to_string();
    let inner = e.into_inner();
    if path == "." || inner.is_syntax() || inner.is_eof() {
        // A syntax error is about the text, not about a field.
        return Some(inner.to_string());
    }
    // oci-spec's own message for a capability does not say what it wants.
    let expected = if path.contains(".capabilities.") && !inner.to_string().contains("expected") {
        " (expected a capability name such as CAP_KILL)"
    } else {
        ""
    };
    Some(format!("{path}: {inner}{expected}"))
}

fn absolute(dir: &Path) -> Result<PathBuf> {
    std::path::absolute(dir).map_err(|e| Error::Bundle {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_error;

    #[test]
    fn parse_errors_name_the_path_line_and_column() {
        let json = br#"{
  "ociVersion": "1.0.2",
  "process": {
    "cwd": "/",
    "user": {"uid": 0, "gid": 0},
    "capabilities": {"bounding": ["CAP_KILL", "CAP_NOPE"]}
  }
}"#;
        let msg = parse_error(json).unwrap();
        assert!(
            msg.starts_with("process.capabilities.bounding[1]: no variant for CAP_NOPE"),
            "{msg}"
        );
        assert!(msg.contains("at line 6 column 57"), "{msg}");
        assert!(msg.contains("expected a capability name"), "{msg}");

        let msg = parse_error(
            br#"{"ociVersion": "1.0.2", "process": {"cwd": "/", "user": {"uid": "x"}}}"#,
        )
        .unwrap();
        assert!(
            msg.starts_with(
                "process.user.uid: invalid type: string \"x\", expected u32 at line 1 column"
            ),
            "{msg}"
        );

        let msg = parse_error(b"{\"ociVersion\": \"1.0.2\",\n \"process\": }").unwrap();
        assert_eq!(msg, "expected value at line 2 column 13");
    }
}
