//! What the page's address says: the status filter, the root, the path search and the sort. The same
//! parameters drive the server-rendered page and the script, so a link can be shared either way.

use std::cmp::Ordering;
use std::fmt::Write as _;

use crate::model::Status;
use crate::report::WorkspaceView;

/// A sortable column of the table (the reasons are not sortable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Status,
    Path,
    Workspace,
    Resources,
    Changes,
    Drift,
    Lock,
    LastRun,
    Since,
}

impl Column {
    pub const ALL: [Column; 9] = [
        Column::Status,
        Column::Path,
        Column::Workspace,
        Column::Resources,
        Column::Changes,
        Column::Drift,
        Column::Lock,
        Column::LastRun,
        Column::Since,
    ];

    /// The spelling in `?sort=`.
    pub fn key(self) -> &'static str {
        match self {
            Column::Status => "status",
            Column::Path => "path",
            Column::Workspace => "workspace",
            Column::Resources => "resources",
            Column::Changes => "changes",
            Column::Drift => "drift",
            Column::Lock => "lock",
            Column::LastRun => "last_run",
            Column::Since => "since",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Column::Status => "Status",
            Column::Path => "Path",
            Column::Workspace => "Workspace",
            Column::Resources => "Resources",
            Column::Changes => "Changes",
            Column::Drift => "Drift",
            Column::Lock => "Lock",
            Column::LastRun => "Last run",
            Column::Since => "Since",
        }
    }

    /// The header's tooltip.
    pub fn hint(self) -> &'static str {
        match self {
            Column::Status => "The status, most urgent first; other flags below it",
            Column::Path => "The workspace directory, relative to its root",
            Column::Workspace => "The CLI workspace (terraform workspace)",
            Column::Resources => "Managed resource instances in the state",
            Column::Changes => "Pending changes in the current plan: + create, ~ update, − delete, ± replace",
            Column::Drift => "Resources the current plan reports as changed outside Terraform",
            Column::Lock => "The lock held on the workspace: operation, age, holder",
            Column::LastRun => "The outcome of the last pipeline run",
            Column::Since => "When the workspace entered its current status",
        }
    }

    fn parse(text: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.key() == text)
    }
}

/// A column and a direction: `?sort=path` ascending, `?sort=-path` descending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub column: Column,
    pub descending: bool,
}

/// Most urgent first: the statuses in the spec's order, then by root, path and workspace.
impl Default for Sort {
    fn default() -> Self {
        Sort {
            column: Column::Status,
            descending: false,
        }
    }
}

impl Sort {
    /// An unknown column gives the default order (a sort is a preference, not a filter).
    pub fn parse(text: &str) -> Sort {
        let (descending, key) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        Column::parse(key).map_or_else(Sort::default, |column| Sort { column, descending })
    }

    pub fn param(self) -> String {
        format!("{}{}", if self.descending { "-" } else { "" }, self.column.key())
    }

    /// The sort a click on `column`'s header asks for: the other direction of the same column, or
    /// that column ascending.
    pub fn toggled(self, column: Column) -> Sort {
        Sort {
            column,
            descending: self.column == column && !self.descending,
        }
    }

    /// Orders rows; ties (and every column's missing values, which come first) fall back to the
    /// workspace's identity, so the order is total and stable across refreshes.
    pub fn compare(self, a: &WorkspaceView, b: &WorkspaceView) -> Ordering {
        let by_column = match self.column {
            Column::Status => status_rank(a).cmp(&status_rank(b)),
            Column::Path => (&a.root, &a.path).cmp(&(&b.root, &b.path)),
            Column::Workspace => a.workspace.cmp(&b.workspace),
            Column::Resources => resources(a).cmp(&resources(b)),
            Column::Changes => changes(a).cmp(&changes(b)),
            Column::Drift => drift(a).cmp(&drift(b)),
            Column::Lock => lock_created(a).cmp(&lock_created(b)),
            Column::LastRun => last_run(a).cmp(&last_run(b)),
            Column::Since => a.status_since.cmp(&b.status_since),
        };
        let by_column = if self.descending {
            by_column.reverse()
        } else {
            by_column
        };
        by_column.then_with(|| (&a.root, &a.path, &a.workspace).cmp(&(&b.root, &b.path, &b.workspace)))
    }
}

fn status_rank(w: &WorkspaceView) -> usize {
    w.status.index()
}

