//! A container's persisted state: `<root>/<id>/state.json`, written
//! atomically so that any process can re-attach with `Runtime::get`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The lifecycle status of a container (the OCI runtime spec's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being created: the state directory records what the container owns
    /// before it is made, so a creator killed mid-way leaves a container in
    /// this status, which [`Container::delete`](crate::Container::delete)
    /// with `force` removes completely.
    Creating,
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
            Status::Creating => "creating",
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
    pub shim: Option<HostProcess>,
    /// The process whose supervisor records the exit status (the creator,
    /// unless it leaves its children to its own parent): observers in other
    /// processes wait for its record while it lives.
    #[serde(default)]
    pub recorder: Option<HostProcess>,
    /// Whether berth made the cgroup (recorded before it is made): only
    /// then does delete kill processes in it and remove it. A
    /// `cgroupsPath` naming an existing cgroup is used, never removed.
    /// Missing in state written before this field existed: owned.
    #[serde(default)]
    pub cgroup_owned: Option<bool>,
    /// How many of the cgroup's ancestors delete may remove once they are
    /// empty, from the closest up (recorded before the cgroup is made):
    /// those the create made, and those at or below the runtime's own
    /// `cgroup_parent`. A parent someone else made (a Kubernetes pod's
    /// cgroup, with the pod's limits) is never removed. Missing in state
    /// written before this field existed: every emptied parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parents_owned: Option<usize>,
    /// Where the shim captures the container's output (the path always
    /// set), if it does.
    #[serde(default)]
    pub log: Option<crate::logs::LogConfig>,
    /// The extensions the container asked for, recorded before any of
    /// them prepares anything: delete releases each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
}

/// A host process (a container's first process, a shim, a creator),
/// identified by pid and start time, so that a recycled pid is never
/// mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HostProcess {
    /// Its pid, in the host's pid namespace.
    pub pid: i32,
    /// Its start time: field 22 of `/proc/<pid>/stat`, in clock ticks
    /// since boot.
    pub start_time: u64,
}

impl HostProcess {
    /// The process `pid` that started at `start_time`.
    pub fn new(pid: i32, start_time: u64) -> HostProcess {
        HostProcess { pid, start_time }
    }

    /// This process (`None` only if `/proc` is unreadable).
    pub fn this() -> Option<HostProcess> {
        // Read once per process (a forked copy has a pid of its own).
        static THIS: std::sync::OnceLock<HostProcess> = std::sync::OnceLock::new();
        let pid = i32::try_from(std::process::id()).ok()?;
        if let Some(me) = THIS.get().filter(|me| me.pid == pid) {
            return Some(*me);
        }
        let (_, start_time) = proc_stat(pid)?;
        let me = HostProcess { pid, start_time };
        let _ = THIS.set(me);
        Some(me)
    }

    /// Whether it still runs (not a zombie, not a recycled pid).
    pub fn is_alive(&self) -> bool {
        is_alive(self.pid, self.start_time)
    }
}

pub(crate) const STATE_FILE: &str = "state.json";
pub(crate) const SPEC_FILE: &str = "config.json";
pub(crate) const EXEC_FIFO: &str = "exec.fifo";
/// The exit status, written once by the container's supervisor, apart from
/// `state.json` so that recording it never races another writer.
pub(crate) const EXIT_FILE: &str = "exit.json";
/// The file whose `flock` serializes a container's state transitions
/// across processes.
pub(crate) const LOCK_FILE: &str = "lock";

impl Persisted {
    pub(crate) fn load(dir: &Path, id: &str) -> Result<Persisted> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(id.to_string()),
            _ => Error::io("read state", &path, e),
        })?;
        let mut p: Persisted = serde_json::from_slice(&text).map_err(|e| Error::State {
            id: id.to_string(),
            reason: format!("{}: {e}", path.display()),
        })?;
        if let Some(exit) = read_exit(dir) {
            p.status = Status::Stopped;
            p.exit_status = Some(exit);
        }
        Ok(p)
    }

    /// Whether delete may kill in and remove the container's cgroup.
    pub(crate) fn owns_cgroup(&self) -> bool {
        self.cgroup_owned.unwrap_or(true)
    }

    /// How many of the cgroup's ancestors delete may remove once empty.
    pub(crate) fn cgroup_parents_owned(&self) -> usize {
        self.cgroup_parents_owned.unwrap_or(usize::MAX)
    }

    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| Error::State {
            id: self.id.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&dir.join(STATE_FILE), &json)
    }
}

/// The exit status the supervisor recorded, if any.
pub(crate) fn read_exit(dir: &Path) -> Option<ExitStatus> {
    let text = std::fs::read(dir.join(EXIT_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Records the exit status (once, by the container's supervisor).
pub(crate) fn record_exit(dir: &Path, status: ExitStatus) -> Result<()> {
    let json = serde_json::to_vec(&status).map_err(|e| Error::State {
        id: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    write_atomic(&dir.join(EXIT_FILE), &json)
}

/// A held lock on a container's state: every state transition (create,
/// start, pause, resume, update, delete) happens under it, in whichever
/// process. Released on drop (or when the holder dies).
#[derive(Debug)]
pub(crate) struct StateLock {
    _locked: nix::fcntl::Flock<std::fs::File>,
}

impl StateLock {
    /// Takes the lock of the container whose state directory is `dir`,
    /// waiting (blocking the thread) while another holder has it. A
    /// container deleted meanwhile is [`Error::NotFound`].
    pub(crate) fn acquire(dir: &Path, id: &str) -> Result<StateLock> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::NotFound(id.to_string()),
                _ => Error::io("open state lock", &path, e),
            })?;
        let locked = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::io("lock state", &path, e.into()))?;
        // Unlinked while we waited: the container was deleted.
        if locked.metadata().map(|m| m.nlink() == 0).unwrap_or(true) {
            return Err(Error::NotFound(id.to_string()));
        }
        Ok(StateLock { _locked: locked })
    }

    /// [`StateLock::acquire`] on a blocking thread.
    pub(crate) async fn acquire_async(dir: &Path, id: &str) -> Result<StateLock> {
        let (dir, id) = (dir.to_path_buf(), id.to_string());
        crate::container::blocking(move || StateLock::acquire(&dir, &id)).await
    }
}

/// Removes a container's state directory. A supervisor recording the
/// exit at that instant may add a file between the listing and the final
/// `rmdir`: then the removal starts over (it never waits on anything).
pub(crate) fn remove_dir(dir: &Path) -> Result<()> {
    let mut attempts = 0;
    loop {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && attempts < 10 => {
                attempts += 1;
            }
            Err(e) => return Err(Error::io("remove state directory", dir, e)),
        }
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

    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // Unique per writer, in this process and across processes.
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
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
