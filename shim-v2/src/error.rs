//! The shim's errors, and how they reach containerd (as TTRPC status codes
//! that containerd's `errdefs` understands).

use containerd_shim::protos::ttrpc::{self, Code};

/// What can go wrong in the shim.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The berth SDK refused or failed.
    #[error("{op}: {source}")]
    Sdk {
        /// What the shim asked for.
        op: &'static str,
        /// How containerd should see it.
        code: Code,
        /// The SDK's error.
        #[source]
        source: Box<berth::Error>,
    },
    /// No task or process of this id.
    #[error("{0}: not found")]
    NotFound(String),
    /// The id is taken.
    #[error("{0}: already exists")]
    AlreadyExists(String),
    /// The request does not apply in the process's current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A malformed request.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An unreadable spec or runtime option.
    #[error("spec: {0}")]
    Spec(String),
    /// The operation is not implemented.
    #[error("{0} is not implemented")]
    Unimplemented(&'static str),
    /// A file system operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was done.
        what: &'static str,
        /// To which path.
        path: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// containerd's shim library failed.
    #[error("shim: {0}")]
    Shim(Box<containerd_shim::Error>),
}

/// A result with the shim's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error about `path`.
    pub fn io(
        what: &'static str,
        path: impl AsRef<std::path::Path>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            what,
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    fn code(&self) -> Code {
        match self {
            Error::NotFound(_) => Code::NOT_FOUND,
            Error::AlreadyExists(_) => Code::ALREADY_EXISTS,
            Error::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            Error::InvalidArgument(_) | Error::Spec(_) => Code::INVALID_ARGUMENT,
            Error::Unimplemented(_) => Code::UNIMPLEMENTED,
            Error::Sdk { code, .. } => *code,
            Error::Io { .. } | Error::Shim(_) => Code::UNKNOWN,
        }
    }
}

impl From<containerd_shim::Error> for Error {
    fn from(e: containerd_shim::Error) -> Self {
        Error::Shim(Box::new(e))
    }
}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> Self {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), e.to_string()))
    }
}
