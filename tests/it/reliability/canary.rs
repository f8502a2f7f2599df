//! The canary: a planted secret never comes out of the program, in any output, log or error.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::text;
use crate::support::{CANARY, Daemon, eventually, iacwatch, load_scenario_at, wait_status, workspaces};

/// Files that hold the canary where a parser fails on it: each must still not echo it.
fn plant_unreadable_canaries(root: &Path) {
    let secret = CANARY;
    let files: [(&str, String); 6] = [
        // A state cut in the middle of a secret string: the JSON error is at its end.
        (
            "truncated/terraform.tfstate",
            format!(
                r#"{{"version":4,"terraform_version":"1.0.3","serial":1,"lineage":"l-1","outputs":{{"password":{{"value":"{secret}-and-more"#
            ),
        ),
        // A value of the wrong type where the parser expects a list: serde's message would quote it.
        (
            "wrong-type/terraform.tfstate",
            format!(r#"{{"version":4,"serial":1,"lineage":"l-2","outputs":{{}},"resources":"{secret}"}}"#),
        ),
        // The version field itself holds the secret.
        ("bad-version/terraform.tfstate", format!(r#"{{"version":"{secret}"}}"#)),
        // Not JSON at all, the secret in the first bytes.
        ("not-json/terraform.tfstate", format!("{secret} = hunter2\n")),
        // A plan whose resource_changes is a string.
        (
            "plan-wrong-type/plan.json",
            format!(r#"{{"format_version":"1.1","resource_changes":"{secret}"}}"#),
        ),
        // A pipeline marker whose operation is the secret.
        (
            "marker/.iacwatch/default/lock.json",
            format!(r#"{{"operation":"{secret}","started_at":"{secret}","pid":"{secret}"}}"#),
        ),
    ];
    for (rel, body) in files {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, body).unwrap();
    }
    // The workspace of the marker needs a configuration to be a workspace.
    fs::write(root.join("marker/main.tf"), "# empty\n").unwrap();
    fs::write(root.join("plan-wrong-type/main.tf"), "# empty\n").unwrap();
}

/// Every file under `root` with its size, mode and modification time.
fn listing(root: &Path) -> BTreeMap<PathBuf, (u64, u32, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| {
            let m = e.path().symlink_metadata().unwrap();
            (e.path().to_owned(), (m.len(), m.mode(), m.modified().unwrap()))
        })
        .collect()
}

#[test]
fn canary_never_leaves_the_program() {
    let scenario = load_scenario_at("canary", Some(chrono::Utc::now()));
    let root = scenario.root();
    plant_unreadable_canaries(root);
    let before = listing(root);
    assert!(
        fs::read_to_string(root.join("ws/terraform.tfstate"))
            .unwrap()
            .contains(CANARY),
        "the canary is not planted in the scenario"
    );

    let daemon = Daemon::start(&[root], &["--log-level", "trace", "--settle-time", "100ms"]);
    // The unreadable states turn failed once they are older than the settle time.
    wait_status(&daemon, "truncated", Some("failed"), Duration::from_secs(15));
    wait_status(&daemon, "ws", Some("apply_needed"), Duration::from_secs(15));

    let mut seen: Vec<(String, String)> = Vec::new();
    for path in [
        "/metrics",
        "/api/v1/workspaces",
        "/api/v1/summary",
        "/healthz",
        "/readyz",
        "/",
        "/?status=failed",
        "/api/v1/workspaces?status=failed",
        "/api/v1/transitions",
    ] {
        seen.push((path.to_owned(), daemon.get(path)));
    }
    let workspaces = workspaces(&daemon, "");
    assert!(workspaces.len() >= 7, "{workspaces:#?}");
    for ws in &workspaces {
        let id = ws["id"].as_str().unwrap();
        let path = format!("/api/v1/workspaces/{id}");
        seen.push((path.clone(), daemon.get(&path)));
        let history = format!("{path}/history");
        seen.push((history.clone(), daemon.get(&history)));
    }
    // Every unreadable file is reported, with a message, and none of them quotes the canary.
    let reasons: Vec<&Value> = workspaces
        .iter()
        .flat_map(|w| w["reasons"].as_array().unwrap())
        .collect();
    for dir in ["truncated", "wrong-type", "bad-version", "not-json"] {
        let ws = workspaces.iter().find(|w| w["path"] == dir).unwrap();
        assert_eq!(ws["status"], "failed", "{ws:#}");
        assert!(
            ws["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["code"] == "state_unreadable" && !r["message"].as_str().unwrap().is_empty()),
            "{ws:#}"
        );
    }
    assert!(!reasons.is_empty());

    let mut daemon = daemon;
    daemon.terminate();
    let log = daemon.log.lock().unwrap().join("\n");
    assert!(
        log.lines().count() > 10,
        "trace logging produced almost nothing:\n{log}"
    );
    seen.push(("daemon log (trace)".to_owned(), log));
    // The history's database and its log, as they are on disk.
    let history_files: Vec<PathBuf> = fs::read_dir(daemon.data_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        history_files.iter().any(|p| p.ends_with("history.db")),
        "{history_files:?}"
    );
    for path in history_files {
        let bytes = fs::read(&path).unwrap();
        seen.push((path.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
    }

    for format in ["table", "json"] {
        let output = iacwatch()
            .args(["scan", "--format", format, "--settle-time", "0s"])
            .arg(root)
            .output()
            .unwrap();
        seen.push((format!("scan --format {format} stdout"), text(&output.stdout)));
        seen.push((format!("scan --format {format} stderr"), text(&output.stderr)));
    }
    // Text logs too: the same daemon's trace output in the human format.
    seen.push(("serve text log".to_owned(), text_log_of(root)));

    for (what, body) in &seen {
        assert!(!body.contains(CANARY), "{what} holds the canary:\n{body}");
        // The secret's distinctive middle part, in case an output shortened or escaped it.
        assert!(!body.contains("7f3a9c2e"), "{what} holds part of the canary:\n{body}");
    }
    // And nothing was written into the tree.
    assert_eq!(before, listing(root), "the watched tree changed");
}

/// Runs the daemon with text logs at trace level for a moment and returns what it printed.
fn text_log_of(root: &Path) -> String {
    let mut child = iacwatch()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "trace",
            "--log-format",
            "text",
        ])
        .arg(root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.push_str(&line);
                seen.push('\n');
            }
        })
    };
    // The first full scan reads every file of the tree: its trace is what could leak.
    eventually(Duration::from_secs(30), "the daemon's first full scan", || {
        seen.lock().unwrap().contains("first full scan done").then_some(())
    });
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let _ = child.wait();
    reader.join().unwrap();
    let out = std::mem::take(&mut *seen.lock().unwrap());
    assert!(out.contains("serving"), "{out}");
    out
}
