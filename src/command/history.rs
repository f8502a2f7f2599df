//! `serve`'s history: opened at start-up (what the store continues from, where the counter of
//! transitions starts), then every batch's transitions recorded in one transaction and only then
//! sent on the feed, pruned on the history's schedule.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

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

/// The writer's side: records and publishes.
pub struct Recorder {
    history: History,
    http: Arc<HistoryState>,
    next_prune: Instant,
}

impl Recorder {
    /// Records a batch's transitions, then sends them and the counts on the feed.
    pub fn after(&mut self, applied: &Applied, snapshot: &store::Snapshot) {
        if !applied.transitions.is_empty() {
            let batch: Vec<history::Transition> = applied.transitions.iter().map(convert).collect();
            match self.history.record(&batch) {
                Ok(stored) => {
                    for s in &stored {
                        self.http.send(FeedEvent::transition(s));
                    }
                }
                Err(e) => tracing::error!(error = %e, kind = e.kind(), "recording transitions failed"),
            }
        }
        let counts = Counts::of(snapshot.workspaces.values().map(|e| e.workspace.verdict.status));
        self.http.send(FeedEvent::summary(&SummaryDocument {
            generated_at: report::rfc3339(snapshot.updated_at.unwrap_or_else(Utc::now)),
            total: snapshot.workspaces.len() as u64,
            counts,
        }));
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
