//! The watcher: keeps the store current after the first full scan.
//!
//! File events are hints, never facts: a changed path is mapped to the workspace directory it
//! belongs to, and that directory alone is read again once it has been quiet for a moment (so a
//! burst of writes becomes one read). Some changes make no event at all (a killed apply releases
//! its OS lock and writes nothing; a lock ages past the stale limit): held locks are re-checked
//! every few seconds. A periodic full rescan is the safety net, and roots that are missing, or
//! deleted and recreated, are picked up.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use chrono::Utc;
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};
use rayon::prelude::*;

use crate::classify::classify;
use crate::discover::{PRUNED, discover_subtree, is_workspace_dir, relative};
use crate::model::ReasonCode;
use crate::scan::{Root, ScanProblem, Scanner, Workspace};
use crate::store::{Scope, Store, Update};
use crate::telemetry::Telemetry;

/// Timing of the watcher.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Quiet time after the last event in a directory before it is read again.
    pub quiet: Duration,
    /// How often held locks and time-bound verdicts are re-checked.
    pub lock_check: Duration,
    /// Full rescan interval; `None` for never.
    pub resync: Option<Duration>,
    /// Poll instead of file events, at this interval.
    pub poll: Option<Duration>,
    /// How often missing or replaced roots are looked for.
    pub root_check: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            quiet: Duration::from_millis(200),
            lock_check: Duration::from_secs(2),
            resync: Some(Duration::from_secs(300)),
            poll: None,
            root_check: Duration::from_secs(2),
        }
    }
}

/// What needs reading again.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Hint {
    /// One directory (relative to its root).
    Dir(String),
    /// A directory and everything below it: it appeared, vanished or moved.
    Subtree(String),
}

/// Maps a changed path to what must be read again; `None` for paths that never matter.
fn hint_for(root: &Path, path: &Path) -> Vec<Hint> {
    let rel = relative(root, path);
    if rel == "." {
        return vec![Hint::Subtree(".".into())];
    }
    let parts: Vec<&str> = rel.split('/').collect();
    if let Some(i) = parts.iter().position(|p| PRUNED.contains(p)) {
        if matches!(parts[i], ".git" | "node_modules") {
            return Vec::new();
        }
        let dir = if i == 0 { ".".to_owned() } else { parts[..i].join("/") };
        return vec![Hint::Dir(dir)];
    }
    let parent = if parts.len() == 1 {
        ".".to_owned()
    } else {
        parts[..parts.len() - 1].join("/")
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_dir() => vec![Hint::Dir(parent)],
        // A directory that appeared, or a path that vanished (it may have been a directory).
        _ => vec![Hint::Dir(parent), Hint::Subtree(rel)],
    }
}

