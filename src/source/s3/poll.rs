//! One poll of an S3 root: the listing, a GET only for state and lock objects whose ETag changed
//! since the last poll, one read of the lock table; out comes, per workspace, what was read, as
//! plain data for the classifier's evidence. Bodies are parsed and dropped: only metadata stays.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use globset::GlobSet;

use super::client::{Fetched, ObjectInfo, S3Client};
use super::error::RemoteError;
use super::keys::{StateIdentity, identify, lock_id, lock_object_key, locked_state_key};
use super::locktable::{LockTable, parse_lock_object};
use crate::artifact::tflock::TerraformLock;
use crate::artifact::{ParseError, state};
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
    pub etag: Option<String>,
    pub last_modified: DateTime<Utc>,
    /// The state's metadata, or why it could not be parsed (`Empty` for a 0-byte object).
    pub state: Result<state::StateMeta, ParseError>,
    pub locks: Vec<RemoteLock>,
    pub digest: DigestCheck,
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
}

impl Poller {
    pub fn new(client: S3Client, exclude: GlobSet) -> Poller {
        Poller {
            client,
            exclude,
            shard: None,
            states: HashMap::new(),
            locks: HashMap::new(),
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
            objects.iter().map(|o| o.key.as_str()),
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
        let fetched = self.fetch(&wanted, true).await?;
        let gone = apply(&mut self.states, fetched, &mut problems, state::parse);
        // Only the lock objects of the workspaces read: no other lock is ever shown.
        let read: std::collections::HashSet<&str> = ids.iter().map(|id| id.key.as_str()).collect();
        let lock_objects: Vec<&ObjectInfo> = objects
            .iter()
            .filter(|o| locked_state_key(&o.key).is_some_and(|k| read.contains(k)))
            .collect();
        let fetched = self.fetch(&lock_objects, false).await?;
        apply(&mut self.locks, fetched, &mut problems, parse_lock_object);
        // Forget what is no longer listed.
        self.states.retain(|key, _| by_key.contains_key(key.as_str()));
        self.locks.retain(|key, _| by_key.contains_key(key.as_str()));

        let (table, lock_table) = match self.client.scan_lock_table().await {
            Ok(table) => (table, None),
            Err(err) => (None, Some(err)),
        };
        let workspaces = ids
            .into_iter()
            .filter(|id| !gone.contains(&id.key))
            .filter_map(|identity| {
                let object = by_key.get(identity.key.as_str())?;
                let cached = self.states.get(&identity.key)?;
                let state = cached.value.clone();
                Some(RemoteWorkspace {
                    locks: self.locks_of(&identity.key, table.as_ref()),
                    digest: digest_check(table.as_ref(), &lock_id(&root.bucket, &identity.key), &cached.md5),
                    etag: object.etag.clone(),
                    last_modified: object.last_modified,
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

    /// GETs the objects whose ETag differs from the cached one (with `If-None-Match`).
    async fn fetch(&self, objects: &[&ObjectInfo], states: bool) -> Result<Vec<Fetch>, RemoteError> {
        let cached_etag = |key: &str| {
            if states {
                self.states.get(key).map(|c| c.etag.clone())
            } else {
                self.locks.get(key).map(|c| c.etag.clone())
            }
        };
        let stale: Vec<(String, Option<String>)> = objects
            .iter()
            .filter_map(|o| match cached_etag(&o.key) {
                Some(etag) if etag.is_some() && etag == o.etag => None,
                other => Some((o.key.clone(), other.flatten())),
            })
            .collect();
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
}
