//! How values are stored: statuses and reason codes by their stable names, times as microseconds
//! since the Unix epoch (UTC).

use chrono::{DateTime, Utc};

use crate::model::{ReasonCode, Status};

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
    text.split(',').filter_map(ReasonCode::parse).collect()
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
    fn every_code_round_trips() {
        let text = reasons_text(&ReasonCode::ALL);
        assert_eq!(reasons_of(&text), ReasonCode::ALL.to_vec());
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
