//! Reliability and hostile input against a running `iacwatch serve`: the canary secret never comes
//! out anywhere, HTTP abuse (slowloris, idle connections, oversized requests, path tricks, odd
//! methods) is answered or cut off, and faults on disk (in-place rewrites, killed writers, bursts,
//! renames, vanishing roots, unreadable directories, symlink loops) leave the daemon up and right.
//!
//! The long runs have a short mode (the default, for CI) and a full mode: `IACWATCH_TORTURE=full
//! cargo test --test it reliability::`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    CANARY, Daemon, eventually, http_get, iacwatch, load_scenario_at, status_of, wait_status, workspaces,
};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---------------------------------------------------------------------------------------------
// The canary

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

// ---------------------------------------------------------------------------------------------
// HTTP abuse

/// Sends raw bytes and reads the status line's code (`None` when the server closed without one).
fn raw_request(address: &str, request: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A server may answer and close before the whole request is sent: that is fine.
    let _ = stream.write_all(request);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let head = text(&raw);
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok())
}

fn small_tree() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let scenario = load_scenario_at("active", Some(chrono::Utc::now()));
    crate::support::copy_tree(scenario.root(), &root.path().join("active"));
    root
}

#[test]
fn slowloris_is_cut_off_by_the_header_timeout() {
    let root = small_tree();
    let daemon = Daemon::start(&[root.path()], &["--header-timeout", "1s"]);
    let mut stream = TcpStream::connect(&daemon.address).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let started = Instant::now();
    let mut closed_after = None;
    'trickle: for byte in request.iter().cycle() {
        if stream.write_all(&[*byte]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 512];
        match stream.read(&mut buf) {
            Ok(0) | Err(_) if started.elapsed() > Duration::from_secs(30) => break 'trickle,
            Ok(0) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Ok(_) => {
                // hyper may answer 408 before closing; the connection still ends.
                closed_after = Some(started.elapsed());
                break;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => {
                closed_after = Some(started.elapsed());
                break;
            }
        }
    }
    let closed_after = closed_after.expect("the trickling connection was never closed");
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(5),
        "closed after {closed_after:?}, expected about the 1 s header timeout"
    );
    // The daemon still serves.
    assert!(daemon.get("/metrics").contains("iacwatch_workspaces"));
}

#[test]
fn a_thousand_idle_connections_do_not_starve_a_scrape() {
    let root = small_tree();
    let daemon = Daemon::start(&[root.path()], &[]);
    let mut idle = Vec::new();
    for i in 0..1000 {
        let stream = TcpStream::connect(&daemon.address).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        // Half send a partial request, half nothing at all.
        if i % 2 == 0 {
            let mut s = &stream;
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost").unwrap();
        }
        idle.push(stream);
    }
    let started = Instant::now();
    let (code, body) = http_get(&daemon.address, "/metrics").unwrap();
    let took = started.elapsed();
    assert_eq!(code, 200);
    assert!(body.contains("iacwatch_workspaces"));
    assert!(
        took < Duration::from_secs(2),
        "the scrape took {took:?} with 1000 idle connections"
    );
    // A handful more scrapes, all prompt.
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(http_get(&daemon.address, "/api/v1/summary").unwrap().0, 200);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    drop(idle);
}

