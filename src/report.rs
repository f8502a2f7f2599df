//! The wire: the JSON document of `GET /api/v1/workspaces` (and `scan --format json`), the summary,
//! and the table `scan` prints. Views are built from the domain; the domain does not serialise.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use rayon::prelude::*;
use serde::{Serialize, Serializer};

use crate::classify::LockState;
use crate::model::{Flags, Status};
use crate::workspace::{ScanProblem, Workspace};

/// RFC 3339, UTC, milliseconds.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Workspaces per status: always all seven, in the spec's order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub destroying: u64,
    pub provisioning: u64,
    pub failed: u64,
    pub drifted: u64,
    pub apply_needed: u64,
    pub active: u64,
    pub inactive: u64,
}

impl Counts {
    pub fn of(statuses: impl IntoIterator<Item = Status>) -> Counts {
        let mut counts = Counts::default();
        for status in statuses {
            *counts.get_mut(status) += 1;
        }
        counts
    }

    pub fn get(&self, status: Status) -> u64 {
        match status {
            Status::Destroying => self.destroying,
            Status::Provisioning => self.provisioning,
            Status::Failed => self.failed,
            Status::Drifted => self.drifted,
            Status::ApplyNeeded => self.apply_needed,
            Status::Active => self.active,
            Status::Inactive => self.inactive,
        }
    }

    fn get_mut(&mut self, status: Status) -> &mut u64 {
        match status {
            Status::Destroying => &mut self.destroying,
            Status::Provisioning => &mut self.provisioning,
            Status::Failed => &mut self.failed,
            Status::Drifted => &mut self.drifted,
            Status::ApplyNeeded => &mut self.apply_needed,
            Status::Active => &mut self.active,
            Status::Inactive => &mut self.inactive,
        }
    }
}

#[derive(Serialize)]
pub struct WorkspacesDocument {
    pub generated_at: String,
    pub counts: Counts,
    pub workspaces: Vec<WorkspaceView>,
    /// Directories that could not be scanned (the scan went on without them).
    pub errors: Vec<ProblemView>,
}

#[derive(Serialize)]
pub struct SummaryDocument {
    pub generated_at: String,
    pub total: u64,
    pub counts: Counts,
}

#[derive(Serialize)]
pub struct ProblemView {
    pub root: String,
    pub path: String,
    pub kind: &'static str,
    pub message: String,
}

impl From<&ScanProblem> for ProblemView {
    fn from(p: &ScanProblem) -> Self {
        ProblemView {
            root: p.root.clone(),
            path: p.path.clone(),
            kind: p.kind.as_str(),
            message: p.message.clone(),
        }
    }
}

#[derive(Serialize, Clone)]
pub struct WorkspaceView {
    pub id: String,
    pub root: String,
    pub path: String,
    pub workspace: String,
    #[serde(serialize_with = "status_name")]
    pub status: Status,
    pub status_since: Option<String>,
    pub flags: FlagsView,
    pub reasons: Vec<ReasonView>,
    pub state: Option<StateView>,
    pub plan: Option<PlanView>,
    pub lock: Option<LockView>,
    pub last_run: Option<LastRunView>,
    pub backend: Option<String>,
}

#[derive(Serialize, Clone, Copy)]
pub struct FlagsView {
    pub drifted: bool,
    pub apply_needed: bool,
    pub failed: bool,
    pub locked: bool,
}

impl From<Flags> for FlagsView {
    fn from(f: Flags) -> Self {
        FlagsView {
            drifted: f.drifted,
            apply_needed: f.apply_needed,
            failed: f.failed,
            locked: f.locked,
        }
    }
}

#[derive(Serialize, Clone)]
pub struct ReasonView {
    pub code: &'static str,
    pub message: String,
    pub artifact: Option<String>,
    /// True for the reasons that put the workspace in its status; false for facts beside it.
    pub explains: bool,
}

#[derive(Serialize, Clone)]
pub struct StateView {
    pub path: String,
    pub serial: Option<u64>,
    pub lineage: Option<String>,
    pub terraform_version: Option<String>,
    /// Managed resource instances; null when the state is encrypted or unreadable.
    pub resources: Option<u64>,
    pub tainted: u64,
    pub encrypted: bool,
    pub modified_at: String,
}

