//! The part of the exposition that follows from the store's snapshot alone: the counts per
//! status, whether each root can be read, the end of the last full scan and the per-workspace families (seven series a
//! workspace for the status alone, 180,000 samples for 10,000 workspaces). Written straight into
//! the body, with each workspace's escaped labels built once per rendering; one function a family.

use chrono::{DateTime, Utc};

use super::text::{Format, Kind, Number, escape_into, family, push_number, sample};
use crate::artifact::plan::PlanSummary;
use crate::model::{Flags, Status};
use crate::report::{Counts, locks};
use crate::store::{Entry, Snapshot};

/// The snapshot's part of the body; in OpenMetrics it ends with `# EOF`, as it is written last.
pub(crate) fn render(snapshot: &Snapshot, format: Format, per_workspace: bool) -> String {
    let rows = if per_workspace { snapshot.workspaces.len() } else { 0 };
    let mut out = String::with_capacity(1024 + rows * 2600);
    let counts = Counts::of(snapshot.workspaces.values().map(|e| e.workspace.verdict.status));
    family(
        &mut out,
        format,
        "iacwatch_workspaces",
        "Workspaces per status",
        Kind::Gauge,
    );
    for status in Status::ALL {
        let value = Number::Count(counts.get(status));
        sample(&mut out, "iacwatch_workspaces", &[("status", status.as_str())], value);
    }
    if !snapshot.roots.is_empty() {
        let name = "iacwatch_root_up";
        family(
            &mut out,
            format,
            name,
            "1 while the root can be read, else 0",
            Kind::Gauge,
        );
        for (root, up) in &snapshot.roots {
            sample(&mut out, name, &[("root", root)], Number::Count(u64::from(*up)));
        }
    }
    if let Some(at) = snapshot.last_full_scan {
        let name = "iacwatch_last_full_scan_timestamp_seconds";
        family(&mut out, format, name, "End of the last full scan", Kind::Gauge);
        sample(&mut out, name, &[], Number::Time(at));
    }
    if per_workspace {
        let rows: Vec<Row> = snapshot.workspaces.values().map(|e| Row::new(e)).collect();
        for (name, help, write) in FAMILIES {
            family(&mut out, format, name, help, Kind::Gauge);
            for row in &rows {
                write(&mut Out {
                    out: &mut out,
                    name,
                    row,
                });
            }
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// A workspace and its `root="..",path="..",workspace=".."`, escaped once.
struct Row<'a> {
    labels: String,
    entry: &'a Entry,
}

impl Row<'_> {
    fn new(entry: &Entry) -> Row<'_> {
        let ws = &entry.workspace;
        let mut labels = String::with_capacity(ws.root.len() + ws.path.len() + ws.name.len() + 32);
        labels.push_str("root=\"");
        escape_into(&mut labels, &ws.root);
        labels.push_str("\",path=\"");
        escape_into(&mut labels, &ws.path);
        labels.push_str("\",workspace=\"");
        escape_into(&mut labels, &ws.name);
        labels.push('"');
        Row { labels, entry }
    }
}

/// Where one family's samples of one workspace go.
struct Out<'a, 'b> {
    out: &'a mut String,
    name: &'static str,
    row: &'a Row<'b>,
}

impl Out<'_, '_> {
    /// `name{root,path,workspace,extra...} value`.
    fn sample(&mut self, extra: &[(&str, &str)], value: Number) {
        let out = &mut *self.out;
        out.push_str(self.name);
        out.push('{');
        out.push_str(&self.row.labels);
        for (key, v) in extra {
            out.push(',');
            out.push_str(key);
            out.push_str("=\"");
            escape_into(out, v);
            out.push('"');
        }
        out.push_str("} ");
        push_number(out, value);
        out.push('\n');
    }
}

type Write = fn(&mut Out);

