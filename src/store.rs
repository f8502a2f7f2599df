//! The store: one shared snapshot of every workspace. Scans and the watcher write it; HTTP and
//! metrics only read snapshots, so a scrape sees one consistent moment and a workspace that
//! disappears takes its series with it.
//!
//! The store also keeps when each status began (`status_since`) across transitions, and logs every
//! transition.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

use crate::artifact::state::StateMeta;
use crate::evidence::StateReading;
use crate::scan::{ScanProblem, Workspace};

/// Root label, path relative to the root, CLI workspace name: the sort order of every output.
pub type Key = (String, String, String);

/// A workspace as the store keeps it.
#[derive(Debug)]
pub struct Entry {
    pub workspace: Workspace,
    /// When the current status began: first sight takes the evidence's own time; later
    /// transitions take the time they were seen.
    pub since: DateTime<Utc>,
}

/// One consistent moment.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub updated_at: Option<DateTime<Utc>>,
    pub workspaces: BTreeMap<Key, Arc<Entry>>,
    /// Directories that could not be read, by (root, path).
    pub problems: BTreeMap<(String, String), ScanProblem>,
    pub last_full_scan: Option<DateTime<Utc>>,
}

/// A change the store made, for counters and logs.
#[derive(Debug, Default)]
pub struct Applied {
    /// New artifact errors (a path that became unreadable), by bounded kind.
    pub new_errors: Vec<&'static str>,
}

#[derive(Debug, Default)]
pub struct Store {
    snapshot: RwLock<Arc<Snapshot>>,
    ready: AtomicBool,
}

fn key(ws: &Workspace) -> Key {
    (ws.root.clone(), ws.path.clone(), ws.name.clone())
}

/// True when `path` is `dir` or lies below it (`.` is above everything).
pub fn is_within(path: &str, dir: &str) -> bool {
    dir == "." || path == dir || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

/// The unreadable artifacts of a workspace, as (path, kind).
pub fn artifact_errors(ws: &Workspace) -> BTreeSet<(String, &'static str)> {
    let e = &ws.evidence;
    let mut out = BTreeSet::new();
    if let Some(state) = &e.state
        && let StateReading::Unreadable(err) = &state.content
    {
        out.insert((state.path.clone(), err.kind()));
    }
    let mut add = |path: &String, err: Option<&crate::artifact::ParseError>| {
        if let Some(err) = err {
            out.insert((path.clone(), err.kind()));
        }
    };
    if let Some(a) = &e.terraform_lock {
        add(&a.path, a.content.content.as_ref().err());
    }
    if let Some(a) = &e.pipeline_lock {
        add(&a.path, a.content.content.as_ref().err());
    }
    if let Some(a) = &e.last_run {
        add(&a.path, a.content.as_ref().err());
    }
    for plan in &e.plans {
        add(&plan.path, plan.content.as_ref().err());
    }
    for problem in &e.problems {
        add(&problem.path, Some(&problem.content));
    }
    out
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// The current snapshot; cheap (a reference count).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// The last good state reading of a workspace, kept while its state file settles.
    pub fn previous_state(&self, root: &str, path: &str, name: &str) -> Option<StateMeta> {
        let snapshot = self.snapshot();
        let entry = snapshot
            .workspaces
            .get(&(root.to_owned(), path.to_owned(), name.to_owned()))?;
        entry.workspace.verdict.state.clone()
    }

    /// Replaces everything under `scope` (a directory relative to `root`, `.` for the whole root):
    /// workspaces found are updated or added, workspaces under it that were not found are
    /// removed. `dirs_only` limits removal to exactly the directories in `read` (a re-read of
    /// single directories rather than a subtree).
    pub fn apply(&self, update: Update, now: DateTime<Utc>) -> Applied {
        let mut guard = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        let mut next = (**guard).clone();
        let mut applied = Applied::default();
        let in_scope = |k: &Key| {
            k.0 == update.root
                && match &update.scope {
                    Scope::Subtree(dir) => is_within(&k.1, dir),
                    Scope::Dirs(dirs) => dirs.contains(&k.1),
                }
        };
        let found: BTreeSet<Key> = update.workspaces.iter().map(key).collect();
        let gone: Vec<Key> = next
            .workspaces
            .keys()
            .filter(|k| in_scope(k) && !found.contains(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(old) = next.workspaces.remove(&k) {
                tracing::info!(root = %k.0, path = %k.1, workspace = %k.2, from = %old.workspace.verdict.status, "workspace removed");
            }
        }
        next.problems.retain(|(root, path), _| {
            !(root == &update.root
                && match &update.scope {
                    Scope::Subtree(dir) => is_within(path, dir),
                    Scope::Dirs(dirs) => dirs.contains(path),
                })
        });
        for problem in update.problems {
            next.problems
                .insert((problem.root.clone(), problem.path.clone()), problem);
        }
        for ws in update.workspaces {
            let k = key(&ws);
            let old = next.workspaces.get(&k);
            let since = match old {
                Some(old) if old.workspace.verdict.status == ws.verdict.status => old.since,
                Some(old) => {
                    let reasons: Vec<&str> = ws.verdict.reasons.iter().map(|r| r.code.as_str()).collect();
                    tracing::info!(
                        root = %k.0, path = %k.1, workspace = %k.2,
                        from = %old.workspace.verdict.status, to = %ws.verdict.status,
                        reasons = %reasons.join(","), "status changed"
                    );
                    now
                }
                None => {
                    if update.log_new {
                        tracing::info!(root = %k.0, path = %k.1, workspace = %k.2, status = %ws.verdict.status, "workspace found");
                    }
                    ws.verdict.since.unwrap_or(now).min(now)
                }
            };
            let before = old.map(|o| artifact_errors(&o.workspace)).unwrap_or_default();
            for (path, kind) in artifact_errors(&ws) {
                if !before.iter().any(|(p, k)| p == &path && *k == kind) {
                    tracing::warn!(root = %k.0, path = %path, kind, "artifact cannot be read");
                    applied.new_errors.push(kind);
                }
            }
            next.workspaces.insert(k, Arc::new(Entry { workspace: ws, since }));
        }
        next.updated_at = Some(now);
        if update.full {
            next.last_full_scan = Some(now);
        }
        *guard = Arc::new(next);
        applied
    }

    /// Forgets every workspace of a root (the root is gone).
    pub fn clear_root(&self, root: &str, now: DateTime<Utc>) {
        self.apply(
            Update {
                root: root.to_owned(),
                scope: Scope::Subtree(".".into()),
                workspaces: Vec::new(),
                problems: Vec::new(),
                full: false,
                log_new: true,
            },
            now,
        );
    }
}

/// What an update covers.
#[derive(Debug, Clone)]
pub enum Scope {
    /// A directory and everything below it (`.`: the whole root).
    Subtree(String),
    /// Exactly these directories.
    Dirs(BTreeSet<String>),
}

/// A batch of fresh readings for one root.
#[derive(Debug)]
pub struct Update {
    pub root: String,
    pub scope: Scope,
    pub workspaces: Vec<Workspace>,
    pub problems: Vec<ScanProblem>,
    /// A full scan of the root (sets `last_full_scan`).
    pub full: bool,
    /// Log workspaces seen for the first time (not on the first scan, which finds them all).
    pub log_new: bool,
}

#[cfg(test)]
mod tests {
    use super::is_within;

    #[test]
    fn within_means_below_on_a_path_boundary() {
        assert!(is_within("a/b", "a"));
        assert!(is_within("a", "a"));
        assert!(!is_within("ab", "a"));
        assert!(is_within("x", "."));
        assert!(!is_within("a", "a/b"));
    }
}
