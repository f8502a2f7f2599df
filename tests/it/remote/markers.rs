//! The pipeline markers `iacwatch run --publish` writes into the bucket, read back by `serve` on
//! the bucket root: a wrapped real Terraform 1.0.3 apply (`provisioning`, then its last run), a
//! runner killed mid-run (`failed` once its lease runs out), a published plan with changes
//! (`apply_needed`), and a malformed `lock.json` (a reason, never a panic). The canary planted in
//! the state and the plan never comes out.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::servers::{ACCESS_KEY, Moto, SECRET_KEY, SeaweedFs, TABLE};
use super::terraform::{KEY, main_tf, run};
use crate::support::{CANARY, Daemon, eventually, iacwatch};
use crate::terraform::{Workspace, text};

const LOCK_KEY: &str = "apps/web/terraform.tfstate.iacwatch/lock.json";

/// A null resource whose `local-exec` waits (at most 60 s) until the file `go` exists in the
/// workspace directory; `var.run` replaces it, so each apply with a new value runs it again.
fn slow_resources() -> String {
    format!(
        r#"variable "run" {{
  default = "1"
}}

resource "null_resource" "slow" {{
  triggers = {{
    run    = var.run
    secret = "{CANARY}"
  }}
  provisioner "local-exec" {{
    command = "for i in $(seq 600); do [ -e go ] && exit 0; sleep 0.1; done; exit 1"
  }}
}}
"#
    )
}

/// The workspace, applied once (the state object exists), with `go` removed again.
fn applied(s3: &SeaweedFs, moto: &Moto) -> Option<Workspace> {
    let ws = Workspace::new(&main_tf(s3, moto, &slow_resources()))?;
    std::fs::write(ws.path().join("go"), "").unwrap();
    run(&ws, &["apply", "-auto-approve", "-input=false", "-no-color"]);
    std::fs::remove_file(ws.path().join("go")).unwrap();
    Some(ws)
}

/// `serve` on the bucket root, polling every second, with the lock table.
fn daemon(s3: &SeaweedFs, moto: &Moto) -> Daemon {
    Daemon::builder()
        .args([
            "--s3-endpoint",
            &s3.endpoint,
            "--s3-force-path-style",
            "--dynamodb-table",
            TABLE,
            "--dynamodb-endpoint",
            &moto.endpoint,
            "--remote-poll-interval",
            "1s",
        ])
        .arg("s3://tfstate")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .start()
}

/// `iacwatch run --publish --lease 3s ...` with the test keys.
fn wrapper(ws: &Workspace, operation: &str, extra: &[&str], terraform: &[&str]) -> Command {
    let mut args = vec!["--publish", "--lease", "3s"];
    args.extend(extra);
    let mut command = ws.wrapper(operation, &args, terraform);
    command
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1");
    command
}

/// The default workspace of the bucket root, as the daemon lists it.
fn default_ws(daemon: &Daemon) -> Option<Value> {
    let doc = daemon.get_json("/api/v1/workspaces");
    doc["workspaces"]
        .as_array()?
        .iter()
        .find(|w| w["root"] == "s3://tfstate" && w["path"] == KEY && w["workspace"] == "default")
        .cloned()
}

fn status_is(daemon: &Daemon, status: &str) -> Option<Value> {
    default_ws(daemon).filter(|w| w["status"] == status)
}

fn reason<'a>(ws: &'a Value, code: &str) -> Option<&'a Value> {
    ws["reasons"].as_array()?.iter().find(|r| r["code"] == code)
}

fn assert_nothing_leaks(daemon: &Daemon) {
    let api = daemon.get("/api/v1/workspaces");
    let metrics = daemon.get("/metrics");
    let log = daemon.log.lock().unwrap().join("\n");
    for (what, text) in [("the API", &api), ("/metrics", &metrics), ("the log", &log)] {
        assert!(!text.contains(CANARY), "a state or plan value in {what}");
        assert!(!text.contains(SECRET_KEY), "the secret key in {what}");
    }
}

