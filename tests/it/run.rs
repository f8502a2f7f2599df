//! `iacwatch run`, the pipeline wrapper, driving the real Terraform (`tools/install-terraform`):
//! the markers it writes, the exit codes it passes through, the signals it passes on, and the
//! statuses `iacwatch scan` reads from all that. The wrapper runs with stdin from /dev/null, as
//! in CI.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::{eventually, iacwatch};
use crate::terraform::{Workspace, reasons, text};

const LONG: Duration = Duration::from_secs(120);

fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    eventually(LONG, "the wrapper to end", || child.try_wait().unwrap())
}

/// Two resources, one of which takes a few seconds to destroy.
const SLOW_DESTROY: &str = r#"
resource "null_resource" "a" {}
resource "null_resource" "slow" {
  provisioner "local-exec" {
    when    = destroy
    command = "sleep 4"
  }
}
"#;

const APPLY: &[&str] = &["apply", "-auto-approve", "-input=false", "-no-color"];
const DESTROY: &[&str] = &["destroy", "-auto-approve", "-input=false", "-no-color"];

fn slow_create(seconds: u32) -> String {
    format!(
        r#"
resource "null_resource" "fast" {{}}
resource "null_resource" "slow" {{
  provisioner "local-exec" {{
    command = "sleep {seconds}"
  }}
}}
"#
    )
}