/// A file event worth acting on (not our own reads).
fn relevant(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

struct Pending {
    first: Instant,
    last: Instant,
}

/// The watcher's state, on its own thread.
pub struct Watch {
    pub roots: Vec<Root>,
    pub scanner: Scanner<'static>,
    pub store: Arc<Store>,
    pub telemetry: Telemetry,
    pub timing: Timing,
    pub stop: Arc<AtomicBool>,
}

/// The watcher of each root, with the root's (device, inode) when it was set up.
/// A root's identity: device, inode and birth time (a root deleted and made again often gets the
/// same inode number back at once; only the birth time tells the new directory from the old).
type Identity = (u64, u64, Option<std::time::SystemTime>);
type Watchers = HashMap<String, (Box<dyn Watcher + Send>, Identity)>;

type Events = mpsc::Receiver<notify::Result<notify::Event>>;

impl Watch {
    /// Runs until `stop` is set: first full scan, then watching.
    pub fn run(self) {
        keep_large_buffers_out_of_the_heap();
        let (tx, rx) = mpsc::channel();
        let mut watchers = Watchers::new();
        for root in &self.roots {
            self.ensure_watched(root, &tx, &mut watchers, false);
        }
        self.full_scan();
        self.settle_first_scan();
        self.store.set_ready();
        tracing::info!(
            workspaces = self.store.snapshot().workspaces.len(),
            "first full scan done"
        );
        self.watch_loop(&rx, &tx, &mut watchers);
    }

    fn watch_loop(&self, rx: &Events, tx: &mpsc::Sender<notify::Result<notify::Event>>, watchers: &mut Watchers) {
        let mut pending: BTreeMap<(usize, Hint), Pending> = BTreeMap::new();
        let mut next_lock_check = Instant::now() + self.timing.lock_check;
        let mut next_root_check = Instant::now() + self.timing.root_check;
        let mut next_resync = self.timing.resync.map(|d| Instant::now() + d);
        let max_wait = self.timing.quiet * 5;
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            let due_pending = pending
                .values()
                .map(|p| (p.last + self.timing.quiet).min(p.first + max_wait))
                .min();
            let wake = [Some(next_lock_check), Some(next_root_check), next_resync, due_pending]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + Duration::from_millis(500))
                .min(now + Duration::from_millis(500));
            let mut lost = BTreeSet::new();
            match rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(event) => {
                    self.take(event, &mut pending, &mut lost);
                    // Drain what else is queued before doing any work.
                    while let Ok(event) = rx.try_recv() {
                        self.take(event, &mut pending, &mut lost);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            // A root removed or renamed takes its watch with it, even if a new directory takes its
            // place (and its inode number) at once: set the watch up again right away.
            for index in lost {
                watchers.remove(&self.roots[index].label);
                next_root_check = now;
            }
            let due: Vec<(usize, Hint)> = pending
                .iter()
                .filter(|(_, p)| now >= p.last + self.timing.quiet || now >= p.first + max_wait)
                .map(|(k, _)| k.clone())
                .collect();
            if !due.is_empty() {
                for key in &due {
                    pending.remove(key);
                }
                self.process(due);
            }
            if now >= next_lock_check {
                self.recheck_locks();
                next_lock_check = now + self.timing.lock_check;
            }
            if now >= next_root_check {
                for root in &self.roots {
                    self.ensure_watched(root, tx, watchers, true);
                }
                next_root_check = now + self.timing.root_check;
            }
            if let Some(at) = next_resync
                && now >= at
            {
                self.full_scan();
                next_resync = self.timing.resync.map(|d| now + d);
            }
        }
    }

    fn take(
        &self,
        event: notify::Result<notify::Event>,
        pending: &mut BTreeMap<(usize, Hint), Pending>,
        lost: &mut BTreeSet<usize>,
    ) {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                // Lost events (queue overflow) and the like: the next full rescan repairs.
                tracing::warn!(error = %err, "file watching reported an error; a full rescan will follow");
                for (i, _) in self.roots.iter().enumerate() {
                    let now = Instant::now();
                    pending
                        .entry((i, Hint::Subtree(".".into())))
                        .or_insert(Pending { first: now, last: now });
                }
                return;
            }
        };
        if !relevant(&event.kind) {
            return;
        }
        self.telemetry.watch_events.inc();
        let now = Instant::now();
        for path in &event.paths {
            let Some((index, root)) = self
                .roots
                .iter()
                .enumerate()
                .filter(|(_, r)| path.starts_with(&r.path))
                .max_by_key(|(_, r)| r.path.as_os_str().len())
            else {
                continue;
            };
            if self.scanner.discover.exclude.is_match(relative(&root.path, path)) {
                continue;
            }
            if path == &root.path
                && matches!(
                    event.kind,
                    EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
                )
            {
                lost.insert(index);
            }
            for hint in hint_for(&root.path, path) {
                tracing::debug!(root = %root.label, ?hint, kind = ?event.kind, "file event");
                pending
                    .entry((index, hint))
                    .and_modify(|p| p.last = now)
                    .or_insert(Pending { first: now, last: now });
            }
        }
    }

    /// Reads again what the hints name, grouped by root.
    fn process(&self, due: Vec<(usize, Hint)>) {
        let started = Instant::now();
        let mut by_root: BTreeMap<usize, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
        for (index, hint) in due {
            let entry = by_root.entry(index).or_default();
            match hint {
                Hint::Dir(dir) => entry.0.insert(dir),
                Hint::Subtree(dir) => entry.1.insert(dir),
            };
        }
        for (index, (dirs, subtrees)) in by_root {
            let root = &self.roots[index];
            let subtrees = outermost(subtrees);
            for subtree in &subtrees {
                let (found, problems) = discover_subtree(&root.path, subtree, &self.scanner.discover);
                let problems = problems.into_iter().map(|p| ScanProblem::from_walk(root, p)).collect();
                self.read_into_store(root, Scope::Subtree(subtree.clone()), found, problems, false);
            }
            let dirs: BTreeSet<String> = dirs
                .into_iter()
                .filter(|d| !subtrees.iter().any(|s| crate::store::is_within(d, s)))
                .collect();
            if !dirs.is_empty() {
                let present: Vec<String> = dirs
                    .iter()
                    .filter(|d| is_workspace_dir(&crate::discover::directory(&root.path, d)))
                    .cloned()
                    .collect();
                self.read_into_store(root, Scope::Dirs(dirs), present, Vec::new(), false);
            }
        }
        self.telemetry.scan_done("incremental", started.elapsed().as_secs_f64());
    }

    /// Reads `dirs` of `root` (in parallel) and replaces `scope` in the store with the result.
    fn read_into_store(
        &self,
        root: &Root,
        scope: Scope,
        dirs: Vec<String>,
        mut problems: Vec<ScanProblem>,
        full: bool,
    ) {
        let now = Utc::now();
        let store = &self.store;
        let read: Vec<Result<Vec<Workspace>, ScanProblem>> = dirs
            .par_iter()
            .map(|rel| {
                self.scanner
                    .read_dir(root, rel, now, &|name| store.previous_state(&root.label, rel, name))
            })
            .collect();
        let mut workspaces = Vec::new();
        for item in read {
            match item {
                Ok(mut found) => workspaces.append(&mut found),
                Err(problem) => problems.push(problem),
            }
        }
        let applied = self.store.apply(
            Update {
                root: root.label.clone(),
                scope,
                workspaces,
                problems,
                full,
                log_new: !full || self.store.is_ready(),
            },
            now,
        );
        self.telemetry.artifact_errors(&applied.new_errors);
    }

    /// A state caught mid-write at start-up has no earlier reading to fall back on: wait until it
    /// has settled (a few seconds at most) before saying ready, rather than show a guess.
    fn settle_first_scan(&self) {
        let deadline = Instant::now() + self.scanner.policy.settle_time * 3;
        while Instant::now() < deadline && !self.stop.load(Ordering::Acquire) {
            let snapshot = self.store.snapshot();
            let settling: Vec<_> = snapshot
                .workspaces
                .values()
                .filter(|e| {
                    e.workspace
                        .verdict
                        .reasons
                        .iter()
                        .any(|r| r.code == ReasonCode::StateSettling)
                })
                .collect();
            let Some(wake) = settling.iter().filter_map(|e| e.workspace.verdict.recheck_at).min() else {
                return;
            };
            if let Ok(wait) = (wake - Utc::now()).to_std() {
                std::thread::sleep(
                    wait.min(deadline.saturating_duration_since(Instant::now())) + Duration::from_millis(20),
                );
            }
            let mut by_root: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
            for entry in settling {
                if let Some(index) = self.roots.iter().position(|r| r.label == entry.workspace.root) {
                    by_root.entry(index).or_default().insert(entry.workspace.path.clone());
                }
            }
            for (index, dirs) in by_root {
                self.read_into_store(
                    &self.roots[index],
                    Scope::Dirs(dirs.clone()),
                    dirs.into_iter().collect(),
                    Vec::new(),
                    false,
                );
            }
        }
    }

    /// Scans every root from scratch.
    fn full_scan(&self) {
        for root in &self.roots {
            let started = Instant::now();
            match crate::discover::discover(&root.path, &self.scanner.discover) {
                Ok((dirs, problems)) => {
                    let problems = problems.into_iter().map(|p| ScanProblem::from_walk(root, p)).collect();
                    self.read_into_store(root, Scope::Subtree(".".into()), dirs, problems, true);
                }
                Err(err) => {
                    tracing::warn!(root = %root.label, error = %err, "root cannot be scanned; it will be picked up when it appears");
                    self.store.clear_root(&root.label, Utc::now());
                }
            }
            self.telemetry.scan_done("full", started.elapsed().as_secs_f64());
        }
        release_free_memory();
    }

    /// Re-checks who holds each lock, and every verdict that may change with time alone; reads a
    /// directory again only when its state was caught mid-write.
    fn recheck_locks(&self) {
        let snapshot = self.store.snapshot();
        let now = Utc::now();
        let mut reread: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        let mut changed: BTreeMap<(usize, String), Vec<Workspace>> = BTreeMap::new();
        for entry in snapshot.workspaces.values() {
            let ws = &entry.workspace;
            let locked = ws.evidence.terraform_lock.is_some() || ws.evidence.pipeline_lock.is_some();
            let due = ws.verdict.recheck_at.is_some_and(|at| at <= now);
            if !locked && !due {
                continue;
            }
            let Some(index) = self.roots.iter().position(|r| r.label == ws.root) else {
                continue;
            };
            if due && ws.verdict.reasons.iter().any(|r| r.code == ReasonCode::StateSettling) {
                reread.entry(index).or_default().insert(ws.path.clone());
                continue;
            }
            let mut evidence = ws.evidence.clone();
            let root = &self.roots[index].path;
            if let Some(lock) = &mut evidence.terraform_lock {
                let state_file = root.join(&lock.path).with_file_name("terraform.tfstate");
                lock.content.holder = self.scanner.probe.os_lock(&state_file);
            }
            if let Some(lock) = &mut evidence.pipeline_lock
                && let Ok(content) = &lock.content.content
            {
                lock.content.holder = self.scanner.probe.process(content.host.as_deref(), content.pid);
            }
            let verdict = classify(&evidence, now, &self.scanner.policy);
            if verdict != ws.verdict {
                let mut updated = ws.clone();
                updated.evidence = evidence;
                updated.verdict = verdict;
                changed.entry((index, ws.path.clone())).or_default().push(updated);
            }
        }
        // A directory's workspaces are replaced together; keep the unchanged ones.
        let mut by_root: BTreeMap<usize, (BTreeSet<String>, Vec<Workspace>)> = BTreeMap::new();
        for ((index, path), updated) in changed {
            let group = by_root.entry(index).or_default();
            for entry in snapshot
                .workspaces
                .values()
                .filter(|e| e.workspace.root == self.roots[index].label && e.workspace.path == path)
            {
                let ws = updated
                    .iter()
                    .find(|u| u.name == entry.workspace.name)
                    .cloned()
                    .unwrap_or_else(|| entry.workspace.clone());
                group.1.push(ws);
            }
            group.0.insert(path);
        }
        for (index, (dirs, workspaces)) in by_root {
            self.store.apply(
                Update {
                    root: self.roots[index].label.clone(),
                    scope: Scope::Dirs(dirs),
                    workspaces,
                    problems: Vec::new(),
                    full: false,
                    log_new: true,
                },
                now,
            );
        }
        for (index, dirs) in reread {
            let root = &self.roots[index];
            self.read_into_store(
                root,
                Scope::Dirs(dirs.clone()),
                dirs.into_iter().collect(),
                Vec::new(),
                false,
            );
        }
    }

    /// Starts watching a root that exists and is not watched (or was replaced); forgets a root
    /// that vanished. `rescan` scans a root that (re)appeared.
    fn ensure_watched(
        &self,
        root: &Root,
        tx: &mpsc::Sender<notify::Result<notify::Event>>,
        watchers: &mut Watchers,
        rescan: bool,
    ) {
        let identity = std::fs::metadata(&root.path)
            .ok()
            .filter(|m| m.is_dir())
            .map(|m| (m.dev(), m.ino(), m.created().ok()));
        match (identity, watchers.get(&root.label).map(|w| w.1)) {
            (Some(now), Some(before)) if now == before => {}
            (Some(now), _) => {
                watchers.remove(&root.label);
                match self.start_watcher(&root.path, tx.clone()) {
                    Some(watcher) => {
                        watchers.insert(root.label.clone(), (watcher, now));
                    }
                    None => return,
                }
                if rescan {
                    tracing::info!(root = %root.label, "root appeared; scanning it");
                    let dirs = crate::discover::discover(&root.path, &self.scanner.discover)
                        .map(|d| d.0)
                        .unwrap_or_default();
                    self.read_into_store(root, Scope::Subtree(".".into()), dirs, Vec::new(), false);
                }
            }
            (None, Some(_)) => {
                tracing::warn!(root = %root.label, "root disappeared; its workspaces are gone until it comes back");
                watchers.remove(&root.label);
                self.store.clear_root(&root.label, Utc::now());
            }
            (None, None) => {}
        }
    }

    fn start_watcher(
        &self,
        path: &Path,
        tx: mpsc::Sender<notify::Result<notify::Event>>,
    ) -> Option<Box<dyn Watcher + Send>> {
        if let Some(interval) = self.timing.poll {
            return poll_watcher(path, tx, interval);
        }
        let mut watcher = match notify::recommended_watcher(tx.clone()) {
            Ok(watcher) => watcher,
            Err(err) => {
                tracing::warn!(error = %err, "file events are not available; polling instead");
                return poll_watcher(path, tx, Duration::from_secs(5));
            }
        };
        match watcher.watch(path, RecursiveMode::Recursive) {
            Ok(()) => Some(Box::new(watcher)),
            Err(err) if matches!(err.kind, notify::ErrorKind::MaxFilesWatch) => {
                tracing::error!(
                    root = %path.display(),
                    "the inotify watch limit is exhausted (fs.inotify.max_user_watches); polling this root every 5s \
                     instead. Raise the limit with: sysctl fs.inotify.max_user_watches=524288"
                );
                poll_watcher(path, tx, Duration::from_secs(5))
            }
            Err(err) => {
                tracing::warn!(root = %path.display(), error = %err, "cannot watch root; polling it instead");
                poll_watcher(path, tx, Duration::from_secs(5))
            }
        }
    }
}

