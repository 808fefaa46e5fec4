//! `logs`: the captured output of a detached container.

use futures::stream::Stream;

use super::Container;
use crate::error::{Error, Result};
use crate::logs::{LogLine, LogOptions};

impl Container {
    /// The container's output as the shim captured it (see
    /// [`CreateOptions::log`](crate::CreateOptions::log)): a stream of
    /// lines, stdout and stderr interleaved as they were read, each line
    /// once, in order within its stream. Works in any process that
    /// re-attaches with [`Runtime::get`](crate::Runtime::get).
    ///
    /// With [`LogOptions::follow`] the stream waits for new lines (woken by
    /// inotify on the log's directory, never polling) and ends once the
    /// container has exited and its last output is read. A stream is fused:
    /// `None` ever after its end.
    ///
    /// Fails with [`Error::Unsupported`] for a container created without
    /// captured output.
    ///
    /// ```no_run
    /// # async fn demo(ctr: berth::Container) -> berth::Result<()> {
    /// use futures::StreamExt;
    /// let mut lines = ctr.logs(berth::LogOptions::default().follow(true).tail(10)).await?;
    /// while let Some(line) = lines.next().await {
    ///     let line = line?;
    ///     println!("{} {}", line.stream.as_str(), String::from_utf8_lossy(&line.line));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn logs(
        &self,
        opts: LogOptions,
    ) -> Result<impl Stream<Item = Result<LogLine>> + Send + 'static> {
        let me = self.clone();
        let p = super::blocking(move || me.load()).await?;
        let log = p.log.ok_or_else(|| {
            Error::Unsupported(format!(
                "container {:?} has no captured output (it was not created with CreateOptions::log)",
                p.id
            ))
        })?;
        crate::logs::stream(self, log.file(&self.inner.dir), log.max_files, opts)
    }
}
