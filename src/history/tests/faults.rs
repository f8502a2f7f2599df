//! Files that cannot serve as the history: each a one-line error naming the file, never a panic
//! and never a silently empty history. Also the migration of an older schema and the choice of
//! the data directory.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::{ago, now, open, quick, transition};
use crate::history::schema::{APPLICATION_ID, MIGRATIONS};
use crate::history::{DATABASE_FILE, DirSources, Error, History, SCHEMA_VERSION, resolve_data_dir};
use crate::model::Status::*;

fn open_err(dir: &Path) -> Error {
    History::open(dir, quick(), now()).unwrap_err()
}

/// The error's kind, after checking that its message is one line naming `names`.
fn kind_naming(error: &Error, names: &Path) -> &'static str {
    let message = error.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(
        message.contains(&names.display().to_string()),
        "{message} does not name {}",
        names.display()
    );
    error.kind()
}

fn user_version(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[test]
fn garbage_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(DATABASE_FILE);
    fs::write(
        &file,
        b"this is not a database, just some text a careless script left here\n".repeat(100),
    )
    .unwrap();
    assert_eq!(kind_naming(&open_err(dir.path()), &file), "corrupt");
    // Nothing was written over it.
    assert!(fs::read(&file).unwrap().starts_with(b"this is not"));
}

#[test]
fn a_damaged_page_is_corrupt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = open(dir.path());
    let batch: Vec<_> = (0..3000)
        .map(|i| {
            transition(
                ago(i),
                "a",
                &format!("some/longer/path/to/workspace{i}"),
                None,
                Some(Active),
            )
        })
        .collect();
    history.record(&batch).unwrap();
    drop(history); // checkpoints the WAL into the file
    let file = dir.path().join(DATABASE_FILE);
    let mut bytes = fs::read(&file).unwrap();
    assert!(bytes.len() > 40_000, "{}", bytes.len());
    // Pages 5 to 8, past the header and the schema.
    for (i, b) in bytes[4 * 4096..8 * 4096].iter_mut().enumerate() {
        *b = (i * 7 + 13) as u8;
    }
    fs::write(&file, &bytes).unwrap();
    assert_eq!(kind_naming(&open_err(dir.path()), &file), "corrupt");
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let file = dir.path().join(DATABASE_FILE);
    Connection::open(&file)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let error = open_err(dir.path());
    assert_eq!(kind_naming(&error, &file), "newer_schema");
    assert!(error.to_string().contains("99"), "{error}");
    assert_eq!(user_version(&file), 99);
}

#[test]
fn another_programs_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(DATABASE_FILE);
    let other = Connection::open(&file).unwrap();
    other
        .execute_batch("CREATE TABLE accounts (name TEXT, balance INTEGER)")
        .unwrap();
    drop(other);
    assert_eq!(kind_naming(&open_err(dir.path()), &file), "foreign");
    Connection::open(&file)
        .unwrap()
        .pragma_update(None, "user_version", 1)
        .unwrap();
    assert_eq!(kind_naming(&open_err(dir.path()), &file), "foreign");
    Connection::open(&file)
        .unwrap()
        .pragma_update(None, "user_version", -1)
        .unwrap();
    assert_eq!(kind_naming(&open_err(dir.path()), &file), "foreign");
}

#[test]
fn a_second_writer_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    assert_eq!(kind_naming(&open_err(dir.path()), dir.path()), "in_use");
    // Readers are welcome beside the writer.
    assert_eq!(first.reader().unwrap().after(0, 1).unwrap(), vec![]);
    drop(first);
    drop(open(dir.path()));
}

#[test]
fn a_data_directory_that_is_a_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state");
    fs::write(&file, b"x").unwrap();
    assert_eq!(kind_naming(&open_err(&file), &file), "not_a_directory");
    let below = file.join("iacwatch");
    assert_eq!(kind_naming(&open_err(&below), &below), "not_a_directory");
}

#[test]
fn an_empty_file_is_a_new_history_and_a_missing_directory_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/c");
    drop(open(&nested));
    assert_eq!(user_version(&nested.join(DATABASE_FILE)), SCHEMA_VERSION);
    fs::write(dir.path().join(DATABASE_FILE), b"").unwrap();
    let mut history = open(dir.path());
    assert_eq!(
        history
            .record(&[transition(now(), "a", "x", None, Some(Active))])
            .unwrap()[0]
            .event_id,
        1
    );
}

