//! After CMD: copies what Terraform knows into `.iacwatch/<ws>/` for workspaces whose state or plan
//! is not a local file - `terraform state pull` into `state.json`, `terraform show -json PLANFILE`
//! into `plan.json`. The output goes straight into a temporary file beside the marker (it holds
//! secrets: it is never kept in memory, printed or logged), is checked to be JSON, and is renamed
//! into place. A failure is a warning: it never changes the run's outcome.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::markers::MarkerDir;
use super::supervise::Supervisor;

/// What to copy and with which binary.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// `terraform` or `tofu` (a name looked up on PATH, or a path).
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub workspace: String,
}

impl Snapshot {
    /// `state pull` into `state.json`. An empty output (no state at all) removes an old snapshot,
    /// which would otherwise still claim resources.
    pub fn state(&self, supervisor: &mut Supervisor, markers: &MarkerDir) -> Result<(), String> {
        let args = ["state", "pull"];
        match self.capture(supervisor, markers, &args, super::markers::STATE)? {
            Captured::Installed => Ok(()),
            Captured::Empty => {
                let old = markers.file(super::markers::STATE);
                if old.exists() {
                    std::fs::remove_file(&old).map_err(|e| format!("cannot remove {}: {e}", old.display()))?;
                }
                Err("terraform state pull printed no state; no snapshot written".into())
            }
        }
    }

    /// `show -json PLANFILE` into `plan.json`.
    pub fn plan(&self, supervisor: &mut Supervisor, markers: &MarkerDir, plan_file: &Path) -> Result<(), String> {
        let plan = plan_file.as_os_str().to_string_lossy();
        match self.capture(
            supervisor,
            markers,
            &["show", "-json", plan.as_ref()],
            super::markers::PLAN,
        )? {
            Captured::Installed => Ok(()),
            Captured::Empty => Err(format!("show -json {plan} printed nothing")),
        }
    }

    fn capture(
        &self,
        supervisor: &mut Supervisor,
        markers: &MarkerDir,
        args: &[&str],
        name: &str,
    ) -> Result<Captured, String> {
        let shown = format!("{} {}", self.binary.display(), args.join(" "));
        let (tmp, file) = markers
            .temp_file(name)
            .map_err(|e| format!("cannot write into {}: {e}", markers.path().display()))?;
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .current_dir(&self.dir)
            .env("TF_WORKSPACE", &self.workspace)
            .env("TF_IN_AUTOMATION", "1")
            .stdin(Stdio::null())
            .stdout(file);
        let outcome = match supervisor.run(command) {
            Err(e) => Err(format!("cannot run {shown}: {e}")),
            Ok(ending) if !ending.status.success() => Err(format!("{shown} exited with code {}", ending.code())),
            Ok(_) => check_json(&tmp)
                .map_err(|e| format!("{shown} did not print JSON ({e})"))
                .and_then(|empty| {
                    if empty {
                        return Ok(Captured::Empty);
                    }
                    markers
                        .install(&tmp, name)
                        .map(|()| Captured::Installed)
                        .map_err(|e| format!("cannot write {}: {e}", markers.file(name).display()))
                }),
        };
        let _ = std::fs::remove_file(&tmp);
        outcome
    }
}

enum Captured {
    Installed,
    Empty,
}

/// Whether the file is empty (`Ok(true)`), one JSON document (`Ok(false)`), or neither. The
/// content is skipped, never kept.
fn check_json(path: &Path) -> Result<bool, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    if file.metadata().map_err(|e| e.to_string())?.len() == 0 {
        return Ok(true);
    }
    serde_json::from_reader::<_, serde::de::IgnoredAny>(BufReader::new(file))
        .map(|_| false)
        .map_err(|e| format!("{:?} at line {}", e.classify(), e.line()))
}
