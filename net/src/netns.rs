//! Running host-side network work inside a given network namespace.
//!
//! A network namespace belongs to a thread, and a netlink socket, a
//! listening socket or a `/proc/sys/net` file belongs to the namespace of
//! the thread that opened it. So work for another namespace runs on a
//! thread of its own that enters the namespace first and ends after; the
//! caller's threads (tokio's workers) never change namespace.

use std::future::Future;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;

use crate::error::{Error, Result};

/// Runs `work` on a new thread that first enters the network namespace at
/// `ns` (a `/run/netns/NAME` or `/proc/PID/ns/net` file); `None` is this
/// process's own namespace. Awaiting does not block the caller's thread.
pub(crate) async fn run<T, F>(ns: Option<PathBuf>, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || {
            let _ = tx.send(enter(ns.as_deref()).and_then(|()| work()));
        })
        .map_err(|e| Error::sys("spawn network thread", e))?;
    rx.await
        .map_err(|_| Error::sys("network thread", std::io::Error::other("panicked")))?
}

/// Runs `work` on a new thread in the namespace at `ns`, blocking the
/// current thread (itself a network thread) until it ends.
pub(crate) fn run_blocking<T, F>(ns: &Path, work: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> Result<T> + Send,
{
    std::thread::scope(|s| {
        s.spawn(|| enter(Some(ns)).and_then(|()| work()))
            .join()
            .map_err(|_| Error::sys("network thread", std::io::Error::other("panicked")))?
    })
}

/// Drives `fut` to completion on the current (network) thread.
pub(crate) fn block_on<F: Future>(fut: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| Error::sys("start netlink runtime", e))?;
    Ok(rt.block_on(fut))
}

fn enter(ns: Option<&Path>) -> Result<()> {
    let Some(ns) = ns else {
        return Ok(());
    };
    let f = std::fs::File::open(ns).map_err(|e| Error::io("open network namespace", ns, e))?;
    nix::sched::setns(f, CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::io("enter network namespace", ns, e.into()))
}
