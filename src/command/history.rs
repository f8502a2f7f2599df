//! `serve`'s history: opened at start-up (what the store continues from, where the counter of
//! transitions starts), then recorded on a thread of its own: the writer's loop sends each batch's
//! counts on the feed, hands its transitions over ([`Handoff`]) and goes on; the history's thread
//! writes what is queued in one transaction, in order, and only then sends those transitions on
//! the feed; pruned on the history's schedule.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::config::HistoryConfig;
use crate::history::{self, History, Options, PRUNE_EVERY};
use crate::http::history::{FeedEvent, HistoryState};
use crate::model::Status;
use crate::report::{self, Counts, SummaryDocument};
use crate::store::{self, Applied};
use crate::telemetry::Telemetry;
use crate::workspace::Key;

/// The history, open, with what the store and the HTTP side need of it.
pub struct Opened {
    pub recorder: Recorder,
    pub http: Arc<HistoryState>,
    /// Each workspace's last recorded status and when it began (for `Writer::resume`).
    pub previous: BTreeMap<Key, (Status, DateTime<Utc>)>,
}

/// Opens the history of `config` (`None` with `--history false`), and starts the counter of
/// transitions from its totals. Any error is one line naming the file.
pub fn open(config: &HistoryConfig, telemetry: &Telemetry) -> Result<Option<Opened>, history::Error> {
    if !config.enabled {
        return Ok(None);
    }
    let dir = history::data_dir(config.data_dir.as_deref())?;
    let options = Options {
        retention: config.retention,
        ..Options::default()
    };
    let history = History::open(&dir, options, Utc::now())?;
    let previous = history
        .latest()?
        .into_iter()
        .filter_map(|(key, stored)| stored.transition.to.map(|to| (key, (to, stored.transition.at))))
        .collect();
    for ((from, to), count) in history.totals()? {
        telemetry.transitions(from, to, count);
    }
    let http = Arc::new(HistoryState::new(history.reader()?));
    tracing::info!(database = %history.path().display(), "history opened");
    Ok(Some(Opened {
        recorder: Recorder {
            history,
            http: http.clone(),
            next_prune: Instant::now() + PRUNE_EVERY,
        },
        http,
        previous,
    }))
}

/// The history's thread's side: records and publishes.
pub struct Recorder {
    history: History,
    http: Arc<HistoryState>,
    next_prune: Instant,
}

/// The transitions of one applied batch.
type Entry = Vec<history::Transition>;

/// How far the history's thread has come: batches are numbered from 1 as they are handed over.
#[derive(Default)]
struct Progress {
    handed: AtomicU64,
    /// The last batch written (or given up on, when its write failed) and sent on the feed.
    done: Mutex<u64>,
    changed: Condvar,
}

impl Progress {
    /// Waits until batch `number` is done, at most `limit`; whether it is.
    fn wait_for(&self, number: u64, limit: Duration) -> bool {
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let (done, _) = self
            .changed
            .wait_timeout_while(done, limit, |done| *done < number)
            .unwrap_or_else(|e| e.into_inner());
        *done >= number
    }

    fn finished(&self, number: u64) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = number;
        self.changed.notify_all();
    }
}

/// The writer's side: hands each batch to the history's thread without waiting for its commit,
/// so that a slow `fsync` never holds back the next batch.
pub struct Handoff {
    queue: mpsc::Sender<(u64, Entry)>,
    progress: Arc<Progress>,
    http: Arc<HistoryState>,
}

/// What `serve` keeps to let the history finish at shutdown.
pub struct Drain {
    progress: Arc<Progress>,
}

/// Starts the history's thread.
pub fn spawn(recorder: Recorder) -> std::io::Result<(Handoff, Drain)> {
    let (queue, queued) = mpsc::channel();
    let progress = Arc::new(Progress::default());
    let http = recorder.http.clone();
    std::thread::Builder::new().name("iacwatch-history".into()).spawn({
        let progress = progress.clone();
        move || recorder.run(&queued, &progress)
    })?;
    let drain = Drain {
        progress: progress.clone(),
    };
    Ok((Handoff { queue, progress, http }, drain))
}

