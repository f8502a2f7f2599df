//! The writer: one connection that records batches of transitions, prunes what is older than the
//! retention, and answers what a restart needs (the last transition of every workspace, the
//! totals per `from`/`to`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{TransactionBehavior, params};

use super::codec::{micros, reasons_text, status_of, status_text};
use super::query::{COLUMNS, Reader, stored_of};
use super::{Error, Options, PRUNE_BATCH, Stored, Transition, schema};
use crate::model::Status;

/// The store's key: root, path, CLI workspace name.
pub type Key = (String, String, String);

/// A transition's `from` and `to` (`None`: appeared, vanished), the labels of
/// `iacwatch_transitions_total`.
pub type Edge = (Option<Status>, Option<Status>);

/// A batch of at least this many transitions hands the connection's page cache back after its
/// commit.
const RELEASE_AFTER: usize = 256;

/// The history's one writer. Readings are on [`History::reads`], or on a [`Reader`] of its own
/// for another thread ([`History::reader`]).
pub struct History {
    pub(super) db: Reader,
    retention: Duration,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl History {
    /// Opens (creating) the history in `dir`: checks the file, migrates it to this version's
    /// schema, and prunes what is older than the retention at `now`.
    pub fn open(dir: &Path, options: Options, now: DateTime<Utc>) -> Result<History, Error> {
        let schema::Opened { conn, path, lock } = schema::open(dir, options.durability)?;
        let mut history = History {
            db: Reader { conn, path },
            retention: options.retention,
            _lock: lock,
        };
        history.prune(now)?;
        Ok(history)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.db.path
    }

    /// The readings, on the writer's connection.
    pub fn reads(&self) -> &Reader {
        &self.db
    }

    /// A read-only connection of its own, for another thread (WAL: it never blocks the writer).
    pub fn reader(&self) -> Result<Reader, Error> {
        let path: PathBuf = self.db.path.clone();
        let conn = schema::open_reader(&path)?;
        Ok(Reader { conn, path })
    }

    fn error(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        |e| Error::from_sqlite(&self.db.path, e)
    }

    /// Records a batch in one transaction and returns it with its event ids, in order. When this
    /// returns, the batch is on disk: only then may it be sent on the feed.
    pub fn record(&mut self, batch: &[Transition]) -> Result<Vec<Stored>, Error> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let path = self.db.path.clone();
        let sqlite = |e| Error::from_sqlite(&path, e);
        let tx = self
            .db
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        let mut out = Vec::with_capacity(batch.len());
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO transitions (at, root, path, workspace, id, from_status, to_status, reasons)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(sqlite)?;
            let mut latest = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO latest (root, path, workspace, event_id, at, id, from_status, to_status, reasons)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(sqlite)?;
            let mut total = tx
                .prepare_cached(
                    "INSERT INTO totals (from_status, to_status, count) VALUES (?1, ?2, 1)
                     ON CONFLICT (from_status, to_status) DO UPDATE SET count = count + 1",
                )
                .map_err(sqlite)?;
            for t in batch {
                let (at, from, to, reasons) = (
                    micros(t.at),
                    status_text(t.from),
                    status_text(t.to),
                    reasons_text(&t.reasons),
                );
                insert
                    .execute(params![at, t.root, t.path, t.workspace, t.id, from, to, reasons])
                    .map_err(sqlite)?;
                let event_id = tx.last_insert_rowid();
                latest
                    .execute(params![
                        t.root,
                        t.path,
                        t.workspace,
                        event_id,
                        at,
                        t.id,
                        from,
                        to,
                        reasons
                    ])
                    .map_err(sqlite)?;
                total
                    .execute(params![from.unwrap_or("none"), to.unwrap_or("none")])
                    .map_err(sqlite)?;
                out.push(Stored {
                    event_id: u64::try_from(event_id).unwrap_or_default(),
                    transition: t.clone(),
                });
            }
        }
        tx.commit().map_err(sqlite)?;
        if batch.len() >= RELEASE_AFTER {
            // The page cache a big batch (a first scan) filled stays with the connection, a few
            // MiB the daemon would hold for good; what it caches again later is what it reads.
            let _ = self.db.conn.release_memory();
        }
        Ok(out)
    }

    /// Deletes transitions older than the retention at `now`, and the last transition of
    /// workspaces that vanished before it, in transactions of at most [`PRUNE_BATCH`] rows.
    /// Returns how many transitions were deleted. The daemon calls it at open and every
    /// [`super::PRUNE_EVERY`].
    pub fn prune(&mut self, now: DateTime<Utc>) -> Result<u64, Error> {
        let retention = chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        let cutoff = now.checked_sub_signed(retention).map_or(i64::MIN, micros);
        let batch = i64::try_from(PRUNE_BATCH).unwrap_or(i64::MAX);
        let path = self.db.path.clone();
        let sqlite = |e| Error::from_sqlite(&path, e);
        let mut deleted = 0_u64;
        loop {
            let n = self
                .db
                .conn
                .execute(
                    "DELETE FROM transitions WHERE event_id IN
                     (SELECT event_id FROM transitions WHERE at < ?1 ORDER BY at LIMIT ?2)",
                    params![cutoff, batch],
                )
                .map_err(sqlite)?;
            deleted += n as u64;
            if n < PRUNE_BATCH {
                break;
            }
        }
        loop {
            let n = self
                .db
                .conn
                .execute(
                    "DELETE FROM latest WHERE (root, path, workspace) IN
                     (SELECT root, path, workspace FROM latest WHERE to_status IS NULL AND at < ?1 LIMIT ?2)",
                    params![cutoff, batch],
                )
                .map_err(sqlite)?;
            if n < PRUNE_BATCH {
                break;
            }
        }
        Ok(deleted)
    }

    /// The last transition of every workspace the history knows, vanished ones included (their
    /// `to` is `None`), by the store's key. After a restart, a workspace whose status is still
    /// the `to` of its last transition keeps that transition's `at` as its `status_since`, and
    /// no transition is recorded.
    pub fn latest(&self) -> Result<BTreeMap<Key, Stored>, Error> {
        let mut stmt = self
            .db
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM latest"))
            .map_err(self.error())?;
        let rows = stmt.query_map([], stored_of).map_err(self.error())?;
        let mut out = BTreeMap::new();
        for row in rows {
            let stored = row.map_err(self.error())?;
            let t = &stored.transition;
            out.insert((t.root.clone(), t.path.clone(), t.workspace.clone()), stored);
        }
        Ok(out)
    }

    /// How many transitions were ever recorded per (from, to), retention notwithstanding: the
    /// start of `iacwatch_transitions_total{from,to}`, so that the counter never goes down.
    pub fn totals(&self) -> Result<BTreeMap<Edge, u64>, Error> {
        let mut stmt = self
            .db
            .conn
            .prepare("SELECT from_status, to_status, count FROM totals")
            .map_err(self.error())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })
            .map_err(self.error())?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (from, to, count) = row.map_err(self.error())?;
            let none = |s: String| (s != "none").then_some(s);
            let corrupt = |detail| Error::Corrupt {
                path: self.db.path.clone(),
                detail,
            };
            let key = (
                status_of(none(from)).map_err(corrupt)?,
                status_of(none(to)).map_err(corrupt)?,
            );
            out.insert(key, u64::try_from(count).unwrap_or_default());
        }
        Ok(out)
    }
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").field("path", &self.db.path).finish()
    }
}