#[derive(Serialize, Clone)]
pub struct PlanView {
    pub path: String,
    pub modified_at: String,
    pub current: bool,
    pub errored: bool,
    pub format_version: Option<String>,
    pub drifted_resources: u64,
    pub changes: ChangesView,
    pub output_changes: u64,
}

#[derive(Serialize, Clone, Copy)]
pub struct ChangesView {
    pub create: u64,
    pub update: u64,
    pub delete: u64,
    pub replace: u64,
}

/// Which lock a workspace's lock view or series comes from.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LockSource {
    /// The pipeline's `lock.json` (it knows apply from destroy).
    Pipeline,
    /// Terraform's `.terraform.tfstate.lock.info`.
    Terraform,
}

impl LockSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            LockSource::Pipeline => "pipeline",
            LockSource::Terraform => "terraform",
        }
    }
}

impl std::fmt::Display for LockSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status as the wire spells it.
fn status_name<S: Serializer>(status: &Status, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(status.as_str())
}

#[derive(Serialize, Clone)]
pub struct LockView {
    pub source: LockSource,
    pub operation: &'static str,
    pub who: Option<String>,
    pub created_at: Option<String>,
    pub state: &'static str,
    pub path: String,
}

#[derive(Serialize, Clone)]
pub struct LastRunView {
    pub operation: &'static str,
    pub outcome: &'static str,
    pub exit_code: Option<i64>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub run_id: Option<String>,
    pub modified_at: String,
}

impl WorkspaceView {
    /// The view of a workspace; `since` overrides the verdict's own idea of when its status began.
    pub fn new(ws: &Workspace, since: Option<DateTime<Utc>>) -> WorkspaceView {
        let v = &ws.verdict;
        let e = &ws.evidence;
        let state = match (&e.state, &v.state) {
            (Some(artifact), meta) => Some(StateView {
                path: artifact.path.clone(),
                serial: meta.as_ref().and_then(|m| m.serial),
                lineage: meta.as_ref().and_then(|m| m.lineage.clone()),
                terraform_version: meta.as_ref().and_then(|m| m.terraform_version.clone()),
                resources: meta.as_ref().and_then(|m| m.resources),
                tainted: meta.as_ref().map_or(0, |m| m.tainted),
                encrypted: meta.as_ref().is_some_and(|m| m.encrypted),
                modified_at: rfc3339(artifact.modified),
            }),
            (None, _) => None,
        };
        let plan = v.plan.and_then(|(index, current)| {
            let artifact = e.plans.get(index)?;
            let summary = artifact.content.as_ref().ok()?;
            Some(PlanView {
                path: artifact.path.clone(),
                modified_at: rfc3339(artifact.modified),
                current,
                errored: summary.errored,
                format_version: summary.format_version.clone(),
                drifted_resources: summary.drifted_resources,
                changes: ChangesView {
                    create: summary.changes.create,
                    update: summary.changes.update,
                    delete: summary.changes.delete,
                    replace: summary.changes.replace,
                },
                output_changes: summary.output_changes,
            })
        });
        WorkspaceView {
            id: ws.id.clone(),
            root: ws.root.clone(),
            path: ws.path.clone(),
            workspace: ws.name.clone(),
            status: v.status,
            status_since: since.or(v.since).map(rfc3339),
            flags: v.flags.into(),
            reasons: v
                .reasons
                .iter()
                .map(|r| ReasonView {
                    code: r.code.as_str(),
                    message: r.message.to_string(),
                    artifact: r.artifact.clone(),
                    explains: r.code.explains(v.status),
                })
                .collect(),
            state,
            plan,
            lock: lock_view(ws),
            last_run: e.last_run.as_ref().and_then(|a| {
                let run = a.content.as_ref().ok()?;
                Some(LastRunView {
                    operation: run.operation.as_str(),
                    outcome: run.outcome.as_str(),
                    exit_code: run.exit_code,
                    started_at: run.started_at.map(rfc3339),
                    finished_at: run.finished_at.map(rfc3339),
                    run_id: run.run_id.clone(),
                    modified_at: rfc3339(a.modified),
                })
            }),
            backend: e.backend.clone(),
        }
    }
}

