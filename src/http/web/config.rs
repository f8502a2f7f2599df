//! The exporter-toolkit web configuration file, as YAML, validated into `WebConfig`.
//!
//! Paths in the file are relative to the file's directory. Unknown keys are errors, and so are
//! the toolkit's keys this server does not implement (a security setting is never silently
//! ignored).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

/// Why the web configuration cannot be used; the message names the key or file.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("web config {path}: {message}")]
    File { path: String, message: String },
    #[error("web config: {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> WebConfigError {
    WebConfigError::Invalid {
        key,
        message: message.into(),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// Whether and how client certificates are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    /// A certificate, when given, must chain to the client CA.
    VerifyClientCertIfGiven,
    /// A certificate chaining to the client CA is required (mutual TLS).
    RequireAndVerifyClientCert,
}

/// The TLS protocol versions rustls speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_auth: ClientAuth,
    pub client_ca_file: Option<PathBuf>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

/// The validated web configuration.
#[derive(Clone, Debug, Default)]
pub struct WebConfig {
    pub tls: Option<TlsSettings>,
    /// User name to bcrypt hash.
    pub basic_auth_users: Option<BTreeMap<String, String>>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// The response headers the toolkit lets a configuration set.
const ALLOWED_HEADERS: [&str; 5] = [
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

fn version(key: &'static str, text: &str) -> Result<TlsVersion, WebConfigError> {
    match text {
        "TLS13" => Ok(TlsVersion::Tls13),
        "TLS12" => Ok(TlsVersion::Tls12),
        "TLS10" | "TLS11" => Err(invalid(key, format!("{text} is not supported; use TLS12 or TLS13"))),
        other => Err(invalid(key, format!("unknown TLS version '{other}' (TLS12, TLS13)"))),
    }
}

impl WebConfig {
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| WebConfigError::File {
            path: shown.clone(),
            message: e.kind().to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        WebConfig::parse(&text, base).map_err(|e| match e {
            WebConfigError::File { message, .. } => WebConfigError::File { path: shown, message },
            other => other,
        })
    }

    /// Parses the YAML text; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<WebConfig, WebConfigError> {
        // An empty file is a valid configuration that changes nothing.
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| WebConfigError::File {
                path: String::new(),
                message: e.to_string(),
            })?
        };
        let tls = match raw.tls_server_config {
            Some(tls) => tls_settings(tls, base)?,
            None => None,
        };
        let mut headers = Vec::new();
        let http = raw.http_server_config.unwrap_or_default();
        if http.http2 == Some(true) {
            tracing::debug!("http_server_config.http2: this server speaks HTTP/1.1 only");
        }
        for (name, value) in http.headers.unwrap_or_default() {
            let Some(allowed) = ALLOWED_HEADERS.iter().find(|h| h.eq_ignore_ascii_case(&name)) else {
                return Err(invalid(
                    "http_server_config.headers",
                    format!("'{name}' cannot be set; allowed: {}", ALLOWED_HEADERS.join(", ")),
                ));
            };
            if allowed.eq_ignore_ascii_case("X-Content-Type-Options") && value != "nosniff" {
                return Err(invalid(
                    "http_server_config.headers",
                    "X-Content-Type-Options must be nosniff",
                ));
            }
            if allowed.eq_ignore_ascii_case("X-Frame-Options")
                && !value.eq_ignore_ascii_case("deny")
                && !value.eq_ignore_ascii_case("sameorigin")
            {
                return Err(invalid(
                    "http_server_config.headers",
                    "X-Frame-Options must be deny or sameorigin",
                ));
            }
            let value = HeaderValue::from_str(&value).map_err(|_| {
                invalid(
                    "http_server_config.headers",
                    format!("the value of {name} is not a header value"),
                )
            })?;
            let name = HeaderName::from_bytes(allowed.as_bytes()).expect("the allowed names are valid");
            headers.push((name, value));
        }
        if let Some(users) = &raw.basic_auth_users {
            for (user, hash) in users {
                if user.contains(':') {
                    return Err(invalid("basic_auth_users", format!("user name '{user}' contains ':'")));
                }
                if hash.parse::<bcrypt::HashParts>().is_err() {
                    return Err(invalid(
                        "basic_auth_users",
                        format!("the hash of '{user}' is not a bcrypt hash"),
                    ));
                }
            }
        }
        Ok(WebConfig {
            tls,
            basic_auth_users: raw.basic_auth_users.filter(|u| !u.is_empty()),
            headers,
        })
    }

    /// Every file the configuration depends on, itself first: a change to any means a reload.
    pub fn files(&self, path: &Path) -> Vec<PathBuf> {
        let mut files = vec![path.to_owned()];
        if let Some(tls) = &self.tls {
            files.push(tls.cert_file.clone());
            files.push(tls.key_file.clone());
            files.extend(tls.client_ca_file.clone());
        }
        files
    }
}

