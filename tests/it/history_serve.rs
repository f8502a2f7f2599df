//! The history in the real daemon: a database that cannot be opened stops `serve` with one line
//! naming the file, `--history false` writes nothing, a restart continues `status_since` and
//! is no transition, and at SIGTERM what is queued for the history is written within 2 s.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{Daemon, Fleet, iacwatch, wait_status, workspaces};

/// `serve --history true --data-dir DIR ROOT`'s exit code and stderr, when it stops by itself.
fn serve_fails(dir: &Path, root: &Path) -> (Option<i32>, String) {
    let output = iacwatch()
        .args(["serve", "--listen", "127.0.0.1:0", "--history", "true", "--data-dir"])
        .arg(dir)
        .arg(root)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_history_that_cannot_be_opened_stops_serve_with_one_line_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();

    let corrupt = tmp.path().join("corrupt");
    fs::create_dir(&corrupt).unwrap();
    fs::write(corrupt.join("history.db"), vec![0x5a; 8192]).unwrap();

    let newer = tmp.path().join("newer");
    fs::create_dir(&newer).unwrap();
    {
        let history = iacwatch::history::History::open(&newer, Default::default(), chrono::Utc::now()).unwrap();
        drop(history);
        let conn = rusqlite::Connection::open(newer.join("history.db")).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }

    let file = tmp.path().join("a-file");
    fs::write(&file, "not a directory").unwrap();

    let cases = [
        (&corrupt, format!("{}/history.db is corrupt", corrupt.display())),
        (&newer, format!("{}/history.db has schema version 99", newer.display())),
        (&file, format!("data directory {} is not a directory", file.display())),
    ];
    for (dir, needle) in cases {
        let (code, stderr) = serve_fails(dir, root.path());
        assert_eq!(code, Some(1), "{stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("iacwatch: ")).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains(&needle), "{needle} not in {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // The damaged file is left as it was, for the operator.
    assert_eq!(fs::read(corrupt.join("history.db")).unwrap(), vec![0x5a; 8192]);
}

#[test]
fn with_history_false_nothing_is_written_and_the_endpoints_say_so() {
    let fleet = Fleet::new(&["active"]);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data = dir.path().join("never");
    let daemon = Daemon::builder()
        .data_dir(&dir)
        .root(fleet.path())
        .arg("--history=false")
        .arg("--data-dir")
        .arg(&data)
        .start();
    for path in ["/api/v1/transitions", "/api/v1/events", "/api/v1/workspaces/x/history"] {
        let (code, body) = crate::support::http_get(&daemon.address, path).unwrap();
        assert_eq!(code, 409, "{path}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], "history_off", "{body}");
    }
    assert!(!data.exists());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

fn since_of(daemon: &Daemon, path: &str) -> String {
    let listed = workspaces(daemon, "");
    let ws = listed
        .iter()
        .find(|w| w["path"] == path)
        .unwrap_or_else(|| panic!("{path}: {listed:?}"));
    ws["status_since"].as_str().unwrap().to_owned()
}

fn transitions(daemon: &Daemon, query: &str) -> Vec<serde_json::Value> {
    daemon.get_json(&format!("/api/v1/transitions{query}"))["transitions"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_restart_keeps_status_since_and_is_no_transition() {
    let fleet = Fleet::new(&["drifted", "active", "inactive-no-state"]);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut first = Daemon::builder().data_dir(&dir).root(fleet.path()).start();
    let drifted_since = since_of(&first, "drifted/ws");
    // Read at once: the first scan is committed before the store says it is ready.
    let before = transitions(&first, "");
    assert_eq!(before.len(), 3, "{before:#?}");
    let appeared = before.iter().find(|t| t["path"] == "drifted/ws").unwrap();
    assert_eq!(
        (&appeared["from"], &appeared["to"]),
        (&serde_json::Value::Null, &"drifted".into())
    );
    let history = first.get_json(&format!(
        "/api/v1/workspaces/{}/history",
        appeared["id"].as_str().unwrap()
    ));
    assert_eq!(history["transitions"].as_array().unwrap().len(), 1, "{history}");
    first.terminate();

    // While it is down, the active workspace loses its state and the inactive one goes away.
    fs::remove_file(fleet.path().join("active/ws/terraform.tfstate")).unwrap();
    fs::remove_dir_all(fleet.path().join("inactive-no-state")).unwrap();
    let second = Daemon::builder().data_dir(&dir).root(fleet.path()).start();
    wait_status(&second, "active/ws", Some("inactive"), Duration::from_secs(10));
    assert_eq!(since_of(&second, "drifted/ws"), drifted_since);
    let after = transitions(&second, "");
    assert_eq!(after.len(), 5, "{after:#?}");
    let edge = |t: &serde_json::Value| (t["path"].clone(), t["from"].clone(), t["to"].clone());
    let null = serde_json::Value::Null;
    assert_eq!(
        edge(&after[0]),
        ("inactive-no-state/ws".into(), "inactive".into(), null.clone()),
        "vanished while down: {after:#?}"
    );
    let gone = before.iter().find(|t| t["path"] == "inactive-no-state/ws").unwrap();
    assert_eq!(after[0]["id"], gone["id"], "the same workspace id");
    let newest = &after[1];
    assert_eq!(
        edge(newest),
        ("active/ws".into(), "active".into(), "inactive".into()),
        "{after:#?}"
    );
    assert_eq!(after[2..], before[..]);
    // The counter starts from the history's totals.
    let metrics = second.get("/metrics");
    assert!(
        metrics.contains(r#"iacwatch_transitions_total{from="none",to="drifted"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"iacwatch_transitions_total{from="active",to="inactive"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"iacwatch_transitions_total{from="inactive",to="none"} 1"#),
        "{metrics}"
    );

    // The listing's filters, and `since` and `limit`.
    let count = |query: &str| transitions(&second, query).len();
    assert_eq!(count("?limit=1"), 1);
    assert_eq!(count("?status=inactive"), 2);
    assert_eq!(count("?status=drifted,inactive"), 3);
    assert_eq!(count("?q=DRIFTED"), 1);
    assert_eq!(
        count(&format!("?root={}", crate::support::url_encode(&fleet.root_label()))),
        5
    );
    assert_eq!(count("?root=elsewhere"), 0);
    let newest_at = newest["at"].as_str().unwrap();
    assert_eq!(count(&format!("?since={}", crate::support::url_encode(newest_at))), 2);
    for (query, code) in [
        ("?since=yesterday", "bad_since"),
        ("?limit=0", "bad_limit"),
        ("?limit=many", "bad_limit"),
        ("?status=broken", "unknown_status"),
    ] {
        let (status, body) = crate::support::http_get(&second.address, &format!("/api/v1/transitions{query}")).unwrap();
        assert_eq!(status, 400, "{query}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], code, "{query}: {body}");
    }
    let id = appeared["id"].as_str().unwrap();
    let later = second.get_json(&format!("/api/v1/workspaces/{id}/history?since=2999-01-01T00:00:00Z"));
    assert_eq!(later["transitions"], serde_json::json!([]));
    let (status, _) = crate::support::http_get(&second.address, "/api/v1/workspaces/nope/history").unwrap();
    assert_eq!(status, 404);
    let (status, _) =
        crate::support::http_get(&second.address, &format!("/api/v1/workspaces/{id}/history?limit=x")).unwrap();
    assert_eq!(status, 400);
}

#[test]
fn at_sigterm_the_history_gets_two_seconds_to_write_what_is_queued() {
    let fleet = Fleet::new(&["active"]);
    let state = fleet.path().join("active/ws/terraform.tfstate");
    let saved = fs::read(&state).unwrap();
    // First the lock goes away while the daemon stops, then it stays until the daemon is gone.
    for (released, to) in [(true, "inactive"), (false, "active")] {
        let mut daemon = Daemon::start(&[fleet.path()], &[]);
        let lock = rusqlite::Connection::open(daemon.data_dir.path().join("history.db")).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        match to {
            "inactive" => fs::remove_file(&state).unwrap(),
            _ => fs::write(&state, &saved).unwrap(),
        }
        wait_status(&daemon, "active/ws", Some(to), Duration::from_secs(5));
        let log = daemon.log.clone();
        let holder = std::thread::spawn(move || {
            if released {
                crate::support::eventually(Duration::from_secs(5), "the daemon to log SIGTERM", || {
                    log.lock().unwrap().iter().any(|l| l.contains("SIGTERM")).then_some(())
                });
                lock.execute_batch("ROLLBACK").unwrap();
            }
            lock
        });
        let asked = std::time::Instant::now();
        assert!(daemon.terminate().success());
        let took = asked.elapsed();
        let lock = holder.join().unwrap();
        if !released {
            // The daemon did not wait for the commit longer than its 2 s (and 1 s for the watcher).
            assert!(took < Duration::from_millis(4500), "took {took:?}");
            crate::support::eventually(Duration::from_secs(2), "the warning of what was not written", || {
                let log = daemon.log.lock().unwrap();
                log.iter()
                    .any(|l| l.contains("stopping before the history recorded every batch"))
                    .then_some(())
            });
        }
        if !released {
            lock.execute_batch("ROLLBACK").unwrap();
        }
        let last: Option<String> = lock
            .query_row(
                "SELECT to_status FROM transitions ORDER BY event_id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if released {
            assert_eq!(
                last.as_deref(),
                Some(to),
                "what was queued at SIGTERM is in the history"
            );
        } else {
            // The state went away in the first round: the first scan found it inactive.
            assert_eq!(
                last.as_deref(),
                Some("inactive"),
                "only the first scan is in the history"
            );
            let count: i64 = lock
                .query_row("SELECT count(*) FROM transitions", [], |r| r.get(0))
                .unwrap();
            assert_eq!(count, 1);
        }
    }
}
