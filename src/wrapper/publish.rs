//! `iacwatch run --publish`: the pipeline markers written into the bucket beside the workspace's
//! state object (`STATEKEY.iacwatch/lock.json`, `last-run.json`, `plan.json`), found from the
//! directory's `s3` backend (`.terraform/terraform.tfstate`). The lock carries a heartbeat,
//! rewritten every lease / 3, so a reader calls a lost runner's lock dead after one lease.
//!
//! Publishing never breaks a run: whatever fails is said once on stderr (a `RemoteError`'s
//! message: operation, object and kind, never a credential) and CMD runs on.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::artifact::marker::{LastRun, PipelineLock};
use crate::source::s3::backend;
use crate::source::s3::{AwsEnvironment, RemoteError, S3Client};

/// The default lease of a published lock.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// The shortest lease accepted (its third is the heartbeat interval).
pub const MIN_LEASE: Duration = Duration::from_secs(3);

pub use crate::artifact::marker::names::remote_key as marker_key;

/// `lock.json` as published: the pipeline lock, plus when its holder last said it is alive.
#[derive(Serialize)]
pub struct PublishedLock<'a> {
    #[serde(flatten)]
    pub lock: &'a PipelineLock,
    pub heartbeat_at: DateTime<Utc>,
    pub lease_seconds: u64,
}

/// Where the markers of one workspace go.
#[derive(Debug)]
struct Target {
    client: S3Client,
    state_key: String,
}

/// The bucket and state key of `workspace` in `dir`, from its backend configuration.
fn target(dir: &Path, workspace: &str, env: &AwsEnvironment) -> Result<Target, String> {
    let file = dir.join(".terraform/terraform.tfstate");
    let bytes = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let backend = backend::parse(&bytes)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .ok_or_else(|| format!("{} names no s3 backend with a bucket and a key", file.display()))?;
    let root = backend
        .root()
        .ok_or_else(|| format!("{}: the bucket name is not valid", file.display()))?;
    let client = S3Client::new(&root, &backend.settings, env).map_err(|e| e.to_string())?;
    Ok(Target {
        state_key: backend.state_key(workspace),
        client,
    })
}

/// The markers of one run, being published. Dropping it stops the heartbeat.
pub struct Publisher {
    runtime: tokio::runtime::Runtime,
    target: Arc<Target>,
    warned: Arc<AtomicBool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    beat: Option<tokio::task::JoinHandle<()>>,
}

impl Publisher {
    /// Publishes `lock` and starts its heartbeat; `None` (after one line on stderr) when the
    /// markers cannot be published.
    pub fn start(dir: &Path, workspace: &str, lock: &PipelineLock, lease: Duration) -> Option<Publisher> {
        let say = |why: &str| eprintln!("iacwatch: warning: not publishing the markers: {why}");
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                say(&e.to_string());
                return None;
            }
        };
        let target = match target(dir, workspace, &AwsEnvironment::from_process()) {
            Ok(target) => Arc::new(target),
            Err(why) => {
                say(&why);
                return None;
            }
        };
        if let Err(e) = runtime.block_on(put_lock(&target, lock, lease)) {
            say(&e.to_string());
            return None;
        }
        let warned = Arc::new(AtomicBool::new(false));
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let (beat_target, beat_lock, beat_warned) = (target.clone(), lock.clone(), warned.clone());
        let beat = runtime.spawn(async move {
            let mut ticks = tokio::time::interval(lease / 3);
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = ticks.tick() => {
                        if let Err(e) = put_lock(&beat_target, &beat_lock, lease).await {
                            warn_once(&beat_warned, &e);
                        }
                    }
                }
            }
        });
        Some(Publisher {
            runtime,
            target,
            warned,
            stop: Some(stop),
            beat: Some(beat),
        })
    }

    /// Stops the heartbeat, publishes the plan (when there is one) and the last run, then
    /// removes the published lock. A failure is said on stderr (once per run).
    pub fn finish(mut self, last_run: &LastRun, plan: Option<Vec<u8>>) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let target = self.target.clone();
        let beat = self.beat.take();
        let result = self.runtime.block_on(async {
            // A heartbeat still in flight lands before the lock is removed, never after.
            if let Some(beat) = beat {
                let _ = beat.await;
            }
            if let Some(plan) = plan {
                put(&target, super::markers::PLAN, Bytes::from(plan)).await?;
            }
            put(&target, super::markers::LAST_RUN, Bytes::from(to_json(last_run))).await?;
            target
                .client
                .delete(&marker_key(&target.state_key, super::markers::LOCK))
                .await
        });
        if let Err(e) = result {
            warn_once(&self.warned, &e);
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn warn_once(warned: &AtomicBool, e: &RemoteError) {
    if !warned.swap(true, Ordering::Relaxed) {
        eprintln!("iacwatch: warning: cannot publish the markers: {e}");
    }
}

async fn put_lock(target: &Target, lock: &PipelineLock, lease: Duration) -> Result<(), RemoteError> {
    let published = PublishedLock {
        lock,
        heartbeat_at: Utc::now(),
        lease_seconds: lease.as_secs(),
    };
    put(target, super::markers::LOCK, Bytes::from(to_json(&published))).await
}

async fn put(target: &Target, name: &str, body: Bytes) -> Result<(), RemoteError> {
    target.client.put(&marker_key(&target.state_key, name), body).await
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::marker::{Operation, parse_lock};

    #[test]
    fn markers_sit_beside_the_state_object() {
        assert_eq!(
            marker_key("env:/blue/apps/web.tfstate", "lock.json"),
            "env:/blue/apps/web.tfstate.iacwatch/lock.json"
        );
    }

    #[test]
    fn the_published_lock_is_a_pipeline_lock_with_a_heartbeat() {
        let lock = PipelineLock {
            operation: Operation::Provision,
            started_at: Utc::now(),
            pid: Some(7),
            host: Some("runner".into()),
            run_id: Some("12".into()),
            pipeline: None,
            url: None,
        };
        let bytes = to_json(&PublishedLock {
            lock: &lock,
            heartbeat_at: lock.started_at,
            lease_seconds: 60,
        });
        assert_eq!(parse_lock(&bytes).unwrap(), lock);
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["lease_seconds"], 60);
        assert!(value["heartbeat_at"].is_string());
    }

    #[test]
    fn a_directory_without_an_s3_backend_is_said_plainly() {
        let dir = tempfile::tempdir().unwrap();
        let env = AwsEnvironment::from_pairs([("AWS_ACCESS_KEY_ID", "id"), ("AWS_SECRET_ACCESS_KEY", "s")]);
        let why = target(dir.path(), "default", &env).unwrap_err();
        assert!(why.contains("terraform.tfstate"), "{why}");
        std::fs::create_dir(dir.path().join(".terraform")).unwrap();
        std::fs::write(
            dir.path().join(".terraform/terraform.tfstate"),
            br#"{"backend":{"type":"s3","config":{"bucket":"tfstate","key":"a/b.tfstate","endpoint":"http://127.0.0.1:1","force_path_style":true}}}"#,
        )
        .unwrap();
        let found = target(dir.path(), "blue", &env).unwrap();
        assert_eq!(found.client.root().bucket, "tfstate");
        assert_eq!(found.state_key, "env:/blue/a/b.tfstate");
    }
}
