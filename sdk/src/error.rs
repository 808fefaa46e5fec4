//! The one error type of the SDK.
//!
//! Variants say which step failed, on which path, and with which errno, so a
//! caller can tell a bad spec ([`Error::InvalidSpec`]) from a kernel refusal
//! ([`Error::Init`], [`Error::Io`]) from a missing feature
//! ([`Error::Unsupported`]).

use std::io;
use std::path::PathBuf;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in berth.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The OCI spec asks for something impossible or unsafe. Nothing was
    /// created. `field` is the JSON path of the offending value
    /// (`mounts[2].destination`, `process.user.uid`, ...).
    #[error("invalid spec: {field}: {reason}")]
    InvalidSpec {
        /// JSON path of the offending field, as in `config.json`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The bundle could not be read (missing directory, unreadable or
    /// malformed `config.json`).
    #[error("bundle {path}: {reason}")]
    Bundle {
        /// The bundle directory or file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// A step of container initialisation failed inside the new container
    /// process; `step` names it as the plan does (`mount proc on /proc`).
    #[error("container init: {step}{}: {source}", path.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default())]
    Init {
        /// The failed step of the plan.
        step: String,
        /// The path the step worked on, if any.
        path: Option<PathBuf>,
        /// The errno the kernel returned.
        #[source]
        source: io::Error,
    },

    /// A host-side operation failed: `op` says what berth was doing.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What berth was doing (`create state directory`, `write uid_map`).
        op: &'static str,
        /// The path it was working on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A system call failed on the host side.
    #[error("{op}: {source}")]
    Sys {
        /// The system call or operation.
        op: &'static str,
        /// The errno.
        #[source]
        source: io::Error,
    },

    /// An option of a call (not a field of the spec) is invalid: `option`
    /// names it (`log.max_size`, `stop signal`). Nothing was done.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option, as the SDK names it.
        option: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The container id is malformed.
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId {
        /// The id given.
        id: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A container with this id exists already.
    #[error("container {0:?} already exists")]
    AlreadyExists(String),

    /// No container with this id.
    #[error("container {0:?} does not exist")]
    NotFound(String),

    /// The operation is not allowed in the container's current state
    /// (deleting a running container without `force`, starting twice, ...).
    #[error("container {id:?} is {status}: cannot {op}")]
    InvalidState {
        /// The container id.
        id: String,
        /// Its status when the operation was attempted.
        status: String,
        /// The refused operation.
        op: &'static str,
    },

    /// The host lacks a feature the spec needs.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// An OCI hook failed or timed out.
    #[error("{kind} hook {path}: {reason}")]
    Hook {
        /// Which hook list (`prestart`, `createRuntime`, ...).
        kind: &'static str,
        /// The hook's executable.
        path: PathBuf,
        /// Exit status, timeout or spawn error.
        reason: String,
    },

    /// A cgroup operation failed.
    #[error("cgroup {path}: {reason}")]
    Cgroup {
        /// The cgroup path (relative to the hierarchy roots).
        path: String,
        /// What failed.
        reason: String,
    },

    /// The shim of a detached container failed to create it; the message is
    /// the shim's error.
    #[error("shim: {0}")]
    Shim(String),

    /// The state file of a container is unreadable or corrupt.
    #[error("state of container {id:?}: {reason}")]
    State {
        /// The container id.
        id: String,
        /// What is wrong.
        reason: String,
    },

    /// An [extension](crate::extension) (a network, an image snapshot)
    /// failed; `source` is its own error, to downcast.
    #[error("{name}: {source}")]
    Extension {
        /// The extension's name.
        name: String,
        /// Its error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
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

    /// An error of extension `name`.
    pub fn extension(
        name: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error::Extension {
            name: name.into(),
            source: source.into(),
        }
    }

    pub(crate) fn sys(op: &'static str, source: impl Into<io::Error>) -> Self {
        Error::Sys {
            op,
            source: source.into(),
        }
    }

    /// The errno behind this error, when the kernel refused something.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Init { source, .. } | Error::Io { source, .. } | Error::Sys { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }
}

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::sys("system call", io::Error::from(e))
    }
}
