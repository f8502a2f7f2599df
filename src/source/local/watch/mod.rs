//! The watcher: the local source of the daemon. A first full scan, then every change, goes to a
//! `Sink` (the daemon's store writer) as one batch; the watcher never sees the store itself.
//!
//! File events are hints, never facts: a changed path is mapped to the workspace directory it
//! belongs to, and that directory alone is read again once it has been quiet for a moment (so a
//! burst of writes becomes one read). Some changes make no event at all (a killed apply releases
//! its OS lock and writes nothing; a lock ages past the stale limit): held locks are re-checked
//! every few seconds. A periodic full rescan is the safety net, and roots that are missing, or
//! deleted and recreated, are picked up.

mod hint;
#[cfg(target_os = "linux")]
mod inotify;
mod locks;
mod roots;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use chrono::Utc;
use notify::event::{EventKind, ModifyKind};
use rayon::prelude::*;

use self::hint::{Hint, hint_for, outermost, relevant, root_of};
use self::roots::{Events, Watchers};
use super::Root;
use super::discover::{self, discover_subtree, is_workspace_dir, relative};
use super::scan::{Scanner, settle, settling, walk_problem};
use crate::telemetry::Telemetry;
use crate::workspace::{Key, Known, ScanKind, ScanProblem, Scope, Sink, Update, Workspace, is_within};

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

struct Pending {
    first: Instant,
    last: Instant,
}

/// The watcher's state, on its own thread.
pub struct Watch {
    pub roots: Vec<Root>,
    pub scanner: Scanner,
    pub telemetry: Telemetry,
    pub timing: Timing,
    pub stop: Arc<AtomicBool>,
}

type Receiver = mpsc::Receiver<notify::Result<notify::Event>>;

impl Watch {
    /// Runs until `stop` is set: first full scan, then watching. Every batch goes to `sink`.
    pub fn run(self, sink: &mut dyn Sink) {
        keep_large_buffers_out_of_the_heap();
        let (tx, rx) = mpsc::channel();
        let mut watchers = Watchers::new();
        for root in &self.roots {
            self.ensure_watched(sink, root, &tx, &mut watchers, false);
        }
        self.full_scan(sink);
        self.settle_first_scan(sink);
        sink.ready();
        tracing::info!(workspaces = sink.known().workspaces().count(), "first full scan done");
        // Settling and readiness published further snapshots, and the first scan's history and
        // transitions are written by now: hand back what they freed too.
        release_free_memory();
        self.watch_loop(sink, &rx, &tx, &mut watchers);
    }

    fn watch_loop(&self, sink: &mut dyn Sink, rx: &Receiver, tx: &Events, watchers: &mut Watchers) {
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
                self.process(sink, due);
            }
            if now >= next_lock_check {
                self.recheck_locks(sink);
                next_lock_check = now + self.timing.lock_check;
            }
            if now >= next_root_check {
                for root in &self.roots {
                    self.ensure_watched(sink, root, tx, watchers, true);
                }
                next_root_check = now + self.timing.root_check;
            }
            if let Some(at) = next_resync
                && now >= at
            {
                self.full_scan(sink);
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
            let Some((index, root)) = root_of(&self.roots, path) else {
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
    fn process(&self, sink: &mut dyn Sink, due: Vec<(usize, Hint)>) {
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
                let problems = problems.into_iter().map(|p| walk_problem(root, p)).collect();
                self.read_into(sink, root, Scope::Subtree(subtree.clone()), found, problems, false);
            }
            let dirs: BTreeSet<String> = dirs
                .into_iter()
                .filter(|d| !subtrees.iter().any(|s| is_within(d, s)))
                .collect();
            if !dirs.is_empty() {
                let present: Vec<String> = dirs
                    .iter()
                    .filter(|d| is_workspace_dir(&discover::directory(&root.path, d)))
                    .cloned()
                    .collect();
                self.read_into(sink, root, Scope::Dirs(dirs), present, Vec::new(), false);
            }
        }
        self.telemetry
            .scan_done(ScanKind::Incremental.as_str(), started.elapsed().as_secs_f64());
    }

