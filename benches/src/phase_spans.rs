//! The SDK's phase spans (`tracing` spans named `phase`, with a `name`
//! field such as `create.clone`), timed from creation to close and kept per
//! name: where a lifecycle's wall time goes, and which phase has the tail.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Every duration of each phase seen since [`PhaseTimes::install`].
#[derive(Debug, Clone, Default)]
pub struct PhaseTimes(Arc<Mutex<BTreeMap<String, Vec<Duration>>>>);

/// One phase's times over a run.
#[derive(Debug, Clone)]
pub struct PhaseStat {
    /// The span's `name` (`create.clone`).
    pub name: String,
    /// Its total time divided by the lifecycles, ms.
    pub per_lifecycle_ms: f64,
    /// The median and 90th percentile of one span, ms.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p90_ms: f64,
    /// How many spans there were.
    pub count: usize,
}

impl PhaseTimes {
    /// Installs a global subscriber that records phase spans (and nothing
    /// else); returns the handle to read them.
    pub fn install() -> PhaseTimes {
        let times = PhaseTimes::default();
        let filter =
            tracing_subscriber::filter::Targets::new().with_target("berth", tracing::Level::DEBUG);
        let subscriber = tracing_subscriber::registry()
            .with(PhaseLayer(times.clone()))
            .with(filter);
        tracing::subscriber::set_global_default(subscriber).expect("no subscriber yet");
        times
    }

    /// Each phase's times, `per` lifecycles, in name order; then clears
    /// them.
    pub fn take(&self, per: u64) -> Vec<PhaseStat> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let out = map
            .iter_mut()
            .map(|(name, times)| {
                times.sort();
                let at = |q: usize| {
                    times
                        .get(times.len() * q / 100)
                        .copied()
                        .unwrap_or_default()
                };
                PhaseStat {
                    name: name.clone(),
                    per_lifecycle_ms: ms(times.iter().sum::<Duration>()) / per.max(1) as f64,
                    p50_ms: ms(at(50)),
                    p90_ms: ms(at(90)),
                    count: times.len(),
                }
            })
            .collect();
        map.clear();
        out
    }
}

struct PhaseLayer(PhaseTimes);

/// What a phase span carries while open.
struct Started(String, Instant);

struct NameOf(Option<String>);

impl Visit for NameOf {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "name" {
            self.0 = Some(value.to_string());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "name" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_string());
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for PhaseLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "phase" {
            return;
        }
        let mut name = NameOf(None);
        attrs.record(&mut name);
        if let (Some(name), Some(span)) = (name.0, ctx.span(id)) {
            span.extensions_mut().insert(Started(name, Instant::now()));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let ext = span.extensions();
        let Some(Started(name, t0)) = ext.get::<Started>() else {
            return;
        };
        let mut map = (self.0).0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name.clone()).or_default().push(t0.elapsed());
    }
}
