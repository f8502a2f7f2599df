//! The store: one snapshot of every workspace, written by one loop and read by many.
//!
//! The [`Writer`] is owned by the daemon's one writing loop (it is not `Clone`; `feed` is that
//! loop, which sources reach over a channel); HTTP, metrics and the page hold a cloneable
//! [`Reader`]. A batch is applied by building the next snapshot
//! aside and then publishing it whole, so a reader never waits for a batch and a scrape sees one
//! consistent moment: data, readiness and the roots' readability together. A workspace that
//! disappears takes its series with it.
//!
//! The store keeps when each status began (`status_since`) across transitions and returns what
//! each batch changed ([`Applied`]): the status transitions and the artifacts newly found
//! unreadable. Logging and counting them is the caller's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::artifact::state::StateMeta;
use crate::evidence::StateReading;
use crate::model::{ReasonCode, Status};
use crate::workspace::{Key, Known, ScanProblem, Update, Workspace};

pub mod feed;
pub mod kept;
#[cfg(test)]
mod tests;

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
    /// Shared with the snapshot before when a change left them alone (readiness, a root's
    /// readability): publishing such a change copies no key.
    pub workspaces: Arc<Workspaces>,
    /// Directories that could not be read, by (root, path).
    pub problems: BTreeMap<(String, String), ScanProblem>,
    pub last_full_scan: Option<DateTime<Utc>>,
    /// The first full scan is done (and its states settled): `/readyz` answers 200.
    pub ready: bool,
    /// Whether each root can be read, by root label: true while its directory exists and can be
    /// listed (the `iacwatch_root_up{root}` gauge).
    pub roots: BTreeMap<String, bool>,
}

/// The workspaces of a snapshot in key order (root, path, name). A sorted list of the records
/// themselves, so the key is the record's own strings: no copy of them per workspace, no map
/// nodes, and the next snapshot starts from a copy of the pointers only.
#[derive(Debug, Default, Clone)]
pub struct Workspaces {
    entries: Vec<Arc<Entry>>,
}

impl Workspaces {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every workspace, in key order.
    pub fn values(&self) -> std::slice::Iter<'_, Arc<Entry>> {
        self.entries.iter()
    }

    /// Every key, in order.
    pub fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.entries.iter().map(|e| e.workspace.key())
    }

    pub fn get(&self, key: &Key) -> Option<&Arc<Entry>> {
        self.find(key).ok().map(|at| &self.entries[at])
    }

    fn find(&self, key: &Key) -> Result<usize, usize> {
        let wanted = (key.0.as_str(), key.1.as_str(), key.2.as_str());
        self.entries.binary_search_by(|e| order(&e.workspace).cmp(&wanted))
    }
}

impl std::ops::Index<&Key> for Workspaces {
    type Output = Arc<Entry>;

    fn index(&self, key: &Key) -> &Arc<Entry> {
        self.get(key).expect("no workspace with this key")
    }
}

/// A workspace's place in key order.
fn order(ws: &Workspace) -> (&str, &str, &str) {
    (&ws.root, &ws.path, &ws.name)
}

impl Known for Snapshot {
    fn workspace(&self, key: &Key) -> Option<&Workspace> {
        self.workspaces.get(key).map(|e| &e.workspace)
    }

    fn workspaces(&self) -> Box<dyn Iterator<Item = &Workspace> + '_> {
        Box::new(self.workspaces.values().map(|e| &e.workspace))
    }
}

/// A change of a workspace's status: appearing (`from: None`), vanishing (`to: None`) or moving
/// from one status to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub at: DateTime<Utc>,
    /// When the new status began: `at`, but for a workspace's first sight, which takes the time
    /// of its evidence (as `Entry::since`).
    pub since: DateTime<Utc>,
    pub key: Key,
    pub id: String,
    pub from: Option<Status>,
    pub to: Option<Status>,
    /// The reason codes of the new verdict (none when the workspace vanished).
    pub reasons: Vec<ReasonCode>,
}

/// An artifact that became unreadable (it was readable, or not there, before).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactError {
    pub root: String,
    /// Relative to the root.
    pub path: String,
    /// Bounded (`ParseError::kind`).
    pub kind: &'static str,
}

/// What one batch changed.
#[derive(Debug, Default)]
pub struct Applied {
    /// In key order: vanished workspaces first, then the found ones.
    pub transitions: Vec<Transition>,
    pub new_errors: Vec<ArtifactError>,
}

/// The one writer. Not `Clone`: whoever owns it is the only loop that changes the store.
#[derive(Debug)]
pub struct Writer {
    current: Arc<Snapshot>,
    publish: watch::Sender<Arc<Snapshot>>,
    /// The status and `since` of each workspace before a restart, until it is first seen.
    previous: BTreeMap<Key, (Status, DateTime<Utc>)>,
    /// One copy of each reason message the kept workspaces give.
    messages: Messages,
}

/// The reason messages of the kept workspaces, each once: most workspaces give one of a few
/// hundred ("no state file", "state has 6 managed resource instances").
#[derive(Debug, Default)]
struct Messages {
    known: std::collections::HashSet<Arc<str>>,
    /// How many were known after the last sweep of those no workspace gives any more.
    swept: usize,
}