/// The lock shown for a workspace: the pipeline's when there is one (it knows apply from
/// destroy), else Terraform's.
fn lock_view(ws: &Workspace) -> Option<LockView> {
    let e = &ws.evidence;
    let pipeline = e
        .pipeline_lock
        .as_ref()
        .zip(ws.verdict.pipeline_lock)
        .and_then(|(a, state)| {
            let lock = a.content.content.as_ref().ok()?;
            Some(LockView {
                source: LockSource::Pipeline,
                operation: lock.operation.as_str(),
                who: lock.pipeline.clone().or_else(|| lock.host.clone()),
                created_at: Some(rfc3339(lock.started_at)),
                state: state.as_str(),
                path: a.path.clone(),
            })
        });
    pipeline.or_else(|| {
        let (a, state) = e.terraform_lock.as_ref().zip(ws.verdict.terraform_lock)?;
        let lock = a.content.content.as_ref().ok();
        Some(LockView {
            source: LockSource::Terraform,
            operation: lock.map_or("other", |l| l.operation.as_str()),
            who: lock.and_then(|l| l.who.clone()),
            created_at: Some(rfc3339(lock.and_then(|l| l.created).unwrap_or(a.modified))),
            state: state.as_str(),
            path: a.path.clone(),
        })
    })
}

/// Every lock of a workspace with its source, operation, creation time and state (for metrics).
pub fn locks(ws: &Workspace) -> Vec<(LockSource, &'static str, DateTime<Utc>, LockState)> {
    let e = &ws.evidence;
    let mut out = Vec::new();
    if let (Some(a), Some(state)) = (&e.pipeline_lock, ws.verdict.pipeline_lock)
        && let Ok(lock) = &a.content.content
    {
        out.push((LockSource::Pipeline, lock.operation.as_str(), lock.started_at, state));
    }
    if let (Some(a), Some(state)) = (&e.terraform_lock, ws.verdict.terraform_lock) {
        let lock = a.content.content.as_ref().ok();
        let created = lock.and_then(|l| l.created).unwrap_or(a.modified);
        out.push((
            LockSource::Terraform,
            lock.map_or("other", |l| l.operation.as_str()),
            created,
            state,
        ));
    }
    out
}

/// The whole document, from workspaces already filtered and sorted.
pub fn document<'a>(
    generated_at: DateTime<Utc>,
    counts: Counts,
    workspaces: impl IntoIterator<Item = WorkspaceView>,
    problems: impl IntoIterator<Item = &'a ScanProblem>,
) -> WorkspacesDocument {
    WorkspacesDocument {
        generated_at: rfc3339(generated_at),
        counts,
        workspaces: workspaces.into_iter().collect(),
        errors: problems.into_iter().map(ProblemView::from).collect(),
    }
}

/// Writes `doc` as `serde_json::to_writer_pretty` does, byte for byte, with the workspaces
/// rendered on every thread of the pool: on a large tree the one document is otherwise the
/// single-threaded end of a scan.
pub fn write_pretty(doc: &mut WorkspacesDocument, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    /// The workspaces' key in a document whose list is empty, as the pretty printer writes it.
    const EMPTY: &[u8] = b"\"workspaces\": []";
    /// Workspaces rendered together, one buffer a chunk.
    const CHUNK: usize = 256;
    // The document without its workspaces (put back below), so that everything around them is
    // written by the pretty printer itself.
    let workspaces = std::mem::take(&mut doc.workspaces);
    let shell = serde_json::to_vec_pretty(doc);
    doc.workspaces = workspaces;
    let shell = shell?;
    // The first occurrence: only the time and the counts come before it, and neither can hold it.
    let Some(at) = shell.windows(EMPTY.len()).position(|w| w == EMPTY) else {
        return Err(std::io::Error::other("the document's shape is not the expected one"));
    };
    if doc.workspaces.is_empty() {
        return out.write_all(&shell);
    }
    let chunks: Vec<std::io::Result<Vec<u8>>> = doc
        .workspaces
        .par_chunks(CHUNK)
        .map(|chunk| {
            let mut buf = Vec::new();
            for (i, ws) in chunk.iter().enumerate() {
                if i > 0 {
                    buf.extend_from_slice(b",\n");
                }
                buf.extend_from_slice(&indented(&serde_json::to_vec_pretty(ws)?));
            }
            Ok(buf)
        })
        .collect();
    out.write_all(&shell[..at])?;
    out.write_all(b"\"workspaces\": [\n")?;
    for (i, chunk) in chunks.into_iter().enumerate() {
        if i > 0 {
            out.write_all(b",\n")?;
        }
        out.write_all(&chunk?)?;
    }
    out.write_all(b"\n  ]")?;
    out.write_all(&shell[at + EMPTY.len()..])
}

