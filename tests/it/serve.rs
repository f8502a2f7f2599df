//! `iacwatch serve` against real trees: the first scan, every kind of change on disk reflected
//! within its bound, a Terraform apply killed mid-way turning `failed` within seconds, the golden
//! `/metrics` linted by promtool, and the process contract (signals, port in use, bad config).

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    Daemon, FLEET, Fleet, check_golden, eventually, http_get, http_request, iacwatch, load_scenario,
    promtool_check_metrics, repo, status_of, tool, wait_status, workspaces,
};
use crate::terraform::{Workspace, reasons, text};

const ONE_RESOURCE: &str = r#"{"version":4,"terraform_version":"1.0.3","serial":3,"lineage":"l-1","outputs":{},
  "resources":[{"mode":"managed","type":"null_resource","name":"a","provider":"provider[\"registry.terraform.io/hashicorp/null\"]",
  "instances":[{"schema_version":0,"attributes":{"id":"1","triggers":null}}]}]}"#;

#[test]
fn serve_reports_the_tree_and_follows_every_kind_of_change() {
    let names = FLEET;
    let root = Fleet::at(&names, chrono::Utc::now());
    let daemon = Daemon::start(&[root.path()], &["--quiet-time", "200ms"]);

    // The first scan agrees with every scenario's expectation.
    let listed = workspaces(&daemon, "");
    for name in names {
        for expect in load_scenario(name).scenario.expect {
            let path = format!("{name}/{}", expect.path);
            let found = listed
                .iter()
                .find(|w| w["path"] == path.as_str() && w["workspace"] == expect.workspace.as_str());
            let found = found.unwrap_or_else(|| panic!("{path}:{} not listed", expect.workspace));
            assert_eq!(found["status"], expect.status.as_str(), "{path}:{}", expect.workspace);
        }
    }
    let doc = daemon.get_json("/api/v1/workspaces?status=failed,drifted");
    assert_eq!(doc["workspaces"].as_array().unwrap().len(), 2);
    assert_eq!(doc["counts"]["active"], 2, "counts ignore the status filter: {doc}");
    let summary = daemon.get_json("/api/v1/summary");
    assert_eq!(summary["total"], listed.len());

    // A new workspace appears, within the quiet time plus a little.
    let new = root.path().join("new/ws");
    fs::create_dir_all(&new).unwrap();
    fs::write(new.join("terraform.tfstate"), ONE_RESOURCE).unwrap();
    let took = wait_status(&daemon, "new/ws", Some("active"), Duration::from_secs(5));
    eprintln!("new workspace visible after {took:?}");

    // A plan with pending changes makes it apply_needed.
    fs::copy(
        repo().join("fixtures/artifacts/plan/tf1.0.3-fv0.2-create-update.json"),
        new.join("plan.json"),
    )
    .unwrap();
    wait_status(&daemon, "new/ws", Some("apply_needed"), Duration::from_secs(5));

    // A renamed directory moves; the old path disappears with it.
    fs::rename(root.path().join("new"), root.path().join("moved")).unwrap();
    wait_status(&daemon, "moved/ws", Some("apply_needed"), Duration::from_secs(5));
    wait_status(&daemon, "new/ws", None, Duration::from_secs(5));

    // A deleted workspace disappears.
    fs::remove_dir_all(root.path().join("moved")).unwrap();
    wait_status(&daemon, "moved/ws", None, Duration::from_secs(5));

    // Terraform rewrites the state in place: a truncated file is a write in progress, never a
    // flap to failed, and a burst of writes settles on the last.
    let state = root.path().join("active/ws/terraform.tfstate");
    let good = fs::read(&state).unwrap();
    let watch_until = Instant::now() + Duration::from_millis(2500);
    for i in 0..20 {
        fs::write(&state, &good[..good.len() * i / 20]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        fs::write(&state, &good).unwrap();
    }
    // A writer that leaves the file truncated for a while, shorter than the settle time: a fixed
    // wait on purpose, as the point is what the daemon does NOT do meanwhile (the loop below
    // checks it until `watch_until`, a bounded window).
    fs::write(&state, &good[..good.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    fs::write(&state, &good).unwrap();
    while Instant::now() < watch_until {
        let now = workspaces(&daemon, "?q=active/ws");
        assert_eq!(now[0]["status"], "active", "flapped during a rewrite: {now:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A state left truncated is reported once it has settled, and recovers with a good write.
    fs::write(&state, &good[..good.len() / 2]).unwrap();
    let took = wait_status(&daemon, "active/ws", Some("failed"), Duration::from_secs(10));
    assert!(
        took >= Duration::from_millis(1500),
        "unreadable after only {took:?}: no settle time"
    );
    let ws = workspaces(&daemon, "?q=active/ws").remove(0);
    assert!(reasons(&ws).iter().any(|c| c == "state_unreadable"), "{ws}");
    fs::write(&state, &good).unwrap();
    wait_status(&daemon, "active/ws", Some("active"), Duration::from_secs(5));

    // The root deleted and recreated is picked up again.
    let backup = tempfile::tempdir().unwrap();
    fs::rename(root.path().join("drifted"), backup.path().join("drifted")).unwrap();
    wait_status(&daemon, "drifted/ws", None, Duration::from_secs(5));
    fs::rename(backup.path().join("drifted"), root.path().join("drifted")).unwrap();
    wait_status(&daemon, "drifted/ws", Some("drifted"), Duration::from_secs(5));
}

#[test]
fn a_root_that_appears_later_is_picked_up() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("later");
    let daemon = Daemon::start(&[root.as_path()], &[]);
    assert!(workspaces(&daemon, "").is_empty());
    fs::create_dir_all(root.join("ws")).unwrap();
    fs::write(root.join("ws/terraform.tfstate"), ONE_RESOURCE).unwrap();
    wait_status(&daemon, "ws", Some("active"), Duration::from_secs(10));
    fs::remove_dir_all(&root).unwrap();
    wait_status(&daemon, "ws", None, Duration::from_secs(10));
    fs::create_dir_all(root.join("ws")).unwrap();
    fs::write(root.join("ws/terraform.tfstate"), ONE_RESOURCE).unwrap();
    wait_status(&daemon, "ws", Some("active"), Duration::from_secs(10));
}

#[test]
fn polling_mode_sees_changes_without_file_events() {
    let root = Fleet::at(&["active"], chrono::Utc::now());
    let daemon = Daemon::start(&[root.path()], &["--poll=500ms"]);
    let new = root.path().join("polled");
    fs::create_dir_all(&new).unwrap();
    fs::write(new.join("terraform.tfstate"), ONE_RESOURCE).unwrap();
    wait_status(&daemon, "polled", Some("active"), Duration::from_secs(10));
}

#[test]
fn http_errors_are_json_with_the_right_codes() {
    let root = Fleet::at(&["active"], chrono::Utc::now());
    let daemon = Daemon::start(&[root.path()], &[]);
    let (code, body) = http_get(&daemon.address, "/api/v1/workspaces?status=bogus").unwrap();
    assert_eq!(code, 400);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "unknown_status");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("apply_needed"),
        "lists the valid ones: {body}"
    );
    let (code, body) = http_get(&daemon.address, "/api/v1/workspaces/0000000000000000").unwrap();
    assert_eq!(code, 404);
    assert!(body.contains("unknown_workspace"));
    let (code, _) = http_get(&daemon.address, "/nowhere").unwrap();
    assert_eq!(code, 404);
    let id = workspaces(&daemon, "")[0]["id"].as_str().unwrap().to_owned();
    let one = daemon.get_json(&format!("/api/v1/workspaces/{id}"));
    assert_eq!(one["path"], "active/ws");
    let (code, body) = http_request(&daemon.address, "POST", "/metrics").unwrap();
    assert_eq!(code, 405);
    assert!(body.contains("method_not_allowed"), "{body}");
    assert_eq!(http_get(&daemon.address, "/healthz").unwrap().0, 200);
}

/// Drops the daemon's own counters and times, which change from run to run, and names the root.
fn stable_metrics(body: &str, root: &Path) -> String {
    let root = root.to_string_lossy();
    let mut out: Vec<String> = body
        .lines()
        .filter(|l| {
            let name = l.trim_start_matches("# HELP ").trim_start_matches("# TYPE ");
            name.starts_with("iacwatch_workspace")
        })
        .map(|l| l.replace(root.as_ref(), "ROOT"))
        .collect();
    out.push(String::new());
    out.join("\n")
}

#[test]
fn metrics_match_the_golden_file_and_pass_promtool() {
    let names: Vec<&str> = FLEET.iter().copied().chain(["failed-dead-lock"]).collect();
    // Times fixed in the past, so that every value in the golden file is the same on every run.
    let root = Fleet::at(&names, "2026-01-01T00:00:00Z".parse().unwrap());
    let daemon = Daemon::start(&[root.path()], &[]);
    let body = daemon.get("/metrics");
    for status in iacwatch::model::Status::ALL.map(|s| s.as_str()) {
        assert!(
            body.contains(&format!("iacwatch_workspaces{{status=\"{status}\"}}")),
            "{status} missing"
        );
    }
    assert!(body.contains("iacwatch_build_info{version="));
    assert!(body.contains("iacwatch_last_full_scan_timestamp_seconds "));
    check_golden(
        &repo().join("tests/golden/metrics.txt"),
        &stable_metrics(&body, root.path()),
    )
    .unwrap();
    let Some(promtool) = tool("prometheus/bin/promtool") else {
        return;
    };
    let (passed, printed) = promtool_check_metrics(&promtool, &body);
    assert!(passed && printed.is_empty(), "promtool check metrics: {printed}");

    // Without the per-workspace series, the counts stay.
    let counts_only = Daemon::start(&[root.path()], &["--per-workspace-metrics", "false"]);
    let body = counts_only.get("/metrics");
    assert!(!body.contains("iacwatch_workspace_status{"));
    assert!(body.contains("iacwatch_workspaces{status=\"failed\"} 2"), "{body}");
}

const SLOW_APPLY: &str = r#"
resource "null_resource" "quick" {}
resource "null_resource" "slow" {
  triggers = { round = var.round }
  provisioner "local-exec" {
    command = "sleep 60"
  }
}
variable "round" {
  default = "1"
}
"#;

#[test]
fn a_killed_apply_turns_failed_within_seconds_and_recovers() {
    let Some(ws) = Workspace::new(SLOW_APPLY) else { return };
    let daemon = Daemon::start(&[ws.path()], &["--lock-check-interval", "1s"]);
    assert_eq!(status_of(&daemon, ".").as_deref(), Some("inactive"));
    // Terraform 1.0 runs itself as a child process (to catch its own crashes): a killed CI job
    // kills the whole process group, and so does this test.
    let mut apply = ws
        .terraform(&["apply", "-auto-approve", "-input=false", "-no-color"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    wait_status(&daemon, ".", Some("provisioning"), Duration::from_secs(60));
    let group = nix::unistd::Pid::from_raw(apply.id() as i32);
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).unwrap();
    apply.wait().unwrap();
    let took = wait_status(&daemon, ".", Some("failed"), Duration::from_secs(5));
    eprintln!("killed apply seen as failed after {took:?}");
    let ws_json = workspaces(&daemon, "").remove(0);
    let codes: Vec<&str> = ws_json["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"dead_lock"), "{codes:?}");
    assert_eq!(ws_json["lock"]["state"], "dead");

    // A dead local lock does not stop the next run (Terraform takes the OS lock and rewrites the
    // lock file): apply for real, without the sleep this time: active.
    fs::write(ws.path().join("main.tf"), "resource \"null_resource\" \"quick\" {}\n").unwrap();
    let apply = ws
        .terraform(&["apply", "-auto-approve", "-input=false", "-no-color"])
        .output()
        .unwrap();
    assert!(apply.status.success(), "{}", text(&apply.stderr));
    wait_status(&daemon, ".", Some("active"), Duration::from_secs(5));

    // A second CLI workspace appears as its own workspace.
    let new = ws
        .terraform(&["workspace", "new", "-no-color", "staging"])
        .output()
        .unwrap();
    assert!(new.status.success(), "{}", text(&new.stderr));
    eventually(Duration::from_secs(5), "the staging workspace", || {
        workspaces(&daemon, "")
            .iter()
            .any(|w| w["workspace"] == "staging")
            .then_some(())
    });

    // Destroy (in default): inactive.
    let select = ws
        .terraform(&["workspace", "select", "-no-color", "default"])
        .output()
        .unwrap();
    assert!(select.status.success(), "{}", text(&select.stderr));
    let destroy = ws
        .terraform(&["destroy", "-auto-approve", "-input=false", "-no-color"])
        .output()
        .unwrap();
    assert!(destroy.status.success(), "{}", text(&destroy.stderr));
    wait_status(&daemon, ".", Some("inactive"), Duration::from_secs(5));
}

#[test]
fn sigterm_stops_the_daemon_gracefully() {
    let root = Fleet::at(&["active"], chrono::Utc::now());
    let mut daemon = Daemon::start(&[root.path()], &[]);
    let started = Instant::now();
    let status = daemon.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_port_in_use_or_a_bad_value_is_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let root = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--listen".into(), address.clone()], "cannot listen on"),
        (vec!["--stale-lock-after".into(), "banana".into()], "stale_lock_after"),
        (vec!["--listen".into(), "nowhere".into()], "listen"),
        (vec!["--log-format".into(), "xml".into()], "log_format"),
    ];
    for (args, needle) in cases {
        let output = iacwatch()
            .arg("serve")
            .args(&args)
            .arg(root.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().filter(|l| l.starts_with("iacwatch:")).count(),
            1,
            "{args:?}: {stderr}"
        );
    }
    // A config file with a typo in a key names the file and the key.
    let config = root.path().join("iacwatch.toml");
    fs::write(&config, "stale_lock_afterr = \"1h\"\n").unwrap();
    let output = iacwatch()
        .args(["scan", "--config"])
        .arg(&config)
        .arg(root.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("iacwatch.toml") && stderr.contains("stale_lock_afterr"),
        "{stderr}"
    );
}

fn write_pipeline_lock(dir: &Path, host: &str, pid: u32, started_at: chrono::DateTime<chrono::Utc>) {
    let markers = dir.join(".iacwatch/default");
    fs::create_dir_all(&markers).unwrap();
    let lock = serde_json::json!({
        "operation": "provision", "started_at": started_at.to_rfc3339(), "pid": pid, "host": host,
        "run_id": "77", "pipeline": "deploy"
    });
    fs::write(markers.join("lock.json"), lock.to_string()).unwrap();
}

#[test]
fn a_pipeline_whose_process_dies_turns_failed_without_any_file_event() {
    let root = tempfile::tempdir().unwrap();
    let ws = root.path().join("ws");
    fs::create_dir_all(&ws).unwrap();
    fs::write(ws.join("terraform.tfstate"), ONE_RESOURCE).unwrap();
    let mut pipeline = Command::new("sleep").arg("60").spawn().unwrap();
    write_pipeline_lock(&ws, "this-runner", pipeline.id(), chrono::Utc::now());
    let daemon = Daemon::start(
        &[root.path()],
        &["--hostname", "this-runner", "--lock-check-interval", "1s"],
    );
    assert_eq!(status_of(&daemon, "ws").as_deref(), Some("provisioning"));
    pipeline.kill().unwrap();
    pipeline.wait().unwrap();
    let took = wait_status(&daemon, "ws", Some("failed"), Duration::from_secs(5));
    eprintln!("dead pipeline seen after {took:?}");
    let ws_json = workspaces(&daemon, "").remove(0);
    assert!(reasons(&ws_json).iter().any(|c| c == "dead_pipeline"), "{ws_json:#}");
    // The transition is logged with both statuses and the reasons.
    let log = daemon.log.lock().unwrap().join("\n");
    assert!(
        log.lines().any(|l| l.contains("status changed")
            && l.contains("\"from\":\"provisioning\"")
            && l.contains("\"to\":\"failed\"")
            && l.contains("dead_pipeline")),
        "{log}"
    );
}

#[test]
fn a_lock_turns_stale_with_time_alone_and_resyncs_run() {
    let root = tempfile::tempdir().unwrap();
    let ws = root.path().join("ws");
    fs::create_dir_all(&ws).unwrap();
    fs::write(ws.join("terraform.tfstate"), ONE_RESOURCE).unwrap();
    // Another host's pipeline: its process cannot be checked, only its age.
    write_pipeline_lock(&ws, "another-runner", 4242, chrono::Utc::now());
    let daemon = Daemon::start(
        &[root.path()],
        &[
            "--stale-lock-after",
            "3s",
            "--lock-check-interval",
            "1s",
            "--resync-interval",
            "1s",
        ],
    );
    assert_eq!(status_of(&daemon, "ws").as_deref(), Some("provisioning"));
    wait_status(&daemon, "ws", Some("failed"), Duration::from_secs(8));
    let ws_json = workspaces(&daemon, "").remove(0);
    assert!(reasons(&ws_json).iter().any(|c| c == "stale_lock"), "{ws_json:#}");
    eventually(Duration::from_secs(10), "two full resyncs", || {
        let metrics = daemon.get("/metrics");
        let full = metrics
            .lines()
            .find(|l| l.starts_with("iacwatch_scans_total{kind=\"full\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())?;
        (full >= 3.0).then_some(())
    });
}

#[test]
fn environment_variables_configure_and_are_validated() {
    let root = tempfile::tempdir().unwrap();
    let output = iacwatch()
        .arg("scan")
        .arg(root.path())
        .env("IACWATCH_STALE_LOCK_AFTER", "soon")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("stale_lock_after"),
        "{}",
        text(&output.stderr)
    );
    let output = iacwatch()
        .args(["scan", "--format", "json"])
        .env("IACWATCH_ROOTS", root.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["counts"]["inactive"], 0);
}
