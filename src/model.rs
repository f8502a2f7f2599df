//! The domain: the seven statuses, the flags beside them, reasons, and a workspace's identity.
//!
//! These types are the vocabulary of the classifier. They do not derive `Serialize`: what goes over
//! the wire is shaped in `report`.

use std::fmt;

/// The seven statuses, in precedence order (the first that holds wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Destroying,
    Provisioning,
    Failed,
    Drifted,
    ApplyNeeded,
    Active,
    Inactive,
}

impl Status {
    /// Every status, in precedence order.
    pub const ALL: [Status; 7] = [
        Status::Destroying,
        Status::Provisioning,
        Status::Failed,
        Status::Drifted,
        Status::ApplyNeeded,
        Status::Active,
        Status::Inactive,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Destroying => "destroying",
            Status::Provisioning => "provisioning",
            Status::Failed => "failed",
            Status::Drifted => "drifted",
            Status::ApplyNeeded => "apply_needed",
            Status::Active => "active",
            Status::Inactive => "inactive",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Position in [`Status::ALL`], for per-status arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of the seven.
#[derive(Debug, thiserror::Error)]
#[error("unknown status '{given}'; valid statuses: {}", valid_statuses())]
pub struct UnknownStatus {
    pub given: String,
}

/// The seven spellings, comma separated, for error messages.
pub(crate) fn valid_statuses() -> String {
    Status::ALL.map(Status::as_str).join(", ")
}

/// Parses `a,b,c` into statuses; empty items are ignored.
pub fn parse_status_list(text: &str) -> Result<Vec<Status>, UnknownStatus> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let status = Status::parse(item).ok_or_else(|| UnknownStatus {
            given: item.chars().take(64).collect(),
        })?;
        if !out.contains(&status) {
            out.push(status);
        }
    }
    Ok(out)
}

/// Facts beside the single status, so that precedence never hides one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub drifted: bool,
    pub apply_needed: bool,
    pub failed: bool,
    pub locked: bool,
}

impl Flags {
    pub const NAMES: [&'static str; 4] = ["drifted", "apply_needed", "failed", "locked"];

    /// The flags in the order of [`Flags::NAMES`].
    pub fn values(self) -> [bool; 4] {
        [self.drifted, self.apply_needed, self.failed, self.locked]
    }
}

/// Stable reason codes. Every rule of the status table that holds is reported with one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReasonCode {
    PipelineLock,
    TerraformLock,
    DeadPipeline,
    DeadLock,
    StaleLock,
    StateUnreadable,
    StateSettling,
    StateDigestMismatch,
    TaintedInstances,
    LastRunFailed,
    LastRunCancelled,
    StatePersistFailed,
    TerraformCrashed,
    PlanErrored,
    DriftDetected,
    PendingChanges,
    ConfigChanged,
    PlanStale,
    StateHasResources,
    StateEncrypted,
    RemoteStateNotVisible,
    EmptyState,
    NoState,
    ArtifactUnreadable,
}

impl ReasonCode {
    /// Every code, in declaration order ([`ReasonCode::index`] is each one's position).
    pub const ALL: [ReasonCode; 24] = {
        use ReasonCode::*;
        [
            PipelineLock,
            TerraformLock,
            DeadPipeline,
            DeadLock,
            StaleLock,
            StateUnreadable,
            StateSettling,
            StateDigestMismatch,
            TaintedInstances,
            LastRunFailed,
            LastRunCancelled,
            StatePersistFailed,
            TerraformCrashed,
            PlanErrored,
            DriftDetected,
            PendingChanges,
            ConfigChanged,
            PlanStale,
            StateHasResources,
            StateEncrypted,
            RemoteStateNotVisible,
            EmptyState,
            NoState,
            ArtifactUnreadable,
        ]
    };

