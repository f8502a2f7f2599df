//! Opening the database file: the data directory, the checks that turn a bad file into a one-line
//! error, the connection settings (WAL, synchronous), and the migrations, one step per schema
//! version, run at start-up.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use rusqlite::{Connection, OpenFlags, functions::FunctionFlags};

use super::{Durability, Error};

/// The file in the data directory (beside it, SQLite keeps `-wal` and `-shm` while it is open).
pub const DATABASE_FILE: &str = "history.db";

/// Held with `flock` while a [`super::History`] is open: one writer per data directory.
pub const LOCK_FILE: &str = "history.lock";

/// The schema this version writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 2;

/// `PRAGMA application_id`: "iacw", so that another program's database is never taken for ours.
pub(super) const APPLICATION_ID: i64 = 0x6961_6377;

/// Step `i` takes the schema from version `i` to `i + 1`.
pub(super) const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    // 1: the transitions. AUTOINCREMENT keeps event ids monotonic also when pruning has deleted
    // the newest rows.
    "CREATE TABLE transitions (
        event_id    INTEGER PRIMARY KEY AUTOINCREMENT,
        at          INTEGER NOT NULL,
        root        TEXT NOT NULL,
        path        TEXT NOT NULL,
        workspace   TEXT NOT NULL,
        id          TEXT NOT NULL,
        from_status TEXT,
        to_status   TEXT,
        reasons     TEXT NOT NULL
    );
    CREATE INDEX transitions_by_time ON transitions (at, event_id);
    CREATE INDEX transitions_by_workspace ON transitions (id, at, event_id);",
    // 2: the last transition of every workspace and the totals per (from, to), kept apart from
    // the transitions so that retention never loses a `status_since` or lowers a counter.
    "CREATE TABLE latest (
        root        TEXT NOT NULL,
        path        TEXT NOT NULL,
        workspace   TEXT NOT NULL,
        event_id    INTEGER NOT NULL,
        at          INTEGER NOT NULL,
        id          TEXT NOT NULL,
        from_status TEXT,
        to_status   TEXT,
        reasons     TEXT NOT NULL,
        PRIMARY KEY (root, path, workspace)
    ) WITHOUT ROWID;
    INSERT INTO latest
        SELECT root, path, workspace, event_id, at, id, from_status, to_status, reasons
        FROM transitions
        WHERE event_id IN (SELECT max(event_id) FROM transitions GROUP BY root, path, workspace);
    CREATE TABLE totals (
        from_status TEXT NOT NULL,
        to_status   TEXT NOT NULL,
        count       INTEGER NOT NULL,
        PRIMARY KEY (from_status, to_status)
    ) WITHOUT ROWID;
    INSERT INTO totals
        SELECT coalesce(from_status, 'none'), coalesce(to_status, 'none'), count(*)
        FROM transitions GROUP BY 1, 2;",
];

/// The writer's connection, its file, and the lock that keeps a second writer out.
pub struct Opened {
    pub conn: Connection,
    pub path: PathBuf,
    pub lock: Flock<File>,
}

/// Opens (creating) the database in `dir`, checked, configured and migrated.
pub fn open(dir: &Path, durability: Durability) -> Result<Opened, Error> {
    prepare_dir(dir)?;
    let lock = lock(dir)?;
    let path = dir.join(DATABASE_FILE);
    writable(&path, &path)?;
    let sqlite = |e| Error::from_sqlite(&path, e);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(&path, flags).map_err(sqlite)?;
    if conn.is_readonly(rusqlite::MAIN_DB).map_err(sqlite)? {
        return Err(Error::ReadOnly { path, why: "read-only" });
    }
    conn.busy_timeout(Duration::from_secs(5)).map_err(sqlite)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sqlite)?;
    if version > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            path,
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    check_ours(&conn, &path, version)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))
        .map_err(sqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Corrupt {
            path,
            detail: format!("journal mode {mode} instead of wal"),
        });
    }
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous).map_err(sqlite)?;
    quick_check(&conn, &path)?;
    migrate(&mut conn, version).map_err(sqlite)?;
    add_functions(&conn).map_err(sqlite)?;
    Ok(Opened { conn, path, lock })
}

