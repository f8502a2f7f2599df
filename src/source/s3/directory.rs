//! Directories whose backend is S3: their state and locks are read from the bucket their
//! `.terraform/terraform.tfstate` names, and classified together with what the directory holds
//! (plans, markers, configuration, crash logs). Their CLI workspaces are those in the bucket. A
//! workspace also found under a bucket root is listed once, under its directory.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use globset::GlobSet;

use super::backend::{self, S3Backend};
use super::env::AwsEnvironment;
use super::poll::Poller;
use super::read::{BACKEND, evidence, problem_kind};
use super::settings::{RemoteRoot, S3Root};
use super::{RemoteError, S3Client};
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
    for dir in dirs {
        let Some(backend) = std::fs::read(dir.dir.join(".terraform/terraform.tfstate"))
            .ok()
            .and_then(|bytes| backend::parse(&bytes).ok().flatten())
        else {
            continue;
        };
        match runtime.block_on(read_one(&backend, env, policy, now, dir, found)) {
            Ok(mut read) => {
                let keys: BTreeSet<String> = read.iter().filter_map(state_key).collect();
                // Listed once, under its directory: the bucket root's reading of the same object goes.
                let has_default = read.iter().any(|w| w.name == "default");
                found.retain(|w| {
                    // `default` always exists, as `terraform workspace list` shows: without its
                    // object in the bucket (never applied), the local reading of it stays.
                    let same_dir = w.root == dir.root && w.path == dir.path && (has_default || w.name != "default");
                    let same_object = !under_directory(w)
                        && S3Root::parse(&w.root).is_ok_and(|r| r.bucket == backend.bucket)
                        && state_key(w).is_some_and(|k| keys.contains(&k));
                    !same_dir && !same_object
                });
                found.append(&mut read);
            }
            Err(err) => problems.push(ScanProblem {
                root: dir.root.clone(),
                path: dir.path.clone(),
                kind: problem_kind(err.kind),
                message: err.to_string(),
            }),
        }
    }
    sort(found);
}

/// The workspaces of one directory, from its bucket and its local evidence.
async fn read_one(
    backend: &S3Backend,
    env: &AwsEnvironment,
    policy: &Policy,
    now: DateTime<Utc>,
    dir: &BackedDir,
    found: &[Workspace],
) -> Result<Vec<Workspace>, RemoteError> {
    let folder = backend.key.rsplit_once('/').map_or("", |(folder, _)| folder);
    let url = if folder.is_empty() {
        format!("s3://{}", backend.bucket)
    } else {
        format!("s3://{}/{folder}", backend.bucket)
    };
    let unusable = || RemoteError::new(super::ErrorKind::BadResponse, super::Operation::List, url.clone());
    let root = RemoteRoot {
        root: S3Root::parse(&url).map_err(|_| unusable())?,
        settings: backend.settings.clone(),
    };
    let client = S3Client::new(&root.root, &root.settings, env)?;
    let result = Poller::new(client, GlobSet::empty()).poll().await?;
    let local = |name: &str| {
        found
            .iter()
            .find(|w| w.root == dir.root && w.path == dir.path && w.name == name)
            .map(|w| &w.evidence)
    };
    let shared = local("default").or_else(|| {
        found
            .iter()
            .find(|w| w.root == dir.root && w.path == dir.path)
            .map(|w| &w.evidence)
    });
    Ok(result
        .workspaces
        .iter()
        .filter(|ws| ws.identity.key == backend.state_key(&ws.identity.workspace))
        .map(|ws| {
            let name = ws.identity.workspace.clone();
            let remote = evidence(&root, ws, now, None, result.lock_table.is_some());
            let evidence = merge(local(&name), shared, remote);
            Workspace {
                id: workspace_id(&dir.root, &dir.path, &name),
                root: dir.root.clone(),
                path: dir.path.clone(),
                verdict: classify(&evidence, now, policy),
                name,
                evidence,
            }
        })
        .collect())
}

/// The directory's evidence of a workspace with the bucket's: a local state snapshot
/// (`.iacwatch/<ws>/state.json`) wins, a local lock file stands beside no remote lock, and the
/// configuration is the directory's. A workspace only the bucket knows takes the directory's
/// configuration.
fn merge(local: Option<&Evidence>, shared: Option<&Evidence>, remote: Evidence) -> Evidence {
    let base = match (local, shared) {
        (Some(local), _) => local.clone(),
        (None, Some(shared)) => Evidence {
            newest_config: shared.newest_config.clone(),
            ..Evidence::default()
        },
        (None, None) => Evidence::default(),
    };
    Evidence {
        state: base.state.clone().or(remote.state),
        terraform_lock: remote.terraform_lock.or(base.terraform_lock.clone()),
        state_digest_mismatch: remote.state_digest_mismatch,
        backend: Some(BACKEND.to_owned()),
        ..base
    }
}

/// The bucket key a workspace's state was read from (the state artifact's path of an S3 reading).
fn state_key(w: &Workspace) -> Option<String> {
    w.evidence.state.as_ref().map(|s| s.path.clone())
}

/// True for a workspace under a directory root (not an `s3://` one).
fn under_directory(w: &Workspace) -> bool {
    !S3Root::is_s3_url(&w.root)
}
