//! The plan rules: the newest readable plan (current or stale), drift, pending changes, an errored
//! plan, and a configuration changed since the last apply and not planned.

use chrono::{DateTime, Utc};

use super::{Classification, plural};
use crate::artifact::plan::PlanSummary;
use crate::model::ReasonCode;

impl Classification<'_> {
    pub(super) fn plan(&mut self) {
        let e = self.evidence;
        let newest = e
            .plans
            .iter()
            .enumerate()
            .filter(|(_, p)| p.content.is_ok())
            .max_by_key(|(_, p)| (p.modified, p.path.clone()));
        for plan in e.plans.iter() {
            if let Err(err) = &plan.content {
                self.hold(
                    ReasonCode::ArtifactUnreadable,
                    format!("plan file ignored: {err}"),
                    Some(&plan.path),
                );
            }
        }
        let Some((index, artifact)) = newest else {
            return;
        };
        let Ok(summary) = &artifact.content else {
            return;
        };
        let after_state = e.state.as_ref().is_none_or(|s| artifact.modified >= s.modified);
        let after_config = e
            .newest_config
            .as_ref()
            .is_none_or(|c| !later_than(c.modified, artifact.modified));
        let current = after_state && after_config;
        self.plan = Some((index, current));
        let path = artifact.path.as_str();
        if !current {
            let newer = if after_state { "the configuration" } else { "the state" };
            self.hold(
                ReasonCode::PlanStale,
                format!("the plan is older than {newer}: it says nothing about the status"),
                Some(path),
            );
            return;
        }
        if summary.errored {
            if !self.superseded(artifact.modified) {
                self.fail(
                    ReasonCode::PlanErrored,
                    "the plan operation failed".into(),
                    Some(path),
                    artifact.modified,
                );
            }
            // An errored plan's changes are incomplete: they are not reported as drift or changes.
            return;
        }
        if summary.drifted_resources > 0 {
            let n = summary.drifted_resources;
            self.hold(
                ReasonCode::DriftDetected,
                format!("{n} resource{} changed outside Terraform", plural(n)),
                Some(path),
            );
            self.drift = Some(artifact.modified);
        }
        if summary.has_pending_changes() {
            self.hold(ReasonCode::PendingChanges, describe_changes(summary), Some(path));
            self.apply_needed.push(artifact.modified);
        }
    }

    pub(super) fn config_changed(&mut self) {
        let e = self.evidence;
        let (Some(config), Some(state), Some(meta)) = (&e.newest_config, &e.state, &self.state) else {
            return;
        };
        // The newest readable plan, as `plan()` chose it.
        let newest_plan = self.plan.and_then(|(index, _)| e.plans.get(index)).map(|p| p.modified);
        if meta.has_resources()
            && later_than(config.modified, state.modified)
            && newest_plan.is_none_or(|p| later_than(config.modified, p))
        {
            self.hold(
                ReasonCode::ConfigChanged,
                "the configuration changed after the last apply and has not been planned".into(),
                Some(&config.path),
            );
            self.apply_needed.push(config.modified);
        }
    }
}

/// Whether `config` was modified after `artifact`, at the precision of `artifact`'s time. A time
/// on a whole second is taken as one of that precision: an object store's `Last-Modified` (and
/// a file system with whole-second times) carries no more, so a state or a plan written to a
/// bucket in the second after `terraform init` wrote `.terraform.lock.hcl` is not older than it.
fn later_than(config: DateTime<Utc>, artifact: DateTime<Utc>) -> bool {
    if artifact.timestamp_subsec_nanos() == 0 {
        config.timestamp() > artifact.timestamp()
    } else {
        config > artifact
    }
}

/// "plan: 2 to add, 1 to change, 0 to destroy, 1 to replace; 1 output change".
fn describe_changes(plan: &PlanSummary) -> String {
    let c = &plan.changes;
    let mut text = format!(
        "plan: {} to add, {} to change, {} to destroy, {} to replace",
        c.create, c.update, c.delete, c.replace
    );
    if c.other > 0 {
        text.push_str(&format!(", {} other", c.other));
    }
    if plan.output_changes > 0 {
        let n = plan.output_changes;
        text.push_str(&format!("; {n} output change{}", plural(n)));
    }
    text
}
