//! `serve`'s history options: `--history`, `--data-dir`, `--history-retention`.

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, FileConfig, duration, invalid, pick};
use crate::cli::ServeArgs;

/// Whether and where the status history is kept. The data directory itself is chosen at
/// start-up (`history::data_dir`), since it reads the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryConfig {
    /// `--history` (default true).
    pub enabled: bool,
    /// `--data-dir`, if given.
    pub data_dir: Option<PathBuf>,
    /// `--history-retention` (default `history::DEFAULT_RETENTION`), more than 0.
    pub retention: Duration,
}

impl HistoryConfig {
    pub fn new(args: &ServeArgs, file: &FileConfig) -> Result<HistoryConfig, ConfigError> {
        let retention = match pick(&args.history_retention, &file.history_retention) {
            Some(text) => duration("history_retention", &text)?,
            None => crate::history::DEFAULT_RETENTION,
        };
        if retention.is_zero() {
            return Err(invalid("history_retention", "the retention must be more than 0"));
        }
        Ok(HistoryConfig {
            enabled: args.history.or(file.history).unwrap_or(true),
            data_dir: pick(&args.data_dir, &file.data_dir),
            retention,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{self, Cli, Command};

    fn config(line: &[&str], toml: &str) -> Result<HistoryConfig, ConfigError> {
        let file: FileConfig = toml::from_str(toml).unwrap();
        let line = ["iacwatch", "serve"].iter().chain(line).chain(&["/srv/tf"]);
        let Ok(Cli {
            command: Command::Serve(args),
        }) = cli::parse(line)
        else {
            panic!("not parsed");
        };
        HistoryConfig::new(&args, &file)
    }

    #[test]
    fn history_options_from_flags_and_the_file() {
        let defaults = config(&[], "").unwrap();
        assert_eq!(
            defaults,
            HistoryConfig {
                enabled: true,
                data_dir: None,
                retention: crate::history::DEFAULT_RETENTION
            }
        );
        let file = "history = false\ndata_dir = \"/var/lib/iacwatch\"\nhistory_retention = \"30d\"";
        let from_file = config(&[], file).unwrap();
        assert!(!from_file.enabled);
        assert_eq!(from_file.data_dir, Some(PathBuf::from("/var/lib/iacwatch")));
        assert_eq!(from_file.retention, Duration::from_secs(30 * 86400));
        let flags = config(
            &["--history", "true", "--data-dir", "/d", "--history-retention", "1h"],
            file,
        )
        .unwrap();
        assert!(flags.enabled);
        assert_eq!(flags.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(flags.retention, Duration::from_secs(3600));
        for bad in ["0s", "soon"] {
            let e = config(&["--history-retention", bad], "").unwrap_err();
            assert!(e.to_string().starts_with("history_retention:"), "{e}");
        }
    }
}