impl Handoff {
    /// Sends the counts of `snapshot` (the store after the batch) on the feed at once: they say
    /// what the API already shows. Hands the batch's transitions over, to be sent once committed;
    /// returns the number of the last batch handed over, for [`Handoff::wait`].
    pub fn send(&mut self, applied: &Applied, snapshot: &store::Snapshot) -> u64 {
        let counts = Counts::of(snapshot.workspaces.values().map(|e| e.workspace.verdict.status));
        self.http.send(FeedEvent::summary(&SummaryDocument {
            generated_at: report::rfc3339(snapshot.updated_at.unwrap_or_else(Utc::now)),
            total: snapshot.workspaces.len() as u64,
            counts,
        }));
        if applied.transitions.is_empty() {
            return self.progress.handed.load(Ordering::Acquire);
        }
        let entry: Entry = applied.transitions.iter().map(convert).collect();
        let number = self.progress.handed.fetch_add(1, Ordering::AcqRel) + 1;
        if self.queue.send((number, entry)).is_err() {
            // The thread is gone (it never panics on a failed write): nothing will wait for it.
            self.progress.finished(number);
        }
        number
    }

    /// Waits until batch `number` is committed and sent on the feed, at most `limit`.
    pub fn wait(&self, number: u64, limit: Duration) -> bool {
        self.progress.wait_for(number, limit)
    }
}

impl Drain {
    /// Waits until every batch handed over so far is written, at most `limit`; how many are not.
    pub fn drain(&self, limit: Duration) -> u64 {
        let handed = self.progress.handed.load(Ordering::Acquire);
        self.progress.wait_for(handed, limit);
        let done = *self.progress.done.lock().unwrap_or_else(|e| e.into_inner());
        handed.saturating_sub(done)
    }
}

impl Recorder {
    /// Writes what is queued, a transaction at a time, until the writer's side is gone.
    fn run(mut self, queued: &mpsc::Receiver<(u64, Entry)>, progress: &Progress) {
        while let Ok((mut last, mut batch)) = queued.recv() {
            // What queued up while the last commit took its time goes in one transaction.
            for (number, more) in queued.try_iter() {
                last = number;
                batch.extend(more);
            }
            self.write(&batch);
            progress.finished(last);
        }
    }

    /// Records the transitions of several batches in one transaction, in order, then sends them
    /// on the feed: a feed client never sees a transition that a crash could still lose.
    fn write(&mut self, batch: &[history::Transition]) {
        let stored = match self.history.record(batch) {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(error = %e, kind = e.kind(), "recording transitions failed");
                Vec::new()
            }
        };
        for s in &stored {
            self.http.send(FeedEvent::transition(s));
        }
        if Instant::now() >= self.next_prune {
            self.next_prune = Instant::now() + PRUNE_EVERY;
            if let Err(e) = self.history.prune(Utc::now()) {
                tracing::error!(error = %e, kind = e.kind(), "pruning the history failed");
            }
        }
    }
}

fn convert(t: &store::Transition) -> history::Transition {
    let (root, path, workspace) = t.key.clone();
    history::Transition {
        // A workspace's first transition carries the time of its evidence.
        at: if t.from.is_none() { t.since } else { t.at },
        root,
        path,
        workspace,
        id: t.id.clone(),
        from: t.from,
        to: t.to,
        reasons: t.reasons.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Transition, Writer};

    fn appeared(path: &str) -> Applied {
        let now = Utc::now();
        Applied {
            transitions: vec![Transition {
                at: now,
                since: now,
                key: ("root".into(), path.into(), "default".into()),
                id: format!("id-{path}"),
                from: None,
                to: Some(Status::Active),
                reasons: Vec::new(),
            }],
            new_errors: Vec::new(),
        }
    }

    #[test]
    fn the_writer_hands_over_without_waiting_and_held_back_batches_are_recorded_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let config = HistoryConfig {
            enabled: true,
            data_dir: Some(dir.path().to_owned()),
            retention: history::DEFAULT_RETENTION,
        };
        let opened = open(&config, &Telemetry::default()).unwrap().unwrap();
        let (mut handoff, drain) = spawn(opened.recorder).unwrap();
        // Another connection holds the write lock: no commit can go through.
        let lock = rusqlite::Connection::open(dir.path().join(history::DATABASE_FILE)).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        let snapshot = Writer::new().snapshot();
        let first = handoff.send(&appeared("a"), &snapshot);
        let second = handoff.send(&appeared("b"), &snapshot);
        // A batch without transitions is nothing to wait for but what came before it.
        assert_eq!(handoff.send(&Applied::default(), &snapshot), second);
        assert_eq!((first, second), (1, 2));
        assert!(
            !handoff.wait(first, Duration::from_millis(200)),
            "committed through a held lock"
        );
        lock.execute_batch("ROLLBACK").unwrap();
        assert!(
            handoff.wait(second, Duration::from_secs(4)),
            "not committed once the lock is gone"
        );
        assert_eq!(drain.drain(Duration::from_secs(1)), 0);
        let paths: String = lock
            .query_row(
                "SELECT group_concat(path) FROM (SELECT path FROM transitions ORDER BY event_id)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(paths, "a,b");
    }
}
