//! The S3 source in the commands: `scan`'s one poll of every `s3://` root, and `serve`'s thread
//! per root that polls every `poll_interval` and sends the root's whole scope to a `Sink`; while
//! the root cannot be read it keeps the statuses, says so (`root_up` false, an `errors` entry) and
//! retries with backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use globset::GlobSet;

use super::backed::Claims;
use super::client::S3Client;
use super::env::AwsEnvironment;
use super::error::RemoteError;
use super::poll::Poller;
use super::read::{bucket_state_key, root_problem, workspaces};
use super::settings::RemoteRoot;
use crate::classify::Policy;
use crate::shard::Shard;
use crate::telemetry::Telemetry;
use crate::workspace::{ScanProblem, Scope, Sink, Update, Workspace, sort};

/// The longest wait between two attempts on a root that cannot be read, in poll intervals.
const MAX_BACKOFF_INTERVALS: u32 = 4;

/// What `scan` read from the S3 roots.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    pub workspaces: Vec<Workspace>,
    pub problems: Vec<ScanProblem>,
    /// The roots that could not be read at all (each also among `problems`).
    pub down: Vec<ScanProblem>,
}

/// The client and poller of a root, reading only the workspaces of `shard`.
fn poller(
    root: &RemoteRoot,
    env: &AwsEnvironment,
    exclude: &GlobSet,
    shard: Option<Shard>,
) -> Result<Poller, RemoteError> {
    let client = S3Client::new(&root.root, &root.settings, env)?;
    Ok(Poller::new(client, exclude.clone()).with_shard(shard))
}

/// One poll of every root, classified at `now` (the time of the poll when `None`); only the
/// workspaces of `shard` are read.
pub fn scan(
    roots: &[RemoteRoot],
    env: &AwsEnvironment,
    exclude: &GlobSet,
    policy: &Policy,
    now: Option<DateTime<Utc>>,
    shard: Option<Shard>,
) -> std::io::Result<ScanOutcome> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut outcome = ScanOutcome::default();
    for root in roots {
        let polled = poller(root, env, exclude, shard).and_then(|mut poller| {
            let mut read = runtime.block_on(poller.poll())?;
            let mut found = workspaces(root, &read, now.unwrap_or_else(Utc::now), policy, None);
            // A state caught mid-write: poll again once it has settled (three settle times at
            // most), rather than print a guess, as for a directory.
            let deadline = std::time::Instant::now() + policy.settle_time * 3;
            while now.is_none() && std::time::Instant::now() < deadline {
                let Some(wake) = found
                    .0
                    .iter()
                    .filter(|w| settling(w))
                    .filter_map(|w| w.verdict.recheck_at)
                    .min()
                else {
                    break;
                };
                let wait = (wake - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(20);
                std::thread::sleep(wait.min(deadline.saturating_duration_since(std::time::Instant::now())));
                read = runtime.block_on(poller.poll())?;
                found = workspaces(root, &read, Utc::now(), policy, None);
            }
            Ok(found)
        });
        match polled {
            Ok((mut found, problems)) => {
                outcome.workspaces.append(&mut found);
                outcome.problems.extend(problems);
            }
            Err(err) => {
                let problem = root_problem(root, &err);
                outcome.problems.push(problem.clone());
                outcome.down.push(problem);
            }
        }
    }
    sort(&mut outcome.workspaces);
    Ok(outcome)
}

fn settling(w: &Workspace) -> bool {
    w.verdict
        .reasons
        .iter()
        .any(|r| r.code == crate::model::ReasonCode::StateSettling)
}

/// What every root's watch shares.
pub struct Watching<'a> {
    pub exclude: &'a GlobSet,
    pub policy: Policy,
    /// Only the workspaces of this shard are read.
    pub shard: Option<Shard>,
    /// Where the requests are counted, under each root's URL.
    pub telemetry: &'a Telemetry,
    /// Ends the watches when set.
    pub stop: &'a Arc<AtomicBool>,
    pub claims: &'a Claims,
}

