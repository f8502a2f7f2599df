//! `serve`'s directories whose backend is S3: a `Sink` in front of the local watcher's that merges
//! the bucket's last reading into every batch that holds such a directory, and a thread that
//! polls the buckets of the directories seen so far and sends their merged readings again. Both
//! merge the latest local reading with the latest remote one under one lock, so the two never
//! undo each other.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;
use globset::GlobSet;

use super::directory::{BackedDir, backed_dirs, bucket_root, combine};
use super::env::AwsEnvironment;
use super::error::RemoteError;
use super::poll::{PollResult, Poller};
use super::read::bucket_state_key;
use super::settings::{RemoteRoot, S3Root};
use super::{S3Client, backend::S3Backend};
use crate::classify::Policy;
use crate::telemetry::Telemetry;
use crate::workspace::{Known, Scope, Sink, Update, Workspace};

/// What is known of one directory: its last local reading and its bucket's last reading.
struct Entry {
    dir: BackedDir,
    local: Vec<Workspace>,
    remote: Option<(S3Backend, RemoteRoot, PollResult)>,
    error: Option<RemoteError>,
    polled_at: Option<Instant>,
}

type Dirs = Arc<Mutex<BTreeMap<(String, String), Entry>>>;

fn lock(dirs: &Dirs) -> MutexGuard<'_, BTreeMap<(String, String), Entry>> {
    dirs.lock().unwrap_or_else(|e| e.into_inner())
}

/// The state objects that directories read (by directory: its backend, whose every CLI
/// workspace's state key it reads), so that a bucket root leaves them out: such a workspace is
/// listed once, under its directory. A directory claims its keys as soon as it is seen, before
/// its bucket is first polled, and takes the bucket root's readings of them out of the store.
#[derive(Clone, Debug, Default)]
pub struct Claims(Arc<Mutex<BTreeMap<DirKey, S3Backend>>>);

/// A directory: its root's label and its path.
type DirKey = (String, String);

/// The claims while held: a bucket root filters and sends under it, so that a reading filtered
/// before a claim never lands after the claim took that root's copies out.
pub struct Held<'a>(MutexGuard<'a, BTreeMap<DirKey, S3Backend>>);

impl Held<'_> {
    /// True when a directory reads the object `key` of `bucket`.
    pub fn claimed(&self, bucket: &str, key: &str) -> bool {
        self.0.values().any(|b| b.bucket == bucket && b.holds(key))
    }
}

