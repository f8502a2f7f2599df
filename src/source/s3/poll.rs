//! One poll of an S3 root: the listing, a GET only for state, lock and pipeline marker objects
//! (`STATEKEY.iacwatch/lock.json`, `last-run.json`, `plan.json`) whose ETag changed since the last
//! poll, one read of the lock table; out comes, per workspace, what was read, as plain data for
//! the classifier's evidence. Bodies are parsed and dropped: only metadata stays.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use globset::GlobSet;

use super::client::{Fetched, ObjectInfo, S3Client};
use super::error::RemoteError;
use super::keys::{StateIdentity, identify, lock_id, lock_object_key, locked_state_key};
use super::locktable::{LockTable, parse_lock_object};
use crate::artifact::marker::{self, LastRun, Lease, PipelineLock, names};
use crate::artifact::plan::{self, PlanSummary};
use crate::artifact::tflock::TerraformLock;
use crate::artifact::{ParseError, state};
use crate::evidence::Artifact;
use crate::shard::Shard;

/// GETs in flight at once during a poll.
const PARALLEL_GETS: usize = 16;

/// Where a remote lock was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockSource {
    /// The DynamoDB lock table's item `BUCKET/KEY`.
    Table,
    /// The S3 native lock object `KEY.tflock`.
    Object,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteLock {
    pub source: LockSource,
    pub lock: Result<TerraformLock, ParseError>,
}

/// The lock table's `-md5` item against the state object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestCheck {
    /// The root names no lock table, or it could not be read.
    NotChecked,
    /// The table holds no digest item for this state.
    NoItem,
    Matches,
    /// Terraform would refuse this state ("does not have the expected content"), unless it is the
    /// moment between its two writes: the classifier waits the settle time.
    Differs,
    /// The item holds no valid MD5.
    Unknown,
}

/// What one poll read about one workspace of the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteWorkspace {
    pub identity: StateIdentity,
    /// The state object, or `None` when only its pipeline markers are listed: the first apply of
    /// a configuration publishes `STATEKEY.iacwatch/lock.json` before Terraform writes `STATEKEY`.
    pub state: Option<RemoteState>,
    pub locks: Vec<RemoteLock>,
    pub digest: DigestCheck,
    pub markers: RemoteMarkers,
}

/// A listed state object, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteState {
    pub etag: Option<String>,
    pub last_modified: DateTime<Utc>,
    /// The state's metadata, or why it could not be parsed (`Empty` for a 0-byte object).
    pub content: Result<state::StateMeta, ParseError>,
}

/// A published pipeline lock: the lock and its lease, or why it could not be read.
pub type PublishedLock = Result<(PipelineLock, Option<Lease>), ParseError>;

/// The pipeline markers published beside a workspace's state object (`STATEKEY.iacwatch/NAME`):
/// each one's key, `LastModified` and what it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteMarkers {
    pub lock: Option<Artifact<PublishedLock>>,
    pub last_run: Option<Artifact<Result<LastRun, ParseError>>>,
    pub plan: Option<Artifact<Result<PlanSummary, ParseError>>>,
}

impl RemoteMarkers {
    pub fn is_empty(&self) -> bool {
        self.lock.is_none() && self.last_run.is_none() && self.plan.is_none()
    }
}

/// The outcome of a poll whose listing succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollResult {
    pub workspaces: Vec<RemoteWorkspace>,
    /// Objects that could not be read this time (deleted since the listing, unreadable): each one
    /// left out, or kept at what was read before.
    pub problems: Vec<RemoteError>,
    /// Why the lock table could not be read, when it could not.
    pub lock_table: Option<RemoteError>,
}

/// A GET of one key, and its answer.
type Fetch = (String, Result<Fetched, RemoteError>);

/// A parsed object, by the ETag it was read at, with the MD5 of its body.
#[derive(Clone, Debug)]
struct Cached<T> {
    etag: Option<String>,
    md5: String,
    value: T,
}

