//! The middleware every request passes: the URI and header size limits (414, 431), basic auth (401 with
//! `WWW-Authenticate`), and the configured response headers on every answer.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::Web;

/// Longest request target answered.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Most header bytes (names and values) answered. hyper cuts a head near its 64 KiB read buffer
/// with a 431 too, but only roughly (a single read may take more), so the limit is checked here.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

fn header_bytes(request: &Request) -> usize {
    request
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum()
}

pub async fn guard(State(web): State<Arc<Web>>, request: Request, next: Next) -> Response {
    let settings = web.current();
    let mut response = if request.uri().to_string().len() > MAX_URI_BYTES {
        crate::http::shared::error(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is longer than {MAX_URI_BYTES} bytes"),
        )
    } else if header_bytes(&request) > MAX_HEADER_BYTES {
        crate::http::shared::error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the request headers are longer than {MAX_HEADER_BYTES} bytes"),
        )
    } else if settings.auth.is_some() {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let checker = settings.clone();
        let ok = tokio::task::spawn_blocking(move || checker.auth.as_ref().is_some_and(|a| a.check(given.as_deref())))
            .await
            .unwrap_or(false);
        if ok {
            next.run(request).await
        } else {
            let mut response = crate::http::shared::error(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
            response
        }
    } else {
        next.run(request).await
    };
    for (name, value) in &settings.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}
