//! Roots as users type them: relative (`root`, `./root/`) or through a symbolic link. Each is
//! resolved once at start-up, so the watcher sees changes under it at once (not at the next full
//! resync), while the `root` label stays as typed.

use std::fs;
use std::time::{Duration, Instant};

use crate::support::{Daemon, eventually};

const STATE: &str = r#"{"version":4,"terraform_version":"1.0.3","serial":1,"lineage":"l-roots","outputs":{},
  "resources":[{"mode":"managed","type":"null_resource","name":"a","provider":"provider[\"registry.terraform.io/hashicorp/null\"]",
  "instances":[{"schema_version":0,"attributes":{"id":"1","triggers":null}}]}]}"#;

/// Serves `label` from a working directory that holds `root/` and `link -> root`, writes a new
/// workspace under the real directory and waits for it to be listed.
fn a_change_shows_at_once(label: &str) {
    let cwd = tempfile::tempdir().unwrap();
    let real = cwd.path().join("root");
    fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink("root", cwd.path().join("link")).unwrap();
    // No resync: only the watcher can make the change visible.
    let daemon = Daemon::builder()
        .in_dir(cwd.path())
        .root(label)
        .args(["--resync-interval", "0"])
        .start();
    let ws = real.join("team/ws");
    fs::create_dir_all(&ws).unwrap();
    let written = Instant::now();
    fs::write(ws.join("terraform.tfstate"), STATE).unwrap();
    let found = eventually(Duration::from_secs(5), &format!("team/ws under root {label}"), || {
        let doc = daemon.get_json("/api/v1/workspaces");
        doc["workspaces"]
            .as_array()
            .and_then(|all| all.iter().find(|w| w["path"] == "team/ws").cloned())
    });
    eprintln!(
        "root {label}: the new workspace was listed {:?} after the write",
        written.elapsed()
    );
    assert_eq!(found["status"], "active", "{found}");
    assert_eq!(found["root"], label, "the label stays as typed: {found}");
    let serving = daemon
        .log
        .lock()
        .unwrap()
        .iter()
        .find_map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .filter(|v| v["message"] == "serving")
        })
        .unwrap();
    assert_eq!(
        serving["roots"],
        serde_json::json!([label]),
        "roots is a JSON list: {serving}"
    );
}

#[test]
fn a_relative_root_is_watched() {
    a_change_shows_at_once("root");
}

#[test]
fn a_relative_root_with_dot_and_slash_is_watched() {
    a_change_shows_at_once("./root/");
}

#[test]
fn a_symlinked_root_is_watched() {
    a_change_shows_at_once("link");
}
