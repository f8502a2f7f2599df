//! Pipeline markers in `.iacwatch/<ws>/`: `lock.json` while a pipeline runs, `last-run.json` when
//! it ends. The on-disk structs are public so that the pipeline wrapper writes exactly what is read.

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
