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
    // `[remote."s3://..."]` tables are per root: file only.
    let keys: Vec<String> = file_keys().into_iter().filter(|k| k != "remote").collect();
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

#[test]
fn s3_roots_mix_with_directories_and_take_their_table_the_flags_and_the_top_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("iacwatch.toml");
    std::fs::write(
        &file,
        r#"
roots = ["/srv/tf", "s3://acme-tfstate/prod/", "s3://other-bucket"]
s3_endpoint = "http://127.0.0.1:8333"
dynamodb_table = "top-locks"

[remote."s3://acme-tfstate/prod"]
endpoint = "https://s3.eu-west-1.amazonaws.com"
region = "eu-west-1"
workspace_key_prefix = "workspaces"
dynamodb_table = "terraform-locks"
poll_interval = "10s"
"#,
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let from_file = serve_config(&["--config", config]).unwrap();
    assert_eq!(from_file.common.roots.len(), 1, "the directory only");
    assert_eq!(
        from_file.common.labels(),
        ["/srv/tf", "s3://acme-tfstate/prod", "s3://other-bucket"]
    );
    let [prod, other] = &from_file.common.remote[..] else {
        panic!("{:?}", from_file.common.remote);
    };
    assert_eq!(
        prod.settings.endpoint.as_deref(),
        Some("https://s3.eu-west-1.amazonaws.com")
    );
    assert_eq!(prod.settings.region.as_deref(), Some("eu-west-1"));
    assert_eq!(prod.settings.workspace_prefix(), "workspaces");
    assert_eq!(prod.settings.dynamodb_table.as_deref(), Some("terraform-locks"));
    assert_eq!(prod.settings.poll_interval, Duration::from_secs(10));
    assert_eq!(other.settings.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
    assert_eq!(other.settings.dynamodb_table.as_deref(), Some("top-locks"));
    assert_eq!(other.settings.poll_interval, Duration::from_secs(30));
    assert!(!other.settings.force_path_style);

    let flags = serve_config(&[
        "--config",
        config,
        "--s3-endpoint",
        "http://localhost:9000",
        "--s3-force-path-style",
        "--remote-poll-interval",
        "2s",
    ])
    .unwrap();
    for root in &flags.common.remote {
        assert_eq!(root.settings.endpoint.as_deref(), Some("http://localhost:9000"));
        assert!(root.settings.force_path_style);
        assert_eq!(root.settings.poll_interval, Duration::from_secs(2));
    }

    let only_s3 = serve_config(&["s3://bucket-only"]).unwrap();
    assert!(only_s3.common.roots.is_empty() && only_s3.common.remote.len() == 1);
    assert_eq!(only_s3.common.shard, None);
    let sharded = serve_config(&["s3://bucket", "--shard", "1/3"]).unwrap();
    assert_eq!(sharded.common.shard, Some(crate::shard::Shard { index: 1, count: 3 }));
    for (args, key) in [
        (&["s3://Bad_Bucket"][..], "roots"),
        (&["s3://bucket", "--remote-poll-interval", "0s"], "remote_poll_interval"),
        (&["s3://bucket", "--s3-endpoint", "localhost:9000"], "s3_endpoint"),
        (&["s3://bucket", "--shard", "2/2"], "shard"),
        (&["s3://bucket", "--shard", "1-2"], "shard"),
    ] {
        let err = serve_config(args).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{key}: ")), "{args:?}: {err}");
    }
    std::fs::write(
        &file,
        "roots = [\"s3://bucket\"]\n[remote.\"s3://elsewhere\"]\nregion = \"x\"\n",
    )
    .unwrap();
    let err = serve_config(&["--config", config]).unwrap_err().to_string();
    assert!(err.contains("'s3://elsewhere' is not one of the roots"), "{err}");
    std::fs::write(
        &file,
        "roots = [\"s3://bucket\"]\n[remote.\"s3://bucket\"]\nsecret_key = \"x\"\n",
    )
    .unwrap();
    let err = serve_config(&["--config", config]).unwrap_err().to_string();
    assert!(err.contains("unknown field") && !err.contains("\"x\""), "{err}");
}
