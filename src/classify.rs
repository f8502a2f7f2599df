//! The classifier: evidence + now + policy in, status + reasons + flags out.
//!
//! Pure: no IO, no clock, no async. It implements the precedence table of the status model:
//! destroying, provisioning, failed, drifted, apply_needed, active, inactive, the first that holds
//! wins, and every rule that holds is reported as a reason.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::artifact::marker::{Operation, Outcome};
use crate::artifact::plan::PlanSummary;
use crate::artifact::state::StateMeta;
use crate::artifact::tflock::LockOperation;
use crate::evidence::{Evidence, Holder, StateReading};
use crate::model::{Flags, Reason, ReasonCode, Status};

/// The knobs of the status model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// A lock older than this is stale (default 2 h).
    pub stale_lock_after: Duration,
    /// An unreadable state younger than this is presumed mid-write (default 2 s).
    pub settle_time: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            stale_lock_after: Duration::from_secs(2 * 60 * 60),
            settle_time: Duration::from_secs(2),
        }
    }
}

/// Whether a lock still stands for a running operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockState {
    Live,
    Dead,
    Stale,
}

impl LockState {
    pub fn as_str(self) -> &'static str {
        match self {
            LockState::Live => "live",
            LockState::Dead => "dead",
            LockState::Stale => "stale",
        }
    }
}

/// The classifier's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    pub flags: Flags,
    pub reasons: Vec<Reason>,
    /// When the current status began, as far as the evidence tells.
    pub since: Option<DateTime<Utc>>,
    /// When the answer may change with no new file event (a state settling, a lock turning stale).
    pub recheck_at: Option<DateTime<Utc>>,
    pub terraform_lock: Option<LockState>,
    pub pipeline_lock: Option<LockState>,
    /// Index into `Evidence::plans` of *the plan* (the newest readable one), and whether it is current.
    pub plan: Option<(usize, bool)>,
    /// The state metadata the answer rests on (the previous one while a rewrite settles).
    pub state: Option<StateMeta>,
}

/// Classifies one workspace.
pub fn classify(evidence: &Evidence, now: DateTime<Utc>, policy: &Policy) -> Verdict {
    Classification::new(evidence, now, policy).finish()
}

struct Classification<'a> {
    evidence: &'a Evidence,
    now: DateTime<Utc>,
    policy: &'a Policy,
    reasons: Vec<Reason>,
    destroying: Option<DateTime<Utc>>,
    provisioning: Option<DateTime<Utc>>,
    failures: Vec<DateTime<Utc>>,
    drift: Option<DateTime<Utc>>,
    apply_needed: Vec<DateTime<Utc>>,
    recheck_at: Option<DateTime<Utc>>,
    verdict_locks: (Option<LockState>, Option<LockState>),
    state: Option<StateMeta>,
    plan: Option<(usize, bool)>,
}

fn age(now: DateTime<Utc>, since: DateTime<Utc>) -> TimeDelta {
    now.signed_duration_since(since)
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// "3m", "2h5m", "4d": a lock's age for messages.
fn human_age(d: TimeDelta) -> String {
    let secs = d.num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h{}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{}h", secs / 86400, secs % 86400 / 3600),
    }
}

impl<'a> Classification<'a> {
    fn new(evidence: &'a Evidence, now: DateTime<Utc>, policy: &'a Policy) -> Self {
        let mut c = Classification {
            evidence,
            now,
            policy,
            reasons: Vec::new(),
            destroying: None,
            provisioning: None,
            failures: Vec::new(),
            drift: None,
            apply_needed: Vec::new(),
            recheck_at: None,
            verdict_locks: (None, None),
            state: None,
            plan: None,
        };
        c.pipeline_lock();
        c.terraform_lock();
        c.state();
        c.failure_signals();
        c.plan();
        c.config_changed();
        c.problems();
        c
    }

    /// A failure rule holds: its reason, and when it started to hold.
    fn fail(&mut self, code: ReasonCode, message: String, artifact: Option<&str>, at: DateTime<Utc>) {
        self.hold(code, message, artifact);
        self.failures.push(at);
    }

    fn hold(&mut self, code: ReasonCode, message: String, artifact: Option<&str>) {
        self.reasons.push(Reason {
            code,
            message,
            artifact: artifact.map(str::to_owned),
        });
    }

    fn recheck(&mut self, at: DateTime<Utc>) {
        if at > self.now {
            self.recheck_at = Some(self.recheck_at.map_or(at, |r| r.min(at)));
        }
    }

    /// Dead beats stale beats live; a live lock is re-checked when it would turn stale.
    fn lock_state(&mut self, holder: Holder, started: DateTime<Utc>) -> LockState {
        let stale_at = started + delta(self.policy.stale_lock_after);
        if holder == Holder::Gone {
            LockState::Dead
        } else if self.now >= stale_at {
            LockState::Stale
        } else {
            self.recheck(stale_at);
            LockState::Live
        }
    }

