//! Writing the pipeline markers of `.iacwatch/<ws>/`: every file appears whole or not at all
//! (temporary file in the same directory, fsync, rename, fsync of the directory), and `lock.json`
//! is created only where there is none (a hard link, which fails when the name exists), so two
//! wrappers starting at once cannot both believe they hold the lock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::artifact::marker::{LastRun, PipelineLock, parse_lock};
use crate::evidence::Holder;
use crate::source::local::liveness::Probe;

pub use crate::source::local::layout::marker::{LAST_RUN, LOCK, PLAN, STATE};

/// `DIR/.iacwatch/<ws>/`.
#[derive(Clone, Debug)]
pub struct MarkerDir {
    path: PathBuf,
}

/// A `lock.json` that is already there, as judged by the wrapper about to start.
#[derive(Debug)]
pub enum Existing {
    /// Nobody holds the workspace.
    Free,
    /// A pipeline that still runs (or may: another host, not yet stale).
    Live(PipelineLock),
    /// A lock left behind: this host and its pid is gone, or older than the stale limit.
    Abandoned { why: String },
    /// A file that is not a pipeline lock; it is treated as live until it is stale.
    Unreadable { why: String },
}

impl MarkerDir {
    pub fn new(dir: &Path, workspace: &str) -> MarkerDir {
        MarkerDir {
            path: dir.join(crate::source::local::layout::marker::DIR).join(workspace),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates the folder and proves it writable (by creating and removing a temporary file), so
    /// that no later step finds out halfway.
    pub fn prepare(&self) -> io::Result<()> {
        fs::create_dir_all(&self.path)?;
        let (tmp, file) = self.temp_file("probe")?;
        drop(file);
        fs::remove_file(tmp)
    }

    /// A new empty temporary file beside the markers (for content written by another process).
    pub fn temp_file(&self, name: &str) -> io::Result<(PathBuf, File)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = self.path.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        Ok((tmp, file))
    }

    /// Moves a complete temporary file into place under `name`.
    pub fn install(&self, tmp: &Path, name: &str) -> io::Result<()> {
        let result = File::open(tmp)
            .and_then(|f| f.sync_all())
            .and_then(|()| fs::rename(tmp, self.file(name)))
            .and_then(|()| self.sync_dir());
        if result.is_err() {
            let _ = fs::remove_file(tmp);
        }
        result
    }

    /// Writes `name` whole, replacing what was there.
    pub fn write(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.write_temp(name, bytes)?;
        self.install(&tmp, name)
    }

    fn write_temp(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let (tmp, mut file) = self.temp_file(name)?;
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(tmp)
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.path)?.sync_all()
    }

    /// Creates `lock.json` with `lock` unless the file exists (then `AlreadyExists`).
    pub fn create_lock(&self, lock: &PipelineLock) -> io::Result<()> {
        let tmp = self.write_temp(LOCK, &to_json(lock))?;
        let target = self.file(LOCK);
        let linked = match fs::hard_link(&tmp, &target) {
            // File systems without hard links: check, then rename (a narrow race, no torn file).
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists && !target.exists() => fs::rename(&tmp, &target),
            other => other,
        };
        let _ = fs::remove_file(&tmp);
        linked?;
        self.sync_dir()
    }

    /// Removes a lock judged abandoned, unless it changed since it was read (then `false`: someone
    /// else took it over first, start again).
    pub fn remove_abandoned(&self, seen: &[u8]) -> io::Result<bool> {
        let aside = self.path.join(format!(".{LOCK}.{}.abandoned.tmp", std::process::id()));
        match fs::rename(self.file(LOCK), &aside) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            other => other?,
        }
        if fs::read(&aside)? == seen {
            fs::remove_file(&aside)?;
            return Ok(true);
        }
        // Not the lock that was judged: put it back where it was.
        let _ = fs::hard_link(&aside, self.file(LOCK));
        fs::remove_file(&aside)?;
        Ok(false)
    }

    /// Reads and judges the lock that is there, if any.
    pub fn existing(
        &self,
        probe: &dyn Probe,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> io::Result<(Existing, Vec<u8>)> {
        let path = self.file(LOCK);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Existing::Free, vec![])),
            Err(e) => return Err(e),
        };
        let modified: DateTime<Utc> = fs::metadata(&path)?.modified()?.into();
        let stale = |since: DateTime<Utc>| (now - since).to_std().is_ok_and(|age| age > stale_after);
        let judged = match parse_lock(&bytes) {
            Err(e) if stale(modified) => Existing::Abandoned {
                why: format!("it is not a pipeline lock ({e}) and older than the stale limit"),
            },
            Err(e) => Existing::Unreadable { why: e.to_string() },
            Ok(lock) => match probe.process(lock.host.as_deref(), lock.pid) {
                Holder::Gone => Existing::Abandoned {
                    why: format!("{}; that process is gone", describe(&lock)),
                },
                Holder::Alive => Existing::Live(lock),
                Holder::Unknown if stale(lock.started_at) => Existing::Abandoned {
                    why: format!("{}; older than the stale limit", describe(&lock)),
                },
                Holder::Unknown => Existing::Live(lock),
            },
        };
        Ok((judged, bytes))
    }

    /// Removes `lock.json` if it is still the one this wrapper wrote (`false` when another
    /// pipeline took it over meanwhile: it is left alone).
    pub fn release(&self, mine: &PipelineLock) -> io::Result<bool> {
        let path = self.file(LOCK);
        match fs::read(&path) {
            Ok(bytes) if parse_lock(&bytes).is_ok_and(|lock| same_holder(&lock, mine)) => {
                fs::remove_file(&path)?;
                self.sync_dir()?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(e),
        }
    }

    pub fn write_last_run(&self, run: &LastRun) -> io::Result<()> {
        self.write(LAST_RUN, &to_json(run))
    }
}