fn tls_settings(raw: RawTls, base: &Path) -> Result<Option<TlsSettings>, WebConfigError> {
    let unsupported = [
        (
            "tls_server_config.cipher_suites",
            raw.cipher_suites.is_some_and(|v| !v.is_empty()),
        ),
        (
            "tls_server_config.curve_preferences",
            raw.curve_preferences.is_some_and(|v| !v.is_empty()),
        ),
        (
            "tls_server_config.prefer_server_cipher_suites",
            raw.prefer_server_cipher_suites.is_some(),
        ),
        (
            "tls_server_config.client_allowed_sans",
            raw.client_allowed_sans.is_some_and(|v| !v.is_empty()),
        ),
    ];
    if let Some((key, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(invalid(
            key,
            "is not supported by this server (its TLS library picks safe suites and curves)",
        ));
    }
    let path = |p: &Option<String>| p.as_deref().filter(|p| !p.is_empty()).map(|p| base.join(p));
    let (cert_file, key_file) = match (path(&raw.cert_file), path(&raw.key_file)) {
        (None, None) if raw.client_ca_file.is_none() && raw.client_auth_type.is_none() => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (None, _) => return Err(invalid("tls_server_config.cert_file", "missing")),
        (_, None) => return Err(invalid("tls_server_config.key_file", "missing")),
    };
    let client_ca_file = path(&raw.client_ca_file);
    let client_auth = match raw.client_auth_type.as_deref().unwrap_or("") {
        "" | "NoClientCert" => ClientAuth::NoClientCert,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
        "RequestClientCert" | "RequireAnyClientCert" => {
            return Err(invalid(
                "tls_server_config.client_auth_type",
                "certificates that are not verified are not accepted; use VerifyClientCertIfGiven or RequireAndVerifyClientCert",
            ));
        }
        other => {
            return Err(invalid(
                "tls_server_config.client_auth_type",
                format!("unknown value '{other}'"),
            ));
        }
    };
    match (client_auth, &client_ca_file) {
        (ClientAuth::NoClientCert, Some(_)) => {
            return Err(invalid(
                "tls_server_config.client_ca_file",
                "client CAs are configured without a client_auth_type",
            ));
        }
        (ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert, None) => {
            return Err(invalid(
                "tls_server_config.client_ca_file",
                "missing, and client_auth_type needs it",
            ));
        }
        _ => {}
    }
    let min_version = match raw.min_version.as_deref() {
        Some(v) if !v.is_empty() => version("tls_server_config.min_version", v)?,
        _ => TlsVersion::Tls12,
    };
    let max_version = match raw.max_version.as_deref() {
        Some(v) if !v.is_empty() => version("tls_server_config.max_version", v)?,
        _ => TlsVersion::Tls13,
    };
    if min_version > max_version {
        return Err(invalid("tls_server_config.min_version", "is above max_version"));
    }
    Ok(Some(TlsSettings {
        cert_file,
        key_file,
        client_auth,
        client_ca_file,
        min_version,
        max_version,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash of "change-me", as in deploy/web-config/mtls-basic-auth.yml.
    const HASH: &str = "$2y$10$p8IsuM30cun7A4c3VCvCDekDOloupFRrEhULzc1iAfcr7QyWRYsHK";

    #[test]
    fn a_full_configuration_is_read_with_paths_beside_the_file() {
        let text = format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: /abs/server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\nbasic_auth_users:\n  prometheus: {HASH}\n"
        );
        let config = WebConfig::parse(&text, Path::new("/etc/iacwatch")).unwrap();
        let tls = config.tls.unwrap();
        assert_eq!(tls.cert_file, Path::new("/etc/iacwatch/server.crt"));
        assert_eq!(tls.key_file, Path::new("/abs/server.key"));
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(tls.min_version, TlsVersion::Tls13);
        assert_eq!(config.headers.len(), 2);
        assert_eq!(config.basic_auth_users.unwrap()["prometheus"], HASH);
    }

    #[test]
    fn mistakes_are_errors_that_name_the_key() {
        let base = Path::new(".");
        for (text, key) in [
            ("tls_server_config:\n  cert_file: a\n", "key_file"),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
                "client_ca_file",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
                "client_ca_file",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n",
                "min_version",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [X]\n",
                "cipher_suites",
            ),
            ("http_server_config:\n  headers:\n    Set-Cookie: a\n", "headers"),
            ("basic_auth_users:\n  alice: plain-text\n", "basic_auth_users"),
            ("tls_server_confg: {}\n", "unknown field"),
        ] {
            let err = WebConfig::parse(text, base).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn an_empty_file_changes_nothing() {
        let config = WebConfig::parse("", Path::new(".")).unwrap();
        assert!(config.tls.is_none() && config.basic_auth_users.is_none() && config.headers.is_empty());
    }
}
