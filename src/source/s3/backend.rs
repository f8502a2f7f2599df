//! The `s3` backend of an initialised directory, from `.terraform/terraform.tfstate` (written by
//! `terraform init`): where its state and locks live. Pure. The file may hold credentials
//! (`access_key`, `secret_key`, `token`): only the named fields below are read, none of those.
//!
//! Terraform <= 1.5 writes `endpoint`, `dynamodb_endpoint` and `force_path_style`; 1.6 and later
//! (and OpenTofu) write `endpoints = { s3, dynamodb }` and `use_path_style`. Both are read.

use serde::Deserialize;

use super::locktable::json_error;
use super::settings::{DEFAULT_WORKSPACE_KEY_PREFIX, RemoteSettings, S3Root};
use crate::artifact::{ParseError, identifier, printable};

/// Where a directory's S3 backend keeps its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Backend {
    pub bucket: String,
    /// The state key of workspace `default`.
    pub key: String,
    pub settings: RemoteSettings,
}

impl S3Backend {
    /// The bucket as a root (`s3://BUCKET`), whatever the key.
    pub fn root(&self) -> Option<S3Root> {
        S3Root::parse(&format!("s3://{}", self.bucket)).ok()
    }

    /// The state key of a CLI workspace, as Terraform's `Backend.path` makes it.
    pub fn state_key(&self, workspace: &str) -> String {
        let prefix = self.settings.workspace_prefix();
        if workspace == "default" {
            self.key.clone()
        } else if prefix.is_empty() {
            format!("{workspace}/{}", self.key)
        } else {
            format!("{prefix}/{workspace}/{}", self.key)
        }
    }

    /// True when `key` is the state key of one of this backend's CLI workspaces (`state_key`
    /// of `default` or of a workspace name, which has no `/`), whether or not it exists yet.
    pub fn holds(&self, key: &str) -> bool {
        if key == self.key {
            return true;
        }
        let prefix = self.settings.workspace_prefix();
        let named = if prefix.is_empty() {
            Some(key)
        } else {
            key.strip_prefix(prefix).and_then(|k| k.strip_prefix('/'))
        };
        named
            .and_then(|k| k.strip_suffix(self.key.as_str()))
            .and_then(|k| k.strip_suffix('/'))
            .is_some_and(|w| !w.is_empty() && !w.contains('/'))
    }
}

#[derive(Deserialize)]
struct RawFile {
    backend: Option<RawBackend>,
}

#[derive(Deserialize)]
struct RawBackend {
    #[serde(rename = "type")]
    kind: Option<String>,
    config: Option<RawConfig>,
}