/// One line about a lock's holder, for messages: `provision since 2026-11-29T10:00:00Z, pid 42 on
/// runner-7, run 1234 (https://...)`.
pub fn describe(lock: &PipelineLock) -> String {
    let mut text = format!(
        "{} since {}",
        lock.operation.as_str(),
        lock.started_at.format("%Y-%m-%dT%H:%M:%SZ")
    );
    if let Some(pid) = lock.pid {
        text.push_str(&format!(", pid {pid}"));
    }
    if let Some(host) = &lock.host {
        text.push_str(&format!(" on {host}"));
    }
    if let Some(pipeline) = &lock.pipeline {
        text.push_str(&format!(", pipeline {pipeline}"));
    }
    if let Some(run) = &lock.run_id {
        text.push_str(&format!(", run {run}"));
    }
    if let Some(url) = &lock.url {
        text.push_str(&format!(" ({url})"));
    }
    text
}

fn same_holder(a: &PipelineLock, b: &PipelineLock) -> bool {
    a.pid == b.pid && a.host == b.host && a.started_at == b.started_at
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("marker structs always serialise");
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::marker::Operation;
    use crate::source::local::liveness::SystemProbe;

    fn lock(pid: i64, host: &str) -> PipelineLock {
        PipelineLock {
            operation: Operation::Provision,
            started_at: Utc::now(),
            pid: Some(pid),
            host: Some(host.into()),
            run_id: Some("1".into()),
            pipeline: None,
            url: None,
        }
    }

    #[test]
    fn the_lock_is_created_once_and_released_by_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let markers = MarkerDir::new(dir.path(), "default");
        markers.prepare().unwrap();
        let mine = lock(i64::from(std::process::id()), "builder");
        markers.create_lock(&mine).unwrap();
        let again = markers.create_lock(&lock(1, "builder")).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        let read = parse_lock(&fs::read(markers.file(LOCK)).unwrap()).unwrap();
        assert_eq!(read, mine);
        assert!(!markers.release(&lock(1, "builder")).unwrap());
        assert!(markers.release(&mine).unwrap());
        assert!(!markers.file(LOCK).exists());
        let leftovers: Vec<_> = fs::read_dir(markers.path()).unwrap().collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_lock_is_judged_by_its_process_and_its_age() {
        let dir = tempfile::tempdir().unwrap();
        let markers = MarkerDir::new(dir.path(), "default");
        markers.prepare().unwrap();
        let probe = SystemProbe::with_host("builder");
        let hour = Duration::from_secs(3600);
        let now = Utc::now();
        let judge = |l: &PipelineLock| {
            markers.write(LOCK, &to_json(l)).unwrap();
            markers.existing(&probe, now, hour).unwrap().0
        };
        assert!(matches!(markers.existing(&probe, now, hour).unwrap().0, Existing::Free));
        let me = i64::from(std::process::id());
        assert!(matches!(judge(&lock(me, "builder")), Existing::Live(_)));
        assert!(matches!(
            judge(&lock(99_999_999, "builder")),
            Existing::Abandoned { .. }
        ));
        assert!(matches!(judge(&lock(1, "elsewhere")), Existing::Live(_)));
        let mut old = lock(1, "elsewhere");
        old.started_at = now - chrono::Duration::hours(3);
        assert!(matches!(judge(&old), Existing::Abandoned { .. }));
        markers.write(LOCK, b"{not json").unwrap();
        assert!(matches!(
            markers.existing(&probe, now, hour).unwrap().0,
            Existing::Unreadable { .. }
        ));
    }

    #[test]
    fn an_abandoned_lock_is_removed_only_if_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let markers = MarkerDir::new(dir.path(), "default");
        markers.prepare().unwrap();
        markers.write(LOCK, b"{\"a\":1}").unwrap();
        assert!(!markers.remove_abandoned(b"{\"a\":2}").unwrap());
        assert!(markers.file(LOCK).exists());
        assert!(markers.remove_abandoned(b"{\"a\":1}").unwrap());
        assert!(!markers.file(LOCK).exists());
    }
}
