//! A poll's result as workspaces: each `RemoteWorkspace` becomes the evidence of
//! `(root, path, workspace)` with backend `s3`, classified by the same classifier as a directory's
//! workspaces; what could not be read becomes `errors` entries. Pure: no IO, no clock.

use chrono::{DateTime, Utc};

use super::error::{ErrorKind, RemoteError};
use super::keys::{lock_id, lock_object_key};
use super::poll::{DigestCheck, LockSource, PollResult, RemoteLock, RemoteWorkspace};
use super::settings::RemoteRoot;
use crate::artifact::ParseError;
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
    let content = match &ws.state {
        Ok(meta) => StateReading::Parsed(meta.clone()),
        Err(ParseError::Empty) => StateReading::Empty,
        Err(err) => StateReading::Unreadable(err.clone()),
    };
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
        Artifact {
            modified: lock.lock.as_ref().ok().and_then(|l| l.created).unwrap_or(seen),
            path,
            content: Observed {
                content: lock.lock.clone(),
                // A remote lock's holder cannot be asked: live until stale.
                holder: Holder::Unknown,
            },
        }
    });
    let mut state_digest_mismatch = match ws.digest {
        // Terraform writes the object, then the digest: the mismatch counts from the object.
        DigestCheck::Differs => Some(ws.last_modified),
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
    Evidence {
        state: Some(Artifact {
            path: key.clone(),
            modified: ws.last_modified,
            content,
        }),
        previous_state: previous.and_then(last_good_state),
        terraform_lock,
        backend: Some(BACKEND.to_owned()),
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

fn last_good_state(previous: &Evidence) -> Option<StateMeta> {
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
            etag: Some("\"e\"".into()),
            last_modified: t0(),
            state: crate::artifact::state::parse(state),
            locks: Vec::new(),
            digest: DigestCheck::Matches,
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
}
