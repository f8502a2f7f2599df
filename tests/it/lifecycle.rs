//! One workspace through its whole life with the real Terraform, and `iacwatch scan` after each
//! step: init, apply, edit, plan, apply the plan, a failing apply, a killed apply, destroy, and a
//! second CLI workspace.

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::{CANARY, eventually, iacwatch};
use crate::terraform::{Workspace, reasons, text};

/// Every workspace of the directory, as `iacwatch scan --format json` reports them, after checking
/// that neither output format leaks the canary.
fn scan_all(ws: &Workspace) -> Vec<Value> {
    let table = iacwatch().arg("scan").arg(ws.path()).output().unwrap();
    let json = iacwatch()
        .args(["scan", "--format", "json"])
        .arg(ws.path())
        .output()
        .unwrap();
    for output in [&table, &json] {
        assert!(output.status.success(), "scan: {}", text(&output.stderr));
        assert!(
            !text(&output.stdout).contains(CANARY) && !text(&output.stderr).contains(CANARY),
            "canary leaked"
        );
    }
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    doc["workspaces"].as_array().unwrap().clone()
}

fn only(ws: &Workspace) -> Value {
    let all = scan_all(ws);
    assert_eq!(all.len(), 1, "{all:#?}");
    all[0].clone()
}

fn expect(ws: &Workspace, status: &str, reason: &str) -> Value {
    let found = only(ws);
    assert_eq!(found["status"], status, "{found:#}");
    assert!(
        reasons(&found).iter().any(|r| r == reason),
        "{reason} missing: {found:#}"
    );
    found
}

fn terraform_ok(ws: &Workspace, args: &[&str]) -> String {
    let output = ws.terraform(args).output().unwrap();
    assert!(
        output.status.success(),
        "terraform {args:?}: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

const V1: &str = r#"
variable "secret" {
  default   = "CANARY-7f3a9c2e-do-not-leak"
  sensitive = true
}
resource "null_resource" "web" {
  triggers = { image = "web:1", token = var.secret }
}
resource "null_resource" "db" {}
output "token" {
  value     = var.secret
  sensitive = true
}
"#;

#[test]
fn a_workspace_through_its_life() {
    let Some(ws) = Workspace::new(V1) else { return };
    let apply = ["apply", "-auto-approve", "-input=false", "-no-color"];

    expect(&ws, "inactive", "no_state");

    terraform_ok(&ws, &apply);
    let found = expect(&ws, "active", "state_has_resources");
    assert_eq!(found["state"]["resources"], 2);
    assert!(
        fs::read_to_string(ws.path().join("terraform.tfstate"))
            .unwrap()
            .contains(CANARY),
        "canary not planted"
    );

    // Edited code, not planned yet.
    fs::write(ws.path().join("main.tf"), V1.replace("web:1", "web:2")).unwrap();
    expect(&ws, "apply_needed", "config_changed");

    // Planned: the plan says what will change.
    terraform_ok(&ws, &["plan", "-input=false", "-no-color", "-out", "tfplan"]);
    let plan_json = terraform_ok(&ws, &["show", "-json", "tfplan"]);
    assert!(
        plan_json.contains(CANARY) || plan_json.contains("sensitive"),
        "plan JSON as Terraform wrote it"
    );
    fs::write(ws.path().join("plan.json"), plan_json).unwrap();
    let found = expect(&ws, "apply_needed", "pending_changes");
    assert_eq!(found["plan"]["current"], true);
    assert_eq!(found["plan"]["changes"]["replace"], 1, "{found:#}");

    // Applied: the plan is now older than the state and says nothing.
    terraform_ok(&ws, &["apply", "-input=false", "-no-color", "tfplan"]);
    let found = expect(&ws, "active", "plan_stale");
    assert_eq!(found["plan"]["current"], false);

    // A failing apply leaves a tainted instance.
    let failing = format!(
        "{V1}\nresource \"null_resource\" \"broken\" {{\n  provisioner \"local-exec\" {{\n    command = \"exit 3\"\n  }}\n}}\n"
    );
    fs::write(ws.path().join("main.tf"), &failing).unwrap();
    let output = ws.terraform(&apply).output().unwrap();
    assert!(!output.status.success());
    let found = expect(&ws, "failed", "tainted_instances");
    assert_eq!(found["state"]["tainted"], 1);

    // Fixed: the tainted instance is replaced.
    fs::write(ws.path().join("main.tf"), V1).unwrap();
    terraform_ok(&ws, &apply);
    expect(&ws, "active", "state_has_resources");

    // An apply killed with its process group leaves a dead lock.
    let slow = format!(
        "{V1}\nresource \"null_resource\" \"slow\" {{\n  provisioner \"local-exec\" {{\n    command = \"sleep 60\"\n  }}\n}}\n"
    );
    fs::write(ws.path().join("main.tf"), slow).unwrap();
    let mut child = ws
        .terraform(&apply)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(60), "the apply to take its lock", || {
        (only(&ws)["status"] == "provisioning").then_some(())
    });
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    // SIGKILL reaches Terraform's second process (panicwrap's child) a moment after the leader
    // is reaped; until it is gone it still holds the OS lock. Seconds, not the stale limit.
    eventually(Duration::from_secs(10), "the killed apply's lock to be dead", || {
        (only(&ws)["status"] == "failed").then_some(())
    });
    let found = expect(&ws, "failed", "dead_lock");
    assert_eq!(found["lock"]["state"], "dead");

    // Destroy (it takes the lock itself, and clears it).
    fs::write(ws.path().join("main.tf"), V1).unwrap();
    terraform_ok(&ws, &["destroy", "-auto-approve", "-input=false", "-no-color"]);
    let found = expect(&ws, "inactive", "empty_state");
    assert_eq!(found["lock"], Value::Null);

    // A second CLI workspace, selected and applied.
    terraform_ok(&ws, &["workspace", "new", "-no-color", "staging"]);
    terraform_ok(&ws, &apply);
    let all = scan_all(&ws);
    let names: Vec<&str> = all.iter().map(|w| w["workspace"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "staging"]);
    assert_eq!(all[0]["status"], "inactive");
    assert_eq!(all[1]["status"], "active");
}
