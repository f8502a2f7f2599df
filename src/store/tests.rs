//! The writer's rules: what a batch replaces (its scope), the transitions it reports, when a
//! status began, readiness and the roots' readability, as readers see them.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::*;
use crate::artifact::state::StateMeta;
use crate::classify::{Policy, classify};
use crate::evidence::{Artifact, Evidence};
use crate::workspace::{ProblemKind, Scope, workspace_id};

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap() + TimeDelta::minutes(minute)
}

/// A workspace at `path` of root `r`: without a state it is inactive; with `resources` in its
/// state (written at minute 0) it is active.
fn ws(path: &str, resources: Option<u64>) -> Workspace {
    let evidence = Evidence {
        state: resources.map(|n| Artifact {
            path: format!("{path}/terraform.tfstate"),
            modified: at(0),
            content: StateReading::Parsed(std::sync::Arc::new(StateMeta {
                version: Some(4),
                serial: Some(1),
                lineage: None,
                terraform_version: None,
                resources: Some(n),
                tainted: 0,
                encrypted: false,
            })),
        }),
        ..Evidence::default()
    };
    let verdict = classify(&evidence, at(1), &Policy::default());
    Workspace {
        id: workspace_id("r", path, "default"),
        root: "r".into(),
        path: path.into(),
        name: "default".into(),
        evidence,
        verdict,
    }
}

fn update(scope: Scope, workspaces: Vec<Workspace>, minute: i64) -> Update {
    Update {
        root: "r".into(),
        scope,
        workspaces,
        problems: Vec::new(),
        full: false,
        at: at(minute),
    }
}

fn full(workspaces: Vec<Workspace>, minute: i64) -> Update {
    Update {
        full: true,
        ..update(Scope::Subtree(".".into()), workspaces, minute)
    }
}

fn dirs(paths: &[&str]) -> Scope {
    Scope::Dirs(paths.iter().map(|p| p.to_string()).collect())
}

fn key(path: &str) -> Key {
    ("r".into(), path.into(), "default".into())
}

fn paths(reader: &Reader) -> Vec<String> {
    reader.snapshot().workspaces.keys().map(|k| k.1.clone()).collect()
}

#[test]
fn a_full_batch_replaces_the_root_and_an_incremental_one_only_its_scope() {
    let mut writer = Writer::new();
    let reader = writer.reader();
    writer.apply(full(vec![ws("a", None), ws("a/b", None), ws("c", None)], 1));
    assert_eq!(paths(&reader), ["a", "a/b", "c"]);
    assert_eq!(reader.snapshot().last_full_scan, Some(at(1)));

    // Exactly the directories named: `a/b` is not in scope and stays.
    writer.apply(update(dirs(&["a"]), Vec::new(), 2));
    assert_eq!(paths(&reader), ["a/b", "c"]);
    // A subtree takes everything below it, and nothing beside it with the same prefix.
    writer.apply(update(Scope::Subtree("a".into()), vec![ws("a/d", None)], 3));
    assert_eq!(paths(&reader), ["a/d", "c"]);
    assert_eq!(
        reader.snapshot().last_full_scan,
        Some(at(1)),
        "only full batches set it"
    );
    assert_eq!(reader.snapshot().updated_at, Some(at(3)));

    // Another root is never touched.
    let mut other = ws("c", None);
    other.root = "s".into();
    writer.apply(Update {
        root: "s".into(),
        ..update(Scope::Subtree(".".into()), vec![other], 4)
    });
    writer.apply(full(Vec::new(), 5));
    let left: Vec<Key> = reader.snapshot().workspaces.keys().collect();
    assert_eq!(left, [("s".to_owned(), "c".to_owned(), "default".to_owned())]);
}

#[test]
fn transitions_tell_appearing_changing_and_vanishing() {
    let mut writer = Writer::new();
    let applied = writer.apply(full(vec![ws("a", None), ws("b", Some(2))], 1));
    let seen: Vec<_> = applied
        .transitions
        .iter()
        .map(|t| (t.key.1.as_str(), t.from, t.to))
        .collect();
    assert_eq!(
        seen,
        [("a", None, Some(Status::Inactive)), ("b", None, Some(Status::Active))]
    );
    let b = &applied.transitions[1];
    assert_eq!(
        (b.at, b.id.as_str()),
        (at(1), workspace_id("r", "b", "default").as_str())
    );
    assert_eq!(b.reasons, [ReasonCode::StateHasResources]);

    // The same readings again: nothing changed, nothing to tell.
    assert!(
        writer
            .apply(full(vec![ws("a", None), ws("b", Some(2))], 2))
            .transitions
            .is_empty()
    );

    // `a` gets a state with resources, `b` vanishes.
    let applied = writer.apply(full(vec![ws("a", Some(1))], 3));
    let seen: Vec<_> = applied
        .transitions
        .iter()
        .map(|t| (t.key.1.as_str(), t.from, t.to))
        .collect();
    assert_eq!(
        seen,
        [
            ("b", Some(Status::Active), None),
            ("a", Some(Status::Inactive), Some(Status::Active))
        ]
    );
    assert!(
        applied.transitions[0].reasons.is_empty(),
        "a vanished workspace has no verdict"
    );
    assert_eq!(applied.transitions[1].reasons, [ReasonCode::StateHasResources]);
    assert_eq!(applied.transitions[1].key, key("a"));
}

