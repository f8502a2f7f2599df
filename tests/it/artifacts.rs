//! Every parser against every fixture file: one case a file, the golden beside it under
//! `tests/golden/artifacts/`. A canary planted in fixtures must never reach a parser's output.

use std::fs;

use iacwatch::artifact::{ParseError, backend, marker, plan, state, tflock};

use crate::support::{CANARY, check_golden, repo};

fn parse_all(kind: &str, name: &str, bytes: &[u8]) -> String {
    match kind {
        "state" => format!("{:#?}\n", state::parse(bytes)),
        "plan" => format!("{:#?}\n", plan::parse(bytes)),
        "lock" => format!("{:#?}\n", tflock::parse(bytes)),
        "backend" => format!("{:#?}\n", backend::parse(bytes)),
        "marker" if name.contains("last-run") => format!("{:#?}\n", marker::parse_last_run(bytes)),
        "marker" if name.contains("lock") => format!("{:#?}\n", marker::parse_lock(bytes)),
        "marker" => format!(
            "as lock.json: {:#?}\nas last-run.json: {:#?}\n",
            marker::parse_lock(bytes),
            marker::parse_last_run(bytes)
        ),
        _ => String::new(),
    }
}

fn same<T: PartialEq>(a: &Result<T, ParseError>, b: &Result<T, ParseError>) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => a.kind() == b.kind(),
        _ => false,
    }
}

#[test]
fn every_artifact_fixture_parses_as_its_golden_says() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for kind in ["state", "plan", "lock", "marker", "backend"] {
        let dir = repo().join("fixtures/artifacts").join(kind);
        let mut files: Vec<_> = fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = fs::read(&file).unwrap();
            let parsed = parse_all(kind, &name, &bytes);
            assert!(
                !parsed.contains(CANARY),
                "{kind}/{name}: the parsed metadata holds the canary"
            );
            // The streaming parser (for very large files) must agree; error positions may differ.
            let agree = match kind {
                "state" => same(&state::parse(&bytes), &state::parse_reader(&bytes[..])),
                "plan" => same(&plan::parse(&bytes), &plan::parse_reader(&bytes[..])),
                _ => true,
            };
            if !agree {
                failures.push(format!(
                    "{kind}/{name}: the streaming parser disagrees with the slice parser"
                ));
            }
            let golden = repo()
                .join("tests/golden/artifacts")
                .join(kind)
                .join(format!("{name}.txt"));
            if let Err(e) = check_golden(&golden, &parsed) {
                failures.push(e);
            }
            cases += 1;
        }
    }
    assert!(cases > 40, "only {cases} artifact fixtures found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn canary_is_really_planted_in_the_fixtures() {
    // Otherwise the leak tests would prove nothing.
    for file in [
        "state/tf1.0.3-v4-canary-outputs.tfstate",
        "plan/tf1.0.3-fv0.2-canary-sensitive-outputs.json",
    ] {
        let text = fs::read_to_string(repo().join("fixtures/artifacts").join(file)).unwrap();
        assert!(text.contains(CANARY), "{file} does not hold the canary");
    }
}
