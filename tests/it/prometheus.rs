//! `iacwatch serve` scraped by a real Prometheus (Debian's, from `tools/install-prometheus`), in
//! both metrics modes: the counts Prometheus computes from the scraped series equal the API's,
//! before and after a change on disk; `promtool check metrics` accepts `/metrics`; with
//! per-workspace series the per-workspace alert rules of `dashboards/alerts.yml` fire for the
//! failed, drifted and apply-needed workspaces and for no other (no count alert doubles them), and a
//! real Alertmanager delivers the failed alert to a webhook; with counts only
//! (`--per-workspace-metrics false`) the count rules fire instead, once per status, and clear; in
//! both, every PromQL expression of the Grafana dashboard runs and its stat panels count right.
//! `fleet` has several iacwatch instances on one dashboard.

mod alertmanager;
mod dashboard;
mod fleet;
mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use crate::support::{self, Daemon, FLEET, promtool_check_metrics, tool};
use alertmanager::Alertmanager;
use harness::{
    Fleet, Prometheus, WAIT, api_counts, api_workspaces, converge, count_alerts, load_fast_rules, loaded_rules,
    prometheus_agrees, prometheus_config, sample_value, workspace_alerts,
};

/// Writes a workspace with one managed resource into `staging`, then moves it to `target` at once.
fn add_workspace(staging: &Path, target: &Path) {
    fs::create_dir_all(staging).unwrap();
    let now = chrono::Utc::now();
    let main_tf = staging.join("main.tf");
    fs::write(&main_tf, "resource \"null_resource\" \"added\" {}\n").unwrap();
    support::set_mtime(&main_tf, now - chrono::TimeDelta::seconds(60));
    let state = serde_json::json!({
        "version": 4,
        "terraform_version": "1.0.3",
        "serial": 1,
        "lineage": "3a1f0c44-8d1e-4a43-9a55-5d1d2d0c7e01",
        "outputs": {},
        "resources": [{
            "mode": "managed",
            "type": "null_resource",
            "name": "added",
            "provider": "provider[\"registry.terraform.io/hashicorp/null\"]",
            "instances": [{"schema_version": 0, "attributes": {"id": "1", "triggers": null},
                           "sensitive_attributes": [], "private": "bnVsbA=="}]
        }]
    });
    let state_path = staging.join("terraform.tfstate");
    fs::write(&state_path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    support::set_mtime(&state_path, now - chrono::TimeDelta::seconds(30));
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::rename(staging, target).unwrap();
}

/// Pipes `body` to `promtool check metrics`: its exit status and everything it printed.
#[test]
fn prometheus_counts_equal_the_api_before_and_after_a_change() {
    let (Some(prometheus_bin), Some(promtool)) = (tool("prometheus/bin/prometheus"), tool("prometheus/bin/promtool"))
    else {
        return;
    };
    let fleet = Fleet::new(&FLEET);
    let daemon = Daemon::start(&[&fleet.root], &["--lock-check-interval", "1s"]);
    assert_eq!(
        api_counts(&daemon),
        fleet.counts(),
        "the API disagrees with the fixtures"
    );

    // The exposition as scraped passes promtool's parser and linter (lint findings exit non-zero).
    let body = daemon.get("/metrics");
    let (ok, output) = promtool_check_metrics(&promtool, &body);
    assert!(
        ok && output.trim().is_empty(),
        "promtool check metrics:\n{output}\n--- /metrics:\n{body}"
    );

    let prom_dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(&prometheus_bin, prom_dir.path(), &prometheus_config(&daemon, ""));
    let before = api_counts(&daemon);
    converge(WAIT, "Prometheus's counts to equal the API's", || {
        prometheus_agrees(&prometheus, &before)
    });
    let up = prometheus.by_label("up{job=\"iacwatch\"}", "job").unwrap();
    assert_eq!(up.get("iacwatch"), Some(&1.0));
    let workspaces = prometheus.query("count(iacwatch_workspace_info)").unwrap();
    assert_eq!(sample_value(&workspaces[0]["value"]), Ok(fleet.expected.len() as f64));

    // A new workspace with one managed resource appears; the drifted one is deleted.
    add_workspace(&fleet.dir.path().join("staging"), &fleet.root.join("added/ws"));
    fs::remove_dir_all(fleet.root.join("drifted")).unwrap();
    let mut after = before.clone();
    *after.get_mut("active").unwrap() += 1.0;
    *after.get_mut("drifted").unwrap() -= 1.0;
    converge(WAIT, "the API to show the added and the deleted workspace", || {
        let listed = api_workspaces(&daemon);
        let counts = api_counts(&daemon);
        let added = listed.get(&("added/ws".to_owned(), "default".to_owned()));
        let gone = !listed.keys().any(|(path, _)| path.starts_with("drifted/"));
        if added.map(String::as_str) == Some("active") && gone && counts == after {
            Ok(())
        } else {
            Err(format!("{listed:?} {counts:?}"))
        }
    });
    converge(WAIT, "Prometheus's counts to equal the API's after the change", || {
        prometheus_agrees(&prometheus, &after)?;
        let added = prometheus.by_label("iacwatch_workspace_resources{path=\"added/ws\"}", "path")?;
        let deleted = prometheus.query("iacwatch_workspace_status{path=\"drifted/ws\"}")?;
        if added.get("added/ws") == Some(&1.0) && deleted.as_array().is_some_and(|a| a.is_empty()) {
            Ok(())
        } else {
            Err(format!("added/ws resources {added:?}, drifted/ws series {deleted}"))
        }
    });
    assert_eq!(api_counts(&daemon), after);

    // Still clean after the change.
    let body = daemon.get("/metrics");
    let (ok, output) = promtool_check_metrics(&promtool, &body);
    assert!(
        ok && output.trim().is_empty(),
        "promtool check metrics:\n{output}\n--- /metrics:\n{body}"
    );
    drop(prometheus);
    drop(daemon);
}

#[test]
fn alert_rules_fire_and_dashboard_queries_run_against_a_real_prometheus() {
    let (Some(prometheus_bin), Some(alertmanager_bin)) =
        (tool("prometheus/bin/prometheus"), tool("prometheus/bin/alertmanager"))
    else {
        return;
    };
    let fleet = Fleet::new(&FLEET);
    let root = fleet.root_label();
    let daemon = Daemon::start(&[&fleet.root], &["--lock-check-interval", "1s"]);
    assert_eq!(
        api_counts(&daemon),
        fleet.counts(),
        "the API disagrees with the fixtures"
    );

    // Alertmanager, delivering to a webhook in this test; cluster mode off (it would bind 0.0.0.0).
    // Debian's build reads its notification templates from a fixed system folder, which
    // tools/install-prometheus (apt-get download, no install) does not fill: without them
    // Alertmanager exits at start, and this part is left out.
    let templates = Path::new("/usr/share/prometheus/alertmanager");
    let with_alertmanager = ["default.tmpl", "email.tmpl"]
        .iter()
        .all(|t| templates.join(t).exists());
    if !with_alertmanager {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Alertmanager's templates are missing under CI=true: tools/install-prometheus puts them in place"
        );
        support::skip(&format!(
            "the Alertmanager part: {}/{{default,email}}.tmpl are missing (Debian's alertmanager needs them)",
            templates.display()
        ));
    }
    let alertmanager = with_alertmanager.then(|| Alertmanager::start(&alertmanager_bin));

    let prom_dir = tempfile::tempdir().unwrap();
    let (mut extra, rule_count) = load_fast_rules(prom_dir.path());
    if let Some(am) = &alertmanager {
        extra += &format!(
            "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{}\"]\n",
            am.address
        );
    }
    let prometheus = Prometheus::start(&prometheus_bin, prom_dir.path(), &prometheus_config(&daemon, &extra));
    assert_eq!(loaded_rules(&prometheus), rule_count, "rules loaded by Prometheus");

    // The workspace alerts: exactly one per failed, drifted and apply-needed workspace, all firing.
    let mut want = BTreeSet::new();
    for (alert, status) in [
        ("IacwatchWorkspaceFailed", "failed"),
        ("IacwatchWorkspaceDrifted", "drifted"),
        ("IacwatchApplyNeeded", "apply_needed"),
    ] {
        for (path, workspace) in fleet.with_status(status) {
            want.insert((alert.to_owned(), path, workspace));
        }
    }
    assert!(want.iter().any(|(a, ..)| a == "IacwatchWorkspaceFailed"));
    assert!(want.iter().any(|(a, ..)| a == "IacwatchWorkspaceDrifted"));
    let alerts = converge(WAIT, "the failed, drifted and apply-needed alerts to fire", || {
        let alerts = prometheus.alerts()?;
        let firing: BTreeSet<_> = workspace_alerts(&alerts)
            .into_iter()
            .filter(|(_, (state, _))| state == "firing")
            .map(|(k, _)| k)
            .collect();
        if firing == want {
            Ok(alerts)
        } else {
            Err(format!("{alerts:#?}"))
        }
    });
    // No other alert at all: none for the healthy workspaces, none about the exporter, and no count
    // alert: they are silent where per-workspace series exist (so a failure pages once).
    let by_workspace = workspace_alerts(&alerts);
    assert_eq!(by_workspace.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(
        count_alerts(&alerts),
        BTreeMap::new(),
        "alerts without a workspace (a count alert here would page twice): {alerts:#?}"
    );
    let severities = [
        ("IacwatchWorkspaceFailed", "critical"),
        ("IacwatchWorkspaceDrifted", "warning"),
        ("IacwatchApplyNeeded", "info"),
    ];
    for ((alert, path, workspace), (_, value)) in &by_workspace {
        let labels = &value["labels"];
        assert_eq!(labels["root"], root.as_str(), "{value:#}");
        assert_eq!(labels["job"], "iacwatch", "{value:#}");
        let severity = severities.iter().find(|(a, _)| a == alert).unwrap().1;
        assert_eq!(labels["severity"], severity, "{value:#}");
        let summary = value["annotations"]["summary"].as_str().unwrap_or("");
        assert!(
            summary.contains(&format!("{root}/{path} ({workspace})")),
            "summary names the workspace: {value:#}"
        );
        let description = value["annotations"]["description"].as_str().unwrap_or("");
        assert!(
            description.contains(path.as_str()),
            "description names the path: {value:#}"
        );
    }

    // Every PromQL expression of the dashboard runs; the stats count right and the table has a row
    // per workspace with its status.
    let panels = dashboard::read(&prometheus, &[("job", "iacwatch")]);
    assert_eq!(panels.stats, fleet.counts(), "glance stats");
    assert_eq!(panels.total, fleet.expected.len() as f64, "Workspaces stat");
    let instance = daemon.address.clone();
    let rows: BTreeSet<_> = fleet
        .expected
        .iter()
        .map(|((path, workspace), status)| {
            (
                instance.clone(),
                root.clone(),
                path.clone(),
                workspace.clone(),
                status.clone(),
            )
        })
        .collect();
    assert_eq!(panels.rows, rows, "workspaces table");

    // Alertmanager delivers the failed alert to the webhook.
    if let Some(am) = &alertmanager {
        am.expect_delivery("IacwatchWorkspaceFailed", &root, &fleet.with_status("failed"));
    }

    // Fixed on disk, the alerts clear.
    fix_and_expect_clear(&fleet, &prometheus);
    drop(prometheus);
    drop(alertmanager);
    drop(daemon);
}

/// Fixes the failed and the drifted workspace on disk, then waits until no alert about a failed or
/// drifted status is left (per-workspace and count alerts both carry the `status` label).
fn fix_and_expect_clear(fleet: &Fleet, prometheus: &Prometheus) {
    fix_failed_and_drifted(fleet);
    converge(WAIT, "the failed and drifted alerts to clear", || {
        let left: Vec<_> = prometheus
            .alerts()?
            .iter()
            .filter(|a| a["labels"]["status"] == "failed" || a["labels"]["status"] == "drifted")
            .map(|a| a["labels"].clone())
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still active: {left:?}"))
        }
    });
}

