//! Roots that appear, vanish or are replaced: each root has its own file watcher, set up again
//! when the directory behind the root's path changes, and its readability is reported.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use chrono::Utc;
use notify::{RecursiveMode, Watcher};

use super::super::Root;
use super::super::discover::{check_root, discover};
use super::Watch;
use crate::workspace::{Scope, Sink, Update};

/// A root's identity: device, inode and birth time (a root deleted and made again often gets the
/// same inode number back at once; only the birth time tells the new directory from the old).
type Identity = (u64, u64, Option<std::time::SystemTime>);
/// The watcher of each root (held until dropped, which stops it), with the root's identity when
/// it was set up.
pub(super) type Watchers = HashMap<String, (Box<dyn Send>, Identity)>;
pub(super) type Events = mpsc::Sender<notify::Result<notify::Event>>;

/// True while the directory of a root exists and can be listed (`iacwatch_root_up`).
pub(super) fn readable(path: &Path) -> bool {
    check_root(path).is_ok()
}

impl Watch {
    /// Starts watching a root that exists and is not watched (or was replaced); forgets a root
    /// that vanished. `rescan` scans a root that (re)appeared. Reports whether it can be read.
    pub(super) fn ensure_watched(
        &self,
        sink: &mut dyn Sink,
        root: &Root,
        tx: &Events,
        watchers: &mut Watchers,
        rescan: bool,
    ) {
        sink.root_up(&root.label, readable(&root.path));
        let identity = std::fs::metadata(&root.path)
            .ok()
            .filter(|m| m.is_dir())
            .map(|m| (m.dev(), m.ino(), m.created().ok()));
        match (identity, watchers.get(&root.label).map(|w| w.1)) {
            (Some(now), Some(before)) if now == before => {}
            (Some(now), _) => {
                watchers.remove(&root.label);
                match self.start_watcher(&root.path, tx.clone()) {
                    Some(watcher) => {
                        watchers.insert(root.label.clone(), (watcher, now));
                    }
                    None => return,
                }
                if rescan {
                    tracing::info!(root = %root.label, "root appeared; scanning it");
                    let dirs = discover(&root.path, &self.scanner.discover)
                        .map(|d| d.0)
                        .unwrap_or_default();
                    self.read_into(sink, root, Scope::Subtree(".".into()), dirs, Vec::new(), false);
                }
            }
            (None, Some(_)) => {
                tracing::warn!(root = %root.label, "root disappeared; its workspaces are gone until it comes back");
                watchers.remove(&root.label);
                sink.send(Update::cleared(&root.label, Utc::now()));
            }
            (None, None) => {}
        }
    }

    fn start_watcher(&self, path: &Path, tx: Events) -> Option<Box<dyn Send>> {
        if let Some(interval) = self.timing.poll {
            return poll_watcher(path, tx, interval);
        }
        match events(path, tx.clone()) {
            Ok(watcher) => Some(watcher),
            Err(Unwatched::Limit) => {
                tracing::error!(
                    root = %path.display(),
                    "the inotify watch limit is exhausted (fs.inotify.max_user_watches); polling this root every 5s \
                     instead. Raise the limit with: sysctl fs.inotify.max_user_watches=524288"
                );
                poll_watcher(path, tx, Duration::from_secs(5))
            }
            Err(Unwatched::Other(err)) => {
                tracing::warn!(root = %path.display(), error = %err, "cannot watch root; polling it instead");
                poll_watcher(path, tx, Duration::from_secs(5))
            }
        }
    }
}

/// Why a root's file events cannot be had.
enum Unwatched {
    /// The watch limit is reached.
    Limit,
    Other(String),
}

/// The file events of a root and everything below it: the own inotify watcher on Linux.
#[cfg(target_os = "linux")]
fn events(path: &Path, tx: Events) -> Result<Box<dyn Send>, Unwatched> {
    match super::inotify::watch(path, tx) {
        Ok(watcher) => Ok(Box::new(watcher)),
        Err(super::inotify::WatchError::Limit) => Err(Unwatched::Limit),
        Err(err) => Err(Unwatched::Other(err.to_string())),
    }
}

/// The file events of a root and everything below it: `notify`'s watcher for this system.
#[cfg(not(target_os = "linux"))]
fn events(path: &Path, tx: Events) -> Result<Box<dyn Send>, Unwatched> {
    let mut watcher = notify::recommended_watcher(Relevant(tx)).map_err(|e| Unwatched::Other(e.to_string()))?;
    match watcher.watch(path, RecursiveMode::Recursive) {
        Ok(()) => Ok(Box::new(watcher)),
        Err(err) if matches!(err.kind, notify::ErrorKind::MaxFilesWatch) => Err(Unwatched::Limit),
        Err(err) => Err(Unwatched::Other(err.to_string())),
    }
}

/// Passes on the events that can be hints (and every error), and drops the rest where they are
/// made: a file opened or read (by the scans themselves, tens of thousands in a first scan)
/// would otherwise wait in the channel, each with its path, until the watch loop runs.
struct Relevant(Events);

