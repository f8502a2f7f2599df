//! The overview page at `GET /`: a card a status with its count, and a table of the workspaces,
//! filterable by status (`?status=failed,drifted`), root (`?root=`) and path (`?q=`), sortable
//! (`?sort=-since`). Rendered on the server so it works without JavaScript; its script
//! (`assets/page.js`) then refreshes it in place from `/api/v1/workspaces`.
//!
//! Self-contained: the stylesheet and the script are compiled into the binary and inlined, and a
//! Content-Security-Policy allows exactly those two (by hash) and requests to this server.
//! The page only shows the API's views, which carry no value from a state or plan.

pub mod palette;
mod params;
mod render;
mod time;

use std::sync::OnceLock;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::http::shared::{AppState, Selection, workspaces_document};
use crate::model::parse_status_list;

pub use params::{Params, Sort};
pub use render::PageView;

const STYLE: &str = include_str!("../../../assets/page.css");
const SCRIPT: &str = include_str!("../../../assets/page.js");

/// The query of `/`.
#[derive(Deserialize, Default)]
pub struct PageQuery {
    pub status: Option<String>,
    pub root: Option<String>,
    pub q: Option<String>,
    pub sort: Option<String>,
}

/// The inlined stylesheet (the palette's variables, then `assets/page.css`) and the policy that
/// allows it and the script.
struct Assets {
    style: String,
    policy: HeaderValue,
}

fn assets() -> &'static Assets {
    static ASSETS: OnceLock<Assets> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let style = format!("{}{STYLE}", palette::css_variables());
        let policy = format!(
            "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; connect-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            base64(&Sha256::digest(style.as_bytes())),
            base64(&Sha256::digest(SCRIPT.as_bytes())),
        );
        Assets {
            style,
            policy: HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
        }
    })
}

/// The handler of `GET /`. An unknown status in the address is a 400 whose page says so and shows
/// every status instead; an unreadable query is treated the same way.
pub async fn index(State(state): State<AppState>, query: Result<Query<PageQuery>, QueryRejection>) -> Response {
    let (query, mut notice) = match query {
        Ok(Query(query)) => (query, None),
        Err(_) => (PageQuery::default(), Some("the query string cannot be read".to_owned())),
    };
    let root = query.root.filter(|r| !r.is_empty());
    let q = query.q.filter(|q| !q.trim().is_empty());
    let statuses = match query.status.as_deref().map(parse_status_list) {
        Some(Ok(list)) => list,
        Some(Err(err)) => {
            notice = Some(err.to_string());
            Vec::new()
        }
        None => Vec::new(),
    };
    let params = Params {
        statuses,
        root,
        q,
        sort: query.sort.as_deref().map(Sort::parse).unwrap_or_default(),
        base: state.paths.base.clone(),
    };
    let body = render_page(&state, &params, notice.as_deref());
    let code = if notice.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut response = (code, Html(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, assets().policy.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// The page for a parsed query, from the store's current snapshot.
pub fn render_page(state: &AppState, params: &Params, notice: Option<&str>) -> String {
    let selection = Selection {
        statuses: params.statuses.clone(),
        root: params.root.clone(),
        q: params.q.as_ref().map(|q| q.to_lowercase()),
    };
    let doc = workspaces_document(&state.store, &selection);
    let snapshot = state.store.snapshot();
    let in_root = snapshot
        .workspaces
        .keys()
        .filter(|k| params.root.as_ref().is_none_or(|r| &k.0 == r))
        .count();
    let view = PageView {
        doc: &doc,
        params,
        now: Utc::now(),
        notice,
        ready: state.store.is_ready(),
        in_root,
        roots: &state.roots,
        telemetry_link: &state.paths.telemetry_link,
    };
    render::page(&view, &assets().style, SCRIPT)
}

/// Standard base64 with padding (for the policy's hashes).
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