/// Only the fields that say where; every other field (credentials among them) is skipped unread.
#[derive(Deserialize)]
struct RawConfig {
    bucket: Option<String>,
    key: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    endpoints: Option<RawEndpoints>,
    force_path_style: Option<bool>,
    use_path_style: Option<bool>,
    workspace_key_prefix: Option<String>,
    dynamodb_table: Option<String>,
    dynamodb_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct RawEndpoints {
    s3: Option<String>,
    dynamodb: Option<String>,
}

/// The directory's S3 backend; `None` when its backend is not `s3` or names no bucket and key.
pub fn parse(bytes: &[u8]) -> Result<Option<S3Backend>, ParseError> {
    let raw: RawFile = serde_json::from_slice(bytes).map_err(|e| json_error(&e))?;
    let Some(backend) = raw.backend.filter(|b| b.kind.as_deref() == Some("s3")) else {
        return Ok(None);
    };
    let Some(config) = backend.config else {
        return Ok(None);
    };
    let (Some(bucket), Some(key)) = (config.bucket, config.key) else {
        return Ok(None);
    };
    let endpoints = config.endpoints;
    let endpoint = config
        .endpoint
        .or_else(|| endpoints.as_ref().and_then(|e| e.s3.clone()))
        .filter(|e| !e.is_empty());
    let dynamodb_endpoint = config
        .dynamodb_endpoint
        .or_else(|| endpoints.as_ref().and_then(|e| e.dynamodb.clone()))
        .filter(|e| !e.is_empty());
    let settings = RemoteSettings {
        endpoint: endpoint.map(|e| printable(&e, 256)),
        region: config.region.as_deref().and_then(|r| identifier(r, 64)),
        force_path_style: config.force_path_style.or(config.use_path_style).unwrap_or(false),
        workspace_key_prefix: config
            .workspace_key_prefix
            .unwrap_or_else(|| DEFAULT_WORKSPACE_KEY_PREFIX.to_owned()),
        dynamodb_table: config.dynamodb_table.filter(|t| !t.is_empty()),
        dynamodb_endpoint: dynamodb_endpoint.map(|e| printable(&e, 256)),
        ..RemoteSettings::default()
    };
    Ok(Some(S3Backend { bucket, key, settings }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "SECRET-backend-key";

    #[test]
    fn reads_terraform_1_0_backend_config() {
        let file = format!(
            r#"{{"version":3,"serial":1,"lineage":"x","backend":{{"type":"s3","config":{{"access_key":"AKID","bucket":"tfstate","dynamodb_endpoint":"http://127.0.0.1:5000","dynamodb_table":"locks","endpoint":"http://127.0.0.1:8333","force_path_style":true,"key":"apps/web/terraform.tfstate","region":"us-east-1","secret_key":"{SECRET}","token":null,"workspace_key_prefix":null}},"hash":42}},"modules":[]}}"#
        );
        let backend = parse(file.as_bytes()).unwrap().unwrap();
        assert_eq!(backend.bucket, "tfstate");
        assert_eq!(backend.key, "apps/web/terraform.tfstate");
        assert_eq!(backend.settings.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(backend.settings.dynamodb_table.as_deref(), Some("locks"));
        assert!(backend.settings.force_path_style);
        assert_eq!(backend.state_key("default"), "apps/web/terraform.tfstate");
        assert_eq!(backend.state_key("staging"), "env:/staging/apps/web/terraform.tfstate");
        assert_eq!(backend.root().unwrap().url, "s3://tfstate");
        assert!(!format!("{backend:?}").contains(SECRET));
    }

    #[test]
    fn reads_the_newer_endpoints_block() {
        let file = br#"{"backend":{"type":"s3","config":{"bucket":"b-1","key":"k.tfstate","endpoints":{"s3":"https://s3.example","dynamodb":"https://ddb.example"},"use_path_style":true,"workspace_key_prefix":"ws"}}}"#;
        let backend = parse(file).unwrap().unwrap();
        assert_eq!(backend.settings.endpoint.as_deref(), Some("https://s3.example"));
        assert_eq!(
            backend.settings.dynamodb_endpoint.as_deref(),
            Some("https://ddb.example")
        );
        assert!(backend.settings.force_path_style);
        assert_eq!(backend.state_key("blue"), "ws/blue/k.tfstate");
        let empty_prefix =
            br#"{"backend":{"type":"s3","config":{"bucket":"b-1","key":"k.tfstate","workspace_key_prefix":""}}}"#;
        assert_eq!(
            parse(empty_prefix).unwrap().unwrap().state_key("blue"),
            "blue/k.tfstate"
        );
    }

    #[test]
    fn holds_the_state_keys_of_every_cli_workspace_and_no_other() {
        let file = br#"{"backend":{"type":"s3","config":{"bucket":"b","key":"apps/web/terraform.tfstate"}}}"#;
        let backend = parse(file).unwrap().unwrap();
        for key in ["default", "staging", "qa-1"].map(|w| backend.state_key(w)) {
            assert!(backend.holds(&key), "{key}");
        }
        for key in [
            "apps/web/terraform.tfstate.tflock",
            "apps/db/terraform.tfstate",
            "env:/apps/web/terraform.tfstate",
            "env://apps/web/terraform.tfstate",
            "env:/a/b/apps/web/terraform.tfstate",
            "other/qa/apps/web/terraform.tfstate",
            "xapps/web/terraform.tfstate",
        ] {
            assert!(!backend.holds(key), "{key}");
        }
        let bare = S3Backend {
            settings: RemoteSettings {
                workspace_key_prefix: String::new(),
                ..backend.settings.clone()
            },
            ..backend
        };
        assert!(bare.holds("qa/apps/web/terraform.tfstate"));
        assert!(!bare.holds("env:/qa/apps/web/terraform.tfstate"));
    }

    #[test]
    fn other_backends_and_bad_files() {
        assert_eq!(
            parse(br#"{"backend":{"type":"gcs","config":{"bucket":"b"}}}"#).unwrap(),
            None
        );
        assert_eq!(
            parse(br#"{"backend":{"type":"s3","config":{"bucket":"b"}}}"#).unwrap(),
            None
        );
        assert_eq!(parse(br#"{"version":3}"#).unwrap(), None);
        assert_eq!(parse(b"{\"backend\":").unwrap_err().kind(), "truncated");
        assert_eq!(
            parse(br#"{"backend":{"type":"s3","config":{"bucket":5}}}"#)
                .unwrap_err()
                .kind(),
            "wrong_shape"
        );
    }
}
