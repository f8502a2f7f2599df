//! The S3 client of one root: a paginated listing of the root's state objects (and where its
//! named workspaces live), and a conditional GET that costs no body when the ETag is unchanged.
//! Built on `object_store`'s `AmazonS3` with the standard AWS credential chain.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::HttpClient;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, GetOptions, ObjectStore, ObjectStoreExt, RetryConfig};

use super::env::AwsEnvironment;
use super::error::{ErrorKind, Operation, RemoteError};
use super::keys::listing_prefixes;
use super::settings::{RemoteSettings, S3Root};
use super::transport::{CountingConnector, RequestCounts, classify};

/// How long a request may take, and how often a failed one is retried (the poll loop retries
/// later with its own backoff, so a failure here is reported soon).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_RETRIES: usize = 2;
const RETRY_TIMEOUT: Duration = Duration::from_secs(15);

/// One object of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    /// As the server sent it, quotes included (what `If-None-Match` takes).
    pub etag: Option<String>,
    pub last_modified: DateTime<Utc>,
    pub size: u64,
}

impl ObjectInfo {
    /// The ETag without quotes; the hex MD5 of the body for a single-part upload.
    pub fn etag_digest(&self) -> Option<String> {
        self.etag.as_deref().map(|e| e.trim_matches('"').to_ascii_lowercase())
    }
}

/// The answer to a conditional GET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The object still has the ETag asked with: no body was transferred.
    Unchanged,
    Changed {
        etag: Option<String>,
        last_modified: DateTime<Utc>,
        body: Bytes,
    },
}

/// The client of one S3 root. Cheap to share (`Arc` inside).
#[derive(Debug, Clone)]
pub struct S3Client {
    root: S3Root,
    settings: RemoteSettings,
    store: Arc<AmazonS3>,
    /// The same counting HTTP client, for the DynamoDB requests.
    pub(super) http: HttpClient,
    pub(super) region: String,
    counts: Arc<RequestCounts>,
}

