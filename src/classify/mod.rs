//! The classifier: evidence + now + policy in, status + reasons + flags out.
//!
//! Pure: no IO, no clock, no async. It implements the precedence table of the status model:
//! destroying, provisioning, failed, drifted, apply_needed, active, inactive, the first that holds
//! wins, and every rule that holds is reported as a reason.
//!
//! - `policy`: the knobs (stale limit, settle time).
//! - the rules, one module per kind of artifact, each adding reasons and the times rules began to
//!   hold: `locks` (pipeline and Terraform locks), `state`, `failures` (last run, errored state,
//!   crash log, unreadable files, and when a later success supersedes them), `plan` (the plan and
//!   a configuration changed since the last apply).
//! - `verdict`: the answer, and the precedence that turns what holds into one status.

mod failures;
mod locks;
mod plan;
mod policy;
mod state;
#[cfg(test)]
mod tests;
mod verdict;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::artifact::state::StateMeta;
use crate::evidence::Evidence;
use crate::model::{Reason, ReasonCode};
pub use policy::Policy;
pub use verdict::{LockState, Verdict};

/// Classifies one workspace.
pub fn classify(evidence: &Evidence, now: DateTime<Utc>, policy: &Policy) -> Verdict {
    Classification::new(evidence, now, policy).finish()
}

/// What the rules found so far: the reasons, and when each status's rules began to hold. The
/// rules fill it in (one module per kind of artifact), `verdict` turns it into the answer.
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
    state: Option<std::sync::Arc<StateMeta>>,
    plan: Option<(usize, bool)>,
}

fn age(now: DateTime<Utc>, since: DateTime<Utc>) -> TimeDelta {
    now.signed_duration_since(since)
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
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
        c.state_digest();
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
            message: message.into(),
            artifact: artifact.map(str::to_owned),
        });
    }

    fn recheck(&mut self, at: DateTime<Utc>) {
        if at > self.now {
            self.recheck_at = Some(self.recheck_at.map_or(at, |r| r.min(at)));
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
