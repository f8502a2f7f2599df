//! One read of Terraform's DynamoDB lock table: a paginated `Scan`, signed with SigV4 by
//! `object_store`'s public `AwsAuthorizer` with the root's own credential chain, sent through the
//! same counting HTTP client. No AWS SDK: see docs/remote-state.md for the cost comparison.

use object_store::aws::AwsAuthorizer;
use object_store::client::HttpRequest;

use super::client::S3Client;
use super::error::{ErrorKind, Operation, RemoteError};
use super::locktable::{LockTable, SCAN_TARGET, parse_scan, scan_request};
use super::transport::classify_chain;

/// A table larger than this many pages is not Terraform's lock table of one bucket.
const MAX_PAGES: usize = 10_000;

impl S3Client {
    /// The DynamoDB endpoint: the root's setting, else `AWS_ENDPOINT_URL_DYNAMODB` (read when the
    /// client was built), else AWS's endpoint for the region.
    pub fn dynamodb_endpoint(&self) -> String {
        self.settings()
            .dynamodb_endpoint
            .clone()
            .unwrap_or_else(|| format!("https://dynamodb.{}.amazonaws.com", self.region))
    }

    /// Every item of the root's lock table (all pages), or `None` when the root names no table.
    pub async fn scan_lock_table(&self) -> Result<Option<LockTable>, RemoteError> {
        let Some(table) = self.settings().dynamodb_table.clone() else {
            return Ok(None);
        };
        let target = format!("dynamodb:{table}");
        let endpoint = self.dynamodb_endpoint();
        let mut result = LockTable::default();
        let mut start: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let body = scan_request(&table, start.as_deref());
            let page = self.post(&endpoint, body, &target).await?;
            let page =
                parse_scan(&page).map_err(|_| RemoteError::new(ErrorKind::BadResponse, Operation::Scan, &target))?;
            start = page.next.clone();
            result.add(page);
            if start.is_none() {
                return Ok(Some(result));
            }
        }
        Err(RemoteError::new(ErrorKind::BadResponse, Operation::Scan, target))
    }

    async fn post(&self, endpoint: &str, body: String, target: &str) -> Result<bytes::Bytes, RemoteError> {
        let bad = || RemoteError::new(ErrorKind::BadResponse, Operation::Scan, target);
        let credential = self.credential(Operation::Scan, target).await?;
        let uri = format!("{}/", endpoint.trim_end_matches('/'));
        // The signer adds and signs the `host` header from the URI.
        let mut request: HttpRequest = http::Request::builder()
            .method(http::Method::POST)
            .uri(&uri)
            .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.0")
            .header("x-amz-target", SCAN_TARGET)
            .body(body.into())
            .map_err(|_| bad())?;
        AwsAuthorizer::new(&credential, "dynamodb", &self.region)
            .try_authorize(&mut request, None)
            .map_err(|_| bad())?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| classify_chain(&e, Operation::Scan, target))?;
        let status = response.status();
        let body = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| classify_chain(&e, Operation::Scan, target))?;
        if !status.is_success() {
            let code = super::locktable::error_type(&body);
            let kind = ErrorKind::from_status(status.as_u16(), code.as_deref());
            return Err(RemoteError::new(kind, Operation::Scan, target).with_status(status.as_u16(), code));
        }
        Ok(body)
    }
}
