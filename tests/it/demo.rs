//! The remote part of `tools/demo` (`tools/demo-remote`): the real SeaweedFS and moto_server on
//! loopback, the bucket filled by the real Terraform 1.0.3, and `iacwatch scan` of the bucket root
//! run inside it. Every status the bucket is built to show appears, the demo's secret key does not,
//! and no process of the demo outlives it.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{repo, tool};
use crate::terraform::{reasons, text};

/// The secret key of the demo's servers (tools/demo-remote).
const DEMO_SECRET: &str = "demo-secret-key-not-for-production";

/// `(state key, workspace)` -> the statuses it may have, and the reason that must be there.
/// `dns` and `cdn` carry a published plan.json (`STATEKEY.iacwatch/plan.json`), read as a marker:
/// pending changes make `dns` apply_needed, changes outside Terraform make `cdn` drifted.
const EXPECTED: [(&str, &str, &[&str], &str); 9] = [
    ("app/terraform.tfstate", "default", &["provisioning"], "terraform_lock"),
    (
        "billing/terraform.tfstate",
        "default",
        &["failed"],
        "state_digest_mismatch",
    ),
    ("cdn/terraform.tfstate", "default", &["drifted"], "drift_detected"),
    ("dns/terraform.tfstate", "default", &["apply_needed"], "pending_changes"),
    ("jobs/terraform.tfstate", "default", &["failed"], "tainted_instances"),
    (
        "network/terraform.tfstate",
        "default",
        &["active"],
        "state_has_resources",
    ),
    ("network/terraform.tfstate", "preview", &["inactive"], "empty_state"),
    (
        "network/terraform.tfstate",
        "staging",
        &["active"],
        "state_has_resources",
    ),
    ("sandbox/terraform.tfstate", "default", &["inactive"], "empty_state"),
];

#[test]
fn the_demo_bucket_shows_every_remote_status() {
    let (Some(_), Some(_), Some(_)) = (
        tool("remote/bin/weed"),
        tool("remote/bin/moto_server"),
        tool("terraform/bin/terraform"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_iacwatch");
    let started = std::time::Instant::now();
    let out = Command::new(repo().join("tools/demo-remote"))
        .arg(dir.path())
        .args([
            bin,
            "scan",
            "--format",
            "json",
            "--hostname",
            "fixture-host",
            "s3://demo-tfstate",
        ])
        .env("DEMO_REMOTE_PORT_BASE", "auto")
        .env("IACWATCH_BIN", bin)
        .env("IACWATCH_HISTORY", "false")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "tools/demo-remote: {stderr}");
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains(DEMO_SECRET) && !stderr.contains(DEMO_SECRET),
        "the secret key came out"
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let workspaces = doc["workspaces"].as_array().unwrap();
    let mut found: Vec<(String, String, String, Vec<String>)> = workspaces
        .iter()
        .map(|ws| {
            let field = |k: &str| ws[k].as_str().unwrap_or_default().to_owned();
            (field("path"), field("workspace"), field("status"), reasons(ws))
        })
        .collect();
    found.sort();
    assert_eq!(found.len(), EXPECTED.len(), "{found:#?}");
    for ((path, workspace, status, why), (want_path, want_ws, statuses, reason)) in found.iter().zip(EXPECTED) {
        assert_eq!((path.as_str(), workspace.as_str()), (want_path, want_ws), "{found:#?}");
        assert!(
            statuses.contains(&status.as_str()),
            "{path} {workspace}: {status} {why:?}"
        );
        assert!(why.iter().any(|r| r == reason), "{path} {workspace}: {status} {why:?}");
    }
    assert!(doc["errors"].as_array().is_none_or(|e| e.is_empty()), "{doc:#}");
    eprintln!("tools/demo-remote, first run: {:.1} s", took.as_secs_f64());
    assert_no_process_in(dir.path());
}

/// No process runs with `dir` in its command line or as its working directory.
fn assert_no_process_in(dir: &Path) {
    let dir = dir.to_str().unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let proc = entry.path();
        let cmdline = std::fs::read(proc.join("cmdline")).unwrap_or_default();
        let cwd = std::fs::read_link(proc.join("cwd")).unwrap_or_default();
        let named = String::from_utf8_lossy(&cmdline).contains(dir);
        assert!(
            !named && !cwd.starts_with(dir),
            "{} still runs: {}",
            proc.display(),
            String::from_utf8_lossy(&cmdline).replace('\0', " ")
        );
    }
}
