//! The pipeline wrapper behind `iacwatch run`: marks a workspace while a pipeline changes it.
//!
//! One run: check everything that can be checked (directory, workspace, program, a writable
//! `.iacwatch/<ws>/`), take `lock.json` (or wait for, or take over, the lock of another pipeline),
//! run CMD while passing signals on, copy the state or plan when asked, write `last-run.json`,
//! release the lock. The reader needs nothing from the wrapper beyond the files: a wrapper killed
//! with SIGKILL leaves a lock whose pid is gone, which the reader already calls dead, and its
//! guardian stops CMD.
//!
//! - `target`: the directory, the workspace name, the program.
//! - `ci`: run id, pipeline name and link from CI variables.
//! - `markers`: atomic writes of the marker files, and judging a lock that is already there.
//! - `supervise`: running a child and passing SIGINT/SIGTERM on.
//! - `guardian`: stops CMD when the wrapper dies (a killed CI job), gracefully first.
//! - `snapshot`: `state pull` and `show -json` into the marker folder.
//! - `publish`: with `--publish`, the same markers in the bucket beside the state object, with a
//!   heartbeat lease.

pub mod ci;
pub mod guardian;
pub mod markers;
pub mod publish;
pub mod snapshot;
pub mod supervise;
pub mod target;

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use nix::sys::signal::Signal;

use crate::artifact::marker::{LastRun, Operation, Outcome, PipelineLock};
use crate::source::local::liveness::{SystemProbe, this_host};
use markers::{Existing, MarkerDir};
use snapshot::Snapshot;
use supervise::{Ending, Supervisor};

/// Everything a run needs, validated.
#[derive(Clone, Debug)]
pub struct RunPlan {
    pub operation: Operation,
    /// The workspace directory, where CMD runs.
    pub dir: PathBuf,
    pub workspace: String,
    pub run_id: Option<String>,
    pub pipeline: Option<String>,
    pub url: Option<String>,
    /// The program as found (CMD's first word stays its argv\[0\]).
    pub program: PathBuf,
    pub argv: Vec<OsString>,
    /// How long to wait for another pipeline's lock; `None`: do not wait.
    pub wait: Option<Duration>,
    pub stale_lock_after: Duration,
    /// `terraform`/`tofu` for the snapshots; set when one is asked for.
    pub terraform_bin: Option<PathBuf>,
    pub state_snapshot: bool,
    /// Relative to `dir`, like CMD's own arguments.
    pub plan_json: Option<PathBuf>,
    /// `--publish`: the lease of the lock published in the bucket; `None`: nothing is published.
    pub publish: Option<Duration>,
}

/// Why a run did not happen, or could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot write the markers in {path}: {source}")]
    Markers { path: PathBuf, source: io::Error },
    #[error("workspace {workspace:?} in {dir} is locked by another pipeline ({holder}){hint}")]
    Locked {
        workspace: String,
        dir: PathBuf,
        holder: String,
        hint: &'static str,
    },
    #[error("cannot watch for signals: {0}")]
    Signals(io::Error),
}

