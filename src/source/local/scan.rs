//! A scan: discover the workspace directories of every root, read them in parallel, classify
//! every workspace; and the wait for states caught mid-write to settle, shared by the one-shot
//! scan and the daemon's first scan.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::Root;
use super::discover::{DiscoverOptions, RootError, WalkProblem, discover_each};
use super::liveness::Probe;
use super::read::{Listing, read_directory};
use crate::artifact::state::StateMeta;
use crate::classify::{Policy, classify};
use crate::model::ReasonCode;
use crate::workspace::{ProblemKind, ScanProblem, Workspace, sort, workspace_id};

/// A walk problem under `root`, as the scan reports it.
pub(crate) fn walk_problem(root: &Root, problem: WalkProblem) -> ScanProblem {
    ScanProblem {
        root: root.label.clone(),
        path: problem.path,
        kind: problem.kind,
        message: problem.message,
    }
}

/// What a scan found.
#[derive(Clone, Debug, Default)]
pub struct ScanResult {
    /// Sorted by root, path, workspace.
    pub workspaces: Vec<Workspace>,
    pub problems: Vec<ScanProblem>,
}

/// Everything a scan needs besides the roots. It owns what it asks, so that it can live on a
/// thread of its own.
pub struct Scanner {
    pub discover: DiscoverOptions,
    pub policy: Policy,
    pub probe: Box<dyn Probe + Send>,
    /// Files larger than this are parsed from a stream in constant memory rather than read whole
    /// (slower, but memory stays flat).
    pub stream_above: u64,
    /// Counts the directories read, for a progress display.
    pub progress: Option<Arc<AtomicUsize>>,
}

impl Scanner {
    /// Scans every root. A root that cannot be walked at all is an error for that root only.
    ///
    /// Discovery and reading share one pool: a directory is read as soon as the walk finds it,
    /// so both cores work from the first file on and there is no wait between walk and reads.
    pub fn scan(&self, roots: &[Root], now: DateTime<Utc>) -> (ScanResult, Vec<RootError>) {
        let mut result = ScanResult::default();
        let mut errors = Vec::new();
        for root in roots {
            let reads = Mutex::new(Vec::new());
            let walked = rayon::scope(|scope| {
                let reads = &reads;
                discover_each(&root.path, &self.discover, &|found| {
                    // The walk's listing of the directory, so that it is not listed again.
                    let (rel, listing) = (found.rel, Listing::from_entries(found.entries));
                    scope.spawn(move |_| {
                        let read = self.read_listed(root, &rel, Some(listing), now, &|_| None);
                        if let Some(counter) = &self.progress {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        reads.lock().unwrap_or_else(|e| e.into_inner()).push((rel, read));
                    });
                })
            });
            match walked {
                Ok(problems) => {
                    result
                        .problems
                        .extend(problems.into_iter().map(|p| walk_problem(root, p)));
                    // In the order of the paths, as a walk-then-read scan gives them.
                    let mut reads = reads.into_inner().unwrap_or_else(|e| e.into_inner());
                    reads.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                    for (_, item) in reads {
                        match item {
                            Ok(mut found) => result.workspaces.append(&mut found),
                            Err(problem) => result.problems.push(problem),
                        }
                    }
                }
                Err(err) => errors.push(err),
            }
        }
        sort(&mut result.workspaces);
        (result, errors)
    }

    /// Reads and classifies one directory's workspaces. `previous` gives the last good state of
    /// a workspace of the directory (by name), kept while its state file settles.
    pub(crate) fn read_dir(
        &self,
        root: &Root,
        rel: &str,
        now: DateTime<Utc>,
        previous: &dyn Fn(&str) -> Option<std::sync::Arc<StateMeta>>,
    ) -> Result<Vec<Workspace>, ScanProblem> {
        self.read_listed(root, rel, None, now, previous)
    }

    /// `read_dir`, from the directory's `listing` when the walk made one.
    fn read_listed(
        &self,
        root: &Root,
        rel: &str,
        listing: Option<Listing>,
        now: DateTime<Utc>,
        previous: &dyn Fn(&str) -> Option<std::sync::Arc<StateMeta>>,
    ) -> Result<Vec<Workspace>, ScanProblem> {
        let found =
            read_directory(&root.path, rel, listing, self.stream_above, &*self.probe, previous).map_err(|e| {
                ScanProblem {
                    root: root.label.clone(),
                    path: e.path.clone(),
                    kind: ProblemKind::DirectoryUnreadable,
                    message: e.to_string(),
                }
            })?;
        Ok(found
            .into_iter()
            .map(|ws| {
                let verdict = classify(&ws.evidence, now, &self.policy);
                Workspace {
                    id: workspace_id(&root.label, rel, &ws.name),
                    root: root.label.clone(),
                    path: rel.to_owned(),
                    name: ws.name,
                    evidence: ws.evidence,
                    verdict,
                }
            })
            .collect())
    }

    /// Reads the directories of a one-shot scan again until no state in them is settling.
    pub fn settle(&self, roots: &[Root], result: &mut ScanResult) {
        settle(
            self.policy.settle_time,
            &|| false,
            result,
            |result| settling(result.workspaces.iter()),
            |result, dirs| {
                let now = Utc::now();
                for (label, paths) in dirs {
                    let Some(root) = roots.iter().find(|r| r.label == label) else {
                        continue;
                    };
                    for rel in paths {
                        result.workspaces.retain(|w| !(w.root == label && w.path == rel));
                        match self.read_dir(root, &rel, now, &|_| None) {
                            Ok(mut found) => result.workspaces.append(&mut found),
                            Err(problem) => result.problems.push(problem),
                        }
                    }
                }
                sort(&mut result.workspaces);
            },
        );
    }
}

/// Directories to read again, by root label.
pub(crate) type Dirs = BTreeMap<String, BTreeSet<String>>;

/// The directories whose state was caught mid-write, and the earliest time one of them is due
/// to be read again; `None` when no state is settling.
pub(crate) fn settling<'a>(workspaces: impl Iterator<Item = &'a Workspace>) -> Option<(DateTime<Utc>, Dirs)> {
    let mut dirs = Dirs::new();
    let mut wake: Option<DateTime<Utc>> = None;
    for ws in workspaces.filter(|w| w.verdict.reasons.iter().any(|r| r.code == ReasonCode::StateSettling)) {
        dirs.entry(ws.root.clone()).or_default().insert(ws.path.clone());
        if let Some(at) = ws.verdict.recheck_at {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
    }
    Some((wake?, dirs))
}

/// A state caught mid-write has no earlier reading to fall back on, in a one-shot scan as at the
/// daemon's start: wait until it has settled (three settle times at most) rather than show a
/// guess. `pending` says what of `target` is settling now; `reread` reads those directories again
/// into it.
pub(crate) fn settle<T: ?Sized>(
    settle_time: Duration,
    stop: &dyn Fn() -> bool,
    target: &mut T,
    pending: impl Fn(&T) -> Option<(DateTime<Utc>, Dirs)>,
    mut reread: impl FnMut(&mut T, Dirs),
) {
    let deadline = Instant::now() + settle_time * 3;
    while Instant::now() < deadline && !stop() {
        let Some((wake, dirs)) = pending(target) else {
            return;
        };
        if let Ok(wait) = (wake - Utc::now()).to_std() {
            std::thread::sleep(
                wait.min(deadline.saturating_duration_since(Instant::now())) + Duration::from_millis(20),
            );
        }
        reread(target, dirs);
    }
}
