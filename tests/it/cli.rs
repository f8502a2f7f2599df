//! `iacwatch scan`'s command line: filters, the CI gate's exit codes, the table, errors.

use serde_json::Value;

use crate::support::{iacwatch, load_scenario};
use crate::terraform::text;

fn scan(root: &std::path::Path, now: &str, args: &[&str]) -> std::process::Output {
    iacwatch()
        .args(["scan", "--now", now, "--hostname", "fixture-host"])
        .args(args)
        .arg(root)
        .output()
        .unwrap()
}

#[test]
fn fail_on_is_a_ci_gate_and_status_filters() {
    let failed = load_scenario("failed-tainted");
    let now = failed.scenario.now.to_rfc3339();
    let gate = scan(failed.root(), &now, &["--fail-on", "failed,drifted"]);
    assert_eq!(gate.status.code(), Some(2), "{}", text(&gate.stderr));
    let pass = scan(failed.root(), &now, &["--fail-on", "drifted"]);
    assert_eq!(pass.status.code(), Some(0));

    let named = load_scenario("named-workspaces");
    let now = named.scenario.now.to_rfc3339();
    let only = scan(named.root(), &now, &["--format", "json", "--status", "apply_needed"]);
    assert!(only.status.success());
    let doc: Value = serde_json::from_slice(&only.stdout).unwrap();
    let listed: Vec<&str> = doc["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workspace"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["staging"]);
    assert_eq!(doc["counts"]["active"], 1, "counts cover every workspace: {doc}");
}

#[test]
fn the_table_has_one_line_a_workspace_and_the_counts() {
    let named = load_scenario("named-workspaces");
    let output = scan(named.root(), &named.scenario.now.to_rfc3339(), &[]);
    assert!(output.status.success());
    let table = text(&output.stdout);
    assert!(!table.contains('\x1b'), "no colour when not on a terminal: {table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("STATUS"), "{table}");
    assert!(
        lines[1].starts_with("active") && lines[1].contains("default"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("apply_needed") && lines[2].contains("staging"),
        "{table}"
    );
    assert!(
        table.contains(
            "2 workspaces: 0 destroying, 0 provisioning, 0 failed, 0 drifted, 1 apply_needed, 1 active, 0 inactive"
        ),
        "{table}"
    );
}

#[test]
fn bad_arguments_are_one_line_errors_with_exit_code_1() {
    let root = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--status", "bogus"],
            "unknown status 'bogus'; valid statuses: destroying, provisioning",
        ),
        (&["--fail-on", "failed,nope"], "fail_on"),
        (&["--now", "yesterday"], "now"),
        (&["--exclude", "a[b"], "exclude"),
    ];
    for (args, needle) in cases {
        let output = iacwatch().arg("scan").args(args).arg(root.path()).output().unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
    let missing = iacwatch()
        .args(["scan", "/nonexistent/iacwatch-root"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        text(&missing.stderr).trim(),
        "iacwatch: root /nonexistent/iacwatch-root does not exist"
    );
    let none = iacwatch().arg("scan").env_remove("IACWATCH_ROOTS").output().unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(text(&none.stderr).contains("roots: no root directory given"));
}
