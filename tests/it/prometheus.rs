//! `iacwatch serve` scraped by a real Prometheus (Debian's, from `tools/install-prometheus`): the
//! counts Prometheus computes from the scraped series equal the API's, before and after a change on
//! disk; `promtool check metrics` accepts `/metrics`; the alert rules of `dashboards/alerts.yml` fire
//! for the failed, drifted and apply-needed workspaces and for no other; every PromQL expression of
//! the Grafana dashboard runs; and a real Alertmanager delivers the failed alert to a webhook.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use iacwatch::model::Status;
use serde_json::Value;
use tempfile::TempDir;

use crate::support::{
    self, Daemon, FLEET, Fleet, converge, free_port, http_get, promtool_check_metrics, repo, tool, url_encode,
};

const STATUSES: [&str; 7] = [
    Status::Destroying.as_str(),
    Status::Provisioning.as_str(),
    Status::Failed.as_str(),
    Status::Drifted.as_str(),
    Status::ApplyNeeded.as_str(),
    Status::Active.as_str(),
    Status::Inactive.as_str(),
];

/// How long anything may take to converge (a scrape and a rule evaluation are 1 s apart).
const WAIT: Duration = Duration::from_secs(30);

/// A child process that is killed when the test ends, however it ends.
struct Process {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with its output in `log`.
    fn spawn(name: &'static str, mut command: Command, log: PathBuf) -> Process {
        let out = fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Process { child, name, log }
    }

