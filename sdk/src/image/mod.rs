//! OCI images: a digest-verified content store under the runtime root,
//! OCI image-layout import and export, streaming layer unpack into shared
//! per-layer directories, an overlay snapshotter for container rootfs,
//! commit and rollback, garbage collection, registry pull and push, and
//! cosign-compatible signature verification.
//!
//! ```no_run
//! # async fn demo() -> berth::Result<()> {
//! let rt = berth::Runtime::new(berth::Config::default()).await?;
//! let store = rt.images()?;
//! store.import_layout(std::path::Path::new("busybox-oci"), None, "busybox")?;
//! let ctr = rt
//!     .create_from_image("bb", "busybox", berth::image::ImageOverrides::default())
//!     .await?;
//! ctr.start().await?;
//! ctr.wait().await?;
//! ctr.delete(false).await?; // unmounts and removes the container's layer
//! # Ok(()) }
//! ```

mod commit;
pub mod digest;
mod gc;
mod layers;
mod layout;
mod push;
pub mod reference;
mod registry;
mod sign;
pub(crate) mod snapshot;
mod spec;
mod store;
pub mod unpack;

pub use gc::GcReport;
pub use layout::host_arch;
pub use registry::{LayerProgress, Pull, PullOptions, RemoteRef};
pub use sign::{signature_tag, SignaturePolicy, SIGNATURE_ANNOTATION};
pub use snapshot::Snapshot;
pub use spec::{build as build_spec, ImageOverrides, EXPOSED_PORTS_ANNOTATION};
pub use store::{Image, ImageStore, ImageSummary};
