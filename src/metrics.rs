//! `/metrics`: the exporter's own counters, and the per-workspace series rendered from the store's
//! snapshot at scrape time (so a workspace that disappears takes its series with it).
//!
//! Text exposition format 0.0.4, names as in the interfaces contract. The counters go through the
//! Prometheus client library; the per-workspace families (seven series a workspace for the status
//! alone, 180,000 samples for 10,000 workspaces) are written straight into the body, with each
//! workspace's escaped labels built once per scrape.

use std::fmt::Write as _;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::model::{Flags, Status};
use crate::report::{Counts, locks};
use crate::store::{Entry, Reader};

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

/// Everything `/metrics` shows: the registry of the daemon's own metrics, and the store whose
/// snapshot gives the workspace series.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    store: Reader,
    per_workspace: bool,
}

impl Metrics {
    pub fn new(store: Reader, telemetry: &Telemetry, per_workspace: bool) -> Metrics {
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
        Metrics {
            registry,
            store,
            per_workspace,
        }
    }

    /// The whole exposition, text format 0.0.4.
    pub fn render(&self) -> String {
        let snapshot = self.store.snapshot();
        let per_workspace = if self.per_workspace {
            snapshot.workspaces.len()
        } else {
            0
        };
        let mut out = String::with_capacity(4096 + per_workspace * 2600);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        let counts = Counts::of(snapshot.workspaces.values().map(|e| e.workspace.verdict.status));
        family(&mut out, "iacwatch_workspaces", "Workspaces per status");
        for status in Status::ALL {
            sample(
                &mut out,
                "iacwatch_workspaces",
                &format!("status=\"{status}\""),
                counts.get(status),
            );
        }
        if let Some(at) = snapshot.last_full_scan {
            family(
                &mut out,
                "iacwatch_last_full_scan_timestamp_seconds",
                "End of the last full scan",
            );
            out.push_str("iacwatch_last_full_scan_timestamp_seconds ");
            push_seconds(&mut out, at);
            out.push('\n');
        }
        if self.per_workspace {
            workspace_families(&mut out, snapshot.workspaces.values().map(|e| e.as_ref()));
        }
        out
    }
}

/// `# HELP` and `# TYPE` of a gauge family.
fn family(out: &mut String, name: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
}

/// One sample with an integer value.
fn sample(out: &mut String, name: &str, labels: &str, value: u64) {
    out.push_str(name);
    out.push('{');
    out.push_str(labels);
    out.push_str("} ");
    out.push_str(itoa::Buffer::new().format(value));
    out.push('\n');
}

/// A label value escaped as the text format wants it.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Unix time in seconds with milliseconds, without going through floating point.
fn push_seconds(out: &mut String, time: chrono::DateTime<chrono::Utc>) {
    let millis = time.timestamp_millis();
    if millis < 0 {
        out.push('-');
    }
    let millis = millis.unsigned_abs();
    out.push_str(itoa::Buffer::new().format(millis / 1000));
    let _ = write!(out, ".{:03}", millis % 1000);
}

/// A sample's value: a count, or a time (written as Unix seconds).
#[derive(Clone, Copy)]
enum Number {
    Count(u64),
    Time(chrono::DateTime<chrono::Utc>),
}

/// The workspace's current plan, when it has one that can be read.
fn current_plan(entry: &Entry) -> Option<&crate::artifact::plan::PlanSummary> {
    let ws = &entry.workspace;
    match ws.verdict.plan {
        Some((index, true)) => ws.evidence.plans.get(index).and_then(|p| p.content.as_ref().ok()),
        _ => None,
    }
}