#[test]
fn a_successful_apply_leaves_a_succeeded_run_and_an_active_workspace() {
    let Some(ws) = Workspace::new(r#"resource "null_resource" "a" {}"#) else {
        return;
    };
    let output = ws.wrapper("provision", &[], APPLY).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let run = ws.last_run();
    assert_eq!(run["operation"], "provision");
    assert_eq!(run["outcome"], "succeeded");
    assert_eq!(run["exit_code"], 0);
    assert_eq!(run["run_id"], "test-1");
    assert!(run["started_at"].as_str().unwrap() <= run["finished_at"].as_str().unwrap());
    assert!(!ws.marker("lock.json").exists());
    let leftovers: Vec<_> = fs::read_dir(ws.path().join(".iacwatch/default"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["last-run.json"]);
    assert_eq!(ws.scan()["status"], "active");
}

#[test]
fn a_failing_apply_passes_its_exit_code_through_and_the_workspace_is_failed() {
    let Some(ws) = Workspace::new(
        r#"
resource "null_resource" "broken" {
  provisioner "local-exec" {
    command = "exit 3"
  }
}
"#,
    ) else {
        return;
    };
    let output = ws.wrapper("provision", &[], APPLY).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let run = ws.last_run();
    assert_eq!(run["outcome"], "failed");
    assert_eq!(run["exit_code"], 1);
    assert!(!ws.marker("lock.json").exists());
    let scanned = ws.scan();
    assert_eq!(scanned["status"], "failed", "{scanned:#}");
    let codes = reasons(&scanned);
    assert!(codes.contains(&"last_run_failed".to_owned()), "{codes:?}");
    assert!(codes.contains(&"tainted_instances".to_owned()), "{codes:?}");
}

#[test]
fn a_slow_destroy_shows_destroying_while_it_runs_then_inactive() {
    let Some(ws) = Workspace::new(SLOW_DESTROY) else {
        return;
    };
    let applied = ws.terraform(APPLY).output().unwrap();
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    assert_eq!(ws.scan()["status"], "active");

    let mut wrapper = ws.spawn(ws.wrapper("destroy", &[], DESTROY), "destroy.log");
    let during = eventually(LONG, "scan to show destroying", || {
        let scanned = ws.scan();
        (scanned["status"] == "destroying").then_some(scanned)
    });
    assert!(reasons(&during).contains(&"pipeline_lock".to_owned()), "{during:#}");
    let status = wait_for_exit(&mut wrapper);
    assert!(status.success(), "{}", ws.log("destroy.log"));
    assert_eq!(ws.last_run()["operation"], "destroy");
    assert_eq!(ws.last_run()["outcome"], "succeeded");
    let after = ws.scan();
    assert_eq!(after["status"], "inactive", "{after:#}");
}

/// A slow create whose provisioner ignores SIGINT, so that only Terraform's graceful stop ends it.
///
/// The wrapper passes SIGINT to CMD's whole process group, as a terminal's Ctrl-C does, so it also
/// reaches the provisioner's command. A provisioner that dies of it can end the apply before
/// Terraform's own handler has taken the interrupt; Terraform then exits with the provisioner's
/// error and never says it was interrupted (about one run in 20 on a loaded machine). Ignoring
/// SIGINT in the provisioner leaves Terraform's stop as the only way out, every time.
const SLOW_CREATE_DEAF_TO_SIGINT: &str = r#"
resource "null_resource" "fast" {}
resource "null_resource" "slow" {
  provisioner "local-exec" {
    command = "trap '' INT; exec sleep 60"
  }
}
"#;

#[test]
fn sigterm_to_the_wrapper_stops_terraform_gracefully_and_the_run_is_cancelled() {
    let Some(ws) = Workspace::new(SLOW_CREATE_DEAF_TO_SIGINT) else {
        return;
    };
    let mut wrapper = ws.spawn(ws.wrapper("provision", &[], APPLY), "apply.log");
    deaf_provisioner_started(&wrapper);
    kill(Pid::from_raw(wrapper.id() as i32), Signal::SIGTERM).unwrap();
    let status = eventually(Duration::from_secs(30), "the wrapper to end after SIGTERM", || {
        wrapper.try_wait().unwrap()
    });
    let log = ws.log("apply.log");
    assert!(
        log.contains("Interrupt received") && log.contains("Gracefully shutting down"),
        "Terraform did not see the signal:\n{log}"
    );
    let code = status.code().unwrap();
    assert_eq!(code, 1, "{log}");
    let run = ws.last_run();
    assert_eq!(run["outcome"], "cancelled");
    assert_eq!(run["exit_code"], code);
    assert!(!ws.marker("lock.json").exists());
    let state: Value = serde_json::from_slice(&fs::read(ws.path().join("terraform.tfstate")).unwrap())
        .expect("the state is valid JSON after a cancelled apply");
    assert!(state["resources"].is_array());
    assert!(!ws.path().join(".terraform.tfstate.lock.info").exists());
    assert_eq!(ws.scan()["status"], "failed");
}

#[test]
fn sigkill_of_the_wrapper_leaves_its_lock_and_the_workspace_is_failed() {
    let Some(ws) = Workspace::new(&slow_create(3)) else {
        return;
    };
    let mut wrapper = ws.spawn(ws.wrapper("provision", &[], APPLY), "apply.log");
    eventually(LONG, "the slow provisioner to start", || {
        ws.log("apply.log").contains("Executing").then_some(())
    });
    wrapper.kill().unwrap();
    wrapper.wait().unwrap();
    assert!(ws.marker("lock.json").exists());
    // The wrapper's guardian stops Terraform; nobody removes the wrapper's lock.
    let scanned = eventually(LONG, "scan to show failed with dead_pipeline", || {
        let scanned = ws.scan();
        (scanned["status"] == "failed").then_some(scanned)
    });
    assert!(reasons(&scanned).contains(&"dead_pipeline".to_owned()), "{scanned:#}");
    assert!(ws.marker("lock.json").exists());
    assert!(!ws.marker("last-run.json").exists());
}

#[test]
fn a_second_wrapper_is_refused_while_the_first_runs_unless_it_waits() {
    let Some(ws) = Workspace::new(&slow_create(4)) else {
        return;
    };
    let mut first = ws.spawn(ws.wrapper("provision", &[], APPLY), "first.log");
    eventually(LONG, "the first wrapper's lock", || {
        ws.marker("lock.json").exists().then_some(())
    });
    let lock_before = fs::read(ws.marker("lock.json")).unwrap();

    let mut second = iacwatch();
    second
        .args(["run", "--operation", "destroy", "--dir"])
        .arg(ws.path())
        .args(["--", "true"]);
    let refused = second.output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let message = text(&refused.stderr);
    assert!(
        message.starts_with("iacwatch: ") && message.contains("locked by another pipeline"),
        "{message}"
    );
    assert!(message.contains("provision since"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
    assert_eq!(fs::read(ws.marker("lock.json")).unwrap(), lock_before);

    let mut waiting = iacwatch();
    waiting
        .args(["run", "--operation", "plan", "--wait=2m", "--dir"])
        .arg(ws.path())
        .args(["--", "true"]);
    let waited = waiting.output().unwrap();
    assert_eq!(waited.status.code(), Some(0), "{}", text(&waited.stderr));
    assert!(text(&waited.stderr).contains("waiting for workspace"));
    assert!(wait_for_exit(&mut first).success(), "{}", ws.log("first.log"));
    // The waiting wrapper wrote its last run after the first one had written its own.
    assert_eq!(ws.last_run()["operation"], "plan");
    assert!(!ws.marker("lock.json").exists());
}

#[test]
fn state_snapshot_and_plan_json_are_written_before_the_last_run() {
    let Some(ws) = Workspace::new(r#"resource "null_resource" "a" {}"#) else {
        return;
    };
    let output = ws
        .wrapper(
            "plan",
            &["--state-snapshot", "--plan-json", "tfplan"],
            &["plan", "-input=false", "-no-color", "-out=tfplan"],
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let plan: Value = serde_json::from_slice(&fs::read(ws.marker("plan.json")).unwrap()).unwrap();
    assert!(plan["format_version"].is_string());
    // No state yet: nothing to snapshot, and a warning says so.
    assert!(!ws.marker("state.json").exists());
    assert!(text(&output.stderr).contains("state snapshot skipped"));
    let scanned = ws.scan();
    assert_eq!(scanned["status"], "apply_needed", "{scanned:#}");

    let applied = ws.wrapper("provision", &["--state-snapshot"], APPLY).output().unwrap();
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied.stderr));
    let state: Value = serde_json::from_slice(&fs::read(ws.marker("state.json")).unwrap()).unwrap();
    assert_eq!(state["resources"].as_array().unwrap().len(), 1);
    let state_time = fs::metadata(ws.marker("state.json")).unwrap().modified().unwrap();
    let run_time = fs::metadata(ws.marker("last-run.json")).unwrap().modified().unwrap();
    assert!(state_time <= run_time);
}

/// `iacwatch run ARGS` in `dir`, with no CI variables in sight.
fn run_in(dir: &Path, args: &[&str]) -> Output {
    iacwatch()
        .arg("run")
        .args(args)
        .current_dir(dir)
        .env_remove("TF_WORKSPACE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn assert_one_line_error(output: &Output, needle: &str) {
    let message = text(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{message}");
    assert!(message.starts_with("iacwatch: "), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains(needle), "{needle:?} not in {message}");
}

#[test]
fn bad_input_is_a_one_line_error_and_writes_no_marker() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--operation", "explode", "--", "true"], "unknown operation"),
        (&["--operation", "provision"], "no command to run"),
        (
            &["--operation", "provision", "--dir", "missing", "--", "true"],
            "not a directory",
        ),
        (
            &["--operation", "provision", "--wait=soon", "--", "true"],
            "not a duration",
        ),
        (
            &["--operation", "provision", "--workspace", "../up", "--", "true"],
            "cannot name a folder",
        ),
        (
            &["--operation", "provision", "--", "no-such-command-here"],
            "command not found",
        ),
    ];
    for (args, needle) in cases {
        let output = run_in(dir.path(), args);
        assert_one_line_error(&output, needle);
        assert!(!dir.path().join(".iacwatch").exists(), "{args:?}");
    }
    let not_found = run_in(dir.path(), &["--operation", "provision", "--", "no-such-command-here"]);
    assert_eq!(not_found.status.code(), Some(127));

    // A file where the marker folder should be: it cannot be written.
    fs::write(dir.path().join(".iacwatch"), "").unwrap();
    let output = run_in(dir.path(), &["--operation", "provision", "--", "true"]);
    assert_one_line_error(&output, "cannot write the markers");
    assert_eq!(fs::read(dir.path().join(".iacwatch")).unwrap(), b"");
}

#[test]
fn exit_codes_and_signals_of_the_command_become_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let last_run = || -> Value {
        serde_json::from_slice(&fs::read(dir.path().join(".iacwatch/default/last-run.json")).unwrap()).unwrap()
    };
    let cases: &[(&str, i32, &str)] = &[
        ("exit 0", 0, "succeeded"),
        ("exit 7", 7, "failed"),
        ("kill -TERM $$", 128 + 15, "cancelled"),
        ("kill -INT $$", 128 + 2, "cancelled"),
        ("kill -KILL $$", 128 + 9, "failed"),
    ];
    for (script, code, outcome) in cases {
        let output = run_in(dir.path(), &["--operation", "drift_check", "--", "sh", "-c", script]);
        assert_eq!(output.status.code(), Some(*code), "{script}");
        assert_eq!(last_run()["outcome"], *outcome, "{script}");
        assert_eq!(last_run()["exit_code"], *code, "{script}");
        assert!(!dir.path().join(".iacwatch/default/lock.json").exists());
    }
}

#[test]
fn a_dead_lock_on_this_host_is_taken_over_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let markers = dir.path().join(".iacwatch/blue");
    fs::create_dir_all(&markers).unwrap();
    let host = iacwatch::source::local::liveness::this_host();
    fs::write(
        markers.join("lock.json"),
        format!(r#"{{"operation":"provision","started_at":"2026-01-01T00:00:00Z","pid":99999999,"host":"{host}"}}"#),
    )
    .unwrap();
    let output = iacwatch()
        .args(["run", "--operation", "provision", "--", "true"])
        .current_dir(dir.path())
        .env("TF_WORKSPACE", "blue")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("taking over the abandoned lock"));
    assert!(!markers.join("lock.json").exists());
    assert!(markers.join("last-run.json").exists());
}

