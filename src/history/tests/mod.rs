//! Tests of the history: round trips, readings, retention, restarts, migrations and bad files.

mod faults;
mod readings;

use std::path::Path;

use chrono::{DateTime, Utc};

use super::{Durability, History, Options, Transition};
use crate::model::{ReasonCode, Status};

/// The clock of the tests.
pub fn now() -> DateTime<Utc> {
    at("2026-06-01T00:00:00Z")
}

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap()
}

/// `now` minus `seconds`.
pub fn ago(seconds: i64) -> DateTime<Utc> {
    now() - chrono::Duration::seconds(seconds)
}

pub fn transition(at: DateTime<Utc>, root: &str, path: &str, from: Option<Status>, to: Option<Status>) -> Transition {
    let reasons = match to {
        Some(Status::Drifted) => vec![ReasonCode::DriftDetected, ReasonCode::StateHasResources],
        Some(Status::Failed) => vec![ReasonCode::LastRunFailed],
        Some(Status::Active) => vec![ReasonCode::StateHasResources],
        _ => vec![],
    };
    Transition {
        at,
        root: root.to_owned(),
        path: path.to_owned(),
        workspace: "default".to_owned(),
        id: crate::workspace::workspace_id(root, path, "default"),
        from,
        to,
        reasons,
    }
}

/// Opens at [`now`] with the default retention; `Normal` durability keeps the tests quick (the
/// kill -9 test in `tests/it/history.rs` uses the default, `Full`).
pub fn open(dir: &Path) -> History {
    History::open(dir, quick(), now()).unwrap()
}

pub fn quick() -> Options {
    Options {
        durability: Durability::Normal,
        ..Options::default()
    }
}
