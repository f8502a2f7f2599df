//! Directories whose backend is S3: their state and locks are read from the bucket their
//! `.terraform/terraform.tfstate` names, and classified together with what the directory holds
//! (plans, markers, configuration, crash logs). Their CLI workspaces are those in the bucket. A
//! workspace also found under a bucket root is listed once, under its directory.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use globset::GlobSet;

use super::backend::{self, S3Backend};
use super::env::{AwsEnvironment, CredentialSource};
use super::poll::{PollResult, Poller};
use super::read::{BACKEND, bucket_state_key, evidence, problem_kind};
use super::settings::{RemoteRoot, S3Root};
use super::{RemoteError, S3Client};
use crate::artifact::marker::names;
use crate::classify::{Policy, classify};
use crate::evidence::Evidence;
use crate::workspace::{ScanProblem, Workspace, sort, workspace_id};

/// A workspace directory whose local evidence names the `s3` backend.
#[derive(Clone, Debug)]
pub struct BackedDir {
    /// The root's label and the directory relative to it, as the directory's workspaces have.
    pub root: String,
    pub path: String,
    /// Where the directory is.
    pub dir: PathBuf,
}

/// The directories of `found` whose backend is S3 (`dir` makes a directory's place from its
/// root label and path).
pub fn backed_dirs(found: &[Workspace], dir: impl Fn(&str, &str) -> Option<PathBuf>) -> Vec<BackedDir> {
    let keys: BTreeSet<(&str, &str)> = found
        .iter()
        .filter(|w| w.evidence.backend.as_deref() == Some(BACKEND) && under_directory(w))
        .map(|w| (w.root.as_str(), w.path.as_str()))
        .collect();
    keys.into_iter()
        .filter_map(|(root, path)| {
            Some(BackedDir {
                root: root.to_owned(),
                path: path.to_owned(),
                dir: dir(root, path)?,
            })
        })
        .collect()
}

/// Whether directories are read from their buckets at all: only when the environment names
/// credentials (keys, a profile's keys, web identity, container credentials). With nothing named,
/// the chain would ask the EC2 instance metadata endpoint on behalf of every directory that merely
/// names an S3 backend; a directory then keeps `remote_state_not_visible`. A bucket named as an
/// `s3://` root uses the whole chain, instance metadata included.
pub fn reads_buckets(env: &AwsEnvironment) -> bool {
    env.credential_source() != CredentialSource::InstanceMetadata
}

/// Reads the bucket of every directory in `dirs` and replaces those directories' workspaces in
/// `found` with the ones the bucket holds, classified at `now` with the local evidence. A
/// directory whose bucket cannot be read keeps its local reading and gets an `errors` entry.
pub fn read(
    runtime: &tokio::runtime::Runtime,
    dirs: &[BackedDir],
    env: &AwsEnvironment,
    policy: &Policy,
    now: DateTime<Utc>,
    found: &mut Vec<Workspace>,
    problems: &mut Vec<ScanProblem>,
) {
    if !reads_buckets(env) {
        return;
    }
    for dir in dirs {
        let Some(backend) = dir.backend() else {
            continue;
        };
        let polled = bucket_root(&backend).and_then(|root| {
            let client = S3Client::new(&root.root, &root.settings, env)?;
            let result = runtime.block_on(Poller::new(client, GlobSet::empty()).poll())?;
            Ok((root, result))
        });
        match polled {
            Ok((root, result)) => {
                let local: Vec<Workspace> = found
                    .iter()
                    .filter(|w| w.root == dir.root && w.path == dir.path)
                    .cloned()
                    .collect();
                let mut read = combine(dir, &backend, &root, &result, &local, policy, now);
                let keys: BTreeSet<String> = read.iter().filter_map(state_key).collect();
                found.retain(|w| {
                    let same_dir = w.root == dir.root && w.path == dir.path;
                    // Listed once, under its directory: the bucket root's reading of the object goes.
                    let same_object = !under_directory(w)
                        && S3Root::parse(&w.root).is_ok_and(|r| r.bucket == backend.bucket)
                        && state_key(w).is_some_and(|k| keys.contains(&k));
                    !same_dir && !same_object
                });
                found.append(&mut read);
            }
            Err(err) => problems.push(dir.problem(&err)),
        }
    }
    sort(found);
}