#[test]
fn oversized_requests_and_path_tricks_and_odd_methods() {
    let root = small_tree();
    let daemon = Daemon::start(&[root.path()], &[]);
    let address = daemon.address.as_str();

    let long_path = format!("/api/v1/workspaces?q={}", "a".repeat(20_000));
    let request = format!("GET {long_path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_request(address, request.as_bytes()), Some(414), "oversized URL");

    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(100_000)
    );
    assert_eq!(raw_request(address, request.as_bytes()), Some(431), "oversized header");

    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
    assert_eq!(raw_request(address, request.as_bytes()), Some(431), "too many headers");

    for id in [
        "..",
        "%2e%2e",
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "..%2f..%2f..%2fetc%2fpasswd",
        "%00",
        "a%00b",
        "%2fetc%2fpasswd",
        "....%2f%2f",
    ] {
        let (code, body) = http_get(address, &format!("/api/v1/workspaces/{id}")).unwrap();
        assert_eq!(code, 404, "{id}: {body}");
        assert!(!body.contains("root:"), "{id}: {body}");
    }
    for path in [
        "/api/v1/workspaces/../../../etc/passwd",
        "/../../etc/passwd",
        "/api/v1/%2e%2e/%2e%2e/etc/passwd",
        "/metrics/..",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let code = raw_request(address, request.as_bytes());
        assert!(matches!(code, Some(404) | Some(400)), "{path}: {code:?}");
    }
    // A NUL byte on the wire is not a valid request line.
    let code = raw_request(address, b"GET /api/v1/workspaces/\0 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(matches!(code, Some(400) | Some(404) | None), "raw NUL: {code:?}");

    for method in ["POST", "PUT", "DELETE", "PATCH", "FOO", "PROPFIND"] {
        let request =
            format!("{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        assert_eq!(raw_request(address, request.as_bytes()), Some(405), "{method} /metrics");
    }
    assert!(daemon.get("/healthz").contains("ok"));
}

/// The path tricks never reach the file system: `strace` on the daemon sees no file opened while
/// they are answered (skipped when the process cannot be traced here).
#[test]
fn hostile_ids_never_touch_the_file_system() {
    if std::process::Command::new("strace").arg("-V").output().is_err() {
        crate::support::skip("strace is not installed");
        return;
    }
    let root = small_tree();
    // No periodic work during the probe: no resync, slow lock checks.
    let daemon = Daemon::start(
        &[root.path()],
        &["--resync-interval", "0", "--lock-check-interval", "1h"],
    );
    let pid = daemon_pid(&daemon);
    let trace = tempfile::NamedTempFile::new().unwrap();
    let mut strace = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=%file", "-o"])
        .arg(trace.path())
        .args(["-p", &pid.to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Attached once every thread of the daemon has a tracer (`-f` attaches them one by one), or
    // strace gave up (it cannot trace here: see below).
    eventually(Duration::from_secs(10), "strace to attach to every thread", || {
        let traced = fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
            .all(|task| {
                let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
                status
                    .lines()
                    .any(|l| l.starts_with("TracerPid:") && l.trim_end() != "TracerPid:\t0")
            });
        (traced || strace.try_wait().unwrap().is_some()).then_some(())
    });
    for id in [
        "..%2f..%2fetc%2fpasswd",
        "%2e%2e",
        "%00",
        "%2fetc%2fshadow",
        "..%2F..%2Fproc%2Fself%2Fenviron",
    ] {
        let (code, _) = http_get(&daemon.address, &format!("/api/v1/workspaces/{id}")).unwrap();
        assert_eq!(code, 404);
    }
    // Every answer is in, so the daemon's work for them is done; strace writes out what it saw
    // when SIGINT detaches it.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(strace.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let output = strace.wait_with_output().unwrap();
    let traced = fs::read_to_string(trace.path()).unwrap();
    if traced.is_empty() && !text(&output.stderr).is_empty() {
        crate::support::skip(&format!("strace cannot attach here: {}", text(&output.stderr)));
        return;
    }
    for needle in ["passwd", "shadow", "environ", "/etc"] {
        assert!(!traced.contains(needle), "the daemon touched {needle}:\n{traced}");
    }
}

fn daemon_pid(daemon: &Daemon) -> u32 {
    // The daemon is a child of this process, the one whose command line holds its root.
    let root = daemon_root(daemon);
    let mut children = String::new();
    for task in fs::read_dir("/proc/self/task").unwrap().flatten() {
        children.push_str(&fs::read_to_string(task.path().join("children")).unwrap_or_default());
        children.push(' ');
    }
    children
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .find(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| text(&c).contains(&root))
                .unwrap_or(false)
        })
        .expect("the daemon is a child of the test")
}

/// The root the daemon was started on, from its `serving` log line.
fn daemon_root(daemon: &Daemon) -> String {
    let log = daemon.log.lock().unwrap();
    let line = log.iter().find(|l| l.contains("\"serving\"")).unwrap();
    let v: Value = serde_json::from_str(line).unwrap();
    // The log writes the roots as a JSON array.
    v["roots"][0].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Faults on disk

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