#[test]
fn serve_shows_a_published_run_and_plan_from_the_bucket() {
    let (Some(s3), Some(moto)) = (SeaweedFs::start(), Moto::start()) else {
        return;
    };
    let Some(ws) = applied(&s3, &moto) else {
        return;
    };
    let daemon = daemon(&s3, &moto);
    eventually(Duration::from_secs(30), "active", || status_is(&daemon, "active"));

    // (a) A wrapped apply whose step waits: provisioning from the published lock.
    let apply = ["apply", "-auto-approve", "-input=false", "-no-color", "-var", "run=2"];
    let mut child = ws.spawn(wrapper(&ws, "provision", &[], &apply), "apply.log");
    let seen = eventually(Duration::from_secs(60), "provisioning", || {
        status_is(&daemon, "provisioning")
    });
    let lock = reason(&seen, "pipeline_lock").expect("pipeline_lock");
    assert_eq!(lock["artifact"], LOCK_KEY, "{seen:#}");
    std::fs::write(ws.path().join("go"), "").unwrap();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{}", ws.log("apply.log"));
    let done = eventually(Duration::from_secs(30), "the last run", || {
        status_is(&daemon, "active").filter(|w| w["last_run"]["operation"] == "provision")
    });
    assert_eq!(done["last_run"]["outcome"], "succeeded", "{done:#}");
    assert!(reason(&done, "pipeline_lock").is_none(), "{done:#}");

    // (c) A published plan with changes: apply_needed, read from the bucket.
    let plan = ["plan", "-input=false", "-no-color", "-var", "run=3", "-out", "tfplan"];
    let out = wrapper(&ws, "plan", &["--plan-json", "tfplan"], &plan)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let planned = eventually(Duration::from_secs(30), "apply_needed", || {
        status_is(&daemon, "apply_needed")
    });
    let pending = reason(&planned, "pending_changes").expect("pending_changes");
    assert_eq!(
        pending["artifact"], "apps/web/terraform.tfstate.iacwatch/plan.json",
        "{planned:#}"
    );
    assert!(reason(&planned, "config_changed").is_none(), "{planned:#}");
    assert_nothing_leaks(&daemon);
}

#[test]
fn the_first_apply_of_a_new_configuration_is_provisioning_before_its_state_exists() {
    let (Some(s3), Some(moto)) = (SeaweedFs::start(), Moto::start()) else {
        return;
    };
    let Some(ws) = Workspace::new(&main_tf(&s3, &moto, &slow_resources())) else {
        return;
    };
    let daemon = daemon(&s3, &moto);
    let apply = ["apply", "-auto-approve", "-input=false", "-no-color"];
    let mut child = ws.spawn(wrapper(&ws, "provision", &[], &apply), "apply.log");
    let seen = eventually(Duration::from_secs(60), "provisioning", || {
        status_is(&daemon, "provisioning")
    });
    let lock = reason(&seen, "pipeline_lock").expect("pipeline_lock");
    assert_eq!(lock["artifact"], LOCK_KEY, "{seen:#}");
    // Terraform writes the state only once the slow step is done: none is in the bucket yet.
    let client = s3.client("s3://tfstate", s3.settings());
    let keys: Vec<String> = super::servers::runtime()
        .block_on(client.list())
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert!(!keys.iter().any(|k| k == KEY), "{keys:?}");
    std::fs::write(ws.path().join("go"), "").unwrap();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{}", ws.log("apply.log"));
    let done = eventually(Duration::from_secs(30), "active", || status_is(&daemon, "active"));
    assert_eq!(done["id"], seen["id"], "{done:#}");
    assert_eq!(done["last_run"]["outcome"], "succeeded", "{done:#}");
    assert_nothing_leaks(&daemon);
}

