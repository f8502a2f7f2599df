//! The command line, as clap parses it. `config` turns it into one validated configuration.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "iacwatch",
    version,
    about = "Tells, for every Terraform/OpenTofu workspace, which of seven statuses it is in and why."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// One pass over the roots, then exit.
    Scan(ScanArgs),
    /// The daemon: scan, then watch, and serve /metrics, the JSON API and the overview page.
    Serve(ServeArgs),
    /// The pipeline wrapper: mark a workspace as being provisioned/destroyed while CMD runs.
    Run(crate::command::run::RunArgs),
}

/// Options every command that reads workspaces shares.
#[derive(Args, Debug, Clone, Default)]
pub struct CommonArgs {
    /// A TOML configuration file; flags and IACWATCH_* variables override its keys.
    #[arg(long, env = "IACWATCH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A lock older than this is stale (e.g. 90m, 2h).
    #[arg(long, env = "IACWATCH_STALE_LOCK_AFTER", value_name = "DURATION")]
    pub stale_lock_after: Option<String>,
    /// How long an unreadable state is presumed to be mid-write (e.g. 2s).
    #[arg(long, env = "IACWATCH_SETTLE_TIME", value_name = "DURATION")]
    pub settle_time: Option<String>,
    /// Prune paths (relative to a root) matching this glob; repeatable.
    #[arg(
        long = "exclude",
        env = "IACWATCH_EXCLUDE",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    pub exclude: Vec<String>,
    /// Follow symbolic links while walking (loops are reported and skipped).
    #[arg(long, env = "IACWATCH_FOLLOW_SYMLINKS", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub follow_symlinks: Option<bool>,
    /// Directories to scan.
    #[arg(env = "IACWATCH_ROOTS", value_delimiter = ',', value_name = "ROOT")]
    pub roots: Vec<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Table,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct ScanArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Output format (default: table).
    #[arg(long, env = "IACWATCH_FORMAT", value_enum)]
    pub format: Option<Format>,
    /// Keep only workspaces in these statuses (comma separated).
    #[arg(long, env = "IACWATCH_STATUS", value_name = "LIST")]
    pub status: Option<String>,
    /// Exit 2 when any workspace is in one of these statuses (e.g. failed,drifted).
    #[arg(long, env = "IACWATCH_FAIL_ON", value_name = "LIST")]
    pub fail_on: Option<String>,
    /// Evaluate as of this time (RFC 3339) instead of now; for reproducible output.
    #[arg(long, env = "IACWATCH_NOW", value_name = "TIME")]
    pub now: Option<String>,
    /// The host name pipeline locks are compared with (default: this machine's).
    #[arg(long, env = "IACWATCH_HOSTNAME", value_name = "NAME")]
    pub hostname: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address to listen on (default 0.0.0.0:9814).
    #[arg(long, env = "IACWATCH_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Poll for changes instead of relying on file events (NFS, some container mounts); optional
    /// interval (default 5s).
    #[arg(long, env = "IACWATCH_POLL", num_args = 0..=1, require_equals = true, default_missing_value = "5s", value_name = "INTERVAL")]
    pub poll: Option<String>,
    /// Full rescan as a safety net (default 5m; 0 turns it off).
    #[arg(long, env = "IACWATCH_RESYNC_INTERVAL", value_name = "DURATION")]
    pub resync_interval: Option<String>,
    /// How often held locks are re-checked for a process that died (default 2s).
    #[arg(long, env = "IACWATCH_LOCK_CHECK_INTERVAL", value_name = "DURATION")]
    pub lock_check_interval: Option<String>,
    /// Quiet time after a change before its directory is read again (default 200ms).
    #[arg(long, env = "IACWATCH_QUIET_TIME", value_name = "DURATION")]
    pub quiet_time: Option<String>,
    /// Export the per-workspace series (default true; false keeps only the counts, for very large fleets).
    #[arg(long, env = "IACWATCH_PER_WORKSPACE_METRICS", value_name = "BOOL")]
    pub per_workspace_metrics: Option<bool>,
    /// Log format: text or json (default text).
    #[arg(long, env = "IACWATCH_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log level or filter (default info).
    #[arg(long, env = "IACWATCH_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// The host name pipeline locks are compared with (default: this machine's).
    #[arg(long, env = "IACWATCH_HOSTNAME", value_name = "NAME")]
    pub hostname: Option<String>,
    /// Time a client has to send a request's headers before the connection is closed (default 10s).
    #[arg(long, env = "IACWATCH_HEADER_TIMEOUT", value_name = "DURATION")]
    pub header_timeout: Option<String>,
    /// A Prometheus exporter-toolkit web configuration (YAML): TLS, basic auth, response headers.
    #[arg(long = "web.config.file", env = "IACWATCH_WEB_CONFIG_FILE", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
}
