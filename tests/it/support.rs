//! Shared helpers of the integration tests: fixture trees in temporary directories with their
//! recorded modification times, golden files, and the external tools the tests drive.

#![allow(dead_code, reason = "each test module uses its own subset of the helpers")]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The repository.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The planted secret: it is in fixture states and plans, and must never come out.
pub const CANARY: &str = "CANARY-7f3a9c2e-do-not-leak";

/// Under `CI=true` a missing tool fails the test; elsewhere the test is skipped with a note.
pub fn tool(relative: &str) -> Option<PathBuf> {
    let path = repo().join(".tools").join(relative);
    if path.exists() {
        return Some(path);
    }
    let hint = "run tools/test (or the tools/install-* script) to install it";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{} is missing under CI=true: {hint}", path.display());
    }
    eprintln!("skipped: {} is missing ({hint})", path.display());
    None
}

/// Copies a tree without following symbolic links.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let target = to.join(entry.file_name());
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Sets a file's or directory's modification time.
pub fn set_mtime(path: &Path, time: DateTime<Utc>) {
    let ft = filetime::FileTime::from_unix_time(time.timestamp(), time.timestamp_subsec_nanos());
    filetime::set_symlink_file_times(path, ft, ft).unwrap();
}

/// A scenario of `fixtures/scenarios/`, as `fixtures/generate` recorded it.
#[derive(Deserialize, Debug)]
pub struct Scenario {
    pub description: String,
    pub now: DateTime<Utc>,
    pub host: String,
    pub mtimes: BTreeMap<String, DateTime<Utc>>,
    pub expect: Vec<Expectation>,
    #[serde(default)]
    pub synthetic: Vec<String>,
    /// Folders git cannot hold under their real name (`dot-git` for `.git`), renamed after copying.
    #[serde(default)]
    pub renames: BTreeMap<String, String>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Expectation {
    pub path: String,
    pub workspace: String,
    pub status: String,
    pub reasons: Vec<String>,
}

/// A scenario copied into a temporary directory, with its modification times restored.
pub struct ScenarioTree {
    pub name: String,
    pub scenario: Scenario,
    pub dir: tempfile::TempDir,
}

impl ScenarioTree {
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

pub fn scenario_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(repo().join("fixtures/scenarios"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("scenario.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn load_scenario(name: &str) -> ScenarioTree {
    let source = repo().join("fixtures/scenarios").join(name);
    let scenario: Scenario = serde_json::from_slice(&fs::read(source.join("scenario.json")).unwrap())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&source, dir.path());
    fs::remove_file(dir.path().join("scenario.json")).unwrap();
    for (stored, real) in &scenario.renames {
        fs::rename(dir.path().join(stored), dir.path().join(real)).unwrap();
    }
    // Files first, then directories (writing a file touches its directory).
    let (dirs, files): (Vec<_>, Vec<_>) = scenario
        .mtimes
        .iter()
        .partition(|(rel, _)| dir.path().join(rel).is_dir());
    for (rel, time) in files.into_iter().chain(dirs) {
        let path = dir.path().join(rel);
        if path.symlink_metadata().is_ok() {
            set_mtime(&path, *time);
        }
    }
    ScenarioTree {
        name: name.to_owned(),
        scenario,
        dir,
    }
}

/// Compares `actual` with a golden file; `UPDATE_GOLDEN=1` rewrites the golden instead.
pub fn check_golden(path: &Path, actual: &str) -> Result<(), String> {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, actual).unwrap();
        return Ok(());
    }
    let expected = fs::read_to_string(path)
        .map_err(|_| format!("{} is missing: run with UPDATE_GOLDEN=1 to create it", path.display()))?;
    if expected == actual {
        return Ok(());
    }
    let first = expected
        .lines()
        .zip(actual.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(0);
    Err(format!(
        "{} differs from the output (first at line {}):\n  golden: {}\n  actual: {}\n(UPDATE_GOLDEN=1 rewrites it)",
        path.display(),
        first + 1,
        expected.lines().nth(first).unwrap_or("<end>"),
        actual.lines().nth(first).unwrap_or("<end>"),
    ))
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `iacwatch` binary under test.
pub fn iacwatch() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_iacwatch"))
}
