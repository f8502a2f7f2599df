//! The history against a real process: `kill -9` in the middle of a burst of transitions loses
//! none that `record` had answered and never leaves a database that fails to open; a directory the
//! process may not write is a one-line error naming it.
//!
//! Both run this test binary again as the child (`child_process`, ignored when run alone).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::Utc;
use iacwatch::history::{History, Options, Transition};
use iacwatch::model::{ReasonCode, Status};

const MODE: &str = "IACWATCH_HISTORY_CHILD";
const DIR: &str = "IACWATCH_HISTORY_DIR";

/// The child: `record` writes batches of 1 to 20 transitions as fast as it can and prints
/// `recorded EVENT_ID PATH` for each once `record` has returned (what the daemon would then show);
/// `open` prints the kind and message of the error opening gives.
#[test]
#[ignore = "the child process of the tests below"]
fn child_process() {
    let (Some(mode), Some(dir)) = (std::env::var_os(MODE), std::env::var_os(DIR)) else {
        return;
    };
    let dir = Path::new(&dir);
    if mode == "open" {
        match History::open(dir, Options::default(), Utc::now()) {
            Ok(_) => println!("opened"),
            Err(e) => println!("error {} {e}", e.kind()),
        }
        return;
    }
    let mut history = History::open(dir, Options::default(), Utc::now()).unwrap();
    let statuses = [Status::Active, Status::Drifted, Status::Failed, Status::ApplyNeeded];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut n = 0_usize;
    while Instant::now() < deadline {
        let batch: Vec<Transition> = (0..1 + n % 20)
            .map(|i| {
                let path = format!("ws/{}", (n + i) % 50);
                Transition {
                    at: Utc::now(),
                    id: format!("id-{path}"),
                    root: "r".into(),
                    path,
                    workspace: "default".into(),
                    from: Some(statuses[(n + i) % 4]),
                    to: Some(statuses[(n + i + 1) % 4]),
                    reasons: vec![ReasonCode::DriftDetected],
                }
            })
            .collect();
        for stored in history.record(&batch).unwrap() {
            println!("recorded {} {}", stored.event_id, stored.transition.path);
        }
        n += 1;
    }
}

fn child(mode: &str, dir: &Path, exe: &Path) -> Command {
    let mut command = Command::new(exe);
    command
        .args([
            "--exact",
            "history::child_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MODE, mode)
        .env(DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// Runs the recording child until it has reported `count` event ids, kills it with SIGKILL, and
/// returns every id it reported (complete lines only) with its path.
fn record_until_killed(dir: &Path, count: usize) -> BTreeMap<u64, String> {
    let exe = std::env::current_exe().unwrap();
    let mut process = child("record", dir, &exe).spawn().unwrap();
    let stdout = process.stdout.take().unwrap();
    let (send, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        while stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
            if line.ends_with('\n') && send.send(line.clone()).is_err() {
                break;
            }
            line.clear();
        }
    });
    let mut reported = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while reported.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("the child reported {} of {count} ids: {e}", reported.len()));
        if let Some(rest) = line.strip_prefix("recorded ") {
            let (id, path) = rest.trim_end().split_once(' ').unwrap();
            reported.insert(id.parse().unwrap(), path.to_owned());
        }
    }
    // SIGKILL, in the middle of the burst: the child never stops writing on its own.
    process.kill().unwrap();
    let status = process.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status:?}"
    );
    reader.join().unwrap();
    // Lines still in the pipe were answered before the kill: they count too.
    reported.extend(lines.try_iter().filter_map(|line| {
        let (id, path) = line.strip_prefix("recorded ")?.trim_end().split_once(' ')?;
        Some((id.parse().ok()?, path.to_owned()))
    }));
    reported
}

#[test]
fn kill_9_during_a_burst_loses_no_answered_transition() {
    let dir = tempfile::tempdir().unwrap();
    let mut every = BTreeMap::new();
    for count in [1, 40, 700, 150, 2500] {
        let reported = record_until_killed(dir.path(), count);
        // Ids only grow, across kills too.
        if let (Some(before), Some(now)) = (every.keys().next_back(), reported.keys().next()) {
            assert!(now > before, "id {now} after {before}");
        }
        every.extend(reported);
        // The file opens (quick_check included) and holds every answered transition as it was.
        let history =
            History::open(dir.path(), Options::default(), Utc::now()).unwrap_or_else(|e| panic!("after kill -9: {e}"));
        let mut stored = BTreeMap::new();
        let mut after = 0;
        loop {
            let page = history.reads().after(after, 10_000).unwrap();
            let Some(last) = page.last() else { break };
            after = last.event_id;
            stored.extend(page.into_iter().map(|s| (s.event_id, s.transition)));
        }
        for (id, path) in &every {
            let t = stored
                .get(id)
                .unwrap_or_else(|| panic!("event {id} was answered but is lost"));
            assert_eq!(&t.path, path, "event {id}");
            assert_eq!(t.reasons, vec![ReasonCode::DriftDetected]);
        }
        // The totals were committed with the transitions (nothing is pruned here).
        assert_eq!(history.totals().unwrap().values().sum::<u64>(), stored.len() as u64);
        // The last transition of each workspace is the newest stored one.
        for (key, last) in history.latest().unwrap() {
            let newest = stored.iter().rev().find(|(_, t)| t.path == key.1).map(|(id, _)| *id);
            assert_eq!(newest, Some(last.event_id), "{key:?}");
        }
    }
    assert!(every.len() >= 3391, "{}", every.len());
}

#[test]
fn a_directory_the_process_may_not_write_is_named() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // The test binary sits under target/, which nobody may not reach: copy it out.
    let exe = dir.path().join("it-bin");
    fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o555)).unwrap();
    let inner = child("open", &data, &exe);
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(inner.get_program())
        .args(inner.get_args())
        .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))));
    let output = match command.output() {
        Ok(output) => output,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("setpriv is needed under CI=true: {e}"),
        Err(e) => return eprintln!("skipped: no setpriv ({e})"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected = format!(
        "error read_only cannot write the history to {}: permission denied (with --history false, none is kept)\n",
        data.display()
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert_eq!(fs::read_dir(&data).unwrap().count(), 0);
}
