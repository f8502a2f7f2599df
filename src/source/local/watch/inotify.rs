//! The file watcher of one root on Linux: an inotify instance and a thread that passes its events
//! on to the watch loop, in `notify`'s event type (the polling watcher's too).
//!
//! Every directory under the root is watched, new ones as they appear (created or moved in, with
//! everything already inside them), except those no event of which can change a reading: `.git`
//! and `node_modules` (their events are dropped, `hint`), and the provider and module caches
//! inside `.terraform` (the reader opens only `.terraform`'s own files). A directory removed or
//! moved away takes its watches with it. Lost events (the kernel's queue overflowed) ask for the
//! whole root to be read again.
//!
//! A watched directory is kept as its parent's watch and its own name, not as a path: the path is
//! put together for an event only. `notify`'s inotify backend keeps two maps of full paths, the
//! larger part of the daemon's memory per workspace.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, EventKind, Flag, MetadataKind, ModifyKind};
use notify::event::{RemoveKind, RenameMode};
use walkdir::WalkDir;

use super::roots::Events;

/// Why a root cannot be watched.
#[derive(Debug, thiserror::Error)]
pub(super) enum WatchError {
    /// The watch limit (`fs.inotify.max_user_watches`) is reached.
    #[error("the inotify limit is reached")]
    Limit,
    #[error("inotify: {0}")]
    Os(Errno),
}

impl From<Errno> for WatchError {
    fn from(errno: Errno) -> WatchError {
        match errno {
            Errno::ENOSPC => WatchError::Limit,
            other => WatchError::Os(other),
        }
    }
}

/// A root being watched. Dropping it stops the thread, which closes the inotify instance.
pub(super) struct Watcher {
    /// The write end of the pipe the thread polls beside the instance: closed on drop.
    _stop: OwnedFd,
}

/// Starts watching `root` and everything below it; events go to `tx`.
pub(super) fn watch(root: &Path, tx: Events) -> Result<Watcher, WatchError> {
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
    let mut tree = Tree {
        inotify,
        root: root.to_owned(),
        dirs: HashMap::new(),
        moving: None,
    };
    tree.add(root, None)?;
    let (stopped, stop) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    std::thread::Builder::new()
        .name("iacwatch-inotify".into())
        .spawn(move || tree.run(&stopped, &tx))
        .map_err(|e| WatchError::Os(e.raw_os_error().map_or(Errno::EAGAIN, Errno::from_raw)))?;
    Ok(Watcher { _stop: stop })
}

/// What every watch asks for: what makes a hint (`hint::relevant`), not opens and reads.
const EVENTS: AddWatchFlags = AddWatchFlags::IN_ATTRIB
    .union(AddWatchFlags::IN_CREATE)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_CLOSE_WRITE)
    .union(AddWatchFlags::IN_MODIFY)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_ONLYDIR);
/// The root's watch also tells when the root itself is removed or moved away.
const ROOT_EVENTS: AddWatchFlags = EVENTS
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF);

/// A watched directory: its parent's watch (none for the root) and its name there (the root's
/// whole path).
struct Dir {
    parent: Option<WatchDescriptor>,
    name: Box<OsStr>,
}

/// The watched directories of a root.
struct Tree {
    inotify: Inotify,
    root: PathBuf,
    dirs: HashMap<WatchDescriptor, Dir>,
    /// A watched directory moved away, by the move's cookie: it is re-attached where it went if
    /// the next event says it went to a watched directory, and forgotten otherwise.
    moving: Option<(u32, WatchDescriptor)>,
}

/// True for a directory whose events never change a reading: not watched.
fn unwatched(parent: &Path, name: &OsStr) -> bool {
    name == ".git"
        || name == "node_modules"
        || ((name == "providers" || name == "modules") && parent.file_name().is_some_and(|p| p == ".terraform"))
}

impl Tree {
    /// Watches `dir` and every directory below it (symbolic links followed, loops not);
    /// `parent` is the watch of the directory holding it (`None`: `dir` is the root). A directory
    /// that cannot be watched (gone, not readable) is skipped with what is below it; only a
    /// reached limit is an error.
    fn add(&mut self, dir: &Path, parent: Option<WatchDescriptor>) -> Result<(), WatchError> {
        // The watch of each directory on the way down to the current entry, by depth.
        let mut above: Vec<WatchDescriptor> = Vec::new();
        let mut walk = WalkDir::new(dir).follow_links(true).into_iter();
        while let Some(entry) = walk.next() {
            let Ok(entry) = entry else { continue };
            if !entry.file_type().is_dir() {
                continue;
            }
            let depth = entry.depth();
            let holder = if depth == 0 {
                parent
            } else {
                above.get(depth - 1).copied()
            };
            if depth > 0 && (holder.is_none() || unwatched(entry.path().parent().unwrap_or(dir), entry.file_name())) {
                walk.skip_current_dir();
                continue;
            }
            let mask = if holder.is_none() { ROOT_EVENTS } else { EVENTS };
            let wd = match self.inotify.add_watch(entry.path(), mask) {
                Ok(wd) => wd,
                Err(Errno::ENOSPC) => return Err(WatchError::Limit),
                Err(errno) if depth == 0 && holder.is_none() => return Err(errno.into()),
                Err(_) => {
                    walk.skip_current_dir();
                    continue;
                }
            };
            let name: Box<OsStr> = match holder {
                None => entry.path().as_os_str().into(),
                Some(_) => entry.file_name().into(),
            };
            self.dirs.insert(wd, Dir { parent: holder, name });
            above.truncate(depth);
            above.push(wd);
        }
        Ok(())
    }

