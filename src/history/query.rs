//! The readings: one workspace's history, every transition with the listing's filters, and the
//! events after a given id (the feed's `Last-Event-ID` resume). Newest first, except the resume.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, params, params_from_iter};

use super::codec::{micros, reasons_of, status_of, time_of};
use super::{Error, MAX_LIMIT, Stored, Transition};
use crate::model::Status;

/// The columns [`stored_of`] reads, in its order.
pub(super) const COLUMNS: &str = "event_id, at, root, path, workspace, id, from_status, to_status, reasons";

/// A connection that reads the history (the writer's own, or a read-only one).
pub struct Reader {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
}

/// The filters of `GET /api/v1/transitions`: those of the workspaces listing (`status` matches
/// `to`; `root` exactly; `q` a case-insensitive substring of the path), plus `since` and `limit`.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub statuses: Vec<Status>,
    pub root: Option<String>,
    pub q: Option<String>,
    /// Only transitions at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many (and never more than [`MAX_LIMIT`]).
    pub limit: usize,
}

impl Reader {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        |e| Error::from_sqlite(&self.path, e)
    }

    /// One workspace's transitions (by its id), newest first.
    pub fn workspace(&self, id: &str, since: Option<DateTime<Utc>>, limit: usize) -> Result<Vec<Stored>, Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM transitions WHERE id = ?1 AND at >= ?2
             ORDER BY at DESC, event_id DESC LIMIT ?3"
        );
        self.rows(&sql, params![id, since_micros(since), bound(limit)])
    }

    /// Every workspace's transitions that pass `filter`, newest first.
    pub fn transitions(&self, filter: &Filter) -> Result<Vec<Stored>, Error> {
        let mut clauses = vec!["at >= ?".to_owned()];
        let mut values = vec![Value::Integer(since_micros(filter.since))];
        if !filter.statuses.is_empty() {
            let marks = vec!["?"; filter.statuses.len()].join(", ");
            clauses.push(format!("to_status IN ({marks})"));
            values.extend(filter.statuses.iter().map(|s| Value::Text(s.as_str().to_owned())));
        }
        if let Some(root) = filter.root.as_ref().filter(|r| !r.is_empty()) {
            clauses.push("root = ?".to_owned());
            values.push(Value::Text(root.clone()));
        }
        if let Some(q) = filter.q.as_ref().filter(|q| !q.is_empty()) {
            clauses.push("iacwatch_contains(path, ?)".to_owned());
            values.push(Value::Text(q.to_lowercase()));
        }
        values.push(Value::Integer(bound(filter.limit)));
        let sql = format!(
            "SELECT {COLUMNS} FROM transitions WHERE {} ORDER BY at DESC, event_id DESC LIMIT ?",
            clauses.join(" AND ")
        );
        self.rows(&sql, params_from_iter(values))
    }

    /// The transitions recorded after event `after`, oldest first, at most `limit` (and never more
    /// than [`MAX_LIMIT`]): a feed client resuming with `Last-Event-ID` asks again after the
    /// last one until fewer than asked come back.
    pub fn after(&self, after: u64, limit: usize) -> Result<Vec<Stored>, Error> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let sql = format!("SELECT {COLUMNS} FROM transitions WHERE event_id > ?1 ORDER BY event_id LIMIT ?2");
        self.rows(&sql, params![after, bound(limit)])
    }

    /// The highest event id ever given (0 for a new history), also when pruning deleted it.
    pub fn last_event_id(&self) -> Result<u64, Error> {
        let seq: Option<i64> = self
            .conn
            .query_row(
                "SELECT max(seq) FROM sqlite_sequence WHERE name = 'transitions'",
                [],
                |r| r.get(0),
            )
            .map_err(self.error())?;
        Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
    }

    fn rows(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Stored>, Error> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.error())?;
        let rows = stmt.query_map(params, stored_of).map_err(self.error())?;
        rows.map(|r| r.map_err(self.error())).collect()
    }
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("path", &self.path).finish()
    }
}

fn since_micros(since: Option<DateTime<Utc>>) -> i64 {
    since.map_or(i64::MIN, micros)
}

fn bound(limit: usize) -> i64 {
    i64::try_from(limit.min(MAX_LIMIT)).unwrap_or(0)
}

/// A row of [`COLUMNS`]; a value this version cannot read is a conversion failure, which
/// [`Error::from_sqlite`] reports as a corrupt file.
pub(super) fn stored_of(row: &Row<'_>) -> rusqlite::Result<Stored> {
    let bad = |i: usize, detail: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, detail.into())
    };
    let event_id: i64 = row.get(0)?;
    let at: i64 = row.get(1)?;
    let reasons: String = row.get(8)?;
    Ok(Stored {
        event_id: u64::try_from(event_id).map_err(|_| bad(0, format!("negative event id {event_id}")))?,
        transition: Transition {
            at: time_of(at).map_err(|d| bad(1, d))?,
            root: row.get(2)?,
            path: row.get(3)?,
            workspace: row.get(4)?,
            id: row.get(5)?,
            from: status_of(row.get(6)?).map_err(|d| bad(6, d))?,
            to: status_of(row.get(7)?).map_err(|d| bad(7, d))?,
            reasons: reasons_of(&reasons),
        },
    })
}
