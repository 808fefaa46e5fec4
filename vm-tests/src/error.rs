//! The one error type of this crate.

use std::path::{Path, PathBuf};
use std::process::Output;

/// Everything that can go wrong while preparing a VM cell: I/O on a named path,
/// an external tool (apt-get, dpkg) that failed, or an input (package list, ELF
/// module, cpio archive, bzImage) that is not what it claims to be.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a file or directory.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`"read"`, `"create"`, ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An external command could not be started or exited unsuccessfully.
    #[error("`{command}` failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    Command {
        /// The command line, for humans.
        command: String,
        /// The exit status, or why it could not be spawned.
        status: String,
        /// The tail of its standard error.
        stderr: String,
    },
    /// An input file has an unexpected format.
    #[error("{what}: {detail}")]
    Format {
        /// What was being parsed (`"ELF module /x/y.ko"`, `"cpio archive"`, ...).
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Something that was looked for does not exist (a kernel package, a module, a file).
    #[error("not found: {0}")]
    NotFound(String),
    /// Module dependencies form a cycle.
    #[error("module dependency cycle: {0}")]
    Cycle(String),
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(op: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// An [`Error::Format`].
    pub fn format(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Format {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// Runs `cmd`, capturing its output; a spawn failure or a non-zero exit becomes
/// [`Error::Command`] carrying the last lines of stderr.
pub(crate) fn run(cmd: &mut std::process::Command) -> Result<Output> {
    let line = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| Error::Command {
        command: line.clone(),
        status: format!("spawn: {e}"),
        stderr: String::new(),
    })?;
    if out.status.success() {
        return Ok(out);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(Error::Command {
        command: line,
        status: out.status.to_string(),
        stderr: tail.join("\n"),
    })
}
