//! Why a request to a bucket or a lock table failed, as a bounded kind and a message built only
//! from safe parts: the operation, the object's place, the HTTP status and the service's error
//! code. No credential, no signed request, no response body and no object content ever reaches
//! it (the client's own error texts are never passed through).

use std::fmt;

/// The bounded kind of a remote failure (a metric label, an `errors` entry's kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No answer: connection refused, unresolvable host, timeout, connection reset.
    Unreachable,
    /// The credentials are missing, wrong, expired, or do not allow the request.
    AccessDenied,
    /// The bucket, object or table does not exist.
    NotFound,
    /// The service asks to slow down (429, 503 `SlowDown`, DynamoDB throughput errors).
    Throttled,
    /// The service failed (5xx).
    ServerError,
    /// An answer this program cannot use (bad XML or JSON, an unexpected status, a bad key).
    BadResponse,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Throttled => "throttled",
            ErrorKind::ServerError => "server_error",
            ErrorKind::BadResponse => "bad_response",
        }
    }

    /// True when the failure says the service cannot be read now (the root is down), as opposed
    /// to one object or item being gone or unreadable.
    pub fn root_down(self) -> bool {
        matches!(
            self,
            ErrorKind::Unreachable | ErrorKind::AccessDenied | ErrorKind::Throttled | ErrorKind::ServerError
        )
    }

    /// The kind of an HTTP error status, given the service's error code when it sent one.
    pub fn from_status(status: u16, code: Option<&str>) -> ErrorKind {
        let code = code.unwrap_or("");
        match status {
            401 | 403 => ErrorKind::AccessDenied,
            404 => ErrorKind::NotFound,
            429 | 503 => ErrorKind::Throttled,
            400 if ACCESS_CODES.contains(&code) => ErrorKind::AccessDenied,
            400 if THROTTLE_CODES.contains(&code) => ErrorKind::Throttled,
            400 if code == "ResourceNotFoundException" => ErrorKind::NotFound,
            500..=599 => ErrorKind::ServerError,
            _ => ErrorKind::BadResponse,
        }
    }
}

/// Error codes (S3's `<Code>`, DynamoDB's `__type`) that mean the credentials are at fault.
const ACCESS_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AuthorizationHeaderMalformed",
    "ExpiredToken",
    "ExpiredTokenException",
    "IncompleteSignatureException",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "InvalidToken",
    "MissingAuthenticationTokenException",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
];

/// DynamoDB's throttling errors (sent with status 400).
const THROTTLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
];

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was being done when a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    List,
    Get,
    Scan,
    /// Writing a marker (`iacwatch run --publish`).
    Put,
    /// Removing a marker.
    Delete,
}

impl Operation {
    fn verb(self) -> &'static str {
        match self {
            Operation::List => "listing",
            Operation::Get => "reading",
            Operation::Scan => "reading the lock table",
            Operation::Put => "writing",
            Operation::Delete => "removing",
        }
    }

    /// The IAM permission the operation needs.
    pub fn permission(self) -> &'static str {
        match self {
            Operation::List => "s3:ListBucket",
            Operation::Get => "s3:GetObject",
            Operation::Scan => "dynamodb:Scan",
            Operation::Put => "s3:PutObject",
            Operation::Delete => "s3:DeleteObject",
        }
    }
}

/// A failed request to a bucket or a lock table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteError {
    pub kind: ErrorKind,
    pub operation: Operation,
    /// Where: `s3://BUCKET/KEY`, `s3://BUCKET/PREFIX/`, or `dynamodb:TABLE`.
    pub target: String,
    pub status: Option<u16>,
    /// The service's error code (`SignatureDoesNotMatch`, `SlowDown`, ...), identifier-safe.
    pub code: Option<String>,
}

impl RemoteError {
    pub fn new(kind: ErrorKind, operation: Operation, target: impl Into<String>) -> RemoteError {
        RemoteError {
            kind,
            operation,
            target: target.into(),
            status: None,
            code: None,
        }
    }

    pub fn with_status(mut self, status: u16, code: Option<String>) -> RemoteError {
        self.status = Some(status);
        self.code = code;
        self
    }

    pub fn kind(&self) -> &'static str {
        self.kind.as_str()
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::Unreachable => "the service cannot be reached (connection failed or timed out)",
            ErrorKind::AccessDenied => "access denied",
            ErrorKind::NotFound => "not found",
            ErrorKind::Throttled => "the service asks to slow down",
            ErrorKind::ServerError => "the service failed",
            ErrorKind::BadResponse => "an answer that cannot be used",
        };
        write!(f, "{} {}: {what}", self.operation.verb(), self.target)?;
        match (self.status, &self.code) {
            (Some(status), Some(code)) => write!(f, " (HTTP {status}, {code})")?,
            (Some(status), None) => write!(f, " (HTTP {status})")?,
            (None, Some(code)) => write!(f, " ({code})")?,
            (None, None) => {}
        }
        if self.kind == ErrorKind::AccessDenied {
            write!(
                f,
                "; check the credentials and that they allow {}",
                self.operation.permission()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for RemoteError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_statuses() {
        let cases: &[(u16, Option<&str>, ErrorKind)] = &[
            (403, Some("SignatureDoesNotMatch"), ErrorKind::AccessDenied),
            (403, None, ErrorKind::AccessDenied),
            (401, None, ErrorKind::AccessDenied),
            (400, Some("UnrecognizedClientException"), ErrorKind::AccessDenied),
            (400, Some("AuthorizationHeaderMalformed"), ErrorKind::AccessDenied),
            (
                400,
                Some("ProvisionedThroughputExceededException"),
                ErrorKind::Throttled,
            ),
            (400, Some("ResourceNotFoundException"), ErrorKind::NotFound),
            (400, Some("ValidationException"), ErrorKind::BadResponse),
            (404, Some("NoSuchBucket"), ErrorKind::NotFound),
            (429, None, ErrorKind::Throttled),
            (503, Some("SlowDown"), ErrorKind::Throttled),
            (500, Some("InternalError"), ErrorKind::ServerError),
            (502, None, ErrorKind::ServerError),
            (301, None, ErrorKind::BadResponse),
        ];
        for (status, code, kind) in cases {
            assert_eq!(ErrorKind::from_status(*status, *code), *kind, "{status} {code:?}");
        }
    }

    #[test]
    fn messages_say_what_and_where() {
        let err = RemoteError::new(ErrorKind::AccessDenied, Operation::List, "s3://bucket/prod/")
            .with_status(403, Some("SignatureDoesNotMatch".into()));
        assert_eq!(
            err.to_string(),
            "listing s3://bucket/prod/: access denied (HTTP 403, SignatureDoesNotMatch); check the credentials and that they allow s3:ListBucket"
        );
        let err = RemoteError::new(ErrorKind::Unreachable, Operation::Scan, "dynamodb:locks");
        assert_eq!(
            err.to_string(),
            "reading the lock table dynamodb:locks: the service cannot be reached (connection failed or timed out)"
        );
        assert!(ErrorKind::Throttled.root_down());
        assert!(!ErrorKind::NotFound.root_down());
    }
}
