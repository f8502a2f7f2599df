//! `s3://` roots through the binary: `iacwatch scan` over what the real Terraform 1.0.3 wrote
//! through `backend "s3"`, beside a directory and a bucket that does not exist; `iacwatch serve`
//! polling a bucket: a change visible within a poll interval, the server stopped (root down,
//! statuses kept) and restarted. Neither a state's canary nor the secret key ever comes out.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::servers::{ACCESS_KEY, Moto, SECRET_KEY, SeaweedFs, TABLE, put_items, serve_polling};
use super::terraform::{KEY, applied_with_staging, main_tf, run};
use crate::support::{CANARY, Daemon, eventually, iacwatch};
use crate::terraform::{Workspace, text};

/// `iacwatch ARGS` with the test keys in the AWS environment.
fn iacwatch_with_keys(args: &[&str]) -> Output {
    iacwatch_with_secret(args, SECRET_KEY)
}

fn iacwatch_with_secret(args: &[&str], secret: &str) -> Output {
    iacwatch()
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap()
}

fn assert_nothing_leaks(what: &str, text: &str) {
    assert!(!text.contains(CANARY), "a state value in {what}");
    assert!(!text.contains(SECRET_KEY), "the secret key in {what}");
}

/// `(path, workspace, status, backend)` of a JSON document's workspaces under `root`.
fn listed(doc: &Value, root: &str) -> Vec<(String, String, String, String)> {
    doc["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["root"] == root)
        .map(|w| {
            let field = |name: &str| w[name].as_str().unwrap_or_default().to_owned();
            (field("path"), field("workspace"), field("status"), field("backend"))
        })
        .collect()
}

#[test]
fn scan_lists_the_workspaces_terraform_keeps_in_a_bucket() {
    let (Some(s3), Some(moto)) = (SeaweedFs::start(), Moto::start()) else {
        return;
    };
    // The working directory stays until the test ends; the states it made are in the bucket.
    let Some(_ws) = applied_with_staging(&s3, &moto) else {
        return;
    };

    let flags = [
        "--s3-endpoint",
        &s3.endpoint,
        "--s3-force-path-style",
        "--dynamodb-table",
        TABLE,
        "--dynamodb-endpoint",
        &moto.endpoint,
    ];
    let mut args = vec!["scan", "--format", "json"];
    args.extend(flags);
    args.push("s3://tfstate");
    let out = iacwatch_with_keys(&args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert_nothing_leaks("scan's output", &format!("{stdout}{}", text(&out.stderr)));
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let s3 = |ws: &str, status: &str| (KEY.to_owned(), ws.to_owned(), status.to_owned(), "s3".to_owned());
    assert_eq!(
        listed(&doc, "s3://tfstate"),
        [s3("default", "active"), s3("staging", "inactive")],
        "{stdout}"
    );
    assert_eq!(doc["errors"], serde_json::json!([]), "{stdout}");

    // Mixed with a directory, and a bucket that does not exist: the others are still printed,
    // the missing bucket is an `errors` entry, and the scan exits 1 as for an unreadable root.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().to_str().unwrap();
    let mut args = vec!["scan", "--format", "json"];
    args.extend(flags);
    args.extend(["s3://tfstate", local, "s3://no-such-bucket"]);
    let out = iacwatch_with_keys(&args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_nothing_leaks("scan's output", &format!("{stdout}{stderr}"));
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed(&doc, "s3://tfstate").len(), 2, "{stdout}");
    let errors = doc["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{stdout}");
    assert_eq!(errors[0]["root"], "s3://no-such-bucket");
    assert_eq!(errors[0]["kind"], "not_found", "{stdout}");
    assert!(stderr.contains("s3://no-such-bucket"), "{stderr}");

    // A running apply's lock item makes its workspace provisioning; a digest item that differs
    // from the state object (for longer than the settle time) makes it failed, as Terraform
    // itself would refuse that state.
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let staging = format!("tfstate/env:/staging/{KEY}");
    let info = format!(
        r#"{{"ID":"5d3c","Operation":"OperationTypeApply","Info":"{CANARY}","Who":"ci@runner-1","Version":"1.0.3","Created":"{created}","Path":"{staging}"}}"#
    );
    put_items(
        &moto,
        &serde_json::json!([
            {"LockID": {"S": staging}, "Info": {"S": info}},
            {"LockID": {"S": format!("tfstate/{KEY}-md5")}, "Digest": {"S": "0123456789abcdef0123456789abcdef"}},
        ]),
    );
    let mut args = vec!["scan", "--format", "json", "--settle-time", "100ms"];
    args.extend(flags);
    args.push("s3://tfstate");
    let out = iacwatch_with_keys(&args);
    let stdout = text(&out.stdout);
    assert_nothing_leaks("scan's output", &format!("{stdout}{}", text(&out.stderr)));
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        listed(&doc, "s3://tfstate"),
        [s3("default", "failed"), s3("staging", "provisioning")],
        "{stdout}"
    );
    assert!(stdout.contains("state_digest_mismatch"), "{stdout}");

    // A wrong secret: an access-denied entry that names the permission, and no secret shown.
    let wrong = "WRONG-secret-4b1e";
    let out = iacwatch_with_secret(&args, wrong);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["errors"][0]["kind"], "access_denied", "{stdout}");
    assert!(stderr.contains("s3:ListBucket"), "{stderr}");
    assert!(
        !format!("{stdout}{stderr}").contains(wrong),
        "the wrong secret came out"
    );

    // The table names both roots' workspaces.
    let mut args = vec!["scan"];
    args.extend(flags);
    args.push("s3://tfstate");
    let out = iacwatch_with_keys(&args);
    let table = text(&out.stdout);
    assert!(table.contains("staging") && table.contains(KEY), "{table}");
}

