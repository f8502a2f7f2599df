//! The `iacwatch` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use iacwatch::cli::{Cli, Command};
use iacwatch::command::{self, Exit};
use iacwatch::config::ScanConfig;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scan(args) => ScanConfig::new(&args)
            .map_err(anyhow::Error::from)
            .and_then(|config| command::scan::run(&config, &mut std::io::stdout().lock())),
        Command::Serve(args) => command::serve::main(&args),
        Command::Run(args) => command::run::main(&args),
    };
    match result {
        Ok(Exit::Ok) => ExitCode::SUCCESS,
        Ok(Exit::GateTripped) => ExitCode::from(2),
        Ok(Exit::Code(code)) => ExitCode::from(code),
        Err(err) => {
            eprintln!("iacwatch: {err:#}");
            ExitCode::from(1)
        }
    }
}