/// Starts one thread per root, each with the sink `sink()` makes; each says `ready` after its
/// first poll, and ends when `watching.stop` is set.
pub fn spawn<S: Sink + Send + 'static>(
    roots: &[RemoteRoot],
    watching: &Watching,
    mut sink: impl FnMut() -> S,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let env = AwsEnvironment::from_process();
    roots
        .iter()
        .map(|root| {
            let watch = RootWatch {
                root: root.clone(),
                env: env.clone(),
                exclude: watching.exclude.clone(),
                policy: watching.policy,
                shard: watching.shard,
                stop: watching.stop.clone(),
                claims: watching.claims.clone(),
                telemetry: watching.telemetry.clone(),
            };
            let mut sink = sink();
            std::thread::Builder::new()
                .name("iacwatch-s3".into())
                .spawn(move || watch.run(&mut sink))
        })
        .collect()
}

/// The daemon's watch of one root.
struct RootWatch {
    root: RemoteRoot,
    env: AwsEnvironment,
    exclude: GlobSet,
    policy: Policy,
    shard: Option<Shard>,
    stop: Arc<AtomicBool>,
    /// The objects directories read: left out here.
    claims: Claims,
    telemetry: Telemetry,
}

impl RootWatch {
    fn run(self, sink: &mut dyn Sink) {
        let url = self.root.root.url.clone();
        let interval = self.root.settings.poll_interval;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let mut poller = match (
            runtime.as_ref(),
            poller(&self.root, &self.env, &self.exclude, self.shard),
        ) {
            (Ok(_), Ok(poller)) => {
                poller.client().count_into(&self.telemetry, &url);
                Some(poller)
            }
            (Err(err), _) => {
                tracing::error!(root = %url, error = %err, "cannot start the bucket's poller");
                None
            }
            (_, Err(err)) => {
                self.down(sink, &err, true);
                None
            }
        };
        let (Ok(runtime), Some(poller)) = (runtime, poller.as_mut()) else {
            sink.root_up(&url, false);
            sink.ready();
            return;
        };
        let mut failures: u32 = 0;
        let mut ready = false;
        while !self.stop.load(Ordering::Acquire) {
            let now = Utc::now();
            match runtime.block_on(poller.poll()) {
                Ok(result) => {
                    if failures > 0 {
                        tracing::info!(root = %url, "bucket can be read again");
                    }
                    failures = 0;
                    let known = sink.known();
                    let (mut found, problems) = workspaces(&self.root, &result, now, &self.policy, Some(&*known));
                    let bucket = &self.root.root.bucket;
                    // Filtered and sent under the claims: a directory's claim lands before or after.
                    let claims = self.claims.hold();
                    found.retain(|w| {
                        let key = bucket_state_key(&w.evidence);
                        !key.is_some_and(|k| claims.claimed(bucket, k))
                    });
                    sink.root_up(&url, true);
                    sink.send(Update {
                        root: url.clone(),
                        scope: Scope::Subtree(".".into()),
                        workspaces: found,
                        problems,
                        full: true,
                        at: now,
                    });
                }
                Err(err) => {
                    failures = failures.saturating_add(1);
                    self.down(sink, &err, failures == 1);
                }
            }
            if !ready {
                sink.ready();
                ready = true;
            }
            self.sleep(backoff(interval, failures));
        }
    }

    /// The root cannot be read: its statuses stay, it says why.
    fn down(&self, sink: &mut dyn Sink, err: &RemoteError, log: bool) {
        let url = &self.root.root.url;
        if log {
            tracing::warn!(root = %url, kind = err.kind(), error = %err, "bucket cannot be read; keeping the last statuses");
        }
        sink.root_up(url, false);
        sink.send(Update {
            // No workspace is in this scope: every status is kept, only the root's entry changes.
            scope: Scope::Dirs(Default::default()),
            problems: vec![root_problem(&self.root, err)],
            ..Update::cleared(url, Utc::now())
        });
    }

    fn sleep(&self, wait: Duration) {
        let until = Instant::now() + wait;
        while !self.stop.load(Ordering::Acquire) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
}

/// The wait before the next poll: the interval, doubled for each failure in a row, at most
/// `MAX_BACKOFF_INTERVALS` intervals.
fn backoff(interval: Duration, failures: u32) -> Duration {
    let factor = 2u32
        .saturating_pow(failures.saturating_sub(1))
        .min(MAX_BACKOFF_INTERVALS);
    if failures == 0 { interval } else { interval * factor }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_four_intervals() {
        let s = Duration::from_secs(30);
        let waits: Vec<u64> = (0..6).map(|n| backoff(s, n).as_secs()).collect();
        assert_eq!(waits, [30, 30, 60, 120, 120, 120]);
    }
}
