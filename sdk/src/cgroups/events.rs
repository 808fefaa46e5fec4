//! OOM notifications without polling: on v1 an eventfd registered for
//! `memory.oom_control` in `cgroup.event_control`; on v2 inotify on
//! `memory.events`, whose `oom_kill` count is compared on each change.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;

use super::{host, Cgroup, Layout, CGROUP_ROOT};
use crate::error::{Error, Result};

/// Wakes once per OOM kill in one cgroup.
#[derive(Debug)]
pub(crate) struct OomWatch {
    fd: AsyncFd<OwnedFd>,
    /// The file with the `oom_kill` count (v1 `memory.oom_control`, v2
    /// `memory.events`) and the count last seen: the kernel signals every
    /// OOM condition, of which only kills are reported.
    counter: PathBuf,
    last: u64,
    /// Kills counted but not reported yet (several between two reads).
    pending: u64,
}

impl Cgroup {
    /// The cgroup's directory in the memory hierarchy.
    fn memory_dir(&self) -> Option<PathBuf> {
        if self.layout == Layout::V2 {
            return Some(PathBuf::from(CGROUP_ROOT).join(&self.path));
        }
        host()
            .mounts
            .iter()
            .find(|m| m.is_v1() && m.has_option("memory"))
            .map(|m| m.mount_point.join(&self.path))
    }

    /// Starts watching the cgroup for OOM kills.
    pub(crate) fn watch_oom(&self) -> Result<OomWatch> {
        let dir = self
            .memory_dir()
            .ok_or_else(|| self.error("no memory controller to watch for OOM".into()))?;
        let io =
            |op: &'static str, path: PathBuf| move |e: nix::Error| Error::io(op, path, e.into());
        if self.layout == Layout::V2 {
            let events = dir.join("memory.events");
            let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
                .map_err(io("inotify_init", events.clone()))?;
            inotify
                .add_watch(&events, AddWatchFlags::IN_MODIFY)
                .map_err(io("watch", events.clone()))?;
            let last = oom_kills(&events)?;
            let fd = crate::exec::register(inotify.into())
                .map_err(|e| Error::sys("register inotify", e))?;
            return Ok(OomWatch {
                fd,
                counter: events,
                last,
                pending: 0,
            });
        }
        let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(io("eventfd", dir.clone()))?;
        let control = dir.join("memory.oom_control");
        let cfd = std::fs::File::open(&control).map_err(|e| Error::io("open", &control, e))?;
        let register = dir.join("cgroup.event_control");
        std::fs::write(
            &register,
            format!("{} {}", efd.as_raw_fd(), cfd.as_raw_fd()),
        )
        .map_err(|e| Error::io("register OOM eventfd", &register, e))?;
        let fd =
            crate::exec::register(efd.into()).map_err(|e| Error::sys("register eventfd", e))?;
        let last = oom_kills(&control)?;
        Ok(OomWatch {
            fd,
            counter: control,
            last,
            pending: 0,
        })
    }
}

impl OomWatch {
    /// Waits for the next OOM event. Cancel-safe: dropping the future loses
    /// nothing (the counter stays in the kernel).
    pub(crate) async fn next(&mut self) -> Result<()> {
        if self.pending > 0 {
            self.pending -= 1;
            return Ok(());
        }
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| Error::sys("wait for OOM event", e))?;
            let mut buf = [0u8; 4096];
            match nix::unistd::read(guard.get_inner(), &mut buf) {
                Ok(_) => {}
                Err(nix::errno::Errno::EAGAIN) => {
                    guard.clear_ready();
                    continue;
                }
                Err(e) => return Err(Error::sys("read OOM event", e)),
            }
            let now = oom_kills(&self.counter)?;
            if now > self.last {
                self.pending = now - self.last - 1;
                self.last = now;
                return Ok(());
            }
        }
    }
}

impl OomWatch {
    /// Whether a kill happened since the last report, without waiting: the
    /// kernel signals an OOM condition before the kill it leads to, so an
    /// observer that sees the exit first asks once more.
    pub(crate) fn killed_since(&mut self) -> Result<bool> {
        let now = oom_kills(&self.counter)?;
        let killed = now > self.last || self.pending > 0;
        self.pending = 0;
        self.last = now;
        Ok(killed)
    }
}

/// The `oom_kill` count of a v1 `memory.oom_control` or v2 `memory.events`.
fn oom_kills(path: &PathBuf) -> Result<u64> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    Ok(parse_oom_kills(&text))
}

fn parse_oom_kills(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn oom_kill_count_of_memory_events() {
        let text = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(super::parse_oom_kills(text), 2);
        assert_eq!(super::parse_oom_kills("garbage"), 0);
    }
}
