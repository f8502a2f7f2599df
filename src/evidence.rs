//! Evidence: everything read about one workspace, as plain data, ready for the classifier.
//!
//! The reader (`read`) fills it from disk; tests build it by hand or from fixtures. Times are file
//! modification times unless a field says otherwise.
//!
//! The daemon keeps the evidence of every workspace for as long as it runs, so what most
//! workspaces lack (locks, markers, crash logs, errored states) is boxed: absent, it costs a
//! pointer. The parsed state is shared with the verdict that rests on it.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::artifact::ParseError;
use crate::artifact::marker::{LastRun, Lease, PipelineLock};
use crate::artifact::plan::PlanSummary;
use crate::artifact::state::StateMeta;
use crate::artifact::tflock::TerraformLock;

/// One artifact: where it is (relative to the root), when it was last written, what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact<T> {
    pub path: String,
    pub modified: DateTime<Utc>,
    pub content: T,
}

impl<T> Artifact<T> {
    /// The same artifact with its content transformed.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Artifact<U> {
        Artifact {
            path: self.path,
            modified: self.modified,
            content: f(self.content),
        }
    }
}

/// A file whose presence and time are the evidence (crash logs, `errored.tfstate`, config).
pub type Stamp = Artifact<()>;

/// What the state file held when it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateReading {
    /// 0 bytes: Terraform reads it as no state (taking a lock creates such a file).
    Empty,
    Parsed(Arc<StateMeta>),
    Unreadable(ParseError),
}

impl StateReading {
    /// True when the classifier falls back on the previous reading: the state is empty or
    /// cannot be read, as while it is being rewritten.
    pub fn wants_previous(&self) -> bool {
        matches!(self, StateReading::Empty | StateReading::Unreadable(_))
    }
}

/// Whether the process behind a lock still exists, as far as this machine can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// A process holds the lock (an OS lock is held, or the pid exists on this host).
    Alive,
    /// Nobody holds it: the process that took it is gone.
    Gone,
    /// Cannot be checked from here (another host, a remote file system).
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed<T> {
    pub content: Result<T, ParseError>,
    pub holder: Holder,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Evidence {
    /// The live state: `terraform.tfstate`, the named workspace's, or the pipeline's snapshot.
    pub state: Option<Artifact<StateReading>>,
    /// The last good state read before this one: kept only while the state is empty or cannot
    /// be read (a rewrite settles), the one time the classifier falls back on it.
    pub previous_state: Option<Arc<StateMeta>>,
    pub terraform_lock: Option<Box<Artifact<Observed<TerraformLock>>>>,
    pub pipeline_lock: Option<Box<Artifact<Observed<PipelineLock>>>>,
    /// The lease of a pipeline lock published into a bucket: its runner is alive until the lease
    /// runs out, and dead after it.
    pub pipeline_lease: Option<Lease>,
    pub last_run: Option<Box<Artifact<Result<LastRun, ParseError>>>>,
    /// Every plan JSON file that belongs to the workspace, in no particular order.
    pub plans: Vec<Artifact<Result<PlanSummary, ParseError>>>,
    pub errored_state: Option<Box<Stamp>>,
    /// The newest crash log.
    pub crash_log: Option<Box<Stamp>>,
    /// The newest configuration file of the workspace directory.
    pub newest_config: Option<Stamp>,
    /// Backend type from `.terraform/terraform.tfstate` (`s3` for a workspace of a bucket root).
    pub backend: Option<String>,
    /// True when the state was looked for where the backend keeps it (a workspace of a bucket
    /// root, or a directory whose bucket was read): no state then means none was written yet, not
    /// that it is out of sight.
    pub remote_state_read: bool,
    /// Since when the remote lock table's digest of the state (`-md5` item) has differed from the
    /// state object read: Terraform refuses such a state once its second write is overdue.
    pub state_digest_mismatch: Option<DateTime<Utc>>,
    /// Other artifacts that could not be read (the backend file, a marker directory, ...).
    pub problems: Vec<Artifact<ParseError>>,
}

impl Evidence {
    /// True when the backend keeps state elsewhere than this directory.
    pub fn remote_backend(&self) -> bool {
        self.backend.as_deref().is_some_and(|b| b != "local")
    }

    /// The newest time of anything read: a fallback for when a status began.
    pub fn newest_artifact_time(&self) -> Option<DateTime<Utc>> {
        let times = [
            self.state.as_ref().map(|a| a.modified),
            self.terraform_lock.as_ref().map(|a| a.modified),
            self.pipeline_lock.as_ref().map(|a| a.modified),
            self.last_run.as_ref().map(|a| a.modified),
            self.errored_state.as_ref().map(|a| a.modified),
            self.crash_log.as_ref().map(|a| a.modified),
            self.newest_config.as_ref().map(|a| a.modified),
        ];
        times
            .into_iter()
            .flatten()
            .chain(self.plans.iter().map(|p| p.modified))
            .max()
    }
}
