//! The router in-process, without a socket: requests go through `oneshot` on the `Router`.

use std::io::Read as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt as _;

use super::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE};
use super::{AppState, RouterOptions, router};
use crate::store::Writer;
use crate::telemetry::Telemetry;
use crate::workspace::{Scope, Update};

struct App {
    store: Writer,
    telemetry: Telemetry,
    metrics: Arc<Metrics>,
    router: Router,
}

fn app(options: &RouterOptions) -> App {
    let store = Writer::new();
    let telemetry = Telemetry::default();
    let metrics = Arc::new(Metrics::new(store.reader(), &telemetry, true));
    let state = AppState::new(store.reader(), metrics.clone(), Arc::from(vec!["/srv/tf".to_owned()]));
    App {
        store,
        telemetry,
        metrics,
        router: router(state, options),
    }
}

/// A new snapshot of the same (empty) fleet, as a full scan makes.
fn full_scan(store: &mut Writer) {
    store.apply(Update {
        root: "/srv/tf".into(),
        scope: Scope::Subtree(".".into()),
        workspaces: Vec::new(),
        problems: Vec::new(),
        full: true,
        at: chrono::Utc::now(),
    });
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

async fn get(router: &Router, uri: &str, headers: &[(header::HeaderName, &str)]) -> Answer {
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer { status, headers, body }
}

fn gunzip(body: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(body).read_to_string(&mut out).unwrap();
    out
}

/// The body without the process metrics, which move between two scrapes.
fn steady(body: &str) -> String {
    body.lines()
        .filter(|l| !l.contains("process_"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test]
async fn an_unknown_path_is_a_json_404() {
    let app = app(&RouterOptions::default());
    let answer = get(&app.router, "/nothing/here", &[]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.json()["error"]["code"], "not_found");
    assert_eq!(answer.json()["error"]["message"], "no such endpoint: /nothing/here");
    let answer = get(&app.router, "/api/v1/workspaces/nope", &[]).await;
    assert_eq!(answer.json()["error"]["code"], "unknown_workspace");
}

#[tokio::test]
async fn an_unknown_status_is_a_400_that_lists_the_valid_ones() {
    let app = app(&RouterOptions::default());
    let answer = get(&app.router, "/api/v1/workspaces?status=failed,broken", &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"]["code"], "unknown_status");
    let message = answer.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("broken"), "{message}");
    for status in crate::model::Status::ALL {
        assert!(message.contains(status.as_str()), "{status} missing from: {message}");
    }
}

#[tokio::test]
async fn readyz_turns_200_when_the_store_is_ready() {
    let mut app = app(&RouterOptions::default());
    assert_eq!(
        get(&app.router, "/readyz", &[]).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get(&app.router, "/healthz", &[]).await.status, StatusCode::OK);
    app.store.set_ready();
    assert_eq!(get(&app.router, "/readyz", &[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_are_text_by_default_and_openmetrics_when_asked() {
    let mut app = app(&RouterOptions::default());
    full_scan(&mut app.store);
    let text = get(&app.router, "/metrics", &[]).await;
    assert_eq!(text.status, StatusCode::OK);
    assert_eq!(
        text.header(header::CONTENT_TYPE),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(text.header(header::CONTENT_ENCODING), "");
    let body = text.text();
    assert!(
        body.contains("# TYPE iacwatch_scans_total counter\n")
            && body.contains("\niacwatch_scans_total{kind=\"full\"} 0\n"),
        "{body}"
    );
    assert!(body.contains("iacwatch_workspaces{status=\"failed\"} 0\n"), "{body}");
    assert!(body.contains("# TYPE process_cpu_seconds_total counter\n"), "{body}");
    let build = format!(
        "iacwatch_build_info{{version=\"{}\",revision=\"{}\",rustc=\"{}\"}} 1\n",
        crate::build_info::VERSION,
        crate::build_info::REVISION,
        crate::build_info::RUSTC
    );
    assert!(body.contains(&build), "{body}");
    assert!(!body.contains("# EOF"));
    assert!(
        body.contains("# TYPE iacwatch_scan_duration_seconds histogram\n"),
        "{body}"
    );
    assert!(!body.contains("# UNIT"), "{body}");

    // What Prometheus 2 sends.
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                  text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let om = get(&app.router, "/metrics", &[(header::ACCEPT, accept)]).await;
    assert_eq!(om.header(header::CONTENT_TYPE), OPENMETRICS_CONTENT_TYPE);
    let body = om.text();
    assert!(body.ends_with("\n# EOF\n"), "{body}");
    assert_eq!(body.matches("# EOF").count(), 1);
    assert!(
        body.contains("# TYPE iacwatch_scans counter\n") && body.contains("\niacwatch_scans_total{kind=\"full\"} 0\n"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE process_cpu_seconds counter\n# UNIT process_cpu_seconds seconds\n"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE iacwatch_last_full_scan_timestamp_seconds gauge\n# UNIT iacwatch_last_full_scan_timestamp_seconds seconds\n"),
        "{body}"
    );
    assert!(
        body.contains("# UNIT iacwatch_scan_duration_seconds seconds\n"),
        "{body}"
    );
    assert!(body.contains(&build), "{body}");
    // A browser gets the text format.
    let html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let browser = get(&app.router, "/metrics", &[(header::ACCEPT, html)]).await;
    assert_eq!(
        browser.header(header::CONTENT_TYPE),
        "text/plain; version=0.0.4; charset=utf-8"
    );
}

#[tokio::test]
async fn gzip_decodes_to_the_plain_body_and_one_snapshot_is_compressed_once() {
    let mut app = app(&RouterOptions::default());
    full_scan(&mut app.store);
    let gzip = [(header::ACCEPT_ENCODING, "gzip, deflate, br")];
    let plain = get(&app.router, "/metrics", &[]).await.text();
    assert_eq!(app.metrics.compressions(), 0);
    let first = get(&app.router, "/metrics", &gzip).await;
    assert_eq!(first.header(header::CONTENT_ENCODING), "gzip");
    assert!(first.header(header::VARY).contains("Accept-Encoding"));
    assert_eq!(steady(&gunzip(&first.body)), steady(&plain));
    let second = get(&app.router, "/metrics", &gzip).await;
    assert_eq!(steady(&gunzip(&second.body)), steady(&plain));
    assert_eq!(
        app.metrics.compressions(),
        1,
        "two scrapes of one snapshot compress once"
    );

    // The counters are fresh although the tail is cached.
    app.telemetry.watch_events.inc();
    let third = gunzip(&get(&app.router, "/metrics", &gzip).await.body);
    assert_eq!(app.metrics.compressions(), 1);
    assert!(third.contains("iacwatch_watch_events_total 1\n"), "{third}");

    // A new snapshot is compressed again, per format.
    full_scan(&mut app.store);
    let _ = get(&app.router, "/metrics", &gzip).await;
    assert_eq!(app.metrics.compressions(), 2);
    let om = [
        (header::ACCEPT_ENCODING, "gzip"),
        (header::ACCEPT, "application/openmetrics-text"),
    ];
    assert!(gunzip(&get(&app.router, "/metrics", &om).await.body).ends_with("# EOF\n"));
    assert_eq!(app.metrics.compressions(), 3);
    // Refused gzip is plain.
    let refused = get(
        &app.router,
        "/metrics",
        &[(header::ACCEPT_ENCODING, "gzip;q=0, identity")],
    )
    .await;
    assert_eq!(refused.header(header::CONTENT_ENCODING), "");
}

#[tokio::test]
async fn under_a_route_prefix_every_endpoint_moves_and_the_page_links_carry_it() {
    let options = RouterOptions {
        telemetry_path: "/metrics".into(),
        route_prefix: "/tools/iacwatch/".into(),
        external_url: None,
    };
    let mut app = app(&options);
    app.store.set_ready();
    let page = get(&app.router, "/tools/iacwatch/", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("<body data-base=\"/tools/iacwatch/\">"), "{html}");
    assert!(html.contains("href=\"/tools/iacwatch/api/v1/workspaces\""), "{html}");
    assert!(html.contains("href=\"/tools/iacwatch/metrics\""), "{html}");
    assert!(
        html.contains(&format!("iacwatch {}", crate::build_info::VERSION)),
        "{html}"
    );
    assert!(html.contains("action=\"/tools/iacwatch/\""), "{html}");
    // No address of the page's own leaves the prefix.
    for outside in ["=\"/\"", "=\"/?", "=\"/api", "=\"/metrics", "=\"/readyz"] {
        assert!(!html.contains(outside), "{outside} in {html}");
    }
    let summary = get(&app.router, "/tools/iacwatch/api/v1/summary", &[]).await;
    assert_eq!(summary.json()["total"], 0);
    assert_eq!(
        get(&app.router, "/tools/iacwatch/readyz", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&app.router, "/tools/iacwatch/metrics", &[]).await.status,
        StatusCode::OK
    );
    for outside in ["/metrics", "/api/v1/summary", "/readyz"] {
        assert_eq!(
            get(&app.router, outside, &[]).await.status,
            StatusCode::NOT_FOUND,
            "{outside}"
        );
    }
    for top in ["/", "/tools/iacwatch"] {
        let redirect = get(&app.router, top, &[]).await;
        assert!(redirect.status.is_redirection(), "{top}: {}", redirect.status);
        assert_eq!(redirect.header(header::LOCATION), "/tools/iacwatch/");
    }

    // Behind a proxy that strips the prefix: routes at the top, links with the prefix.
    let stripped = app_with(&RouterOptions {
        telemetry_path: "/stats".into(),
        route_prefix: "/".into(),
        external_url: Some("https://ops.example.com/iacwatch".into()),
    });
    let html = get(&stripped, "/", &[]).await.text();
    assert!(html.contains("href=\"/iacwatch/stats\""), "{html}");
    assert_eq!(get(&stripped, "/stats", &[]).await.status, StatusCode::OK);
    assert_eq!(get(&stripped, "/metrics", &[]).await.status, StatusCode::NOT_FOUND);
}

fn app_with(options: &RouterOptions) -> Router {
    app(options).router
}

#[test]
fn the_scrapers_headers_choose_format_and_encoding() {
    use super::metrics::{Format, Request};
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Request::of(prometheus, "gzip").format, Format::OpenMetrics);
    assert_eq!(
        Request::of("application/openmetrics-text; version=1.0.0", "").format,
        Format::OpenMetrics
    );
    assert_eq!(
        Request::of("application/openmetrics-text;version=0.0.1", "").format,
        Format::Text
    );
    assert_eq!(
        Request::of("text/plain;q=1,application/openmetrics-text;q=0.5", "").format,
        Format::Text
    );
    assert_eq!(Request::of("*/*", "").format, Format::Text);
    assert_eq!(Request::of("", "").format, Format::Text);
    assert!(Request::of("", "gzip").gzip);
    assert!(Request::of("", "br, GZIP;q=0.5").gzip);
    assert!(Request::of("", "*").gzip);
    assert!(!Request::of("", "*, gzip;q=0").gzip);
    assert!(!Request::of("", "identity").gzip);
    assert!(!Request::of("", "").gzip);
}
