//! `iacwatch serve`'s configuration: the addresses to listen on, the web paths (route prefix,
//! telemetry path, external URL), the watcher's timing, the server's limits and the log.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use super::{Common, ConfigError, FileConfig, duration, invalid, pick};
use crate::cli::ServeArgs;
use crate::logging::{LEVELS, LogFormat, parse_level};

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9814";

/// Where to listen: a host (an IP literal or a name resolved when binding) and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenAddress {
    /// An IPv4 or IPv6 literal (without brackets) or a host name.
    pub host: String,
    pub port: u16,
}

impl ListenAddress {
    /// `:9814` (every IPv4 interface, as `0.0.0.0:9814`), `localhost:9814`, `host:port`,
    /// `[::1]:9814`, `0.0.0.0:9814`.
    pub fn parse(text: &str) -> Result<ListenAddress, String> {
        let text = text.trim();
        let wrong = || format!("'{text}' is not an address like :9814, localhost:9814, 0.0.0.0:9814 or [::1]:9814");
        let (host, port) = match text.strip_prefix('[') {
            Some(rest) => {
                let (v6, port) = rest.split_once("]:").ok_or_else(wrong)?;
                v6.parse::<Ipv6Addr>().map_err(|_| wrong())?;
                (v6, port)
            }
            None => {
                let (host, port) = text.rsplit_once(':').ok_or_else(wrong)?;
                if host.contains(':') {
                    return Err(format!("'{text}': an IPv6 address goes in brackets, like [::1]:9814"));
                }
                (host, port)
            }
        };
        let port = port.parse::<u16>().map_err(|_| wrong())?;
        let host = match host {
            "" => Ipv4Addr::UNSPECIFIED.to_string(),
            name if name.parse::<Ipv4Addr>().is_ok() || name.parse::<Ipv6Addr>().is_ok() || is_host_name(name) => {
                name.to_owned()
            }
            _ => return Err(wrong()),
        };
        Ok(ListenAddress { host, port })
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `iacwatch serve`, validated.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub common: Common,
    /// Every address to listen on, at least one.
    pub listen: Vec<ListenAddress>,
    /// The metrics' path below `route_prefix`: starts with `/`, no trailing `/`.
    pub telemetry_path: String,
    /// The prefix of every route: `/`, or a path starting with `/` and not ending with one.
    pub route_prefix: String,
    /// `--web.external-url` without its trailing `/`: an http(s) URL.
    pub external_url: Option<String>,
    pub timing: crate::source::local::watch::Timing,
    pub per_workspace_metrics: bool,
    pub log_format: LogFormat,
    pub log_level: tracing::Level,
    pub limits: crate::http::Limits,
    /// The exporter-toolkit web configuration (TLS, basic auth, headers), if any.
    pub web_config_file: Option<PathBuf>,
    pub history: super::HistoryConfig,
}

impl ServeConfig {
    pub fn new(args: &ServeArgs) -> Result<ServeConfig, ConfigError> {
        let file = FileConfig::load(args.common.config.as_deref())?;
        let common = Common::new(&args.common, &file)?;
        let mut timing = crate::source::local::watch::Timing::default();
        if let Some(text) = pick(&args.poll, &file.poll) {
            let interval = duration("poll", &text)?;
            if interval.is_zero() {
                return Err(invalid("poll", "the interval must be more than 0"));
            }
            timing.poll = Some(interval);
        }
        if let Some(text) = pick(&args.resync_interval, &file.resync_interval) {
            let interval = duration("resync_interval", &text)?;
            timing.resync = (!interval.is_zero()).then_some(interval);
        }
        if let Some(text) = pick(&args.lock_check_interval, &file.lock_check_interval) {
            timing.lock_check = duration("lock_check_interval", &text)?.max(std::time::Duration::from_millis(100));
        }
        if let Some(text) = pick(&args.quiet_time, &file.quiet_time) {
            timing.quiet = duration("quiet_time", &text)?;
        }
        let mut limits = crate::http::Limits::default();
        if let Some(text) = pick(&args.header_timeout, &file.header_timeout) {
            limits.header_timeout = duration("header_timeout", &text)?;
        }
        if let Some(text) = pick(&args.request_timeout, &file.request_timeout) {
            limits.request_timeout = duration("request_timeout", &text)?;
        }
        let log_format = match pick(&args.log_format, &file.log_format) {
            None => LogFormat::Logfmt,
            Some(text) => LogFormat::parse(&text)
                .ok_or_else(|| invalid("log_format", format!("'{text}' is neither logfmt nor json")))?,
        };
        let log_level = match pick(&args.log_level, &file.log_level) {
            None => tracing::Level::INFO,
            Some(text) => parse_level(&text).ok_or_else(|| {
                invalid(
                    "log_level",
                    format!(
                        "'{text}' is not one of {}; filter directives go in RUST_LOG",
                        LEVELS.join(", ")
                    ),
                )
            })?,
        };
        let listen = if args.listen.is_empty() {
            file.listen.clone().map(super::OneOrMany::into_vec).unwrap_or_default()
        } else {
            args.listen.clone()
        };
        let listen = if listen.is_empty() {
            vec![DEFAULT_LISTEN.to_owned()]
        } else {
            listen
        };
        let listen = listen
            .iter()
            .map(|text| ListenAddress::parse(text).map_err(|e| invalid("listen", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let external_url = pick(&args.external_url, &file.external_url)
            .map(|url| external_url(&url))
            .transpose()?;
        let route_prefix = match pick(&args.route_prefix, &file.route_prefix) {
            Some(prefix) => route_prefix(&prefix)?,
            None => external_url.as_deref().map_or("/", url_path).to_owned(),
        };
        let telemetry_path =
            telemetry_path(&pick(&args.telemetry_path, &file.telemetry_path).unwrap_or_else(|| "/metrics".to_owned()))?;
        Ok(ServeConfig {
            common,
            listen,
            telemetry_path,
            route_prefix,
            external_url,
            timing,
            per_workspace_metrics: args
                .per_workspace_metrics
                .or(file.per_workspace_metrics)
                .unwrap_or(true),
            log_format,
            log_level,
            limits,
            web_config_file: pick(&args.web_config_file, &file.web_config_file),
            history: super::HistoryConfig::new(args, &file)?,
        })
    }
}

/// A URL path as the routes take it: starts with `/`, no trailing `/` but for the root, nothing
/// that is not a path (`?`, `#`, spaces).
fn url_path_of(key: &'static str, text: &str) -> Result<String, ConfigError> {
    let text = text.trim();
    if !text.starts_with('/') {
        return Err(invalid(key, format!("'{text}' does not start with /")));
    }
    if text.contains(['?', '#']) || text.chars().any(|c| c.is_whitespace() || c.is_control()) || text.contains("//") {
        return Err(invalid(key, format!("'{text}' is not a URL path")));
    }
    let trimmed = text.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

fn route_prefix(text: &str) -> Result<String, ConfigError> {
    url_path_of("route_prefix", text)
}

/// Below the route prefix; not a path the other endpoints take.
fn telemetry_path(text: &str) -> Result<String, ConfigError> {
    let path = url_path_of("telemetry_path", text)?;
    if path == "/" || path == "/healthz" || path == "/readyz" || path == "/api" || path.starts_with("/api/") {
        return Err(invalid(
            "telemetry_path",
            format!("'{path}' is the path of another endpoint"),
        ));
    }
    Ok(path)
}

/// An absolute http(s) URL, without its trailing `/`.
fn external_url(text: &str) -> Result<String, ConfigError> {
    let text = text.trim();
    let wrong = || {
        invalid(
            "external_url",
            format!("'{text}' is not an http(s) URL like https://example.com/iacwatch"),
        )
    };
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(wrong)?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty()
        || authority.contains('@')
        || text.contains(['?', '#'])
        || text.chars().any(char::is_whitespace)
    {
        return Err(wrong());
    }
    url_path_of(
        "external_url",
        &format!("/{}", &rest[authority.len()..]).replace("//", "/"),
    )?;
    Ok(text.trim_end_matches('/').to_owned())
}

/// The path of a URL that `external_url` accepted: `/` when it has none.
fn url_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(at) => &after_scheme[at..],
        None => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_in_the_forms_prometheus_users_type() {
        let cases = [
            (":9814", "0.0.0.0", 9814),
            ("localhost:9814", "localhost", 9814),
            ("runner-1.example.com:80", "runner-1.example.com", 80),
            ("[::1]:9814", "::1", 9814),
            ("[::]:9815", "::", 9815),
            ("0.0.0.0:9814", "0.0.0.0", 9814),
            ("127.0.0.1:0", "127.0.0.1", 0),
        ];
        for (text, host, port) in cases {
            let address = ListenAddress::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((address.host.as_str(), address.port), (host, port), "{text}");
        }
        assert_eq!(ListenAddress::parse("[::1]:9814").unwrap().to_string(), "[::1]:9814");
        assert_eq!(ListenAddress::parse(":9814").unwrap().to_string(), "0.0.0.0:9814");
        for bad in [
            "nowhere",
            "9814",
            "::1:9814",
            "[::1]",
            "host:99999",
            "host:",
            "bad_host:80",
            "[nope]:1",
            "-a:1",
        ] {
            assert!(ListenAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn web_paths_start_with_a_slash_and_end_without_one() {
        assert_eq!(route_prefix("/").unwrap(), "/");
        assert_eq!(route_prefix("/iacwatch/").unwrap(), "/iacwatch");
        assert_eq!(route_prefix("/a/b").unwrap(), "/a/b");
        for bad in ["iacwatch", "", "/a?b", "/a b", "/a//b"] {
            assert!(route_prefix(bad).is_err(), "{bad:?}");
        }
        assert_eq!(telemetry_path("/metrics").unwrap(), "/metrics");
        assert_eq!(telemetry_path("/probe/metrics/").unwrap(), "/probe/metrics");
        for bad in ["/", "metrics", "/healthz", "/api/v1/summary"] {
            assert!(telemetry_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_external_url_gives_the_default_prefix() {
        let url = external_url("https://ops.example.com/iacwatch/").unwrap();
        assert_eq!(url, "https://ops.example.com/iacwatch");
        assert_eq!(url_path(&url), "/iacwatch");
        assert_eq!(url_path(&external_url("http://host:9814").unwrap()), "/");
        for bad in [
            "ops.example.com",
            "ftp://x/",
            "https://",
            "https://u:p@host/",
            "https://h/a?b",
        ] {
            assert!(external_url(bad).is_err(), "{bad}");
        }
    }
}