    /// Waits until `GET address/path` answers 200; panics early if the process exits.
    fn wait_ready(&mut self, address: &str, path: &str) {
        converge(WAIT, &format!("{} to answer 200 on {path}", self.name), || {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{} exited with {status}:\n{}", self.name, self.log_text());
            }
            match http_get(address, path) {
                Ok((200, _)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Prometheus on a loopback port, with its configuration and storage in a temporary folder.
struct Prometheus {
    /// Killed on drop.
    _process: Process,
    address: String,
}

impl Prometheus {
    /// `config` is the whole prometheus.yml.
    fn start(binary: &Path, dir: &Path, config: &str) -> Prometheus {
        let config_path = dir.join("prometheus.yml");
        fs::write(&config_path, config).unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(binary);
        command.args([
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address={address}"),
        ]);
        let mut process = Process::spawn("prometheus", command, dir.join("prometheus.log"));
        process.wait_ready(&address, "/-/ready");
        Prometheus {
            _process: process,
            address,
        }
    }

    /// `GET /api/v1/...`: the `data` of a `success` answer, or the error.
    fn api(&self, path_and_query: &str) -> Result<Value, String> {
        let (code, body) = http_get(&self.address, path_and_query).map_err(|e| format!("GET {path_and_query}: {e}"))?;
        let answer: Value =
            serde_json::from_str(&body).map_err(|e| format!("GET {path_and_query}: {code} {e}: {body}"))?;
        if code != 200 || answer["status"] != "success" {
            return Err(format!("GET {path_and_query}: {code} {body}"));
        }
        Ok(answer["data"].clone())
    }

    /// An instant query: the result vector (or scalar), or the error Prometheus gave.
    fn query(&self, promql: &str) -> Result<Value, String> {
        Ok(self.api(&format!("/api/v1/query?query={}", url_encode(promql)))?["result"].clone())
    }

    /// An instant query whose result is a vector: each series's value, keyed by the value of `label`.
    fn by_label(&self, promql: &str, label: &str) -> Result<BTreeMap<String, f64>, String> {
        let result = self.query(promql)?;
        let series = result
            .as_array()
            .ok_or_else(|| format!("{promql}: not a vector: {result}"))?;
        let mut out = BTreeMap::new();
        for s in series {
            let key = s["metric"][label].as_str().unwrap_or("").to_owned();
            out.insert(key, sample_value(&s["value"])?);
        }
        Ok(out)
    }

    fn alerts(&self) -> Result<Vec<Value>, String> {
        Ok(self.api("/api/v1/alerts")?["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

/// The number in a `[time, "value"]` sample.
fn sample_value(sample: &Value) -> Result<f64, String> {
    sample[1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("not a sample: {sample}"))
}

/// The API's `counts`, as numbers.
fn api_counts(daemon: &Daemon) -> BTreeMap<String, f64> {
    let doc = daemon.get_json("/api/v1/workspaces");
    let counts = doc["counts"].as_object().expect("counts");
    counts.iter().map(|(k, v)| (k.clone(), v.as_f64().unwrap())).collect()
}

/// The API's workspaces: (path, workspace) -> status.
fn api_workspaces(daemon: &Daemon) -> BTreeMap<(String, String), String> {
    let doc = daemon.get_json("/api/v1/workspaces");
    doc["workspaces"]
        .as_array()
        .expect("workspaces")
        .iter()
        .map(|w| {
            let field = |k: &str| w[k].as_str().unwrap().to_owned();
            ((field("path"), field("workspace")), field("status"))
        })
        .collect()
}

/// The scrape configuration of the daemon: every second, job `iacwatch` (the rules match `iacwatch.*`).
fn prometheus_config(daemon: &Daemon, extra: &str) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: iacwatch\n    static_configs:\n      - targets: [\"{}\"]\n{extra}",
        daemon.address
    )
}

/// Prometheus's per-status counts, both ways: summed from the per-workspace state set, and the
/// precomputed `iacwatch_workspaces`. `Ok` when both equal `want`.
fn prometheus_agrees(prometheus: &Prometheus, want: &BTreeMap<String, f64>) -> Result<(), String> {
    let summed = prometheus.by_label(
        "sum by (status) (iacwatch_workspace_status{job=\"iacwatch\"})",
        "status",
    )?;
    let totals = prometheus.by_label("iacwatch_workspaces{job=\"iacwatch\"}", "status")?;
    if &summed == want && &totals == want {
        Ok(())
    } else {
        Err(format!(
            "want {want:?}, sum by (status) (iacwatch_workspace_status) = {summed:?}, iacwatch_workspaces = {totals:?}"
        ))
    }
}

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

/// A tiny webhook receiver: every request body it gets goes to the channel.
fn webhook_receiver() -> (String, mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let Some(body) = read_request_body(&mut stream) else {
                continue;
            };
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx.send(body).is_err() {
                return;
            }
        }
    });
    (address, rx)
}

/// Reads one request with a `Content-Length` body (what Alertmanager's webhook sends).
fn read_request_body(stream: &mut std::net::TcpStream) -> Option<String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                return Some(String::from_utf8_lossy(&raw[end + 4..end + 4 + length]).into_owned());
            }
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// A real Alertmanager on a loopback port, delivering every alert to a webhook receiver in the test.
struct Alertmanager {
    process: Process,
    address: String,
    deliveries: mpsc::Receiver<String>,
    _dir: TempDir,
}

impl Alertmanager {
    fn start(binary: &Path) -> Alertmanager {
        let (webhook, deliveries) = webhook_receiver();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        fs::write(
            &config,
            format!(
                "route:\n  receiver: test\n  group_by: [alertname, path]\n  group_wait: 1s\n  group_interval: 1s\n  \
                 repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      \
                 - url: \"http://{webhook}/hook\"\n        send_resolved: false\n"
            ),
        )
        .unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(binary);
        command.args([
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address={address}"),
            // Cluster mode off: it would listen on every interface.
            "--cluster.listen-address=".to_owned(),
        ]);
        let mut process = Process::spawn("alertmanager", command, dir.path().join("alertmanager.log"));
        process.wait_ready(&address, "/-/ready");
        Alertmanager {
            process,
            address,
            deliveries,
            _dir: dir,
        }
    }

    /// Waits for a webhook delivery of `alert`, firing, for one of `workspaces` (path, workspace) of `root`.
    fn expect_delivery(&self, alert: &str, root: &str, workspaces: &BTreeSet<(String, String)>) {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(body) = self.deliveries.recv_timeout(left) else {
                panic!(
                    "no webhook delivery of {alert} within {WAIT:?}; got {seen:#?}\nalertmanager log:\n{}",
                    self.process.log_text()
                );
            };
            let message: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("webhook body {e}: {body}"));
            let delivered = message["alerts"].as_array().cloned().unwrap_or_default();
            let hit = delivered.iter().any(|a| {
                let label = |k: &str| a["labels"][k].as_str().unwrap_or("").to_owned();
                a["status"] == "firing"
                    && label("alertname") == alert
                    && label("root") == root
                    && workspaces.contains(&(label("path"), label("workspace")))
            });
            if hit {
                return;
            }
            seen.push(message);
        }
    }
}

/// `dashboards/alerts.yml` with its thresholds cut to seconds, so that the alerts fire within a test:
/// `for: 5m` becomes `for: 2s`, and the status-age thresholds (12 h drifted, 1 h stuck, 3 d apply
/// needed) become 1 s. Plain string replacement on the real file, so the expressions, labels and
/// annotations under test are the shipped ones.
fn fast_rules() -> String {
    let mut rules = fs::read_to_string(repo().join("dashboards/alerts.yml")).unwrap();
    for (from, to) in [
        ("for: 5m", "for: 2s"),
        ("> 43200", "> 1"),
        ("> 3600", "> 1"),
        ("> 259200", "> 1"),
    ] {
        assert!(
            rules.contains(from),
            "dashboards/alerts.yml has no `{from}` any more: update fast_rules() in this test"
        );
        rules = rules.replace(from, to);
    }
    rules
}

/// The workspace alerts of Prometheus, as (alertname, path, workspace) -> (state, the alert).
fn workspace_alerts(alerts: &[Value]) -> BTreeMap<(String, String, String), (String, Value)> {
    alerts
        .iter()
        .filter(|a| a["labels"]["path"].is_string())
        .map(|a| {
            let label = |k: &str| a["labels"][k].as_str().unwrap_or("").to_owned();
            (
                (label("alertname"), label("path"), label("workspace")),
                (a["state"].as_str().unwrap_or("").to_owned(), a.clone()),
            )
        })
        .collect()
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
    let rules = fast_rules();
    fs::write(prom_dir.path().join("alerts.yml"), &rules).unwrap();
    let mut extra = format!("rule_files: [\"{}\"]\n", prom_dir.path().join("alerts.yml").display());
    if let Some(am) = &alertmanager {
        extra += &format!(
            "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{}\"]\n",
            am.address
        );
    }
    let prometheus = Prometheus::start(&prometheus_bin, prom_dir.path(), &prometheus_config(&daemon, &extra));
    let loaded = prometheus.api("/api/v1/rules").unwrap();
    let loaded: usize = loaded["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(loaded, rules.matches("- alert:").count(), "rules loaded by Prometheus");

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
    // No other alert at all: none for the healthy workspaces, none about the exporter.
    let by_workspace = workspace_alerts(&alerts);
    assert_eq!(by_workspace.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(
        by_workspace.len(),
        alerts.len(),
        "alerts without a workspace: {alerts:#?}"
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

    // Every PromQL expression of the dashboard runs, and the glance row counts right.
    let out = Command::new(repo().join("tools/check-dashboard"))
        .arg("--exprs")
        .output()
        .expect("running tools/check-dashboard --exprs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exprs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(exprs.len() > 10, "{exprs:?}");
    let counts = fleet.counts();
    let mut glance = BTreeSet::new();
    let mut table_checked = false;
    for e in &exprs {
        let (panel, expr) = (e["panel"].as_str().unwrap(), e["expr"].as_str().unwrap());
        let result = prometheus
            .query(expr)
            .unwrap_or_else(|err| panic!("dashboard panel {panel:?}: {expr}: {err}"));
        let single = || {
            let series = result.as_array().filter(|a| a.len() == 1);
            let series = series.unwrap_or_else(|| panic!("panel {panel:?}: {expr}: one series expected: {result}"));
            sample_value(&series[0]["value"]).unwrap()
        };
        if let Some(status) = expr
            .strip_prefix("sum(iacwatch_workspace_status{status=\"")
            .and_then(|rest| rest.split('"').next())
        {
            assert_eq!(single(), counts[status], "glance stat {panel:?}: {expr}");
            glance.insert(status.to_owned());
        } else if expr.starts_with("count(iacwatch_workspace_info") {
            assert_eq!(single(), fleet.expected.len() as f64, "panel {panel:?}: {expr}");
        } else if expr.starts_with("max by (root, path, workspace, status) (iacwatch_workspace_status") {
            // The workspaces table: one row per workspace, with its status.
            let rows: BTreeMap<(String, String), String> = result
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let label = |k: &str| s["metric"][k].as_str().unwrap_or("").to_owned();
                    ((label("path"), label("workspace")), label("status"))
                })
                .collect();
            assert_eq!(rows, fleet.expected, "panel {panel:?}: {expr}");
            table_checked = true;
        }
    }
    assert_eq!(glance.len(), STATUSES.len(), "glance stats found: {glance:?}");
    assert!(table_checked, "no workspaces-table expression found in {exprs:?}");

    // Alertmanager delivers the failed alert to the webhook.
    if let Some(am) = &alertmanager {
        am.expect_delivery("IacwatchWorkspaceFailed", &root, &fleet.with_status("failed"));
    }

    // Fixed on disk, the alerts clear: the tainted state is replaced by a clean apply's state and
    // the drift plan is gone.
    let tainted = fleet.root.join("failed-tainted/ws/terraform.tfstate");
    let clean = fs::read_to_string(&tainted)
        .unwrap()
        .replace("\"status\": \"tainted\",", "");
    assert!(!clean.contains("tainted"), "the fixture's taint marker was not found");
    fs::write(&tainted, clean).unwrap();
    fs::remove_file(fleet.root.join("drifted/ws/plan.json")).unwrap();
    converge(WAIT, "the failed and drifted alerts to clear", || {
        let alerts = prometheus.alerts()?;
        let left: Vec<_> = workspace_alerts(&alerts)
            .into_keys()
            .filter(|(alert, ..)| alert == "IacwatchWorkspaceFailed" || alert == "IacwatchWorkspaceDrifted")
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still active: {left:?}"))
        }
    });
    drop(prometheus);
    drop(alertmanager);
    drop(daemon);
}
