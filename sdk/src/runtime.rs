//! The runtime: a state root, and the containers in it.

use std::path::PathBuf;
use std::sync::Arc;

use oci_spec::runtime::State;

use crate::bundle::Bundle;
use crate::container::{self, Container, CreateOptions};
use crate::error::{Error, Result};
use crate::network::BridgeNetwork;

/// Settings of a [`Runtime`].
#[derive(Debug, Clone)]
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
    /// The bridge networks containers may join (`berth0` on 10.89.0.0/16
    /// by default).
    pub networks: Vec<BridgeNetwork>,
    /// The network namespace (a `/run/netns/NAME` or `/proc/PID/ns/net`
    /// file) in which berth makes the host side of container networks:
    /// bridges, veths, nftables rules, sysctls. `None` is the namespace of
    /// the process using the runtime. A test gives a namespace of its own
    /// here so the machine's network stays untouched.
    pub host_netns: Option<PathBuf>,
    /// Where CNI network configurations and plugins are found, for
    /// containers on a [`Network::Cni`](crate::network::Network::Cni).
    pub cni: crate::network::CniConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: crate::security::rootless::default_root(),
            cgroup_parent: crate::security::rootless::default_cgroup_parent(),
            shim: None,
            networks: vec![BridgeNetwork::default_network()],
            host_netns: None,
            cni: crate::network::CniConfig::default(),
        }
    }
}

/// The entry point of the SDK: creates containers and finds existing ones.
///
/// ```no_run
/// # async fn demo() -> berth::Result<()> {
/// let rt = berth::Runtime::new(berth::Config::default()).await?;
/// let ctr = rt.create("web", berth::Bundle::from_dir("bundle")?).await?;
/// ctr.start().await?;
/// let status = ctr.wait().await?;
/// println!("exited: {status}");
/// ctr.delete(false).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Runtime {
    config: Arc<Config>,
}

