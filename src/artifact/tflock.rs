//! Terraform's own lock file, `.terraform.tfstate.lock.info` (Go's `statemgr.LockInfo`).
//!
//! The file is only a description: the real lock is an OS lock Terraform holds on the state file
//! (see `liveness`). Every field is optional, because a lock file that Terraform left behind is a
//! lock whatever it holds.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{ParseError, from_slice, printable};

/// The operation a Terraform lock was taken for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockOperation {
    /// `OperationTypeApply`: written for apply and for destroy alike.
    Apply,
    Plan,
    Refresh,
    Other,
}

impl LockOperation {
    pub fn as_str(&self) -> &'static str {
        match self {
            LockOperation::Apply => "apply",
            LockOperation::Plan => "plan",
            LockOperation::Refresh => "refresh",
            LockOperation::Other => "other",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TerraformLock {
    pub id: Option<String>,
    pub operation: LockOperation,
    pub who: Option<String>,
    pub version: Option<String>,
    pub created: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawLock {
    #[serde(rename = "ID")]
    id: Option<String>,
    operation: Option<String>,
    who: Option<String>,
    version: Option<String>,
    created: Option<String>,
}

pub fn parse(bytes: &[u8]) -> Result<TerraformLock, ParseError> {
    let raw: RawLock = from_slice(bytes)?;
    let operation = match raw.operation.as_deref() {
        Some("OperationTypeApply") => LockOperation::Apply,
        Some("OperationTypePlan") => LockOperation::Plan,
        Some("OperationTypeRefresh") => LockOperation::Refresh,
        _ => LockOperation::Other,
    };
    Ok(TerraformLock {
        id: raw.id.as_deref().and_then(|id| super::identifier(id, 64)),
        operation,
        who: raw.who.as_deref().map(|w| printable(w, 128)),
        version: raw.version.as_deref().and_then(|v| super::identifier(v, 64)),
        created: raw.created.as_deref().and_then(parse_time),
    })
}

/// Go writes times as RFC 3339 with nanoseconds and the writer's offset.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_windows_who_is_shown_as_terraform_wrote_it() {
        let lock = parse(br#"{"ID":"1","Operation":"OperationTypeApply","Who":"CORP\\jdoe@WS-0142"}"#).unwrap();
        assert_eq!(lock.who.as_deref(), Some(r"CORP\jdoe@WS-0142"));
        let lock = parse(br#"{"Who":"evil\u202etxt.exe@host\nsecond line"}"#).unwrap();
        assert_eq!(lock.who.as_deref(), Some("evil txt.exe@host second line"));
    }

    #[test]
    fn reads_an_apply_lock() {
        let lock = parse(br#"{"ID":"3b1f0c2e-aaaa","Operation":"OperationTypeApply","Info":"","Who":"ci@runner-1","Version":"1.0.3","Created":"2026-11-29T10:00:00.123456789+02:00","Path":"terraform.tfstate"}"#).unwrap();
        assert_eq!(lock.operation, LockOperation::Apply);
        assert_eq!(lock.who.as_deref(), Some("ci@runner-1"));
        assert_eq!(
            lock.created.unwrap().to_rfc3339(),
            "2026-11-29T08:00:00.123456789+00:00"
        );
    }
}
