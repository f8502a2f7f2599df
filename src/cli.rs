//! The command line, as clap parses it, and nothing more: `config` turns it into one validated
//! configuration. A usage error becomes one line and exit code 1 (2 is the `--fail-on` gate's).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "iacwatch",
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
    Serve(Box<ServeArgs>),
    /// The pipeline wrapper: mark a workspace as being provisioned/destroyed while CMD runs.
    Run(RunArgs),
    /// Prints a shell completion script for SHELL on stdout.
    #[command(hide = true)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Prints the man page (roff) on stdout.
    #[command(hide = true)]
    Man,
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
    /// The host name pipeline locks are compared with (default: this machine's).
    #[arg(long, env = "IACWATCH_HOSTNAME", value_name = "NAME")]
    pub hostname: Option<String>,
    /// The S3 endpoint of the s3:// roots (e.g. http://127.0.0.1:8333); default: AWS's.
    #[arg(long, env = "IACWATCH_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Path-style S3 requests (ENDPOINT/BUCKET/KEY), as MinIO and SeaweedFS need.
    #[arg(long, env = "IACWATCH_S3_FORCE_PATH_STYLE", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub s3_force_path_style: Option<bool>,
    /// Terraform's DynamoDB lock table of the s3:// roots.
    #[arg(long, env = "IACWATCH_DYNAMODB_TABLE", value_name = "TABLE")]
    pub dynamodb_table: Option<String>,
    /// The DynamoDB endpoint of that table; default: AWS's for the region.
    #[arg(long, env = "IACWATCH_DYNAMODB_ENDPOINT", value_name = "URL")]
    pub dynamodb_endpoint: Option<String>,
    /// How often serve polls each s3:// root (default 30s).
    #[arg(long, env = "IACWATCH_REMOTE_POLL_INTERVAL", value_name = "DURATION")]
    pub remote_poll_interval: Option<String>,
    /// Take only shard I of N (0-based, 0 <= I < N) of the workspaces, by a stable hash of
    /// root, path and workspace: N instances with 0/N .. N-1/N split the roots between them.
    #[arg(long, env = "IACWATCH_SHARD", value_name = "I/N")]
    pub shard: Option<String>,
    /// Directories and s3://BUCKET[/PREFIX] URLs to scan (the `root` label stays as given).
    #[arg(env = "IACWATCH_ROOTS", value_delimiter = ',', value_name = "ROOT")]
    pub roots: Vec<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
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
    /// Keep only workspaces in these statuses (comma separated); the counts still cover all.
    #[arg(long, env = "IACWATCH_STATUS", value_name = "LIST")]
    pub status: Option<String>,
    /// Exit 2 when any workspace is in one of these statuses (e.g. failed,drifted).
    #[arg(long, env = "IACWATCH_FAIL_ON", value_name = "LIST")]
    pub fail_on: Option<String>,
    /// Evaluate as of this time (RFC 3339) instead of now; for reproducible output.
    #[arg(long, env = "IACWATCH_NOW", value_name = "TIME")]
    pub now: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address to listen on, repeatable: :9814, localhost:9814, host:port, [::1]:9814 (default
    /// 0.0.0.0:9814).
    #[arg(
        long,
        visible_alias = "web.listen-address",
        env = "IACWATCH_LISTEN",
        value_delimiter = ',',
        value_name = "ADDR"
    )]
    pub listen: Vec<String>,
    /// The path of the Prometheus metrics, below the route prefix (default /metrics).
    #[arg(long = "web.telemetry-path", env = "IACWATCH_TELEMETRY_PATH", value_name = "PATH")]
    pub telemetry_path: Option<String>,
    /// Prefix of every route, e.g. /iacwatch behind a reverse proxy (default: the path of
    /// --web.external-url, else /).
    #[arg(long = "web.route-prefix", env = "IACWATCH_ROUTE_PREFIX", value_name = "PATH")]
    pub route_prefix: Option<String>,
    /// The URL users reach iacwatch under (through a reverse proxy), for links back to it.
    #[arg(long = "web.external-url", env = "IACWATCH_EXTERNAL_URL", value_name = "URL")]
    pub external_url: Option<String>,
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
    /// Log format: logfmt or json (default logfmt; text is an alias of logfmt).
    #[arg(
        long,
        visible_alias = "log.format",
        env = "IACWATCH_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    pub log_format: Option<String>,
    /// Log level: trace, debug, info, warn or error (default info); filters go in RUST_LOG.
    #[arg(long, visible_alias = "log.level", env = "IACWATCH_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Time a client has to send a request's headers before the connection is closed (default 10s).
    #[arg(long, env = "IACWATCH_HEADER_TIMEOUT", value_name = "DURATION")]
    pub header_timeout: Option<String>,
    /// Time to answer a request before it is cut off with 408 (default 30s).
    #[arg(long, env = "IACWATCH_REQUEST_TIMEOUT", value_name = "DURATION")]
    pub request_timeout: Option<String>,
    /// A Prometheus exporter-toolkit web configuration (YAML): TLS, basic auth, response headers.
    #[arg(long = "web.config.file", env = "IACWATCH_WEB_CONFIG_FILE", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
    /// Where the status history is kept (default: $STATE_DIRECTORY, else $XDG_STATE_HOME/iacwatch,
    /// else ~/.local/state/iacwatch).
    #[arg(long, env = "IACWATCH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the status history (default true; false writes nothing anywhere).
    #[arg(long, env = "IACWATCH_HISTORY", value_name = "BOOL")]
    pub history: Option<bool>,
    /// How long transitions are kept in the history (default 90d).
    #[arg(long, env = "IACWATCH_HISTORY_RETENTION", value_name = "DURATION")]
    pub history_retention: Option<String>,
}

