//! The shim's process life: `start` (spawn the shim server and print its
//! address), `delete` (clean up after a shim that died) and the server.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim::api::DeleteResponse;
use containerd_shim::asynchronous::publisher::RemotePublisher;
use containerd_shim::asynchronous::{ExitSignal, Shim};
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::{Config, Flags, StartOpts};
use tokio::io::AsyncReadExt;

use crate::containers;
use crate::options::RuntimeOptions;
use crate::service::Service;

/// Where containerd's shim library puts shim sockets.
const SOCKET_DIR: &str = "/run/containerd/s";

/// The annotation that groups the containers of a pod into one shim.
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// The shim as containerd's shim library drives it.
pub struct BerthShim {
    exit: Arc<ExitSignal>,
    namespace: String,
    id: String,
    bundle: String,
}

impl std::fmt::Debug for BerthShim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BerthShim")
            .field("namespace", &self.namespace)
            .field("id", &self.id)
            .field("bundle", &self.bundle)
            .finish_non_exhaustive()
    }
}

fn other(e: impl std::fmt::Display) -> containerd_shim::Error {
    containerd_shim::Error::Other(e.to_string())
}

/// The group whose shim serves container `id`: its pod's sandbox, or the
/// container alone.
fn grouping(bundle: &Path, id: &str) -> String {
    containers::load_spec(bundle)
        .ok()
        .and_then(|s| s.annotations().as_ref()?.get(SANDBOX_ID).cloned())
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| id.to_string())
}

#[async_trait]
impl Shim for BerthShim {
    type T = Service;

    async fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        BerthShim {
            exit: Arc::new(ExitSignal::default()),
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            bundle: args.bundle.clone(),
        }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        // containerd writes the task's options here; they come again with
        // Create, so they are only drained.
        let mut options = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut options).await;
        let cwd = std::env::current_dir().map_err(other)?;
        let group = grouping(&cwd, &opts.id);
        let address = containerd_shim::socket_address(&opts.address, &opts.namespace, &group);
        let exe = std::env::current_exe().map_err(other)?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.current_dir(&cwd)
            .args([
                "-namespace",
                &opts.namespace,
                "-id",
                &opts.id,
                "-address",
                &opts.address,
                "-socket",
                &address,
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            // Out of containerd's process group: a signal to it is not one
            // to the shim, which outlives it.
            .process_group(0);
        if opts.debug {
            cmd.arg("-debug");
        }
        let mut child = cmd.spawn().map_err(other)?;
        // The server closes its stdout once it listens (or once it found
        // its group's server already listening).
        if let Some(mut out) = child.stdout.take() {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink).await;
        }
        tokio::fs::write(cwd.join("address"), &address)
            .await
            .map_err(other)?;
        Ok(address)
    }

    async fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let bundle = if self.bundle.is_empty() {
            std::env::current_dir().map_err(other)?
        } else {
            PathBuf::from(&self.bundle)
        };
        let opts = RuntimeOptions::load(&bundle).map_err(other)?;
        let rt = containers::runtime(&opts.root_for(&self.namespace), None)
            .await
            .map_err(other)?;
        if let Ok(ctr) = containers::get(&rt, &self.id).await {
            containers::delete(&ctr, true).await.map_err(other)?;
        }
        let rootfs = bundle.join("rootfs");
        let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
        // The dead server's socket (it removes it itself when it exits).
        if let Ok(address) = std::fs::read_to_string(bundle.join("address")) {
            let path = Path::new(address.trim().trim_start_matches("unix://"));
            if path.starts_with(SOCKET_DIR) {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(DeleteResponse {
            pid: 0,
            exit_status: 128 + 9,
            exited_at: MessageField::some(
                containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp::now(),
            ),
            ..Default::default()
        })
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> Service {
        // Events are forwarded by the service's own publisher, which awaits
        // each one (this one only queues them, and loses the queue when the
        // shim exits).
        Service::new(&self.namespace, &publisher.address, self.exit.clone())
    }
}
