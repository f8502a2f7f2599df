//! `iacwatch run`'s command line checked and resolved into a `RunPlan`: the operation, the
//! workspace directory and name, CMD found on PATH, the CI run's details.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use super::duration;
use crate::artifact::marker::Operation;
use crate::classify::Policy;
use crate::cli::RunArgs;
use crate::wrapper::RunPlan;
use crate::wrapper::target::{Unrunnable, find_program, workspace_name};
use crate::wrapper::{ci, publish};

/// Why the command line cannot be run. Each is one line.
#[derive(Debug, thiserror::Error)]
pub enum RunArgsError {
    #[error("unknown operation {0:?}: expected provision, destroy, plan or drift_check")]
    Operation(String),
    #[error(
        "no command to run: give it after --, e.g. `iacwatch run --operation provision -- terraform apply -auto-approve`"
    )]
    NoCommand,
    #[error("{0}: not a directory")]
    Dir(PathBuf),
    #[error("{0}")]
    Invalid(String),
    #[error("{program}: command not found")]
    NotFound { program: String },
    #[error("{program}: not executable")]
    NotExecutable { program: String },
}

impl RunArgsError {
    /// The exit code: a shell's 127/126 for a command that cannot start, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunArgsError::NotFound { .. } => Unrunnable::NotFound.exit_code(),
            RunArgsError::NotExecutable { .. } => Unrunnable::NotExecutable.exit_code(),
            _ => 1,
        }
    }
}

/// Checks everything and resolves the defaults of `iacwatch run`; nothing is written before every
/// check passed. `env` reads the environment (CI variables, `TF_WORKSPACE`, `PATH`).
pub fn plan(args: &RunArgs, env: &dyn Fn(&str) -> Option<OsString>) -> Result<RunPlan, RunArgsError> {
    let text = |name: &str| env(name).and_then(|v| v.into_string().ok());
    let operation =
        Operation::parse(args.operation.trim()).ok_or_else(|| RunArgsError::Operation(args.operation.clone()))?;
    let Some(first) = args.command.first() else {
        return Err(RunArgsError::NoCommand);
    };
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::current_dir()
            .map_err(|e| RunArgsError::Invalid(format!("cannot read the current directory: {e}")))?,
    };
    let dir = dir
        .canonicalize()
        .ok()
        .filter(|d| d.is_dir())
        .ok_or_else(|| RunArgsError::Dir(dir.clone()))?;
    let workspace = workspace_name(args.workspace.as_deref(), text("TF_WORKSPACE").as_deref(), &dir)
        .map_err(RunArgsError::Invalid)?;
    let path = env("PATH");
    let program = find_program(first, &dir, path.as_deref()).map_err(|e| {
        let program = first.to_string_lossy().into_owned();
        match e {
            Unrunnable::NotFound => RunArgsError::NotFound { program },
            Unrunnable::NotExecutable => RunArgsError::NotExecutable { program },
        }
    })?;
    let state_snapshot = args.state_snapshot.unwrap_or(false);
    let terraform_bin = if state_snapshot || args.plan_json.is_some() {
        Some(terraform_bin(args.terraform_bin.as_deref(), &dir, path.as_deref())?)
    } else {
        None
    };
    let wait = args
        .wait
        .as_deref()
        .map(|w| duration("wait", w))
        .transpose()
        .map_err(|e| RunArgsError::Invalid(e.to_string()))?;
    let stale_lock_after = match &args.stale_lock_after {
        Some(text) => duration("stale_lock_after", text).map_err(|e| RunArgsError::Invalid(e.to_string()))?,
        None => Policy::default().stale_lock_after,
    };
    let lease = match &args.lease {
        Some(text) => duration("lease", text).map_err(|e| RunArgsError::Invalid(e.to_string()))?,
        None => publish::DEFAULT_LEASE,
    };
    if lease < publish::MIN_LEASE {
        return Err(RunArgsError::Invalid(format!(
            "--lease: at least {}s (the heartbeat is rewritten every third of it)",
            publish::MIN_LEASE.as_secs()
        )));
    }
    let publish = args.publish.unwrap_or(false).then_some(lease);
    let detected = ci::detect(text);
    let url = match &args.url {
        Some(url) => {
            Some(ci::safe_url(url).ok_or_else(|| RunArgsError::Invalid("--url: not an http(s) link".to_owned()))?)
        }
        None => detected.url,
    };
    Ok(RunPlan {
        operation,
        dir,
        workspace,
        run_id: args.run_id.clone().or(detected.run_id),
        pipeline: args.pipeline.clone().or(detected.pipeline),
        url,
        program,
        argv: args.command.clone(),
        wait,
        stale_lock_after,
        terraform_bin,
        state_snapshot,
        plan_json: args.plan_json.clone(),
        publish,
    })
}

/// `--terraform-bin`, else `terraform` on PATH, else `tofu`.
fn terraform_bin(flag: Option<&Path>, dir: &Path, path: Option<&OsStr>) -> Result<PathBuf, RunArgsError> {
    let candidates: Vec<&OsStr> = match flag {
        Some(flag) => vec![flag.as_os_str()],
        None => vec![OsStr::new("terraform"), OsStr::new("tofu")],
    };
    candidates
        .iter()
        .find_map(|c| find_program(c, dir, path).ok())
        .ok_or_else(|| {
            let names: Vec<_> = candidates.iter().map(|c| c.to_string_lossy()).collect();
            RunArgsError::Invalid(format!(
                "--terraform-bin: {} not found (needed by --state-snapshot/--plan-json)",
                names.join(" nor ")
            ))
        })
}
