//! The layer rule of `ARCHITECTURE.md`, checked: every `crate::` path in `src/` is read, and an
//! import that runs back up a layer, reaches from one source into a sibling source, or closes a
//! circle between top-level modules fails the test. When a module moves, adjust `LAYERS`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first, with the top-level modules (files or folders of `src/`) of each.
const LAYERS: [(&str, &[&str]); 5] = [
    (
        "core",
        &[
            "model",
            "artifact",
            "evidence",
            "classify",
            "workspace",
            "shard",
            "build_info",
            "telemetry",
        ],
    ),
    ("source", &["source"]),
    ("store", &["store", "history"]),
    ("output", &["report", "http"]),
    ("command", &["command", "cli", "config", "logging", "wrapper"]),
];

/// Which layers a layer may import, its own included. A source may import its own folder of
/// `source/` but no sibling's.
const MAY_IMPORT: [(&str, &[&str]); 5] = [
    ("core", &["core"]),
    ("source", &["core", "source"]),
    ("store", &["core"]),
    ("output", &["core", "store", "output"]),
    ("command", &["core", "source", "store", "output", "command"]),
];

/// Imports between top-level modules that break the rule today and are on their way out, with
/// why. Each must still be there: delete the line when its import goes.
const PENDING: [(&str, &str, &str); 0] = [];

/// One `crate::` path: the file it is in (relative to `src/`), the top-level module it names
/// and the module below that.
#[derive(Debug)]
struct Import {
    file: String,
    top: String,
    sub: Option<String>,
}

fn layer_of(top: &str) -> Option<&'static str> {
    LAYERS
        .iter()
        .find(|(_, modules)| modules.contains(&top))
        .map(|(layer, _)| *layer)
}

/// The top-level module of a file of `src/` (`source/local/read.rs` -> `source`), and its
/// second component (`local`).
fn module_of(file: &str) -> (String, Option<String>) {
    let mut parts = file.split('/');
    let top = parts.next().unwrap_or_default().trim_end_matches(".rs").to_owned();
    let sub = parts
        .next()
        .map(|s| s.trim_end_matches(".rs").to_owned())
        .filter(|s| s != "mod");
    (top, sub)
}

/// Every `crate::a::b` and `crate::{a::b, c}` of a file, outside comments.
fn imports(file: &str, text: &str) -> Vec<Import> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let items: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group.split('}').next().unwrap_or_default().split(',').collect(),
                None => vec![rest],
            };
            for item in items {
                let mut path = item.trim().split("::").map(|p| {
                    p.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect::<String>()
                });
                let top = path.next().unwrap_or_default();
                if !top.is_empty() {
                    out.push(Import {
                        file: file.to_owned(),
                        top,
                        sub: path.next().filter(|s| !s.is_empty()),
                    });
                }
            }
        }
    }
    out
}

/// Everything wrong with these files (path relative to `src/`, text): one line a problem.
fn check(files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, text) in files {
        let (from, from_sub) = module_of(file);
        if matches!(from.as_str(), "lib" | "main" | "layers") {
            continue;
        }
        let Some(from_layer) = layer_of(&from) else {
            problems.push(format!("{file}: module `{from}` is in no layer (add it to LAYERS)"));
            continue;
        };
        for import in imports(file, text) {
            if import.top == from {
                if from == "source" && import.sub.is_some() && import.sub != from_sub {
                    problems.push(format!(
                        "{}: a source imports its sibling `source::{}`",
                        import.file,
                        import.sub.unwrap_or_default()
                    ));
                }
                continue;
            }
            if PENDING.iter().any(|(f, t, _)| *f == from && *t == import.top) {
                continue;
            }
            edges.entry(from.clone()).or_default().insert(import.top.clone());
            let Some(to_layer) = layer_of(&import.top) else {
                problems.push(format!("{}: `crate::{}` is in no layer", import.file, import.top));
                continue;
            };
            let allowed = MAY_IMPORT
                .iter()
                .find(|(layer, _)| *layer == from_layer)
                .is_some_and(|(_, may)| may.contains(&to_layer));
            if !allowed {
                problems.push(format!(
                    "{}: {from_layer} module `{from}` imports {to_layer} module `{}`",
                    import.file, import.top
                ));
            }
        }
    }
    for (from, to, why) in PENDING {
        let still = files
            .iter()
            .any(|(file, text)| module_of(file).0 == from && imports(file, text).iter().any(|i| i.top == to));
        if !still {
            problems.push(format!(
                "PENDING lists `{from}` -> `{to}` ({why}), which is gone: delete the line"
            ));
        }
    }
    problems.extend(circle(&edges).map(|c| format!("import circle: {}", c.join(" -> "))));
    problems
}

/// A circle in the module graph, if there is one.
fn circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

fn sources(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/");
            out.push((rel, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

fn file(path: &str, text: &str) -> (String, String) {
    (path.to_owned(), text.to_owned())
}

#[test]
fn no_import_runs_back_up_a_layer_and_no_circle_closes() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    assert!(files.len() > 40, "only {} files read", files.len());
    let problems = check(&files);
    assert!(
        problems.is_empty(),
        "the layer rule is broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_catches_each_kind_of_break() {
    let ok = [
        file(
            "store/mod.rs",
            "use crate::workspace::{Key, Update};\nuse crate::model::Status;",
        ),
        file(
            "http.rs",
            "use crate::store::Reader; // crate::source::local is only named here\nuse crate::report::Counts;",
        ),
        file("source/local/read.rs", "use crate::source::local::layout;"),
    ];
    let only = |extra: (String, String)| {
        let mut files = ok.to_vec();
        files.push(extra);
        check(&files)
            .into_iter()
            .filter(|p| !p.starts_with("PENDING"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        only(file("report.rs", "use crate::model::Status;")),
        Vec::<String>::new()
    );
    let up = only(file("evidence.rs", "let x = crate::store::Writer::new();"));
    assert_eq!(up, ["evidence.rs: core module `evidence` imports store module `store`"]);
    let output_to_source = only(file(
        "http/metrics/mod.rs",
        "use crate::{model::Status, source::local::Root};",
    ));
    assert_eq!(
        output_to_source,
        ["http/metrics/mod.rs: output module `http` imports source module `source`"]
    );
    let sibling = only(file("source/s3/mod.rs", "use crate::source::local::Root;"));
    assert_eq!(
        sibling,
        ["source/s3/mod.rs: a source imports its sibling `source::local`"]
    );
    let unknown = only(file("gadget.rs", "use crate::store::Transition;"));
    assert_eq!(
        unknown,
        ["gadget.rs: module `gadget` is in no layer (add it to LAYERS)"]
    );
    let round = only(file("report.rs", "use crate::http::Selection;"));
    assert_eq!(round, ["import circle: http -> report -> http"]);
}
