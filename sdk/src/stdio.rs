//! The container process's standard streams.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;

use crate::error::{Error, Result};

/// Where one of the container's standard streams goes.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The caller's own descriptor (like `std::process::Stdio::inherit`),
    /// even if the caller holds it close-on-exec.
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// A pipe whose other end is handed back through
    /// [`Container::take_stdin`](crate::Container::take_stdin) and friends.
    Piped,
    /// This descriptor (a file, a socket, one end of a pipe).
    Fd(OwnedFd),
}

/// The parent's ends of piped streams.
#[derive(Debug, Default)]
pub(crate) struct ParentEnds {
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
}

/// Turns the three choices into descriptors for the child (numbered 3 or
/// above, so that putting them on 0..2 never overwrites one another) and
/// the parent's ends.
pub(crate) fn prepare(choices: [Stdio; 3]) -> Result<([Option<OwnedFd>; 3], ParentEnds)> {
    let mut child: [Option<OwnedFd>; 3] = [None, None, None];
    let mut ends = ParentEnds::default();
    for (i, choice) in choices.into_iter().enumerate() {
        let fd = match choice {
            Stdio::Inherit => continue,
            Stdio::Null => {
                let f = std::fs::OpenOptions::new()
                    .read(i == 0)
                    .write(i != 0)
                    .open("/dev/null")
                    .map_err(|e| Error::io("open", "/dev/null", e))?;
                OwnedFd::from(f)
            }
            Stdio::Fd(fd) => fd,
            Stdio::Piped => {
                let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                    .map_err(|e| Error::sys("pipe2", e))?;
                let (theirs, ours) = if i == 0 { (r, w) } else { (w, r) };
                let map = |e| Error::sys("register pipe with tokio", e);
                match i {
                    0 => ends.stdin = Some(pipe::Sender::from_owned_fd(ours).map_err(map)?),
                    1 => ends.stdout = Some(pipe::Receiver::from_owned_fd(ours).map_err(map)?),
                    _ => ends.stderr = Some(pipe::Receiver::from_owned_fd(ours).map_err(map)?),
                }
                theirs
            }
        };
        // std duplicates with F_DUPFD_CLOEXEC starting at 3.
        child[i] = Some(
            fd.try_clone()
                .map_err(|e| Error::sys("dup stdio descriptor", e))?,
        );
    }
    Ok((child, ends))
}

/// The master side of the container's pseudo-terminal (`process.terminal`):
/// read what the container prints, write what it should read.
#[derive(Debug)]
pub struct Pty {
    fd: AsyncFd<OwnedFd>,
}

impl Pty {
    pub(crate) fn new(fd: OwnedFd) -> Result<Pty> {
        let flags = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_GETFL)
            .map_err(|e| Error::sys("fcntl pty", e))?;
        let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))
            .map_err(|e| Error::sys("fcntl pty", e))?;
        Ok(Pty {
            fd: crate::exec::register(fd).map_err(|e| Error::sys("register pty with tokio", e))?,
        })
    }

    /// The master descriptor, e.g. to send over a console socket.
    pub fn into_fd(self) -> OwnedFd {
        self.fd.into_inner()
    }
}

impl AsyncRead for Pty {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref().as_fd(), unfilled).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // The slave side closed (every process holding it exited).
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Pty {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsRawFd for Pty {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// Takes ownership of descriptors `3..3+count` of this process, for
/// [`CreateOptions::pass_fds`](crate::CreateOptions::pass_fds) and
/// [`ExecOptions::pass_fds`](crate::ExecOptions::pass_fds): what runc's
/// `--preserve-fds N` passes on. They become close-on-exec, so that no
/// other child of this process inherits them.
///
/// Call it first thing in `main`, before anything opens a descriptor of
/// its own (which could take a number the caller left free). A number in
/// the range that is not open is an error naming it.
///
/// ```no_run
/// let fds = berth::take_preserved_fds(2)?; // systemd's LISTEN_FDS=2
/// let mut opts = berth::CreateOptions::default();
/// opts.pass_fds = fds;
/// # Ok::<(), berth::Error>(())
/// ```
pub fn take_preserved_fds(count: u32) -> crate::Result<Vec<std::os::fd::OwnedFd>> {
    crate::exec::inherited_fds(3, count)
        .map_err(|e| crate::Error::sys("take preserved descriptors", e))
}
