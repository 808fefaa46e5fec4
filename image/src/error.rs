//! The error type of `berth-image`.

use std::io;
use std::path::PathBuf;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong with images.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An image, manifest, index, config or reference is malformed or
    /// missing; `what` names it (`index.json`, `manifest sha256:…`,
    /// `config.rootfs.diff_ids[2]`, a reference).
    #[error("image {what}: {reason}")]
    Image {
        /// The object or field at fault.
        what: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Content did not hash to the digest it was announced with; it was
    /// not stored.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being verified (`blob`, `layer diff-id`).
        what: &'static str,
        /// The announced digest.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },

    /// The signature policy refused an image: no signature, or none that
    /// verifies with the configured keys. Nothing of it was stored.
    #[error("image {image}: signature refused: {reason}")]
    Signature {
        /// The image reference.
        image: String,
        /// Why.
        reason: String,
    },

    /// A layer entry would write outside the layer directory (absolute
    /// path, `..`, a path through a symlink, a hardlink to an outside
    /// target) or is of a kind berth refuses. Nothing of the layer was
    /// kept.
    #[error("unsafe layer {layer}: entry {entry:?}: {reason}")]
    UnsafeLayer {
        /// The layer's digest.
        layer: String,
        /// The tar entry's path.
        entry: String,
        /// Why it was refused.
        reason: String,
    },

    /// The spec built from an image's config and the overrides is invalid
    /// (`process.user` names no user of the image, say). `field` is its
    /// JSON path.
    #[error("invalid spec: {field}: {reason}")]
    InvalidSpec {
        /// JSON path of the offending field, as in `config.json`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A container with this id has a snapshot already.
    #[error("container {0:?} already has a snapshot")]
    AlreadyExists(String),

    /// A background task (a pull, a layer's unpack) ended without an
    /// answer: it panicked or was cancelled.
    #[error("{task} task failed: {reason}")]
    TaskFailed {
        /// What the task was doing (`pull`, `unpack`).
        task: &'static str,
        /// How it ended.
        reason: String,
    },

    /// The operation needs something the host or image lacks.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// A host-side operation failed: `op` says what was being done.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What berth-image was doing.
        op: &'static str,
        /// The path it was working on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The runtime refused or failed (creating the container, say).
    #[error(transparent)]
    Runtime(berth::Error),
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidSpec {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn image(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Image {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// The errno behind this error, when the kernel refused something.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            Error::Runtime(e) => e.errno(),
            _ => None,
        }
    }
}

/// The runtime's error, or this crate's own when the runtime reports one
/// of its extension hooks (a [`berth::Error::Extension`] of this crate).
impl From<berth::Error> for Error {
    fn from(e: berth::Error) -> Self {
        match e {
            berth::Error::Extension { name, source } if name == crate::EXTENSION_NAME => {
                match source.downcast::<Error>() {
                    Ok(own) => *own,
                    Err(source) => Error::Runtime(berth::Error::Extension { name, source }),
                }
            }
            e => Error::Runtime(e),
        }
    }
}

/// The error of an [`Extension`](berth::extension::Extension) hook: the
/// runtime's own errors pass through as they are, the image store's are
/// [`berth::Error::Extension`] (downcast its source to [`Error`]).
impl From<Error> for berth::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Runtime(e) => e,
            e => berth::Error::extension(crate::EXTENSION_NAME, e),
        }
    }
}
