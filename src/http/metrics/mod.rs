//! `/metrics`: the Prometheus exposition of the store's snapshot and the daemon's telemetry, in
//! the text format 0.0.4 or OpenMetrics 1.0 (as the scraper's `Accept` asks), gzip-compressed
//! when its `Accept-Encoding` allows.
//!
//! A body is two parts. The head is rendered on every scrape: the telemetry counters (through
//! the Prometheus client library), `iacwatch_build_info` and the `process_*` metrics, all of which
//! move between snapshots and are small. The tail is everything that follows from the snapshot
//! alone (the counts and the per-workspace families: megabytes for a large fleet); it is rendered
//! once per snapshot and format, and compressed once, on the first ask of each, and kept until
//! the store holds a new snapshot. Only the forms asked for are kept: a daemon scraped only by
//! Prometheus (always gzip) holds the compressed tail alone.
//! A scrape of an unchanged snapshot copies the cached tail behind a fresh head, so the counters
//! are never stale and many scrapers cost one compression (see `gzip` for how the two pieces make
//! one gzip member).

mod gzip;
mod process;
mod text;
mod workspaces;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::store::{Reader, Snapshot};
use crate::telemetry::Telemetry;

pub use text::{Format, OPENMETRICS_CONTENT_TYPE};

/// The content type of the text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Everything `/metrics` shows: the registry of the daemon's own metrics, and the store whose
/// snapshot gives the workspace series.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    store: Reader,
    per_workspace: bool,
    cache: Mutex<Option<Arc<Cached>>>,
    /// Tails compressed so far (the cache's test hook).
    compressions: AtomicU64,
}

/// The tails of one snapshot, made on first use.
#[derive(Debug)]
struct Cached {
    /// Weak, so that the cache does not keep an old snapshot's workspaces alive; the allocation
    /// it points at stays reserved while this lives, so a new snapshot never has its address.
    snapshot: Weak<Snapshot>,
    tails: [Arc<Tail>; 2],
}

/// One format's tail. Each form is made on its first ask, so a fleet scraped only by Prometheus
/// (always gzip) holds only the compressed tail, a fraction of the text's size.
#[derive(Debug, Default)]
struct Tail {
    plain: OnceLock<String>,
    gzip: OnceLock<gzip::Tail>,
}

/// What a scraper asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub format: Format,
    pub gzip: bool,
}

impl Request {
    /// From the `Accept` and `Accept-Encoding` headers (empty when absent).
    pub fn of(accept: &str, accept_encoding: &str) -> Request {
        Request {
            format: negotiate_format(accept),
            gzip: accepts_gzip(accept_encoding),
        }
    }
}

/// The media ranges of a header with their quality: `(type, version parameter, q)`.
fn media_ranges(header: &str) -> impl Iterator<Item = (String, Option<String>, f32)> + '_ {
    header.split(',').map(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let (mut version, mut q) = (None, 1.0);
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "q" => q = value.parse().unwrap_or(0.0),
                "version" => version = Some(value.to_owned()),
                _ => {}
            }
        }
        (media, version, q)
    })
}

