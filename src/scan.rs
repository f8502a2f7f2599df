//! A scan: discover the workspace directories of every root, read them in parallel, classify
//! every workspace.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::artifact::state::StateMeta;
use crate::classify::{Policy, Verdict, classify};
use crate::discover::{DiscoverOptions, RootError, WalkProblem, discover};
use crate::evidence::Evidence;
use crate::liveness::Probe;
use crate::read::read_directory;

/// A directory the program scans, as the user named it, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    /// As given (command line or configuration): the `root` label of every output.
    pub label: String,
    pub path: PathBuf,
}

impl Root {
    pub fn new(label: impl Into<String>) -> Root {
        let label = label.into();
        Root {
            path: PathBuf::from(&label),
            label,
        }
    }
}

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

/// The stable, URL-safe id of a workspace: 16 hex digits of SHA-256 over root, path and name.
pub fn workspace_id(root: &str, path: &str, name: &str) -> String {
    let mut hash = Sha256::new();
    for part in [root, path, name] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Something that could not be scanned; the rest of the scan went on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanProblem {
    pub root: String,
    pub path: String,
    pub kind: &'static str,
    pub message: String,
}

impl ScanProblem {
    /// A walk problem under `root`.
    pub fn from_walk(root: &Root, problem: WalkProblem) -> ScanProblem {
        ScanProblem {
            root: root.label.clone(),
            path: problem.path,
            kind: problem.kind,
            message: problem.message,
        }
    }
}

/// What a scan found.
#[derive(Clone, Debug, Default)]
pub struct ScanResult {
    /// Sorted by root, path, workspace.
    pub workspaces: Vec<Workspace>,
    pub problems: Vec<ScanProblem>,
}

/// Everything a scan needs besides the roots.
pub struct Scanner<'a> {
    pub discover: DiscoverOptions,
    pub policy: Policy,
    pub probe: &'a dyn Probe,
    /// Files larger than this are parsed from a stream in constant memory rather than read whole
    /// (slower, but memory stays flat).
    pub stream_above: u64,
    /// Counts the directories read, for a progress display.
    pub progress: Option<&'a std::sync::atomic::AtomicUsize>,
}

impl Scanner<'_> {
    /// Scans every root. A root that cannot be walked at all is an error for that root only.
    pub fn scan(&self, roots: &[Root], now: DateTime<Utc>) -> (ScanResult, Vec<RootError>) {
        let mut result = ScanResult::default();
        let mut errors = Vec::new();
        for root in roots {
            match discover(&root.path, &self.discover) {
                Ok((dirs, problems)) => {
                    result
                        .problems
                        .extend(problems.into_iter().map(|p| ScanProblem::from_walk(root, p)));
                    let read: Vec<_> = dirs
                        .par_iter()
                        .map(|rel| {
                            let read = self.read_dir(root, rel, now, &|_| None);
                            if let Some(counter) = self.progress {
                                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            read
                        })
                        .collect();
                    for item in read {
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

    /// Reads and classifies one directory's workspaces.
    pub fn read_dir(
        &self,
        root: &Root,
        rel: &str,
        now: DateTime<Utc>,
        previous: &dyn Fn(&str) -> Option<StateMeta>,
    ) -> Result<Vec<Workspace>, ScanProblem> {
        let found =
            read_directory(&root.path, rel, self.stream_above, self.probe, previous).map_err(|e| ScanProblem {
                root: root.label.clone(),
                path: e.path.clone(),
                kind: "directory_unreadable",
                message: e.to_string(),
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
}

/// Sorts workspaces by root, path, workspace name.
pub fn sort(workspaces: &mut [Workspace]) {
    workspaces.sort_by(|a, b| (&a.root, &a.path, &a.name).cmp(&(&b.root, &b.path, &b.name)));
}
