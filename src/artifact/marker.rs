//! Pipeline markers in `.iacwatch/<ws>/`: `lock.json` while a pipeline runs, `last-run.json` when
//! it ends. The on-disk structs are public so that the pipeline wrapper writes exactly what is read.
//! The same markers published into a bucket sit at `STATEKEY.iacwatch/NAME` (`names`), and the
//! published lock carries a lease (`Lease`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::url::safe_url;
use super::{ParseError, from_slice, identifier, printable};

/// What a pipeline does to a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Provision,
    Destroy,
    Plan,
    DriftCheck,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Provision => "provision",
            Operation::Destroy => "destroy",
            Operation::Plan => "plan",
            Operation::DriftCheck => "drift_check",
        }
    }

    pub fn parse(text: &str) -> Option<Operation> {
        [
            Operation::Provision,
            Operation::Destroy,
            Operation::Plan,
            Operation::DriftCheck,
        ]
        .into_iter()
        .find(|o| o.as_str() == text)
    }
}

/// How a pipeline run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// `lock.json`, as written and read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineLock {
    pub operation: Operation,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `last-run.json`, as written and read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    pub operation: Operation,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// The names of the marker files, in a directory's `.iacwatch/<ws>/` and in a bucket beside the
/// state object (`STATEKEY.iacwatch/NAME`). The local layout, the bucket's reader and the wrapper
/// all take them from here.
pub mod names {
    /// The marker folder in a workspace directory; one folder a CLI workspace inside it.
    pub const DIR: &str = ".iacwatch";
    /// The pipeline lock, present while a wrapped run goes on.
    pub const LOCK: &str = "lock.json";
    /// The outcome of the last wrapped run.
    pub const LAST_RUN: &str = "last-run.json";
    /// A snapshot of a remote state (`terraform state pull`); local only.
    pub const STATE: &str = "state.json";
    /// The plan of the last wrapped plan (`terraform show -json`).
    pub const PLAN: &str = "plan.json";
    /// The marker folder beside a state object in a bucket: `STATEKEY` + this + the marker's name.
    pub const REMOTE_SUFFIX: &str = ".iacwatch/";

    /// The key of marker `name` beside the state object `state_key`.
    pub fn remote_key(state_key: &str, name: &str) -> String {
        format!("{state_key}{REMOTE_SUFFIX}{name}")
    }

    /// `(STATEKEY, NAME)` of a key `STATEKEY.iacwatch/NAME` whose `NAME` is one of the markers a
    /// bucket holds (`lock.json`, `last-run.json`, `plan.json`).
    pub fn split_remote_key(key: &str) -> Option<(&str, &'static str)> {
        let (state_key, name) = key.rsplit_once(REMOTE_SUFFIX)?;
        let name = [LOCK, LAST_RUN, PLAN].into_iter().find(|n| *n == name)?;
        (!state_key.is_empty()).then_some((state_key, name))
    }
}

/// The lease of a lock published into a bucket: its runner says it is alive by rewriting
/// `heartbeat_at` every `lease_seconds / 3`; past `heartbeat_at + lease_seconds` the run is dead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub heartbeat_at: DateTime<Utc>,
    pub lease_seconds: u64,
}

impl Lease {
    /// The last moment the lease holds: the run is dead strictly after it.
    pub fn expires_at(&self) -> DateTime<Utc> {
        let seconds = i64::try_from(self.lease_seconds).unwrap_or(i64::MAX);
        self.heartbeat_at
            .checked_add_signed(chrono::TimeDelta::try_seconds(seconds).unwrap_or(chrono::TimeDelta::MAX))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// True when the lease has run out at `now` (`heartbeat_at + lease_seconds < now`).
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        now > self.expires_at()
    }
}

/// A published `lock.json`: the pipeline lock, and its lease when it has one (both
/// `heartbeat_at` and `lease_seconds`, a lease of at least one second). A lock without a valid
/// lease is read as a local one (live until the stale limit).
pub fn parse_published_lock(bytes: &[u8]) -> Result<(PipelineLock, Option<Lease>), ParseError> {
    #[derive(Deserialize)]
    struct Published {
        #[serde(default)]
        heartbeat_at: Option<DateTime<Utc>>,
        #[serde(default)]
        lease_seconds: Option<u64>,
    }
    let lock = parse_lock(bytes)?;
    let published: Published = from_slice(bytes)?;
    let lease = match (published.heartbeat_at, published.lease_seconds) {
        (Some(heartbeat_at), Some(lease_seconds)) if lease_seconds > 0 => Some(Lease {
            heartbeat_at,
            lease_seconds,
        }),
        _ => None,
    };
    Ok((lock, lease))
}

pub fn parse_lock(bytes: &[u8]) -> Result<PipelineLock, ParseError> {
    let mut lock: PipelineLock = from_slice(bytes)?;
    lock.host = lock.host.as_deref().and_then(|h| identifier(h, 253));
    lock.run_id = lock.run_id.as_deref().map(|r| printable(r, 128));
    lock.pipeline = lock.pipeline.as_deref().map(|p| printable(p, 128));
    lock.url = lock.url.as_deref().and_then(safe_url);
    Ok(lock)
}

