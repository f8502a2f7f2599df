//! The command line: `scan`'s filters, the CI gate and the table; the exit codes of help, version
//! and usage errors; variables; a closed pipe; listen addresses; completions and the man page.

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

/// The process contract: 0 for help and version, 1 and one line for every usage error or bad
/// value (never clap's 2), 2 only for the gate.
#[test]
fn help_and_version_exit_0_and_usage_errors_exit_1_on_one_line() {
    for args in [
        &["--help"][..],
        &["scan", "--help"],
        &["serve", "-h"],
        &["--version"],
        &["-V"],
    ] {
        let output = iacwatch().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", text(&output.stderr));
        assert!(!output.stdout.is_empty(), "{args:?}");
    }
    let version = text(&iacwatch().arg("--version").output().unwrap().stdout);
    let build = format!("iacwatch {}", iacwatch::build_info::long_version());
    assert_eq!(version.trim(), build);
    assert!(
        version.contains("rustc ") && version.contains(iacwatch::build_info::TARGET),
        "{version}"
    );

    let root = tempfile::tempdir().unwrap();
    let root = root.path().to_str().unwrap();
    let cases: [(&[&str], &str); 8] = [
        (&["scan", "--formt", "json", root], "unexpected argument '--formt'"),
        (&["scan", "--format", "xml", root], "'xml'"),
        (&["bogus"], "unrecognized subcommand"),
        (&[], "a command is needed"),
        (&["serve", "--per-workspace-metrics", "maybe", root], "maybe"),
        (&["serve", "--log-level", "warning", root], "log_level: 'warning'"),
        (&["serve", "--log.format", "xml", root], "log_format"),
        (&["run", "--operation", "provision"], "no command to run"),
    ];
    for (args, needle) in cases {
        let output = iacwatch().args(args).output().unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("iacwatch: ") && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
    }
}

/// Every key is also a variable that reaches validation (the unit test in `config` proves each
/// key has its flag and variable).
#[test]
fn variables_reach_the_configuration() {
    let root = tempfile::tempdir().unwrap();
    for (variable, key) in [
        ("IACWATCH_REQUEST_TIMEOUT", "request_timeout"),
        ("IACWATCH_TELEMETRY_PATH", "telemetry_path"),
        ("IACWATCH_ROUTE_PREFIX", "route_prefix"),
        ("IACWATCH_EXTERNAL_URL", "external_url"),
        ("IACWATCH_LISTEN", "listen"),
        ("IACWATCH_LOG_LEVEL", "log_level"),
    ] {
        let output = iacwatch()
            .args(["serve"])
            .arg(root.path())
            .env(variable, "no good")
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{variable}: {stderr}");
        assert!(stderr.contains(&format!("{key}: ")), "{variable}: {stderr}");
    }
}

/// `iacwatch scan --format json | head -c 16`: the reader goes away after a few bytes; the scan
/// ends quietly, with the code it would have had.
#[test]
fn a_closed_pipe_ends_the_scan_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let fleet = tempfile::tempdir().unwrap();
    let state = std::fs::read(crate::support::repo().join("fixtures/scenarios/active/ws/terraform.tfstate")).unwrap();
    // Far more output than a pipe holds (64 KiB), so the scan is still writing when the reader
    // leaves, for the table too.
    for i in 0..1500 {
        let ws = fleet.path().join(format!("ws-{i:04}"));
        std::fs::create_dir(&ws).unwrap();
        std::fs::write(ws.join("terraform.tfstate"), &state).unwrap();
    }
    for (args, code) in [(&["--format", "json"][..], 0), (&["--fail-on", "active"], 2)] {
        let mut child = iacwatch()
            .args(["scan", "--hostname", "fixture-host"])
            .args(args)
            .arg(fleet.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 16];
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(code), "{args:?}: {}", text(&output.stderr));
        assert_eq!(text(&output.stderr), "", "{args:?}");
    }
}

#[test]
fn the_footer_says_the_counts_ignore_the_status_filter() {
    let named = load_scenario("named-workspaces");
    let output = scan(
        named.root(),
        &named.scenario.now.to_rfc3339(),
        &["--status", "apply_needed"],
    );
    assert!(output.status.success());
    let table = text(&output.stdout);
    assert_eq!(
        table.lines().filter(|l| l.starts_with("apply_needed")).count(),
        1,
        "{table}"
    );
    assert!(table.contains("2 workspaces: "), "{table}");
    assert!(
        table
            .trim_end()
            .ends_with("1 listed (--status apply_needed); the counts above cover every status"),
        "{table}"
    );
}