/// Polls one root, remembering what each object held at its ETag.
#[derive(Debug)]
pub struct Poller {
    client: S3Client,
    exclude: GlobSet,
    /// `--shard I/N`: only this shard's workspaces are read (their states and lock objects).
    shard: Option<Shard>,
    states: HashMap<String, Cached<Result<state::StateMeta, ParseError>>>,
    locks: HashMap<String, Cached<Result<TerraformLock, ParseError>>>,
    pipeline_locks: HashMap<String, Cached<PublishedLock>>,
    last_runs: HashMap<String, Cached<Result<LastRun, ParseError>>>,
    plans: HashMap<String, Cached<Result<PlanSummary, ParseError>>>,
}

/// The ETag a cache holds for a key: `None` when the key is not cached.
fn cached_etag<T>(cache: &HashMap<String, Cached<T>>) -> impl Fn(&str) -> Option<Option<String>> + '_ {
    move |key| cache.get(key).map(|c| c.etag.clone())
}

impl Poller {
    pub fn new(client: S3Client, exclude: GlobSet) -> Poller {
        Poller {
            client,
            exclude,
            shard: None,
            states: HashMap::new(),
            locks: HashMap::new(),
            pipeline_locks: HashMap::new(),
            last_runs: HashMap::new(),
            plans: HashMap::new(),
        }
    }

    /// Reads only the workspaces of `shard`: the whole bucket is listed, but only the states and
    /// lock objects of the shard's workspaces are fetched.
    pub fn with_shard(mut self, shard: Option<Shard>) -> Poller {
        self.shard = shard;
        self
    }

    pub fn client(&self) -> &S3Client {
        &self.client
    }

    /// One poll. An error means the root could not be read (its listing failed, or a GET failed
    /// in a way that says the service is down): keep the last statuses.
    pub async fn poll(&mut self) -> Result<PollResult, RemoteError> {
        let objects = self.client.list().await?;
        let root = self.client.root().clone();
        let mut ids = identify(
            &root,
            self.client.settings().workspace_prefix(),
            candidate_keys(&objects),
            &self.exclude,
        );
        if let Some(shard) = self.shard {
            ids.retain(|id| shard.takes_identity(&root.url, &id.path, &id.workspace));
        }
        let by_key: HashMap<&str, &ObjectInfo> = objects.iter().map(|o| (o.key.as_str(), o)).collect();
        let mut problems = Vec::new();

        let wanted: Vec<&ObjectInfo> = ids
            .iter()
            .filter_map(|id| by_key.get(id.key.as_str()).copied())
            .collect();
        let fetched = self.fetch(&wanted, cached_etag(&self.states)).await?;
        let gone = apply(&mut self.states, fetched, &mut problems, state::parse);
        // Only the lock objects and markers of the workspaces read: no other is ever shown.
        let state_keys: BTreeSet<&str> = ids.iter().map(|id| id.key.as_str()).collect();
        let lock_objects: Vec<&ObjectInfo> = objects
            .iter()
            .filter(|o| locked_state_key(&o.key).is_some_and(|k| state_keys.contains(k)))
            .collect();
        let fetched = self.fetch(&lock_objects, cached_etag(&self.locks)).await?;
        apply(&mut self.locks, fetched, &mut problems, parse_lock_object);
        // The markers of the workspaces found, by kind.
        let markers_named = |wanted: &str| -> Vec<&ObjectInfo> {
            objects
                .iter()
                .filter(|o| {
                    names::split_remote_key(&o.key)
                        .is_some_and(|(state, name)| name == wanted && state_keys.contains(state))
                })
                .collect()
        };
        let fetched = self
            .fetch(&markers_named(names::LOCK), cached_etag(&self.pipeline_locks))
            .await?;
        apply(
            &mut self.pipeline_locks,
            fetched,
            &mut problems,
            marker::parse_published_lock,
        );
        let fetched = self
            .fetch(&markers_named(names::LAST_RUN), cached_etag(&self.last_runs))
            .await?;
        apply(&mut self.last_runs, fetched, &mut problems, marker::parse_last_run);
        let fetched = self
            .fetch(&markers_named(names::PLAN), cached_etag(&self.plans))
            .await?;
        apply(&mut self.plans, fetched, &mut problems, plan::parse);
        // Forget what is no longer listed.
        let listed = |key: &String| by_key.contains_key(key.as_str());
        self.states.retain(|k, _| listed(k));
        self.locks.retain(|k, _| listed(k));
        self.pipeline_locks.retain(|k, _| listed(k));
        self.last_runs.retain(|k, _| listed(k));
        self.plans.retain(|k, _| listed(k));

        let (table, lock_table) = match self.client.scan_lock_table().await {
            Ok(table) => (table, None),
            Err(err) => (None, Some(err)),
        };
        let workspaces = ids
            .into_iter()
            .filter(|id| !gone.contains(&id.key))
            .filter_map(|identity| {
                let markers = self.markers_of(&identity.key, &by_key);
                let (state, digest) = match by_key.get(identity.key.as_str()) {
                    Some(object) => {
                        let cached = self.states.get(&identity.key)?;
                        let state = RemoteState {
                            etag: object.etag.clone(),
                            last_modified: object.last_modified,
                            content: cached.value.clone(),
                        };
                        let digest = digest_check(table.as_ref(), &lock_id(&root.bucket, &identity.key), &cached.md5);
                        (Some(state), digest)
                    }
                    // Markers only: a workspace with no state yet, when a marker could be read.
                    None if markers.is_empty() => return None,
                    None => (None, DigestCheck::NotChecked),
                };
                Some(RemoteWorkspace {
                    locks: self.locks_of(&identity.key, table.as_ref()),
                    markers,
                    digest,
                    state,
                    identity,
                })
            })
            .collect();
        Ok(PollResult {
            workspaces,
            problems,
            lock_table,
        })
    }