/// `json` (pretty-printed from depth 0) indented by four spaces, its first line too, as an
/// element of the document's list. Every line break of pretty JSON is its own: a string holds a
/// line break only escaped.
fn indented(json: &[u8]) -> Vec<u8> {
    let pad = b"    ";
    let mut out = Vec::with_capacity(json.len() + json.len() / 8);
    out.extend_from_slice(pad);
    for line in json.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line);
        if line.ends_with(b"\n") {
            out.extend_from_slice(pad);
        }
    }
    out
}

/// ANSI colour of a status on a terminal.
fn colour(status: Status) -> &'static str {
    match status {
        Status::Failed => "\x1b[1;31m",
        Status::Drifted => "\x1b[1;33m",
        Status::ApplyNeeded => "\x1b[33m",
        Status::Provisioning | Status::Destroying => "\x1b[1;34m",
        Status::Active => "\x1b[32m",
        Status::Inactive => "\x1b[2m",
    }
}

/// Where an `errors` entry is, as the table prints it: `ROOT:PATH`, or the root alone for an entry
/// about the whole root (its path is empty: a bucket that cannot be reached or read).
fn problem_place(problem: &ProblemView) -> String {
    if problem.path.is_empty() {
        problem.root.clone()
    } else {
        format!("{}:{}", problem.root, problem.path)
    }
}