/// The tainted state is replaced by a clean apply's state and the drift plan is gone.
fn fix_failed_and_drifted(fleet: &Fleet) {
    let tainted = fleet.root.join("failed-tainted/ws/terraform.tfstate");
    let clean = fs::read_to_string(&tainted)
        .unwrap()
        .replace("\"status\": \"tainted\",", "");
    assert!(!clean.contains("tainted"), "the fixture's taint marker was not found");
    fs::write(&tainted, clean).unwrap();
    fs::remove_file(fleet.root.join("drifted/ws/plan.json")).unwrap();
}

/// Counts only (`--per-workspace-metrics false`, the README's advice for large fleets): no
/// per-workspace series reach Prometheus, the count rules fire once per status instead, the
/// dashboard's stats read the counts, and the alerts clear when the files are fixed.
#[test]
fn counts_only_mode_fires_the_count_alerts_and_fills_the_stats() {
    let Some(prometheus_bin) = tool("prometheus/bin/prometheus") else {
        return;
    };
    let fleet = Fleet::new(&FLEET);
    let daemon = Daemon::start(
        &[&fleet.root],
        &["--lock-check-interval", "1s", "--per-workspace-metrics", "false"],
    );
    let counts = fleet.counts();
    assert_eq!(api_counts(&daemon), counts, "the API disagrees with the fixtures");
    let prom_dir = tempfile::tempdir().unwrap();
    let (extra, rule_count) = load_fast_rules(prom_dir.path());
    let prometheus = Prometheus::start(&prometheus_bin, prom_dir.path(), &prometheus_config(&daemon, &extra));
    assert_eq!(loaded_rules(&prometheus), rule_count, "rules loaded by Prometheus");
    converge(WAIT, "the counts to reach Prometheus", || {
        let totals = prometheus.by_label("iacwatch_workspaces{job=\"iacwatch\"}", "status")?;
        if totals == counts {
            Ok(())
        } else {
            Err(format!("{totals:?}"))
        }
    });
    let per_workspace = prometheus
        .query("{job=\"iacwatch\", __name__=~\"iacwatch_workspace_.+\"}")
        .unwrap();
    assert_eq!(
        per_workspace.as_array().map(Vec::len),
        Some(0),
        "per-workspace series: {per_workspace}"
    );

    // One count alert per status that has workspaces and an alert: failed, drifted, apply_needed.
    let instance = daemon.address.clone();
    let want: BTreeMap<_, _> = [
        ("IacwatchWorkspacesFailed", "failed"),
        ("IacwatchWorkspacesDrifted", "drifted"),
        ("IacwatchWorkspacesApplyNeeded", "apply_needed"),
    ]
    .into_iter()
    .map(|(alert, status)| {
        assert!(counts[status] > 0.0, "the fleet has no {status} workspace");
        (
            (alert.to_owned(), instance.clone(), status.to_owned()),
            "firing".to_owned(),
        )
    })
    .collect();
    let alerts = converge(WAIT, "the count alerts to fire", || {
        let alerts = prometheus.alerts()?;
        if count_alerts(&alerts) == want {
            Ok(alerts)
        } else {
            Err(format!("{alerts:#?}"))
        }
    });
    assert!(
        workspace_alerts(&alerts).is_empty(),
        "per-workspace alerts: {alerts:#?}"
    );
    for alert in &alerts {
        let status = alert["labels"]["status"].as_str().unwrap();
        assert_eq!(
            sample_value(&serde_json::json!([0, alert["value"]])),
            Ok(counts[status]),
            "{alert:#}"
        );
        let summary = alert["annotations"]["summary"].as_str().unwrap_or("");
        assert!(summary.contains(&instance), "summary names the instance: {alert:#}");
        let description = alert["annotations"]["description"].as_str().unwrap_or("");
        assert!(
            description.contains(&format!("/api/v1/workspaces?status={status}")),
            "description says where to find the workspaces: {alert:#}"
        );
    }

    // The dashboard: every expression runs; the stats and the graph read the counts; the table,
    // made of per-workspace series, is empty.
    let panels = dashboard::read(&prometheus, &[("job", "iacwatch")]);
    assert_eq!(panels.stats, counts, "glance stats");
    assert_eq!(panels.total, fleet.expected.len() as f64, "Workspaces stat");
    assert_eq!(panels.per_status, counts, "Workspaces per status");
    assert!(panels.rows.is_empty(), "workspaces table: {:?}", panels.rows);

    // Fixed on disk, the failed and drifted counts drop to zero and their alerts clear.
    fix_and_expect_clear(&fleet, &prometheus);
    drop(prometheus);
    drop(daemon);
}