impl Messages {
    /// Points `message` at the store's copy of its text, made now (not the reading thread's) when
    /// it is new.
    fn share(&mut self, message: &mut Arc<str>) {
        match self.known.get(&**message) {
            Some(known) => *message = known.clone(),
            None => {
                let owned: Arc<str> = Arc::from(&**message);
                self.known.insert(owned.clone());
                *message = owned;
            }
        }
    }

    /// Forgets the messages only this set still holds, once it has doubled since the last time.
    fn sweep(&mut self) {
        if self.known.len() > 2 * self.swept + 1024 {
            self.known.retain(|m| Arc::strong_count(m) > 1);
            self.swept = self.known.len();
        }
    }
}

/// A handle to read the current snapshot; cheap to clone and to ask.
#[derive(Clone, Debug)]
pub struct Reader {
    latest: watch::Receiver<Arc<Snapshot>>,
}

impl Reader {
    /// The current snapshot (a reference count).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.latest.borrow().clone()
    }

    pub fn is_ready(&self) -> bool {
        self.latest.borrow().ready
    }

    /// Waits until a new snapshot is published; `false` once the writer is gone.
    pub async fn changed(&mut self) -> bool {
        self.latest.changed().await.is_ok()
    }
}

impl Default for Writer {
    fn default() -> Self {
        Writer::new()
    }
}

impl Writer {
    /// An empty store, not ready.
    pub fn new() -> Writer {
        let current = Arc::new(Snapshot::default());
        let (publish, _) = watch::channel(current.clone());
        Writer {
            current,
            publish,
            previous: BTreeMap::new(),
            messages: Messages::default(),
        }
    }

    /// Continues from before a restart: `previous` holds each workspace's last recorded status
    /// and when it began. A workspace first seen in that status keeps that `since` and makes no
    /// transition; one first seen in another status makes a transition from it.
    pub fn resume(&mut self, previous: BTreeMap<Key, (Status, DateTime<Utc>)>) {
        self.previous = previous;
    }

    /// Forgets what was known from before the restart of the workspaces `keep` says no: they are
    /// not this store's (another shard's), so they never vanish from it.
    pub fn retain_previous(&mut self, mut keep: impl FnMut(&Key) -> bool) {
        self.previous.retain(|key, _| keep(key));
    }

    /// The workspaces known from before the restart that no source has found since: vanished
    /// at `now`. Called once every source has finished its first scan.
    pub fn unseen(&mut self, now: DateTime<Utc>) -> Applied {
        let transitions = std::mem::take(&mut self.previous)
            .into_iter()
            .map(|(key, (status, _))| Transition {
                at: now,
                since: now,
                id: crate::workspace::workspace_id(&key.0, &key.1, &key.2),
                key,
                from: Some(status),
                to: None,
                reasons: Vec::new(),
            })
            .collect();
        Applied {
            transitions,
            new_errors: Vec::new(),
        }
    }

    /// A new reader of this store.
    pub fn reader(&self) -> Reader {
        Reader {
            latest: self.publish.subscribe(),
        }
    }