    fn pipeline_lock(&mut self) {
        let Some(artifact) = &self.evidence.pipeline_lock else {
            return;
        };
        let path = artifact.path.as_str();
        let lock = match &artifact.content.content {
            Ok(lock) => lock,
            Err(err) => {
                self.hold(
                    ReasonCode::ArtifactUnreadable,
                    format!("pipeline lock could not be read: {err}"),
                    Some(path),
                );
                return;
            }
        };
        let started = lock.started_at;
        let state = self.lock_state(artifact.content.holder, started);
        self.verdict_locks.0 = Some(state);
        let op = lock.operation.as_str();
        let by = lock
            .pipeline
            .as_deref()
            .map(|p| format!(" by pipeline {p}"))
            .unwrap_or_default();
        let running_for = human_age(age(self.now, started));
        match state {
            LockState::Live => {
                self.hold(
                    ReasonCode::PipelineLock,
                    format!("{op} running{by} for {running_for}"),
                    Some(path),
                );
                match lock.operation {
                    Operation::Destroy => self.destroying = Some(started),
                    Operation::Provision => self.provisioning = Some(started),
                    Operation::Plan | Operation::DriftCheck => {}
                }
            }
            LockState::Dead => {
                let pid = lock.pid.map(|p| format!(" (pid {p} is gone)")).unwrap_or_default();
                self.fail(
                    ReasonCode::DeadPipeline,
                    format!("{op}{by} ended without clearing its lock{pid}"),
                    Some(path),
                    started,
                );
            }
            LockState::Stale => {
                self.fail(
                    ReasonCode::StaleLock,
                    format!("pipeline lock for {op}{by} is {running_for} old, past the stale limit"),
                    Some(path),
                    started,
                );
            }
        }
    }

    fn terraform_lock(&mut self) {
        let Some(artifact) = &self.evidence.terraform_lock else {
            return;
        };
        let path = artifact.path.as_str();
        let (operation, created, who) = match &artifact.content.content {
            Ok(lock) => (
                lock.operation.clone(),
                lock.created.unwrap_or(artifact.modified),
                lock.who.clone(),
            ),
            // A lock file Terraform left is a lock whatever it holds.
            Err(_) => (LockOperation::Other, artifact.modified, None),
        };
        let holder = artifact.content.holder;
        let state = self.lock_state(holder, created);
        self.verdict_locks.1 = Some(state);
        let op = operation.as_str();
        let who = who.map(|w| format!(" by {w}")).unwrap_or_default();
        let lock_age = human_age(age(self.now, created));
        if holder == Holder::Gone {
            self.fail(
                ReasonCode::DeadLock,
                format!("Terraform lock for {op}{who} is left behind: no process holds the state file"),
                Some(path),
                created,
            );
        }
        if self.now >= created + delta(self.policy.stale_lock_after) {
            self.fail(
                ReasonCode::StaleLock,
                format!("Terraform lock for {op}{who} is {lock_age} old, past the stale limit"),
                Some(path),
                created,
            );
        }
        if state == LockState::Live {
            self.hold(
                ReasonCode::TerraformLock,
                format!("Terraform {op} running{who} for {lock_age}"),
                Some(path),
            );
            if operation == LockOperation::Apply {
                self.provisioning = Some(self.provisioning.map_or(created, |p| p.min(created)));
            }
        }
    }

    fn state(&mut self) {
        let evidence = self.evidence;
        let Some(artifact) = &evidence.state else {
            if evidence.remote_backend() {
                let backend = evidence.backend.as_deref().unwrap_or("remote");
                self.hold(
                    ReasonCode::RemoteStateNotVisible,
                    format!("state lives in the {backend} backend; no snapshot in .iacwatch/<workspace>/state.json"),
                    None,
                );
            }
            self.hold(ReasonCode::NoState, "no state file".into(), None);
            return;
        };
        let path = artifact.path.as_str();
        let meta = match &artifact.content {
            StateReading::Empty => {
                // Terraform truncates the state before it writes the new one: a file that held a
                // state a moment ago and is empty now is being rewritten, not gone.
                let settled_at = artifact.modified + delta(self.policy.settle_time);
                match &evidence.previous_state {
                    Some(previous) if self.now < settled_at => {
                        self.recheck(settled_at);
                        self.hold(
                            ReasonCode::StateSettling,
                            "state is being rewritten (empty for now); keeping the previous reading".into(),
                            Some(path),
                        );
                        previous.clone()
                    }
                    _ => {
                        self.hold(ReasonCode::NoState, "state file is empty (0 bytes)".into(), Some(path));
                        return;
                    }
                }
            }
            StateReading::Parsed(meta) => meta.clone(),
            StateReading::Unreadable(err) => {
                let settled_at = artifact.modified + delta(self.policy.settle_time);
                if self.now < settled_at {
                    self.recheck(settled_at);
                    self.hold(
                        ReasonCode::StateSettling,
                        format!("state is being rewritten ({err}); keeping the previous reading"),
                        Some(path),
                    );
                    match &evidence.previous_state {
                        Some(previous) => previous.clone(),
                        None => return,
                    }
                } else {
                    self.fail(
                        ReasonCode::StateUnreadable,
                        format!("state cannot be read: {err}"),
                        Some(path),
                        artifact.modified,
                    );
                    return;
                }
            }
        };
        if meta.encrypted {
            self.hold(
                ReasonCode::StateEncrypted,
                "state is encrypted: resources cannot be counted".into(),
                Some(path),
            );
        } else {
            match meta.resources.unwrap_or(0) {
                0 => self.hold(
                    ReasonCode::EmptyState,
                    "state has no managed resources".into(),
                    Some(path),
                ),
                n => self.hold(
                    ReasonCode::StateHasResources,
                    format!("state has {n} managed resource instance{}", plural(n)),
                    Some(path),
                ),
            }
        }
        if meta.tainted > 0 {
            let n = meta.tainted;
            self.fail(
                ReasonCode::TaintedInstances,
                format!(
                    "{n} resource instance{} tainted by a failed apply",
                    if n == 1 { " is" } else { "s are" }
                ),
                Some(path),
                artifact.modified,
            );
        }
        self.state = Some(meta);
    }