impl S3Client {
    /// A client for `root`: the AWS environment first, then the root's settings over it.
    pub fn new(root: &S3Root, settings: &RemoteSettings, env: &AwsEnvironment) -> Result<S3Client, RemoteError> {
        let region = settings
            .region
            .clone()
            .or_else(|| env.region().map(str::to_owned))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let endpoint = settings
            .endpoint
            .clone()
            .or_else(|| env.get("AWS_ENDPOINT_URL_S3").map(str::to_owned))
            .or_else(|| env.get("AWS_ENDPOINT_URL").map(str::to_owned));
        install_crypto_provider();
        let options = client_options(endpoint.as_deref(), env);
        let counts = Arc::new(RequestCounts::default());
        let connector = CountingConnector { counts: counts.clone() };
        let bad = |_| RemoteError::new(ErrorKind::BadResponse, Operation::List, root.url.clone());
        let http = object_store::client::HttpConnector::connect(&connector, &options).map_err(bad)?;
        let mut builder = AmazonS3Builder::new().with_client_options(options);
        for (name, value) in env.iter() {
            if let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(key, value);
            }
        }
        builder = builder
            .with_bucket_name(&root.bucket)
            .with_region(&region)
            .with_http_connector(connector)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: MAX_RETRIES,
                retry_timeout: RETRY_TIMEOUT,
            });
        if let Some(endpoint) = &endpoint {
            if settings.force_path_style {
                builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
            } else {
                // Terraform's default with an endpoint: the bucket in the host name.
                builder = builder
                    .with_endpoint(virtual_host(endpoint, &root.bucket))
                    .with_virtual_hosted_style_request(true);
            }
        } else {
            builder = builder.with_virtual_hosted_style_request(!settings.force_path_style);
        }
        let store = builder.build().map_err(bad)?;
        Ok(S3Client {
            root: root.clone(),
            settings: settings.clone(),
            store: Arc::new(store),
            http,
            region,
            counts,
        })
    }

    pub fn root(&self) -> &S3Root {
        &self.root
    }

    pub fn settings(&self) -> &RemoteSettings {
        &self.settings
    }

    /// Requests this client sent so far, and how they were answered.
    pub fn counts(&self) -> &RequestCounts {
        &self.counts
    }

    /// Counts this client's requests into the exporter's `iacwatch_remote_requests_total` under
    /// `root` (the first call wins; later ones are ignored).
    pub fn count_into(&self, telemetry: &crate::telemetry::Telemetry, root: &str) {
        let _ = self.counts.telemetry.set(telemetry.remote(root));
    }

    /// Every object under the root's prefix and under its workspace key prefix (all pages; S3
    /// answers at most 1,000 keys a page), sorted by key.
    pub async fn list(&self) -> Result<Vec<ObjectInfo>, RemoteError> {
        let mut objects = Vec::new();
        for prefix in listing_prefixes(&self.root, self.settings.workspace_prefix()) {
            let target = format!("s3://{}/{prefix}", self.root.bucket);
            let trimmed = prefix.trim_end_matches('/');
            let path = if trimmed.is_empty() {
                None
            } else {
                let bad = |_| RemoteError::new(ErrorKind::BadResponse, Operation::List, target.clone());
                Some(Path::parse(trimmed).map_err(bad)?)
            };
            let mut stream = self.store.list(path.as_ref());
            while let Some(meta) = stream
                .try_next()
                .await
                .map_err(|e| classify(&e, Operation::List, &target))?
            {
                objects.push(ObjectInfo {
                    key: meta.location.as_ref().to_owned(),
                    etag: meta.e_tag,
                    last_modified: meta.last_modified,
                    size: meta.size,
                });
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        objects.dedup_by(|a, b| a.key == b.key);
        Ok(objects)
    }

    /// GETs `key`, with `If-None-Match: etag` when the last ETag is known.
    pub async fn get(&self, key: &str, etag: Option<&str>) -> Result<Fetched, RemoteError> {
        let target = format!("s3://{}/{key}", self.root.bucket);
        let bad = |_| RemoteError::new(ErrorKind::BadResponse, Operation::Get, target.clone());
        let path = Path::parse(key).map_err(bad)?;
        let options = GetOptions {
            if_none_match: etag.map(str::to_owned),
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(&path, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotModified { .. }) => return Ok(Fetched::Unchanged),
            Err(e) => return Err(classify(&e, Operation::Get, &target)),
        };
        let meta = result.meta.clone();
        let body = result
            .bytes()
            .await
            .map_err(|e| classify(&e, Operation::Get, &target))?;
        Ok(Fetched::Changed {
            etag: meta.e_tag,
            last_modified: meta.last_modified,
            body,
        })
    }

    /// Writes `body` at `key`, whole (one PUT: S3 shows the old object or the new one, never a
    /// part). Only `iacwatch run --publish` writes, and only its markers.
    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), RemoteError> {
        let target = format!("s3://{}/{key}", self.root.bucket);
        let bad = |_| RemoteError::new(ErrorKind::BadResponse, Operation::Put, target.clone());
        let path = Path::parse(key).map_err(bad)?;
        self.store
            .put(&path, body.into())
            .await
            .map(|_| ())
            .map_err(|e| classify(&e, Operation::Put, &target))
    }

    /// Removes `key`; an object already gone is no error.
    pub async fn delete(&self, key: &str) -> Result<(), RemoteError> {
        let target = format!("s3://{}/{key}", self.root.bucket);
        let bad = |_| RemoteError::new(ErrorKind::BadResponse, Operation::Delete, target.clone());
        let path = Path::parse(key).map_err(bad)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(classify(&e, Operation::Delete, &target)),
        }
    }

    /// The credentials of the chain, for signing a request of another service.
    pub(super) async fn credential(
        &self,
        operation: Operation,
        target: &str,
    ) -> Result<Arc<object_store::aws::AwsCredential>, RemoteError> {
        self.store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| classify(&e, operation, target))
    }
}

fn client_options(endpoint: Option<&str>, env: &AwsEnvironment) -> ClientOptions {
    let allow_http =
        endpoint.is_some_and(|e| e.starts_with("http://")) || env.get("AWS_ALLOW_HTTP").is_some_and(|v| v == "true");
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT)
}

/// `http://host:port` -> `http://BUCKET.host:port`.
fn virtual_host(endpoint: &str, bucket: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{bucket}.{rest}"),
        None => format!("https://{bucket}.{endpoint}"),
    }
}

/// reqwest is built without a crypto provider of its own: the process uses ring, as the
/// server's TLS does. Installing it twice is harmless (the first one stays).
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_the_bucket_in_the_host() {
        assert_eq!(virtual_host("http://127.0.0.1:8333", "b"), "http://b.127.0.0.1:8333");
        assert_eq!(virtual_host("s3.example.com", "b"), "https://b.s3.example.com");
    }

    #[test]
    fn etag_digest_drops_quotes() {
        let info = ObjectInfo {
            key: "k".into(),
            etag: Some("\"0123ABCD\"".into()),
            last_modified: DateTime::<Utc>::UNIX_EPOCH,
            size: 1,
        };
        assert_eq!(info.etag_digest().as_deref(), Some("0123abcd"));
    }

    #[test]
    fn builds_without_network() {
        let root = S3Root::parse("s3://bucket/prod").unwrap();
        let settings = RemoteSettings {
            endpoint: Some("http://127.0.0.1:1".into()),
            force_path_style: true,
            ..RemoteSettings::default()
        };
        let env = AwsEnvironment::from_pairs([("AWS_ACCESS_KEY_ID", "id"), ("AWS_SECRET_ACCESS_KEY", "secret")]);
        let client = S3Client::new(&root, &settings, &env).unwrap();
        assert_eq!(client.region, "us-east-1");
        assert!(!format!("{client:?}").contains("secret\""), "no secret in Debug");
    }
}
