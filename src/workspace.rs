//! A workspace as every layer above the classifier knows it: its identity (root, path, CLI
//! workspace name, a stable id), its evidence and the verdict on it; the problems a scan meets;
//! and a batch of fresh readings, the one thing a source hands to the store. Pure: no IO.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::classify::Verdict;
use crate::evidence::Evidence;

/// Root label, path relative to the root, CLI workspace name: the sort order of every output.
pub type Key = (String, String, String);

/// One workspace: identity, evidence and the verdict on it.
#[derive(Clone, Debug)]
pub struct Workspace {
    pub id: String,
    pub root: String,
    pub path: String,
    pub name: String,
    pub evidence: Evidence,
    pub verdict: Verdict,
}

impl Workspace {
    /// Where the workspace sorts, and how the store finds it.
    pub fn key(&self) -> Key {
        (self.root.clone(), self.path.clone(), self.name.clone())
    }
}

/// The stable, URL-safe id of a workspace: 16 hex digits of SHA-256 over root, path and name.
pub fn workspace_id(root: &str, path: &str, name: &str) -> String {
    let mut hash = Sha256::new();
    for part in [root, path, name] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Sorts workspaces by root, path, workspace name.
pub fn sort(workspaces: &mut [Workspace]) {
    workspaces.sort_by(|a, b| (&a.root, &a.path, &a.name).cmp(&(&b.root, &b.path, &b.name)));
}

/// True when `path` is `dir` or lies below it (both relative to a root, `/` separated; `.` is
/// above everything).
pub fn is_within(path: &str, dir: &str) -> bool {
    dir == "." || path == dir || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

/// Why a directory or file could not be scanned: a bounded set, the `kind` of the API's `errors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProblemKind {
    /// A workspace directory could not be listed.
    DirectoryUnreadable,
    /// A symbolic link leads back to one of its ancestors.
    SymlinkLoop,
    PermissionDenied,
    /// Any other error of the operating system.
    Io,
    /// A bucket or lock table that gives no answer (connection refused, timeout, unresolvable).
    Unreachable,
    /// The credentials are missing, wrong, or do not allow the request.
    AccessDenied,
    /// A bucket, object or lock table that does not exist (an object deleted since the listing).
    NotFound,
    /// The service asks to slow down.
    Throttled,
    /// The service failed (5xx).
    ServerError,
    /// An answer that cannot be used.
    BadResponse,
}

impl ProblemKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ProblemKind::DirectoryUnreadable => "directory_unreadable",
            ProblemKind::SymlinkLoop => "symlink_loop",
            ProblemKind::PermissionDenied => "permission_denied",
            ProblemKind::Io => "io",
            ProblemKind::Unreachable => "unreachable",
            ProblemKind::AccessDenied => "access_denied",
            ProblemKind::NotFound => "not_found",
            ProblemKind::Throttled => "throttled",
            ProblemKind::ServerError => "server_error",
            ProblemKind::BadResponse => "bad_response",
        }
    }
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that could not be scanned; the rest of the scan went on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanProblem {
    pub root: String,
    pub path: String,
    pub kind: ProblemKind,
    pub message: String,
}

/// What kind of scan a batch came from: the `kind` label of the scan counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanKind {
    /// Every root from scratch (the first scan, the periodic resync).
    Full,
    /// The directories that file events named, or whose locks were re-checked.
    Incremental,
}

impl ScanKind {
    pub const ALL: [ScanKind; 2] = [ScanKind::Full, ScanKind::Incremental];

    pub const fn as_str(self) -> &'static str {
        match self {
            ScanKind::Full => "full",
            ScanKind::Incremental => "incremental",
        }
    }
}

/// What a batch of readings covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A directory and everything below it (`.`: the whole root).
    Subtree(String),
    /// Exactly these directories.
    Dirs(std::collections::BTreeSet<String>),
}

impl Scope {
    /// True when the directory `path` (relative to the root) is covered.
    pub fn covers(&self, path: &str) -> bool {
        match self {
            Scope::Subtree(dir) => is_within(path, dir),
            Scope::Dirs(dirs) => dirs.contains(path),
        }
    }
}

/// A batch of fresh readings for one root: everything found under `scope` replaces what was
/// known there.
#[derive(Debug)]
pub struct Update {
    pub root: String,
    pub scope: Scope,
    pub workspaces: Vec<Workspace>,
    pub problems: Vec<ScanProblem>,
    /// A full scan of the root (sets `last_full_scan`).
    pub full: bool,
    /// When the readings were taken (the `now` they were classified at).
    pub at: DateTime<Utc>,
}

impl Update {
    /// Everything of `root` is gone (the root vanished or cannot be read).
    pub fn cleared(root: &str, at: DateTime<Utc>) -> Update {
        Update {
            root: root.to_owned(),
            scope: Scope::Subtree(".".into()),
            workspaces: Vec::new(),
            problems: Vec::new(),
            full: false,
            at,
        }
    }
}

/// What a source may know of the workspaces already seen: the previous snapshot, handed down
/// once per batch, so that reading never asks the store anything.
pub trait Known: Send + Sync {
    /// The workspace under this key, if it is known.
    fn workspace(&self, key: &Key) -> Option<&Workspace>;
    /// Every known workspace, in key order.
    fn workspaces(&self) -> Box<dyn Iterator<Item = &Workspace> + '_>;
}

/// Where a source sends its batches. The daemon's writer loop implements it; a source never
/// sees the store itself.
pub trait Sink {
    /// Applies one batch.
    fn send(&mut self, update: Update);
    /// Whether a root can be read (the directory exists and can be listed), as last seen.
    fn root_up(&mut self, root: &str, up: bool);
    /// The first full scan is done and settled: the daemon is ready.
    fn ready(&mut self);
    /// What is known now (cheap: a reference count).
    fn known(&self) -> std::sync::Arc<dyn Known>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_means_below_on_a_path_boundary() {
        assert!(is_within("a/b", "a"));
        assert!(is_within("a", "a"));
        assert!(!is_within("ab", "a"));
        assert!(is_within("x", "."));
        assert!(!is_within("a", "a/b"));
    }

    #[test]
    fn a_scope_covers_its_subtree_or_exactly_its_directories() {
        let subtree = Scope::Subtree("a".into());
        assert!(subtree.covers("a") && subtree.covers("a/b") && !subtree.covers("ab"));
        let dirs = Scope::Dirs(["a".to_owned()].into());
        assert!(dirs.covers("a") && !dirs.covers("a/b"));
    }

    #[test]
    fn the_id_is_stable_and_separates_its_parts() {
        assert_eq!(workspace_id("r", "p", "default"), workspace_id("r", "p", "default"));
        assert_eq!(workspace_id("r", "p", "default").len(), 16);
        assert_ne!(workspace_id("ab", "c", "d"), workspace_id("a", "bc", "d"));
    }
}