#[test]
fn ci_variables_name_the_run_in_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join(".iacwatch/default/lock.json");
    let output = iacwatch()
        .args(["run", "--operation", "plan", "--", "cat"])
        .arg(&lock)
        .current_dir(dir.path())
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_RUN_ID")
        .env("GITLAB_CI", "true")
        .env("CI_PIPELINE_ID", "4242")
        .env("CI_PROJECT_PATH", "acme/infra")
        .env(
            "CI_JOB_URL",
            "https://gitlab-ci-token:secret-token@gitlab.example/acme/infra/-/jobs/9",
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let written: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(written["operation"], "plan");
    assert_eq!(written["run_id"], "4242");
    assert_eq!(written["pipeline"], "acme/infra");
    assert_eq!(written["url"], "https://gitlab.example/acme/infra/-/jobs/9");
    assert_eq!(written["host"], iacwatch::source::local::liveness::this_host());
    assert!(written["pid"].is_u64());
    assert!(!text(&output.stdout).contains("secret-token"));
}

/// The status `iacwatch serve` shows for the one workspace it watches.
fn served_status(daemon: &crate::support::Daemon) -> Value {
    let doc = daemon.get_json("/api/v1/workspaces");
    doc["workspaces"][0].clone()
}

#[test]
fn serve_shows_destroying_during_a_wrapped_destroy_and_inactive_after() {
    let Some(ws) = Workspace::new(SLOW_DESTROY) else {
        return;
    };
    let applied = ws.terraform(APPLY).output().unwrap();
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let daemon = crate::support::Daemon::start(&[ws.path()], &["--lock-check-interval", "1s"]);
    assert_eq!(served_status(&daemon)["status"], "active");
    let mut wrapper = ws.spawn(ws.wrapper("destroy", &[], DESTROY), "destroy.log");
    let during = eventually(LONG, "serve to show destroying", || {
        let served = served_status(&daemon);
        (served["status"] == "destroying").then_some(served)
    });
    assert_eq!(during["lock"]["source"], "pipeline", "{during:#}");
    assert_eq!(during["lock"]["operation"], "destroy", "{during:#}");
    let status = wait_for_exit(&mut wrapper);
    assert!(status.success(), "{}", ws.log("destroy.log"));
    eventually(Duration::from_secs(5), "serve to show inactive", || {
        (served_status(&daemon)["status"] == "inactive").then_some(())
    });
}