impl Claims {
    /// The claims, held until the answer is dropped.
    pub fn hold(&self) -> Held<'_> {
        Held(self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The local watcher's sink, merging.
pub struct Merging<S> {
    inner: S,
    dirs: Dirs,
    roots: Vec<(String, PathBuf)>,
    policy: Policy,
    claims: Claims,
    /// Whether directories read their buckets at all (`directory::reads_buckets`).
    reads: bool,
}

/// How the buckets of the directories are polled.
#[derive(Clone, Debug)]
pub struct Polling {
    pub policy: Policy,
    /// Between two polls of one directory's bucket.
    pub interval: Duration,
    /// Where the requests are counted (under the directory root's label).
    pub telemetry: Telemetry,
}

/// Wraps the local watcher's sink `local`, and starts the thread that polls the buckets (with its
/// own sink `remote`) every `polling.interval` until `stop`. `roots`: each directory root's label
/// and path.
pub fn wrap<S: Sink, R: Sink + Send + 'static>(
    local: S,
    mut remote: R,
    roots: Vec<(String, PathBuf)>,
    polling: Polling,
    stop: &Arc<AtomicBool>,
    claims: &Claims,
) -> std::io::Result<Merging<S>> {
    let dirs: Dirs = Arc::default();
    let polled = dirs.clone();
    let stop = stop.clone();
    let policy = polling.policy;
    std::thread::Builder::new()
        .name("iacwatch-s3-dirs".into())
        .spawn(move || {
            remote.ready();
            poll_loop(&polled, &mut remote, &polling, &stop);
        })?;
    Ok(Merging {
        inner: local,
        dirs,
        roots,
        policy,
        claims: claims.clone(),
        reads: super::directory::reads_buckets(&AwsEnvironment::from_process()),
    })
}

impl<S: Sink> Sink for Merging<S> {
    fn send(&mut self, mut update: Update) {
        let held = self.dirs.clone();
        let mut dirs = lock(&held);
        let found = backed_dirs(&update.workspaces, |label, path| {
            let (_, root) = self.roots.iter().find(|(l, _)| l == label)?;
            Some(if path == "." { root.clone() } else { root.join(path) })
        });
        // A directory in scope that is no longer S3-backed is forgotten.
        dirs.retain(|(root, path), _| {
            !(root == &update.root && update.scope.covers(path))
                || found.iter().any(|d| &d.root == root && &d.path == path)
        });
        self.claim(&update, &found);
        for dir in found {
            let local: Vec<Workspace> = update
                .workspaces
                .iter()
                .filter(|w| w.root == dir.root && w.path == dir.path)
                .cloned()
                .collect();
            let entry = dirs
                .entry((dir.root.clone(), dir.path.clone()))
                .or_insert_with(|| Entry {
                    dir,
                    local: Vec::new(),
                    remote: None,
                    error: None,
                    polled_at: None,
                });
            entry.local = local;
            if entry.remote.is_some() || entry.error.is_some() {
                let (workspaces, problems) = merged(entry, &self.policy);
                let key = (entry.dir.root.as_str(), entry.dir.path.as_str());
                update.workspaces.retain(|w| (w.root.as_str(), w.path.as_str()) != key);
                update.workspaces.extend(workspaces);
                update.problems.extend(problems);
            }
        }
        // Sent under the lock: a poll's merge cannot slip in between with an older local reading.
        self.inner.send(update);
    }

    fn root_up(&mut self, root: &str, up: bool) {
        self.inner.root_up(root, up);
    }

    fn ready(&mut self) {
        self.inner.ready();
    }

