//! `StatsSampler`: resource usage of many containers on one shared ticker.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;

use super::Container;
use crate::cgroups::{Stats, StatsDetail, StatsReader, Swap};
use crate::error::Result;

/// Samples the resource usage of many containers on one shared ticker: at
/// each tick it reads every container's cgroup in turn, on the task that
/// polls it, and yields all the samples at once as a [`StatsTick`].
///
/// This is what a daemon watching hundreds of containers wants: one timer
/// and one wake-up per tick instead of one per container, and each
/// container's cgroup files opened once and re-read (on v1 and hybrid
/// hosts a sample is a `pread` of each file). [`Container::stats`] is the
/// same sample as a stream of one container.
///
/// A container is sampled from the tick after [`add`](Self::add) until it
/// exits: the first tick that finds it exited lists it in
/// [`StatsTick::ended`] and drops it. The stream never ends by itself; it
/// yields a (possibly empty) tick every interval while it is polled.
/// Ticks missed while it was not polled are skipped, not caught up.
///
/// ```no_run
/// # async fn demo(containers: Vec<berth::Container>) -> berth::Result<()> {
/// use futures::StreamExt;
/// use std::time::Duration;
///
/// let mut sampler = berth::StatsSampler::new(Duration::from_millis(100));
/// for c in &containers {
///     sampler.add(c)?;
/// }
/// while let Some(tick) = sampler.next().await {
///     for (ctr, stats) in &tick.samples {
///         if let Ok(s) = stats {
///             println!("{}: {} ns CPU", ctr.id(), s.cpu.usage.total);
///         }
///     }
///     if sampler.is_empty() {
///         break;
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct StatsSampler {
    ticks: tokio::time::Interval,
    detail: StatsDetail,
    members: Vec<(Container, StatsReader)>,
    /// What every member's files are read into, in turn.
    buf: Vec<u8>,
}

/// One tick of a [`StatsSampler`].
#[derive(Debug)]
#[non_exhaustive]
pub struct StatsTick {
    /// A sample of each container still running, in the order they were
    /// added. A failed read is that container's error; the others are
    /// still sampled.
    pub samples: Vec<(Container, Result<Stats>)>,
    /// The containers found exited at this tick, now dropped from the
    /// sampler.
    pub ended: Vec<Container>,
}

impl StatsSampler {
    /// A sampler of full samples with no containers, ticking every
    /// `interval` (the first tick at once).
    ///
    /// # Panics
    ///
    /// If `interval` is zero, or if not called within a tokio runtime
    /// (as [`tokio::time::interval`]).
    pub fn new(interval: Duration) -> StatsSampler {
        StatsSampler::with_detail(interval, StatsDetail::Full)
    }

    /// A sampler that reads `detail` of each sample: with
    /// [`StatsDetail::Usage`], less than half the files of a full sample
    /// on v1 hosts, and 4 files on v2 where a full sample reads every
    /// controller's files through cgroups-rs.
    ///
    /// # Panics
    ///
    /// As [`StatsSampler::new`].
    pub fn with_detail(interval: Duration, detail: StatsDetail) -> StatsSampler {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        StatsSampler {
            ticks,
            detail,
            members: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// Samples `ctr` from the next tick on. Its cgroup's files are opened
    /// now (a blocking read of its state and an `open` per file, tens of
    /// microseconds); a container without a cgroup is an error, and a
    /// container already sampled is not added twice.
    pub fn add(&mut self, ctr: &Container) -> Result<()> {
        if self.members.iter().any(|(c, _)| c.id() == ctr.id()) {
            return Ok(());
        }
        let reader = ctr.cgroup()?.into_stats_reader_with(self.detail);
        self.members.push((ctr.clone(), reader));
        Ok(())
    }

    /// Stops sampling the container `id`; whether it was sampled.
    pub fn remove(&mut self, id: &str) -> bool {
        let before = self.members.len();
        self.members.retain(|(c, _)| c.id() != id);
        self.members.len() != before
    }

    /// How many containers are sampled.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no container is sampled.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Reads every container's sample now, dropping the exited ones.
    fn sample_all(&mut self) -> StatsTick {
        let mut tick = StatsTick {
            samples: Vec::with_capacity(self.members.len()),
            ended: Vec::new(),
        };
        let buf = &mut self.buf;
        let swap = Swap::on_host();
        self.members.retain_mut(|(ctr, reader)| {
            if ctr.exit_seen() {
                tick.ended.push(ctr.clone());
                return false;
            }
            tick.samples
                .push((ctr.clone(), reader.sample_into(buf, swap)));
            true
        });
        tick
    }
}

impl Stream for StatsSampler {
    type Item = StatsTick;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StatsTick>> {
        let this = self.get_mut();
        match this.ticks.poll_tick(cx) {
            Poll::Ready(_) => Poll::Ready(Some(this.sample_all())),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sampler_can_move_to_another_task() {
        fn send<T: Send + Unpin>() {}
        send::<super::StatsSampler>();
        send::<super::StatsTick>();
    }
}
