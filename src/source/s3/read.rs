//! A poll's result as workspaces: each `RemoteWorkspace` becomes the evidence of
//! `(root, path, workspace)` with backend `s3`, classified by the same classifier as a directory's
//! workspaces (the pipeline markers published beside the state object as a directory's markers,
//! the published lock with its lease); what could not be read becomes `errors` entries. Pure: no
//! IO, no clock.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::error::{ErrorKind, RemoteError};
use super::keys::{lock_id, lock_object_key};
use super::poll::{DigestCheck, LockSource, PollResult, RemoteLock, RemoteWorkspace};
use super::settings::RemoteRoot;
use crate::artifact::ParseError;
use crate::artifact::marker::names;
use crate::artifact::state::StateMeta;
use crate::artifact::tflock::TerraformLock;
use crate::classify::{Policy, classify};
use crate::evidence::{Artifact, Evidence, Holder, Observed, StateReading};
use crate::workspace::{Known, ProblemKind, ScanProblem, Workspace, sort, workspace_id};

/// The `backend` of every workspace of a bucket root.
pub const BACKEND: &str = "s3";

/// The kind of an `errors` entry for a remote failure.
pub fn problem_kind(kind: ErrorKind) -> ProblemKind {
    match kind {
        ErrorKind::Unreachable => ProblemKind::Unreachable,
        ErrorKind::AccessDenied => ProblemKind::AccessDenied,
        ErrorKind::NotFound => ProblemKind::NotFound,
        ErrorKind::Throttled => ProblemKind::Throttled,
        ErrorKind::ServerError => ProblemKind::ServerError,
        ErrorKind::BadResponse => ProblemKind::BadResponse,
    }
}

/// The `errors` entry of a root that could not be read at all: its path is empty (the whole root).
pub fn root_problem(root: &RemoteRoot, err: &RemoteError) -> ScanProblem {
    ScanProblem {
        root: root.root.url.clone(),
        path: String::new(),
        kind: problem_kind(err.kind),
        message: err.to_string(),
    }
}

/// The `errors` entry of one object or of the lock table: its path is the object's key, or
/// `dynamodb:TABLE`.
fn item_problem(root: &RemoteRoot, err: &RemoteError) -> ScanProblem {
    let bucket = format!("s3://{}/", root.root.bucket);
    ScanProblem {
        root: root.root.url.clone(),
        path: err.target.strip_prefix(&bucket).unwrap_or(&err.target).to_owned(),
        kind: problem_kind(err.kind),
        message: err.to_string(),
    }
}

/// The workspaces of one poll, classified at `now`, sorted; and the poll's `errors` entries.
/// `known` is what was read before (the daemon's last snapshot): the last good state of a
/// workspace whose state is being rewritten, and its locks while the lock table cannot be read.
pub fn workspaces(
    root: &RemoteRoot,
    result: &PollResult,
    now: DateTime<Utc>,
    policy: &Policy,
    known: Option<&dyn Known>,
) -> (Vec<Workspace>, Vec<ScanProblem>) {
    let url = root.root.url.as_str();
    let mut found: Vec<Workspace> = result
        .workspaces
        .iter()
        .map(|ws| {
            let (path, name) = (&ws.identity.path, &ws.identity.workspace);
            let key = (url.to_owned(), path.clone(), name.clone());
            let previous = known.and_then(|k| k.workspace(&key)).map(|w| &w.evidence);
            let evidence = evidence(root, ws, now, previous, result.lock_table.is_some());
            Workspace {
                id: workspace_id(url, path, name),
                root: url.to_owned(),
                path: path.clone(),
                name: name.clone(),
                verdict: classify(&evidence, now, policy),
                evidence,
            }
        })
        .collect();
    sort(&mut found);
    let mut problems: Vec<ScanProblem> = result.problems.iter().map(|e| item_problem(root, e)).collect();
    problems.extend(result.lock_table.iter().map(|e| item_problem(root, e)));
    (found, problems)
}