    /// GETs the objects whose ETag differs from the cached one (`cached_etag`; with
    /// `If-None-Match`).
    async fn fetch(
        &self,
        objects: &[&ObjectInfo],
        cached_etag: impl Fn(&str) -> Option<Option<String>>,
    ) -> Result<Vec<Fetch>, RemoteError> {
        let stale = to_fetch(objects, cached_etag);
        let client = &self.client;
        let results: Vec<_> = futures_util::stream::iter(stale)
            .map(|(key, etag)| async move {
                let result = client.get(&key, etag.as_deref()).await;
                (key, result)
            })
            .buffer_unordered(PARALLEL_GETS)
            .collect()
            .await;
        if let Some(err) = results
            .iter()
            .find_map(|(_, r)| r.as_ref().err().filter(|e| e.kind.root_down()))
        {
            return Err(err.clone());
        }
        Ok(results)
    }

    /// The markers read for the state object `key` (those the cache holds, i.e. listed and read).
    fn markers_of(&self, key: &str, listing: &HashMap<&str, &ObjectInfo>) -> RemoteMarkers {
        fn artifact<T: Clone>(
            cache: &HashMap<String, Cached<T>>,
            listing: &HashMap<&str, &ObjectInfo>,
            key: String,
        ) -> Option<Artifact<T>> {
            let cached = cache.get(&key)?;
            let object = listing.get(key.as_str())?;
            Some(Artifact {
                modified: object.last_modified,
                content: cached.value.clone(),
                path: key,
            })
        }
        RemoteMarkers {
            lock: artifact(&self.pipeline_locks, listing, names::remote_key(key, names::LOCK)),
            last_run: artifact(&self.last_runs, listing, names::remote_key(key, names::LAST_RUN)),
            plan: artifact(&self.plans, listing, names::remote_key(key, names::PLAN)),
        }
    }

    fn locks_of(&self, key: &str, table: Option<&LockTable>) -> Vec<RemoteLock> {
        let mut locks = Vec::new();
        if let Some(lock) = table.and_then(|t| t.locks.get(&lock_id(&self.client.root().bucket, key))) {
            locks.push(RemoteLock {
                source: LockSource::Table,
                lock: lock.clone(),
            });
        }
        if let Some(cached) = self.locks.get(&lock_object_key(key)) {
            locks.push(RemoteLock {
                source: LockSource::Object,
                lock: cached.value.clone(),
            });
        }
        locks
    }
}

