//! The HTTP layer under the S3 and DynamoDB clients: `object_store`'s reqwest client, wrapped so
//! that every request is counted and every error answer becomes a typed `StatusError` (status and
//! the service's error code, nothing else of the body), which the error classification reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};

use super::error::{ErrorKind, Operation, RemoteError};
use super::locktable;
use crate::artifact::identifier;
use crate::telemetry::RemoteRequests;

/// Requests sent, and how they were answered (for tests and for the cost of a poll).
#[derive(Debug, Default)]
pub struct RequestCounts {
    requests: AtomicU64,
    not_modified: AtomicU64,
    errors: AtomicU64,
    /// The exporter's counters, once the daemon gave them (`S3Client::count_into`).
    pub(super) telemetry: OnceLock<RemoteRequests>,
}

impl RequestCounts {
    /// Requests sent (retries included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `304 Not Modified` answers: conditional GETs that transferred no body.
    pub fn not_modified(&self) -> u64 {
        self.not_modified.load(Ordering::Relaxed)
    }

    /// Error answers (4xx but 404/412, 5xx).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

/// An error answer: its status and, when the body names one, the service's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HTTP {status}")]
pub struct StatusError {
    pub status: u16,
    pub code: Option<String>,
}

/// Makes the counting client for `object_store`'s S3 client.
#[derive(Debug)]
pub struct CountingConnector {
    pub counts: Arc<RequestCounts>,
}

impl HttpConnector for CountingConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(Counting {
            inner,
            counts: self.counts.clone(),
        }))
    }
}

#[derive(Debug)]
struct Counting {
    inner: HttpClient,
    counts: Arc<RequestCounts>,
}

/// Error bodies are short; a longer one is not read for its code.
const MAX_ERROR_BODY: usize = 64 * 1024;

#[async_trait]
impl HttpService for Counting {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.counts.requests.fetch_add(1, Ordering::Relaxed);
        let listing = request.uri().query().is_some_and(|q| q.contains("list-type=2"));
        let operation = operation_of(&request, listing);
        let count = |operation, failed| {
            if let Some(telemetry) = self.counts.telemetry.get() {
                telemetry.count(operation, failed);
            }
        };
        let response = match self.inner.execute(request).await {
            Ok(response) => response,
            Err(err) => {
                count(operation, true);
                return Err(err);
            }
        };
        let status = response.status();
        if status == http::StatusCode::NOT_MODIFIED {
            count("get_not_modified", false);
        } else if !(listing && status.is_success()) {
            count(operation, status.as_u16() >= 400);
        }
        if listing && status.is_success() {
            let checked = checked_listing(response).await;
            count(operation, checked.is_err());
            return checked;
        }
        if status == http::StatusCode::NOT_MODIFIED {
            self.counts.not_modified.fetch_add(1, Ordering::Relaxed);
        }
        // Success, redirects, 304, and the statuses object_store itself turns into its own error
        // variants (404 not found, 412 precondition) pass through unchanged; but a listing's 404
        // (no such bucket) reaches object_store's list as a generic error, so it is typed here.
        let passes = status.is_success()
            || status.is_redirection()
            || (status == http::StatusCode::NOT_FOUND && !listing)
            || status == http::StatusCode::PRECONDITION_FAILED;
        if passes {
            return Ok(response);
        }
        self.counts.errors.fetch_add(1, Ordering::Relaxed);
        let short = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_none_or(|len| len <= MAX_ERROR_BODY);
        let code = if short {
            response
                .into_body()
                .bytes()
                .await
                .ok()
                .and_then(|body| error_code(&body))
        } else {
            None
        };
        // Throttling and server errors are retried by object_store; the rest fail at once.
        let retried = status.is_server_error()
            || status == http::StatusCode::TOO_MANY_REQUESTS
            || status == http::StatusCode::REQUEST_TIMEOUT;
        let kind = if retried {
            HttpErrorKind::Request
        } else {
            HttpErrorKind::Decode
        };
        Err(HttpError::new(
            kind,
            StatusError {
                status: status.as_u16(),
                code,
            },
        ))
    }
}

/// The `operation` label of a request, from its method and target: a listing page, a GET of an
/// object (HEAD too), a page of the lock table's `Scan`, a marker written or removed.
fn operation_of(request: &HttpRequest, listing: bool) -> &'static str {
    let method = request.method();
    if request.headers().contains_key("x-amz-target") {
        "lock_table_scan"
    } else if listing {
        "list"
    } else if method == http::Method::GET || method == http::Method::HEAD {
        "get"
    } else if method == http::Method::DELETE {
        "delete"
    } else {
        "put"
    }
}

