//! Reading a log back: the rotated files oldest first, then the live one,
//! records joined into lines; following it through inotify (never by
//! polling) until the container has exited.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};
use futures::FutureExt;
use nix::sys::inotify::AddWatchFlags;

use super::cri::parse_record;
use super::{rotated, LogLine, LogOptions, LogStream};
use crate::container::{blocking, Container};
use crate::error::{Error, Result};

/// How much one blocking step reads.
const STEP_BYTES: usize = 1 << 20;

/// A position in a log and its rotated files.
#[derive(Debug)]
struct Reader {
    path: PathBuf,
    max_files: u32,
    /// Files still to read, oldest first, with their inode; the last is
    /// the live file.
    files: VecDeque<(File, u64)>,
    /// Bytes of the front file read but not yet a complete record.
    pending: Vec<u8>,
    /// Bytes read from the front file.
    offset: u64,
    /// Lines begun by `P` records, per stream.
    partial: [Option<LogLine>; 2],
}

fn index(s: LogStream) -> usize {
    match s {
        LogStream::Stdout => 0,
        LogStream::Stderr => 1,
    }
}

impl Reader {
    /// Opens the live file and the rotated ones (newest first, so that a
    /// rotation meanwhile shows as an inode seen twice, read once).
    fn open(path: PathBuf, max_files: u32) -> Result<Reader> {
        let mut found: Vec<(File, u64)> = Vec::new();
        for n in 0..max_files.max(1) {
            let p = rotated(&path, n);
            let f = match File::open(&p) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("open log file", p, e)),
            };
            let ino = f
                .metadata()
                .map_err(|e| Error::io("stat log file", &p, e))?
                .ino();
            if !found.iter().any(|(_, i)| *i == ino) {
                found.push((f, ino));
            }
        }
        found.reverse();
        Ok(Reader {
            path,
            max_files,
            files: found.into(),
            pending: Vec::new(),
            offset: 0,
            partial: [None, None],
        })
    }

    /// Reads on, up to about `limit` bytes; returns the lines completed and
    /// whether the live file's end was reached.
    fn read(&mut self, limit: usize, lines: &mut Vec<LogLine>) -> Result<bool> {
        let mut buf = vec![0u8; 64 << 10];
        let mut total = 0;
        while total < limit {
            let Some((front, _)) = self.files.front_mut() else {
                // No file yet: look again.
                self.reopen_newer();
                return Ok(true);
            };
            let n = front
                .read(&mut buf)
                .map_err(|e| Error::io("read log file", &self.path, e))?;
            if n > 0 {
                total += n;
                self.offset += n as u64;
                self.pending.extend_from_slice(&buf[..n]);
                self.split(lines);
                continue;
            }
            if self.files.len() > 1 {
                // An older file is done; a record never spans two files.
                self.files.pop_front();
                self.pending.clear();
                self.offset = 0;
                continue;
            }
            let ino = self.files.front().map_or(0, |(_, i)| *i);
            // The end of the live file, unless it was rotated meanwhile.
            match std::fs::metadata(&self.path) {
                Ok(m) if m.ino() != ino => {
                    self.reopen_newer();
                    continue;
                }
                Ok(m) if m.len() < self.offset => {
                    // Emptied (one-file rotation): start over.
                    if let Some((f, _)) = self.files.front_mut() {
                        f.rewind()
                            .map_err(|e| Error::io("rewind log file", &self.path, e))?;
                    }
                    self.offset = 0;
                    self.pending.clear();
                    continue;
                }
                _ => return Ok(true),
            }
        }
        Ok(false)
    }

    /// After a rotation: queue the files newer than the one being read.
    fn reopen_newer(&mut self) {
        let current = self.files.back().map(|(_, ino)| *ino);
        let mut newer = Vec::new();
        for n in 0..self.max_files.max(1) {
            let Ok(f) = File::open(rotated(&self.path, n)) else {
                continue;
            };
            let Ok(ino) = f.metadata().map(|m| m.ino()) else {
                continue;
            };
            if Some(ino) == current {
                break;
            }
            if !newer.iter().any(|(_, i)| *i == ino) {
                newer.push((f, ino));
            }
        }
        newer.reverse();
        self.files.extend(newer);
    }

    /// Moves the complete records of `pending` into lines.
    fn split(&mut self, lines: &mut Vec<LogLine>) {
        let Some(end) = self.pending.iter().rposition(|&c| c == b'\n') else {
            return;
        };
        for rec in self.pending[..end].split(|&c| c == b'\n') {
            // Not a record (a foreign file, a torn write): skipped.
            let Some(r) = parse_record(rec) else {
                continue;
            };
            let slot = &mut self.partial[index(r.stream)];
            let line = slot.get_or_insert_with(|| LogLine {
                stream: r.stream,
                time: r.time,
                line: Vec::new(),
            });
            line.line.extend_from_slice(r.content);
            if !r.partial {
                if let Some(l) = slot.take() {
                    lines.push(l);
                }
            }
        }
        self.pending.drain(..=end);
    }

    /// The unfinished lines, at the very end.
    fn finish(&mut self, lines: &mut Vec<LogLine>) {
        let mut rest: Vec<LogLine> = self.partial.iter_mut().filter_map(Option::take).collect();
        rest.sort_by_key(|l| l.time);
        lines.extend(rest);
    }
}