/// `iacwatch run`: every flag has an `IACWATCH_*` variable; a pipeline sets them in its job.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// provision, destroy, plan or drift_check.
    #[arg(long, env = "IACWATCH_OPERATION", value_name = "OPERATION")]
    pub operation: String,
    /// The CLI workspace the markers are for (default: TF_WORKSPACE, else the one selected in
    /// DIR/.terraform/environment, else default).
    #[arg(long, env = "IACWATCH_WORKSPACE", value_name = "NAME")]
    pub workspace: Option<String>,
    /// The workspace directory; CMD runs there (default: the current directory).
    #[arg(long, env = "IACWATCH_DIR", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The CI run's id (default: from the CI system's variables).
    #[arg(long, env = "IACWATCH_RUN_ID", value_name = "ID")]
    pub run_id: Option<String>,
    /// The pipeline's name (default: from the CI system's variables).
    #[arg(long, env = "IACWATCH_PIPELINE", value_name = "NAME")]
    pub pipeline: Option<String>,
    /// A link to the run (default: from the CI system's variables); credentials are stripped.
    #[arg(long, env = "IACWATCH_URL", value_name = "URL")]
    pub url: Option<String>,
    /// After CMD, `terraform state pull` into .iacwatch/<ws>/state.json (for remote backends).
    #[arg(long, env = "IACWATCH_STATE_SNAPSHOT", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub state_snapshot: Option<bool>,
    /// After CMD, `terraform show -json PLANFILE` into .iacwatch/<ws>/plan.json.
    #[arg(long, env = "IACWATCH_PLAN_JSON", value_name = "PLANFILE")]
    pub plan_json: Option<PathBuf>,
    /// terraform or tofu, for the snapshots (default: terraform on PATH, else tofu).
    #[arg(long, env = "IACWATCH_TERRAFORM_BIN", value_name = "BIN")]
    pub terraform_bin: Option<PathBuf>,
    /// Wait for another pipeline's lock instead of failing; optional limit (default 30m).
    #[arg(long, env = "IACWATCH_WAIT", num_args = 0..=1, require_equals = true, default_missing_value = "30m", value_name = "DURATION")]
    pub wait: Option<String>,
    /// Another pipeline's lock older than this is abandoned and taken over (default 2h).
    #[arg(long, env = "IACWATCH_STALE_LOCK_AFTER", value_name = "DURATION")]
    pub stale_lock_after: Option<String>,
    /// Also write the markers (and the plan) into the bucket beside the workspace's state object,
    /// found from DIR/.terraform/terraform.tfstate (an `s3` backend); for ephemeral runners.
    #[arg(long, env = "IACWATCH_PUBLISH", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub publish: Option<bool>,
    /// The lease of a published lock: its heartbeat is rewritten every third of it, and a reader
    /// calls it dead once the heartbeat is older (default 60s, at least 3s).
    #[arg(long, env = "IACWATCH_LEASE", value_name = "DURATION")]
    pub lease: Option<String>,
    /// The command to run, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// The whole command line's definition, with the long `--version` of `build_info`.
pub fn command() -> clap::Command {
    Cli::command().version(crate::build_info::long_version())
}

/// Why parsing stopped before a command.
#[derive(Debug)]
pub enum Stop {
    /// `--help` or `--version`: print it on stdout, exit 0.
    Print(clap::Error),
    /// A usage error or a bad value: this one line, exit 1.
    Usage(String),
}

/// Parses `args` (the program's name first).
pub fn parse<I, T>(args: I) -> Result<Cli, Stop>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command().try_get_matches_from(args).map_err(stop)?;
    Cli::from_arg_matches(&matches).map_err(stop)
}

fn stop(error: clap::Error) -> Stop {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Stop::Print(error),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            Stop::Usage("a command is needed: scan, serve or run (see iacwatch --help)".to_owned())
        }
        _ => Stop::Usage(one_line(&error.to_string())),
    }
}

/// clap's message without its usage block, on one line: the error, then its tip or the values
/// it would have taken.
fn one_line(rendered: &str) -> String {
    let parts: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect();
    format!("{} (see --help)", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn a_usage_error_is_one_line_with_its_tip() {
        let Err(Stop::Usage(line)) = parse(["iacwatch", "scan", "--formt", "json", "/r"]) else {
            panic!("not a usage error");
        };
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("unexpected argument '--formt'"), "{line}");
        assert!(line.contains("--format"), "{line}");
        let Err(Stop::Usage(line)) = parse(["iacwatch", "scan", "--format", "xml", "/r"]) else {
            panic!("not a usage error");
        };
        assert!(line.contains("'xml'") && line.contains("table, json"), "{line}");
    }

    #[test]
    fn help_and_version_are_printed() {
        assert!(matches!(parse(["iacwatch", "--help"]), Err(Stop::Print(_))));
        let Err(Stop::Print(version)) = parse(["iacwatch", "--version"]) else {
            panic!("--version did not print");
        };
        let text = version.to_string();
        assert!(text.contains(crate::build_info::REVISION) && text.contains(crate::build_info::TARGET));
    }

    #[test]
    fn exporter_style_flags_reach_the_same_fields() {
        let Ok(Cli {
            command: Command::Serve(args),
        }) = parse([
            "iacwatch",
            "serve",
            "--web.listen-address",
            ":9814",
            "--listen",
            "[::1]:9815",
            "--log.level",
            "debug",
            "--log.format=json",
            "/r",
        ])
        else {
            panic!("not parsed");
        };
        assert_eq!(args.listen, [":9814", "[::1]:9815"]);
        assert_eq!(args.log_level.as_deref(), Some("debug"));
        assert_eq!(args.log_format.as_deref(), Some("json"));
    }
}