/// The evidence of one remote workspace. `table_down`: the lock table could not be read this
/// time, so the locks and digest read before are kept.
pub(super) fn evidence(
    root: &RemoteRoot,
    ws: &RemoteWorkspace,
    now: DateTime<Utc>,
    previous: Option<&Evidence>,
    table_down: bool,
) -> Evidence {
    let key = &ws.identity.key;
    // No state object (only its markers are listed): no state, as a directory without one.
    let state = ws.state.as_ref().map(|object| Artifact {
        path: key.clone(),
        modified: object.last_modified,
        content: match &object.content {
            Ok(meta) => StateReading::Parsed(Arc::new(meta.clone())),
            Err(ParseError::Empty) => StateReading::Empty,
            Err(err) => StateReading::Unreadable(err.clone()),
        },
    });
    let mut terraform_lock = newest(&ws.locks).map(|lock| {
        let path = match lock.source {
            LockSource::Table => table_path(root, key),
            LockSource::Object => lock_object_key(key),
        };
        // A lock whose `Info` says no time counts from when it was first seen.
        let seen = previous
            .and_then(|p| p.terraform_lock.as_ref())
            .filter(|p| p.path == path)
            .map_or(now, |p| p.modified);
        Box::new(Artifact {
            modified: lock.lock.as_ref().ok().and_then(|l| l.created).unwrap_or(seen),
            path,
            content: Observed {
                content: lock.lock.clone(),
                // A remote lock's holder cannot be asked: live until stale.
                holder: Holder::Unknown,
            },
        })
    });
    let mut state_digest_mismatch = match ws.digest {
        // Terraform writes the object, then the digest: the mismatch counts from the object.
        DigestCheck::Differs => ws.state.as_ref().map(|s| s.last_modified),
        _ => None,
    };
    if table_down && let Some(previous) = previous {
        if terraform_lock.is_none() {
            terraform_lock = previous
                .terraform_lock
                .clone()
                .filter(|l| l.path == table_path(root, key));
        }
        state_digest_mismatch = previous.state_digest_mismatch;
    }
    let markers = &ws.markers;
    let pipeline_lease = markers
        .lock
        .as_ref()
        .and_then(|l| l.content.as_ref().ok())
        .and_then(|(_, lease)| *lease);
    let pipeline_lock = markers.lock.clone().map(|artifact| {
        artifact.map(|content| Observed {
            content: content.map(|(lock, _)| lock),
            // A runner elsewhere cannot be asked: its lease (when it has one) answers for it.
            holder: Holder::Unknown,
        })
    });
    let previous_state = state
        .as_ref()
        .filter(|s| s.content.wants_previous())
        .and_then(|_| previous.and_then(last_good_state));
    Evidence {
        state,
        pipeline_lock: pipeline_lock.map(Box::new),
        pipeline_lease,
        last_run: markers.last_run.clone().map(Box::new),
        // Current when at least as new as the state object; no configuration to compare here.
        plans: markers.plan.clone().into_iter().collect(),
        previous_state,
        terraform_lock,
        backend: Some(BACKEND.to_owned()),
        remote_state_read: true,
        state_digest_mismatch,
        ..Evidence::default()
    }
}

/// The lock the status follows: of a table item and a lock object, the one created last; a lock
/// that cannot be read counts as the newest (it is a lock whatever it holds).
fn newest(locks: &[RemoteLock]) -> Option<&RemoteLock> {
    let created = |l: &RemoteLock| {
        l.lock
            .as_ref()
            .map_or(Some(DateTime::<Utc>::MAX_UTC), |l: &TerraformLock| l.created)
    };
    locks.iter().max_by_key(|l| created(l))
}

/// Where a lock table item is shown: `dynamodb:TABLE/BUCKET/KEY` (the table and the `LockID`).
fn table_path(root: &RemoteRoot, key: &str) -> String {
    let table = root.settings.dynamodb_table.as_deref().unwrap_or_default();
    format!("dynamodb:{table}/{}", lock_id(&root.root.bucket, key))
}