    /// The snapshot last published.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.clone()
    }

    fn publish(&mut self, next: Snapshot) {
        self.current = Arc::new(next);
        self.publish.send_replace(self.current.clone());
    }

    /// Marks the store ready (the first full scan is done).
    pub fn set_ready(&mut self) {
        if !self.current.ready {
            let mut next = (*self.current).clone();
            next.ready = true;
            self.publish(next);
        }
    }

    /// Records whether a root can be read; publishes only a change.
    pub fn set_root_up(&mut self, root: &str, up: bool) {
        if self.current.roots.get(root) != Some(&up) {
            let mut next = (*self.current).clone();
            next.roots.insert(root.to_owned(), up);
            self.publish(next);
        }
    }

    /// Replaces everything of `update.root` under `update.scope`: workspaces found are updated or
    /// added, workspaces in scope that were not found are removed, and the scope's problems are
    /// replaced. The next snapshot is built aside and published whole.
    pub fn apply(&mut self, update: Update) -> Applied {
        let now = update.at;
        // What the snapshot keeps is allocated here, first and together: the readings were built
        // on the reading threads between the buffers of the files they came from, and a small
        // record kept there would hold a page of freed buffers resident.
        let mut update = update;
        let mut compacted: Vec<(Key, Workspace)> = std::mem::take(&mut update.workspaces)
            .into_iter()
            .map(|ws| (ws.key(), kept::keeping(|| kept_copy(&ws, &mut self.messages))))
            .collect();
        // In key order, each workspace once: a batch that names one twice means its last reading.
        compacted.sort_by(|a, b| a.0.cmp(&b.0));
        compacted.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        let mut next = (*self.current).clone();
        let workspaces = &mut Arc::make_mut(&mut next.workspaces).entries;
        let mut applied = Applied::default();
        let in_scope = |root: &str, path: &str| root == update.root && update.scope.covers(path);
        let found = |ws: &Workspace| {
            compacted
                .binary_search_by(|(key, _)| (key.0.as_str(), key.1.as_str(), key.2.as_str()).cmp(&order(ws)))
                .is_ok()
        };
        workspaces.retain(|old| {
            let ws = &old.workspace;
            if !in_scope(&ws.root, &ws.path) || found(ws) {
                return true;
            }
            applied.transitions.push(Transition {
                at: now,
                since: now,
                id: ws.id.clone(),
                key: ws.key(),
                from: Some(ws.verdict.status),
                to: None,
                reasons: Vec::new(),
            });
            false
        });
        next.problems.retain(|(root, path), _| !in_scope(root, path));
        for problem in update.problems {
            next.problems
                .insert((problem.root.clone(), problem.path.clone()), problem);
        }
        let mut added = Vec::new();
        let mut list = Workspaces {
            entries: std::mem::take(workspaces),
        };
        for (key, ws) in compacted {
            let at = list.find(&key);
            let old = at.ok().map(|at| &list.entries[at]);
            let prior = match old {
                Some(_) => None,
                None => self.previous.remove(&key),
            };
            let from = old.map(|o| o.workspace.verdict.status).or(prior.map(|p| p.0));
            let since = match (old, prior) {
                (Some(old), _) if old.workspace.verdict.status == ws.verdict.status => old.since,
                (None, Some((status, since))) if status == ws.verdict.status => since,
                (Some(_), _) | (None, Some(_)) => now,
                (None, None) => ws.verdict.since.unwrap_or(now).min(now),
            };
            if from != Some(ws.verdict.status) {
                applied.transitions.push(Transition {
                    at: now,
                    since,
                    key,
                    id: ws.id.clone(),
                    from,
                    to: Some(ws.verdict.status),
                    reasons: ws.verdict.reasons.iter().map(|r| r.code).collect(),
                });
            }
            let before = old.map(|o| artifact_errors(&o.workspace)).unwrap_or_default();
            for (path, kind) in artifact_errors(&ws) {
                if !before.contains(&(path.clone(), kind)) {
                    applied.new_errors.push(ArtifactError {
                        root: ws.root.clone(),
                        path,
                        kind,
                    });
                }
            }
            let entry = kept::keeping(|| Arc::new(Entry { workspace: ws, since }));
            match at {
                Ok(at) => list.entries[at] = entry,
                Err(_) => added.push(entry),
            }
        }
        if !added.is_empty() {
            list.entries.append(&mut added);
            list.entries
                .sort_by(|a, b| order(&a.workspace).cmp(&order(&b.workspace)));
        }
        *workspaces = list.entries;
        self.messages.sweep();
        next.updated_at = Some(now);
        if update.full {
            next.last_full_scan = Some(now);
        }
        self.publish(next);
        self.compact_when_sparse();
        applied
    }

    /// Copies every kept record again once kept memory holds more than twice what is alive in it
    /// (and a MiB): records replaced one at a time over hours leave chunks that a few records still
    /// alive in them keep resident, and the fresh copies fill chunks of their own, in order
    /// (`kept`). The snapshot published says the same as the one before. The copying costs what the
    /// batches since the last one freed, at least: as much as is alive.
    fn compact_when_sparse(&mut self) {
        if kept::held() <= 2 * kept::alive() + (1 << 20) {
            return;
        }
        let mut next = (*self.current).clone();
        let list = Arc::make_mut(&mut next.workspaces);
        let mut messages = Messages::default();
        kept::keeping(|| {
            for entry in &mut list.entries {
                *entry = Arc::new(Entry {
                    workspace: kept_copy(&entry.workspace, &mut messages),
                    since: entry.since,
                });
            }
        });
        self.messages = messages;
        self.publish(next);
    }
}

/// A copy of `ws` that shares nothing with it: the parsed state too is copied (once, where the
/// evidence and the verdict share it), so no part of what the store keeps stays where the
/// reading thread put it. Its reason messages are the store's shared ones.
fn kept_copy(ws: &Workspace, messages: &mut Messages) -> Workspace {
    let mut copy = ws.clone();
    for reason in &mut copy.verdict.reasons {
        messages.share(&mut reason.message);
    }
    let mut copied: Vec<(*const StateMeta, Arc<StateMeta>)> = Vec::new();
    let mut own = |meta: &mut Arc<StateMeta>| {
        let read = Arc::as_ptr(meta);
        let fresh = match copied.iter().find(|(at, _)| *at == read) {
            Some((_, fresh)) => fresh.clone(),
            None => {
                let fresh = Arc::new(StateMeta::clone(meta));
                copied.push((read, fresh.clone()));
                fresh
            }
        };
        *meta = fresh;
    };
    if let Some(state) = &mut copy.evidence.state
        && let StateReading::Parsed(meta) = &mut state.content
    {
        own(meta);
    }
    if let Some(meta) = &mut copy.evidence.previous_state {
        own(meta);
    }
    if let Some(meta) = &mut copy.verdict.state {
        own(meta);
    }
    copy
}

/// The unreadable artifacts of a workspace, as (path, kind).
fn artifact_errors(ws: &Workspace) -> BTreeSet<(String, &'static str)> {
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
