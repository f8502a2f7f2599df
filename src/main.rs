//! The `iacwatch` binary: the command line in two steps (clap, then one validated configuration),
//! then the command.

use std::process::ExitCode;

use iacwatch::cli::{self, Stop};
use iacwatch::command::{self, Exit};
use iacwatch::config::Config;

/// The records the store keeps are allocated apart from everything else (`store::kept`).
#[global_allocator]
static ALLOCATOR: iacwatch::store::kept::Allocator = iacwatch::store::kept::Allocator;

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(Stop::Print(help)) => {
            // A closed pipe (`iacwatch --help | head -1`) is the reader's choice, not an error.
            let _ = help.print();
            return ExitCode::SUCCESS;
        }
        Err(Stop::Usage(line)) => {
            eprintln!("iacwatch: {line}");
            return ExitCode::from(1);
        }
    };
    let config = match Config::new(&cli.command) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("iacwatch: {err}");
            return ExitCode::from(err.exit_code());
        }
    };
    let result = match config {
        Config::Scan(config) => command::scan::run(&config, &mut std::io::stdout().lock()),
        Config::Serve(config) => command::serve::main(*config),
        Config::Run(plan) => command::run::main(&plan),
        Config::Completions(shell) => command::generate::completions(shell, &mut std::io::stdout().lock()),
        Config::Man => command::generate::man(&mut std::io::stdout().lock()),
    };
    match result {
        Ok(Exit::Ok) => ExitCode::SUCCESS,
        Ok(Exit::GateTripped) => ExitCode::from(2),
        Ok(Exit::Code(code)) => ExitCode::from(code),
        Err(err) if command::is_closed_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("iacwatch: {err:#}");
            ExitCode::from(1)
        }
    }
}