impl notify::EventHandler for Relevant {
    fn handle_event(&mut self, event: notify::Result<notify::Event>) {
        if event.as_ref().is_ok_and(|e| !super::hint::relevant(&e.kind)) {
            return;
        }
        // The watch loop is gone only when the daemon stops.
        let _ = self.0.send(event);
    }
}

fn poll_watcher(path: &Path, tx: Events, interval: Duration) -> Option<Box<dyn Send>> {
    let config = notify::Config::default().with_poll_interval(interval);
    let mut watcher = notify::PollWatcher::new(Relevant(tx), config).ok()?;
    match watcher.watch(path, RecursiveMode::Recursive) {
        Ok(()) => Some(Box::new(watcher)),
        Err(err) => {
            tracing::warn!(root = %path.display(), error = %err, "cannot poll root");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::classify::Policy;
    use crate::source::local::liveness::SystemProbe;
    use crate::source::local::scan::Scanner;
    use crate::workspace::{Key, Known, Workspace};

    /// A sink that records what the watcher tells it.
    #[derive(Default)]
    struct Recorder {
        roots: Vec<(String, bool)>,
        updates: Vec<Update>,
    }

    struct Nothing;

    impl Known for Nothing {
        fn workspace(&self, _: &Key) -> Option<&Workspace> {
            None
        }

        fn workspaces(&self) -> Box<dyn Iterator<Item = &Workspace> + '_> {
            Box::new(std::iter::empty())
        }
    }

    impl Sink for Recorder {
        fn send(&mut self, update: Update) {
            self.updates.push(update);
        }

        fn root_up(&mut self, root: &str, up: bool) {
            self.roots.push((root.to_owned(), up));
        }

        fn ready(&mut self) {}

        fn known(&self) -> Arc<dyn Known> {
            Arc::new(Nothing)
        }
    }

    fn watch(root: &Root) -> Watch {
        Watch {
            roots: vec![root.clone()],
            scanner: Scanner {
                discover: Default::default(),
                policy: Policy::default(),
                probe: Box::new(SystemProbe::new()),
                stream_above: u64::MAX,
                progress: None,
            },
            telemetry: Default::default(),
            timing: Default::default(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    #[test]
    fn a_root_is_up_while_its_directory_exists() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        assert!(!readable(&root), "missing");
        std::fs::write(&root, b"a file").unwrap();
        assert!(!readable(&root), "not a directory");
        std::fs::remove_file(&root).unwrap();
        std::fs::create_dir(&root).unwrap();
        assert!(readable(&root), "a directory");
        std::fs::remove_dir(&root).unwrap();
        assert!(!readable(&root), "removed again");
    }

    #[test]
    fn the_watcher_reports_a_root_up_and_down_and_forgets_a_vanished_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root {
            label: "r".into(),
            path: dir.path().join("root"),
        };
        let watch = watch(&root);
        let (tx, _rx) = mpsc::channel();
        let mut watchers = Watchers::new();
        let mut sink = Recorder::default();

        watch.ensure_watched(&mut sink, &root, &tx, &mut watchers, true);
        assert_eq!(sink.roots, [("r".to_owned(), false)]);
        assert!(sink.updates.is_empty() && watchers.is_empty(), "nothing to watch yet");

        std::fs::create_dir_all(root.path.join("app")).unwrap();
        std::fs::write(root.path.join("app/terraform.tfstate"), b"").unwrap();
        watch.ensure_watched(&mut sink, &root, &tx, &mut watchers, true);
        assert_eq!(sink.roots.last(), Some(&("r".to_owned(), true)));
        assert!(watchers.contains_key("r"));
        let scanned = sink.updates.pop().expect("the root that appeared is scanned");
        assert_eq!(scanned.scope, Scope::Subtree(".".into()));
        let found: Vec<&str> = scanned.workspaces.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(found, ["app"]);

        std::fs::remove_dir_all(&root.path).unwrap();
        watch.ensure_watched(&mut sink, &root, &tx, &mut watchers, true);
        assert_eq!(sink.roots.last(), Some(&("r".to_owned(), false)));
        let cleared = sink.updates.pop().expect("a vanished root is cleared");
        assert!(cleared.workspaces.is_empty() && cleared.scope == Scope::Subtree(".".into()));
        assert!(watchers.is_empty());
    }

    #[test]
    fn only_events_that_can_be_hints_and_errors_reach_the_watch_loop() {
        use notify::EventHandler;
        use notify::event::{AccessKind, AccessMode, EventKind};
        let (tx, rx) = mpsc::channel();
        let mut handler = Relevant(tx);
        let written = EventKind::Access(AccessKind::Close(AccessMode::Write));
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            written,
        ] {
            handler.handle_event(Ok(notify::Event::new(kind).add_path("/r/a/terraform.tfstate".into())));
        }
        handler.handle_event(Err(notify::Error::generic("queue overflow")));
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(matches!(&got[0], Ok(e) if e.kind == written), "{got:?}");
        assert!(got[1].is_err());
    }
}