impl RunError {
    /// A short fixed label.
    pub fn kind(&self) -> &'static str {
        match self {
            RunError::Markers { .. } => "markers",
            RunError::Locked { .. } => "locked",
            RunError::Signals(_) => "signals",
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    pub outcome: Outcome,
    /// CMD's exit code, 128 + signal, or 126/127 when CMD could not start.
    pub exit_code: i32,
    /// Whether every marker was written and the lock released.
    pub recorded: bool,
}

/// Carries out one run.
pub fn run(plan: &RunPlan) -> Result<Finished, RunError> {
    let markers = MarkerDir::new(&plan.dir, &plan.workspace);
    let markers_error = |source| RunError::Markers {
        path: markers.path().to_owned(),
        source,
    };
    markers.prepare().map_err(markers_error)?;
    let mine = acquire(plan, &markers)?;
    let publisher = plan
        .publish
        .and_then(|lease| publish::Publisher::start(&plan.dir, &plan.workspace, &mine, lease));
    let mut supervisor = match Supervisor::install() {
        Ok(supervisor) => supervisor,
        Err(e) => {
            let _ = markers.release(&mine);
            return Err(RunError::Signals(e));
        }
    };

    let mut command = Command::new(&plan.program);
    command.arg0(&plan.argv[0]).args(&plan.argv[1..]).current_dir(&plan.dir);
    let (outcome, exit_code) = match supervisor.run(command) {
        Ok(ending) => (outcome_of(&ending), ending.code()),
        Err(e) => {
            eprintln!("iacwatch: cannot start {}: {e}", plan.argv[0].to_string_lossy());
            let code = if e.kind() == io::ErrorKind::PermissionDenied {
                126
            } else {
                127
            };
            (Outcome::Failed, code)
        }
    };

    // Snapshots go before last-run.json: a state or plan written after a failed run would read
    // as later evidence of success.
    let mut plan_written = false;
    if let Some(binary) = &plan.terraform_bin {
        let snapshot = Snapshot {
            binary: binary.clone(),
            dir: plan.dir.clone(),
            workspace: plan.workspace.clone(),
        };
        if plan.state_snapshot
            && let Err(e) = snapshot.state(&mut supervisor, &markers)
        {
            eprintln!("iacwatch: warning: state snapshot skipped: {e}");
        }
        if let Some(plan_file) = &plan.plan_json {
            match snapshot.plan(&mut supervisor, &markers, plan_file) {
                Ok(_) => plan_written = true,
                Err(e) => eprintln!("iacwatch: warning: plan.json skipped: {e}"),
            }
        }
    }

    let last_run = LastRun {
        operation: plan.operation,
        outcome,
        exit_code: Some(i64::from(exit_code)),
        started_at: Some(mine.started_at),
        finished_at: Some(Utc::now()),
        run_id: plan.run_id.clone(),
    };
    let mut recorded = true;
    if let Some(publisher) = publisher {
        let plan_json = plan_written
            .then(|| std::fs::read(markers.file(markers::PLAN)).ok())
            .flatten();
        // Publishing never changes the exit code: monitoring never breaks a deploy.
        publisher.finish(&last_run, plan_json);
    }
    if let Err(e) = markers.write_last_run(&last_run) {
        eprintln!(
            "iacwatch: cannot write {}: {e}",
            markers.file(markers::LAST_RUN).display()
        );
        recorded = false;
    }
    match markers.release(&mine) {
        Ok(true) => {}
        Ok(false) => eprintln!(
            "iacwatch: warning: {} was taken over by another pipeline; left in place",
            markers.file(markers::LOCK).display()
        ),
        Err(e) => {
            eprintln!("iacwatch: cannot remove {}: {e}", markers.file(markers::LOCK).display());
            recorded = false;
        }
    }
    drop(supervisor);
    Ok(Finished {
        outcome,
        exit_code,
        recorded,
    })
}

/// Succeeded on exit 0 (even after a signal: the operation completed); cancelled when the wrapper
/// passed on a signal or CMD died of SIGINT/SIGTERM; failed otherwise.
fn outcome_of(ending: &Ending) -> Outcome {
    let by_interrupt = ending
        .signal()
        .is_some_and(|s| s == Signal::SIGINT as i32 || s == Signal::SIGTERM as i32);
    if ending.status.success() {
        Outcome::Succeeded
    } else if ending.interrupted_by.is_some() || by_interrupt {
        Outcome::Cancelled
    } else {
        Outcome::Failed
    }
}

/// Takes `lock.json`: at once when it is free, after taking over an abandoned one, or - with
/// `--wait` - once another pipeline has released it.
fn acquire(plan: &RunPlan, markers: &MarkerDir) -> Result<PipelineLock, RunError> {
    let probe = SystemProbe::new();
    let deadline = plan.wait.map(|wait| Instant::now() + wait);
    let mut announced = false;
    let markers_error = |source| RunError::Markers {
        path: markers.path().to_owned(),
        source,
    };
    loop {
        let (existing, seen) = markers
            .existing(&probe, Utc::now(), plan.stale_lock_after)
            .map_err(markers_error)?;
        let holder = match existing {
            Existing::Free => {
                let mine = PipelineLock {
                    operation: plan.operation,
                    started_at: Utc::now(),
                    pid: Some(i64::from(std::process::id())),
                    host: Some(this_host()).filter(|h| !h.is_empty()),
                    run_id: plan.run_id.clone(),
                    pipeline: plan.pipeline.clone(),
                    url: plan.url.clone(),
                };
                match markers.create_lock(&mine) {
                    Ok(()) => return Ok(mine),
                    // Another wrapper was quicker: judge its lock.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(markers_error(e)),
                }
            }
            Existing::Abandoned { why } => {
                eprintln!(
                    "iacwatch: warning: taking over the abandoned lock {} ({why})",
                    markers.file(markers::LOCK).display()
                );
                markers.remove_abandoned(&seen).map_err(markers_error)?;
                continue;
            }
            Existing::Live(lock) => markers::describe(&lock),
            Existing::Unreadable { why } => {
                format!("its lock.json is unreadable: {why}; remove it if no pipeline runs")
            }
        };
        match deadline {
            Some(deadline) if Instant::now() < deadline => {
                if !announced {
                    eprintln!(
                        "iacwatch: waiting for workspace {:?} in {} ({holder})",
                        plan.workspace,
                        plan.dir.display()
                    );
                    announced = true;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            _ => {
                return Err(RunError::Locked {
                    workspace: plan.workspace.clone(),
                    dir: plan.dir.clone(),
                    holder,
                    hint: if plan.wait.is_some() {
                        "; gave up waiting"
                    } else {
                        "; --wait waits for it"
                    },
                });
            }
        }
    }
}
