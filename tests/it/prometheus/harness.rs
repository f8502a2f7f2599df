//! The parts of the Prometheus tests: a real Prometheus in a temporary folder, fixture fleets for
//! the daemon, the shipped alert rules with their thresholds cut to seconds, and polling until
//! Prometheus agrees.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use iacwatch::model::Status;
use serde_json::Value;

use crate::support::{Daemon, free_port, http_get, repo, url_encode};

pub const STATUSES: [&str; 7] = [
    Status::Destroying.as_str(),
    Status::Provisioning.as_str(),
    Status::Failed.as_str(),
    Status::Drifted.as_str(),
    Status::ApplyNeeded.as_str(),
    Status::Active.as_str(),
    Status::Inactive.as_str(),
];

/// How long anything may take to converge (a scrape and a rule evaluation are 1 s apart).
pub const WAIT: Duration = Duration::from_secs(30);

pub use crate::support::{Fleet, converge};

/// A child process that is killed when the test ends, however it ends.
pub struct Process {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with its output in `log`.
    pub fn spawn(name: &'static str, mut command: Command, log: PathBuf) -> Process {
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
    pub fn wait_ready(&mut self, address: &str, path: &str) {
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

    pub fn log_text(&self) -> String {
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
pub struct Prometheus {
    /// Killed on drop.
    _process: Process,
    pub address: String,
}

impl Prometheus {
    /// `config` is the whole prometheus.yml.
    pub fn start(binary: &Path, dir: &Path, config: &str) -> Prometheus {
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
    pub fn api(&self, path_and_query: &str) -> Result<Value, String> {
        let (code, body) = http_get(&self.address, path_and_query).map_err(|e| format!("GET {path_and_query}: {e}"))?;
        let answer: Value =
            serde_json::from_str(&body).map_err(|e| format!("GET {path_and_query}: {code} {e}: {body}"))?;
        if code != 200 || answer["status"] != "success" {
            return Err(format!("GET {path_and_query}: {code} {body}"));
        }
        Ok(answer["data"].clone())
    }

    /// An instant query: the result vector (or scalar), or the error Prometheus gave.
    pub fn query(&self, promql: &str) -> Result<Value, String> {
        Ok(self.api(&format!("/api/v1/query?query={}", url_encode(promql)))?["result"].clone())
    }

    /// An instant query whose result is a vector: each series's value, keyed by the value of `label`.
    pub fn by_label(&self, promql: &str, label: &str) -> Result<BTreeMap<String, f64>, String> {
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

    pub fn alerts(&self) -> Result<Vec<Value>, String> {
        Ok(self.api("/api/v1/alerts")?["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

/// The number in a `[time, "value"]` sample.
pub fn sample_value(sample: &Value) -> Result<f64, String> {
    sample[1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("not a sample: {sample}"))
}

/// The API's `counts`, as numbers.
pub fn api_counts(daemon: &Daemon) -> BTreeMap<String, f64> {
    let doc = daemon.get_json("/api/v1/workspaces");
    let counts = doc["counts"].as_object().expect("counts");
    counts.iter().map(|(k, v)| (k.clone(), v.as_f64().unwrap())).collect()
}

/// The API's workspaces: (path, workspace) -> status.
pub fn api_workspaces(daemon: &Daemon) -> BTreeMap<(String, String), String> {
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
pub fn prometheus_config(daemon: &Daemon, extra: &str) -> String {
    scrape_config(&[daemon], "", extra)
}

/// Every second, all `daemons` as the targets of one job `iacwatch`; `job_extra` is appended to the
/// job (indented four spaces, e.g. `metric_relabel_configs`), `extra` to the file.
pub fn scrape_config(daemons: &[&Daemon], job_extra: &str, extra: &str) -> String {
    let targets: Vec<String> = daemons.iter().map(|d| format!("\"{}\"", d.address)).collect();
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: iacwatch\n    static_configs:\n      - targets: [{}]\n{job_extra}{extra}",
        targets.join(", ")
    )
}

/// Writes `fast_rules()` into `dir` and returns the configuration lines that load them, and the
/// number of alerting rules in them.
pub fn load_fast_rules(dir: &Path) -> (String, usize) {
    let rules = fast_rules();
    let path = dir.join("alerts.yml");
    fs::write(&path, &rules).unwrap();
    (
        format!("rule_files: [\"{}\"]\n", path.display()),
        rules.matches("- alert:").count(),
    )
}

/// The number of rules Prometheus has loaded, over all groups.
pub fn loaded_rules(prometheus: &Prometheus) -> usize {
    let loaded = prometheus.api("/api/v1/rules").unwrap();
    loaded["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().map_or(0, Vec::len))
        .sum()
}

/// Prometheus's per-status counts, both ways: summed from the per-workspace state set, and the
/// precomputed `iacwatch_workspaces`. `Ok` when both equal `want`.
pub fn prometheus_agrees(prometheus: &Prometheus, want: &BTreeMap<String, f64>) -> Result<(), String> {
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

/// `dashboards/alerts.yml` with its thresholds cut to seconds, so that the alerts fire within a test:
/// `for: 5m` becomes `for: 2s`, the status-age thresholds (12 h drifted, 1 h stuck, 3 d apply
/// needed) become 1 s, and so do the count rules' `for:` of the same durations. Plain string replacement on the real file, so the expressions, labels and
/// annotations under test are the shipped ones.
pub fn fast_rules() -> String {
    let mut rules = fs::read_to_string(repo().join("dashboards/alerts.yml")).unwrap();
    for (from, to) in [
        ("for: 5m", "for: 2s"),
        ("> 43200", "> 1"),
        ("> 3600", "> 1"),
        ("> 259200", "> 1"),
        ("for: 12h", "for: 2s"),
        ("for: 1h", "for: 2s"),
        ("for: 3d", "for: 2s"),
    ] {
        assert!(
            rules.contains(from),
            "dashboards/alerts.yml has no `{from}` any more: update fast_rules() in this test"
        );
        rules = rules.replace(from, to);
    }
    rules
}

/// Alerts by (alertname, instance, status), with their state: the count alerts carry no workspace.
pub fn count_alerts(alerts: &[Value]) -> BTreeMap<(String, String, String), String> {
    alerts
        .iter()
        .filter(|a| !a["labels"]["path"].is_string())
        .map(|a| {
            let label = |k: &str| a["labels"][k].as_str().unwrap_or("").to_owned();
            (
                (label("alertname"), label("instance"), label("status")),
                a["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// The workspace alerts of Prometheus, as (alertname, path, workspace) -> (state, the alert).
pub fn workspace_alerts(alerts: &[Value]) -> BTreeMap<(String, String, String), (String, Value)> {
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