    /// The path of a watched directory; `None` for a watch no longer known.
    fn path(&self, wd: WatchDescriptor) -> Option<PathBuf> {
        let mut names: Vec<&OsStr> = Vec::new();
        let mut at = Some(wd);
        while let Some(wd) = at {
            let dir = self.dirs.get(&wd)?;
            names.push(&dir.name);
            at = dir.parent;
            // A chain longer than any path can be is a cycle (one inode reached twice).
            if names.len() > 4096 {
                return None;
            }
        }
        let mut path = PathBuf::new();
        for name in names.iter().rev() {
            path.push(name);
        }
        Some(path)
    }

    /// The watch of the directory `name` inside the watched `parent`.
    fn child(&self, parent: WatchDescriptor, name: &OsStr) -> Option<WatchDescriptor> {
        self.dirs
            .iter()
            .find(|(_, d)| d.parent == Some(parent) && &*d.name == name)
            .map(|(wd, _)| *wd)
    }

    /// Stops watching `top` and every directory below it (it moved away).
    fn forget(&mut self, top: WatchDescriptor) {
        let below = |mut wd: WatchDescriptor, dirs: &HashMap<WatchDescriptor, Dir>| {
            for _ in 0..4096 {
                if wd == top {
                    return true;
                }
                match dirs.get(&wd).and_then(|d| d.parent) {
                    Some(parent) => wd = parent,
                    None => return false,
                }
            }
            false
        };
        let gone: Vec<WatchDescriptor> = self.dirs.keys().copied().filter(|wd| below(*wd, &self.dirs)).collect();
        for wd in gone {
            self.dirs.remove(&wd);
            // The watch is gone already when its directory was removed meanwhile.
            let _ = self.inotify.rm_watch(wd);
        }
    }

