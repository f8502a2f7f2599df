//! The Grafana dashboard against a real Prometheus: every expression of `dashboards/iacwatch.json`
//! (as `tools/check-dashboard --exprs` substitutes its variables) is run, and what the panels would
//! show is read back: the status stats, the workspace count, the workspaces table, the per-status
//! graph and the values the template variables offer.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::process::Command;

use serde_json::Value;

use super::harness::{Prometheus, STATUSES, sample_value};
use crate::support::{repo, url_encode};

/// One row of the workspaces table: (instance, root, path, workspace, status).
pub type Row = (String, String, String, String, String);

/// What the dashboard shows for one choice of its variables.
#[derive(Debug, Default)]
pub struct Panels {
    /// The glance row: status -> the number on its stat.
    pub stats: BTreeMap<String, f64>,
    /// The `Workspaces` stat.
    pub total: f64,
    /// The workspaces table (its query A: one series a row).
    pub rows: BTreeSet<Row>,
    /// `Workspaces per status`, now: status -> value (statuses without a series are left out).
    pub per_status: BTreeMap<String, f64>,
}

/// `vars` are `--var NAME=VALUE` for `tools/check-dashboard` (the others stay All).
pub fn read(prometheus: &Prometheus, vars: &[(&str, &str)]) -> Panels {
    let mut command = Command::new(repo().join("tools/check-dashboard"));
    command.arg("--exprs");
    for (name, value) in vars {
        command.args(["--var", &format!("{name}={value}")]);
    }
    let out = command.output().expect("running tools/check-dashboard --exprs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exprs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(exprs.len() > 10, "{exprs:?}");
    let mut panels = Panels::default();
    let (mut total_seen, mut table_seen, mut graph_seen) = (false, false, false);
    for e in &exprs {
        let field = |k: &str| e[k].as_str().unwrap_or("").to_owned();
        let (title, kind, ref_id, expr) = (field("panel"), field("type"), field("ref"), field("expr"));
        let result = prometheus
            .query(&expr)
            .unwrap_or_else(|err| panic!("dashboard panel {title:?}: {expr}: {err}"));
        let series = result.as_array().cloned().unwrap_or_default();
        let single = || {
            assert_eq!(
                series.len(),
                1,
                "panel {title:?}: {expr}: one series expected: {result}"
            );
            sample_value(&series[0]["value"]).unwrap()
        };
        let status = title.to_lowercase().replace(' ', "_");
        match (kind.as_str(), title.as_str()) {
            ("stat", _) if STATUSES.contains(&status.as_str()) => {
                panels.stats.insert(status, single());
            }
            ("stat", "Workspaces") => {
                panels.total = single();
                total_seen = true;
            }
            ("table", "Workspaces") if ref_id == "A" => {
                for s in &series {
                    let label = |k: &str| s["metric"][k].as_str().unwrap_or("").to_owned();
                    let row = (
                        label("instance"),
                        label("root"),
                        label("path"),
                        label("workspace"),
                        label("status"),
                    );
                    assert!(
                        panels.rows.insert(row.clone()),
                        "panel {title:?}: row {row:?} twice: {expr}"
                    );
                }
                table_seen = true;
            }
            ("timeseries", "Workspaces per status") => {
                for s in &series {
                    let status = s["metric"]["status"].as_str().unwrap_or("").to_owned();
                    panels.per_status.insert(status, sample_value(&s["value"]).unwrap());
                }
                graph_seen = true;
            }
            _ => {}
        }
    }
    assert_eq!(
        panels.stats.len(),
        STATUSES.len(),
        "glance stats found: {:?}",
        panels.stats
    );
    assert!(total_seen && table_seen && graph_seen, "panels missing from {exprs:?}");
    panels
}

/// The values the dashboard's template variable `name` offers: its `label_values(SELECTOR, LABEL)`
/// query, with the variables before it replaced by `vars` (or All), asked of Prometheus's series API.
pub fn variable_values(prometheus: &Prometheus, name: &str, vars: &[(&str, &str)]) -> BTreeSet<String> {
    let dashboard: Value =
        serde_json::from_str(&fs::read_to_string(repo().join("dashboards/iacwatch.json")).unwrap()).unwrap();
    let variable = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no variable {name}"))
        .clone();
    let query = variable["query"]["query"].as_str().unwrap();
    let inner = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{name}: not a label_values query: {query}"));
    let (selector, label) = inner.rsplit_once(',').unwrap();
    let mut selector = selector.trim().to_owned();
    for var in ["job", "instance"] {
        let value = vars.iter().find(|(n, _)| *n == var).map_or(".+", |(_, v)| *v);
        selector = selector.replace(&format!("${var}"), value);
    }
    let series = prometheus
        .api(&format!("/api/v1/series?match[]={}", url_encode(&selector)))
        .unwrap();
    series
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s[label.trim()].as_str().map(str::to_owned))
        .collect()
}