/// A listing page that is no `ListBucketResult` (a captive portal, a proxy's page) would read as an
/// empty listing, and every workspace of the root would vanish: it is an error instead.
async fn checked_listing(response: HttpResponse) -> Result<HttpResponse, HttpError> {
    let (parts, body) = response.into_parts();
    let body = body.bytes().await?;
    let head = &body[..body.len().min(1024)];
    if !head.windows(LISTING_ROOT.len()).any(|w| w == LISTING_ROOT) {
        return Err(HttpError::new(HttpErrorKind::Decode, NotAListing));
    }
    Ok(HttpResponse::from_parts(parts, body.into()))
}

const LISTING_ROOT: &[u8] = b"<ListBucketResult";

/// A successful answer to a listing that is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the answer to a listing is not a ListBucketResult")]
pub struct NotAListing;

/// The error code of an S3 XML error (`<Code>SlowDown</Code>`) or a DynamoDB JSON one.
pub fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let s3 = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .and_then(|(code, _)| identifier(code.trim(), 80));
    s3.or_else(|| locktable::error_type(body))
}

/// Classifies any error of the S3 client, keeping nothing of its text.
pub fn classify(err: &object_store::Error, operation: Operation, target: &str) -> RemoteError {
    let base = |kind| RemoteError::new(kind, operation, target);
    match err {
        object_store::Error::NotFound { .. } => return base(ErrorKind::NotFound).with_status(404, None),
        object_store::Error::PermissionDenied { .. } => return base(ErrorKind::AccessDenied).with_status(403, None),
        object_store::Error::Unauthenticated { .. } => return base(ErrorKind::AccessDenied).with_status(401, None),
        _ => {}
    }
    classify_chain(err, operation, target)
}

/// Classifies an error by what its chain of sources holds: a `StatusError` (an error answer) or an
/// `HttpError` (no answer).
pub fn classify_chain(err: &(dyn std::error::Error + 'static), operation: Operation, target: &str) -> RemoteError {
    let mut transport = None;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = next {
        if let Some(status) = current.downcast_ref::<StatusError>() {
            let kind = ErrorKind::from_status(status.status, status.code.as_deref());
            return RemoteError::new(kind, operation, target).with_status(status.status, status.code.clone());
        }
        if let Some(http) = current.downcast_ref::<HttpError>() {
            transport.get_or_insert(http.kind());
        }
        next = current.source();
    }
    let kind = match transport {
        Some(HttpErrorKind::Decode) | None => ErrorKind::BadResponse,
        Some(_) => ErrorKind::Unreachable,
    };
    RemoteError::new(kind, operation, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_error_codes() {
        let s3 = b"<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><StringToSign>AWS4-HMAC-SHA256...</StringToSign></Error>";
        assert_eq!(error_code(s3).as_deref(), Some("SignatureDoesNotMatch"));
        let ddb = br#"{"__type":"com.amazon.coral.service#UnrecognizedClientException"}"#;
        assert_eq!(error_code(ddb).as_deref(), Some("UnrecognizedClientException"));
        assert_eq!(error_code(b"<Error><Code>bad code with spaces</Code></Error>"), None);
        assert_eq!(error_code(b"\xff\xfe"), None);
    }

    #[test]
    fn classifies_by_the_chain() {
        let answer = HttpError::new(
            HttpErrorKind::Request,
            StatusError {
                status: 503,
                code: Some("SlowDown".into()),
            },
        );
        let err = classify_chain(&answer, Operation::List, "s3://b/");
        assert_eq!(
            (err.kind, err.status, err.code.as_deref()),
            (ErrorKind::Throttled, Some(503), Some("SlowDown"))
        );
        let refused = HttpError::new(HttpErrorKind::Connect, std::io::Error::other("refused"));
        assert_eq!(
            classify_chain(&refused, Operation::Get, "s3://b/k").kind,
            ErrorKind::Unreachable
        );
        let garbled = HttpError::new(HttpErrorKind::Decode, std::io::Error::other("bad"));
        assert_eq!(
            classify_chain(&garbled, Operation::Get, "s3://b/k").kind,
            ErrorKind::BadResponse
        );
        let missing = object_store::Error::NotFound {
            path: "k".into(),
            source: "gone".into(),
        };
        assert_eq!(classify(&missing, Operation::Get, "s3://b/k").kind, ErrorKind::NotFound);
    }
}
