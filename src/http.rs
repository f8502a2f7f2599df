//! HTTP: the router of every endpoint, and the server loop with header-read and request timeouts
//! and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::model::{Status, parse_status_list};
use crate::report::{self, Counts, SummaryDocument, WorkspaceView};
use crate::store::{Entry, Reader};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Reader,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The roots as configured (the page names them when it finds nothing under them).
    pub roots: Arc<[String]>,
}

/// Every endpoint of the interfaces contract.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(crate::page::index))
        .route("/metrics", get(metrics))
        .route("/api/v1/workspaces", get(workspaces))
        .route("/api/v1/workspaces/{id}", get(workspace))
        .route("/api/v1/summary", get(summary))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
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

async fn not_found(uri: Uri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    error(StatusCode::NOT_FOUND, "not_found", format!("no such endpoint: {path}"))
}

async fn method_not_allowed(method: Method) -> Response {
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

async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "the first full scan is not done yet\n").into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render();
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

#[derive(Deserialize, Default)]
pub struct Filter {
    pub status: Option<String>,
    pub root: Option<String>,
    pub q: Option<String>,
}

/// The parsed filter of `/api/v1/workspaces`.
pub struct Selection {
    pub statuses: Vec<Status>,
    pub root: Option<String>,
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
pub fn workspaces_document(store: &Reader, selection: &Selection) -> report::WorkspacesDocument {
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

async fn workspaces(
    State(state): State<AppState>,
    query: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
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

async fn workspace(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let snapshot = state.store.snapshot();
    match snapshot.workspaces.values().find(|e| e.workspace.id == id) {
        Some(entry) => axum::Json(WorkspaceView::new(&entry.workspace, Some(entry.since))).into_response(),
        None => error(StatusCode::NOT_FOUND, "unknown_workspace", "no workspace has this id"),
    }
}

async fn summary(State(state): State<AppState>) -> Response {
    let snapshot = state.store.snapshot();
    let counts = Counts::of(snapshot.workspaces.values().map(|e| e.workspace.verdict.status));
    axum::Json(SummaryDocument {
        generated_at: report::rfc3339(snapshot.updated_at.unwrap_or_else(Utc::now)),
        total: snapshot.workspaces.len() as u64,
        counts,
    })
    .into_response()
}

/// Timeouts of the server loop.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Time to receive a request's headers (slowloris protection).
    pub header_timeout: Duration,
    /// Time to answer a request.
    pub request_timeout: Duration,
    /// Time given to open connections at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(4),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open connections finish for
/// at most the grace time.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    serve_with(listener, app, limits, Arc::new(crate::web::Web::plain()), shutdown).await;
}

/// `serve` with the web configuration's TLS, basic auth and headers (see `web`).
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    web: Arc<crate::web::Web>,
    shutdown: impl Future<Output = ()>,
) {
    let app = app
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            crate::web::guard::guard,
        ));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // Out of file descriptors and the like: back off a moment, keep serving.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = TowerToHyperService::new(app.clone());
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).max_buf_size(64 * 1024);
                if let Some(acceptor) = web.current().tls.clone() {
                    // The handshake counts against the header timeout, like the headers it precedes.
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        if let Ok(Ok(stream)) = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                            let _ = watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await;
                        }
                    });
                    continue;
                }
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::info!("connections still open at shutdown were closed");
        }
    }
}