/// The processes started by `pid` (its direct children).
pub(crate) fn children(pid: u32) -> Vec<i32> {
    let mut out = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(text.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
    }
    out
}

#[test]
fn serve_shows_failed_within_seconds_when_a_wrapped_apply_is_killed() {
    let Some(ws) = Workspace::new(&slow_create(60)) else {
        return;
    };
    let daemon = crate::support::Daemon::start(&[ws.path()], &["--lock-check-interval", "1s"]);
    let mut wrapper = ws.spawn(ws.wrapper("provision", &[], APPLY), "apply.log");
    eventually(LONG, "serve to show provisioning", || {
        (served_status(&daemon)["status"] == "provisioning").then_some(())
    });
    eventually(LONG, "the slow provisioner to start", || {
        ws.log("apply.log").contains("Executing").then_some(())
    });
    // A cancelled CI job: the wrapper and Terraform's whole process group are killed at once.
    let groups = children(wrapper.id());
    wrapper.kill().unwrap();
    for group in groups {
        let _ = kill(Pid::from_raw(-group), Signal::SIGKILL);
    }
    wrapper.wait().unwrap();
    let started = std::time::Instant::now();
    let failed = eventually(Duration::from_secs(5), "serve to show failed", || {
        let served = served_status(&daemon);
        (served["status"] == "failed").then_some(served)
    });
    eprintln!("killed pipeline seen as failed after {:?}", started.elapsed());
    let codes = reasons(&failed);
    assert!(codes.contains(&"dead_pipeline".to_owned()), "{failed:#}");
    assert!(codes.contains(&"dead_lock".to_owned()), "{failed:#}");
}