fn resources(w: &WorkspaceView) -> Option<u64> {
    w.state.as_ref().and_then(|s| s.resources)
}

/// The plan's numbers count only when the plan is current.
pub fn current_plan(w: &WorkspaceView) -> Option<&crate::report::PlanView> {
    w.plan.as_ref().filter(|p| p.current)
}

fn changes(w: &WorkspaceView) -> Option<u64> {
    current_plan(w)
        .map(|p| p.changes.create + p.changes.update + p.changes.delete + p.changes.replace + p.output_changes)
}

fn drift(w: &WorkspaceView) -> Option<u64> {
    current_plan(w).map(|p| p.drifted_resources)
}

fn lock_created(w: &WorkspaceView) -> Option<&str> {
    w.lock.as_ref().map(|l| l.created_at.as_deref().unwrap_or(""))
}

fn last_run(w: &WorkspaceView) -> Option<&str> {
    w.last_run
        .as_ref()
        .map(|r| r.finished_at.as_deref().unwrap_or(r.modified_at.as_str()))
}

/// The page's query, parsed.
#[derive(Clone, Debug, Default)]
pub struct Params {
    /// The status filter; empty shows every status.
    pub statuses: Vec<Status>,
    pub root: Option<String>,
    /// The path search as typed.
    pub q: Option<String>,
    pub sort: Sort,
    /// The page's own address, the base of its links (`/`, or `/prefix/` behind a proxy); empty
    /// means `/`.
    pub base: String,
}

impl Params {
    /// The address of this page with another status filter and sort, the root and search kept.
    pub fn href(&self, statuses: &[Status], sort: Sort) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if !statuses.is_empty() {
            pairs.push((
                "status",
                statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","),
            ));
        }
        if let Some(root) = &self.root {
            pairs.push(("root", root.clone()));
        }
        if let Some(q) = &self.q {
            pairs.push(("q", q.clone()));
        }
        if sort != Sort::default() {
            pairs.push(("sort", sort.param()));
        }
        let mut out = if self.base.is_empty() {
            String::from("/")
        } else {
            self.base.clone()
        };
        for (i, (name, value)) in pairs.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            let _ = write!(out, "{name}={}", encode(value));
        }
        out
    }

    /// The address a card links to: that status alone, or every status when it is already the
    /// only one shown.
    pub fn card_href(&self, status: Status) -> String {
        if self.statuses == [status] {
            self.href(&[], self.sort)
        } else {
            self.href(&[status], self.sort)
        }
    }
}

/// Percent-encodes a query value (everything but unreserved characters; `,` kept for lists).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' => out.push(byte as char),
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_parses_direction_and_falls_back_to_the_default() {
        assert_eq!(Sort::parse("-since").param(), "-since");
        assert_eq!(Sort::parse("path").param(), "path");
        assert_eq!(Sort::parse("nonsense"), Sort::default());
        assert_eq!(Sort::parse("path").toggled(Column::Path).param(), "-path");
        assert_eq!(Sort::parse("-path").toggled(Column::Path).param(), "path");
        assert_eq!(Sort::parse("-path").toggled(Column::Drift).param(), "drift");
    }

    #[test]
    fn hrefs_keep_root_search_and_sort_and_encode_them() {
        let params = Params {
            statuses: vec![Status::Failed],
            root: Some("/srv/a b".into()),
            q: Some("net&x".into()),
            sort: Sort::parse("-path"),
            base: String::new(),
        };
        assert_eq!(
            params.card_href(Status::Drifted),
            "/?status=drifted&root=%2Fsrv%2Fa%20b&q=net%26x&sort=-path"
        );
        // The card of the only status shown clears the filter.
        assert_eq!(
            params.card_href(Status::Failed),
            "/?root=%2Fsrv%2Fa%20b&q=net%26x&sort=-path"
        );
        assert_eq!(
            Params::default().href(&[Status::Failed, Status::Drifted], Sort::default()),
            "/?status=failed,drifted"
        );
        assert_eq!(Params::default().href(&[], Sort::default()), "/");
        let behind_a_proxy = Params {
            base: "/iacwatch/".into(),
            ..Params::default()
        };
        assert_eq!(
            behind_a_proxy.href(&[Status::Failed], Sort::default()),
            "/iacwatch/?status=failed"
        );
        assert_eq!(behind_a_proxy.href(&[], Sort::default()), "/iacwatch/");
    }
}
