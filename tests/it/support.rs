//! Shared helpers of the integration tests: fixture trees in temporary directories with their
//! recorded modification times (one scenario, or a `Fleet` of them), golden files, polling with a
//! deadline (`eventually`), the daemon (`Daemon::builder`) and what it lists, and the external
//! tools the tests drive.

#![allow(dead_code, reason = "each test module uses its own subset of the helpers")]

mod http;
pub use http::{free_port, free_ports, http_get, http_request, url_encode};

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The repository.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Scenarios whose status depends neither on the clock nor on this machine's host name, so that a
/// daemon running on the real clock agrees with their expectations: one workspace each, except
/// `named-workspaces` (two).
pub const FLEET: [&str; 6] = [
    "active",
    "failed-tainted",
    "drifted",
    "apply-needed-plan",
    "inactive-destroyed",
    "named-workspaces",
];

/// (id, path, workspace) of every workspace a document lists, asserting that its counts cover
/// exactly these (as under `--shard`).
pub fn id_rows(doc: &serde_json::Value) -> std::collections::BTreeSet<(String, String, String)> {
    let rows: std::collections::BTreeSet<_> = doc["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let field = |k: &str| w[k].as_str().unwrap().to_owned();
            (field("id"), field("path"), field("workspace"))
        })
        .collect();
    let counted: u64 = doc["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        counted,
        rows.len() as u64,
        "the counts cover the listed workspaces: {doc}"
    );
    rows
}

/// The planted secret: it is in fixture states and plans, and must never come out.
pub const CANARY: &str = "CANARY-7f3a9c2e-do-not-leak";

/// Under `CI=true` a missing tool fails the test; elsewhere the test is skipped: it says so on
/// stderr, and the run ends with a list of every test skipped (see `skip`).
pub fn tool(relative: &str) -> Option<PathBuf> {
    let path = repo().join(".tools").join(relative);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{} is missing under CI=true: run tools/test (or the tools/install-* script) to install it",
            path.display()
        );
    }
    skip(&format!(".tools/{relative} is missing"));
    None
}