impl Runtime {
    /// Opens (and creates if needed) the state root, and releases the
    /// networks of containers that are gone (after a crash).
    pub async fn new(config: Config) -> Result<Runtime> {
        std::fs::create_dir_all(&config.root)
            .map_err(|e| Error::io("create state root", &config.root, e))?;
        crate::network::recover(&config.root).await?;
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

    /// Connects a created or running container that has a network
    /// namespace of its own and no network yet (one made with
    /// [`Network::None`](crate::network::Network::None)) to a bridge,
    /// macvlan or overlay network. Deleting the container releases it.
    pub async fn connect(
        &self,
        ctr: &Container,
        opts: crate::network::NetworkOptions,
    ) -> Result<crate::network::Attachment> {
        if ctr.status()? == crate::Status::Stopped {
            return Err(Error::InvalidState {
                id: ctr.id().to_string(),
                status: "stopped".into(),
                op: "connect to a network",
            });
        }
        crate::network::connect(&self.config, ctr.state_dir(), ctr.id(), ctr.pid(), &opts).await
    }

    /// Makes `peers` the other hosts of overlay network `network` on this
    /// host while it runs: its VXLAN device floods broadcasts to them (a
    /// host that joins later becomes reachable from the running
    /// containers; one removed no longer gets their traffic), and the
    /// containers attached later use them. The list in
    /// [`Config::networks`] is what the overlay starts with on this host;
    /// while no container of it runs here, there is nothing to change.
    pub async fn set_overlay_peers(
        &self,
        network: &str,
        peers: Vec<std::net::Ipv4Addr>,
    ) -> Result<()> {
        crate::network::set_overlay_peers(&self.config, network, peers).await
    }

    /// Runs CNI's CHECK on the network of a container on a CNI network:
    /// its plugins verify that what they made is still in place. A
    /// container on no CNI network, or on one whose `cniVersion` is older
    /// than 0.4.0, gets [`Error::Unsupported`].
    pub async fn check_network(&self, ctr: &Container) -> Result<()> {
        crate::network::check(ctr.state_dir()).await
    }

    /// The image store under the root (`<root>/images`).
    pub fn images(&self) -> Result<crate::image::ImageStore> {
        crate::image::ImageStore::open(&self.config.root)
    }

    /// Creates a container from a stored image: its layers (unpacked once,
    /// shared) under an overlay with a writable layer of the container's
    /// own, and a spec from the image config (entrypoint, cmd, env,
    /// workdir, user) with `overrides` on top. [`Container::delete`]
    /// removes the writable layer.
    pub async fn create_from_image(
        &self,
        id: &str,
        image_ref: &str,
        overrides: crate::image::ImageOverrides,
    ) -> Result<Container> {
        self.create_from_image_with(id, image_ref, overrides, CreateOptions::default())
            .await
    }

    /// [`create_from_image`](Self::create_from_image) with explicit stdio
    /// and options.
    pub async fn create_from_image_with(
        &self,
        id: &str,
        image_ref: &str,
        overrides: crate::image::ImageOverrides,
        opts: CreateOptions,
    ) -> Result<Container> {
        container::validate_id(id)?;
        if self.config.root.join(id).exists() {
            return Err(Error::AlreadyExists(id.to_string()));
        }
        let store = self.images()?;
        let (id_owned, image_ref) = (id.to_string(), image_ref.to_string());
        let s = store.clone();
        let (snap, spec) = tokio::task::spawn_blocking(move || {
            let image = s.image(&image_ref)?;
            let snap = s.prepare(&id_owned, &image)?;
            match crate::image::build_spec(
                &image.config,
                &image.reference,
                &snap.rootfs(),
                &overrides,
            ) {
                Ok(spec) => Ok((snap, spec)),
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
        let bundle = Bundle::new(&snap.dir, spec)?;
        match self.create_with(id, bundle, opts).await {
            Ok(c) => Ok(c),
            Err(e) => {
                // The snapshot is this call's own: prepare refuses an id
                // that has one.
                let _ = store.remove_snapshot(id);
                Err(e)
            }
        }
    }

    /// Resets a stopped container's rootfs to its image (drops every
    /// change it made).
    pub async fn rollback(&self, id: &str) -> Result<()> {
        let ctr = self.get(id).await?;
        let status = ctr.status()?;
        if status != crate::state::Status::Stopped {
            return Err(Error::InvalidState {
                id: id.to_string(),
                status: status.to_string(),
                op: "roll back (stop it first)",
            });
        }
        let store = self.images()?;
        let id = id.to_string();
        tokio::task::spawn_blocking(move || store.rollback(&id))
            .await
            .map_err(|e| Error::TaskFailed {
                task: "rollback",
                reason: e.to_string(),
            })?
    }

    /// Commits container `id`'s changes as a new image tagged `reference`
    /// and returns its manifest digest.
    pub async fn commit(&self, id: &str, reference: &str) -> Result<oci_spec::image::Digest> {
        container::validate_id(id)?;
        let store = self.images()?;
        let (id, reference) = (id.to_string(), reference.to_string());
        tokio::task::spawn_blocking(move || store.commit(&id, &reference))
            .await
            .map_err(|e| Error::TaskFailed {
                task: "commit",
                reason: e.to_string(),
            })?
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
        container::blocking(move || Container::attach(dir, &id)).await
    }

    /// The OCI state of every container under the root.
    ///
    /// A container whose creator was killed mid-way is listed with status
    /// `creating`; `delete` with `force` removes it.
    pub async fn list(&self) -> Result<Vec<State>> {
        container::prune_supervisors();
        let root = self.config.root.clone();
        // One blocking stage: the directory and every container's state.
        container::blocking(move || {
            container::sweep_temporaries(&root);
            let mut out = Vec::new();
            let entries = match std::fs::read_dir(&root) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(Error::io("list", &root, e)),
            };
            for entry in entries.flatten() {
                let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if container::validate_id(&id).is_err() {
                    continue;
                }
                // A directory without state is a container being created.
                if let Ok(c) = Container::attach(entry.path(), &id) {
                    if let Ok(s) = c.state() {
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
