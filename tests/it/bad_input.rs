//! Bad input never stops a scan: every broken artifact becomes a reason or a reported error for
//! its own workspace, nothing panics or blocks, and the other workspaces come out right.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{CANARY, iacwatch};
use crate::terraform::{reasons, text};

const GOOD: &str = r#"{"version":4,"serial":1,"lineage":"l","resources":[{"mode":"managed","type":"t","name":"n","instances":[{"attributes":{"id":"1"}}]}]}"#;

fn workspace(root: &Path, name: &str, state: &[u8]) {
    fs::create_dir_all(root.join(name)).unwrap();
    fs::write(root.join(name).join("terraform.tfstate"), state).unwrap();
}

/// Runs a command with a deadline: a scan that blocks is a failure, not a hang.
fn run_with_deadline(mut command: Command, deadline: Duration) -> Output {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > deadline {
            let _ = child.kill();
            panic!("still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn by_path(doc: &Value) -> std::collections::BTreeMap<String, Value> {
    doc["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["path"].as_str().unwrap().to_owned(), w.clone()))
        .collect()
}

#[test]
fn broken_artifacts_are_reasons_of_their_own_workspace_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    workspace(root, "good", GOOD.as_bytes());
    workspace(root, "empty", b"");
    workspace(root, "truncated", &GOOD.as_bytes()[..GOOD.len() / 2]);
    workspace(root, "binary", &[0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3, 0xff, 0xfe]);
    let mut invalid_utf8 = br#"{"version":4,"lineage":""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xc3, 0x28, 0xa0, 0xa1]);
    invalid_utf8.extend_from_slice(br#"","resources":[]}"#);
    workspace(root, "invalid-utf8", &invalid_utf8);
    // Nested 100,000 levels inside an attribute (skipped) and where a value is read.
    let depth = 100_000;
    let deep_value = format!(
        r#"{{"version":4,"resources":[{{"mode":"managed","instances":[{{"attributes":{}{}}}]}}]}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    workspace(root, "deep-value", deep_value.as_bytes());
    workspace(
        root,
        "deep-shape",
        format!(r#"{{"version":4,"resources":{}"#, "[".repeat(depth)).as_bytes(),
    );
    // A secret inside a truncated state must not come out in the error either.
    workspace(
        root,
        "truncated-secret",
        format!(r#"{{"version":4,"outputs":{{"p":{{"value":"{CANARY}"#).as_bytes(),
    );
    // 1 GB (sparse): read as a stream, refused at its first byte.
    workspace(root, "huge", b"");
    fs::File::options()
        .write(true)
        .open(root.join("huge/terraform.tfstate"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    // A FIFO where the state and the selected workspace should be: opening must not block.
    fs::create_dir_all(root.join("fifo/.terraform")).unwrap();
    nix::unistd::mkfifo(&root.join("fifo/terraform.tfstate"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    nix::unistd::mkfifo(&root.join("fifo/.terraform/environment"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    // A plan that is not a plan, and a lock file of garbage, beside a good state.
    workspace(root, "junk-beside", GOOD.as_bytes());
    fs::write(root.join("junk-beside/plan.json"), GOOD).unwrap();
    fs::write(
        root.join("junk-beside/.terraform.tfstate.lock.info"),
        [0u8, 159, 146, 150],
    )
    .unwrap();
    // A symbolic link loop (only walked when links are followed).
    fs::create_dir_all(root.join("loop/inner")).unwrap();
    std::os::unix::fs::symlink(root.join("loop"), root.join("loop/inner/back")).unwrap();
    // Old enough that an unreadable state has settled.
    let old = filetime::FileTime::from_unix_time(chrono::Utc::now().timestamp() - 60, 0);
    for entry in walkdir::WalkDir::new(root).into_iter().flatten() {
        if entry.file_type().is_file() {
            filetime::set_file_mtime(entry.path(), old).unwrap();
        }
    }

    let mut command = iacwatch();
    command
        .args(["scan", "--format", "json", "--follow-symlinks"])
        .arg(root);
    let output = run_with_deadline(command, Duration::from_secs(60));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        !stdout.contains(CANARY) && !text(&output.stderr).contains(CANARY),
        "canary leaked"
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let ws = by_path(&doc);

    assert_eq!(ws["good"]["status"], "active");
    assert_eq!(
        ws["junk-beside"]["status"], "failed",
        "a lock nobody holds is dead: {:#}",
        ws["junk-beside"]
    );
    assert!(
        reasons(&ws["junk-beside"]).contains(&"artifact_unreadable".to_owned()),
        "the plan that is not one"
    );
    assert_eq!(ws["empty"]["status"], "inactive");
    assert!(reasons(&ws["empty"]).contains(&"no_state".to_owned()));
    assert_eq!(ws["deep-value"]["status"], "active");
    for broken in ["truncated", "binary", "deep-shape", "truncated-secret", "huge", "fifo"] {
        assert_eq!(ws[broken]["status"], "failed", "{broken}: {:#}", ws[broken]);
        assert!(
            reasons(&ws[broken]).contains(&"state_unreadable".to_owned()),
            "{broken}: {:#}",
            ws[broken]
        );
    }
    // Invalid UTF-8 in a string: the lineage is dropped or the state is unreadable; either way no panic.
    assert!(ws.contains_key("invalid-utf8"));
    let errors = doc["errors"].as_array().unwrap();
    assert!(errors.iter().any(|e| e["kind"] == "symlink_loop"), "{errors:#?}");
}

#[test]
fn an_unreadable_directory_is_reported_and_skipped() {
    // Root reads everything; the scan runs as `nobody` so that permissions apply.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    workspace(root, "good", GOOD.as_bytes());
    workspace(root, "locked-away/ws", GOOD.as_bytes());
    for path in [
        "good",
        "good/terraform.tfstate",
        "locked-away",
        "locked-away/ws",
        "locked-away/ws/terraform.tfstate",
    ] {
        fs::set_permissions(root.join(path), fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::set_permissions(root.join("locked-away"), fs::Permissions::from_mode(0o700)).unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_iacwatch"));
    // The binary sits under target/, which nobody may not be able to reach: copy it out.
    let copy = root.join("iacwatch-bin");
    fs::copy(binary, &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&copy)
        .args(["scan", "--format", "json"])
        .arg(root);
    let output = run_with_deadline(command, Duration::from_secs(30));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    let ws = by_path(&doc);
    assert_eq!(ws["good"]["status"], "active");
    assert!(!ws.contains_key("locked-away/ws"));
    let errors = doc["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["kind"] == "permission_denied" && e["path"] == "locked-away"),
        "{errors:#?}"
    );
}