/// The tests skipped so far, each with why, for the list printed when the run ends.
static SKIPPED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Says that the running test skips (it returns early, or leaves a part out, and libtest shows it
/// as `ok`): at once, and again when the test binary exits, after libtest's own summary, in a list
/// of the skipped tests and their reasons, so a run without the tools never reads as a full pass.
pub fn skip(why: &str) {
    eprintln!("skipped: {why}");
    static AT_EXIT: Once = Once::new();
    AT_EXIT.call_once(|| {
        // SAFETY: `print_skipped` is an `extern "C" fn()` that neither unwinds nor needs anything
        // that exit(3) has already torn down (stderr is unbuffered).
        unsafe { nix::libc::atexit(print_skipped) };
    });
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let mut skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    match skipped.iter_mut().find(|(name, _)| *name == test) {
        Some((_, reasons)) => *reasons = format!("{reasons}; {why}"),
        None => skipped.push((test, why.to_owned())),
    }
}

extern "C" fn print_skipped() {
    let mut skipped = std::mem::take(&mut *SKIPPED.lock().unwrap_or_else(|e| e.into_inner()));
    if skipped.is_empty() {
        return;
    }
    skipped.sort();
    eprintln!(
        "\nSKIPPED {} test(s), counted as passed above: tools/test (or a tools/install-* script) \
         installs what they need; under CI=true a missing tool fails the test",
        skipped.len()
    );
    for (test, why) in skipped {
        eprintln!("    {test}: {why}");
    }
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

/// Copies a scenario with the times it was recorded with (its `now` is in `scenario.now`).
pub fn load_scenario(name: &str) -> ScenarioTree {
    load_scenario_at(name, None)
}

/// Copies a scenario with every time shifted so that the scenario's `now` falls at `now` (for
/// tests against the daemon, which runs on the real clock); `None` keeps the recorded times.
pub fn load_scenario_at(name: &str, now: Option<DateTime<Utc>>) -> ScenarioTree {
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
    let shift = now.map_or(chrono::TimeDelta::zero(), |now| now - scenario.now);
    for (rel, time) in files.into_iter().chain(dirs) {
        let path = dir.path().join(rel);
        if path.symlink_metadata().is_ok() {
            set_mtime(&path, *time + shift);
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
    poll(timeout, || check().ok_or(())).unwrap_or_else(|()| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `check` until it returns `Ok`; after `timeout`, panics with `what` and the last error it
/// returned.
pub fn converge<T>(timeout: Duration, what: &str, check: impl FnMut() -> Result<T, String>) -> T {
    poll(timeout, check)
        .unwrap_or_else(|last| panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}"))
}

/// The one polling loop of the tests: `check` every 50 ms until it returns `Ok`, or its last `Err`
/// once `timeout` has passed.
pub fn poll<T, E>(timeout: Duration, mut check: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The `iacwatch` binary under test.
pub fn iacwatch() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_iacwatch"));
    // Daemons started by hand would share the one default data directory; `Daemon` gives each
    // its own.
    command.env("IACWATCH_HISTORY", "false");
    command
}

/// A running `iacwatch serve` on a loopback port chosen by the system; killed on drop.
pub struct Daemon {
    child: std::process::Child,
    /// `127.0.0.1:PORT`, from the daemon's `serving` log line.
    pub address: String,
    /// Every log line so far (JSON), for failure messages.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The daemon's own data directory (`IACWATCH_DATA_DIR`; a `--data-dir` argument wins).
    pub data_dir: std::sync::Arc<tempfile::TempDir>,
}

/// How to start a `Daemon`: `iacwatch serve --listen 127.0.0.1:0 --log-format json ARGS... ROOTS...`.
pub struct DaemonBuilder {
    roots: Vec<PathBuf>,
    args: Vec<OsString>,
    ready_check: bool,
    cwd: PathBuf,
    data_dir: Option<std::sync::Arc<tempfile::TempDir>>,
    env: Vec<(OsString, OsString)>,
}

impl DaemonBuilder {
    pub fn root(mut self, root: impl AsRef<Path>) -> Self {
        self.roots.push(root.as_ref().to_owned());
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<A: AsRef<OsStr>>(self, args: impl IntoIterator<Item = A>) -> Self {
        args.into_iter().fold(self, DaemonBuilder::arg)
    }

    /// A variable of the daemon's environment (the AWS credentials of a bucket root).
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env.push((name.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// The daemon's working directory (for relative roots); the repository by default.
    pub fn in_dir(mut self, cwd: impl AsRef<Path>) -> Self {
        self.cwd = cwd.as_ref().to_owned();
        self
    }

    /// The data directory of the history, shared with another daemon run (one at a time).
    pub fn data_dir(mut self, dir: &std::sync::Arc<tempfile::TempDir>) -> Self {
        self.data_dir = Some(dir.clone());
        self
    }

    /// Do not wait for `/readyz` over plain HTTP (a daemon that serves TLS: the test checks it).
    pub fn without_ready_check(mut self) -> Self {
        self.ready_check = false;
        self
    }

    /// Starts the daemon and waits until it is bound and, unless told otherwise, until `/readyz`
    /// answers 200 (the first full scan is done).
    pub fn start(self) -> Daemon {
        use std::io::BufRead;
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| std::sync::Arc::new(tempfile::tempdir().unwrap()));
        let mut child = iacwatch()
            .current_dir(&self.cwd)
            .env("IACWATCH_HISTORY", "true")
            .env("IACWATCH_DATA_DIR", data_dir.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(&self.args)
            .args(&self.roots)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting iacwatch serve");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        // Drains stderr for the daemon's whole life, so that logging never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let address = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .filter(|v| v["message"] == "serving")
                    .and_then(|v| v["address"].as_str().map(str::to_owned));
                // Logged first, so that the log holds the line by the time the address is known.
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                if let Some(address) = address {
                    let _ = tx.send(address);
                }
            }
        });
        let address = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "iacwatch serve did not log its address (exit {status:?}):\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        let daemon = Daemon {
            child,
            address,
            log,
            data_dir,
        };
        if self.ready_check {
            eventually(Duration::from_secs(30), "iacwatch serve /readyz to answer 200", || {
                http_get(&daemon.address, "/readyz")
                    .ok()
                    .filter(|(code, _)| *code == 200)
            });
        }
        daemon
    }
}

impl Daemon {
    pub fn builder() -> DaemonBuilder {
        DaemonBuilder {
            roots: Vec::new(),
            args: Vec::new(),
            ready_check: true,
            cwd: repo(),
            data_dir: None,
            env: Vec::new(),
        }
    }

    /// Starts `iacwatch serve --listen 127.0.0.1:0 --log-format json ARGS... ROOTS...` and waits
    /// until it is bound and `/readyz` answers 200 (the first full scan is done).
    pub fn start(roots: &[&Path], args: &[&str]) -> Daemon {
        roots
            .iter()
            .fold(Daemon::builder().args(args), |b, root| b.root(root))
            .start()
    }

    /// `GET path` on the daemon; panics unless it answers 200; the body.
    pub fn get(&self, path: &str) -> String {
        match http_get(&self.address, path) {
            Ok((200, body)) => body,
            other => panic!(
                "GET {path} on iacwatch: {other:?}\nlog:\n{}",
                self.log.lock().unwrap().join("\n")
            ),
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (at most 10 s) for the daemon to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        eventually(Duration::from_secs(10), "the daemon to exit after SIGTERM", || {
            self.child.try_wait().unwrap()
        })
    }

    /// `GET path` on the daemon as JSON; panics unless it answers 200.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let body = self.get(path);
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workspaces the daemon lists for `query` (`""` or `?q=...`).
pub fn workspaces(daemon: &Daemon, query: &str) -> Vec<serde_json::Value> {
    daemon.get_json(&format!("/api/v1/workspaces{query}"))["workspaces"]
        .as_array()
        .unwrap()
        .clone()
}

/// The status of the workspace at `path` (default CLI workspace), or `None` when it is not listed.
pub fn status_of(daemon: &Daemon, path: &str) -> Option<String> {
    workspaces(daemon, "")
        .iter()
        .find(|w| w["path"] == path && w["workspace"] == "default")
        .map(|w| w["status"].as_str().unwrap().to_owned())
}

/// Waits until the workspace at `path` has the status `want` (`None`: until it is gone), at most
/// `within`; how long it took. The panic shows the list and the daemon's log.
pub fn wait_status(daemon: &Daemon, path: &str, want: Option<&str>, within: Duration) -> Duration {
    let started = Instant::now();
    poll(within, || {
        let now = status_of(daemon, path);
        if now.as_deref() == want { Ok(()) } else { Err(now) }
    })
    .unwrap_or_else(|now| {
        panic!(
            "{path} is {now:?}, not {want:?}, after {within:?}: {:#?}\ndaemon log:\n{}",
            workspaces(daemon, ""),
            daemon.log.lock().unwrap().join("\n")
        )
    });
    started.elapsed()
}

/// Several scenarios side by side, each in `ROOT/<scenario>/`, with what each one expects: the
/// fleet the tests against a daemon watch. The root is a folder of a temporary directory, so that
/// a test can stage files beside it, outside the watched tree.
pub struct Fleet {
    pub dir: tempfile::TempDir,
    /// `dir/root`: the root the daemon watches.
    pub root: PathBuf,
    /// (path relative to the root, CLI workspace) -> status, from the scenarios' expectations.
    pub expected: BTreeMap<(String, String), String>,
}

impl Fleet {
    /// The scenarios with the times they were recorded with.
    pub fn new(names: &[&str]) -> Fleet {
        Fleet::build(names, None)
    }

    /// The scenarios as if each had happened just before `now`.
    pub fn at(names: &[&str], now: DateTime<Utc>) -> Fleet {
        Fleet::build(names, Some(now))
    }

    fn build(names: &[&str], now: Option<DateTime<Utc>>) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let mut expected = BTreeMap::new();
        for name in names {
            let tree = load_scenario_at(name, now);
            // A rename keeps the restored modification times (a copy would not); both folders
            // are in the same temporary directory.
            fs::rename(tree.root(), root.join(name)).unwrap();
            for e in &tree.scenario.expect {
                expected.insert((format!("{name}/{}", e.path), e.workspace.clone()), e.status.clone());
            }
        }
        Fleet { dir, root, expected }
    }

    /// The watched root.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The root as the daemon labels it: as given on its command line.
    pub fn root_label(&self) -> String {
        self.root.to_str().unwrap().to_owned()
    }

    /// How many workspaces each of the seven statuses should count.
    pub fn counts(&self) -> BTreeMap<String, f64> {
        let mut counts: BTreeMap<String, f64> = iacwatch::model::Status::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), 0.0))
            .collect();
        for status in self.expected.values() {
            *counts.get_mut(status).unwrap() += 1.0;
        }
        counts
    }

    /// The (path, CLI workspace) of the workspaces that should have `status`.
    pub fn with_status(&self, status: &str) -> std::collections::BTreeSet<(String, String)> {
        self.expected
            .iter()
            .filter(|(_, s)| *s == status)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// `promtool check metrics` on an exposition body: whether it passed, and what it printed (lint
/// findings included).
pub fn promtool_check_metrics(promtool: &Path, body: &str) -> (bool, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