    /// Reads `dirs` of `root` (in parallel) and sends the readings for `scope` to the sink. The
    /// previous readings are asked for once, for the whole batch.
    fn read_into(
        &self,
        sink: &mut dyn Sink,
        root: &Root,
        scope: Scope,
        dirs: Vec<String>,
        mut problems: Vec<ScanProblem>,
        full: bool,
    ) {
        let now = Utc::now();
        let known = sink.known();
        let read: Vec<Result<Vec<Workspace>, ScanProblem>> = dirs
            .par_iter()
            .map(|rel| {
                let previous = |name: &str| previous_state(&*known, &root.label, rel, name);
                self.scanner.read_dir(root, rel, now, &previous)
            })
            .collect();
        let mut workspaces = Vec::new();
        for item in read {
            match item {
                Ok(mut found) => workspaces.append(&mut found),
                Err(problem) => problems.push(problem),
            }
        }
        sink.send(Update {
            root: root.label.clone(),
            scope,
            workspaces,
            problems,
            full,
            at: now,
        });
    }

    /// Reads exactly these directories of `root` again.
    fn reread(&self, sink: &mut dyn Sink, root: &Root, dirs: BTreeSet<String>) {
        self.read_into(
            sink,
            root,
            Scope::Dirs(dirs.clone()),
            dirs.into_iter().collect(),
            Vec::new(),
            false,
        );
    }

    /// A state caught mid-write at start-up has no earlier reading to fall back on: wait until it
    /// has settled before saying ready, rather than show a guess.
    fn settle_first_scan(&self, sink: &mut dyn Sink) {
        let stop = || self.stop.load(Ordering::Acquire);
        settle(
            self.scanner.policy.settle_time,
            &stop,
            sink,
            |sink| settling(sink.known().workspaces()),
            |sink, dirs| {
                for (label, dirs) in dirs {
                    if let Some(root) = self.roots.iter().find(|r| r.label == label) {
                        self.reread(sink, root, dirs);
                    }
                }
            },
        );
    }

    /// Scans every root from scratch.
    fn full_scan(&self, sink: &mut dyn Sink) {
        for root in &self.roots {
            let started = Instant::now();
            match discover::discover(&root.path, &self.scanner.discover) {
                Ok((dirs, problems)) => {
                    let problems = problems.into_iter().map(|p| walk_problem(root, p)).collect();
                    self.read_into(sink, root, Scope::Subtree(".".into()), dirs, problems, true);
                }
                Err(err) => {
                    tracing::warn!(root = %root.label, error = %err, "root cannot be scanned; it will be picked up when it appears");
                    sink.root_up(&root.label, false);
                    sink.send(Update::cleared(&root.label, Utc::now()));
                }
            }
            self.telemetry
                .scan_done(ScanKind::Full.as_str(), started.elapsed().as_secs_f64());
        }
        // Every reading thread holds the buffer of the largest file it read: give them back
        // before the allocator's free memory is.
        rayon::broadcast(|_| super::read::release_buffer());
        release_free_memory();
    }
}

/// Makes the C allocator serve every buffer over 64 KiB (a state being read and parsed, a reading
/// thread's buffer, a batch's list of workspaces) from its own mapping, handed back to the system
/// when freed. By default glibc raises that threshold as large blocks are freed, and the buffers
/// of the states read afterwards, between the small records the daemon keeps, fragment its heap
/// for good.
fn keep_large_buffers_out_of_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 64 << 10);
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

/// The last good state reading of a workspace, kept while its state file settles.
fn previous_state(
    known: &dyn Known,
    root: &str,
    path: &str,
    name: &str,
) -> Option<Arc<crate::artifact::state::StateMeta>> {
    let key: Key = (root.to_owned(), path.to_owned(), name.to_owned());
    known.workspace(&key)?.verdict.state.clone()
}