#[test]
fn a_runner_killed_mid_run_is_failed_once_its_lease_runs_out() {
    let (Some(s3), Some(moto)) = (SeaweedFs::start(), Moto::start()) else {
        return;
    };
    let Some(ws) = applied(&s3, &moto) else {
        return;
    };
    let daemon = daemon(&s3, &moto);
    eventually(Duration::from_secs(30), "active", || status_is(&daemon, "active"));
    let apply = ["apply", "-auto-approve", "-input=false", "-no-color", "-var", "run=2"];
    let mut child = ws.spawn(wrapper(&ws, "provision", &[], &apply), "apply.log");
    // Terraform itself runs: its lock item is in the table.
    eventually(Duration::from_secs(60), "provisioning under Terraform's lock", || {
        status_is(&daemon, "provisioning").filter(|w| reason(w, "terraform_lock").is_some())
    });
    eventually(Duration::from_secs(60), "the slow step to start", || {
        ws.log("apply.log").contains("Executing").then_some(())
    });
    // The runner is lost: the wrapper and Terraform's whole process group (the step with it) die
    // at once, leaving the published lock and Terraform's lock item behind.
    let groups = crate::run::children(child.id());
    child.kill().unwrap();
    for group in groups {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(-group), nix::sys::signal::Signal::SIGKILL);
    }
    let killed = Instant::now();
    child.wait().unwrap();
    let failed = eventually(Duration::from_secs(30), "failed", || status_is(&daemon, "failed"));
    let after = killed.elapsed();
    eprintln!("a killed runner (lease 3 s, poll 1 s) was failed after {after:?}");
    let dead = reason(&failed, "dead_pipeline").expect("dead_pipeline");
    assert!(
        dead["message"].as_str().unwrap().contains("lease expired"),
        "{failed:#}"
    );
    assert_eq!(dead["artifact"], LOCK_KEY);
    let left = reason(&failed, "dead_lock")
        .unwrap_or_else(|| panic!("the lock item of the dead run: {}", daemon.get("/api/v1/workspaces")));
    assert!(
        left["message"].as_str().unwrap().contains("lease expired"),
        "{failed:#}"
    );
    // One lease (3 s) after the last heartbeat (at most lease / 3 before the kill), plus one poll.
    assert!(after <= Duration::from_secs(3 + 1 + 3), "{after:?}");
    assert_nothing_leaks(&daemon);
}

#[test]
fn a_malformed_published_lock_is_a_reason_for_that_workspace() {
    let Some(s3) = SeaweedFs::start() else {
        return;
    };
    let state = format!(
        r#"{{"version":4,"serial":1,"lineage":"l","outputs":{{"s":{{"value":"{CANARY}","type":"string"}}}},"resources":[{{"mode":"managed","type":"t","name":"n","instances":[{{"attributes":{{}}}}]}}]}}"#
    );
    s3.put(KEY, state.as_bytes());
    s3.put(
        LOCK_KEY,
        format!(r#"{{"operation":"provision","started_at":"{CANARY}"#).as_bytes(),
    );
    s3.put("apps/db/terraform.tfstate", state.as_bytes());
    s3.put("apps/db/terraform.tfstate.iacwatch/last-run.json", b"\x00\xff not json");
    let out = iacwatch()
        .args([
            "scan",
            "--format",
            "json",
            "--s3-endpoint",
            &s3.endpoint,
            "--s3-force-path-style",
        ])
        .arg("s3://tfstate")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!format!("{stdout}{stderr}").contains(CANARY), "{stdout}{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    let of = |path: &str| {
        doc["workspaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["path"] == path)
            .cloned()
            .unwrap_or_else(|| panic!("{path} in {doc:#}"))
    };
    let web = of(KEY);
    let unreadable = reason(&web, "artifact_unreadable").unwrap_or_else(|| panic!("{web:#}"));
    assert_eq!(unreadable["artifact"], LOCK_KEY);
    assert_eq!(web["status"], "active", "{web:#}");
    let db = of("apps/db/terraform.tfstate");
    assert!(reason(&db, "artifact_unreadable").is_some(), "{db:#}");
    assert_eq!(db["status"], "active", "{db:#}");
}