#[test]
fn status_since_is_kept_until_the_status_changes() {
    let mut writer = Writer::new();
    let reader = writer.reader();
    let since = |path: &str| reader.snapshot().workspaces[&key(path)].since;
    // First sight: the evidence's own time (the state's, minute 0), never later than now.
    writer.apply(full(vec![ws("a", Some(1))], 5));
    assert_eq!(since("a"), at(0));
    // A new reading with the same status keeps it.
    writer.apply(update(dirs(&["a"]), vec![ws("a", Some(3))], 6));
    assert_eq!(since("a"), at(0));
    // A change takes the time it was seen.
    writer.apply(update(dirs(&["a"]), vec![ws("a", None)], 7));
    assert_eq!(since("a"), at(7));
    writer.apply(update(dirs(&["a"]), vec![ws("a", None)], 8));
    assert_eq!(since("a"), at(7));
}

#[test]
fn problems_are_replaced_by_scope_and_new_artifact_errors_are_told_once() {
    let mut writer = Writer::new();
    let reader = writer.reader();
    let problem = |path: &str| ScanProblem {
        root: "r".into(),
        path: path.into(),
        kind: ProblemKind::DirectoryUnreadable,
        message: format!("{path} cannot be read"),
    };
    let mut batch = full(Vec::new(), 1);
    batch.problems = vec![problem("x"), problem("y")];
    writer.apply(batch);
    writer.apply(update(dirs(&["x"]), Vec::new(), 2));
    let left: Vec<_> = reader.snapshot().problems.keys().map(|k| k.1.clone()).collect();
    assert_eq!(left, ["y"]);

    let mut broken = ws("a", None);
    broken.evidence.state = Some(Artifact {
        path: "a/terraform.tfstate".into(),
        modified: at(0),
        content: StateReading::Unreadable(crate::artifact::ParseError::Empty),
    });
    let first = writer.apply(update(dirs(&["a"]), vec![broken.clone()], 3));
    assert_eq!(
        first.new_errors,
        [ArtifactError {
            root: "r".into(),
            path: "a/terraform.tfstate".into(),
            kind: crate::artifact::ParseError::Empty.kind(),
        }]
    );
    assert!(
        writer
            .apply(update(dirs(&["a"]), vec![broken], 4))
            .new_errors
            .is_empty()
    );
}

#[test]
fn readers_see_readiness_and_roots_with_the_data() {
    let mut writer = Writer::new();
    let reader = writer.reader();
    let later = reader.clone();
    assert!(!reader.is_ready());
    writer.set_root_up("r", true);
    writer.set_root_up("s", false);
    writer.apply(full(vec![ws("a", None)], 1));
    writer.set_ready();
    let snapshot = later.snapshot();
    assert!(snapshot.ready && later.is_ready());
    assert_eq!(snapshot.roots.get("r"), Some(&true));
    assert_eq!(snapshot.roots.get("s"), Some(&false));
    assert_eq!(snapshot.workspaces.len(), 1);
    writer.set_root_up("r", false);
    assert_eq!(reader.snapshot().roots.get("r"), Some(&false));
    assert!(reader.snapshot().ready, "readiness stays");
    // Known, as a source sees it: the same workspaces.
    let known: Arc<dyn Known> = writer.snapshot();
    assert_eq!(known.workspaces().count(), 1);
    assert!(known.workspace(&key("a")).is_some());
}