/// The processes of process group `group` that are alive (zombies are not: they only wait to be
/// reaped), as `pid (command)`.
fn live_members(group: i32) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: the command may hold spaces and parentheses.
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2) == Some(&group.to_string().as_str()) && fields.first() != Some(&"Z") {
            out.push(format!("{head})"));
        }
    }
    out
}

/// Once the slow provisioner of `SLOW_CREATE_DEAF_TO_SIGINT` runs with SIGINT ignored: the process
/// group Terraform leads under the wrapper. Before that moment ("Executing" is printed just before
/// the shell starts) a SIGINT could still kill the provisioner's shell.
fn deaf_provisioner_started(wrapper: &Child) -> i32 {
    eventually(LONG, "the provisioner to run with SIGINT ignored", || {
        let terraform = children(wrapper.id())
            .into_iter()
            .find(|pid| fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.ends_with("terraform")))?;
        live_members(terraform)
            .iter()
            .filter(|member| member.ends_with("(sleep)"))
            .filter_map(|member| member.split_once(' '))
            .any(|(pid, _)| {
                let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let ignored = status.lines().find_map(|l| l.strip_prefix("SigIgn:"));
                ignored
                    .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
                    .is_some_and(|mask| mask & (1 << (Signal::SIGINT as i32 - 1)) != 0)
            })
            .then_some(terraform)
    })
}

#[test]
fn a_killed_ci_job_stops_terraform_gracefully_and_serve_shows_failed_within_seconds() {
    let Some(ws) = Workspace::new(SLOW_CREATE_DEAF_TO_SIGINT) else {
        return;
    };
    let daemon = crate::support::Daemon::start(&[ws.path()], &["--lock-check-interval", "1s"]);
    // The CI job: the wrapper leads a process group of its own, as a runner's job shell does.
    let mut job = ws.wrapper("provision", &[], APPLY);
    job.process_group(0);
    let mut wrapper = ws.spawn(job, "apply.log");
    let terraform = deaf_provisioner_started(&wrapper);

    // The runner cancels the job: SIGKILL to the job's process group.
    kill(Pid::from_raw(-(wrapper.id() as i32)), Signal::SIGKILL).unwrap();
    wrapper.wait().unwrap();
    let started = std::time::Instant::now();
    let failed = eventually(Duration::from_secs(10), "serve to show failed", || {
        let served = served_status(&daemon);
        (served["status"] == "failed").then_some(served)
    });
    eprintln!("killed job seen as failed after {:?}", started.elapsed());
    assert!(reasons(&failed).contains(&"dead_pipeline".to_owned()), "{failed:#}");
    eventually(Duration::from_secs(10), "no Terraform process left", || {
        live_members(terraform).is_empty().then_some(())
    });
    let log = ws.log("apply.log");
    assert!(
        log.contains("Interrupt received") && log.contains("Gracefully shutting down"),
        "Terraform was not stopped gracefully:\n{log}"
    );
    let state: Value = serde_json::from_slice(&fs::read(ws.path().join("terraform.tfstate")).unwrap())
        .expect("the state is valid JSON after the stop");
    assert!(state["resources"].is_array());
    assert!(!ws.path().join(".terraform.tfstate.lock.info").exists());
}