    /// Turns one inotify event into the watch loop's events (through `send`), and follows
    /// directories that appear, vanish or move.
    fn handle(&mut self, event: InotifyEvent, send: &mut dyn FnMut(notify::Result<notify::Event>)) {
        let mask = event.mask;
        let arriving = mask.contains(AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_ISDIR);
        if self
            .moving
            .is_some_and(|(cookie, _)| !(arriving && cookie == event.cookie))
        {
            self.moved_away();
        }
        if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            // Events were lost, those of new directories too: the tree is walked again (a
            // directory watched already keeps its watch) and the root read again whole.
            let root = self.root.clone();
            if let Err(WatchError::Limit) = self.add(&root, None) {
                send(Err(
                    notify::Error::new(notify::ErrorKind::MaxFilesWatch).add_path(root.clone())
                ));
            }
            send(Ok(notify::Event::new(EventKind::Other)
                .set_flag(Flag::Rescan)
                .add_path(root)));
            return;
        }
        if mask.contains(AddWatchFlags::IN_IGNORED) {
            // The kernel dropped the watch (its directory was removed, or it was removed here).
            self.dirs.remove(&event.wd);
            return;
        }
        let Some(dir) = self.path(event.wd) else {
            return;
        };
        let is_dir = mask.contains(AddWatchFlags::IN_ISDIR);
        let path = match &event.name {
            Some(name) => dir.join(name),
            None => dir,
        };
        let emit = |send: &mut dyn FnMut(notify::Result<notify::Event>), kind| {
            send(Ok(notify::Event::new(kind).add_path(path.clone())));
        };
        if mask.contains(AddWatchFlags::IN_MOVED_FROM) {
            emit(send, EventKind::Modify(ModifyKind::Name(RenameMode::From)));
            if is_dir && let Some(moved) = event.name.as_deref().and_then(|n| self.child(event.wd, n)) {
                self.moving = Some((event.cookie, moved));
            }
        }
        if mask.contains(AddWatchFlags::IN_MOVED_TO) {
            emit(send, EventKind::Modify(ModifyKind::Name(RenameMode::To)));
        }
        if mask.contains(AddWatchFlags::IN_CREATE) {
            let kind = if is_dir { CreateKind::Folder } else { CreateKind::File };
            emit(send, EventKind::Create(kind));
        }
        if arriving && let Some((_, moved)) = self.moving.take() {
            // Its watches stand; events already queued for them now name the new place.
            self.reattach(moved, event.wd, &path, event.name.as_deref());
        } else if is_dir && mask.intersects(AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CREATE) {
            self.follow(event.wd, &path, event.name.as_deref(), send);
        }
        if mask.contains(AddWatchFlags::IN_DELETE) {
            let kind = if is_dir { RemoveKind::Folder } else { RemoveKind::File };
            emit(send, EventKind::Remove(kind));
        }
        if mask.contains(AddWatchFlags::IN_DELETE_SELF) {
            emit(send, EventKind::Remove(RemoveKind::Folder));
        }
        if mask.contains(AddWatchFlags::IN_MOVE_SELF) {
            emit(send, EventKind::Modify(ModifyKind::Name(RenameMode::From)));
        }
        if mask.contains(AddWatchFlags::IN_MODIFY) {
            emit(send, EventKind::Modify(ModifyKind::Data(DataChange::Any)));
        }
        if mask.contains(AddWatchFlags::IN_CLOSE_WRITE) {
            emit(send, EventKind::Access(AccessKind::Close(AccessMode::Write)));
        }
        if mask.contains(AddWatchFlags::IN_ATTRIB) {
            emit(send, EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)));
        }
    }

    /// A directory that moved away left the root (or the watched part of it): its watches go.
    fn moved_away(&mut self) {
        if let Some((_, wd)) = self.moving.take() {
            self.forget(wd);
        }
    }

    /// The watched directory `moved` is now `path`, `name` inside the watched `parent`.
    fn reattach(&mut self, moved: WatchDescriptor, parent: WatchDescriptor, path: &Path, name: Option<&OsStr>) {
        match name {
            Some(name) if !unwatched(path.parent().unwrap_or(path), name) => {
                if let Some(dir) = self.dirs.get_mut(&moved) {
                    dir.parent = Some(parent);
                    dir.name = name.into();
                }
            }
            _ => self.forget(moved),
        }
    }

    /// Watches a directory that appeared inside the watched `parent`, with what it holds.
    fn follow(
        &mut self,
        parent: WatchDescriptor,
        path: &Path,
        name: Option<&OsStr>,
        send: &mut dyn FnMut(notify::Result<notify::Event>),
    ) {
        let Some(name) = name else { return };
        if unwatched(path.parent().unwrap_or(path), name) {
            return;
        }
        if let Err(WatchError::Limit) = self.add(path, Some(parent)) {
            send(Err(
                notify::Error::new(notify::ErrorKind::MaxFilesWatch).add_path(path.to_owned())
            ));
        }
    }

    /// Runs until the stop pipe closes or the watch loop is gone.
    fn run(mut self, stopped: &OwnedFd, tx: &Events) {
        let gone = std::cell::Cell::new(false);
        let mut send = |event: notify::Result<notify::Event>| {
            if tx.send(event).is_err() {
                gone.set(true);
            }
        };
        loop {
            let mut fds = [
                PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN),
                PollFd::new(stopped.as_fd(), PollFlags::POLLIN),
            ];
            // A move's second half comes at once when it comes at all.
            let wait = if self.moving.is_some() {
                PollTimeout::from(50_u16)
            } else {
                PollTimeout::NONE
            };
            let ready = match poll(&mut fds, wait) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    send(Err(notify::Error::io(errno.into())));
                    return;
                }
            };
            if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                return;
            }
            if ready == 0 {
                self.moved_away();
                continue;
            }
            loop {
                match self.inotify.read_events() {
                    Ok(events) if events.is_empty() => break,
                    Ok(events) => {
                        for event in events {
                            self.handle(event, &mut send);
                        }
                    }
                    Err(Errno::EAGAIN | Errno::EINTR) => break,
                    Err(errno) => {
                        send(Err(notify::Error::io(errno.into())));
                        break;
                    }
                }
            }
            if gone.get() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::*;

    /// The events' paths until one satisfies `done`, or the deadline.
    fn until(
        rx: &mpsc::Receiver<notify::Result<notify::Event>>,
        done: impl Fn(&notify::Event) -> bool,
    ) -> Vec<PathBuf> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while let Ok(event) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let event = event.expect("no watch error");
            seen.extend(event.paths.iter().cloned());
            if done(&event) {
                return seen;
            }
        }
        panic!("no such event; saw {seen:?}");
    }

    fn written(path: PathBuf) -> impl Fn(&notify::Event) -> bool {
        move |e| e.kind == EventKind::Access(AccessKind::Close(AccessMode::Write)) && e.paths == [path.clone()]
    }

    fn tree(root: &Path) -> Tree {
        let mut tree = Tree {
            inotify: Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).unwrap(),
            root: root.to_owned(),
            dirs: HashMap::new(),
            moving: None,
        };
        tree.add(root, None).unwrap();
        tree
    }

    fn watched(tree: &Tree) -> BTreeSet<PathBuf> {
        tree.dirs.keys().map(|wd| tree.path(*wd).unwrap()).collect()
    }

    #[test]
    fn every_directory_is_watched_but_those_whose_events_never_count() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for dir in [
            "app/.terraform/providers/x",
            "app/.terraform/modules/m",
            ".git/objects",
            "lib/node_modules/p",
            "app/.iacwatch/default",
        ] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        let expected: BTreeSet<PathBuf> = [
            "",
            "app",
            "app/.terraform",
            "app/.iacwatch",
            "app/.iacwatch/default",
            "lib",
        ]
        .iter()
        .map(|d| r.join(d))
        .collect();
        let expected: BTreeSet<PathBuf> = expected.into_iter().map(|p| p.components().collect()).collect();
        assert_eq!(watched(&tree(r)), expected);
    }

    #[test]
    fn a_new_directory_is_watched_with_what_it_already_holds() {
        let root = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        let _watcher = watch(root.path(), tx).unwrap();
        std::fs::create_dir_all(root.path().join("a/b/c")).unwrap();
        until(&rx, |e| {
            e.kind == EventKind::Create(CreateKind::Folder) && e.paths == [root.path().join("a")]
        });
        let file = root.path().join("a/b/c/terraform.tfstate");
        // The directories below `a` may have been made before `a` was watched: the walk found them.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            std::fs::write(&file, b"{}").unwrap();
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(Ok(e)) if e.paths == [file.clone()] => break,
                _ if Instant::now() > deadline => panic!("no event for a file in a new directory"),
                _ => {}
            }
        }
    }

    #[test]
    fn a_moved_directory_is_watched_where_it_went_and_not_where_it_was() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("old/inner")).unwrap();
        let (tx, rx) = mpsc::channel();
        let _watcher = watch(r, tx).unwrap();
        std::fs::rename(r.join("old"), r.join("new")).unwrap();
        std::fs::write(r.join("new/inner/f"), b"x").unwrap();
        let seen = until(&rx, written(r.join("new/inner/f")));
        assert!(
            seen.contains(&r.join("old")) && seen.contains(&r.join("new")),
            "{seen:?}"
        );
        assert!(!seen.iter().any(|p| p.starts_with(r.join("old/inner"))), "{seen:?}");
    }

    #[test]
    fn a_directory_moved_out_of_the_root_is_no_longer_watched() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("app/inner")).unwrap();
        let (tx, rx) = mpsc::channel();
        let _watcher = watch(r, tx).unwrap();
        std::fs::rename(r.join("app"), elsewhere.path().join("app")).unwrap();
        std::fs::write(elsewhere.path().join("app/inner/f"), b"x").unwrap();
        std::fs::write(r.join("after"), b"x").unwrap();
        let seen = until(&rx, written(r.join("after")));
        assert!(seen.contains(&r.join("app")), "{seen:?}");
        assert!(!seen.iter().any(|p| p.starts_with(r.join("app/inner"))), "{seen:?}");
    }

    #[test]
    fn a_removed_root_says_so_and_lost_events_ask_for_a_rescan() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().join("root");
        std::fs::create_dir_all(r.join("sub")).unwrap();
        let mut tree = tree(&r);
        let wd = *tree.dirs.keys().next().unwrap();
        let mut got = Vec::new();
        let overflow = InotifyEvent {
            wd,
            mask: AddWatchFlags::IN_Q_OVERFLOW,
            cookie: 0,
            name: None,
        };
        let unseen = r.join("made-while-events-were-lost");
        std::fs::create_dir(&unseen).unwrap();
        tree.handle(overflow, &mut |e| got.push(e.unwrap()));
        assert!(watched(&tree).contains(&unseen), "the tree is walked again");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].paths, std::slice::from_ref(&r));
        assert!(got[0].flag() == Some(Flag::Rescan));

        let (tx, rx) = mpsc::channel();
        let _watcher = watch(&r, tx).unwrap();
        std::fs::remove_dir_all(&r).unwrap();
        until(&rx, |e| {
            matches!(e.kind, EventKind::Remove(_)) && e.paths == [r.clone()]
        });
    }

    #[test]
    fn a_dropped_watcher_stops_its_thread() {
        let root = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        drop(watch(root.path(), tx).unwrap());
        // The thread held the only sender.
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).err(),
            Some(mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
