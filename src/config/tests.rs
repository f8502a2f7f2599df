//! The configuration's rules: every key is a flag and a variable, precedence, bad values.

use std::ffi::OsStr;

use super::*;
use crate::cli::{self, Cli};

/// Every key of the TOML file, read from `FileConfig` itself.
fn file_keys() -> Vec<String> {
    match serde_json::to_value(FileConfig::default()) {
        Ok(serde_json::Value::Object(keys)) => keys.keys().cloned().collect(),
        other => panic!("FileConfig is not a map: {other:?}"),
    }
}

fn subcommand(command: &clap::Command, name: &str) -> Vec<clap::Arg> {
    let sub = command
        .find_subcommand(name)
        .unwrap_or_else(|| panic!("no subcommand {name}"));
    sub.get_arguments()
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .cloned()
        .collect()
}

#[test]
fn every_key_is_a_flag_and_a_variable_and_every_flag_a_key() {
    let mut command = cli::command();
    command.build();
    let args: Vec<clap::Arg> = ["scan", "serve"]
        .iter()
        .flat_map(|name| subcommand(&command, name))
        .collect();
    let keys = file_keys();
    assert!(keys.len() > 20, "{keys:?}");
    for key in &keys {
        let flags: Vec<&clap::Arg> = args.iter().filter(|a| a.get_id() == key.as_str()).collect();
        assert!(!flags.is_empty(), "the config key {key} has no flag");
        let variable = format!("IACWATCH_{}", key.to_uppercase());
        for flag in flags {
            assert_eq!(flag.get_env(), Some(OsStr::new(&variable)), "{key}");
            assert!(flag.get_long().is_some() || flag.is_positional(), "{key}");
        }
    }
    for arg in &args {
        let id = arg.get_id().as_str();
        assert!(
            id == "config" || keys.iter().any(|k| k == id),
            "--{} has no config key",
            arg.get_long().unwrap_or(id)
        );
    }
    // `run` has no configuration file: every flag is a variable, for the pipeline's job settings.
    for arg in subcommand(&command, "run") {
        if arg.get_id() == "command" {
            continue;
        }
        let variable = format!("IACWATCH_{}", arg.get_id().as_str().to_uppercase());
        assert_eq!(arg.get_env(), Some(OsStr::new(&variable)), "run {:?}", arg.get_long());
    }
}

fn serve_config(args: &[&str]) -> Result<ServeConfig, ConfigError> {
    let line = ["iacwatch", "serve"].iter().chain(args);
    let Ok(Cli {
        command: Command::Serve(args),
    }) = cli::parse(line)
    else {
        panic!("not parsed: {args:?}");
    };
    ServeConfig::new(&args)
}

#[test]
fn the_file_gives_every_serve_key_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("iacwatch.toml");
    std::fs::write(
        &file,
        r#"
roots = ["/srv/tf"]
listen = [":9814", "[::1]:9815"]
request_timeout = "7s"
header_timeout = "3s"
external_url = "https://ops.example.com/iacwatch/"
telemetry_path = "/probe"
log_level = "warn"
log_format = "json"
"#,
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let from_file = serve_config(&["--config", config]).unwrap();
    let listen: Vec<String> = from_file.listen.iter().map(ToString::to_string).collect();
    assert_eq!(listen, ["0.0.0.0:9814", "[::1]:9815"]);
    assert_eq!(from_file.limits.request_timeout, Duration::from_secs(7));
    assert_eq!(from_file.limits.header_timeout, Duration::from_secs(3));
    assert_eq!(from_file.route_prefix, "/iacwatch");
    assert_eq!(
        from_file.external_url.as_deref(),
        Some("https://ops.example.com/iacwatch")
    );
    assert_eq!(from_file.telemetry_path, "/probe");
    assert_eq!(from_file.log_level, tracing::Level::WARN);
    assert_eq!(from_file.log_format, crate::logging::LogFormat::Json);
    assert_eq!(from_file.common.roots[0].label, "/srv/tf");

    let flags = serve_config(&[
        "--config",
        config,
        "--listen",
        "localhost:1",
        "--request-timeout",
        "1s",
        "--web.route-prefix",
        "/",
        "--log.level",
        "debug",
    ])
    .unwrap();
    assert_eq!(flags.listen, [ListenAddress::parse("localhost:1").unwrap()]);
    assert_eq!(flags.limits.request_timeout, Duration::from_secs(1));
    assert_eq!(flags.route_prefix, "/");
    assert_eq!(flags.log_level, tracing::Level::DEBUG);

    let defaults = serve_config(&["/srv/tf"]).unwrap();
    assert_eq!(defaults.listen, [ListenAddress::parse(DEFAULT_LISTEN).unwrap()]);
    assert_eq!(
        (defaults.telemetry_path.as_str(), defaults.route_prefix.as_str()),
        ("/metrics", "/")
    );
    assert_eq!(defaults.external_url, None);
    assert_eq!(defaults.log_format, crate::logging::LogFormat::Logfmt);
}

#[test]
fn a_bad_serve_value_names_its_key() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["--log-level", "warning"],
            "log_level: 'warning' is not one of trace, debug, info, warn, error",
        ),
        (&["--log.level", "iacwatch=debug"], "RUST_LOG"),
        (&["--log.format", "text"], ""),
        (&["--request-timeout", "soon"], "request_timeout"),
        (&["--web.listen-address", "nowhere"], "listen"),
        (&["--web.telemetry-path", "metrics"], "telemetry_path"),
    ];
    for (args, needle) in cases {
        let line: Vec<&str> = args.iter().copied().chain(["/srv/tf"]).collect();
        match serve_config(&line) {
            Ok(_) => assert!(needle.is_empty(), "{args:?} was accepted"),
            Err(e) => assert!(!needle.is_empty() && e.to_string().contains(needle), "{args:?}: {e}"),
        }
    }
}

#[test]
fn roots_are_resolved_and_keep_their_label() {
    let Ok(Cli {
        command: Command::Scan(args),
    }) = cli::parse(["iacwatch", "scan", "."])
    else {
        panic!("not parsed");
    };
    let config = ScanConfig::new(&args).unwrap();
    let root = &config.common.roots[0];
    assert_eq!(root.label, ".");
    assert_eq!(root.path, std::env::current_dir().unwrap().canonicalize().unwrap());
}

#[test]
fn listen_is_one_address_or_a_list_in_the_file() {
    let one: FileConfig = toml::from_str(r#"listen = "0.0.0.0:9814""#).unwrap();
    assert_eq!(
        one.listen.map(OneOrMany::into_vec),
        Some(vec!["0.0.0.0:9814".to_owned()])
    );
    let many: FileConfig = toml::from_str(r#"listen = [":9814", "[::1]:9814"]"#).unwrap();
    assert_eq!(many.listen.map(OneOrMany::into_vec).map(|l| l.len()), Some(2));
    let typo = toml::from_str::<FileConfig>(r#"request_timeot = "1s""#).unwrap_err();
    assert!(typo.message().contains("request_timeot"), "{typo}");
}