impl BackedDir {
    /// The directory's `s3` backend, when its `.terraform/terraform.tfstate` names one.
    pub fn backend(&self) -> Option<S3Backend> {
        std::fs::read(self.dir.join(".terraform/terraform.tfstate"))
            .ok()
            .and_then(|bytes| backend::parse(&bytes).ok().flatten())
    }

    /// The `errors` entry of a directory whose bucket cannot be read.
    pub fn problem(&self, err: &RemoteError) -> ScanProblem {
        ScanProblem {
            root: self.root.clone(),
            path: self.path.clone(),
            kind: problem_kind(err.kind),
            message: err.to_string(),
        }
    }
}

/// The root to poll for a backend: the folder of its key (named workspaces are found under the
/// workspace key prefix wherever it is).
pub fn bucket_root(backend: &S3Backend) -> Result<RemoteRoot, RemoteError> {
    let folder = backend.key.rsplit_once('/').map_or("", |(folder, _)| folder);
    let url = if folder.is_empty() {
        format!("s3://{}", backend.bucket)
    } else {
        format!("s3://{}/{folder}", backend.bucket)
    };
    let root = S3Root::parse(&url)
        .map_err(|_| RemoteError::new(super::ErrorKind::BadResponse, super::Operation::List, url.clone()))?;
    Ok(RemoteRoot {
        root,
        settings: backend.settings.clone(),
    })
}

/// The workspaces of one directory: those the bucket holds for its backend, each with the
/// directory's local evidence (`local`: the directory's own reading); `default`, which always
/// exists, stays as read locally when the bucket has no object for it yet.
pub fn combine(
    dir: &BackedDir,
    backend: &S3Backend,
    root: &RemoteRoot,
    result: &PollResult,
    local: &[Workspace],
    policy: &Policy,
    now: DateTime<Utc>,
) -> Vec<Workspace> {
    let local_of = |name: &str| local.iter().find(|w| w.name == name).map(|w| &w.evidence);
    let shared = local_of("default").or_else(|| local.first().map(|w| &w.evidence));
    let mut out: Vec<Workspace> = result
        .workspaces
        .iter()
        .filter(|ws| ws.identity.key == backend.state_key(&ws.identity.workspace))
        .map(|ws| {
            let name = ws.identity.workspace.clone();
            let remote = evidence(root, ws, now, None, result.lock_table.is_some());
            let evidence = merge(local_of(&name), shared, remote);
            Workspace {
                id: workspace_id(&dir.root, &dir.path, &name),
                root: dir.root.clone(),
                path: dir.path.clone(),
                verdict: classify(&evidence, now, policy),
                name,
                evidence,
            }
        })
        .collect();
    if !out.iter().any(|w| w.name == "default") {
        out.extend(local.iter().filter(|w| w.name == "default").cloned());
    }
    sort(&mut out);
    out
}

/// The directory's evidence of a workspace with the bucket's: a local state snapshot
/// (`.iacwatch/<ws>/state.json`) wins, a local lock file stands beside no remote lock, and the
/// configuration is the directory's. A workspace only the bucket knows takes the directory's
/// configuration. The markers published into the bucket (`STATEKEY.iacwatch/`) count where the
/// directory has none of the same kind: a local `.iacwatch/<ws>/lock.json`, `last-run.json` or
/// `plan.json` wins over the bucket's (a plan file of the directory itself stands beside the
/// bucket's plan; the newest current one decides).
fn merge(local: Option<&Evidence>, shared: Option<&Evidence>, remote: Evidence) -> Evidence {
    let base = match (local, shared) {
        (Some(local), _) => local.clone(),
        (None, Some(shared)) => Evidence {
            newest_config: shared.newest_config.clone(),
            ..Evidence::default()
        },
        (None, None) => Evidence::default(),
    };
    let local_marker_plan = base.plans.iter().any(|p| is_marker_plan(&p.path));
    let (pipeline_lock, pipeline_lease) = match &base.pipeline_lock {
        Some(local) => (Some(local.clone()), base.pipeline_lease),
        None => (remote.pipeline_lock, remote.pipeline_lease),
    };
    let mut plans = base.plans.clone();
    if !local_marker_plan {
        plans.extend(remote.plans);
    }
    Evidence {
        state: base.state.clone().or(remote.state),
        pipeline_lock,
        pipeline_lease,
        last_run: base.last_run.clone().or(remote.last_run),
        plans,
        terraform_lock: remote.terraform_lock.or(base.terraform_lock.clone()),
        state_digest_mismatch: remote.state_digest_mismatch,
        backend: Some(BACKEND.to_owned()),
        remote_state_read: remote.remote_state_read,
        ..base
    }
}

