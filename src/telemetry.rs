//! The exporter's own telemetry: the counters and histograms the watcher and the scans update as
//! they work. Only the values live here; `http::metrics` registers them and writes them out, so
//! the watcher can count without depending on the exposition.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// One bounded label, such as `kind="full"`.
pub type KindLabel = [(&'static str, &'static str); 1];

/// Counters and histograms the daemon updates as it works. Clones share the values.
#[derive(Clone, Debug)]
pub struct Telemetry {
    pub scans: Family<KindLabel, Counter>,
    pub scan_duration: Family<KindLabel, Histogram>,
    pub artifact_errors: Family<KindLabel, Counter>,
    pub watch_events: Counter,
    /// `iacwatch_transitions_total{from,to}`: statuses, or `none` for appearing and vanishing.
    pub transitions: Family<EdgeLabels, Counter>,
}

/// `from` and `to` of a transition.
pub type EdgeLabels = [(&'static str, &'static str); 2];

impl Default for Telemetry {
    fn default() -> Self {
        let telemetry = Telemetry {
            scans: Family::default(),
            scan_duration: Family::new_with_constructor(|| {
                Histogram::new([
                    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ])
            }),
            artifact_errors: Family::default(),
            watch_events: Counter::default(),
            transitions: Family::default(),
        };
        for kind in ["full", "incremental"] {
            // Present from the start, so that rate() has a zero to begin with.
            let _ = telemetry.scans.get_or_create(&[("kind", kind)]);
            let _ = telemetry.scan_duration.get_or_create(&[("kind", kind)]);
        }
        telemetry
    }
}

impl Telemetry {
    /// A scan of `kind` (`full` or `incremental`) finished after `seconds`.
    pub fn scan_done(&self, kind: &'static str, seconds: f64) {
        self.scans.get_or_create(&[("kind", kind)]).inc();
        self.scan_duration.get_or_create(&[("kind", kind)]).observe(seconds);
    }

    /// `count` more transitions from `from` to `to` (`None`: `none`).
    pub fn transitions(&self, from: Option<crate::model::Status>, to: Option<crate::model::Status>, count: u64) {
        let name = |s: Option<crate::model::Status>| s.map_or("none", |s| s.as_str());
        self.transitions
            .get_or_create(&[("from", name(from)), ("to", name(to))])
            .inc_by(count);
    }

    /// Artifacts newly found unreadable, by bounded kind.
    pub fn artifact_errors(&self, kinds: &[&'static str]) {
        for kind in kinds {
            self.artifact_errors.get_or_create(&[("kind", kind)]).inc();
        }
    }
}
