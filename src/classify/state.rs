//! The state rules: resources or none, encrypted, tainted, and a state that cannot be read yet
//! (mid-rewrite, within the settle time) or at all.

use super::{Classification, delta, plural};
use crate::evidence::StateReading;
use crate::model::ReasonCode;

impl Classification<'_> {
    pub(super) fn state(&mut self) {
        let evidence = self.evidence;
        let Some(artifact) = &evidence.state else {
            if evidence.remote_state_read {
                let message = "no state object in the bucket yet".into();
                self.hold(ReasonCode::NoState, message, None);
                return;
            }
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

    /// The lock table's digest differs from the state object: the normal moment between
    /// Terraform's two writes (the object, then the digest) within the settle time, `failed`
    /// after it, when Terraform itself refuses the state.
    pub(super) fn state_digest(&mut self) {
        let Some(since) = self.evidence.state_digest_mismatch else {
            return;
        };
        let settled_at = since + delta(self.policy.settle_time);
        if self.now < settled_at {
            self.recheck(settled_at);
            return;
        }
        let path = self.evidence.state.as_ref().map(|s| s.path.clone());
        self.fail(
            ReasonCode::StateDigestMismatch,
            "the lock table's digest differs from the state object: Terraform refuses this state \
             (\"state data in S3 does not have the expected content\")"
                .into(),
            path.as_deref(),
            since,
        );
    }
}