/// The table of `scan`: one line a workspace, counts per status at the end.
pub fn table(doc: &WorkspacesDocument, colours: bool, several_roots: bool) -> String {
    let rows: Vec<(Status, [String; 6])> = doc
        .workspaces
        .iter()
        .map(|w| {
            let path = if several_roots {
                format!("{}:{}", w.root, w.path)
            } else {
                w.path.clone()
            };
            let resources = w
                .state
                .as_ref()
                .and_then(|s| s.resources)
                .map_or("-".into(), |n| n.to_string());
            let changes = w.plan.as_ref().filter(|p| p.current).map_or("-".into(), |p| {
                format!(
                    "+{} ~{} -{} ±{}",
                    p.changes.create, p.changes.update, p.changes.delete, p.changes.replace
                )
            });
            let why = w
                .reasons
                .iter()
                .find(|r| r.explains)
                .or(w.reasons.first())
                .map(|r| r.message.clone())
                .unwrap_or_default();
            (
                w.status,
                [
                    w.status.as_str().to_owned(),
                    path,
                    w.workspace.clone(),
                    resources,
                    changes,
                    why,
                ],
            )
        })
        .collect();
    let headers = ["STATUS", "PATH", "WORKSPACE", "RESOURCES", "CHANGES", "WHY"];
    let mut widths = headers.map(str::len);
    for (_, row) in &rows {
        for (i, cell) in row.iter().enumerate().take(5) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: [&str; 6], status_colour: Option<&str>| {
        for (i, cell) in cells.iter().enumerate() {
            let pad = if i < 5 {
                widths[i].saturating_sub(cell.chars().count()) + 2
            } else {
                0
            };
            match (i, status_colour) {
                (0, Some(c)) => {
                    let _ = write!(out, "{c}{cell}\x1b[0m{}", " ".repeat(pad));
                }
                _ => {
                    let _ = write!(out, "{cell}{}", " ".repeat(pad));
                }
            }
        }
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    };
    line(&mut out, headers, None);
    for (status, row) in &rows {
        let cells = [&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]].map(String::as_str);
        line(&mut out, cells, colours.then(|| colour(*status)));
    }
    if doc.workspaces.is_empty() {
        out.push_str("(no workspaces found)\n");
    }
    for problem in &doc.errors {
        let _ = writeln!(out, "error: {}: {}", problem_place(problem), problem.message);
    }
    let total: u64 = Status::ALL.iter().map(|s| doc.counts.get(*s)).sum();
    let parts: Vec<String> = Status::ALL
        .iter()
        .map(|s| {
            let n = doc.counts.get(*s);
            if colours && n > 0 {
                format!("{}{n} {s}\x1b[0m", colour(*s))
            } else {
                format!("{n} {s}")
            }
        })
        .collect();
    let _ = writeln!(out, "\n{total} workspaces: {}", parts.join(", "));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::ProblemKind;

    #[test]
    fn the_table_names_a_whole_root_error_by_its_root_alone() {
        let problem = |root: &str, path: &str| ScanProblem {
            root: root.into(),
            path: path.into(),
            kind: ProblemKind::Unreachable,
            message: "cannot reach it".into(),
        };
        let problems = [
            problem("s3://bucket", ""),
            problem("s3://bucket", "apps/web/terraform.tfstate"),
        ];
        let doc = document(Utc::now(), Counts::default(), Vec::new(), &problems);
        let table = table(&doc, false, true);
        let errors: Vec<&str> = table.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(
            errors,
            [
                "error: s3://bucket: cannot reach it",
                "error: s3://bucket:apps/web/terraform.tfstate: cannot reach it",
            ],
            "{table}"
        );
        assert!(!table.contains("::"), "{table}");
    }

    /// A workspace at `path` with a state of `resources`, whose lineage holds what a JSON string
    /// escapes (a quote, a backslash, a line break) and non-ASCII.
    fn workspace(path: &str, resources: u64) -> Workspace {
        use crate::artifact::state::StateMeta;
        use crate::classify::{Policy, classify};
        use crate::evidence::{Artifact, Evidence, StateReading};
        use chrono::TimeZone;
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap();
        let evidence = Evidence {
            state: Some(Artifact {
                path: format!("{path}/terraform.tfstate"),
                modified: at,
                content: StateReading::Parsed(std::sync::Arc::new(StateMeta {
                    version: Some(4),
                    serial: Some(resources),
                    lineage: Some("l\"\\\n\u{e9}".into()),
                    terraform_version: None,
                    resources: Some(resources),
                    tainted: 0,
                    encrypted: false,
                })),
            }),
            ..Evidence::default()
        };
        let verdict = classify(&evidence, at, &Policy::default());
        Workspace {
            id: crate::workspace::workspace_id("r", path, "default"),
            root: "r".into(),
            path: path.into(),
            name: "default".into(),
            evidence,
            verdict,
        }
    }

    #[test]
    fn the_document_written_on_every_thread_is_serde_jsons_pretty_document_byte_for_byte() {
        let problems = [ScanProblem {
            root: "r".into(),
            path: "a/\"b\"".into(),
            kind: ProblemKind::DirectoryUnreadable,
            message: "cannot be read\n(permission denied)".into(),
        }];
        // None, one, and more than one chunk's worth with a short last chunk.
        for n in [0, 1, 2, 256, 257, 600] {
            for problems in [&problems[..0], &problems[..]] {
                let workspaces: Vec<Workspace> = (0..n).map(|i| workspace(&format!("ws-{i}"), i as u64)).collect();
                let views = workspaces.iter().map(|w| WorkspaceView::new(w, None));
                let counts = Counts::of(workspaces.iter().map(|w| w.verdict.status));
                let mut doc = document(Utc::now(), counts, views, problems);
                let mut written = Vec::new();
                write_pretty(&mut doc, &mut written).unwrap();
                let expected = serde_json::to_vec_pretty(&doc).unwrap();
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    String::from_utf8(expected).unwrap(),
                    "{n} workspaces, {} errors",
                    problems.len()
                );
                assert_eq!(doc.workspaces.len(), n, "the workspaces are put back");
            }
        }
    }
}
