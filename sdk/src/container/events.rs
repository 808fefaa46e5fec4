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
    /// The container is created and waits for start (the first event of a
    /// stream opened before [`Container::start`]).
    Created,
    /// [`Container::start`] released the container's process.
    Started,
    /// [`Container::pause`] froze the container.
    Paused,
    /// [`Container::resume`] thawed it.
    Resumed,
    /// The kernel's OOM killer killed a process of the container.
    Oom,
    /// The container's first process exited; the stream ends after this.
    Exited(ExitStatus),
}

impl Container {
    /// Tells the open [`Container::events`] streams about `event`; never waits.
    pub(super) fn announce(&self, event: Event) {
        // No stream open is fine.
        let _ = self.inner.lifecycle.send(event);
    }

    /// A stream of the container's events: [`Event::Created`] first if it
    /// has not started yet; start, pause and resume as they are done through
    /// this handle or its clones; OOM kills as the kernel reports them (an
    /// eventfd on cgroup v1, inotify on `memory.events` on v2; nothing
    /// polls); then its exit, which ends the stream. Any number of streams
    /// may be open at once; each is independent, and dropping one affects
    /// nothing else. A stream that is not read falls behind by at most a few
    /// lifecycle events, losing the oldest: the container never waits for it.
    /// Once ended, the stream keeps answering `None` (it is fused).
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
        type Lifecycle = tokio::sync::broadcast::Receiver<Event>;
        enum State {
            Start(Container, Lifecycle),
            Watching(Container, Option<crate::cgroups::OomWatch>, Lifecycle),
            Exited(Result<ExitStatus>),
            Done,
        }
        let lifecycle = self.inner.lifecycle.subscribe();
        let created = self
            .status()
            .is_ok_and(|s| s == crate::state::Status::Created);
        let first = stream::iter(created.then_some(Ok(Event::Created)));
        let rest = stream::unfold(State::Start(self.clone(), lifecycle), |state| async move {
            let (ctr, mut watch, mut lifecycle) = match state {
                State::Done => return None,
                State::Exited(s) => return Some((s.map(Event::Exited), State::Done)),
                State::Start(ctr, lifecycle) => {
                    // A cgroup without a memory controller still reports
                    // the exit.
                    let watch = ctr.cgroup().and_then(|c| c.watch_oom()).ok();
                    (ctr, watch, lifecycle)
                }
                State::Watching(ctr, watch, lifecycle) => (ctr, watch, lifecycle),
            };
            let oom = async {
                match watch.as_mut() {
                    Some(w) => w.next().await,
                    None => std::future::pending().await,
                }
            };
            // An OOM kill and the exit it causes can both be ready: report
            // the OOM first.
            let announced = async {
                loop {
                    match lifecycle.recv().await {
                        Ok(event) => return event,
                        // Fell behind: go on with what is still there.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            };
            let item = tokio::select! {
                biased;
                e = announced => Ok(e),
                r = oom => r.map(|()| Event::Oom),
                s = ctr.wait() => {
                    // The kill that ended it may not have been reported yet.
                    if watch.as_mut().is_some_and(|w| w.killed_since().unwrap_or(false)) {
                        return Some((Ok(Event::Oom), State::Exited(s)));
                    }
                    return Some((s.map(Event::Exited), State::Done));
                }
            };
            Some((item, State::Watching(ctr, watch, lifecycle)))
        });
        // Fused: polled after its end it keeps answering `None`, so it is
        // safe in a `select!` loop.
        first.chain(rest).fuse().boxed()
    }

    /// A stream of resource usage samples, one every `interval` (the first
    /// at once), ending when the container ends (fused: `None` ever after).
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
