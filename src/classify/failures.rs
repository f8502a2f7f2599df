//! The failure signals beside the state: the last pipeline run, `errored.tfstate`, a crash log,
//! files that could not be read, and when a later success supersedes a failure.

use chrono::{DateTime, Utc};

use super::Classification;
use crate::artifact::marker::Outcome;
use crate::model::ReasonCode;

impl Classification<'_> {
    /// True when a later successful operation supersedes a failure signal written at `at`.
    pub(super) fn superseded(&self, at: DateTime<Utc>) -> bool {
        let e = self.evidence;
        let later_state = e.state.as_ref().is_some_and(|s| s.modified > at);
        let later_plan = e
            .plans
            .iter()
            .any(|p| p.modified > at && p.content.as_ref().is_ok_and(|plan| !plan.errored));
        let later_success = e
            .last_run
            .as_ref()
            .is_some_and(|r| r.modified > at && r.content.as_ref().is_ok_and(|run| run.outcome == Outcome::Succeeded));
        later_state || later_plan || later_success
    }

    pub(super) fn failure_signals(&mut self) {
        let e = self.evidence;
        if let Some(run) = &e.last_run {
            match &run.content {
                Ok(last) if last.outcome != Outcome::Succeeded && !self.superseded(run.modified) => {
                    let (code, word) = match last.outcome {
                        Outcome::Cancelled => (ReasonCode::LastRunCancelled, "was cancelled"),
                        _ => (ReasonCode::LastRunFailed, "failed"),
                    };
                    let exit = last.exit_code.map(|c| format!(" (exit code {c})")).unwrap_or_default();
                    let run_id = last.run_id.as_deref().map(|r| format!(" {r}")).unwrap_or_default();
                    self.fail(
                        code,
                        format!(
                            "the last pipeline run{run_id} ({}) {word}{exit}",
                            last.operation.as_str()
                        ),
                        Some(&run.path),
                        run.modified,
                    );
                }
                Ok(_) => {}
                Err(err) => self.hold(
                    ReasonCode::ArtifactUnreadable,
                    format!("last run marker could not be read: {err}"),
                    Some(&run.path),
                ),
            }
        }
        if let Some(stamp) = &e.errored_state
            && !self.superseded(stamp.modified)
        {
            self.fail(
                ReasonCode::StatePersistFailed,
                "Terraform could not save the state after an apply (errored.tfstate)".into(),
                Some(&stamp.path),
                stamp.modified,
            );
        }
        if let Some(stamp) = &e.crash_log
            && !self.superseded(stamp.modified)
        {
            self.fail(
                ReasonCode::TerraformCrashed,
                "Terraform crashed (crash log)".into(),
                Some(&stamp.path),
                stamp.modified,
            );
        }
    }

    pub(super) fn problems(&mut self) {
        for problem in &self.evidence.problems {
            self.hold(
                ReasonCode::ArtifactUnreadable,
                format!("could not be read: {}", problem.content),
                Some(&problem.path),
            );
        }
    }
}
