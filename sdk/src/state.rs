//! A container's persisted state: `<root>/<id>/state.json`, written
//! atomically so that any process can re-attach with `Runtime::get`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The lifecycle status of a container (the OCI runtime spec's, without
/// the transient `creating`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Set up and waiting for `start`.
    Created,
    /// The user's process has been started and has not exited.
    Running,
    /// The container's process has exited.
    Stopped,
    /// Created or running, and frozen by [`Container::pause`](crate::Container::pause).
    /// Read from the cgroup freezer when asked, as runc does; never stored.
    Paused,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Paused => "paused",
        })
    }
}

/// How the container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitStatus {
    /// It called `exit(code)`.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
}

impl ExitStatus {
    /// The exit code, as a shell reports it: `128 + signal` for a signal.
    pub fn code(&self) -> i32 {
        match *self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }

    /// The signal that killed the process, if one did.
    pub fn signal(&self) -> Option<i32> {
        match *self {
            ExitStatus::Signaled(s) => Some(s),
            ExitStatus::Exited(_) => None,
        }
    }

    /// `exit(0)`.
    pub fn success(&self) -> bool {
        *self == ExitStatus::Exited(0)
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Exited(c) => write!(f, "exit code {c}"),
            ExitStatus::Signaled(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// What berth records about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Persisted {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub pid: i32,
    /// Start time of `pid` (field 22 of `/proc/<pid>/stat`), so that a
    /// recycled pid is never mistaken for the container.
    pub pid_start_time: u64,
    pub status: Status,
    pub exit_status: Option<ExitStatus>,
    pub cgroup_path: String,
    pub annotations: HashMap<String, String>,
    /// Seconds since the epoch.
    pub created: u64,
    /// The supervising shim of a detached container.
    #[serde(default)]
    pub shim: Option<ShimProcess>,
}

/// A shim process, identified like the container's (pid and start time).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct ShimProcess {
    pub pid: i32,
    pub start_time: u64,
}

pub(crate) const STATE_FILE: &str = "state.json";
pub(crate) const SPEC_FILE: &str = "config.json";
pub(crate) const EXEC_FIFO: &str = "exec.fifo";

impl Persisted {
    pub(crate) fn load(dir: &Path, id: &str) -> Result<Persisted> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(id.to_string()),
            _ => Error::io("read state", &path, e),
        })?;
        serde_json::from_slice(&text).map_err(|e| Error::State {
            id: id.to_string(),
            reason: format!("{}: {e}", path.display()),
        })
    }

    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::State {
            id: self.id.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&dir.join(STATE_FILE), &json)
    }
}

/// Writes `data` to `path` so that readers see the old or the new content,
/// never a part: a temporary file in the same directory, then an atomic
/// switch of names.
///
/// Not synced to disk: the state describes processes of this boot only
/// (after a crash every pid in it is stale anyway), and on a host whose
/// `/run` is not a tmpfs an `fdatasync` per write cost milliseconds per
/// container. runc and crun do not sync their state either.
///
/// An existing file is swapped with the new one (`RENAME_EXCHANGE`) and the
/// old content unlinked, rather than renamed over: ext4 flushes the data of
/// a file renamed over another (`auto_da_alloc`), which blocked a state
/// update for up to 100 ms on a busy disk.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use nix::errno::Errno;
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};

    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        drop(f);
        match renameat2(AT_FDCWD, &tmp, AT_FDCWD, path, RenameFlags::RENAME_EXCHANGE) {
            // `tmp` now holds the old content.
            Ok(()) => std::fs::remove_file(&tmp),
            // No file yet, or a filesystem without RENAME_EXCHANGE.
            Err(Errno::ENOENT | Errno::EINVAL | Errno::ENOSYS) => std::fs::rename(&tmp, path),
            Err(e) => Err(e.into()),
        }
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("write", path, e)
    })
}

/// The process state character and start time from `/proc/<pid>/stat`.
pub(crate) fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<(char, u64)> {
    // The command name may hold spaces and parentheses: split after the
    // last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3 (state); starttime is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Whether `pid` is still the live (not zombie) process that started at
/// `start_time`.
pub(crate) fn is_alive(pid: i32, start_time: u64) -> bool {
    matches!(proc_stat(pid), Some((state, start)) if start == start_time && state != 'Z' && state != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let line =
            "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 98765)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
        assert_eq!(ExitStatus::Exited(3).code(), 3);
        assert!(ExitStatus::Exited(0).success());
    }

    #[test]
    fn atomic_write_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        write_atomic(&p, b"three").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        // No temporary file (with the old content) is left.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
