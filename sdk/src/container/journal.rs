//! The container's lifecycle journal: `start`, `pause` and `resume`, in
//! whichever process they are done, append a line to `<state dir>/events`;
//! [`Container::events`](super::Container::events) streams in any process
//! read the lines appended after they opened, woken by inotify.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sys::inotify::AddWatchFlags;

use super::Event;
use crate::error::{Error, Result};

/// The journal's name in the state directory.
const JOURNAL_FILE: &str = "events";

fn word(event: Event) -> Option<&'static str> {
    match event {
        Event::Started => Some("started"),
        Event::Paused => Some("paused"),
        Event::Resumed => Some("resumed"),
        _ => None,
    }
}

fn parse(word: &[u8]) -> Option<Event> {
    match word {
        b"started" => Some(Event::Started),
        b"paused" => Some(Event::Paused),
        b"resumed" => Some(Event::Resumed),
        _ => None,
    }
}

fn open(dir: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(dir.join(JOURNAL_FILE))
}

/// Appends `event` (one `write` of one line with `O_APPEND`, so writers in
/// several processes never interleave). Blocking.
pub(super) fn record(dir: &Path, event: Event) -> Result<()> {
    let Some(w) = word(event) else {
        return Ok(());
    };
    let path = dir.join(JOURNAL_FILE);
    open(dir)
        .and_then(|mut f| f.write_all(format!("{w}\n").as_bytes()))
        .map_err(|e| Error::io("record event", path, e))
}

/// A reader of the journal from where it ended when opened.
#[derive(Debug)]
pub(super) struct Journal {
    file: File,
    notify: crate::inotify::Watch,
    pending: Vec<u8>,
}

impl Journal {
    /// Opens the journal of the container in `dir` at its end.
    pub(super) fn open(dir: &Path) -> Result<Journal> {
        let path = dir.join(JOURNAL_FILE);
        let mut file = open(dir).map_err(|e| Error::io("open", &path, e))?;
        let notify = crate::inotify::Watch::new(&path, AddWatchFlags::IN_MODIFY)?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| Error::io("seek", &path, e))?;
        Ok(Journal {
            file,
            notify,
            pending: Vec::new(),
        })
    }

    /// The events appended since the last read, without waiting.
    pub(super) fn read_now(&mut self) -> Vec<Event> {
        let mut buf = Vec::new();
        let _ = self.file.read_to_end(&mut buf);
        self.pending.extend_from_slice(&buf);
        let Some(end) = self.pending.iter().rposition(|&c| c == b'\n') else {
            return Vec::new();
        };
        let events = self.pending[..end]
            .split(|&c| c == b'\n')
            .filter_map(parse)
            .collect();
        self.pending.drain(..=end);
        events
    }

    /// Waits for the next appended events. Cancel-safe: what is appended
    /// stays in the file until read.
    pub(super) async fn next(&mut self) -> Result<Vec<Event>> {
        loop {
            self.notify.changed().await?;
            let events = self.read_now();
            if !events.is_empty() {
                return Ok(events);
            }
        }
    }
}