/// The per-workspace families, each a block of all workspaces' samples.
fn workspace_families<'a>(out: &mut String, entries: impl Iterator<Item = &'a Entry> + Clone) {
    // Each workspace's `root="..",path="..",workspace=".."`, escaped once.
    let labels: Vec<(String, &Entry)> = entries
        .map(|entry| {
            let ws = &entry.workspace;
            let mut text = String::with_capacity(ws.root.len() + ws.path.len() + ws.name.len() + 32);
            text.push_str("root=\"");
            escape_into(&mut text, &ws.root);
            text.push_str("\",path=\"");
            escape_into(&mut text, &ws.path);
            text.push_str("\",workspace=\"");
            escape_into(&mut text, &ws.name);
            text.push('"');
            (text, entry)
        })
        .collect();
    let with = |out: &mut String, name: &str, id: &str, extra: &[(&str, &str)], value: Number| {
        out.push_str(name);
        out.push('{');
        out.push_str(id);
        for (key, v) in extra {
            out.push(',');
            out.push_str(key);
            out.push_str("=\"");
            escape_into(out, v);
            out.push('"');
        }
        out.push_str("} ");
        match value {
            Number::Count(n) => out.push_str(itoa::Buffer::new().format(n)),
            Number::Time(at) => push_seconds(out, at),
        }
        out.push('\n');
    };

    let name = "iacwatch_workspace_status";
    family(out, name, "1 for the workspace's current status, 0 for the others");
    for (id, entry) in &labels {
        for s in Status::ALL {
            let value = u64::from(entry.workspace.verdict.status == s);
            with(out, name, id, &[("status", s.as_str())], Number::Count(value));
        }
    }
    let name = "iacwatch_workspace_flag";
    family(
        out,
        name,
        "Facts beside the status: drifted, apply_needed, failed, locked",
    );
    for (id, entry) in &labels {
        for (flag, value) in Flags::NAMES.iter().zip(entry.workspace.verdict.flags.values()) {
            with(out, name, id, &[("flag", flag)], Number::Count(u64::from(value)));
        }
    }
    let name = "iacwatch_workspace_info";
    family(out, name, "Workspace properties; always 1");
    for (id, entry) in &labels {
        let ws = &entry.workspace;
        let version = ws
            .verdict
            .state
            .as_ref()
            .and_then(|s| s.terraform_version.as_deref())
            .unwrap_or("");
        let backend = ws.evidence.backend.as_deref().unwrap_or("local");
        with(
            out,
            name,
            id,
            &[("terraform_version", version), ("backend", backend)],
            Number::Count(1),
        );
    }
    let name = "iacwatch_workspace_resources";
    family(out, name, "Managed resource instances in the state");
    for (id, entry) in &labels {
        if let Some(n) = entry.workspace.verdict.state.as_ref().and_then(|m| m.resources) {
            with(out, name, id, &[], Number::Count(n));
        }
    }
    let name = "iacwatch_workspace_pending_changes";
    family(out, name, "Pending changes in the current plan, by action");
    for (id, entry) in &labels {
        if let Some(plan) = current_plan(entry) {
            let c = &plan.changes;
            for (action, n) in [
                ("create", c.create),
                ("update", c.update),
                ("delete", c.delete),
                ("replace", c.replace),
            ] {
                with(out, name, id, &[("action", action)], Number::Count(n));
            }
        }
    }
    let name = "iacwatch_workspace_drifted_resources";
    family(out, name, "Resources changed outside Terraform, from the current plan");
    for (id, entry) in &labels {
        if let Some(plan) = current_plan(entry) {
            with(out, name, id, &[], Number::Count(plan.drifted_resources));
        }
    }
    let name = "iacwatch_workspace_state_serial";
    family(out, name, "The state's serial");
    for (id, entry) in &labels {
        if let Some(n) = entry.workspace.verdict.state.as_ref().and_then(|m| m.serial) {
            with(out, name, id, &[], Number::Count(n));
        }
    }
    let name = "iacwatch_workspace_state_modified_timestamp_seconds";
    family(out, name, "Last write of the state");
    for (id, entry) in &labels {
        if let Some(state) = &entry.workspace.evidence.state {
            with(out, name, id, &[], Number::Time(state.modified));
        }
    }
    let name = "iacwatch_workspace_status_since_timestamp_seconds";
    family(out, name, "When the current status began");
    for (id, entry) in &labels {
        with(out, name, id, &[], Number::Time(entry.since));
    }
    let name = "iacwatch_workspace_lock_created_timestamp_seconds";
    family(
        out,
        name,
        "When the workspace's lock was taken; present only while locked",
    );
    for (id, entry) in &labels {
        for (source, operation, created, _) in locks(&entry.workspace) {
            with(
                out,
                name,
                id,
                &[("source", source.as_str()), ("operation", operation)],
                Number::Time(created),
            );
        }
    }
}
