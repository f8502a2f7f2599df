//! The lock rules: a pipeline lock (`lock.json`) and Terraform's lock, each live, dead or stale.

use chrono::{DateTime, TimeDelta, Utc};

use super::{Classification, LockState, age, delta};
use crate::artifact::marker::Operation;
use crate::artifact::tflock::LockOperation;
use crate::evidence::Holder;
use crate::model::ReasonCode;

impl Classification<'_> {
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

    pub(super) fn pipeline_lock(&mut self) {
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
        // A published lock's lease answers for its runner as a pid answers on this host.
        let lease = self.evidence.pipeline_lease;
        let lease_expired = lease.is_some_and(|l| l.expired(self.now));
        let holder = match lease {
            Some(_) if lease_expired => Holder::Gone,
            Some(l) => {
                // Dead strictly after the lease's last moment.
                self.recheck(l.expires_at() + TimeDelta::milliseconds(1));
                artifact.content.holder
            }
            None => artifact.content.holder,
        };
        let state = self.lock_state(holder, started);
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
                if let Some(lease) = lease.filter(|_| lease_expired) {
                    let silent = human_age(age(self.now, lease.heartbeat_at));
                    self.fail(
                        ReasonCode::DeadPipeline,
                        format!(
                            "{op}{by} is dead: the runner's lease expired (no heartbeat for {silent}, lease {}s)",
                            lease.lease_seconds
                        ),
                        Some(path),
                        lease.expires_at(),
                    );
                } else {
                    let pid = lock.pid.map(|p| format!(" (pid {p} is gone)")).unwrap_or_default();
                    self.fail(
                        ReasonCode::DeadPipeline,
                        format!("{op}{by} ended without clearing its lock{pid}"),
                        Some(path),
                        started,
                    );
                }
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

    pub(super) fn terraform_lock(&mut self) {
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
        // A remote lock cannot be asked; the pipeline's expired lease says its run is dead.
        let run_dead = holder == Holder::Unknown
            && self.verdict_locks.0 == Some(LockState::Dead)
            && self.evidence.pipeline_lease.is_some_and(|l| l.expired(self.now));
        let state = if run_dead {
            LockState::Dead
        } else {
            self.lock_state(holder, created)
        };
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
        if run_dead {
            self.fail(
                ReasonCode::DeadLock,
                format!("Terraform lock for {op}{who} is left behind: the pipeline runner's lease expired"),
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