    /// True when a later successful operation supersedes a failure signal written at `at`.
    fn superseded(&self, at: DateTime<Utc>) -> bool {
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

    fn failure_signals(&mut self) {
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

    fn plan(&mut self) {
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
        let after_config = e.newest_config.as_ref().is_none_or(|c| artifact.modified >= c.modified);
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

    fn config_changed(&mut self) {
        let e = self.evidence;
        let (Some(config), Some(state), Some(meta)) = (&e.newest_config, &e.state, &self.state) else {
            return;
        };
        // The newest readable plan, as `plan()` chose it.
        let newest_plan = self.plan.and_then(|(index, _)| e.plans.get(index)).map(|p| p.modified);
        if meta.has_resources() && config.modified > state.modified && newest_plan.is_none_or(|p| config.modified > p) {
            self.hold(
                ReasonCode::ConfigChanged,
                "the configuration changed after the last apply and has not been planned".into(),
                Some(&config.path),
            );
            self.apply_needed.push(config.modified);
        }
    }

    fn problems(&mut self) {
        for problem in &self.evidence.problems {
            self.hold(
                ReasonCode::ArtifactUnreadable,
                format!("could not be read: {}", problem.content),
                Some(&problem.path),
            );
        }
    }

    fn finish(self) -> Verdict {
        let has_resources = self.state.as_ref().is_some_and(StateMeta::has_resources);
        let failed_since = self.failures.iter().min().copied();
        let apply_since = self.apply_needed.iter().min().copied();
        let state_time = self.evidence.state.as_ref().map(|s| s.modified);
        let (status, since) = if let Some(at) = self.destroying {
            (Status::Destroying, Some(at))
        } else if let Some(at) = self.provisioning {
            (Status::Provisioning, Some(at))
        } else if let Some(at) = failed_since {
            (Status::Failed, Some(at))
        } else if let Some(at) = self.drift {
            (Status::Drifted, Some(at))
        } else if let Some(at) = apply_since {
            (Status::ApplyNeeded, Some(at))
        } else if has_resources {
            (Status::Active, state_time)
        } else {
            (Status::Inactive, state_time)
        };
        let flags = Flags {
            drifted: self.drift.is_some(),
            apply_needed: apply_since.is_some(),
            failed: failed_since.is_some(),
            locked: self.evidence.terraform_lock.is_some()
                || self
                    .evidence
                    .pipeline_lock
                    .as_ref()
                    .is_some_and(|l| l.content.content.is_ok()),
        };
        let mut reasons = self.reasons;
        reasons.sort_by_key(|r| r.code);
        Verdict {
            status,
            flags,
            reasons,
            since: since.or_else(|| self.evidence.newest_artifact_time()),
            recheck_at: self.recheck_at,
            pipeline_lock: self.verdict_locks.0,
            terraform_lock: self.verdict_locks.1,
            plan: self.plan,
            state: self.state,
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::Artifact;

    fn meta_with_resources() -> StateMeta {
        let state = br#"{"version":4,"serial":1,"lineage":"l","resources":[{"mode":"managed","type":"t","name":"n","instances":[{"attributes":{}}]}]}"#;
        crate::artifact::state::parse(state).unwrap()
    }

    /// Found by the in-place rewrite torture test: the 0-byte moment of a rewrite read as no state.
    #[test]
    fn an_empty_state_mid_rewrite_keeps_the_previous_reading_until_it_settles() {
        let written = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc();
        let evidence = Evidence {
            state: Some(Artifact {
                path: "ws/terraform.tfstate".into(),
                modified: written,
                content: StateReading::Empty,
            }),
            previous_state: Some(meta_with_resources()),
            ..Evidence::default()
        };
        let policy = Policy::default();
        let during = classify(&evidence, written + TimeDelta::milliseconds(500), &policy);
        assert_eq!(during.status, Status::Active);
        assert!(during.reasons.iter().any(|r| r.code == ReasonCode::StateSettling));
        let after = classify(&evidence, written + TimeDelta::seconds(10), &policy);
        assert_eq!(after.status, Status::Inactive);
        let never_read = Evidence {
            previous_state: None,
            ..evidence
        };
        assert_eq!(classify(&never_read, written, &policy).status, Status::Inactive);
    }
}
