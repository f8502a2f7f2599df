//! HTTP: the router of every endpoint (`router`), the server loop (`serve`), and what they serve.
//!
//! - `shared`: the state behind the router, the JSON error, the workspace filter.
//! - `api`: the JSON API, the probes, `/metrics`, unknown paths and methods.
//! - `history`: the history's endpoints and the live feed (Server-Sent Events).
//! - `metrics`: the Prometheus exposition (text 0.0.4 and OpenMetrics 1.0, gzip), rendered from
//!   the store's snapshot and the daemon's telemetry.
//! - `page`: the overview page at `/`.
//! - `web`: the web configuration file (TLS, basic auth, headers) and the guard every request
//!   passes.
//! - `options`: the telemetry path, route prefix and external URL.
//! - `server`: hyper with timeouts and graceful shutdown.
//!
//! Imports run one way: `shared` and `options` import nothing of this folder but `metrics`
//! (`AppState` holds it); the handlers, the page and the guard import `shared`; this file wires
//! them.

mod api;
pub mod history;
pub mod metrics;
mod options;
pub(crate) mod page;
mod server;
mod shared;
pub mod web;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

pub use options::{OptionsError, RouterOptions};
pub use server::{Limits, serve, serve_with};
pub use shared::AppState;

/// Every endpoint of the interfaces contract, under the route prefix. Options that do not pass
/// `RouterOptions::check` are replaced by the defaults (with a warning), so this never fails.
pub fn router(mut state: AppState, options: &RouterOptions) -> Router {
    let paths = options::Paths::resolve(options).unwrap_or_else(|err| {
        tracing::warn!(error = %err, "router options cannot be used; serving at the defaults");
        options::Paths::default()
    });
    let prefix = paths.prefix.clone();
    let at = |path: &str| format!("{prefix}{path}");
    let mut router = Router::new()
        .route(&at("/"), get(page::index))
        .route(&paths.telemetry, get(api::metrics))
        .route(&at("/api/v1/workspaces"), get(api::workspaces))
        .route(&at("/api/v1/workspaces/{id}"), get(api::workspace))
        .route(&at("/api/v1/workspaces/{id}/history"), get(history::workspace))
        .route(&at("/api/v1/transitions"), get(history::transitions))
        .route(&at("/api/v1/events"), get(history::events))
        .route(&at("/api/v1/summary"), get(api::summary))
        .route(&at("/healthz"), get(api::healthz))
        .route(&at("/readyz"), get(api::readyz));
    if !prefix.is_empty() {
        // As Prometheus does: the bare prefix and the top lead to the page.
        router = router.route(&prefix, get(api::to_page)).route("/", get(api::to_page));
    }
    state.paths = Arc::new(paths);
    router
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(state)
}