const ACTIVE: &str = r#"{"version":4,"serial":2,"lineage":"l","outputs":{"secret":{"value":"CANARY-7f3a9c2e-do-not-leak","type":"string"}},"resources":[{"mode":"managed","type":"null_resource","name":"a","instances":[{"attributes":{"id":"1","triggers":{"secret":"CANARY-7f3a9c2e-do-not-leak"}}}]}]}"#;
const EMPTY: &str = r#"{"version":4,"serial":1,"lineage":"l","resources":[]}"#;

/// The value of `iacwatch_root_up{root="s3://tfstate"}`, if it is exposed.
fn root_up(daemon: &Daemon) -> Option<String> {
    let metrics = daemon.get("/metrics");
    let series = "iacwatch_root_up{root=\"s3://tfstate\"} ";
    metrics.lines().find_map(|l| l.strip_prefix(series)).map(str::to_owned)
}

fn status(daemon: &Daemon, path: &str) -> Option<String> {
    let doc = daemon.get_json("/api/v1/workspaces");
    listed(&doc, "s3://tfstate")
        .into_iter()
        .find(|(p, w, ..)| p == path && w == "default")
        .map(|(_, _, status, _)| status)
}

#[test]
fn serve_polls_a_bucket_and_keeps_its_statuses_while_it_is_down() {
    let Some(mut s3) = SeaweedFs::start() else {
        return;
    };
    assert!(ACTIVE.contains(CANARY));
    s3.put("apps/web/terraform.tfstate", ACTIVE.as_bytes());
    let interval = Duration::from_secs(1);
    let daemon = Daemon::builder()
        .args([
            "--s3-endpoint",
            &s3.endpoint,
            "--s3-force-path-style",
            "--remote-poll-interval",
            "1s",
        ])
        .arg("s3://tfstate")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .start();
    // Ready means the first poll is in.
    assert_eq!(status(&daemon, "apps/web/terraform.tfstate").as_deref(), Some("active"));
    assert_eq!(root_up(&daemon).as_deref(), Some("1"));

    // A change in the bucket: visible within one poll interval plus the time to read it.
    let written = Instant::now();
    s3.put("apps/db/terraform.tfstate", EMPTY.as_bytes());
    eventually(Duration::from_secs(30), "the new state object listed", || {
        status(&daemon, "apps/db/terraform.tfstate").filter(|s| s == "inactive")
    });
    let visible = written.elapsed();
    eprintln!("a new state object was visible after {visible:?} (poll interval {interval:?})");
    assert!(visible <= interval + Duration::from_secs(3), "{visible:?}");

    // The server stopped: root_up 0, an `errors` entry, and the statuses kept.
    s3.stop();
    eventually(Duration::from_secs(60), "root_up 0", || {
        root_up(&daemon).filter(|v| v == "0")
    });
    let doc = daemon.get_json("/api/v1/workspaces");
    assert_eq!(listed(&doc, "s3://tfstate").len(), 2, "{doc}");
    assert_eq!(status(&daemon, "apps/web/terraform.tfstate").as_deref(), Some("active"));
    let errors = doc["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["root"] == "s3://tfstate" && e["kind"] == "unreachable"),
        "{doc}"
    );

    // Restarted: root_up 1 again, the entry gone, and a change seen again.
    s3.start_again();
    eventually(Duration::from_secs(60), "root_up 1", || {
        root_up(&daemon).filter(|v| v == "1")
    });
    s3.put("apps/db/terraform.tfstate", ACTIVE.as_bytes());
    eventually(Duration::from_secs(30), "the rewritten state", || {
        status(&daemon, "apps/db/terraform.tfstate").filter(|s| s == "active")
    });
    let doc = daemon.get_json("/api/v1/workspaces");
    assert_eq!(doc["errors"], serde_json::json!([]), "{doc}");

    let seen = [
        daemon.get("/api/v1/workspaces"),
        daemon.get("/metrics"),
        daemon.get("/"),
        daemon.log.lock().unwrap().join("\n"),
    ];
    assert_nothing_leaks("the API, /metrics, the page or the log", &seen.join("\n"));
}