#[test]
fn version_one_is_migrated_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(DATABASE_FILE);
    // A version-1 file as that version wrote it.
    let v1 = Connection::open(&file).unwrap();
    v1.pragma_update(None, "application_id", APPLICATION_ID).unwrap();
    v1.execute_batch(MIGRATIONS[0]).unwrap();
    v1.execute_batch(
        "INSERT INTO transitions (at, root, path, workspace, id, from_status, to_status, reasons) VALUES
           (1780000000000000, 'a', 'net', 'default', 'id-net', NULL, 'active', 'state_has_resources'),
           (1780000100000000, 'a', 'net', 'default', 'id-net', 'active', 'drifted', 'drift_detected,state_has_resources'),
           (1780000200000000, 'a', 'app', 'default', 'id-app', NULL, 'failed', 'last_run_failed');
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(v1);
    let mut history = History::open(dir.path(), quick(), super::at("2026-06-10T00:00:00Z")).unwrap();
    assert_eq!(user_version(&file), SCHEMA_VERSION);
    let latest = history.latest().unwrap();
    let net = &latest[&("a".to_owned(), "net".to_owned(), "default".to_owned())];
    assert_eq!((net.event_id, net.transition.to), (2, Some(Drifted)));
    assert_eq!(net.transition.at.timestamp(), 1_780_000_100);
    let totals = history.totals().unwrap();
    assert_eq!(totals[&(Some(Active), Some(Drifted))], 1);
    assert_eq!(totals.values().sum::<u64>(), 3);
    // New rows continue the ids.
    let next = history
        .record(&[transition(now(), "a", "net", Some(Drifted), Some(Active))])
        .unwrap();
    assert_eq!(next[0].event_id, 4);
    assert_eq!(history.reads().workspace("id-net", None, 10).unwrap().len(), 2);
}

/// A read-only bind mount of `source` at `target`, undone on drop; `None` where mounting is not
/// allowed (not root), which fails under `CI=true`.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn mount(source: &Path, target: &Path) -> Option<ReadOnly> {
        let mount = |args: &[&OsStr]| {
            std::process::Command::new("mount")
                .args(args)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !mount(&["--bind".as_ref(), source.as_os_str(), target.as_os_str()]) {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "a bind mount is needed under CI=true"
            );
            eprintln!("skipped: cannot bind-mount (not root?)");
            return None;
        }
        let view = ReadOnly(target.to_path_buf());
        assert!(mount(&["-o".as_ref(), "remount,bind,ro".as_ref(), target.as_os_str()]));
        Some(view)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (source, view) = (dir.path().join("source"), dir.path().join("view"));
    fs::create_dir(&source).unwrap();
    fs::create_dir(&view).unwrap();
    let Some(_mount) = ReadOnly::mount(&source, &view) else {
        return;
    };
    assert_eq!(kind_naming(&open_err(&view), &view), "read_only");
    assert_eq!(fs::read_dir(&source).unwrap().count(), 0);
    // Below a read-only directory, the directory that cannot be made is named.
    let below = view.join("iacwatch");
    assert_eq!(kind_naming(&open_err(&below), &below), "create_dir");
}

#[test]
fn a_read_only_file_is_named_and_its_history_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = open(dir.path());
    history
        .record(&[transition(now(), "a", "x", None, Some(Active))])
        .unwrap();
    drop(history);
    let file = dir.path().join(DATABASE_FILE);
    let Some(mount) = ReadOnly::mount(&file, &file) else {
        return;
    };
    assert_eq!(kind_naming(&open_err(dir.path()), &file), "read_only");
    drop(mount);
    assert_eq!(open(dir.path()).reads().after(0, 10).unwrap().len(), 1);
}

#[test]
fn the_data_directory_is_the_flag_then_systemd_then_xdg_then_home() {
    let os = |s: &'static str| Some(OsStr::new(s));
    let all = DirSources {
        flag: Some(Path::new("/flag")),
        state_directory: os("/var/lib/iacwatch:/var/lib/other"),
        xdg_state_home: os("/xdg"),
        home: os("/home/op"),
    };
    let pick = |s: DirSources<'_>| {
        resolve_data_dir(s)
            .map(|p| p.display().to_string())
            .map_err(|e| e.kind())
    };
    assert_eq!(pick(all), Ok("/flag".into()));
    assert_eq!(
        pick(DirSources {
            flag: Some(Path::new("rel/dir")),
            ..all
        }),
        Ok("rel/dir".into())
    );
    let no_flag = DirSources { flag: None, ..all };
    assert_eq!(pick(no_flag), Ok("/var/lib/iacwatch".into()));
    assert_eq!(
        pick(DirSources {
            flag: Some(Path::new("")),
            ..all
        }),
        Ok("/var/lib/iacwatch".into())
    );
    assert_eq!(
        pick(DirSources {
            state_directory: os(":/second"),
            ..no_flag
        }),
        Ok("/second".into())
    );
    let no_systemd = DirSources {
        state_directory: os(""),
        ..no_flag
    };
    assert_eq!(pick(no_systemd), Ok("/xdg/iacwatch".into()));
    for xdg in [None, os(""), os("relative/xdg")] {
        let no_xdg = DirSources {
            xdg_state_home: xdg,
            ..no_systemd
        };
        assert_eq!(pick(no_xdg), Ok("/home/op/.local/state/iacwatch".into()));
        for home in [None, os(""), os("relative")] {
            assert_eq!(pick(DirSources { home, ..no_xdg }), Err("no_data_dir"));
        }
    }
}
