//! The shim's side: a thread drains the container's stdout and stderr
//! pipes into the log file, rotating it at its cap.
//!
//! A thread of its own rather than a task: it only ever waits for the
//! pipes or the disk, and the shim's async runtime stays free to reap.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::SystemTime;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::cri::{format_time, push_record, MAX_CONTENT};
use super::{rotated, LogConfig, LogStream};
use crate::error::{Error, Result};

/// How much one read takes from a pipe.
const READ_SIZE: usize = 256 << 10;

/// The pipe size asked for (the default `fs.pipe-max-size`): fewer wake-ups
/// of the shim, and more slack for the container while the disk is busy.
const PIPE_SIZE: i32 = 1 << 20;

/// After the container's first process exited, how long the capture waits
/// for more output from processes that still hold the pipes (possible only
/// without a pid namespace of its own) before it stops.
const LINGER_MS: u16 = 1000;

/// And how long it drains at most after that exit, however busy they are.
const DRAIN_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// A running capture of a container's output.
#[derive(Debug)]
pub(crate) struct Capture {
    thread: Option<JoinHandle<()>>,
    /// Closed by [`Capture::finish`]: the thread drains and stops.
    exited: Option<OwnedFd>,
}

impl Capture {
    /// Opens (or creates) the log file and starts draining `stdout` and
    /// `stderr` (the reading ends of the container's pipes) into it.
    pub(crate) fn start(
        file: PathBuf,
        cfg: &LogConfig,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> Result<Capture> {
        let writer = Writer::open(file, cfg.max_size, cfg.max_files)?;
        for fd in [&stdout, &stderr] {
            // Best effort: the default 64 KiB works too.
            let _ = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
        }
        let (exited_r, exited_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe2", e))?;
        let thread = std::thread::Builder::new()
            .name("berth-logs".into())
            .spawn(move || drain(writer, [Some(stdout), Some(stderr)], exited_r))
            .map_err(|e| Error::sys("start log thread", e))?;
        Ok(Capture {
            thread: Some(thread),
            exited: Some(exited_w),
        })
    }

    /// The container's first process exited: writes what is left in the
    /// pipes and returns once the log is complete. Blocking.
    pub(crate) fn finish(mut self) {
        self.exited.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread: read whichever pipe has data, write it, until both are
/// closed (or, once the container exited, quiet for [`LINGER_MS`]).
fn drain(mut w: Writer, mut pipes: [Option<OwnedFd>; 2], exited: OwnedFd) {
    let mut buf = vec![0u8; READ_SIZE];
    let mut draining: Option<std::time::Instant> = None;
    const STREAMS: [LogStream; 2] = [LogStream::Stdout, LogStream::Stderr];
    loop {
        let open: Vec<usize> = (0..2).filter(|&i| pipes[i].is_some()).collect();
        if open.is_empty() {
            break;
        }
        let mut fds: Vec<PollFd> = open
            .iter()
            .filter_map(|&i| pipes[i].as_ref())
            .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        if draining.is_none() {
            fds.push(PollFd::new(exited.as_fd(), PollFlags::POLLIN));
        }
        let timeout = match draining {
            Some(since) if since.elapsed() > DRAIN_MAX => break,
            Some(_) => PollTimeout::from(LINGER_MS),
            None => PollTimeout::NONE,
        };
        match poll(&mut fds, timeout) {
            Ok(0) => break,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "poll on the container's output failed");
                break;
            }
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        if draining.is_none() && ready[open.len()] {
            draining = Some(std::time::Instant::now());
        }
        for (k, &i) in open.iter().enumerate() {
            if !ready[k] {
                continue;
            }
            let Some(fd) = pipes[i].as_ref() else {
                continue;
            };
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => pipes[i] = None,
                Ok(n) => w.write(STREAMS[i], &buf[..n]),
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(_) => pipes[i] = None,
            }
        }
    }
    w.flush();
}

/// The log file and its rotation.
struct Writer {
    path: PathBuf,
    max_size: u64,
    max_files: u32,
    file: Option<std::fs::File>,
    /// Bytes in the live file.
    size: u64,
    /// Records not written yet.
    out: Vec<u8>,
    /// A write failed (a full disk): said once, until one works again.
    failing: bool,
}

impl Writer {
    fn open(path: PathBuf, max_size: u64, max_files: u32) -> Result<Writer> {
        let file = open_log(&path).map_err(|e| Error::io("open log file", &path, e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Writer {
            path,
            max_size,
            max_files,
            file: Some(file),
            size,
            out: Vec::with_capacity(READ_SIZE * 2),
            failing: false,
        })
    }

    /// Writes what one read returned as records: one per line, `P` records
    /// for a line's parts longer than [`MAX_CONTENT`] and for its unfinished
    /// end (which the next read continues).
    fn write(&mut self, stream: LogStream, mut data: &[u8]) {
        let time = format_time(SystemTime::now());
        while !data.is_empty() {
            let newline = data.iter().take(MAX_CONTENT + 1).position(|&c| c == b'\n');
            let (content, partial, used) = match newline {
                Some(i) => (&data[..i], false, i + 1),
                None => {
                    let n = data.len().min(MAX_CONTENT);
                    (&data[..n], true, n)
                }
            };
            let len = (time.len() + 11 + content.len()) as u64;
            let pending = self.size + self.out.len() as u64;
            if pending > 0 && pending + len > self.max_size {
                self.flush();
                self.rotate();
            }
            push_record(&mut self.out, &time, stream, partial, content);
            data = &data[used..];
        }
        self.flush();
    }

    fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let written = match self.file.as_mut() {
            Some(f) => f.write_all(&self.out),
            None => Err(std::io::Error::other("no log file open")),
        };
        match written {
            Ok(()) => {
                self.size += self.out.len() as u64;
                self.failing = false;
            }
            // Dropped rather than held: the container must not wait for a
            // disk with no room.
            Err(e) => {
                if !self.failing {
                    tracing::warn!(path = %self.path.display(), error = %e, "log output lost");
                }
                self.failing = true;
            }
        }
        self.out.clear();
    }

    /// `PATH.n-1` goes, `PATH.i` becomes `PATH.i+1`, `PATH` becomes
    /// `PATH.1`, and a new `PATH` is started (with one file: emptied).
    fn rotate(&mut self) {
        self.file = None;
        if self.max_files <= 1 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = std::fs::remove_file(rotated(&self.path, self.max_files - 1));
            for i in (1..self.max_files - 1).rev() {
                let _ = std::fs::rename(rotated(&self.path, i), rotated(&self.path, i + 1));
            }
            let _ = std::fs::rename(&self.path, rotated(&self.path, 1));
        }
        self.size = 0;
        match open_log(&self.path) {
            Ok(f) => self.file = Some(f),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot reopen the log")
            }
        }
    }
}

fn open_log(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_every_file_under_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = Writer::open(path.clone(), LogConfig::MIN_SIZE, 3).unwrap();
        let line = [b'x'; 999];
        for _ in 0..1000 {
            let mut data = line.to_vec();
            data.push(b'\n');
            w.write(LogStream::Stdout, &data);
        }
        // A line longer than a record: split into P records.
        w.write(LogStream::Stderr, &[b'y'; MAX_CONTENT * 2 + 5]);
        w.flush();
        for n in 0..3 {
            let len = std::fs::metadata(rotated(&path, n)).unwrap().len();
            assert!(len <= LogConfig::MIN_SIZE, "file {n}: {len}");
        }
        assert!(!rotated(&path, 3).exists());
        let text = std::fs::read(&path).unwrap();
        let last: Vec<&[u8]> = text.split(|&c| c == b'\n').rev().skip(1).take(3).collect();
        for (rec, partial) in last.iter().zip([true, true, true]) {
            let r = super::super::cri::parse_record(rec).unwrap();
            assert_eq!(r.partial, partial);
            assert_eq!(r.stream, LogStream::Stderr);
        }
    }
}