fn poll_watcher(
    path: &Path,
    tx: mpsc::Sender<notify::Result<notify::Event>>,
    interval: Duration,
) -> Option<Box<dyn Watcher + Send>> {
    let config = notify::Config::default().with_poll_interval(interval);
    let mut watcher = notify::PollWatcher::new(tx, config).ok()?;
    match watcher.watch(path, RecursiveMode::Recursive) {
        Ok(()) => Some(Box::new(watcher)),
        Err(err) => {
            tracing::warn!(root = %path.display(), error = %err, "cannot poll root");
            None
        }
    }
}

/// Makes the C allocator serve every buffer over 1 MiB (a state being parsed) from its own mapping,
/// handed back to the system when freed. By default glibc raises that threshold as large blocks
/// are freed, and the states read afterwards fragment its heaps, which then never shrink.
fn keep_large_buffers_out_of_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Hands memory freed after a full scan (the buffers of large states) back to the system: the C
/// allocator otherwise keeps it, and the daemon's resident size would stay at its peak.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer; it only returns free pages of the allocator's own heaps.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Drops subtrees that lie inside another one of the set.
fn outermost(subtrees: BTreeSet<String>) -> Vec<String> {
    let all: Vec<String> = subtrees.into_iter().collect();
    all.iter()
        .filter(|s| !all.iter().any(|o| o != *s && crate::store::is_within(s, o)))
        .cloned()
        .collect()
}
