//! A fleet on one dashboard: one real Prometheus scrapes three iacwatch daemons whose trees hold the
//! same paths under the same root (relabelled to `/srv/terraform`, as on runners built alike), two
//! with per-workspace series and one with counts only. The dashboard's `job` and `instance`
//! variables list the three, its table shows the same path once per instance, every panel follows
//! the `instance` variable, and each daemon pages through the alert set of its mode, never both.

use std::collections::{BTreeMap, BTreeSet};

use super::dashboard::{self, Row};
use super::harness::{Fleet, Prometheus, WAIT, converge, count_alerts, load_fast_rules, loaded_rules, scrape_config};
use crate::support::{Daemon, FLEET, tool};

/// What both runners call their root.
const ROOT: &str = "/srv/terraform";

/// Every series with a `root` gets `ROOT` instead of the temporary folder's name.
const SAME_ROOT: &str = "    metric_relabel_configs:\n      - source_labels: [root]\n        regex: \".+\"\n        \
                         target_label: root\n        replacement: /srv/terraform\n";

/// The table rows `fleet` makes on `instance`.
fn rows(fleet: &Fleet, instance: &str) -> BTreeSet<Row> {
    fleet
        .expected
        .iter()
        .map(|((path, workspace), status)| {
            (
                instance.to_owned(),
                ROOT.to_owned(),
                path.clone(),
                workspace.clone(),
                status.clone(),
            )
        })
        .collect()
}

/// `counts` times `n`.
fn times(counts: &BTreeMap<String, f64>, n: f64) -> BTreeMap<String, f64> {
    counts.iter().map(|(k, v)| (k.clone(), v * n)).collect()
}

#[test]
fn one_dashboard_tells_apart_the_same_paths_on_three_instances_in_both_modes() {
    let Some(prometheus_bin) = tool("prometheus/bin/prometheus") else {
        return;
    };
    let fleets = [Fleet::new(&FLEET), Fleet::new(&FLEET), Fleet::new(&FLEET)];
    let args = ["--lock-check-interval", "1s"];
    let a = Daemon::start(&[&fleets[0].root], &args);
    let b = Daemon::start(&[&fleets[1].root], &args);
    let c = Daemon::start(
        &[&fleets[2].root],
        &[&args[..], &["--per-workspace-metrics", "false"]].concat(),
    );
    let (ia, ib, ic) = (a.address.clone(), b.address.clone(), c.address.clone());
    let counts = fleets[0].counts();
    let n = fleets[0].expected.len() as f64;

    let prom_dir = tempfile::tempdir().unwrap();
    let (extra, rule_count) = load_fast_rules(prom_dir.path());
    let config = scrape_config(&[&a, &b, &c], SAME_ROOT, &extra);
    let prometheus = Prometheus::start(&prometheus_bin, prom_dir.path(), &config);
    assert_eq!(loaded_rules(&prometheus), rule_count, "rules loaded by Prometheus");
    converge(
        WAIT,
        "the three iacwatch targets and their workspaces to reach Prometheus",
        || {
            let info = prometheus.by_label("count by (instance) (iacwatch_workspace_info)", "instance")?;
            let counts_seen = prometheus.by_label("count by (instance) (iacwatch_workspaces)", "instance")?;
            let want_info = BTreeMap::from([(ia.clone(), n), (ib.clone(), n)]);
            let want_counts = BTreeMap::from([(ia.clone(), 7.0), (ib.clone(), 7.0), (ic.clone(), 7.0)]);
            if info == want_info && counts_seen == want_counts {
                Ok(())
            } else {
                Err(format!("workspace_info {info:?}, workspaces {counts_seen:?}"))
            }
        },
    );

    // The variables: job lists the job, instance the three targets, root the one shared root.
    let job = dashboard::variable_values(&prometheus, "job", &[]);
    assert_eq!(job, BTreeSet::from(["iacwatch".to_owned()]));
    let instances = dashboard::variable_values(&prometheus, "instance", &[("job", "iacwatch")]);
    assert_eq!(instances, BTreeSet::from([ia.clone(), ib.clone(), ic.clone()]));
    let roots = dashboard::variable_values(&prometheus, "root", &[("job", "iacwatch")]);
    assert_eq!(roots, BTreeSet::from([ROOT.to_owned()]));

    // All instances: the same path under the same root is one row per instance, none merged; the
    // stats add up the per-workspace series of a and b and the counts of c.
    let all = dashboard::read(&prometheus, &[("job", "iacwatch")]);
    let both: BTreeSet<Row> = rows(&fleets[0], &ia).union(&rows(&fleets[1], &ib)).cloned().collect();
    assert_eq!(all.rows.len(), 2 * fleets[0].expected.len());
    assert_eq!(all.rows, both, "workspaces table");
    assert_eq!(all.stats, times(&counts, 3.0), "glance stats, all instances");
    assert_eq!(all.total, 3.0 * n, "Workspaces stat, all instances");
    assert_eq!(
        all.per_status,
        times(&counts, 3.0),
        "Workspaces per status, all instances"
    );

    // One instance at a time: every panel follows the variable.
    for (instance, fleet, per_workspace) in [
        (&ia, &fleets[0], true),
        (&ib, &fleets[1], true),
        (&ic, &fleets[2], false),
    ] {
        let one = dashboard::read(&prometheus, &[("job", "iacwatch"), ("instance", instance)]);
        assert_eq!(one.stats, counts, "glance stats of {instance}");
        assert_eq!(one.total, n, "Workspaces stat of {instance}");
        assert_eq!(one.per_status, counts, "Workspaces per status of {instance}");
        let want = if per_workspace {
            rows(fleet, instance)
        } else {
            BTreeSet::new()
        };
        assert_eq!(one.rows, want, "workspaces table of {instance}");
    }

    // Alerts: per-workspace ones for a and b, each naming its instance; count ones for c only.
    let mut want_workspace = BTreeSet::new();
    for (alert, status) in [
        ("IacwatchWorkspaceFailed", "failed"),
        ("IacwatchWorkspaceDrifted", "drifted"),
        ("IacwatchApplyNeeded", "apply_needed"),
    ] {
        for (path, workspace) in fleets[0].with_status(status) {
            for instance in [&ia, &ib] {
                want_workspace.insert((alert.to_owned(), instance.clone(), path.clone(), workspace.clone()));
            }
        }
    }
    let want_counts: BTreeMap<_, _> = [
        ("IacwatchWorkspacesFailed", "failed"),
        ("IacwatchWorkspacesDrifted", "drifted"),
        ("IacwatchWorkspacesApplyNeeded", "apply_needed"),
    ]
    .into_iter()
    .map(|(alert, status)| ((alert.to_owned(), ic.clone(), status.to_owned()), "firing".to_owned()))
    .collect();
    converge(WAIT, "each instance's alerts, and no other", || {
        let alerts = prometheus.alerts()?;
        let by_workspace: BTreeSet<_> = alerts
            .iter()
            .filter(|a| a["labels"]["path"].is_string() && a["state"] == "firing")
            .map(|a| {
                let label = |k: &str| a["labels"][k].as_str().unwrap_or("").to_owned();
                (label("alertname"), label("instance"), label("path"), label("workspace"))
            })
            .collect();
        let by_count = count_alerts(&alerts);
        if by_workspace == want_workspace
            && by_count == want_counts
            && alerts.len() == want_workspace.len() + want_counts.len()
        {
            Ok(())
        } else {
            Err(format!(
                "per workspace {by_workspace:#?}\ncounts {by_count:#?}\nall {alerts:#?}"
            ))
        }
    });
    drop(prometheus);
    drop((a, b, c));
}
