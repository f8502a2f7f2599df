//! Faults on disk: in-place rewrites, killed writers, bursts, renames, vanishing roots, unreadable
//! directories and symlink loops leave the daemon up and right.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Daemon, eventually, http_get, status_of, wait_status, workspaces};

/// Full mode runs the counts the issue names; short mode (the default, for CI) a tenth of them.
fn full() -> bool {
    std::env::var("IACWATCH_TORTURE").is_ok_and(|v| v == "full")
}

/// A read-only bind mount of a directory, undone on drop; `None` where mounting is not allowed.
struct ReadOnlyView {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl ReadOnlyView {
    fn of(source: &Path) -> Option<ReadOnlyView> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro");
        fs::create_dir(&path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["--bind", "-o", "ro"])
            .arg(source)
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        // Older mount(8) ignores `ro` on the first bind: remount to be sure.
        let _ = std::process::Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(&path)
            .status();
        assert!(
            fs::write(path.join(".probe"), b"x").is_err(),
            "the bind mount is writable"
        );
        Some(ReadOnlyView { path, _dir: dir })
    }
}

impl Drop for ReadOnlyView {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A valid v4 state of about `resources` null resources (roughly 250 bytes each).
fn big_state(resources: usize, serial: u64) -> Vec<u8> {
    let mut out = format!(
        r#"{{"version":4,"terraform_version":"1.0.3","serial":{serial},"lineage":"big-1","outputs":{{}},"resources":["#
    );
    for i in 0..resources {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"mode":"managed","type":"null_resource","name":"r{i}","provider":"provider[\"registry.terraform.io/hashicorp/null\"]","instances":[{{"schema_version":0,"attributes":{{"id":"{i}","triggers":{{"k":"value-{i}-padding-padding-padding"}}}}}}]}}"#
        ));
    }
    out.push_str("]}\n");
    out.into_bytes()
}

/// Rewrites `path` the way Terraform's local backend does: truncate, then write in pieces.
fn rewrite_in_place(path: &Path, bytes: &[u8], pieces: usize, stop_after: Option<usize>) {
    let mut file = fs::OpenOptions::new().write(true).truncate(true).open(path).unwrap();
    for (i, piece) in bytes.chunks(bytes.len().div_ceil(pieces)).enumerate() {
        if stop_after == Some(i) {
            return;
        }
        file.write_all(piece).unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_micros(300));
    }
}

fn workspace_with_state(dir: &Path, state: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("main.tf"), "resource \"null_resource\" \"a\" {}\n").unwrap();
    fs::write(dir.join("terraform.tfstate"), state).unwrap();
}

