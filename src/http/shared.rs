//! What the handlers, the page and the web guard share: the state behind the router, the JSON
//! error of the contract, and the parsed filter of the workspace list.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::metrics::Metrics;
use super::options::Paths;
use crate::model::{Status, parse_status_list};
use crate::report::{self, Counts, WorkspaceView};
use crate::store::{Entry, Reader};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Reader,
    pub metrics: Arc<Metrics>,
    /// The roots as configured (the page names them when it finds nothing under them).
    pub roots: Arc<[String]>,
    /// Where the endpoints are, as the router was told (`router` sets them).
    pub(crate) paths: Arc<Paths>,
    /// The status history and its feed; `None` with `--history false`.
    pub history: Option<Arc<super::history::HistoryState>>,
}

impl AppState {
    pub fn new(store: Reader, metrics: Arc<Metrics>, roots: Arc<[String]>) -> AppState {
        AppState {
            store,
            metrics,
            roots,
            paths: Arc::default(),
            history: None,
        }
    }

    /// With the status history's endpoints and feed.
    pub fn with_history(mut self, history: Arc<super::history::HistoryState>) -> AppState {
        self.history = Some(history);
        self
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

/// A JSON error of the contract: `{"error": {"code", "message"}}`.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message: message.into(),
        },
    };
    (status, axum::Json(body)).into_response()
}

/// The query of `/api/v1/workspaces` as sent.
#[derive(Deserialize, Default)]
pub(crate) struct Filter {
    pub status: Option<String>,
    pub root: Option<String>,
    pub q: Option<String>,
}

/// The parsed filter of `/api/v1/workspaces`.
pub(crate) struct Selection {
    pub statuses: Vec<Status>,
    pub root: Option<String>,
    /// Lowercase.
    pub q: Option<String>,
}

impl Selection {
    /// The selection of a query, or the message of a 400.
    pub fn parse(filter: Filter) -> Result<Selection, String> {
        let statuses = match filter.status.as_deref() {
            Some(text) => parse_status_list(text).map_err(|e| e.to_string())?,
            None => Vec::new(),
        };
        Ok(Selection {
            statuses,
            root: filter.root.filter(|r| !r.is_empty()),
            q: filter.q.filter(|q| !q.is_empty()).map(|q| q.to_lowercase()),
        })
    }

    /// Root and search filters (the counts follow these, not the status filter).
    pub fn in_scope(&self, entry: &Entry) -> bool {
        let ws = &entry.workspace;
        self.root.as_ref().is_none_or(|r| &ws.root == r)
            && self
                .q
                .as_ref()
                .is_none_or(|q| ws.path.to_lowercase().contains(q.as_str()))
    }

    pub fn shows(&self, entry: &Entry) -> bool {
        self.in_scope(entry) && (self.statuses.is_empty() || self.statuses.contains(&entry.workspace.verdict.status))
    }
}

/// The document of `/api/v1/workspaces` for a selection.
pub(crate) fn workspaces_document(store: &Reader, selection: &Selection) -> report::WorkspacesDocument {
    let snapshot = store.snapshot();
    let in_scope: Vec<&Arc<Entry>> = snapshot.workspaces.values().filter(|e| selection.in_scope(e)).collect();
    let counts = Counts::of(in_scope.iter().map(|e| e.workspace.verdict.status));
    let shown = in_scope
        .iter()
        .filter(|e| selection.shows(e))
        .map(|e| WorkspaceView::new(&e.workspace, Some(e.since)));
    report::document(
        snapshot.updated_at.unwrap_or_else(Utc::now),
        counts,
        shown,
        snapshot.problems.values(),
    )
}