/// OpenMetrics when the scraper names `application/openmetrics-text` (version 1.0.0 or none)
/// with at least the quality it gives the text format; the text format otherwise.
fn negotiate_format(accept: &str) -> Format {
    let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
    for (media, version, q) in media_ranges(accept) {
        let version = version.as_deref();
        match media.as_str() {
            "application/openmetrics-text" if matches!(version, None | Some("1.0.0")) => {
                openmetrics = openmetrics.max(q);
            }
            "text/plain" if matches!(version, None | Some("0.0.4")) => text = text.max(q),
            "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    if openmetrics > 0.0 && openmetrics >= text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*` with a quality above 0, gzip not refused).
fn accepts_gzip(accept_encoding: &str) -> bool {
    let (mut gzip, mut any) = (None, None);
    for (coding, _, q) in media_ranges(accept_encoding) {
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = Some(q),
            "*" => any = Some(q),
            _ => {}
        }
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

/// One answer of `/metrics`.
pub struct Scrape {
    pub format: Format,
    pub gzip: bool,
    pub body: Vec<u8>,
}

impl IntoResponse for Scrape {
    fn into_response(self) -> Response {
        let mut response = self.body.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.format.content_type()),
        );
        headers.insert(header::VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
        if self.gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
}

impl Metrics {
    pub fn new(store: Reader, telemetry: &Telemetry, per_workspace: bool) -> Metrics {
        let mut registry = Registry::default();
        registry.register(
            "iacwatch_scans",
            "Scans done, full or incremental (one directory batch)",
            telemetry.scans.clone(),
        );
        registry.register_with_unit(
            "iacwatch_scan_duration",
            "Time a scan took, full or incremental",
            Unit::Seconds,
            telemetry.scan_duration.clone(),
        );
        registry.register(
            "iacwatch_artifact_errors",
            "Artifacts found unreadable or malformed, by kind",
            telemetry.artifact_errors.clone(),
        );
        registry.register(
            "iacwatch_watch_events",
            "File-change events received",
            telemetry.watch_events.clone(),
        );
        registry.register(
            "iacwatch_transitions",
            "Status transitions of workspaces since the history began (from/to none: appeared, vanished)",
            telemetry.transitions.clone(),
        );
        let remote = [
            (
                "iacwatch_remote_requests",
                "Requests sent to S3 and DynamoDB (retries included), by root and operation",
                &telemetry.remote_requests,
            ),
            (
                "iacwatch_remote_request_errors",
                "Remote requests answered with an error status (400 or above) or not answered",
                &telemetry.remote_request_errors,
            ),
        ];
        for (name, help, family) in remote {
            registry.register(name, help, family.clone());
        }
        let build = Family::<[(&'static str, &'static str); 3], Gauge>::default();
        build
            .get_or_create(&[
                ("version", crate::build_info::VERSION),
                ("revision", crate::build_info::REVISION),
                ("rustc", crate::build_info::RUSTC),
            ])
            .set(1);
        registry.register(
            "iacwatch_build_info",
            "The version, git revision and rustc version iacwatch was built from; always 1",
            build,
        );
        Metrics {
            registry,
            store,
            per_workspace,
            cache: Mutex::new(None),
            compressions: AtomicU64::new(0),
        }
    }

    /// The answer to a request.
    pub fn scrape(&self, request: Request) -> Scrape {
        let (snapshot, tail) = self.tail(request.format);
        let render = || workspaces::render(&snapshot, request.format, self.per_workspace);
        let head = self.head(request.format);
        let body = if request.gzip {
            let compressed = tail.gzip.get_or_init(|| {
                self.compressions.fetch_add(1, Ordering::Relaxed);
                match tail.plain.get() {
                    Some(plain) => gzip::Tail::new(plain.as_bytes()),
                    None => gzip::Tail::new(render().as_bytes()),
                }
            });
            gzip::assemble(head.as_bytes(), compressed)
        } else {
            let plain = tail.plain.get_or_init(render);
            let mut body = head.into_bytes();
            body.extend_from_slice(plain.as_bytes());
            body
        };
        Scrape {
            format: request.format,
            gzip: request.gzip,
            body,
        }
    }

    /// How many tails were compressed so far.
    #[cfg(test)]
    pub(crate) fn compressions(&self) -> u64 {
        self.compressions.load(Ordering::Relaxed)
    }

    /// The current snapshot and its tail in a format (made empty on the snapshot's first ask; its
    /// forms are rendered outside the lock, so a scrape of another format does not wait).
    fn tail(&self, format: Format) -> (Arc<Snapshot>, Arc<Tail>) {
        let snapshot = self.store.snapshot();
        let mut slot = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let cached = match &*slot {
            Some(c) if std::ptr::eq(c.snapshot.as_ptr(), Arc::as_ptr(&snapshot)) => c.clone(),
            _ => {
                let fresh = Arc::new(Cached {
                    snapshot: Arc::downgrade(&snapshot),
                    tails: Default::default(),
                });
                *slot = Some(fresh.clone());
                fresh
            }
        };
        drop(slot);
        let tail = cached.tails[format.index()].clone();
        (snapshot, tail)
    }

    /// The part rendered on every scrape.
    fn head(&self, format: Format) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = match format {
            Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry),
            Format::OpenMetrics => prometheus_client::encoding::text::encode_registry(&mut out, &self.registry),
        };
        process::Process::read().write(&mut out, format);
        out
    }
}
