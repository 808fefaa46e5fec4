//! Captured output of detached containers.
//!
//! With [`CreateOptions::log`](crate::CreateOptions::log) (and
//! [`CreateOptions::detached`](crate::CreateOptions::detached)), the shim
//! that parents the container reads its stdout and stderr from pipes and
//! writes them to a log file in the CRI format that containerd and podman
//! use (`<RFC 3339 time> <stdout|stderr> <F|P> <line>`), rotating it at a
//! size cap. The shim drains the pipes whether or not anyone reads the log,
//! so a container is never held up by a missing reader, only by the disk.
//! [`Container::logs`](crate::Container::logs) reads the log back, from any
//! process.

mod capture;
pub(crate) mod cri;
mod reader;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub(crate) use capture::Capture;
pub use cri::{format_time, parse_time};
pub(crate) use reader::stream;

/// The name of the log file in the container's state directory when
/// [`LogConfig::path`] is not set.
pub const DEFAULT_LOG_FILE: &str = "container.log";

/// How a detached container's output is captured: where, and how much of it
/// is kept.
///
/// The defaults are the kubelet's for CRI logs: 10 MiB per file, 5 files
/// (the live one and 4 rotated ones, `PATH.1` the newest of those).
///
/// ```
/// let log = berth::logs::LogConfig::default()
///     .path("/var/log/web.log")
///     .max_size(1 << 20)
///     .max_files(3);
/// assert_eq!(log.max_files, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogConfig {
    /// The log file; `None`: `container.log` in the container's state
    /// directory (removed with the container). A file given here is kept
    /// after delete; output is appended to it if it exists.
    pub path: Option<PathBuf>,
    /// The most bytes one file holds; when the next record would pass it,
    /// the file is rotated. At least [`LogConfig::MIN_SIZE`].
    pub max_size: u64,
    /// How many files are kept, the live one included (at least 1; with 1
    /// the file is emptied when full).
    pub max_files: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            path: None,
            max_size: 10 << 20,
            max_files: 5,
        }
    }
}

impl LogConfig {
    /// The smallest [`LogConfig::max_size`]: a few records of the longest
    /// kind (16 KiB of content each).
    pub const MIN_SIZE: u64 = 64 << 10;

    /// Sets [`LogConfig::path`].
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Sets [`LogConfig::max_size`].
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// Sets [`LogConfig::max_files`].
    pub fn max_files(mut self, n: u32) -> Self {
        self.max_files = n;
        self
    }

    /// Checks the settings; [`Error::InvalidOption`] names a bad one.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_size < Self::MIN_SIZE {
            return Err(Error::InvalidOption {
                option: "log.max_size".into(),
                reason: format!(
                    "{} bytes is below the minimum of {}",
                    self.max_size,
                    Self::MIN_SIZE
                ),
            });
        }
        if self.max_files == 0 {
            return Err(Error::InvalidOption {
                option: "log.max_files".into(),
                reason: "at least 1 file (the live one) is needed".into(),
            });
        }
        if let Some(p) = &self.path {
            if !p.is_absolute() {
                return Err(Error::InvalidOption {
                    option: "log.path".into(),
                    reason: format!("{} is not an absolute path", p.display()),
                });
            }
            if p.file_name().is_none() {
                return Err(Error::InvalidOption {
                    option: "log.path".into(),
                    reason: format!("{} does not name a file", p.display()),
                });
            }
        }
        Ok(())
    }

    /// The log file of a container whose state directory is `dir`.
    pub(crate) fn file(&self, dir: &Path) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| dir.join(DEFAULT_LOG_FILE))
    }
}

/// Which of the container's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl LogStream {
    /// `stdout` or `stderr`, as the CRI format spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One line of a container's output, as [`Container::logs`](crate::Container::logs)
/// returns it: the parts of a line split over several records are joined.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogLine {
    /// The stream it was written to.
    pub stream: LogStream,
    /// When the shim read (the first part of) it.
    pub time: SystemTime,
    /// The line, without its newline. The last line of a stream may lack
    /// one in the output too (the container exited in the middle of it).
    pub line: Vec<u8>,
}

/// What [`Container::logs`](crate::Container::logs) returns.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let opts = berth::logs::LogOptions::default()
///     .follow(true)
///     .tail(100)
///     .since(SystemTime::now() - Duration::from_secs(600));
/// assert!(opts.follow);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogOptions {
    /// Keep the stream open for lines written later; it ends once the
    /// container has exited and its last output is read.
    pub follow: bool,
    /// Only lines written at or after this time.
    pub since: Option<SystemTime>,
    /// Only the last this many lines of what is written so far (after
    /// `since`); with `follow`, then every new one.
    pub tail: Option<usize>,
}

impl LogOptions {
    /// Sets [`LogOptions::follow`].
    pub fn follow(mut self, follow: bool) -> Self {
        self.follow = follow;
        self
    }

    /// Sets [`LogOptions::since`].
    pub fn since(mut self, time: SystemTime) -> Self {
        self.since = Some(time);
        self
    }

    /// Sets [`LogOptions::tail`].
    pub fn tail(mut self, lines: usize) -> Self {
        self.tail = Some(lines);
        self
    }
}

/// The rotated file `n` of `path` (`PATH.n`; 0 is the live file).
pub(crate) fn rotated(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}
