//! What can go wrong with the history: each a one-line message naming the directory or file, and a
//! short fixed `kind()`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no data directory for the history: set --data-dir, $STATE_DIRECTORY, $XDG_STATE_HOME or $HOME")]
    NoDataDir,
    #[error("data directory {} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot create data directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot write the history to {}: {why} (with --history false, none is kept)", path.display())]
    ReadOnly { path: PathBuf, why: &'static str },
    #[error("history {} is in use by another iacwatch: each daemon needs its own --data-dir", path.display())]
    InUse { path: PathBuf },
    #[error("cannot lock the history with {}: {source}", path.display())]
    Lock { path: PathBuf, source: std::io::Error },
    #[error("history database {} is corrupt ({detail}): move it away to start a new history", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "history database {} has schema version {found}, newer than this iacwatch supports ({supported}): run a newer iacwatch or move the file away",
        path.display()
    )]
    NewerSchema { path: PathBuf, found: i64, supported: i64 },
    #[error("{} is not an iacwatch history database", path.display())]
    Foreign { path: PathBuf },
    #[error("history database {}: {source}", path.display())]
    Sqlite { path: PathBuf, source: rusqlite::Error },
}

impl Error {
    /// A short fixed name, for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NoDataDir => "no_data_dir",
            Error::NotADirectory { .. } => "not_a_directory",
            Error::CreateDir { .. } => "create_dir",
            Error::ReadOnly { .. } => "read_only",
            Error::InUse { .. } => "in_use",
            Error::Lock { .. } => "lock",
            Error::Corrupt { .. } => "corrupt",
            Error::NewerSchema { .. } => "newer_schema",
            Error::Foreign { .. } => "foreign",
            Error::Sqlite { .. } => "sqlite",
        }
    }

    /// Sorts an SQLite error about the file at `path` into the kinds an operator can act on.
    pub(crate) fn from_sqlite(path: &std::path::Path, source: rusqlite::Error) -> Error {
        use rusqlite::ErrorCode;
        let path = path.to_path_buf();
        if let rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::Utf8Error(..) = source
        {
            return Error::Corrupt {
                path,
                detail: one_line(&source),
            };
        }
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Error::Corrupt {
                path,
                detail: one_line(&source),
            },
            Some(ErrorCode::ReadOnly) => Error::ReadOnly { path, why: "read-only" },
            _ => Error::Sqlite { path, source },
        }
    }
}

/// SQLite's message, on one line (its messages name tables and columns, never stored values).
fn one_line(error: &rusqlite::Error) -> String {
    error.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}
