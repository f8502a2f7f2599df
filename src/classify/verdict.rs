//! The classifier's answer, and the precedence that turns every rule that holds into one status.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Classification;
use crate::artifact::state::StateMeta;
use crate::model::{Flags, Reason, Status};

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
    pub state: Option<Arc<StateMeta>>,
}

impl Classification<'_> {
    /// The first status of the precedence table that holds wins.
    pub(super) fn finish(self) -> Verdict {
        let has_resources = self.state.as_deref().is_some_and(StateMeta::has_resources);
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
