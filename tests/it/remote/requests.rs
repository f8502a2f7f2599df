//! `iacwatch_remote_requests_total` through the binary, against the real SeaweedFS and moto: a
//! steady poll of an unchanged bucket adds a LIST and a lock-table read each time and no GET; one
//! changed state object costs exactly one GET.

use std::time::Duration;

use super::servers::{ACCESS_KEY, Moto, SECRET_KEY, SeaweedFs, TABLE};
use crate::support::{CANARY, Daemon, eventually, promtool_check_metrics, tool};

/// The value of `iacwatch_remote_{family}_total{root="s3://tfstate",operation}`, when present.
fn counter(metrics: &str, family: &str, operation: &str) -> Option<u64> {
    let series = format!("iacwatch_remote_{family}_total{{root=\"s3://tfstate\",operation=\"{operation}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
}

/// `(list, get, get_not_modified, lock_table_scan)` requests so far, and every error counted.
fn requests(daemon: &Daemon) -> ([u64; 4], u64) {
    let metrics = daemon.get("/metrics");
    assert!(!metrics.contains(CANARY) && !metrics.contains(SECRET_KEY));
    let count = |op| counter(&metrics, "requests", op).unwrap_or_else(|| panic!("no {op} series:\n{metrics}"));
    let errors = ["list", "get", "lock_table_scan", "put", "delete"]
        .iter()
        .map(|op| counter(&metrics, "request_errors", op).unwrap_or_else(|| panic!("no {op} errors")))
        .sum();
    (
        [
            count("list"),
            count("get"),
            count("get_not_modified"),
            count("lock_table_scan"),
        ],
        errors,
    )
}

fn state(serial: u32) -> String {
    format!(
        r#"{{"version":4,"serial":{serial},"lineage":"l","outputs":{{"pw":{{"value":"{CANARY}","type":"string"}}}},"resources":[{{"mode":"managed","type":"null_resource","name":"a","instances":[{{"attributes":{{"id":"1"}}}}]}}]}}"#
    )
}

#[test]
fn a_steady_poll_lists_and_reads_the_lock_table_but_gets_nothing() {
    let (Some(s3), Some(moto)) = (SeaweedFs::start(), Moto::start()) else {
        return;
    };
    for app in ["web", "db", "queue"] {
        s3.put(&format!("apps/{app}/terraform.tfstate"), state(1).as_bytes());
    }
    let daemon = Daemon::builder()
        .args(["--s3-endpoint", &s3.endpoint, "--s3-force-path-style"])
        .args(["--dynamodb-table", TABLE, "--dynamodb-endpoint", &moto.endpoint])
        .args(["--remote-poll-interval", "200ms"])
        .arg("s3://tfstate")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .start();
    // Ready: the first poll is in, and it read each state once.
    let ([list, get, not_modified, scan], errors) = requests(&daemon);
    assert!(list >= 1 && scan >= 1, "{list} {scan}");
    assert_eq!(get, 3, "one GET per state object on the first poll");
    assert_eq!((not_modified, errors), (0, 0));

    // Steady: at least five more polls, each a LIST and a Scan (one page each), and no GET.
    let ([list2, get2, not_modified2, scan2], errors2) = eventually(Duration::from_secs(30), "five more polls", || {
        let counts = requests(&daemon);
        (counts.0[0] >= list + 5).then_some(counts)
    });
    assert_eq!(get2, get, "no GET of an unchanged object");
    assert_eq!((not_modified2, errors2), (0, 0));
    // The lock table is read once a poll, right after the listing.
    assert!(
        scan2 + 1 >= list2 - list + scan && scan2 <= list2 - list + scan + 1,
        "{scan2}"
    );

    // One state changes: exactly one more GET.
    s3.put("apps/db/terraform.tfstate", state(2).as_bytes());
    let ([list3, ..], _) = requests(&daemon);
    let ([_, get3, ..], errors3) = eventually(Duration::from_secs(30), "two polls after the change", || {
        let counts = requests(&daemon);
        (counts.0[0] >= list3 + 2).then_some(counts)
    });
    assert_eq!(get3, get + 1, "one GET for the one changed object");
    assert_eq!(errors3, 0);

    // The families follow Prometheus's naming rules.
    if let Some(promtool) = tool("prometheus/bin/promtool") {
        let (passed, printed) = promtool_check_metrics(&promtool, &daemon.get("/metrics"));
        assert!(passed, "{printed}");
    }
}
