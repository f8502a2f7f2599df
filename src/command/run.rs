//! `iacwatch run`: the pipeline wrapper. Parses and checks the command line into a `RunPlan`
//! (nothing is written before every check passed), then hands over to `wrapper::run`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::Args;

use super::Exit;
use crate::artifact::marker::Operation;
use crate::classify::Policy;
use crate::config::duration;
use crate::wrapper::ci;
use crate::wrapper::target::{Unrunnable, find_program, workspace_name};
use crate::wrapper::{self, RunPlan};

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
    /// The command to run, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

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

impl RunArgs {
    /// Checks everything and resolves the defaults. `env` reads the environment (CI variables,
    /// `TF_WORKSPACE`, `PATH`).
    pub fn plan(&self, env: &dyn Fn(&str) -> Option<OsString>) -> Result<RunPlan, RunArgsError> {
        let text = |name: &str| env(name).and_then(|v| v.into_string().ok());
        let operation =
            Operation::parse(self.operation.trim()).ok_or_else(|| RunArgsError::Operation(self.operation.clone()))?;
        let Some(first) = self.command.first() else {
            return Err(RunArgsError::NoCommand);
        };
        let dir = match &self.dir {
            Some(dir) => dir.clone(),
            None => std::env::current_dir()
                .map_err(|e| RunArgsError::Invalid(format!("cannot read the current directory: {e}")))?,
        };
        let dir = dir
            .canonicalize()
            .ok()
            .filter(|d| d.is_dir())
            .ok_or_else(|| RunArgsError::Dir(dir.clone()))?;
        let workspace = workspace_name(self.workspace.as_deref(), text("TF_WORKSPACE").as_deref(), &dir)
            .map_err(RunArgsError::Invalid)?;
        let path = env("PATH");
        let program = find_program(first, &dir, path.as_deref()).map_err(|e| {
            let program = first.to_string_lossy().into_owned();
            match e {
                Unrunnable::NotFound => RunArgsError::NotFound { program },
                Unrunnable::NotExecutable => RunArgsError::NotExecutable { program },
            }
        })?;
        let state_snapshot = self.state_snapshot.unwrap_or(false);
        let terraform_bin = if state_snapshot || self.plan_json.is_some() {
            Some(terraform_bin(self.terraform_bin.as_deref(), &dir, path.as_deref())?)
        } else {
            None
        };
        let wait = self
            .wait
            .as_deref()
            .map(|w| duration("wait", w))
            .transpose()
            .map_err(|e| RunArgsError::Invalid(e.to_string()))?;
        let stale_lock_after = match &self.stale_lock_after {
            Some(text) => duration("stale_lock_after", text).map_err(|e| RunArgsError::Invalid(e.to_string()))?,
            None => Policy::default().stale_lock_after,
        };
        let detected = ci::detect(text);
        let url = match &self.url {
            Some(url) => {
                Some(ci::safe_url(url).ok_or_else(|| RunArgsError::Invalid("--url: not an http(s) link".to_owned()))?)
            }
            None => detected.url,
        };
        Ok(RunPlan {
            operation,
            dir,
            workspace,
            run_id: self.run_id.clone().or(detected.run_id),
            pipeline: self.pipeline.clone().or(detected.pipeline),
            url,
            program,
            argv: self.command.clone(),
            wait,
            stale_lock_after,
            terraform_bin,
            state_snapshot,
            plan_json: self.plan_json.clone(),
        })
    }
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

pub fn main(args: &RunArgs) -> anyhow::Result<Exit> {
    let plan = match args.plan(&|name| std::env::var_os(name)) {
        Ok(plan) => plan,
        Err(e) if e.exit_code() != 1 => {
            // Like a shell: CMD never started, so no marker was written.
            eprintln!("iacwatch: {e}");
            return Ok(Exit::Code(e.exit_code()));
        }
        Err(e) => return Err(e.into()),
    };
    let finished = wrapper::run(&plan)?;
    let code = match finished.exit_code {
        0 if !finished.recorded => 1,
        code => u8::try_from(code).unwrap_or(1),
    };
    Ok(if code == 0 { Exit::Ok } else { Exit::Code(code) })
}
