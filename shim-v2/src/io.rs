//! A process's standard streams: the FIFOs containerd's client made, given
//! to the process directly (stdout, stderr) or through a copy (stdin, and
//! everything when the process has a terminal).

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Mutex;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::task::JoinHandle;

use crate::containers::Streams;
use crate::error::{Error, Result};

/// The stream paths of one process, as containerd sent them.
#[derive(Debug, Clone, Default)]
pub struct Paths {
    /// The stdin FIFO (empty: none).
    pub stdin: String,
    /// The stdout FIFO (empty: none).
    pub stdout: String,
    /// The stderr FIFO (empty: none).
    pub stderr: String,
    /// Whether the process has a terminal.
    pub terminal: bool,
}

/// Opens a FIFO for writing without waiting for its reader (read-write, as
/// containerd's runc shim does, so the process never gets `SIGPIPE` when
/// the client goes away).
fn open_output(path: &str) -> Result<Option<OwnedFd>> {
    if path.is_empty() {
        return Ok(None);
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    Ok(Some(OwnedFd::from(f)))
}

/// The streams for a new process: the output FIFOs themselves (nothing for
/// a terminal, whose master the shim copies), and a stdin pipe fed from
/// the stdin FIFO.
pub fn streams(paths: &Paths) -> Result<Streams> {
    if paths.terminal {
        return Ok(Streams::default());
    }
    Ok(Streams {
        stdin_piped: !paths.stdin.is_empty(),
        stdout: open_output(&paths.stdout)?,
        stderr: open_output(&paths.stderr)?,
    })
}

/// The copies running for one process.
#[derive(Debug, Default)]
pub struct ProcIo {
    stdin: Mutex<Option<JoinHandle<()>>>,
    output: Mutex<Option<JoinHandle<()>>>,
    resize: Mutex<Option<OwnedFd>>,
}

/// Opens the stdin FIFO for reading, waiting (off the runtime's workers)
/// until the client has opened its end.
async fn open_stdin(path: String) -> io::Result<pipe::Receiver> {
    let p = PathBuf::from(path);
    let file = tokio::task::spawn_blocking(move || std::fs::File::open(p))
        .await
        .map_err(io::Error::other)??;
    pipe::Receiver::from_file(file)
}

impl ProcIo {
    /// Feeds the process's stdin pipe from the stdin FIFO.
    pub fn attach_pipes(stdin: Option<pipe::Sender>, paths: &Paths) -> ProcIo {
        let io = ProcIo::default();
        if let Some(mut tx) = stdin {
            let path = paths.stdin.clone();
            let task = tokio::spawn(async move {
                match open_stdin(path).await {
                    Ok(mut rx) => {
                        let _ = tokio::io::copy(&mut rx, &mut tx).await;
                    }
                    Err(e) => log::warn!("stdin: {e}"),
                }
            });
            set(&io.stdin, task);
        }
        io
    }

    /// Copies between the terminal's master and the FIFOs.
    pub fn attach_pty(master: OwnedFd, paths: &Paths) -> Result<ProcIo> {
        let io = ProcIo::default();
        let dup = |fd: &OwnedFd| {
            fd.try_clone()
                .map_err(|e| Error::io("dup", "terminal master", e))
        };
        set(&io.resize, dup(&master)?);
        let writer = dup(&master)?;
        let reader = register(master)?;
        let writer = register(writer)?;
        if !paths.stdin.is_empty() {
            let path = paths.stdin.clone();
            let task = tokio::spawn(async move {
                match open_stdin(path).await {
                    Ok(mut rx) => {
                        let mut buf = vec![0u8; 32 * 1024];
                        while let Ok(n @ 1..) = rx.read(&mut buf).await {
                            if write_all(&writer, buf.get(..n).unwrap_or_default())
                                .await
                                .is_err()
                            {
                                break;
                            }
                        }
                    }
                    Err(e) => log::warn!("stdin: {e}"),
                }
            });
            set(&io.stdin, task);
        }
        let out = if paths.stdout.is_empty() {
            None
        } else {
            Some(
                pipe::OpenOptions::new()
                    .read_write(true)
                    .open_sender(&paths.stdout)
                    .map_err(|e| Error::io("open", &paths.stdout, e))?,
            )
        };
        let task = tokio::spawn(async move {
            let mut out = out;
            let mut buf = vec![0u8; 32 * 1024];
            // Until the terminal's last user is gone (EIO) or an error.
            while let Ok(n @ 1..) = read(&reader, &mut buf).await {
                if let Some(o) = out.as_mut() {
                    if o.write_all(buf.get(..n).unwrap_or_default()).await.is_err() {
                        out = None;
                    }
                }
            }
        });
        set(&io.output, task);
        Ok(io)
    }

    /// Closes the process's stdin (containerd's `CloseIO`).
    pub fn close_stdin(&self) {
        if let Some(t) = take(&self.stdin) {
            t.abort();
        }
    }

    /// Sets the terminal's size.
    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let guard = self.resize.lock().unwrap_or_else(|p| p.into_inner());
        let Some(fd) = guard.as_ref() else {
            return Err(Error::FailedPrecondition(
                "the process has no terminal".into(),
            ));
        };
        let size = rustix::termios::Winsize {
            ws_row: u16::try_from(height).unwrap_or(u16::MAX),
            ws_col: u16::try_from(width).unwrap_or(u16::MAX),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(fd, size)
            .map_err(|e| Error::io("resize", "terminal", e.into()))
    }

    /// Waits until everything the process printed on its terminal has
    /// been copied out.
    pub async fn drain(&self) {
        self.close_stdin();
        if let Some(t) = take(&self.output) {
            let _ = t.await;
        }
    }
}

/// Registers a non-blocking descriptor with the tokio reactor.
fn register(fd: OwnedFd) -> Result<AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` owns its descriptor: it stays open and the same
    // for as long as the `AsyncFd` holds it.
    unsafe { AsyncFd::register(fd) }
        .map_err(|e| Error::io("register", "terminal", e.into_parts().1))
}

fn set<T>(slot: &Mutex<Option<T>>, value: T) {
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
}

fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// Reads from a non-blocking terminal master; the end (EIO) reads as 0.
async fn read(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        match guard.try_io(|f| nix::unistd::read(f.get_ref(), buf).map_err(io::Error::from)) {
            Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

/// Writes all of `data` to a non-blocking terminal master.
async fn write_all(fd: &AsyncFd<OwnedFd>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        match guard.try_io(|f| nix::unistd::write(f.get_ref(), data).map_err(io::Error::from)) {
            Ok(Ok(n)) => data = data.get(n..).unwrap_or_default(),
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}