/// The keys that may be state objects: every listed key, and the state key of every listed
/// pipeline marker (`STATEKEY.iacwatch/NAME`), so a workspace whose state Terraform has not
/// written yet is identified, filtered and sharded as its state object would be.
fn candidate_keys(objects: &[ObjectInfo]) -> BTreeSet<&str> {
    objects
        .iter()
        .flat_map(|o| {
            [
                Some(o.key.as_str()),
                names::split_remote_key(&o.key).map(|(state, _)| state),
            ]
        })
        .flatten()
        .collect()
}

/// The objects to GET, with the ETag to send as `If-None-Match`: every object whose listed ETag is
/// not the one its cache entry was read at (an object listed without an ETag is always read).
fn to_fetch(
    objects: &[&ObjectInfo],
    cached_etag: impl Fn(&str) -> Option<Option<String>>,
) -> Vec<(String, Option<String>)> {
    objects
        .iter()
        .filter_map(|o| match cached_etag(&o.key) {
            Some(etag) if etag.is_some() && etag == o.etag => None,
            other => Some((o.key.clone(), other.flatten())),
        })
        .collect()
}

/// Puts what the GETs brought into `cache`; the keys that were gone (404) are returned.
fn apply<T>(
    cache: &mut HashMap<String, Cached<Result<T, ParseError>>>,
    fetched: Vec<Fetch>,
    problems: &mut Vec<RemoteError>,
    parse: fn(&[u8]) -> Result<T, ParseError>,
) -> Vec<String> {
    let mut gone = Vec::new();
    for (key, result) in fetched {
        match result {
            Ok(Fetched::Unchanged) => {}
            Ok(Fetched::Changed { etag, body, .. }) => {
                let value = parse(&body);
                let md5 = hex_md5(&body);
                cache.insert(key, Cached { etag, md5, value });
            }
            Err(err) => {
                if err.kind == super::error::ErrorKind::NotFound {
                    cache.remove(&key);
                    gone.push(key);
                }
                problems.push(err);
            }
        }
    }
    gone
}

/// Terraform's `-md5` item is the MD5 of the bytes it wrote: compared with the MD5 of the body
/// read, which holds for multipart uploads and KMS-encrypted objects too, whose ETag is no MD5.
fn digest_check(table: Option<&LockTable>, lock_id: &str, md5: &str) -> DigestCheck {
    let Some(table) = table else {
        return DigestCheck::NotChecked;
    };
    match table.digests.get(lock_id) {
        None => DigestCheck::NoItem,
        Some(None) => DigestCheck::Unknown,
        Some(Some(digest)) if digest == md5 => DigestCheck::Matches,
        Some(Some(_)) => DigestCheck::Differs,
    }
}