#[test]
fn after_a_restart_a_workspace_in_its_recorded_status_keeps_its_since_and_makes_no_transition() {
    let mut writer = Writer::new();
    let reader = writer.reader();
    let active = ws("a", Some(3)).verdict.status;
    let inactive = ws("b", None).verdict.status;
    assert_ne!(active, inactive);
    writer.resume(BTreeMap::from([
        (key("a"), (active, at(-600))),
        (key("b"), (active, at(-500))),
        (key("gone"), (inactive, at(-400))),
    ]));
    let applied = writer.apply(full(vec![ws("a", Some(3)), ws("b", None), ws("c", None)], 5));
    type Move = (String, Option<Status>, Option<Status>, DateTime<Utc>);
    let moves: Vec<Move> = applied
        .transitions
        .iter()
        .map(|t| (t.key.1.clone(), t.from, t.to, t.since))
        .collect();
    assert_eq!(
        moves,
        [
            ("b".to_owned(), Some(active), Some(inactive), at(5)),
            (
                "c".to_owned(),
                None,
                Some(inactive),
                at(5).min(ws("c", None).verdict.since.unwrap_or(at(5)))
            ),
        ]
    );
    let snapshot = reader.snapshot();
    assert_eq!(snapshot.workspaces[&key("a")].since, at(-600));
    assert_eq!(snapshot.workspaces[&key("b")].since, at(5));
    let unseen = writer.unseen(at(6));
    assert_eq!(unseen.transitions.len(), 1);
    let gone = &unseen.transitions[0];
    assert_eq!(
        (gone.key.1.as_str(), gone.from, gone.to),
        ("gone", Some(inactive), None)
    );
    assert!(writer.unseen(at(7)).transitions.is_empty(), "reported once");
}

#[test]
fn workspaces_stay_in_key_order_and_a_batch_naming_one_twice_keeps_the_last() {
    let mut writer = Writer::new();
    let reader = writer.reader();
    writer.apply(full(vec![ws("c", Some(1)), ws("a", None)], 1));
    let applied = writer.apply(update(dirs(&["b"]), vec![ws("b", None), ws("b", Some(3))], 2));
    assert_eq!(paths(&reader), ["a", "b", "c"]);
    let snapshot = reader.snapshot();
    assert_eq!(snapshot.workspaces[&key("b")].workspace.verdict.status, Status::Active);
    assert_eq!(applied.transitions.len(), 1, "{:?}", applied.transitions);
    assert_eq!(applied.transitions[0].to, Some(Status::Active));
    assert!(snapshot.workspaces.get(&key("d")).is_none());
}

#[test]
fn kept_workspaces_share_one_copy_of_a_message_and_own_their_state() {
    let mut writer = Writer::new();
    let reader = writer.reader();
    let (a, b) = (ws("a", Some(2)), ws("b", Some(2)));
    let read_state = match &a.evidence.state.as_ref().unwrap().content {
        StateReading::Parsed(meta) => meta.clone(),
        other => panic!("{other:?}"),
    };
    writer.apply(full(vec![a, b], 1));
    let snapshot = reader.snapshot();
    let message = |path: &str| {
        snapshot.workspaces[&key(path)].workspace.verdict.reasons[0]
            .message
            .clone()
    };
    assert_eq!(message("a"), message("b"));
    assert!(
        Arc::ptr_eq(&message("a"), &message("b")),
        "one copy of the same message"
    );
    let kept = snapshot.workspaces[&key("a")].workspace.verdict.state.clone().unwrap();
    assert_eq!(*kept, *read_state);
    assert!(
        !Arc::ptr_eq(&kept, &read_state),
        "the kept state is the store's own copy"
    );
    match &snapshot.workspaces[&key("a")]
        .workspace
        .evidence
        .state
        .as_ref()
        .unwrap()
        .content
    {
        StateReading::Parsed(meta) => assert!(Arc::ptr_eq(meta, &kept), "evidence and verdict still share it"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn records_replaced_one_at_a_time_do_not_keep_kept_memory_resident() {
    // One workspace changes 40 times between two changes of the others, so without copying the
    // records again most chunks would be kept by a record of the slow ones (13.3 MB held, measured
    // with the copying switched off, for well under one MiB alive).
    let mut writer = Writer::new();
    let reader = writer.reader();
    let slow: Vec<String> = (0..400).map(|i| format!("slow/{i}")).collect();
    let mut all: Vec<Workspace> = slow.iter().map(|p| ws(p, Some(1))).collect();
    all.push(ws("fast", Some(1)));
    writer.apply(full(all, 1));
    for (i, path) in slow.iter().enumerate() {
        writer.apply(update(dirs(&[path]), vec![ws(path, Some(2 + i as u64))], 2));
        for n in 0..40 {
            writer.apply(update(dirs(&["fast"]), vec![ws("fast", Some(n))], 2));
        }
    }
    let snapshot = reader.snapshot();
    assert_eq!(snapshot.workspaces.len(), 401);
    let state = &snapshot
        .workspaces
        .get(&key("slow/399"))
        .unwrap()
        .workspace
        .verdict
        .state;
    assert_eq!(state.as_ref().and_then(|s| s.resources), Some(401));
    assert!(kept::held() < 12 << 20, "kept memory held: {} bytes", kept::held());
}
