//! `/metrics`: the exporter's own counters, and the per-workspace series rendered from the store's
//! snapshot at scrape time (so a workspace that disappears takes its series with it).
//!
//! Text exposition format 0.0.4, names as in the interfaces contract.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::model::{Flags, Status};
use crate::report::{Counts, locks};
use crate::store::Store;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Counters and histograms the daemon updates as it works.
#[derive(Clone, Debug)]
pub struct Telemetry {
    pub scans: Family<[(&'static str, &'static str); 1], Counter>,
    pub scan_duration: Family<[(&'static str, &'static str); 1], Histogram>,
    pub artifact_errors: Family<[(&'static str, &'static str); 1], Counter>,
    pub watch_events: Counter,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            scans: Family::default(),
            scan_duration: Family::new_with_constructor(|| {
                Histogram::new([
                    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ])
            }),
            artifact_errors: Family::default(),
            watch_events: Counter::default(),
        }
    }
}

impl Telemetry {
    pub fn scan_done(&self, kind: &'static str, seconds: f64) {
        self.scans.get_or_create(&[("kind", kind)]).inc();
        self.scan_duration.get_or_create(&[("kind", kind)]).observe(seconds);
    }

    pub fn artifact_errors(&self, kinds: &[&'static str]) {
        for kind in kinds {
            self.artifact_errors.get_or_create(&[("kind", kind)]).inc();
        }
    }
}

/// The registry of everything `/metrics` shows.
pub fn registry(store: Arc<Store>, telemetry: &Telemetry, per_workspace: bool) -> Registry {
    let mut registry = Registry::default();
    for kind in ["full", "incremental"] {
        // Present from the start, so that rate() has a zero to begin with.
        let _ = telemetry.scans.get_or_create(&[("kind", kind)]);
        let _ = telemetry.scan_duration.get_or_create(&[("kind", kind)]);
    }
    registry.register(
        "iacwatch_scans",
        "Scans done, full or incremental (one directory batch)",
        telemetry.scans.clone(),
    );
    registry.register(
        "iacwatch_scan_duration_seconds",
        "Time a scan took, full or incremental",
        telemetry.scan_duration.clone(),
    );
    registry.register(
        "iacwatch_artifact_errors",
        "Artifacts found unreadable or malformed, by kind",
        telemetry.artifact_errors.clone(),
    );
    registry.register(
        "iacwatch_watch_events",
        "File-change events received",
        telemetry.watch_events.clone(),
    );
    let build = Family::<[(&'static str, &'static str); 1], Gauge>::default();
    build.get_or_create(&[("version", env!("CARGO_PKG_VERSION"))]).set(1);
    registry.register("iacwatch_build_info", "Build information; always 1", build);
    registry.register_collector(Box::new(WorkspaceCollector { store, per_workspace }));
    registry
}

/// Renders the whole registry in text format 0.0.4.
pub fn render(registry: &Registry) -> String {
    let mut out = String::with_capacity(1 << 16);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
    out
}

/// The per-workspace series, from the store's current snapshot.
#[derive(Debug)]
struct WorkspaceCollector {
    store: Arc<Store>,
    per_workspace: bool,
}

/// A gauge value encoded straight from the snapshot.
struct Value(f64);

impl EncodeMetric for Value {
    fn encode(&self, mut encoder: prometheus_client::encoding::MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// One family: its name, help and the samples.
struct Series<'a> {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Labels<'a>, f64)>,
}

impl<'a> Series<'a> {
    fn new(name: &'static str, help: &'static str) -> Self {
        Series {
            name,
            help,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, labels: Labels<'a>, value: f64) {
        self.samples.push((labels, value));
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(self.name, self.help, None, MetricType::Gauge)?;
        for (labels, value) in &self.samples {
            Value(*value).encode(metric.encode_family(labels)?)?;
        }
        Ok(())
    }
}

impl Collector for WorkspaceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.store.snapshot();
        let counts = Counts::of(snapshot.workspaces.values().map(|e| e.workspace.verdict.status));
        let mut totals = Series::new("iacwatch_workspaces", "Workspaces per status");
        for status in Status::ALL {
            totals.push(vec![("status", status.as_str())], counts.get(status) as f64);
        }
        totals.encode(&mut encoder)?;
        if let Some(at) = snapshot.last_full_scan {
            let mut last = Series::new("iacwatch_last_full_scan_timestamp_seconds", "End of the last full scan");
            last.push(Vec::new(), seconds(at));
            last.encode(&mut encoder)?;
        }
        if !self.per_workspace {
            return Ok(());
        }
        let mut status = Series::new(
            "iacwatch_workspace_status",
            "1 for the workspace's current status, 0 for the others",
        );
        let mut flag = Series::new(
            "iacwatch_workspace_flag",
            "Facts beside the status: drifted, apply_needed, failed, locked",
        );
        let mut info = Series::new("iacwatch_workspace_info", "Workspace properties; always 1");
        let mut resources = Series::new(
            "iacwatch_workspace_resources",
            "Managed resource instances in the state",
        );
        let mut pending = Series::new(
            "iacwatch_workspace_pending_changes",
            "Pending changes in the current plan, by action",
        );
        let mut drifted = Series::new(
            "iacwatch_workspace_drifted_resources",
            "Resources changed outside Terraform, from the current plan",
        );
        let mut serial = Series::new("iacwatch_workspace_state_serial", "The state's serial");
        let mut state_time = Series::new(
            "iacwatch_workspace_state_modified_timestamp_seconds",
            "Last write of the state",
        );
        let mut since = Series::new(
            "iacwatch_workspace_status_since_timestamp_seconds",
            "When the current status began",
        );
        let mut lock = Series::new(
            "iacwatch_workspace_lock_created_timestamp_seconds",
            "When the workspace's lock was taken; present only while locked",
        );
        for entry in snapshot.workspaces.values() {
            let ws = &entry.workspace;
            let id = || {
                vec![
                    ("root", ws.root.as_str()),
                    ("path", ws.path.as_str()),
                    ("workspace", ws.name.as_str()),
                ]
            };
            let with = |key: &'static str, value: &'static str| {
                let mut labels = id();
                labels.push((key, value));
                labels
            };
            for s in Status::ALL {
                status.push(with("status", s.as_str()), f64::from(u8::from(ws.verdict.status == s)));
            }
            for (name, value) in Flags::NAMES.iter().zip(ws.verdict.flags.values()) {
                flag.push(with("flag", name), f64::from(u8::from(value)));
            }
            let mut info_labels = id();
            let version = ws
                .verdict
                .state
                .as_ref()
                .and_then(|s| s.terraform_version.as_deref())
                .unwrap_or("");
            info_labels.push(("terraform_version", version));
            info_labels.push(("backend", ws.evidence.backend.as_deref().unwrap_or("local")));
            info.push(info_labels, 1.0);
            if let Some(meta) = &ws.verdict.state {
                if let Some(n) = meta.resources {
                    resources.push(id(), n as f64);
                }
                if let Some(n) = meta.serial {
                    serial.push(id(), n as f64);
                }
            }
            if let Some(state) = &ws.evidence.state {
                state_time.push(id(), seconds(state.modified));
            }
            if let Some((index, true)) = ws.verdict.plan
                && let Some(Ok(plan)) = ws.evidence.plans.get(index).map(|p| p.content.as_ref())
            {
                let c = &plan.changes;
                for (action, n) in [
                    ("create", c.create),
                    ("update", c.update),
                    ("delete", c.delete),
                    ("replace", c.replace),
                ] {
                    pending.push(with("action", action), n as f64);
                }
                drifted.push(id(), plan.drifted_resources as f64);
            }
            since.push(id(), seconds(entry.since));
            for (source, operation, created, _) in locks(ws) {
                let mut labels = id();
                labels.push(("source", source));
                labels.push(("operation", operation));
                lock.push(labels, seconds(created));
            }
        }
        for series in [
            status, flag, info, resources, pending, drifted, serial, state_time, since, lock,
        ] {
            series.encode(&mut encoder)?;
        }
        Ok(())
    }
}

fn seconds(time: chrono::DateTime<chrono::Utc>) -> f64 {
    time.timestamp_millis() as f64 / 1000.0
}
