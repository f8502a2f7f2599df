//! The status history: every transition of every workspace in an embedded SQLite database in the
//! data directory, so that `status_since` and the timeline survive restarts and a feed client can
//! resume after the last event it saw.
//!
//! Layout:
//! - `dir`: which data directory (flag, systemd, XDG, home), as a pure function.
//! - `error`: what can go wrong, one line each, naming the file.
//! - `schema`: opening the file, its checks and the migrations (`PRAGMA user_version`).
//! - `db`: the writer ([`History`]): recording batches, retention, what a restart needs.
//! - `query`: the readings (per workspace, all with filters, after an event id) and [`Reader`].
//! - `codec`: statuses, reason codes and times as they are stored.
//!
//! Only ids, paths, statuses, reason codes and times are stored: nothing from a state or plan
//! reaches the database, by construction of [`Transition`].

mod codec;
mod db;
mod dir;
mod error;
mod query;
mod schema;

#[cfg(test)]
mod tests;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{ReasonCode, Status};

pub use db::{Edge, History, Key};
pub use dir::{DirSources, data_dir, resolve_data_dir};
pub use error::Error;
pub use query::{Filter, Reader};
pub use schema::{DATABASE_FILE, LOCK_FILE, SCHEMA_VERSION};

/// A change of one workspace's status, as given to [`History::record`]. `from: None` is a
/// workspace that appeared, `to: None` one that vanished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub at: DateTime<Utc>,
    /// The root's label, the path relative to it, the CLI workspace name (the store's key).
    pub root: String,
    pub path: String,
    pub workspace: String,
    /// The workspace's id (as in `/api/v1/workspaces/{id}`).
    pub id: String,
    pub from: Option<Status>,
    pub to: Option<Status>,
    /// The stable codes of the reasons of the new status.
    pub reasons: Vec<ReasonCode>,
}

/// A transition as stored, with its event id: monotonic, never reused (also after pruning), the
/// `id:` of the feed and what `Last-Event-ID` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub event_id: u64,
    pub transition: Transition,
}

/// How [`History::open`] behaves.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Transitions older than this are pruned (`--history-retention`).
    pub retention: Duration,
    /// When a commit reaches the disk; see [`Durability`].
    pub durability: Durability,
}

/// `PRAGMA synchronous` in WAL mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is flushed to the disk before `record` returns: a committed batch survives a
    /// killed process and a power loss. The default.
    Full,
    /// A commit is in the operating system's hands when `record` returns: it survives a killed
    /// process but not a power loss. For measurements.
    Normal,
}

/// The default of `--history-retention`.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// How often the daemon should call [`History::prune`] besides at open.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Rows deleted per transaction when pruning, so that a large backlog never holds the writer long.
pub const PRUNE_BATCH: usize = 5000;

/// The most rows one reading returns, whatever `limit` asks.
pub const MAX_LIMIT: usize = 10_000;

impl Default for Options {
    fn default() -> Options {
        Options {
            retention: DEFAULT_RETENTION,
            durability: Durability::Full,
        }
    }
}
