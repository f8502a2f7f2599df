//! A real Alertmanager for the Prometheus tests, delivering to a webhook receiver in the test.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::harness::{Process, WAIT};
use crate::support::free_port;

/// A tiny webhook receiver: every request body it gets goes to the channel.
pub fn webhook_receiver() -> (String, mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let Some(body) = read_request_body(&mut stream) else {
                continue;
            };
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx.send(body).is_err() {
                return;
            }
        }
    });
    (address, rx)
}

/// Reads one request with a `Content-Length` body (what Alertmanager's webhook sends).
fn read_request_body(stream: &mut std::net::TcpStream) -> Option<String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                return Some(String::from_utf8_lossy(&raw[end + 4..end + 4 + length]).into_owned());
            }
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// A real Alertmanager on a loopback port, delivering every alert to a webhook receiver in the test.
pub struct Alertmanager {
    process: Process,
    pub address: String,
    deliveries: mpsc::Receiver<String>,
    _dir: TempDir,
}

impl Alertmanager {
    pub fn start(binary: &Path) -> Alertmanager {
        let (webhook, deliveries) = webhook_receiver();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        fs::write(
            &config,
            format!(
                "route:\n  receiver: test\n  group_by: [alertname, path]\n  group_wait: 1s\n  group_interval: 1s\n  \
                 repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      \
                 - url: \"http://{webhook}/hook\"\n        send_resolved: false\n"
            ),
        )
        .unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(binary);
        command.args([
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address={address}"),
            // Cluster mode off: it would listen on every interface.
            "--cluster.listen-address=".to_owned(),
        ]);
        let mut process = Process::spawn("alertmanager", command, dir.path().join("alertmanager.log"));
        process.wait_ready(&address, "/-/ready");
        Alertmanager {
            process,
            address,
            deliveries,
            _dir: dir,
        }
    }

    /// Waits for a webhook delivery of `alert`, firing, for one of `workspaces` (path, workspace) of `root`.
    pub fn expect_delivery(&self, alert: &str, root: &str, workspaces: &BTreeSet<(String, String)>) {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(body) = self.deliveries.recv_timeout(left) else {
                panic!(
                    "no webhook delivery of {alert} within {WAIT:?}; got {seen:#?}\nalertmanager log:\n{}",
                    self.process.log_text()
                );
            };
            let message: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("webhook body {e}: {body}"));
            let delivered = message["alerts"].as_array().cloned().unwrap_or_default();
            let hit = delivered.iter().any(|a| {
                let label = |k: &str| a["labels"][k].as_str().unwrap_or("").to_owned();
                a["status"] == "firing"
                    && label("alertname") == alert
                    && label("root") == root
                    && workspaces.contains(&(label("path"), label("workspace")))
            });
            if hit {
                return;
            }
            seen.push(message);
        }
    }
}