    /// The position of a code in [`ReasonCode::ALL`]. It matches on every variant, so a new code
    /// fails to compile until it is given a place there too.
    pub const fn index(self) -> usize {
        use ReasonCode::*;
        match self {
            PipelineLock => 0,
            TerraformLock => 1,
            DeadPipeline => 2,
            DeadLock => 3,
            StaleLock => 4,
            StateUnreadable => 5,
            StateSettling => 6,
            StateDigestMismatch => 7,
            TaintedInstances => 8,
            LastRunFailed => 9,
            LastRunCancelled => 10,
            StatePersistFailed => 11,
            TerraformCrashed => 12,
            PlanErrored => 13,
            DriftDetected => 14,
            PendingChanges => 15,
            ConfigChanged => 16,
            PlanStale => 17,
            StateHasResources => 18,
            StateEncrypted => 19,
            RemoteStateNotVisible => 20,
            EmptyState => 21,
            NoState => 22,
            ArtifactUnreadable => 23,
        }
    }

    /// The code of a stable name (`as_str`'s inverse).
    pub fn parse(text: &str) -> Option<ReasonCode> {
        ReasonCode::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// True when a reason with this code is what puts a workspace in `status` (rather than a
    /// fact beside it): the reason a one-line summary shows.
    pub fn explains(self, status: Status) -> bool {
        use ReasonCode::*;
        match status {
            Status::Destroying | Status::Provisioning => matches!(self, PipelineLock | TerraformLock),
            Status::Failed => matches!(
                self,
                DeadPipeline
                    | DeadLock
                    | StaleLock
                    | StateUnreadable
                    | StateDigestMismatch
                    | TaintedInstances
                    | LastRunFailed
                    | LastRunCancelled
                    | StatePersistFailed
                    | TerraformCrashed
                    | PlanErrored
            ),
            Status::Drifted => self == DriftDetected,
            Status::ApplyNeeded => matches!(self, PendingChanges | ConfigChanged),
            Status::Active => matches!(self, StateHasResources | StateEncrypted),
            Status::Inactive => matches!(self, RemoteStateNotVisible | EmptyState | NoState),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::PipelineLock => "pipeline_lock",
            ReasonCode::TerraformLock => "terraform_lock",
            ReasonCode::DeadPipeline => "dead_pipeline",
            ReasonCode::DeadLock => "dead_lock",
            ReasonCode::StaleLock => "stale_lock",
            ReasonCode::StateUnreadable => "state_unreadable",
            ReasonCode::StateSettling => "state_settling",
            ReasonCode::StateDigestMismatch => "state_digest_mismatch",
            ReasonCode::TaintedInstances => "tainted_instances",
            ReasonCode::LastRunFailed => "last_run_failed",
            ReasonCode::LastRunCancelled => "last_run_cancelled",
            ReasonCode::StatePersistFailed => "state_persist_failed",
            ReasonCode::TerraformCrashed => "terraform_crashed",
            ReasonCode::PlanErrored => "plan_errored",
            ReasonCode::DriftDetected => "drift_detected",
            ReasonCode::PendingChanges => "pending_changes",
            ReasonCode::ConfigChanged => "config_changed",
            ReasonCode::PlanStale => "plan_stale",
            ReasonCode::StateHasResources => "state_has_resources",
            ReasonCode::StateEncrypted => "state_encrypted",
            ReasonCode::EmptyState => "empty_state",
            ReasonCode::NoState => "no_state",
            ReasonCode::RemoteStateNotVisible => "remote_state_not_visible",
            ReasonCode::ArtifactUnreadable => "artifact_unreadable",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule that holds: a code, a human message, and the artifact it was read from.
///
/// Messages are built only from metadata (counts, names, times, parse positions), never from a
/// value found in a state or plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    pub code: ReasonCode,
    /// Shared: the store keeps one copy of each message however many workspaces give it.
    pub message: std::sync::Arc<str>,
    /// Path of the artifact relative to the root, when the reason comes from one.
    pub artifact: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_code_is_listed_once_at_its_index_and_parses_back() {
        for (i, code) in ReasonCode::ALL.into_iter().enumerate() {
            assert_eq!(code.index(), i, "{code}");
            assert_eq!(ReasonCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ReasonCode::parse("from_the_future"), None);
    }
}