/// Watches `path`'s status from another thread; every status seen, in order, without repeats.
struct StatusRecorder {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl StatusRecorder {
    fn start(address: &str, id: &str) -> StatusRecorder {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let (address, path) = (address.to_owned(), format!("/api/v1/workspaces/{id}"));
        let thread = std::thread::spawn(move || {
            let mut seen: Vec<String> = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let status = match http_get(&address, &path) {
                    Ok((200, body)) => {
                        let v: Value = serde_json::from_str(&body).unwrap();
                        let reasons: Vec<&str> = v["reasons"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .filter_map(|r| r["code"].as_str())
                            .collect();
                        format!("{} {reasons:?}", v["status"].as_str().unwrap())
                    }
                    other => format!("{other:?}"),
                };
                if seen.last() != Some(&status) {
                    seen.push(status);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            seen
        });
        StatusRecorder {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

fn id_of(daemon: &Daemon, path: &str) -> String {
    workspaces(daemon, "")
        .iter()
        .find(|w| w["path"] == path)
        .unwrap_or_else(|| panic!("{path} is not listed"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn in_place_rewrites_never_flap_and_a_killed_writer_is_caught() {
    let rewrites = if full() { 1000 } else { 100 };
    let source = tempfile::tempdir().unwrap();
    let big = source.path().join("big");
    workspace_with_state(&big, &big_state(4000, 1));
    let steady = source.path().join("steady");
    workspace_with_state(&steady, &big_state(2, 1));
    let view = ReadOnlyView::of(source.path());
    if view.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("a read-only bind mount is needed under CI=true (run as root)");
    }
    let watched = view.as_ref().map_or(source.path(), |v| v.path.as_path());
    let daemon = Daemon::start(&[watched], &["--settle-time", "2s"]);
    wait_status(&daemon, "big", Some("active"), Duration::from_secs(15));
    let recorder = StatusRecorder::start(&daemon.address, &id_of(&daemon, "big"));
    let started = Instant::now();
    for serial in 2..rewrites + 2 {
        rewrite_in_place(
            &big.join("terraform.tfstate"),
            &big_state(4000, serial as u64),
            16,
            None,
        );
    }
    let took = started.elapsed();
    // The recorder runs on until the daemon has read the last write.
    let last = (rewrites + 1) as u64;
    eventually(Duration::from_secs(15), "the daemon to read the last rewrite", || {
        workspaces(&daemon, "")
            .iter()
            .any(|w| w["path"] == "big" && w["state"]["serial"] == last)
            .then_some(())
    });
    let seen = recorder.finish();
    assert!(
        seen.iter()
            .all(|s| s.starts_with("active") && !s.contains("state_unreadable")),
        "{rewrites} rewrites in {took:?}: the workspace left active: {seen:#?}"
    );
    assert_eq!(status_of(&daemon, "steady").as_deref(), Some("active"));

    // A writer killed half-way: unreadable once settled, right again after a good write.
    rewrite_in_place(&big.join("terraform.tfstate"), &big_state(4000, 9999), 16, Some(8));
    wait_status(&daemon, "big", Some("failed"), Duration::from_secs(10));
    let ws = workspaces(&daemon, "")
        .into_iter()
        .find(|w| w["path"] == "big")
        .unwrap();
    assert!(ws["reasons"].to_string().contains("state_unreadable"), "{ws:#}");
    rewrite_in_place(&big.join("terraform.tfstate"), &big_state(4000, 10000), 16, None);
    wait_status(&daemon, "big", Some("active"), Duration::from_secs(10));
    assert_eq!(status_of(&daemon, "steady").as_deref(), Some("active"));
}

#[test]
fn bursts_renames_vanishing_roots_and_loops_leave_the_daemon_right() {
    let files = if full() { 10_000 } else { 1_000 };
    let source = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let state = big_state(3, 1);
    for name in ["steady", "burst", "renamed-from"] {
        workspace_with_state(&source.path().join(name), &state);
    }
    workspace_with_state(&other.path().join("ws"), &state);
    std::os::unix::fs::symlink("..", source.path().join("steady/loop")).unwrap();
    std::os::unix::fs::symlink("loop-b", source.path().join("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", source.path().join("loop-b")).unwrap();
    let view = ReadOnlyView::of(source.path());
    let watched = view.as_ref().map_or(source.path(), |v| v.path.as_path());
    let daemon = Daemon::start(&[watched, other.path()], &["--settle-time", "500ms"]);
    for path in ["steady", "burst", "renamed-from"] {
        wait_status(&daemon, path, Some("active"), Duration::from_secs(15));
    }

    // A burst of files created and deleted in seconds, beside a workspace and inside a new directory.
    let started = Instant::now();
    let burst = source.path().join("burst/junk");
    fs::create_dir(&burst).unwrap();
    for i in 0..files {
        fs::write(burst.join(format!("f{i}.tmp")), b"x").unwrap();
    }
    fs::remove_dir_all(&burst).unwrap();
    let took = started.elapsed();
    assert!(daemon.get("/healthz").contains("ok"), "down after the burst");
    wait_status(&daemon, "burst", Some("active"), Duration::from_secs(20));
    assert!(took < Duration::from_secs(60), "the burst itself took {took:?}");

    // A watched directory renamed: the old path goes, the new one comes.
    fs::rename(source.path().join("renamed-from"), source.path().join("renamed-to")).unwrap();
    wait_status(&daemon, "renamed-from", None, Duration::from_secs(15));
    wait_status(&daemon, "renamed-to", Some("active"), Duration::from_secs(15));

    // A root deleted and recreated.
    let other_root = other.path().to_owned();
    fs::remove_dir_all(&other_root).unwrap();
    eventually_gone(&daemon, &other_root);
    workspace_with_state(&other_root.join("ws2"), &state);
    wait_status(&daemon, "ws2", Some("active"), Duration::from_secs(30));

    // Through all of it the untouched workspace stayed right and the daemon up.
    assert_eq!(status_of(&daemon, "steady").as_deref(), Some("active"));
    assert!(daemon.get("/metrics").contains("iacwatch_workspaces"));
}

fn eventually_gone(daemon: &Daemon, root: &Path) {
    let label = root.display().to_string();
    crate::support::eventually(Duration::from_secs(15), "the deleted root's workspaces to go", || {
        workspaces(daemon, "")
            .iter()
            .all(|w| w["root"] != label.as_str())
            .then_some(())
    });
}
