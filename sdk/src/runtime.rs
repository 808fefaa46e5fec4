//! The runtime: a state root, and the containers in it.

use std::path::PathBuf;
use std::sync::Arc;

use oci_spec::runtime::State;

use crate::bundle::Bundle;
use crate::container::{self, Container, CreateOptions};
use crate::error::{Error, Result};
use crate::extension::Extension;

/// Settings of a [`Runtime`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Where container state lives: `/run/berth` by default, as runc's
    /// `/run/runc`; `$XDG_RUNTIME_DIR/berth` for a user without root.
    pub root: PathBuf,
    /// The cgroup under which containers without `linux.cgroupsPath` get
    /// `<cgroup_parent>/<id>`, and under which a relative `cgroupsPath`
    /// is placed. An absolute `cgroupsPath` starts at the hierarchy roots.
    pub cgroup_parent: String,
    /// The `berth` binary, whose `shim` subcommand supervises containers
    /// created with [`CreateOptions::detached`].
    pub shim: Option<PathBuf>,
    /// The extensions containers may ask for by name (see
    /// [`crate::extension`]): `berth-net`'s networks, `berth-image`'s
    /// snapshots. A container that names one missing here is refused; one
    /// recorded with an extension missing here cannot be deleted (its
    /// state stays until a runtime with it deletes it).
    pub extensions: Vec<Arc<dyn Extension>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: crate::security::rootless::default_root(),
            cgroup_parent: crate::security::rootless::default_cgroup_parent(),
            shim: None,
            extensions: Vec::new(),
        }
    }
}

/// The entry point of the SDK: creates containers and finds existing ones.
///
/// ```no_run
/// # async fn demo() -> berth::Result<()> {
/// let rt = berth::Runtime::new(berth::Config::default()).await?;
/// let ctr = rt.create("web", berth::Bundle::from_dir("bundle").await?).await?;
/// ctr.start().await?;
/// let status = ctr.wait().await?;
/// println!("exited: {status}");
/// ctr.delete().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Runtime {
    config: Arc<Config>,
}

impl Runtime {
    /// Opens (and creates if needed) the state root, and lets each
    /// extension release what belongs to containers that are gone (after a
    /// crash).
    pub async fn new(config: Config) -> Result<Runtime> {
        std::fs::create_dir_all(&config.root)
            .map_err(|e| Error::io("create state root", &config.root, e))?;
        for ext in &config.extensions {
            ext.recover(&config.root).await?;
        }
        Ok(Runtime {
            config: Arc::new(config),
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Creates a container from `bundle` with inherited stdio. It is set up
    /// and waits for [`Container::start`].
    pub async fn create(&self, id: &str, bundle: Bundle) -> Result<Container> {
        self.create_with(id, bundle, CreateOptions::default()).await
    }

    /// Creates a container with explicit stdio and options.
    ///
    /// With [`CreateOptions::detached`], a shim process (see
    /// [`Config::shim`]) becomes the container's parent: the container
    /// outlives this process, and any process that re-attaches with
    /// [`Runtime::get`] can await its exit status. With
    /// [`CreateOptions::log`] the shim also captures its output for
    /// [`Container::logs`].
    pub async fn create_with(
        &self,
        id: &str,
        bundle: Bundle,
        opts: CreateOptions,
    ) -> Result<Container> {
        if let Some(log) = &opts.log {
            if !opts.detached {
                return Err(Error::InvalidOption {
                    option: "log".into(),
                    reason: "captured output needs a detached container (its shim captures it)"
                        .into(),
                });
            }
            log.validate()?;
        }
        if opts.detached {
            let shim = self.config.shim.clone().ok_or_else(|| {
                Error::Unsupported(
                    "a detached container needs Config::shim (the berth binary)".into(),
                )
            })?;
            let id = id.to_string();
            return crate::shim::create_detached(self.config.clone(), &shim, id, bundle, opts)
                .await;
        }
        container::create(self.config.clone(), id.to_string(), bundle, opts).await
    }

    /// A handle to an existing container, e.g. one created by another
    /// process. In the process that created it (with any `Runtime` on the
    /// same root) the handle shares the container's supervisor: it can
    /// [`wait`](Container::wait) for the exit status even after every
    /// other handle was dropped.
    ///
    /// The state is read on tokio's blocking pool.
    pub async fn get(&self, id: &str) -> Result<Container> {
        container::validate_id(id)?;
        let (dir, id) = (self.config.root.join(id), id.to_string());
        let config = self.config.clone();
        container::blocking(move || Container::attach(dir, &id, &config.extensions)).await
    }

    /// The OCI state of every container under the root.
    ///
    /// A container whose creator was killed mid-way is listed with status
    /// `creating`; `delete` with `force` removes it.
    pub async fn list(&self) -> Result<Vec<State>> {
        container::prune_supervisors();
        let config = self.config.clone();
        // One blocking stage: the directory and every container's state.
        container::blocking(move || {
            let root = &config.root;
            container::sweep_temporaries(root);
            let mut out = Vec::new();
            let entries = match std::fs::read_dir(root) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(Error::io("list", root, e)),
            };
            for entry in entries.flatten() {
                let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if container::validate_id(&id).is_err() {
                    continue;
                }
                // A directory without state is a container being created.
                if let Ok(c) = Container::attach(entry.path(), &id, &config.extensions) {
                    if let Ok(s) = c.state_now() {
                        out.push(s);
                    }
                }
            }
            out.sort_by(|a, b| a.id().cmp(b.id()));
            Ok(out)
        })
        .await
    }
}