/// True for a directory's `.iacwatch/<ws>/plan.json` (a path relative to the root).
fn is_marker_plan(path: &str) -> bool {
    let mut parts = path.rsplit('/');
    parts.next() == Some(names::PLAN) && parts.next().is_some() && parts.next() == Some(names::DIR)
}

/// The bucket key a workspace's state was read from (the state artifact's path of an S3 reading).
fn state_key(w: &Workspace) -> Option<String> {
    bucket_state_key(&w.evidence).map(str::to_owned)
}

/// True for a workspace under a directory root (not an `s3://` one).
fn under_directory(w: &Workspace) -> bool {
    !S3Root::is_s3_url(&w.root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::marker::{Lease, parse_last_run, parse_lock};
    use crate::evidence::{Artifact, Holder, Observed};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn lock(path: &str) -> Artifact<Observed<crate::artifact::marker::PipelineLock>> {
        Artifact {
            path: path.into(),
            modified: at("2026-01-01T00:00:00Z"),
            content: Observed {
                content: parse_lock(br#"{"operation":"provision","started_at":"2026-01-01T00:00:00Z"}"#),
                holder: Holder::Unknown,
            },
        }
    }

    fn plan(path: &str) -> Artifact<Result<crate::artifact::plan::PlanSummary, crate::artifact::ParseError>> {
        Artifact {
            path: path.into(),
            modified: at("2026-01-01T00:00:00Z"),
            content: crate::artifact::plan::parse(br#"{"format_version":"1.0"}"#),
        }
    }

    fn remote() -> Evidence {
        Evidence {
            pipeline_lock: Some(Box::new(lock("k.tfstate.iacwatch/lock.json"))),
            pipeline_lease: Some(Lease {
                heartbeat_at: at("2026-01-01T00:00:00Z"),
                lease_seconds: 3,
            }),
            last_run: Some(Box::new(Artifact {
                path: "k.tfstate.iacwatch/last-run.json".into(),
                modified: at("2026-01-01T00:00:00Z"),
                content: parse_last_run(br#"{"operation":"provision","outcome":"failed"}"#),
            })),
            plans: vec![plan("k.tfstate.iacwatch/plan.json")],
            ..Evidence::default()
        }
    }

    #[test]
    fn the_bucket_markers_count_where_the_directory_has_none_of_that_kind() {
        // A directory on an ephemeral runner: nothing local, the bucket's markers count.
        let merged = merge(Some(&Evidence::default()), None, remote());
        assert_eq!(merged.pipeline_lock.unwrap().path, "k.tfstate.iacwatch/lock.json");
        assert!(merged.pipeline_lease.is_some());
        assert_eq!(merged.last_run.unwrap().path, "k.tfstate.iacwatch/last-run.json");
        let plans: Vec<String> = merged.plans.into_iter().map(|p| p.path).collect();
        assert_eq!(plans, ["k.tfstate.iacwatch/plan.json"]);

        // Local markers win, kind by kind; a local lock never takes the bucket's lease.
        let local = Evidence {
            pipeline_lock: Some(Box::new(lock("app/.iacwatch/default/lock.json"))),
            plans: vec![plan("app/.iacwatch/default/plan.json"), plan("app/tfplan.json")],
            ..Evidence::default()
        };
        let merged = merge(Some(&local), None, remote());
        assert_eq!(merged.pipeline_lock.unwrap().path, "app/.iacwatch/default/lock.json");
        assert_eq!(merged.pipeline_lease, None);
        assert_eq!(merged.last_run.unwrap().path, "k.tfstate.iacwatch/last-run.json");
        let plans: Vec<String> = merged.plans.into_iter().map(|p| p.path).collect();
        assert_eq!(plans, ["app/.iacwatch/default/plan.json", "app/tfplan.json"]);

        // A plan file of the directory itself stands beside the bucket's plan.
        let local = Evidence {
            plans: vec![plan("app/tfplan.json")],
            ..Evidence::default()
        };
        let plans: Vec<String> = merge(Some(&local), None, remote())
            .plans
            .into_iter()
            .map(|p| p.path)
            .collect();
        assert_eq!(plans, ["app/tfplan.json", "k.tfstate.iacwatch/plan.json"]);
    }
}
