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

use super::scan::{Bail, Scan, Scanner, first_sight};
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

/// Parses a plan held in memory: the byte scanner when it takes the document whole, else
/// serde_json (see [`super::scan`]); both give the same answer.
pub fn parse(bytes: &[u8]) -> Result<PlanSummary, ParseError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    match scan(bytes) {
        Ok(facts) => facts.into_summary(),
        Err(Bail) => parse_with_serde_json(bytes),
    }
}

/// The scanner alone: `None` when it hands the document to serde_json. For the differential
/// tests, which hold it to [`parse_with_serde_json`].
pub fn parse_scanned(bytes: &[u8]) -> Option<Result<PlanSummary, ParseError>> {
    scan(bytes).ok().map(Facts::into_summary)
}

/// The reference parser: serde_json with `IgnoredAny` for what is not read.
pub fn parse_with_serde_json(bytes: &[u8]) -> Result<PlanSummary, ParseError> {
    from_slice::<RawPlan>(bytes).and_then(|raw| raw.facts().into_summary())
}

/// Parses a plan from a reader in constant memory.
pub fn parse_reader<R: Read>(reader: R) -> Result<PlanSummary, ParseError> {
    from_reader::<RawPlan, R>(reader).and_then(|raw| raw.facts().into_summary())
}

/// What either parser found, before it is judged.
#[derive(Default)]
struct Facts<'a> {
    format_version: Option<&'a str>,
    terraform_version: Option<&'a str>,
    errored: bool,
    /// A field only plans have is present (`resource_changes`, `planned_values`, ...).
    plan_fields: bool,
    changes: Changes,
    drifted_resources: u64,
    output_changes: u64,
}

impl RawPlan {
    fn facts(&self) -> Facts<'_> {
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
        Facts {
            format_version: self.format_version.as_deref(),
            terraform_version: self.terraform_version.as_deref(),
            errored: self.errored,
            plan_fields: self.resource_changes.is_some()
                || self.resource_drift.is_some()
                || self.output_changes.is_some()
                || self.planned_values.is_some()
                || self.prior_state.is_some()
                || self.configuration.is_some(),
            changes,
            drifted_resources,
            output_changes,
        }
    }
}

impl Facts<'_> {
    fn into_summary(self) -> Result<PlanSummary, ParseError> {
        let Some(format_version) = self.format_version.filter(|_| self.plan_fields || self.errored) else {
            return Err(ParseError::NotThisArtifact {
                expected: "a plan (terraform show -json PLANFILE)",
            });
        };
        Ok(PlanSummary {
            format_version: identifier(format_version, 16),
            terraform_version: self.terraform_version.and_then(|v| identifier(v, 64)),
            errored: self.errored,
            drifted_resources: self.drifted_resources,
            changes: self.changes,
            output_changes: self.output_changes,
        })
    }
}

/// The scanner's walk of a plan: the fields and shapes of `RawPlan`, nothing else kept.
fn scan(bytes: &[u8]) -> Scan<Facts<'_>> {
    let mut s = Scanner::new(bytes);
    let mut facts = Facts::default();
    let mut seen = 0;
    s.object(|s, key| {
        let field = match key {
            b"format_version" => 0,
            b"terraform_version" => 1,
            b"errored" => 2,
            b"resource_changes" => 3,
            b"resource_drift" => 4,
            b"output_changes" => 5,
            b"planned_values" => 6,
            b"prior_state" => 7,
            b"configuration" => 8,
            _ => return s.skip_value(),
        };
        first_sight(&mut seen, field)?;
        match field {
            0 => facts.format_version = s.opt_str()?,
            1 => facts.terraform_version = s.opt_str()?,
            2 => facts.errored = s.bool()?,
            _ if s.null()? => {}
            3 => {
                facts.plan_fields = true;
                s.array(|s| {
                    if let Some(actions) = scan_resource_change(s)? {
                        actions.count(&mut facts.changes);
                    }
                    Ok(())
                })?;
            }
            4 => {
                facts.plan_fields = true;
                s.array(|s| {
                    let drifted = scan_resource_change(s)?.is_some_and(|a| a.any_but_no_op);
                    facts.drifted_resources += u64::from(drifted);
                    Ok(())
                })?;
            }
            5 => {
                facts.plan_fields = true;
                // As serde fills a map: a key seen twice keeps its last value.
                let mut outputs = BTreeMap::new();
                s.object(|s, key| {
                    outputs.insert(key, scan_change(s)?.any_but_no_op);
                    Ok(())
                })?;
                facts.output_changes = outputs.values().filter(|changed| **changed).count() as u64;
            }
            _ => {
                facts.plan_fields = true;
                s.skip_value()?;
            }
        }
        Ok(())
    })?;
    s.finish()?;
    Ok(facts)
}

/// An action list as the scanner keeps it: its length, its first two actions (every list
/// `count_actions` tells apart is at most two long) and whether any is not `no-op`.
#[derive(Clone, Copy)]
struct Actions {
    len: usize,
    first: [Action; 2],
    any_but_no_op: bool,
}

impl Actions {
    fn count(&self, changes: &mut Changes) {
        match self.first.get(..self.len) {
            Some(actions) => count_actions(actions, changes),
            None => changes.other += 1,
        }
    }
}

/// A `resource_changes` or `resource_drift` entry: `None` without a `change`.
fn scan_resource_change(s: &mut Scanner<'_>) -> Scan<Option<Actions>> {
    let (mut change, mut seen) = (None, 0);
    s.object(|s, key| match key {
        b"change" => {
            first_sight(&mut seen, 0)?;
            change = if s.null()? { None } else { Some(scan_change(s)?) };
            Ok(())
        }
        _ => s.skip_value(),
    })?;
    Ok(change)
}

/// A `change` object; its `before` and `after` values are skipped.
fn scan_change(s: &mut Scanner<'_>) -> Scan<Actions> {
    let mut actions = Actions {
        len: 0,
        first: [Action::NoOp; 2],
        any_but_no_op: false,
    };
    let mut seen = 0;
    s.object(|s, key| match key {
        b"actions" => {
            first_sight(&mut seen, 0)?;
            s.array(|s| {
                let action = match s.opt_str()?.ok_or(Bail)? {
                    "no-op" => Action::NoOp,
                    "create" => Action::Create,
                    "read" => Action::Read,
                    "update" => Action::Update,
                    "delete" => Action::Delete,
                    "forget" => Action::Forget,
                    _ => Action::Unknown,
                };
                if let Some(slot) = actions.first.get_mut(actions.len) {
                    *slot = action;
                }
                actions.len += 1;
                actions.any_but_no_op |= action != Action::NoOp;
                Ok(())
            })
        }
        _ => s.skip_value(),
    })?;
    Ok(actions)
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
