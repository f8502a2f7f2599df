//! Plan JSON: the output of `terraform show -json PLANFILE` / `tofu show -json PLANFILE`, every
//! `format_version` from 0.1 to 1.2.
//!
//! Only the shape of the changes is read: the action lists of `resource_changes`,
//! `resource_drift` and `output_changes`, and `errored`. Before/after values are skipped.
//! Unknown fields and unknown action strings are tolerated.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{ParseError, from_reader, from_slice, identifier};

/// Pending changes of a plan, counted by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub create: u64,
    pub update: u64,
    /// Includes OpenTofu's `forget` (the instance leaves the state without being destroyed).
    pub delete: u64,
    /// `["delete","create"]` or `["create","delete"]`.
    pub replace: u64,
    /// Action lists this program does not know; still pending changes.
    pub other: u64,
}

impl Changes {
    pub fn total(&self) -> u64 {
        self.create + self.update + self.delete + self.replace + self.other
    }
}

/// What a plan says, without any value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanSummary {
    pub format_version: Option<String>,
    pub terraform_version: Option<String>,
    pub errored: bool,
    /// Resources changed outside Terraform (drift entries whose actions are not just no-op).
    pub drifted_resources: u64,
    pub changes: Changes,
    /// Outputs whose actions are not no-op.
    pub output_changes: u64,
}

impl PlanSummary {
    pub fn has_pending_changes(&self) -> bool {
        self.changes.total() > 0 || self.output_changes > 0
    }
}

#[derive(Deserialize)]
struct RawPlan {
    format_version: Option<String>,
    terraform_version: Option<String>,
    #[serde(default)]
    errored: bool,
    resource_changes: Option<Vec<RawResourceChange>>,
    resource_drift: Option<Vec<RawResourceChange>>,
    output_changes: Option<BTreeMap<String, RawChange>>,
    planned_values: Option<IgnoredAny>,
    prior_state: Option<IgnoredAny>,
    configuration: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawResourceChange {
    change: Option<RawChange>,
}

#[derive(Deserialize)]
struct RawChange {
    #[serde(default)]
    actions: Vec<Action>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
enum Action {
    NoOp,
    Create,
    Read,
    Update,
    Delete,
    Forget,
    #[serde(other)]
    Unknown,
}

/// Parses a plan held in memory.
pub fn parse(bytes: &[u8]) -> Result<PlanSummary, ParseError> {
    from_slice::<RawPlan>(bytes).and_then(RawPlan::into_summary)
}

/// Parses a plan from a reader in constant memory.
pub fn parse_reader<R: Read>(reader: R) -> Result<PlanSummary, ParseError> {
    from_reader::<RawPlan, R>(reader).and_then(RawPlan::into_summary)
}

impl RawPlan {
    fn into_summary(self) -> Result<PlanSummary, ParseError> {
        let looks_like_plan = self.resource_changes.is_some()
            || self.resource_drift.is_some()
            || self.output_changes.is_some()
            || self.planned_values.is_some()
            || self.prior_state.is_some()
            || self.configuration.is_some()
            || self.errored;
        let Some(format_version) = self.format_version.filter(|_| looks_like_plan) else {
            return Err(ParseError::NotThisArtifact {
                expected: "a plan (terraform show -json PLANFILE)",
            });
        };
        let mut changes = Changes::default();
        for change in self.resource_changes.iter().flatten().filter_map(|c| c.change.as_ref()) {
            count_actions(&change.actions, &mut changes);
        }
        let drifted_resources = self
            .resource_drift
            .iter()
            .flatten()
            .filter_map(|c| c.change.as_ref())
            .filter(|c| c.actions.iter().any(|a| *a != Action::NoOp))
            .count() as u64;
        let output_changes = self
            .output_changes
            .iter()
            .flatten()
            .filter(|(_, c)| c.actions.iter().any(|a| *a != Action::NoOp))
            .count() as u64;
        Ok(PlanSummary {
            format_version: identifier(&format_version, 16),
            terraform_version: self.terraform_version.as_deref().and_then(|v| identifier(v, 64)),
            errored: self.errored,
            drifted_resources,
            changes,
            output_changes,
        })
    }
}

fn count_actions(actions: &[Action], changes: &mut Changes) {
    use Action::*;
    match actions {
        [] | [NoOp] | [Read] => {}
        [Create] => changes.create += 1,
        [Update] => changes.update += 1,
        [Delete] | [Forget] => changes.delete += 1,
        [Delete, Create] | [Create, Delete] => changes.replace += 1,
        _ => changes.other += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_kind_of_change() {
        let plan = br#"{"format_version":"1.2","resource_changes":[
            {"change":{"actions":["create"],"after":{"password":"hunter2"}}},
            {"change":{"actions":["update"]}},
            {"change":{"actions":["delete"]}},
            {"change":{"actions":["forget"]}},
            {"change":{"actions":["delete","create"]}},
            {"change":{"actions":["create","delete"]}},
            {"change":{"actions":["read"]}},
            {"change":{"actions":["no-op"]}},
            {"change":{"actions":["teleport"]}}
          ],
          "resource_drift":[{"change":{"actions":["update"]}},{"change":{"actions":["no-op"]}}],
          "output_changes":{"a":{"actions":["no-op"]},"b":{"actions":["create"]}}}"#;
        let summary = parse(plan).unwrap();
        assert_eq!(
            summary.changes,
            Changes {
                create: 1,
                update: 1,
                delete: 2,
                replace: 2,
                other: 1
            }
        );
        assert_eq!(summary.drifted_resources, 1);
        assert_eq!(summary.output_changes, 1);
        assert!(summary.has_pending_changes());
    }

    #[test]
    fn a_state_is_not_a_plan() {
        let err = parse(br#"{"version":4,"serial":1,"resources":[]}"#).unwrap_err();
        assert_eq!(err.kind(), "wrong_artifact");
    }
}