pub fn parse_last_run(bytes: &[u8]) -> Result<LastRun, ParseError> {
    let mut run: LastRun = from_slice(bytes)?;
    run.run_id = run.run_id.as_deref().map(|r| printable(r, 128));
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_spec_example() {
        let lock = parse_lock(br#"{"operation": "provision", "started_at": "2026-11-29T10:00:00Z",
            "pid": 4242, "host": "runner-7", "run_id": "1234", "pipeline": "deploy-prod", "url": "https://ci:s3cret@ci.example/run/1"}"#).unwrap();
        assert_eq!(lock.operation, Operation::Provision);
        assert_eq!(lock.pid, Some(4242));
        assert_eq!(lock.url.as_deref(), Some("https://ci.example/run/1"));
        let run = parse_last_run(
            br#"{"operation": "provision", "outcome": "failed", "exit_code": 1,
            "started_at": "2026-11-29T10:00:00Z", "finished_at": "2026-11-29T10:07:12Z", "run_id": "1234"}"#,
        )
        .unwrap();
        assert_eq!(run.outcome, Outcome::Failed);
    }

    #[test]
    fn reads_a_published_lock_and_its_lease() {
        let (lock, lease) = parse_published_lock(
            br#"{"operation":"provision","started_at":"2026-11-29T10:00:00Z","heartbeat_at":"2026-11-29T10:01:00Z","lease_seconds":60}"#,
        )
        .unwrap();
        assert_eq!(lock.operation, Operation::Provision);
        let lease = lease.unwrap();
        assert_eq!(lease.expires_at().to_rfc3339(), "2026-11-29T10:02:00+00:00");
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert!(!lease.expired(at("2026-11-29T10:01:59.999Z")));
        assert!(!lease.expired(at("2026-11-29T10:02:00Z")));
        assert!(lease.expired(at("2026-11-29T10:02:00.001Z")));
        for partial in [
            r#"{"operation":"plan","started_at":"2026-11-29T10:00:00Z"}"#,
            r#"{"operation":"plan","started_at":"2026-11-29T10:00:00Z","lease_seconds":60}"#,
            r#"{"operation":"plan","started_at":"2026-11-29T10:00:00Z","heartbeat_at":"2026-11-29T10:00:00Z","lease_seconds":0}"#,
        ] {
            assert_eq!(parse_published_lock(partial.as_bytes()).unwrap().1, None, "{partial}");
        }
        let huge = br#"{"operation":"plan","started_at":"2026-11-29T10:00:00Z","heartbeat_at":"2026-11-29T10:00:00Z","lease_seconds":18446744073709551615}"#;
        let lease = parse_published_lock(huge).unwrap().1.unwrap();
        assert!(!lease.expired(at("2100-01-01T00:00:00Z")));
        assert_eq!(
            parse_published_lock(
                br#"{"operation":"plan","started_at":"2026-11-29T10:00:00Z","heartbeat_at":7,"lease_seconds":60}"#
            )
            .unwrap_err()
            .kind(),
            "wrong_shape"
        );
    }

    #[test]
    fn names_the_markers_in_a_bucket() {
        assert_eq!(
            names::remote_key("env:/blue/apps/web.tfstate", names::LOCK),
            "env:/blue/apps/web.tfstate.iacwatch/lock.json"
        );
        let cases = [
            (
                "a/terraform.tfstate.iacwatch/lock.json",
                Some(("a/terraform.tfstate", names::LOCK)),
            ),
            (
                "a/terraform.tfstate.iacwatch/last-run.json",
                Some(("a/terraform.tfstate", names::LAST_RUN)),
            ),
            (
                "a/terraform.tfstate.iacwatch/plan.json",
                Some(("a/terraform.tfstate", names::PLAN)),
            ),
            ("a/terraform.tfstate.iacwatch/state.json", None),
            ("a/terraform.tfstate.iacwatch/x/lock.json", None),
            (".iacwatch/lock.json", None),
            ("a/terraform.tfstate", None),
        ];
        for (key, expected) in cases {
            assert_eq!(names::split_remote_key(key), expected, "{key}");
        }
    }

    #[test]
    fn only_operation_and_started_at_are_required() {
        assert!(parse_lock(br#"{"operation":"destroy","started_at":"2026-11-29T10:00:00Z"}"#).is_ok());
        assert_eq!(
            parse_lock(br#"{"operation":"destroy"}"#).unwrap_err().kind(),
            "wrong_shape"
        );
        assert_eq!(
            parse_lock(br#"{"operation":"explode","started_at":"2026-11-29T10:00:00Z"}"#)
                .unwrap_err()
                .kind(),
            "wrong_shape"
        );
    }
}
