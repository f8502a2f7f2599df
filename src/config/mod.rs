//! One validated configuration from flags, `IACWATCH_*` variables and a TOML file, in that order of
//! precedence. A bad value is a one-line error naming the key. `main` takes the command line in two
//! steps: `cli::parse`, then `Config::new`, then the command.

mod history;
mod remote;
mod roots;
pub mod run;
mod serve;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use globset::{Glob, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::classify::Policy;
pub use crate::cli::Format;
use crate::cli::{Command, CommonArgs, ScanArgs};
use crate::model::{Status, parse_status_list};
use crate::source::local::Root;
use crate::source::local::discover::DiscoverOptions;
use crate::wrapper::RunPlan;

pub use history::HistoryConfig;
pub use run::RunArgsError;
pub use serve::{DEFAULT_LISTEN, ListenAddress, ServeConfig};

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Run(#[from] RunArgsError),
}

impl ConfigError {
    /// The process exit code: 1, or a shell's 127/126 when `run`'s CMD cannot start.
    pub fn exit_code(&self) -> u8 {
        match self {
            ConfigError::Run(e) => e.exit_code(),
            _ => 1,
        }
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// One key's value, or the list form of it: `listen = ":9814"` and `listen = [":9814", ...]`.
#[derive(Deserialize, Serialize, Debug, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// The TOML file. Every key is optional; unknown keys are errors (a typo is not silently ignored).
/// Each key is also a flag and an `IACWATCH_*` variable of `scan` or `serve` (a test holds it).
#[derive(Deserialize, Serialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct FileConfig {
    pub roots: Option<Vec<String>>,
    pub stale_lock_after: Option<String>,
    pub settle_time: Option<String>,
    pub exclude: Option<Vec<String>>,
    pub follow_symlinks: Option<bool>,
    pub hostname: Option<String>,
    pub format: Option<Format>,
    pub status: Option<String>,
    pub fail_on: Option<String>,
    pub now: Option<String>,
    pub listen: Option<OneOrMany>,
    pub telemetry_path: Option<String>,
    pub route_prefix: Option<String>,
    pub external_url: Option<String>,
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
    pub data_dir: Option<std::path::PathBuf>,
    pub history: Option<bool>,
    pub history_retention: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_force_path_style: Option<bool>,
    pub dynamodb_table: Option<String>,
    pub dynamodb_endpoint: Option<String>,
    pub remote_poll_interval: Option<String>,
    pub shard: Option<String>,
    /// `[remote."s3://..."]`: the settings of one S3 root (file only: no flag, no variable).
    pub remote: Option<std::collections::BTreeMap<String, remote::RemoteTable>>,
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

/// The flag's value, else the file's.
fn pick<T: Clone>(flag: &Option<T>, key: &Option<T>) -> Option<T> {
    flag.clone().or_else(|| key.clone())
}

/// A command, validated.
#[derive(Debug)]
pub enum Config {
    Scan(Box<ScanConfig>),
    Serve(Box<ServeConfig>),
    Run(Box<RunPlan>),
    Completions(clap_complete::Shell),
    Man,
}

impl Config {
    /// Validates a parsed command line (`run` reads the process's environment for its defaults).
    pub fn new(command: &Command) -> Result<Config, ConfigError> {
        Ok(match command {
            Command::Scan(args) => Config::Scan(Box::new(ScanConfig::new(args)?)),
            Command::Serve(args) => Config::Serve(Box::new(ServeConfig::new(args)?)),
            Command::Run(args) => Config::Run(Box::new(run::plan(args, &|name| std::env::var_os(name))?)),
            Command::Completions { shell } => Config::Completions(*shell),
            Command::Man => Config::Man,
        })
    }
}

/// What reading and classifying need, shared by `scan` and `serve`.
#[derive(Clone, Debug)]
pub struct Common {
    /// The directory roots, each resolved once: an absolute path with symbolic links resolved,
    /// labelled as given.
    pub roots: Vec<Root>,
    /// The `s3://` roots, with their settings.
    pub remote: Vec<crate::source::s3::RemoteRoot>,
    /// How often `serve` polls the buckets of directories whose backend is S3.
    pub backed_poll_interval: Duration,
    pub policy: Policy,
    pub discover: DiscoverOptions,
    pub hostname: Option<String>,
    /// `--shard I/N`: only the workspaces of this shard are read into the results.
    pub shard: Option<crate::shard::Shard>,
}

impl Common {
    pub fn new(args: &CommonArgs, file: &FileConfig) -> Result<Common, ConfigError> {
        let roots = if args.roots.is_empty() {
            file.roots.clone().unwrap_or_default()
        } else {
            args.roots.clone()
        };
        if roots.is_empty() {
            return Err(invalid("roots", "no root directory given (nor an s3:// URL)"));
        }
        let remote = remote::roots(&roots, args, file)?;
        let cwd = std::env::current_dir()
            .map_err(|e| invalid("roots", format!("cannot read the current directory ({})", e.kind())))?;
        let mut policy = Policy::default();
        if let Some(text) = pick(&args.stale_lock_after, &file.stale_lock_after) {
            policy.stale_lock_after = duration("stale_lock_after", &text)?;
        }
        if let Some(text) = pick(&args.settle_time, &file.settle_time) {
            policy.settle_time = duration("settle_time", &text)?;
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
            roots: roots
                .into_iter()
                .filter(|label| !crate::source::s3::S3Root::is_s3_url(label))
                .map(|label| roots::resolve(label, &cwd))
                .collect(),
            remote,
            backed_poll_interval: remote::dirs_poll_interval(args, file)?,
            policy,
            discover: DiscoverOptions {
                follow_symlinks: args.follow_symlinks.or(file.follow_symlinks).unwrap_or(false),
                exclude,
            },
            hostname: pick(&args.hostname, &file.hostname),
            shard: match pick(&args.shard, &file.shard) {
                Some(text) => Some(crate::shard::Shard::parse(&text).map_err(|e| invalid("shard", e.to_string()))?),
                None => None,
            },
        })
    }
}

impl Common {
    /// Every root's label, directories first, then the `s3://` roots.
    pub fn labels(&self) -> Vec<String> {
        let local = self.roots.iter().map(|r| r.label.clone());
        local.chain(self.remote.iter().map(|r| r.root.url.clone())).collect()
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
        let common = Common::new(&args.common, &file)?;
        let statuses = |key: &'static str, text: Option<String>| match text {
            Some(text) => parse_status_list(&text).map_err(|e| invalid(key, e.to_string())),
            None => Ok(Vec::new()),
        };
        let now = match pick(&args.now, &file.now) {
            Some(text) => Some(
                DateTime::parse_from_rfc3339(text.trim())
                    .map_err(|_| invalid("now", format!("'{text}' is not an RFC 3339 time")))?
                    .with_timezone(&Utc),
            ),
            None => None,
        };
        Ok(ScanConfig {
            common,
            format: args.format.or(file.format).unwrap_or(Format::Table),
            status: statuses("status", pick(&args.status, &file.status))?,
            fail_on: statuses("fail_on", pick(&args.fail_on, &file.fail_on))?,
            now,
        })
    }
}

#[cfg(test)]
mod tests;