/// Takes the data directory's lock: two daemons sharing one history would mix their workspaces
/// (and each would take the other's for vanished at its next start). The kernel lets go of it
/// when the process ends, however it ends.
fn lock(dir: &Path) -> Result<Flock<File>, Error> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| Error::Lock {
            path: path.clone(),
            source,
        })?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        Errno::EWOULDBLOCK => Error::InUse {
            path: dir.to_path_buf(),
        },
        other => Error::Lock {
            path,
            source: other.into(),
        },
    })
}

/// A read-only connection to a database [`open`] has prepared.
pub fn open_reader(path: &Path) -> Result<Connection, Error> {
    let sqlite = |e| Error::from_sqlite(path, e);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(sqlite)?;
    add_functions(&conn).map_err(sqlite)?;
    Ok(conn)
}

/// The directory exists (created if needed), is a directory, and can be written.
fn prepare_dir(dir: &Path) -> Result<(), Error> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            return Err(Error::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        Ok(_) => {}
        Err(_) => std::fs::create_dir_all(dir).map_err(|source| {
            let path = dir.to_path_buf();
            if source.raw_os_error() == Some(nix::libc::ENOTDIR) {
                Error::NotADirectory { path }
            } else {
                Error::CreateDir { path, source }
            }
        })?,
    }
    writable(dir, dir)
}

/// `ReadOnly` naming `name` when `path` exists and may not be written (a read-only mount, or
/// permissions); SQLite would otherwise open it read-only without a word.
fn writable(path: &Path, name: &Path) -> Result<(), Error> {
    use nix::unistd::{AccessFlags, access};
    let why = match access(path, AccessFlags::W_OK) {
        Err(Errno::EROFS) => "read-only file system",
        Err(Errno::EACCES | Errno::EPERM) => "permission denied",
        _ => return Ok(()),
    };
    Err(Error::ReadOnly {
        path: name.to_path_buf(),
        why,
    })
}

/// A file of version 0 must be empty; any other must carry our application id.
fn check_ours(conn: &Connection, path: &Path, version: i64) -> Result<(), Error> {
    let sqlite = |e| Error::from_sqlite(path, e);
    let application: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(sqlite)?;
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(sqlite)?;
    let ours = if version < 0 {
        false
    } else if version == 0 {
        tables == 0 && (application == 0 || application == APPLICATION_ID)
    } else {
        application == APPLICATION_ID
    };
    if ours {
        Ok(())
    } else {
        Err(Error::Foreign {
            path: path.to_path_buf(),
        })
    }
}

/// `PRAGMA quick_check`: a damaged page is found at start-up, not by a reading days later.
fn quick_check(conn: &Connection, path: &Path) -> Result<(), Error> {
    let first: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(|e| Error::from_sqlite(path, e))?;
    if first == "ok" {
        return Ok(());
    }
    Err(Error::Corrupt {
        path: path.to_path_buf(),
        detail: first
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(200)
            .collect(),
    })
}

/// Runs every step from `version` to [`SCHEMA_VERSION`], each in its own transaction with its new
/// version, so that a killed process leaves the file at one version or the next.
fn migrate(conn: &mut Connection, version: i64) -> rusqlite::Result<()> {
    for (step, sql) in (0_i64..).zip(MIGRATIONS).skip_while(|(step, _)| *step < version) {
        let tx = conn.transaction()?;
        if step == 0 {
            tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", step + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// `iacwatch_contains(path, needle)`: the workspaces listing's `q` (case-insensitive substring,
/// Unicode lower case; `needle` is given in lower case).
fn add_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "iacwatch_contains",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let haystack = ctx
                .get_raw(0)
                .as_str()
                .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
            let needle = ctx
                .get_raw(1)
                .as_str()
                .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
            Ok(haystack.to_lowercase().contains(needle))
        },
    )
}