/// Every per-workspace family: name, help, the samples of one workspace.
const FAMILIES: [(&str, &str, Write); 10] = [
    (
        "iacwatch_workspace_status",
        "1 for the workspace's current status, 0 for the others",
        status,
    ),
    (
        "iacwatch_workspace_flag",
        "Facts beside the status: drifted, apply_needed, failed, locked",
        flag,
    ),
    ("iacwatch_workspace_info", "Workspace properties; always 1", info),
    (
        "iacwatch_workspace_resources",
        "Managed resource instances in the state",
        resources,
    ),
    (
        "iacwatch_workspace_pending_changes",
        "Pending changes in the current plan, by action",
        pending_changes,
    ),
    (
        "iacwatch_workspace_drifted_resources",
        "Resources changed outside Terraform, from the current plan",
        drifted_resources,
    ),
    ("iacwatch_workspace_state_serial", "The state's serial", state_serial),
    (
        "iacwatch_workspace_state_modified_timestamp_seconds",
        "Last write of the state",
        state_modified,
    ),
    (
        "iacwatch_workspace_status_since_timestamp_seconds",
        "When the current status began",
        status_since,
    ),
    (
        "iacwatch_workspace_lock_created_timestamp_seconds",
        "When the workspace's lock was taken; present only while locked",
        lock_created,
    ),
];

/// The workspace's current plan, when it has one that can be read.
fn current_plan(entry: &Entry) -> Option<&PlanSummary> {
    let ws = &entry.workspace;
    match ws.verdict.plan {
        Some((index, true)) => ws.evidence.plans.get(index).and_then(|p| p.content.as_ref().ok()),
        _ => None,
    }
}

fn status(out: &mut Out) {
    let current = out.row.entry.workspace.verdict.status;
    for s in Status::ALL {
        out.sample(&[("status", s.as_str())], Number::Count(u64::from(current == s)));
    }
}

fn flag(out: &mut Out) {
    let values = out.row.entry.workspace.verdict.flags.values();
    for (flag, value) in Flags::NAMES.iter().zip(values) {
        out.sample(&[("flag", flag)], Number::Count(u64::from(value)));
    }
}

fn info(out: &mut Out) {
    let ws = &out.row.entry.workspace;
    let version = ws
        .verdict
        .state
        .as_ref()
        .and_then(|s| s.terraform_version.as_deref())
        .unwrap_or("");
    let backend = ws.evidence.backend.as_deref().unwrap_or("local");
    out.sample(
        &[("terraform_version", version), ("backend", backend)],
        Number::Count(1),
    );
}

fn resources(out: &mut Out) {
    if let Some(n) = out.row.entry.workspace.verdict.state.as_ref().and_then(|m| m.resources) {
        out.sample(&[], Number::Count(n));
    }
}

fn pending_changes(out: &mut Out) {
    let Some(plan) = current_plan(out.row.entry) else {
        return;
    };
    let c = &plan.changes;
    for (action, n) in [
        ("create", c.create),
        ("update", c.update),
        ("delete", c.delete),
        ("replace", c.replace),
    ] {
        out.sample(&[("action", action)], Number::Count(n));
    }
}

fn drifted_resources(out: &mut Out) {
    if let Some(plan) = current_plan(out.row.entry) {
        out.sample(&[], Number::Count(plan.drifted_resources));
    }
}

fn state_serial(out: &mut Out) {
    if let Some(n) = out.row.entry.workspace.verdict.state.as_ref().and_then(|m| m.serial) {
        out.sample(&[], Number::Count(n));
    }
}

fn state_modified(out: &mut Out) {
    let modified: Option<DateTime<Utc>> = out.row.entry.workspace.evidence.state.as_ref().map(|s| s.modified);
    if let Some(at) = modified {
        out.sample(&[], Number::Time(at));
    }
}

fn status_since(out: &mut Out) {
    let since = out.row.entry.since;
    out.sample(&[], Number::Time(since));
}

fn lock_created(out: &mut Out) {
    for (source, operation, created, _) in locks(&out.row.entry.workspace) {
        out.sample(
            &[("source", source.as_str()), ("operation", operation)],
            Number::Time(created),
        );
    }
}
