//! Every scenario of `fixtures/scenarios/` (built by a real Terraform with `fixtures/generate`):
//! the classifier gives the status and reasons the scenario expects, and `iacwatch scan` prints
//! the golden document of `tests/golden/scenarios/`.

use iacwatch::classify::Policy;
use iacwatch::source::local::Root;
use iacwatch::source::local::discover::DiscoverOptions;
use iacwatch::source::local::liveness::SystemProbe;
use iacwatch::source::local::scan::Scanner;

use crate::support::{CANARY, check_golden, iacwatch, load_scenario, repo, scenario_names};

#[test]
fn every_scenario_has_the_status_and_reasons_it_expects() {
    let names = scenario_names();
    assert!(names.len() >= 30, "only {} scenarios found", names.len());
    let mut failures = Vec::new();
    for name in &names {
        let tree = load_scenario(name);
        let probe = SystemProbe::with_host(&tree.scenario.host);
        let scanner = Scanner {
            discover: DiscoverOptions::default(),
            policy: Policy::default(),
            probe: Box::new(probe),
            stream_above: iacwatch::source::local::read::STREAM_ABOVE,
            progress: None,
        };
        let (result, errors) = scanner.scan(
            &[Root {
                label: ".".into(),
                path: tree.root().to_owned(),
            }],
            tree.scenario.now,
        );
        assert!(errors.is_empty(), "{name}: {errors:?}");
        let listed: Vec<(String, String)> = result
            .workspaces
            .iter()
            .map(|w| (w.path.clone(), w.name.clone()))
            .collect();
        let expected: Vec<(String, String)> = tree
            .scenario
            .expect
            .iter()
            .map(|e| (e.path.clone(), e.workspace.clone()))
            .collect();
        if listed != expected {
            failures.push(format!("{name}: listed {listed:?}, expected {expected:?}"));
            continue;
        }
        for (ws, expect) in result.workspaces.iter().zip(&tree.scenario.expect) {
            let codes: Vec<&str> = ws.verdict.reasons.iter().map(|r| r.code.as_str()).collect();
            if ws.verdict.status.as_str() != expect.status {
                failures.push(format!(
                    "{name} {}:{}: status {} (reasons {codes:?}), expected {}",
                    ws.path, ws.name, ws.verdict.status, expect.status
                ));
            }
            for code in &expect.reasons {
                if !codes.contains(&code.as_str()) {
                    failures.push(format!(
                        "{name} {}:{}: reason {code} missing from {codes:?}",
                        ws.path, ws.name
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn scan_prints_the_golden_document_for_every_scenario() {
    let mut failures = Vec::new();
    for name in scenario_names() {
        let tree = load_scenario(&name);
        let now = tree.scenario.now.to_rfc3339();
        let output = iacwatch()
            .args([
                "scan",
                "--format",
                "json",
                "--now",
                &now,
                "--hostname",
                &tree.scenario.host,
                ".",
            ])
            .current_dir(tree.root())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(!stdout.contains(CANARY), "{name}: the canary leaked into scan output");
        let golden = repo().join("tests/golden/scenarios").join(format!("{name}.json"));
        if let Err(e) = check_golden(&golden, &stdout) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
