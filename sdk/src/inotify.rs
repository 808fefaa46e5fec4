//! Waiting for changes to a file or directory through inotify, never by
//! polling: the exit record in a state directory, the lifecycle journal, a
//! followed log.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;

use crate::error::{Error, Result};

/// An inotify watch on one path, registered with tokio.
#[derive(Debug)]
pub(crate) struct Watch(AsyncFd<OwnedFd>);

impl Watch {
    /// Watches `path` for `mask`. Set it up before looking at what it
    /// guards, so that no change after the look is missed.
    pub(crate) fn new(path: &Path, mask: AddWatchFlags) -> Result<Watch> {
        let io = |op, e: nix::errno::Errno| Error::io(op, path, e.into());
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| io("inotify_init", e))?;
        inotify
            .add_watch(path, mask)
            .map_err(|e| io("inotify_add_watch", e))?;
        let fd =
            crate::exec::register(inotify.into()).map_err(|e| Error::sys("register inotify", e))?;
        Ok(Watch(fd))
    }

    /// Returns after the next change. The events are drained, not read:
    /// the caller looks again at what it watches. Cancel-safe: a change
    /// that came while no one waited makes the next call return at once.
    pub(crate) async fn changed(&self) -> Result<()> {
        let mut guard = self
            .0
            .readable()
            .await
            .map_err(|e| Error::sys("wait for inotify", e))?;
        let mut buf = [0u8; 4096];
        loop {
            match nix::unistd::read(guard.get_inner(), &mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(nix::errno::Errno::EAGAIN) => {
                    guard.clear_ready();
                    return Ok(());
                }
                Err(e) => return Err(Error::sys("read inotify", e)),
            }
        }
    }
}
