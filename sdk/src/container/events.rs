//! `events` and `stats`: what happens to a container, and its resource
//! usage, as streams that end when the container ends.

use std::collections::VecDeque;
use std::time::Duration;

use futures::stream::{self, Stream, StreamExt};

use super::journal::Journal;
use super::Container;
use crate::cgroups::{Stats, StatsReader};
use crate::error::Result;
use crate::state::ExitStatus;

/// What happens to a container, as [`Container::events`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The container is created and waits for start (the first event of a
    /// stream opened before [`Container::start`]).
    Created,
    /// [`Container::start`] released the container's process (in any
    /// process).
    Started,
    /// [`Container::pause`] froze the container (in any process).
    Paused,
    /// [`Container::resume`] thawed it (in any process).
    Resumed,
    /// The kernel's OOM killer killed a process of the container.
    Oom,
    /// The container's first process exited; the stream ends after this.
    Exited(ExitStatus),
}

impl Container {
    /// Records `event` in the container's journal, for the
    /// [`Container::events`] streams of every process. A failure to record
    /// does not undo the change it reports.
    pub(super) async fn announce(&self, event: Event) {
        let dir = self.inner.dir.clone();
        if let Err(e) = super::blocking(move || super::journal::record(&dir, event)).await {
            tracing::warn!(error = %e, "could not record a lifecycle event");
        }
    }

    /// A stream of the container's events: [`Event::Created`] first if it
    /// has not started yet; then start, pause and resume as any process
    /// does them (recorded in the container's state directory and read
    /// through inotify); OOM kills as the kernel reports them (an eventfd
    /// on cgroup v1, inotify on `memory.events` on v2); then its exit,
    /// which ends the stream. Nothing polls, and the stream works the same
    /// in a process that re-attached with [`Runtime::get`](crate::Runtime::get)
    /// (the exit as [`Container::wait`] sees it there).
    ///
    /// The stream sees what happens after this call. Any number may be
    /// open at once; each is independent, and dropping one affects nothing
    /// else. A stream that is not read loses nothing and holds nothing up:
    /// lifecycle events wait in the journal file, OOM kills in the kernel's
    /// counter (one [`Event::Oom`] per kill; kills that the exit reveals
    /// only after it are reported as one). Once ended, the stream keeps
    /// answering `None` (it is fused).
    ///
    /// ```no_run
    /// # async fn demo(ctr: berth::Container) -> berth::Result<()> {
    /// use futures::StreamExt;
    /// let mut events = ctr.events();
    /// while let Some(event) = events.next().await {
    ///     println!("{:?}", event?);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn events(&self) -> impl Stream<Item = Result<Event>> + Send + 'static {
        struct State {
            ctr: Container,
            journal: Option<Journal>,
            oom: Option<crate::cgroups::OomWatch>,
            watching: bool,
            queue: VecDeque<Result<Event>>,
            done: bool,
        }
        // Opened now, so that what happens after this call is seen; only
        // on a runtime (they register with its reactor), else at the
        // first poll.
        let eager = tokio::runtime::Handle::try_current().is_ok();
        let journal = eager.then(|| Journal::open(&self.inner.dir).ok()).flatten();
        let oom = eager
            .then(|| self.cgroup().and_then(|c| c.watch_oom()).ok())
            .flatten();
        let mut queue = VecDeque::new();
        if self
            .status_now()
            .is_ok_and(|s| s == crate::state::Status::Created)
        {
            queue.push_back(Ok(Event::Created));
        }
        let state = State {
            ctr: self.clone(),
            journal,
            oom,
            watching: eager,
            queue,
            done: false,
        };
        stream::unfold(state, |mut st| async move {
            loop {
                if let Some(e) = st.queue.pop_front() {
                    return Some((e, st));
                }
                if st.done {
                    return None;
                }
                if !st.watching {
                    // A cgroup without a memory controller still reports
                    // the exit.
                    st.journal = Journal::open(&st.ctr.inner.dir).ok();
                    st.oom = st.ctr.cgroup().and_then(|c| c.watch_oom()).ok();
                    st.watching = true;
                }
                let State {
                    ctr,
                    journal,
                    oom,
                    queue,
                    done,
                    ..
                } = &mut st;
                let appended = async {
                    match journal.as_mut() {
                        Some(j) => j.next().await,
                        None => std::future::pending().await,
                    }
                };
                let killed = async {
                    match oom.as_mut() {
                        Some(w) => w.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    r = appended => match r {
                        Ok(events) => queue.extend(events.into_iter().map(Ok)),
                        Err(e) => {
                            *journal = None;
                            queue.push_back(Err(e));
                        }
                    },
                    r = killed => queue.push_back(r.map(|()| Event::Oom)),
                    s = ctr.wait() => {
                        // What was recorded before the exit, then an OOM
                        // kill that caused it if not reported yet.
                        if let Some(j) = journal.as_mut() {
                            queue.extend(j.read_now().into_iter().map(Ok));
                        }
                        if oom.as_mut().is_some_and(|w| w.killed_since().unwrap_or(false)) {
                            queue.push_back(Ok(Event::Oom));
                        }
                        queue.push_back(s.map(Event::Exited));
                        *done = true;
                    }
                }
            }
        })
        // Fused: polled after its end it keeps answering `None`, so it is
        // safe in a `select!` loop.
        .fuse()
        .boxed()
    }

    /// A stream of resource usage samples, one every `interval` (the first
    /// at once), ending when the container ends (fused: `None` ever after).
    ///
    /// The cgroup's files are opened at the first sample and re-read for
    /// each later one. To watch many containers, a
    /// [`StatsSampler`](crate::StatsSampler) samples them all on one
    /// ticker, which costs less per sample than a stream each.
    pub fn stats(&self, interval: Duration) -> impl Stream<Item = Result<Stats>> + Send + 'static {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let reader: Option<StatsReader> = None;
        stream::unfold(
            (self.clone(), ticks, reader),
            |(ctr, mut ticks, mut reader)| async move {
                tokio::select! {
                    biased;
                    _ = ctr.wait() => None,
                    _ = ticks.tick() => {
                        let sample = match reader {
                            Some(ref mut r) => r.sample(),
                            None => match ctr.cgroup() {
                                Ok(c) => reader.insert(c.into_stats_reader()).sample(),
                                Err(e) => Err(e),
                            },
                        };
                        Some((sample, (ctr, ticks, reader)))
                    }
                }
            },
        )
        .fuse()
        .boxed()
    }
}