/// What the stream carries between items.
struct State {
    reader: Option<Reader>,
    path: PathBuf,
    max_files: u32,
    opts: LogOptions,
    out: VecDeque<LogLine>,
    /// The last read reached the live file's end.
    caught_up: bool,
    /// The first read, which applies `tail`, is done.
    tailed: bool,
    ended: bool,
    notify: Option<crate::inotify::Watch>,
    /// Resolves once the container exited and its shim wrote the last
    /// output.
    exit: Option<BoxFuture<'static, ()>>,
    exited: bool,
}

/// The stream behind [`Container::logs`].
pub(crate) fn stream(
    ctr: &Container,
    path: PathBuf,
    max_files: u32,
    opts: LogOptions,
) -> Result<BoxStream<'static, Result<LogLine>>> {
    let (notify, exit) = if opts.follow {
        // Watched before the first read, so no write after it is missed.
        let dir = path.parent().unwrap_or(std::path::Path::new("/"));
        let fd = crate::inotify::Watch::new(
            dir,
            AddWatchFlags::IN_MODIFY
                | AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_CLOSE_WRITE,
        )?;
        let c = ctr.clone();
        (Some(fd), Some(async move { drop(c.wait().await) }.boxed()))
    } else {
        (None, None)
    };
    let state = State {
        reader: None,
        path,
        max_files,
        opts,
        out: VecDeque::new(),
        caught_up: false,
        tailed: false,
        ended: false,
        notify,
        exit,
        exited: false,
    };
    Ok(futures::stream::unfold(state, |mut st| async move {
        match next(&mut st).await {
            Ok(Some(line)) => Some((Ok(line), st)),
            Ok(None) => None,
            Err(e) => {
                st.ended = true;
                st.out.clear();
                Some((Err(e), st))
            }
        }
    })
    .fuse()
    .boxed())
}

async fn next(st: &mut State) -> Result<Option<LogLine>> {
    loop {
        if let Some(l) = st.out.pop_front() {
            return Ok(Some(l));
        }
        if st.ended {
            return Ok(None);
        }
        if st.caught_up && !st.exited {
            wait_for_more(st).await?;
        }
        // The last read: everything the shim wrote before it exited.
        let last = !st.opts.follow || st.exited;
        let at_end = read_step(st, last).await?;
        st.tailed = true;
        st.caught_up = at_end;
        if at_end && last {
            st.ended = true;
        }
    }
}

/// Waits until the directory changes or the container is gone.
async fn wait_for_more(st: &mut State) -> Result<()> {
    let (Some(notify), Some(exit)) = (st.notify.as_ref(), st.exit.as_mut()) else {
        st.exited = true;
        return Ok(());
    };
    tokio::select! {
        changed = notify.changed() => changed?,
        () = exit => st.exited = true,
    }
    Ok(())
}

/// One blocking step: reads on, filters, and queues lines; with a tail
/// and before catching up, reads to the end keeping only the last lines.
/// Returns whether the end was reached.
async fn read_step(st: &mut State, last: bool) -> Result<bool> {
    let reader = st.reader.take();
    let (path, max_files) = (st.path.clone(), st.max_files);
    let tail = if st.tailed { None } else { st.opts.tail };
    let since = st.opts.since;
    let (reader, lines, at_end) = blocking(move || {
        let mut r = match reader {
            Some(r) => r,
            None => Reader::open(path, max_files)?,
        };
        let mut kept: VecDeque<LogLine> = VecDeque::new();
        let mut at_end;
        loop {
            let mut lines = Vec::new();
            at_end = r.read(STEP_BYTES, &mut lines)?;
            if at_end && last {
                r.finish(&mut lines);
            }
            for l in lines {
                if since.is_some_and(|s| l.time < s) {
                    continue;
                }
                kept.push_back(l);
                if let Some(n) = tail {
                    if kept.len() > n {
                        kept.pop_front();
                    }
                }
            }
            if at_end || tail.is_none() {
                break;
            }
        }
        Ok((r, kept, at_end))
    })
    .await?;
    st.reader = Some(reader);
    st.out.extend(lines);
    Ok(at_end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::cri::{format_time, push_record};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn parts_are_joined_per_stream_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let t = |s| format_time(UNIX_EPOCH + Duration::from_secs(s));
        let mut old = Vec::new();
        push_record(&mut old, &t(1), LogStream::Stdout, false, b"one");
        push_record(&mut old, &t(2), LogStream::Stdout, true, b"tw");
        std::fs::write(rotated(&path, 1), &old).unwrap();
        let mut live = Vec::new();
        push_record(&mut live, &t(3), LogStream::Stderr, false, b"err");
        push_record(&mut live, &t(4), LogStream::Stdout, false, b"o");
        push_record(&mut live, &t(5), LogStream::Stderr, true, b"unfinished");
        std::fs::write(&path, &live).unwrap();
        let mut r = Reader::open(path, 3).unwrap();
        let mut lines = Vec::new();
        assert!(r.read(usize::MAX, &mut lines).unwrap());
        r.finish(&mut lines);
        let got: Vec<(LogStream, &[u8])> = lines
            .iter()
            .map(|l| (l.stream, l.line.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                (LogStream::Stdout, &b"one"[..]),
                (LogStream::Stderr, b"err"),
                (LogStream::Stdout, b"two"),
                (LogStream::Stderr, b"unfinished"),
            ]
        );
        assert_eq!(lines[2].time, UNIX_EPOCH + Duration::from_secs(2));
    }
}
