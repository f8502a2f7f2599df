//! One validated configuration from flags, `IACWATCH_*` variables and a TOML file, in that order of
//! precedence. A bad value is a one-line error naming the key.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use globset::{Glob, GlobSetBuilder};
use serde::Deserialize;

use crate::classify::Policy;
use crate::cli::{CommonArgs, Format, ScanArgs, ServeArgs};
use crate::model::{Status, parse_status_list};
use crate::source::local::Root;
use crate::source::local::discover::DiscoverOptions;

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// The TOML file. Every key is optional; unknown keys are errors (a typo is not silently ignored).
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct FileConfig {
    pub roots: Option<Vec<String>>,
    pub stale_lock_after: Option<String>,
    pub settle_time: Option<String>,
    pub exclude: Option<Vec<String>>,
    pub follow_symlinks: Option<bool>,
    pub format: Option<Format>,
    pub status: Option<String>,
    pub fail_on: Option<String>,
    pub hostname: Option<String>,
    pub listen: Option<String>,
    pub poll: Option<String>,
    pub resync_interval: Option<String>,
    pub lock_check_interval: Option<String>,
    pub quiet_time: Option<String>,
    pub per_workspace_metrics: Option<bool>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub header_timeout: Option<String>,
    pub request_timeout: Option<String>,
    pub web_config_file: Option<std::path::PathBuf>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: shown.clone(),
            message: e.kind().to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::File {
            path: shown,
            message: e.message().to_owned(),
        })
    }
}

/// Parses `90s`, `2h`, `1h30m`.
pub fn duration(key: &'static str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text.trim()).map_err(|e| invalid(key, format!("'{text}' is not a duration ({e})")))
}

/// What reading and classifying need, shared by `scan` and `serve`.
#[derive(Clone, Debug)]
pub struct Common {
    pub roots: Vec<Root>,
    pub policy: Policy,
    pub discover: DiscoverOptions,
    pub hostname: Option<String>,
}

impl Common {
    pub fn new(args: &CommonArgs, file: &FileConfig, hostname: Option<&String>) -> Result<Common, ConfigError> {
        let roots = if args.roots.is_empty() {
            file.roots.clone().unwrap_or_default()
        } else {
            args.roots.clone()
        };
        if roots.is_empty() {
            return Err(invalid("roots", "no root directory given"));
        }
        let mut policy = Policy::default();
        if let Some(text) = args.stale_lock_after.as_ref().or(file.stale_lock_after.as_ref()) {
            policy.stale_lock_after = duration("stale_lock_after", text)?;
        }
        if let Some(text) = args.settle_time.as_ref().or(file.settle_time.as_ref()) {
            policy.settle_time = duration("settle_time", text)?;
        }
        let patterns = if args.exclude.is_empty() {
            file.exclude.clone().unwrap_or_default()
        } else {
            args.exclude.clone()
        };
        let mut globs = GlobSetBuilder::new();
        for pattern in &patterns {
            globs.add(Glob::new(pattern).map_err(|e| invalid("exclude", format!("'{pattern}': {}", e.kind())))?);
        }
        let exclude = globs.build().map_err(|e| invalid("exclude", e.to_string()))?;
        Ok(Common {
            roots: roots.into_iter().map(Root::new).collect(),
            policy,
            discover: DiscoverOptions {
                follow_symlinks: args.follow_symlinks.or(file.follow_symlinks).unwrap_or(false),
                exclude,
            },
            hostname: hostname.cloned().or_else(|| file.hostname.clone()),
        })
    }
}

/// `iacwatch scan`, validated.
#[derive(Clone, Debug)]
pub struct ScanConfig {
    pub common: Common,
    pub format: Format,
    pub status: Vec<Status>,
    pub fail_on: Vec<Status>,
    pub now: Option<DateTime<Utc>>,
}

impl ScanConfig {
    pub fn new(args: &ScanArgs) -> Result<ScanConfig, ConfigError> {
        let file = FileConfig::load(args.common.config.as_deref())?;
        let common = Common::new(&args.common, &file, args.hostname.as_ref())?;
        let statuses = |key: &'static str, text: Option<&String>| match text {
            Some(text) => parse_status_list(text).map_err(|e| invalid(key, e.to_string())),
            None => Ok(Vec::new()),
        };
        let now = match &args.now {
            Some(text) => Some(
                DateTime::parse_from_rfc3339(text)
                    .map_err(|_| invalid("now", format!("'{text}' is not an RFC 3339 time")))?
                    .with_timezone(&Utc),
            ),
            None => None,
        };
        Ok(ScanConfig {
            common,
            format: args.format.or(file.format).unwrap_or(Format::Table),
            status: statuses("status", args.status.as_ref().or(file.status.as_ref()))?,
            fail_on: statuses("fail_on", args.fail_on.as_ref().or(file.fail_on.as_ref()))?,
            now,
        })
    }
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `iacwatch serve`, validated.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub common: Common,
    pub listen: String,
    pub timing: crate::source::local::watch::Timing,
    pub per_workspace_metrics: bool,
    pub log_format: LogFormat,
    pub log_level: String,
    pub limits: crate::http::Limits,
    /// The exporter-toolkit web configuration (TLS, basic auth, headers), if any.
    pub web_config_file: Option<std::path::PathBuf>,
}

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9814";

impl ServeConfig {
    pub fn new(args: &ServeArgs) -> Result<ServeConfig, ConfigError> {
        let file = FileConfig::load(args.common.config.as_deref())?;
        let common = Common::new(&args.common, &file, args.hostname.as_ref())?;
        let mut timing = crate::source::local::watch::Timing::default();
        let pick = |flag: &Option<String>, key: &Option<String>| flag.clone().or_else(|| key.clone());
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
        if let Some(text) = &file.request_timeout {
            limits.request_timeout = duration("request_timeout", text)?;
        }
        let log_format = match pick(&args.log_format, &file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(invalid("log_format", format!("'{other}' is neither text nor json"))),
        };
        let listen = pick(&args.listen, &file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        if listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "listen",
                format!("'{listen}' is not an address like 0.0.0.0:9814 or [::1]:9814"),
            ));
        }
        Ok(ServeConfig {
            common,
            listen,
            timing,
            per_workspace_metrics: args
                .per_workspace_metrics
                .or(file.per_workspace_metrics)
                .unwrap_or(true),
            log_format,
            log_level: pick(&args.log_level, &file.log_level).unwrap_or_else(|| "info".to_owned()),
            limits,
            web_config_file: args.web_config_file.clone().or_else(|| file.web_config_file.clone()),
        })
    }
}
