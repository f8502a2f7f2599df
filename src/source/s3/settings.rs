//! What names an S3 root: the `s3://BUCKET[/PREFIX]` URL, and its per-root settings as plain data
//! (the configuration file's `[remote."s3://..."]` table). Pure: no IO, no environment.

use std::fmt;
use std::time::Duration;

/// Terraform's default `workspace_key_prefix`.
pub const DEFAULT_WORKSPACE_KEY_PREFIX: &str = "env:";

/// The default time between two polls of a bucket.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);

/// A root URL `s3://BUCKET[/PREFIX]`, as given (the `root` of every identity under it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct S3Root {
    /// The URL exactly as given, trailing slashes removed.
    pub url: String,
    pub bucket: String,
    /// The key prefix without leading or trailing `/`; empty for a whole bucket.
    pub prefix: String,
}

/// Why a root URL is not an S3 root.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("not an s3:// URL")]
    NotS3,
    #[error("no bucket name after s3://")]
    NoBucket,
    #[error("'{0}' is not a valid S3 bucket name (3-63 lower-case letters, digits, '.', '-')")]
    BadBucket(String),
    #[error("the prefix has an empty, '.' or '..' segment")]
    BadPrefix,
}

impl S3Root {
    /// True when `text` is meant as an S3 root (so a caller tells URLs from directories).
    pub fn is_s3_url(text: &str) -> bool {
        text.starts_with("s3://")
    }

    /// Parses `s3://BUCKET` or `s3://BUCKET/PREFIX` (a trailing `/` is ignored).
    pub fn parse(text: &str) -> Result<S3Root, UrlError> {
        let rest = text.strip_prefix("s3://").ok_or(UrlError::NotS3)?;
        let rest = rest.trim_end_matches('/');
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(UrlError::NoBucket);
        }
        if !valid_bucket(bucket) {
            // A bucket name is not a secret, but it is bounded before it is echoed.
            return Err(UrlError::BadBucket(crate::artifact::printable(bucket, 80)));
        }
        if !prefix.is_empty() && prefix.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(UrlError::BadPrefix);
        }
        Ok(S3Root {
            url: format!("s3://{rest}"),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The prefix as a key prefix: `prod/`, or empty for a whole bucket.
    pub fn key_prefix(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }
}

impl fmt::Display for S3Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// S3's bucket naming rules (the lenient, path-style ones: dots allowed, no upper case).
fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// The settings of one S3 root. `None` means "not set here": the standard AWS environment (or the
/// AWS default) applies. No credential is ever part of it: those come from the AWS credential
/// chain only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteSettings {
    /// `https://s3.eu-west-1.amazonaws.com`, or `http://127.0.0.1:8333` for a local server.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style requests (`ENDPOINT/BUCKET/KEY`) instead of virtual-hosted ones.
    pub force_path_style: bool,
    /// Where Terraform puts the named workspaces: `PREFIX/W/KEY` (default `env:`; may be empty).
    pub workspace_key_prefix: String,
    /// Terraform's DynamoDB lock table, when one is used.
    pub dynamodb_table: Option<String>,
    pub dynamodb_endpoint: Option<String>,
    pub poll_interval: Duration,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        RemoteSettings {
            endpoint: None,
            region: None,
            force_path_style: false,
            workspace_key_prefix: DEFAULT_WORKSPACE_KEY_PREFIX.to_owned(),
            dynamodb_table: None,
            dynamodb_endpoint: None,
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

impl RemoteSettings {
    /// The workspace key prefix as Terraform joins it (`path.Join` drops leading and trailing `/`).
    pub fn workspace_prefix(&self) -> &str {
        self.workspace_key_prefix.trim_matches('/')
    }
}

/// An S3 root to read, with its settings: what the configuration resolves each `s3://` root to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRoot {
    pub root: S3Root,
    pub settings: RemoteSettings,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(url, bucket, prefix)` of a parsed root.
    type Parts<'a> = (&'a str, &'a str, &'a str);

    #[test]
    fn parses_roots() {
        let cases: &[(&str, Result<Parts, UrlError>)] = &[
            ("s3://acme-tfstate", Ok(("s3://acme-tfstate", "acme-tfstate", ""))),
            ("s3://acme-tfstate/", Ok(("s3://acme-tfstate", "acme-tfstate", ""))),
            (
                "s3://acme-tfstate/prod",
                Ok(("s3://acme-tfstate/prod", "acme-tfstate", "prod")),
            ),
            (
                "s3://acme-tfstate/prod/eu/",
                Ok(("s3://acme-tfstate/prod/eu", "acme-tfstate", "prod/eu")),
            ),
            ("s3://a.b-c/x", Ok(("s3://a.b-c/x", "a.b-c", "x"))),
            ("/srv/terraform", Err(UrlError::NotS3)),
            ("gs://bucket", Err(UrlError::NotS3)),
            ("s3://", Err(UrlError::NoBucket)),
            ("s3:///prefix", Err(UrlError::NoBucket)),
            ("s3://Upper", Err(UrlError::BadBucket("Upper".into()))),
            ("s3://ab", Err(UrlError::BadBucket("ab".into()))),
            ("s3://-bucket", Err(UrlError::BadBucket("-bucket".into()))),
            ("s3://bucket//x", Err(UrlError::BadPrefix)),
            ("s3://bucket/a/../b", Err(UrlError::BadPrefix)),
        ];
        for (text, expected) in cases {
            let got = S3Root::parse(text).map(|r| (r.url.clone(), r.bucket.clone(), r.prefix.clone()));
            let expected = expected
                .clone()
                .map(|(u, b, p)| (u.to_owned(), b.to_owned(), p.to_owned()));
            assert_eq!(got, expected, "{text}");
        }
    }

    #[test]
    fn key_prefix_ends_in_a_slash() {
        assert_eq!(S3Root::parse("s3://bucket").unwrap().key_prefix(), "");
        assert_eq!(S3Root::parse("s3://bucket/prod").unwrap().key_prefix(), "prod/");
    }

    #[test]
    fn defaults_are_terraforms() {
        let settings = RemoteSettings::default();
        assert_eq!(settings.workspace_prefix(), "env:");
        assert_eq!(settings.poll_interval, Duration::from_secs(30));
        let custom = RemoteSettings {
            workspace_key_prefix: "/workspaces/".into(),
            ..RemoteSettings::default()
        };
        assert_eq!(custom.workspace_prefix(), "workspaces");
    }
}
