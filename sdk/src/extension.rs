//! Extension points: how crates such as `berth-net` (container networks)
//! and `berth-image` (image snapshots) take part in a container's life
//! without the core knowing what they do.
//!
//! An [`Extension`] is registered with the runtime
//! ([`Config::extensions`](crate::Config::extensions)) with its settings
//! (which networks exist, say); a container asks for it by name with a
//! request ([`CreateOptions::extensions`]), a JSON value of what it wants
//! (the network to join). A detached container is created by a shim, a
//! process of its own: it gets each requested extension's
//! [`settings`](Extension::settings) and makes an equal extension with
//! [`with_settings`](Extension::with_settings). The core calls, in this
//! order:
//!
//! 1. [`Extension::edit_spec`], before anything exists: check the request,
//!    change the spec (namespaces). An error here leaves nothing behind.
//! 2. [`Extension::prepare`], once the state directory exists and names
//!    the extension: make host-side things, record them in the state
//!    directory, return mounts to add to the spec.
//! 3. [`Extension::attach`], when the container's process exists and has
//!    its namespaces, before the `createRuntime` hooks run.
//! 4. [`Extension::release`] when the container is deleted, or when a
//!    create fails after step 2 began. It must be idempotent and must cope
//!    with a prepare that was interrupted at any instant (its creator
//!    SIGKILLed): the state directory names the extension *before*
//!    [`prepare`](Extension::prepare) runs, so a later delete always
//!    reaches it.
//! 5. [`Extension::recover`] when a [`Runtime`](crate::Runtime) opens the
//!    root: release what belongs to containers that are gone.
//!
//! [`CreateOptions::extensions`]: crate::CreateOptions::extensions
//!
//! ```
//! use std::sync::Arc;
//! use berth::extension::{Extension, ExtensionFuture, Release};
//!
//! /// Counts nothing, makes nothing: the smallest extension.
//! #[derive(Debug)]
//! struct Noop;
//!
//! impl Extension for Noop {
//!     fn name(&self) -> &str {
//!         "noop"
//!     }
//!     fn release<'a>(&'a self, _cx: Release<'a>) -> ExtensionFuture<'a, ()> {
//!         Box::pin(async { Ok(()) })
//!     }
//! }
//!
//! let mut config = berth::Config::default();
//! config.extensions.push(Arc::new(Noop));
//! ```

use std::fmt;
use std::future::Future;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use oci_spec::runtime::{Mount, Spec};

use crate::error::{Error, Result};
pub use crate::state::HostProcess;

/// The future an extension hook returns.
pub type ExtensionFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Work another crate does at fixed points of a container's life. See the
/// [module documentation](self) for when each hook runs.
pub trait Extension: Send + Sync + fmt::Debug + 'static {
    /// The name containers ask for it by, and the one recorded in their
    /// state directory. Stable across versions.
    fn name(&self) -> &str;

    /// The settings a shim needs to make an equal extension in its own
    /// process ([`with_settings`](Self::with_settings)). `Null` by default:
    /// no settings.
    fn settings(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// An extension like this one with `settings` (another process's
    /// [`settings`](Self::settings)). By default, this one as it is.
    fn with_settings(&self, settings: &serde_json::Value) -> Result<Option<Arc<dyn Extension>>> {
        let _ = settings;
        Ok(None)
    }

    /// Checks `request` and changes the spec, before the plan is compiled
    /// and before anything exists.
    fn edit_spec(&self, spec: &mut Spec, request: &serde_json::Value) -> Result<()> {
        let _ = (spec, request);
        Ok(())
    }

    /// Makes what the container needs on the host side. The state
    /// directory exists; the container's process does not yet. Returns
    /// mounts to add to the spec.
    fn prepare<'a>(&'a self, cx: Prepare<'a>) -> ExtensionFuture<'a, Vec<Mount>> {
        let _ = cx;
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Connects the container's process, which exists with its
    /// namespaces and has not run the container's program yet.
    fn attach<'a>(&'a self, cx: Attach<'a>) -> ExtensionFuture<'a, ()> {
        let _ = cx;
        Box::pin(async { Ok(()) })
    }

    /// Removes everything it made for the container. Idempotent; also
    /// called after a prepare that never finished.
    fn release<'a>(&'a self, cx: Release<'a>) -> ExtensionFuture<'a, ()>;

    /// Releases what belongs to containers under `root` that are gone
    /// (their creator crashed, or nobody deleted them).
    fn recover<'a>(&'a self, root: &'a Path) -> ExtensionFuture<'a, ()> {
        let _ = root;
        Box::pin(async { Ok(()) })
    }
}

/// What [`Extension::prepare`] knows of the container.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Prepare<'a> {
    /// The container id.
    pub id: &'a str,
    /// Its state directory, `<root>/<id>`: where the extension records what
    /// it makes.
    pub state_dir: &'a Path,
    /// The container's hostname (the spec's, else its id).
    pub hostname: &'a str,
    /// The container's request to this extension.
    pub request: &'a serde_json::Value,
}

/// What [`Extension::attach`] knows of the container.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Attach<'a> {
    /// The container id.
    pub id: &'a str,
    /// Its state directory.
    pub state_dir: &'a Path,
    /// The container's first process, in the host's pid namespace. It
    /// cannot be recycled while the hook runs: it is the caller's child,
    /// blocked before the container's program.
    pub pid: i32,
    /// A pidfd of that process.
    pub pidfd: BorrowedFd<'a>,
    /// The container's request to this extension.
    pub request: &'a serde_json::Value,
}

/// What [`Extension::release`] knows of the container.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Release<'a> {
    /// The container id.
    pub id: &'a str,
    /// Its state directory (it still exists).
    pub state_dir: &'a Path,
}

/// The first process of the container whose state directory is
/// `state_dir`, as recorded there: `None` while it is being created (no
/// process yet) or when the state is missing or unreadable. Whether the
/// container still runs is [`HostProcess::is_alive`].
pub fn container_process(state_dir: &Path) -> Option<HostProcess> {
    let id = state_dir.file_name()?.to_str()?;
    let p = crate::state::Persisted::load(state_dir, id).ok()?;
    (p.pid > 0).then(|| HostProcess::new(p.pid, p.pid_start_time))
}

/// Writes `data` to `path` so that a reader (or a process after a crash)
/// sees the old content or the new one, never a part: how an extension
/// records what it made in the state directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    crate::state::write_atomic(path, data)
}

/// Looks up the extensions a container asks for, in the order asked.
pub(crate) fn resolve<'a>(
    registered: &'a [Arc<dyn Extension>],
    requests: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<Vec<&'a dyn Extension>> {
    requests
        .keys()
        .map(|name| find(registered, name).map(|e| &**e))
        .collect()
}

/// The registered extension `name`.
pub(crate) fn find<'a>(
    registered: &'a [Arc<dyn Extension>],
    name: &str,
) -> Result<&'a Arc<dyn Extension>> {
    registered
        .iter()
        .find(|e| e.name() == name)
        .ok_or_else(|| Error::InvalidOption {
            option: format!("extensions.{name}"),
            reason: "no extension of this name is registered in Config::extensions".into(),
        })
}
