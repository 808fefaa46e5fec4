//! `events` and `stats`: what happens to a container, and its resource
//! usage, as streams that end when the container ends.

use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};

use super::Container;
use crate::cgroups::{Stats, StatsReader};
use crate::error::Result;
use crate::state::ExitStatus;

/// What happens to a container, as [`Container::events`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The kernel's OOM killer killed a process of the container.
    Oom,
    /// The container's first process exited; the stream ends after this.
    Exited(ExitStatus),
}

impl Container {
    /// A stream of the container's events: OOM kills as the kernel reports
    /// them (an eventfd on cgroup v1, inotify on `memory.events` on v2;
    /// nothing polls), then its exit. Any number of streams may be open at
    /// once; each is independent, and dropping one affects nothing else.
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
    pub fn events(&self) -> BoxStream<'static, Result<Event>> {
        enum State {
            Start(Container),
            Watching(Container, Option<crate::cgroups::OomWatch>),
            Exited(Result<ExitStatus>),
            Done,
        }
        stream::unfold(State::Start(self.clone()), |state| async move {
            let (ctr, mut watch) = match state {
                State::Done => return None,
                State::Exited(s) => return Some((s.map(Event::Exited), State::Done)),
                State::Start(ctr) => {
                    // A cgroup without a memory controller still reports
                    // the exit.
                    let watch = ctr.cgroup().and_then(|c| c.watch_oom()).ok();
                    (ctr, watch)
                }
                State::Watching(ctr, watch) => (ctr, watch),
            };
            let oom = async {
                match watch.as_mut() {
                    Some(w) => w.next().await,
                    None => std::future::pending().await,
                }
            };
            // An OOM kill and the exit it causes can both be ready: report
            // the OOM first.
            let item = tokio::select! {
                biased;
                r = oom => r.map(|()| Event::Oom),
                s = ctr.wait() => {
                    // The kill that ended it may not have been reported yet.
                    if watch.as_mut().is_some_and(|w| w.killed_since().unwrap_or(false)) {
                        return Some((Ok(Event::Oom), State::Exited(s)));
                    }
                    return Some((s.map(Event::Exited), State::Done));
                }
            };
            Some((item, State::Watching(ctr, watch)))
        })
        .boxed()
    }

    /// A stream of resource usage samples, one every `interval` (the first
    /// at once), ending when the container ends.
    ///
    /// The cgroup's files are opened at the first sample and re-read for
    /// each later one, so a stream costs a few microseconds per sample.
    pub fn stats(&self, interval: Duration) -> BoxStream<'static, Result<Stats>> {
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
                                Ok(c) => reader.insert(c.stats_reader()).sample(),
                                Err(e) => Err(e),
                            },
                        };
                        Some((sample, (ctr, ticks, reader)))
                    }
                }
            },
        )
        .boxed()
    }
}
