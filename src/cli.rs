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
    #[arg(long, env = "IACWATCH_FOLLOW_SYMLINKS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
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