/// The completion script and the man page come from the clap definitions.
#[test]
fn completions_and_the_man_page_are_generated() {
    let bash = iacwatch().args(["completions", "bash"]).output().unwrap();
    assert!(bash.status.success());
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("iacwatch.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    let sourced = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && complete -p iacwatch", script.display()))
        .output()
        .unwrap();
    assert!(sourced.status.success(), "{}", text(&sourced.stderr));
    assert_eq!(text(&sourced.stderr), "");
    assert!(text(&sourced.stdout).contains("iacwatch"), "{}", text(&sourced.stdout));
    for shell in ["zsh", "fish"] {
        let out = iacwatch().args(["completions", shell]).output().unwrap();
        assert!(
            out.status.success() && text(&out.stdout).contains("web.listen-address"),
            "{shell}"
        );
    }

    let man = iacwatch().arg("man").output().unwrap();
    assert!(man.status.success());
    let page = text(&man.stdout);
    assert!(page.contains(".TH iacwatch 1"), "{page}");
    let mut command = iacwatch::cli::command();
    command.build();
    for sub in ["scan", "serve", "run"] {
        let sub = command.find_subcommand(sub).unwrap();
        for long in sub.get_arguments().filter_map(|a| a.get_long()) {
            let roff = format!("\\-\\-{}", long.replace('-', "\\-"));
            assert!(page.contains(&roff), "the man page lacks --{long}");
        }
    }
    assert!(!page.contains("completions"), "hidden commands stay out of the page");
}

/// `--listen` and `--web.listen-address` in the forms Prometheus users type, several at once; the
/// `serving` line (one per address) is JSON with the roots as a list.
#[test]
fn serve_listens_on_every_address_in_every_form() {
    use std::io::BufRead;
    use std::process::Stdio;
    let root = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--listen",
        ":0",
        "--web.listen-address",
        "localhost:0",
        "--listen",
        "127.0.0.1:0",
    ];
    let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    if ipv6 {
        args.extend(["--web.listen-address", "[::1]:0"]);
    }
    let mut child = iacwatch()
        .args(["serve", "--log.format", "json"])
        .args(&args)
        .arg(root.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wanted = args.len() / 2;
    let mut serving = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while serving.len() < wanted {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("{} of {wanted} serving lines", serving.len())
        });
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if value["message"] == "serving" {
            assert_eq!(
                value["roots"],
                serde_json::json!([root.path().to_str().unwrap()]),
                "{line}"
            );
            serving.push(value["address"].as_str().unwrap().to_owned());
        }
    }
    assert!(serving[0].starts_with("0.0.0.0:"), "{serving:?}");
    if ipv6 {
        assert!(serving.iter().any(|a| a.starts_with("[::1]:")), "{serving:?}");
    }
    for address in &serving {
        let reachable = address.replace("0.0.0.0:", "127.0.0.1:");
        crate::support::eventually(
            std::time::Duration::from_secs(10),
            &format!("/healthz on {address}"),
            || {
                crate::support::http_get(&reachable, "/healthz")
                    .ok()
                    .filter(|(code, _)| *code == 200)
            },
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `scan --shard I/N` over a fleet: each workspace in exactly one shard, by the documented hash
/// (its id read as a hexadecimal number, modulo N), and the counts cover the shard only.
#[test]
fn shards_split_a_scan_into_disjoint_parts_whose_union_is_the_whole() {
    use std::collections::BTreeSet;

    let fleet = crate::support::Fleet::new(&crate::support::FLEET);
    let now = "2030-01-01T00:00:00Z";
    let listing = |args: &[&str]| {
        let out = scan(fleet.path(), now, &[&["--format", "json"], args].concat());
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        crate::support::id_rows(&doc)
    };
    let whole = listing(&[]);
    assert_eq!(whole.len(), fleet.expected.len());
    for count in [2u64, 3] {
        let mut union = BTreeSet::new();
        for index in 0..count {
            let part = listing(&["--shard", &format!("{index}/{count}")]);
            for (id, ..) in &part {
                assert_eq!(
                    u64::from_str_radix(id, 16).unwrap() % count,
                    index,
                    "{id} in {index}/{count}"
                );
            }
            assert!(union.is_disjoint(&part), "{index}/{count} overlaps another shard");
            union.extend(part);
        }
        assert_eq!(union, whole, "the shards of {count} together are the unsharded scan");
    }
    let out = iacwatch()
        .args(["scan", "--shard", "2/2"])
        .arg(fleet.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("shard") && err.contains("less than N"), "{err}");
    let out = iacwatch()
        .env("IACWATCH_SHARD", "x")
        .args(["scan"])
        .arg(fleet.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the variable is read: {}",
        text(&out.stderr)
    );
}
