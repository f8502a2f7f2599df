//! HTTP abuse against a running daemon: slowloris, idle connections, oversized requests, path
//! tricks, odd methods and hostile ids are answered or cut off, and never touch the file system.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::text;
use crate::support::{Daemon, eventually, http_get, load_scenario_at};

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
