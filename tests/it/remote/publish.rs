//! `iacwatch run --publish` against the real SeaweedFS: the pipeline lock (with its heartbeat)
//! in the bucket while CMD runs and the last run after it, beside the state object of the
//! selected workspace; a bucket that cannot be reached leaves CMD and its exit code untouched.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use iacwatch::source::s3::{Fetched, S3Client};
use serde_json::Value;

use super::servers::{ACCESS_KEY, BUCKET, SECRET_KEY, SeaweedFs, runtime};
use crate::support::{eventually, free_port, iacwatch};

const KEY: &str = "apps/web/terraform.tfstate";

/// A directory initialised as `terraform init` leaves it with `backend "s3"` on `endpoint`.
fn initialised(endpoint: &str, workspace: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".terraform")).unwrap();
    let backend = format!(
        r#"{{"version":3,"serial":1,"lineage":"x","backend":{{"type":"s3","config":{{"bucket":"{BUCKET}","key":"{KEY}","endpoint":"{endpoint}","force_path_style":true,"region":"us-east-1","secret_key":null}},"hash":1}}}}"#
    );
    std::fs::write(dir.path().join(".terraform/terraform.tfstate"), backend).unwrap();
    if let Some(workspace) = workspace {
        std::fs::write(dir.path().join(".terraform/environment"), workspace).unwrap();
    }
    dir
}

/// `iacwatch run --publish --lease 3s` of a CMD that exits 3 once `DIR/go` exists (within a minute).
fn start_run(dir: &Path) -> Child {
    iacwatch()
        .args(["run", "--operation", "provision", "--publish", "--lease", "3s", "--dir"])
        .arg(dir)
        .args([
            "--",
            "sh",
            "-c",
            "for i in $(seq 600); do [ -e go ] && exit 3; sleep 0.1; done; exit 9",
        ])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn object(client: &S3Client, key: &str) -> Option<Value> {
    match runtime().block_on(client.get(key, None)) {
        Ok(Fetched::Changed { body, .. }) => Some(serde_json::from_slice(&body).unwrap()),
        _ => None,
    }
}

fn publishes_beside(workspace: Option<&str>, state_key: &str) {
    let Some(s3) = SeaweedFs::start() else {
        return;
    };
    let client = s3.client(&format!("s3://{BUCKET}"), s3.settings());
    let dir = initialised(&s3.endpoint, workspace);
    let child = start_run(dir.path());
    let lock_key = format!("{state_key}.iacwatch/lock.json");
    let first = eventually(Duration::from_secs(30), "the published lock", || {
        object(&client, &lock_key)
    });
    assert_eq!(first["operation"], "provision");
    assert_eq!(first["lease_seconds"], 3);
    assert!(first["pid"].is_i64(), "{first}");
    // The heartbeat is rewritten every lease / 3 (1 s) while CMD runs.
    eventually(Duration::from_secs(20), "a newer heartbeat", || {
        object(&client, &lock_key).filter(|lock| lock["heartbeat_at"] != first["heartbeat_at"])
    });
    std::fs::write(dir.path().join("go"), "").unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(!stderr.contains("publish"), "{stderr}");
    let last = object(&client, &format!("{state_key}.iacwatch/last-run.json")).expect("last-run.json");
    assert_eq!(last["outcome"], "failed");
    assert_eq!(last["exit_code"], 3);
    assert_eq!(object(&client, &lock_key), None, "the lock is removed after CMD");
}

#[test]
fn run_publish_writes_the_markers_of_the_default_workspace() {
    publishes_beside(None, KEY);
}

#[test]
fn run_publish_writes_the_markers_of_a_named_workspace() {
    publishes_beside(Some("blue"), &format!("env:/blue/{KEY}"));
}

#[test]
fn run_publish_to_an_unreachable_bucket_still_runs_cmd() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let dir = initialised(&endpoint, None);
    let output = iacwatch()
        .args(["run", "--operation", "provision", "--publish", "--dir"])
        .arg(dir.path())
        .args(["--", "sh", "-c", "touch ran; exit 5"])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(dir.path().join("ran").exists(), "CMD ran");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("not publishing") && lines[0].contains(KEY),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET_KEY), "{stderr}");
}