fn hex_md5(body: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(body).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_digest_against_the_body() {
        let body = br#"{"version":4}"#;
        let md5 = hex_md5(body);
        assert_eq!(md5.len(), 32);
        assert_eq!(hex_md5(b""), "d41d8cd98f00b204e9800998ecf8427e");
        let mut table = LockTable::default();
        table.digests.insert("b/k.tfstate".into(), Some(md5.clone()));
        table.digests.insert("b/bad.tfstate".into(), None);
        let other = hex_md5(b"{}");
        let cases = [
            (Some(&table), "b/k.tfstate", &md5, DigestCheck::Matches),
            (Some(&table), "b/k.tfstate", &other, DigestCheck::Differs),
            (Some(&table), "b/bad.tfstate", &md5, DigestCheck::Unknown),
            (Some(&table), "b/other.tfstate", &md5, DigestCheck::NoItem),
            (None, "b/k.tfstate", &md5, DigestCheck::NotChecked),
        ];
        for (table, id, md5, expected) in cases {
            assert_eq!(digest_check(table, id, md5), expected, "{id} {md5}");
        }
    }

    fn listed(key: &str, etag: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            etag: Some(etag.into()),
            last_modified: DateTime::<Utc>::UNIX_EPOCH,
            size: 1,
        }
    }

    #[test]
    fn unchanged_markers_cost_no_get() {
        const LOCK: &str = "a.tfstate.iacwatch/lock.json";
        let body = br#"{"operation":"provision","started_at":"2026-01-01T00:00:00Z","heartbeat_at":"2026-01-01T00:00:01Z","lease_seconds":3}"#;
        let mut cache: HashMap<String, Cached<PublishedLock>> = HashMap::new();
        let mut problems = Vec::new();
        let first = listed(LOCK, "\"1\"");
        // First poll: nothing cached, one GET without `If-None-Match`.
        assert_eq!(to_fetch(&[&first], cached_etag(&cache)), [(LOCK.to_owned(), None)]);
        let got = Fetched::Changed {
            etag: Some("\"1\"".into()),
            body: bytes::Bytes::from_static(body),
            last_modified: DateTime::<Utc>::UNIX_EPOCH,
        };
        apply(
            &mut cache,
            vec![(LOCK.into(), Ok(got))],
            &mut problems,
            marker::parse_published_lock,
        );
        let (_, lease) = cache[LOCK].value.clone().unwrap();
        assert_eq!(lease.map(|l| l.lease_seconds), Some(3));
        // Second poll, same ETag: no GET at all.
        assert!(to_fetch(&[&first], cached_etag(&cache)).is_empty());
        // A heartbeat rewrote it: one conditional GET with the ETag read before.
        let second = listed(LOCK, "\"2\"");
        assert_eq!(
            to_fetch(&[&second], cached_etag(&cache)),
            [(LOCK.to_owned(), Some("\"1\"".to_owned()))]
        );
        // Deleted between the listing and the GET: an entry in `errors`, the marker forgotten.
        let gone = RemoteError::new(super::super::ErrorKind::NotFound, super::super::Operation::Get, LOCK);
        let left = apply(
            &mut cache,
            vec![(LOCK.into(), Err(gone))],
            &mut problems,
            marker::parse_published_lock,
        );
        assert_eq!(left, [LOCK.to_owned()]);
        assert!(cache.is_empty());
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].kind, super::super::ErrorKind::NotFound);
    }

    #[test]
    fn a_state_key_with_only_markers_is_a_workspace_as_its_state_would_be() {
        let root = super::super::settings::S3Root::parse("s3://tfstate/prod").unwrap();
        let listing = [
            // The first apply of `new`: its lock published, its state not written yet.
            listed("prod/new/terraform.tfstate.iacwatch/lock.json", "\"1\""),
            listed("env:/qa/prod/new/terraform.tfstate.iacwatch/last-run.json", "\"1\""),
            // A state and its markers: one workspace, not two.
            listed("prod/old/terraform.tfstate", "\"1\""),
            listed("prod/old/terraform.tfstate.iacwatch/plan.json", "\"1\""),
            // Excluded, outside the prefix, or no state key: none.
            listed("prod/scratch/terraform.tfstate.iacwatch/lock.json", "\"1\""),
            listed("other/terraform.tfstate.iacwatch/lock.json", "\"1\""),
            listed("prod/notes.txt.iacwatch/lock.json", "\"1\""),
            listed("prod/x/terraform.tfstate.iacwatch/other.json", "\"1\""),
        ];
        let mut exclude = globset::GlobSetBuilder::new();
        exclude.add(globset::Glob::new("scratch").unwrap());
        let ids = identify(&root, "env:", candidate_keys(&listing), &exclude.build().unwrap());
        let got: Vec<(&str, &str, &str)> = ids
            .iter()
            .map(|id| (id.path.as_str(), id.workspace.as_str(), id.key.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("new/terraform.tfstate", "default", "prod/new/terraform.tfstate"),
                ("new/terraform.tfstate", "qa", "env:/qa/prod/new/terraform.tfstate"),
                ("old/terraform.tfstate", "default", "prod/old/terraform.tfstate"),
            ]
        );
    }
}
