//! The handlers of the JSON API, the probes, `/metrics` and the answers for unknown paths and
//! methods.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;

use super::shared::{AppState, Filter, Selection, error, workspaces_document};
use crate::report::{self, Counts, SummaryDocument, WorkspaceView};

pub(crate) async fn not_found(uri: Uri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    error(StatusCode::NOT_FOUND, "not_found", format!("no such endpoint: {path}"))
}

pub(crate) async fn method_not_allowed(method: Method) -> Response {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed here; use GET"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// Under a route prefix, `/prefix` and `/` lead to the page at `/prefix/`.
pub(crate) async fn to_page(State(state): State<AppState>) -> Response {
    Redirect::to(&format!("{}/", state.paths.prefix)).into_response()
}

pub(crate) async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "the first full scan is not done yet\n").into_response()
    }
}

/// The exposition, in the format and encoding the scraper asks for. Rendering and compressing a
/// large fleet takes a while, so it runs off the async threads.
pub(crate) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let encoding = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let request = super::metrics::Request::of(accept, encoding);
    let metrics = state.metrics.clone();
    match tokio::task::spawn_blocking(move || metrics.scrape(request)).await {
        Ok(scrape) => scrape.into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "render_failed",
            "the exposition could not be rendered",
        ),
    }
}

pub(crate) async fn workspaces(
    State(state): State<AppState>,
    query: Result<Query<Filter>, QueryRejection>,
) -> Response {
    let filter = match query {
        Ok(Query(filter)) => filter,
        Err(_) => return error(StatusCode::BAD_REQUEST, "bad_query", "the query string cannot be read"),
    };
    let selection = match Selection::parse(filter) {
        Ok(selection) => selection,
        Err(message) => return error(StatusCode::BAD_REQUEST, "unknown_status", message),
    };
    axum::Json(workspaces_document(&state.store, &selection)).into_response()
}

pub(crate) async fn workspace(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let snapshot = state.store.snapshot();
    match snapshot.workspaces.values().find(|e| e.workspace.id == id) {
        Some(entry) => axum::Json(WorkspaceView::new(&entry.workspace, Some(entry.since))).into_response(),
        None => error(StatusCode::NOT_FOUND, "unknown_workspace", "no workspace has this id"),
    }
}

pub(crate) async fn summary(State(state): State<AppState>) -> Response {
    let snapshot = state.store.snapshot();
    let counts = Counts::of(snapshot.workspaces.values().map(|e| e.workspace.verdict.status));
    axum::Json(SummaryDocument {
        generated_at: report::rfc3339(snapshot.updated_at.unwrap_or_else(Utc::now)),
        total: snapshot.workspaces.len() as u64,
        counts,
    })
    .into_response()
}