#[test]
fn a_directory_whose_backend_is_s3_reads_its_workspaces_from_the_bucket_and_is_listed_once() {
    let (Some(s3), Some(moto)) = (SeaweedFs::start(), Moto::start()) else {
        return;
    };
    let Some(ws) = applied_with_staging(&s3, &moto) else {
        return;
    };
    let dir = ws.path().to_str().unwrap();

    // The endpoints come from the directory's backend configuration; the keys from the environment.
    let out = iacwatch_with_keys(&["scan", "--format", "json", dir]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert_nothing_leaks("scan's output", &format!("{stdout}{}", text(&out.stderr)));
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let statuses: Vec<(String, String, String)> = listed(&doc, dir)
        .into_iter()
        .map(|(_, ws, status, backend)| (ws, status, backend))
        .collect();
    let row = |ws: &str, status: &str| (ws.to_owned(), status.to_owned(), "s3".to_owned());
    assert_eq!(
        statuses,
        [row("default", "active"), row("staging", "inactive")],
        "{stdout}"
    );
    assert!(!stdout.contains("remote_state_not_visible"), "{stdout}");

    // With the bucket as a root too, each workspace is listed once, under its directory.
    let out = iacwatch_with_keys(&[
        "scan",
        "--format",
        "json",
        "--s3-endpoint",
        &s3.endpoint,
        "--s3-force-path-style",
        dir,
        "s3://tfstate",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed(&doc, dir).len(), 2, "{stdout}");
    assert_eq!(listed(&doc, "s3://tfstate"), [], "{stdout}");

    // `serve` merges the bucket's reading into the directory's, and sees a new workspace there.
    let dir = ws.path().to_str().unwrap();
    let daemon = serve_polling(&s3, &[dir, "s3://tfstate"]);
    let served = |daemon: &Daemon| -> Vec<(String, String, String)> {
        listed(&daemon.get_json("/api/v1/workspaces"), dir)
            .into_iter()
            .map(|(_, ws, status, backend)| (ws, status, backend))
            .collect()
    };
    eventually(
        Duration::from_secs(30),
        "the bucket's workspaces under the directory",
        || {
            let now = served(&daemon);
            (now == [row("default", "active"), row("staging", "inactive")]).then_some(())
        },
    );
    // Listed once, under the directory: the bucket root leaves the directory's objects out.
    eventually(
        Duration::from_secs(30),
        "the bucket root without the directory's objects",
        || {
            listed(&daemon.get_json("/api/v1/workspaces"), "s3://tfstate")
                .is_empty()
                .then_some(())
        },
    );
    run(&ws, &["workspace", "new", "-no-color", "qa"]);
    eventually(Duration::from_secs(30), "the new workspace", || {
        served(&daemon).contains(&row("qa", "inactive")).then_some(())
    });
    // The directory claims the new object before its bucket's poll (`remote::listed_once`).
    eventually(
        Duration::from_secs(30),
        "the new object claimed by its directory",
        || {
            listed(&daemon.get_json("/api/v1/workspaces"), "s3://tfstate")
                .is_empty()
                .then_some(())
        },
    );
    let seen = [
        daemon.get("/api/v1/workspaces"),
        daemon.get("/metrics"),
        daemon.log.lock().unwrap().join("\n"),
    ];
    assert_nothing_leaks("the daemon's API, metrics or log", &seen.join("\n"));
    drop(daemon);

    // Initialised but never applied: no object in the bucket, and `default` is still listed.
    let never = main_tf(&s3, &moto, "").replace(KEY, "apps/never/terraform.tfstate");
    let Some(never) = Workspace::new(&never) else { return };
    let dir = never.path().to_str().unwrap();
    let out = iacwatch_with_keys(&["scan", "--format", "json", dir]);
    let stdout = text(&out.stdout);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let statuses: Vec<String> = listed(&doc, dir)
        .into_iter()
        .map(|(_, ws, status, _)| format!("{ws} {status}"))
        .collect();
    assert_eq!(statuses, ["default inactive"], "{stdout}");
}

#[test]
fn scan_waits_for_a_state_object_caught_mid_write_to_settle() {
    let Some(s3) = SeaweedFs::start() else { return };
    s3.put("apps/broken/terraform.tfstate", br#"{"version":4,"serial":1,"lin"#);
    let out = iacwatch_with_keys(&[
        "scan",
        "--format",
        "json",
        "--s3-endpoint",
        &s3.endpoint,
        "--s3-force-path-style",
        "s3://tfstate",
    ]);
    let stdout = text(&out.stdout);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let s3_row = |status: &str| {
        vec![(
            "apps/broken/terraform.tfstate".to_owned(),
            "default".to_owned(),
            status.to_owned(),
            "s3".to_owned(),
        )]
    };
    // Not a guess while it may be mid-write: once settled, an object still unreadable is failed.
    assert_eq!(listed(&doc, "s3://tfstate"), s3_row("failed"), "{stdout}");
    assert!(
        stdout.contains("state_unreadable") && !stdout.contains("state_settling"),
        "{stdout}"
    );
}