    fn known(&self) -> Arc<dyn Known> {
        self.inner.known()
    }
}

impl<S: Sink> Merging<S> {
    /// Claims the state keys of the S3-backed directories `found` in `update`'s scope (and lets
    /// go of those no longer found there), and takes a bucket root's readings of newly claimed
    /// keys out of the store, before the directory's own batch is sent: never listed twice.
    fn claim(&mut self, update: &Update, found: &[BackedDir]) {
        let mut fresh = Vec::new();
        {
            let mut claims = self.claims.hold();
            claims.0.retain(|(root, path), _| {
                !(root == &update.root && update.scope.covers(path))
                    || found.iter().any(|d| &d.root == root && &d.path == path)
            });
            for dir in found {
                let key = (dir.root.clone(), dir.path.clone());
                match dir.backend().filter(|_| self.reads) {
                    Some(backend) if claims.0.get(&key) != Some(&backend) => {
                        claims.0.insert(key, backend.clone());
                        fresh.push(backend);
                    }
                    Some(_) => {}
                    None => {
                        claims.0.remove(&key);
                    }
                }
            }
        }
        if fresh.is_empty() {
            return;
        }
        let known = self.inner.known();
        // By bucket root: the directories (identity paths) that hold a newly claimed object.
        let mut claimed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let holds = |w: &Workspace| {
            let key = bucket_state_key(&w.evidence);
            let bucket = S3Root::parse(&w.root).map(|r| r.bucket);
            S3Root::is_s3_url(&w.root)
                && fresh
                    .iter()
                    .any(|b| bucket.as_ref().is_ok_and(|x| *x == b.bucket) && key.is_some_and(|k| b.holds(k)))
        };
        for w in known.workspaces().filter(|w| holds(w)) {
            claimed.entry(w.root.clone()).or_default().insert(w.path.clone());
        }
        for (root, paths) in claimed {
            // What else those directories of the bucket root hold stays.
            let kept = known
                .workspaces()
                .filter(|w| w.root == root && paths.contains(&w.path) && !holds(w))
                .cloned()
                .collect();
            self.inner.send(Update {
                scope: Scope::Dirs(paths),
                workspaces: kept,
                ..Update::cleared(&root, Utc::now())
            });
        }
    }
}

/// A directory's workspaces from its latest readings, and its `errors` entry while its bucket
/// cannot be read (the last remote reading is kept meanwhile).
fn merged(entry: &Entry, policy: &Policy) -> (Vec<Workspace>, Vec<crate::workspace::ScanProblem>) {
    let now = Utc::now();
    let workspaces = match &entry.remote {
        Some((backend, root, result)) => combine(&entry.dir, backend, root, result, &entry.local, policy, now),
        None => entry.local.clone(),
    };
    (workspaces, entry.error.iter().map(|e| entry.dir.problem(e)).collect())
}

fn poll_loop(dirs: &Dirs, sink: &mut dyn Sink, polling: &Polling, stop: &AtomicBool) {
    let (policy, interval) = (polling.policy, polling.interval);
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        tracing::error!("cannot start the poller of directories with an S3 backend");
        return;
    };
    let env = AwsEnvironment::from_process();
    let mut pollers: HashMap<(String, String), (S3Backend, RemoteRoot, Poller)> = HashMap::new();
    while !stop.load(Ordering::Acquire) {
        let due: Vec<((String, String), BackedDir)> = lock(dirs)
            .iter()
            .filter(|(_, e)| e.polled_at.is_none_or(|at| at.elapsed() >= interval))
            .map(|(k, e)| (k.clone(), e.dir.clone()))
            .collect();
        for (key, dir) in due {
            let outcome = poll_dir(&runtime, &env, &polling.telemetry, &mut pollers, &key, &dir);
            let mut dirs = lock(dirs);
            let Some(entry) = dirs.get_mut(&key) else { continue };
            entry.polled_at = Some(Instant::now());
            match outcome {
                Ok(remote) => {
                    entry.remote = remote;
                    entry.error = None;
                }
                Err(err) => entry.error = Some(err),
            }
            let (workspaces, problems) = merged(entry, &policy);
            sink.send(Update {
                scope: Scope::Dirs([key.1.clone()].into()),
                workspaces,
                problems,
                ..Update::cleared(&key.0, Utc::now())
            });
        }
        let pause = Instant::now() + Duration::from_millis(200);
        while Instant::now() < pause && !stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One poll of a directory's bucket; `Ok(None)` when the directory names no S3 backend (any more).
fn poll_dir(
    runtime: &tokio::runtime::Runtime,
    env: &AwsEnvironment,
    telemetry: &Telemetry,
    pollers: &mut HashMap<(String, String), (S3Backend, RemoteRoot, Poller)>,
    key: &(String, String),
    dir: &BackedDir,
) -> Result<Option<(S3Backend, RemoteRoot, PollResult)>, RemoteError> {
    let Some(backend) = dir.backend().filter(|_| super::directory::reads_buckets(env)) else {
        pollers.remove(key);
        return Ok(None);
    };
    if pollers.get(key).is_none_or(|(b, ..)| *b != backend) {
        let root = bucket_root(&backend)?;
        let client = S3Client::new(&root.root, &root.settings, env)?;
        client.count_into(telemetry, &key.0);
        pollers.insert(
            key.clone(),
            (backend.clone(), root, Poller::new(client, GlobSet::empty())),
        );
    }
    let Some((backend, root, poller)) = pollers.get_mut(key) else {
        return Ok(None);
    };
    let result = runtime.block_on(poller.poll())?;
    Ok(Some((backend.clone(), root.clone(), result)))
}