/// The bucket key of the state object a workspace of the bucket was read for: its state
/// artifact's path, or, while only its markers are listed, the state key of a published marker
/// (`STATEKEY.iacwatch/NAME`).
pub fn bucket_state_key(evidence: &Evidence) -> Option<&str> {
    if let Some(state) = &evidence.state {
        return Some(state.path.as_str());
    }
    let markers = [
        evidence.pipeline_lock.as_ref().map(|a| a.path.as_str()),
        evidence.last_run.as_ref().map(|a| a.path.as_str()),
    ];
    markers
        .into_iter()
        .flatten()
        .chain(evidence.plans.iter().map(|p| p.path.as_str()))
        .find_map(|path| names::split_remote_key(path).map(|(state, _)| state))
}

fn last_good_state(previous: &Evidence) -> Option<Arc<StateMeta>> {
    match previous.state.as_ref().map(|s| &s.content) {
        Some(StateReading::Parsed(meta)) => Some(meta.clone()),
        _ => previous.previous_state.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::tflock::LockOperation;
    use crate::model::{ReasonCode, Status};
    use crate::source::s3::keys::StateIdentity;
    use crate::source::s3::poll::{RemoteMarkers, RemoteState};
    use crate::source::s3::settings::{RemoteSettings, S3Root};

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc()
    }

    fn root() -> RemoteRoot {
        RemoteRoot {
            root: S3Root::parse("s3://tfstate/prod").unwrap(),
            settings: RemoteSettings {
                dynamodb_table: Some("locks".into()),
                ..RemoteSettings::default()
            },
        }
    }

    fn remote(workspace: &str, state: &[u8]) -> RemoteWorkspace {
        let key = match workspace {
            "default" => "prod/app/terraform.tfstate".to_owned(),
            w => format!("env:/{w}/prod/app/terraform.tfstate"),
        };
        RemoteWorkspace {
            identity: StateIdentity {
                path: "app/terraform.tfstate".into(),
                workspace: workspace.into(),
                key,
            },
            state: Some(RemoteState {
                etag: Some("\"e\"".into()),
                last_modified: t0(),
                content: crate::artifact::state::parse(state),
            }),
            locks: Vec::new(),
            digest: DigestCheck::Matches,
            markers: RemoteMarkers::default(),
        }
    }

    const ACTIVE: &[u8] = br#"{"version":4,"serial":3,"lineage":"l","resources":[{"mode":"managed","type":"t","name":"n","instances":[{"attributes":{}}]}]}"#;
    const EMPTY: &[u8] = br#"{"version":4,"serial":1,"lineage":"l","resources":[]}"#;

    #[test]
    fn every_workspace_of_a_poll_is_classified_under_its_identity() {
        let mut applying = remote("staging", EMPTY);
        applying.locks.push(RemoteLock {
            source: LockSource::Table,
            lock: Ok(TerraformLock {
                id: None,
                operation: LockOperation::Apply,
                who: None,
                version: None,
                created: Some(t0()),
            }),
        });
        let mut mismatch = remote("qa", ACTIVE);
        mismatch.digest = DigestCheck::Differs;
        let result = PollResult {
            workspaces: vec![remote("default", ACTIVE), applying, mismatch, remote("dev", b"{\"vers")],
            problems: vec![RemoteError::new(
                ErrorKind::NotFound,
                crate::source::s3::Operation::Get,
                "s3://tfstate/prod/gone.tfstate",
            )],
            lock_table: None,
        };
        let policy = Policy::default();
        let (found, problems) = workspaces(&root(), &result, t0() + chrono::TimeDelta::seconds(10), &policy, None);
        let got: Vec<(&str, &str, Status)> = found
            .iter()
            .map(|w| (w.path.as_str(), w.name.as_str(), w.verdict.status))
            .collect();
        assert_eq!(
            got,
            [
                ("app/terraform.tfstate", "default", Status::Active),
                ("app/terraform.tfstate", "dev", Status::Failed),
                ("app/terraform.tfstate", "qa", Status::Failed),
                ("app/terraform.tfstate", "staging", Status::Provisioning),
            ]
        );
        assert!(found.iter().all(|w| w.root == "s3://tfstate/prod"));
        assert!(found.iter().all(|w| w.evidence.backend.as_deref() == Some("s3")));
        let qa = &found[2];
        assert!(
            qa.verdict
                .reasons
                .iter()
                .any(|r| r.code == ReasonCode::StateDigestMismatch)
        );
        let staging = &found[3];
        let lock = staging.evidence.terraform_lock.as_ref().unwrap();
        assert_eq!(
            lock.path,
            "dynamodb:locks/tfstate/env:/staging/prod/app/terraform.tfstate"
        );
        assert_eq!(lock.content.holder, Holder::Unknown);
        assert_eq!(problems.len(), 1);
        assert_eq!(
            (problems[0].path.as_str(), problems[0].kind),
            ("prod/gone.tfstate", ProblemKind::NotFound)
        );
    }

    #[test]
    fn a_mismatch_within_the_settle_time_is_no_failure() {
        let mut ws = remote("default", ACTIVE);
        ws.digest = DigestCheck::Differs;
        let result = PollResult {
            workspaces: vec![ws],
            problems: Vec::new(),
            lock_table: None,
        };
        let (found, _) = workspaces(&root(), &result, t0(), &Policy::default(), None);
        assert_eq!(found[0].verdict.status, Status::Active);
    }

    fn published(ws: &mut RemoteWorkspace, body: &[u8], modified: DateTime<Utc>) {
        ws.markers.lock = Some(Artifact {
            path: format!("{}.iacwatch/lock.json", ws.identity.key),
            modified,
            content: crate::artifact::marker::parse_published_lock(body),
        });
    }

    fn one(ws: RemoteWorkspace, now: DateTime<Utc>) -> Workspace {
        let result = PollResult {
            workspaces: vec![ws],
            problems: Vec::new(),
            lock_table: None,
        };
        let (mut found, _) = workspaces(&root(), &result, now, &Policy::default(), None);
        found.remove(0)
    }

    fn codes(w: &Workspace) -> Vec<ReasonCode> {
        w.verdict.reasons.iter().map(|r| r.code).collect()
    }

    /// The message of the reason `code` of `w`; fails the test when there is none.
    fn message(w: &Workspace, code: ReasonCode) -> &str {
        let reason = w.verdict.reasons.iter().find(|r| r.code == code);
        reason
            .map(|r| &*r.message)
            .unwrap_or_else(|| panic!("no {code} in {:?}", codes(w)))
    }

    /// Heartbeat at t0 + 10 s, lease 3 s: live through t0 + 13 s, dead strictly after.
    const LEASED: &[u8] = br#"{"operation":"provision","started_at":"2026-01-01T00:00:00Z","pid":7,"host":"runner-1","heartbeat_at":"2026-01-01T00:00:10Z","lease_seconds":3}"#;

    #[test]
    fn a_published_lock_is_live_until_its_lease_runs_out() {
        let ms = chrono::TimeDelta::milliseconds;
        let expires = t0() + chrono::TimeDelta::seconds(13);
        for (now, expected) in [
            (expires - ms(1), Status::Provisioning),
            (expires, Status::Provisioning),
            (expires + ms(1), Status::Failed),
        ] {
            let mut ws = remote("default", ACTIVE);
            published(&mut ws, LEASED, t0() + chrono::TimeDelta::seconds(10));
            let found = one(ws, now);
            assert_eq!(found.verdict.status, expected, "at {now}");
            if expected == Status::Failed {
                let reason = found
                    .verdict
                    .reasons
                    .iter()
                    .find(|r| r.code == ReasonCode::DeadPipeline)
                    .expect("dead_pipeline");
                assert!(reason.message.contains("lease expired"), "{}", reason.message);
                assert_eq!(
                    reason.artifact.as_deref(),
                    Some("prod/app/terraform.tfstate.iacwatch/lock.json")
                );
            } else {
                assert!(codes(&found).contains(&ReasonCode::PipelineLock));
                // Re-checked the moment the lease runs out, without waiting for a poll.
                assert_eq!(found.verdict.recheck_at, Some(expires + ms(1)));
            }
        }
    }

    #[test]
    fn a_live_lease_does_not_outlast_the_stale_limit() {
        // Heartbeats go on, but the run is older than the stale limit: stale, as a local pipeline
        // lock whose process still exists.
        let mut ws = remote("default", ACTIVE);
        let late = t0() + chrono::TimeDelta::hours(3);
        let body = format!(
            r#"{{"operation":"provision","started_at":"2026-01-01T00:00:00Z","heartbeat_at":"{}","lease_seconds":60}}"#,
            late.to_rfc3339()
        );
        published(&mut ws, body.as_bytes(), late);
        let found = one(ws, late + chrono::TimeDelta::seconds(1));
        assert_eq!(found.verdict.status, Status::Failed);
        assert!(codes(&found).contains(&ReasonCode::StaleLock));
        assert!(!codes(&found).contains(&ReasonCode::DeadPipeline));
    }

    #[test]
    fn a_remote_terraform_lock_of_a_dead_run_is_failed_too() {
        let mut ws = remote("default", ACTIVE);
        published(&mut ws, LEASED, t0());
        ws.locks.push(RemoteLock {
            source: LockSource::Table,
            lock: Ok(TerraformLock {
                id: None,
                operation: LockOperation::Apply,
                who: None,
                version: None,
                created: Some(t0() + chrono::TimeDelta::seconds(1)),
            }),
        });
        let live = one(ws.clone(), t0() + chrono::TimeDelta::seconds(12));
        assert_eq!(live.verdict.status, Status::Provisioning);
        let dead = one(ws, t0() + chrono::TimeDelta::seconds(20));
        assert_eq!(dead.verdict.status, Status::Failed);
        let lock_reason = message(&dead, ReasonCode::DeadLock);
        assert!(lock_reason.contains("lease expired"), "{lock_reason}");
        assert!(dead.verdict.flags.locked);
    }

    #[test]
    fn a_lock_without_a_lease_is_live_until_stale() {
        let mut ws = remote("default", ACTIVE);
        published(
            &mut ws,
            br#"{"operation":"destroy","started_at":"2026-01-01T00:00:00Z"}"#,
            t0(),
        );
        assert_eq!(
            one(ws.clone(), t0() + chrono::TimeDelta::hours(1)).verdict.status,
            Status::Destroying
        );
        assert_eq!(
            one(ws, t0() + chrono::TimeDelta::hours(2)).verdict.status,
            Status::Failed
        );
    }

    #[test]
    fn a_malformed_published_lock_is_a_reason_not_a_status() {
        let mut ws = remote("default", ACTIVE);
        published(&mut ws, br#"{"operation":"provision","started_at":"#, t0());
        let found = one(ws, t0() + chrono::TimeDelta::seconds(5));
        assert_eq!(found.verdict.status, Status::Active);
        let reason = message(&found, ReasonCode::ArtifactUnreadable);
        assert!(reason.contains("pipeline lock"), "{reason}");
    }

    const PLAN_WITH_CHANGES: &[u8] = br#"{"format_version":"1.0","terraform_version":"1.0.3","resource_changes":[{"address":"t.n","mode":"managed","type":"t","name":"n","change":{"actions":["create"],"after":{"secret":"CANARY"}}}]}"#;

    #[test]
    fn the_bucket_plan_counts_when_at_least_as_new_as_the_state() {
        for (plan_at, expected, code) in [
            (t0(), Status::ApplyNeeded, ReasonCode::PendingChanges),
            (
                t0() + chrono::TimeDelta::seconds(1),
                Status::ApplyNeeded,
                ReasonCode::PendingChanges,
            ),
            (
                t0() - chrono::TimeDelta::seconds(1),
                Status::Active,
                ReasonCode::PlanStale,
            ),
        ] {
            let mut ws = remote("default", ACTIVE);
            ws.markers.plan = Some(Artifact {
                path: "prod/app/terraform.tfstate.iacwatch/plan.json".into(),
                modified: plan_at,
                content: crate::artifact::plan::parse(PLAN_WITH_CHANGES),
            });
            ws.markers.last_run = Some(Artifact {
                path: "prod/app/terraform.tfstate.iacwatch/last-run.json".into(),
                modified: plan_at,
                content: crate::artifact::marker::parse_last_run(
                    br#"{"operation":"plan","outcome":"succeeded","exit_code":0}"#,
                ),
            });
            let found = one(ws, t0() + chrono::TimeDelta::seconds(5));
            assert_eq!(found.verdict.status, expected, "plan at {plan_at}");
            assert!(codes(&found).contains(&code), "{:?}", codes(&found));
            assert!(!codes(&found).contains(&ReasonCode::ConfigChanged));
            assert!(!format!("{:?}", found).contains("CANARY"));
        }
    }

    /// The first apply of a configuration: the bucket holds `STATEKEY.iacwatch/lock.json`, and
    /// Terraform has not written `STATEKEY` yet.
    fn first_apply() -> RemoteWorkspace {
        let mut ws = remote("default", ACTIVE);
        ws.state = None;
        ws.digest = DigestCheck::NotChecked;
        published(&mut ws, LEASED, t0() + chrono::TimeDelta::seconds(10));
        ws
    }

    #[test]
    fn a_workspace_with_only_a_published_lock_is_provisioning() {
        let found = one(first_apply(), t0() + chrono::TimeDelta::seconds(12));
        assert_eq!(found.verdict.status, Status::Provisioning);
        assert!(codes(&found).contains(&ReasonCode::PipelineLock), "{:?}", codes(&found));
        assert!(found.evidence.state.is_none());
        assert_eq!(bucket_state_key(&found.evidence), Some("prod/app/terraform.tfstate"));
        // The state was looked for in the bucket: not "out of sight", just not written yet.
        let no_state = found.verdict.reasons.iter().find(|r| r.code == ReasonCode::NoState);
        assert_eq!(no_state.map(|r| &*r.message), Some("no state object in the bucket yet"));
        assert!(
            !codes(&found).contains(&ReasonCode::RemoteStateNotVisible),
            "{:?}",
            codes(&found)
        );
    }

    #[test]
    fn a_first_apply_whose_lease_expired_is_failed() {
        let found = one(first_apply(), t0() + chrono::TimeDelta::seconds(14));
        assert_eq!(found.verdict.status, Status::Failed);
        assert!(codes(&found).contains(&ReasonCode::DeadPipeline), "{:?}", codes(&found));
    }

    #[test]
    fn a_failed_first_apply_leaves_a_failed_workspace() {
        let mut ws = first_apply();
        ws.markers.lock = None;
        ws.markers.last_run = Some(Artifact {
            path: "prod/app/terraform.tfstate.iacwatch/last-run.json".into(),
            modified: t0(),
            content: crate::artifact::marker::parse_last_run(
                br#"{"operation":"provision","outcome":"failed","exit_code":1}"#,
            ),
        });
        let found = one(ws, t0() + chrono::TimeDelta::seconds(5));
        assert_eq!(found.verdict.status, Status::Failed, "{:?}", codes(&found));
        assert!(
            codes(&found).contains(&ReasonCode::LastRunFailed),
            "{:?}",
            codes(&found)
        );
    }

    #[test]
    fn the_state_object_that_appears_is_the_same_workspace() {
        let before = one(first_apply(), t0() + chrono::TimeDelta::seconds(12));
        let mut ws = first_apply();
        ws.state = remote("default", ACTIVE).state;
        let after = one(ws, t0() + chrono::TimeDelta::seconds(12));
        assert_eq!(before.id, after.id);
        assert_eq!(
            (before.path.as_str(), before.name.as_str()),
            (after.path.as_str(), after.name.as_str())
        );
        assert!(after.evidence.state.is_some());
    }
}
