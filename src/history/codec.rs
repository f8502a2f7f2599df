//! How values are stored: statuses and reason codes by their stable names, times as microseconds
//! since the Unix epoch (UTC).

use chrono::{DateTime, Utc};

use crate::model::{ReasonCode, Status};

/// Every reason code. [`position`] matches on every variant, so a new code fails to compile
/// until it is added here too.
const CODES: [ReasonCode; 24] = {
    use ReasonCode::*;
    [
        PipelineLock,
        TerraformLock,
        DeadPipeline,
        DeadLock,
        StaleLock,
        StateUnreadable,
        StateSettling,
        TaintedInstances,
        LastRunFailed,
        LastRunCancelled,
        StatePersistFailed,
        TerraformCrashed,
        PlanErrored,
        DriftDetected,
        PendingChanges,
        ConfigChanged,
        PlanStale,
        StateHasResources,
        StateEncrypted,
        RemoteStateNotVisible,
        EmptyState,
        NoState,
        ArtifactUnreadable,
        StateDigestMismatch,
    ]
};

#[cfg_attr(not(test), expect(dead_code, reason = "exists for its exhaustive match"))]
const fn position(code: ReasonCode) -> usize {
    use ReasonCode::*;
    match code {
        PipelineLock => 0,
        TerraformLock => 1,
        DeadPipeline => 2,
        DeadLock => 3,
        StaleLock => 4,
        StateUnreadable => 5,
        StateSettling => 6,
        TaintedInstances => 7,
        LastRunFailed => 8,
        LastRunCancelled => 9,
        StatePersistFailed => 10,
        TerraformCrashed => 11,
        PlanErrored => 12,
        DriftDetected => 13,
        PendingChanges => 14,
        ConfigChanged => 15,
        PlanStale => 16,
        StateHasResources => 17,
        StateEncrypted => 18,
        RemoteStateNotVisible => 19,
        EmptyState => 20,
        NoState => 21,
        ArtifactUnreadable => 22,
        StateDigestMismatch => 23,
    }
}

pub fn status_text(status: Option<Status>) -> Option<&'static str> {
    status.map(Status::as_str)
}

/// A stored status; `Err` carries the text for the corruption message (a status name, not data).
pub fn status_of(text: Option<String>) -> Result<Option<Status>, String> {
    match text {
        None => Ok(None),
        Some(t) => Status::parse(&t)
            .map(Some)
            .ok_or_else(|| format!("unknown status {t:?}")),
    }
}

/// Reason codes as one comma-separated text.
pub fn reasons_text(reasons: &[ReasonCode]) -> String {
    reasons.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")
}

/// The codes of a stored text. A code this version does not know (written by a newer iacwatch of
/// the same schema) is left out rather than failing the whole reading.
pub fn reasons_of(text: &str) -> Vec<ReasonCode> {
    text.split(',')
        .filter_map(|t| CODES.into_iter().find(|c| c.as_str() == t))
        .collect()
}

pub fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub fn time_of(micros: i64) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| format!("time out of range: {micros}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once_at_its_position() {
        for (i, code) in CODES.into_iter().enumerate() {
            assert_eq!(position(code), i, "{code}");
        }
        let text = reasons_text(&CODES);
        assert_eq!(reasons_of(&text), CODES.to_vec());
    }

    #[test]
    fn unknown_codes_are_left_out_and_empty_is_none() {
        assert_eq!(reasons_of(""), vec![]);
        assert_eq!(
            reasons_of("drift_detected,from_the_future,no_state"),
            vec![ReasonCode::DriftDetected, ReasonCode::NoState]
        );
    }

    #[test]
    fn statuses_and_times_round_trip() {
        for status in Status::ALL.map(Some).into_iter().chain([None]) {
            assert_eq!(status_of(status_text(status).map(str::to_owned)), Ok(status));
        }
        assert!(status_of(Some("bogus".into())).is_err());
        let at = DateTime::parse_from_rfc3339("2026-03-01T12:34:56.789012Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        assert_eq!(at.map(micros).map(time_of), at.map(Ok));
        assert!(time_of(i64::MAX).is_err());
    }
}
