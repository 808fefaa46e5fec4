//! # berth-image
//!
//! OCI images for the [berth] runtime: a digest-verified content
//! store under the runtime root, OCI image-layout import and export,
//! streaming layer unpack into shared per-layer directories, an overlay
//! snapshotter for container rootfs, commit and rollback, garbage
//! collection, registry pull and push, and cosign-compatible signature
//! verification.
//!
//! Containers made from images ([`create_container`]) meet the runtime
//! through the [`Snapshots`] extension, which removes their writable layer
//! when they are deleted.
//!
//! Without root, an image's files are written as the container's users
//! (the user's subordinate ids) by a helper program in a user namespace,
//! and a container mounts its overlay in its own namespaces: give the store
//! a program that calls [`helper_main`] ([`ImageStore::with_helper`],
//! [`Snapshots::with_helper`]); berth's `berth-images` is one.

#![deny(missing_docs)]

mod commit;
mod containers;
pub mod digest;
mod error;
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
mod userns;

pub use containers::{commit, create_container, rollback, store, Snapshots, EXTENSION_NAME};
pub use error::{Error, Result};
pub use gc::GcReport;
pub use layout::host_arch;
pub use registry::{LayerProgress, Pull, PullOptions, RemoteRef};
pub use sign::{signature_tag, SignaturePolicy, SIGNATURE_ANNOTATION};
pub use snapshot::Snapshot;
pub use spec::{build as build_spec, ImageOverrides, EXPOSED_PORTS_ANNOTATION};
pub use store::{Image, ImageStore, ImageSummary};
pub use userns::{helper_main, HELPER_COMMAND};
