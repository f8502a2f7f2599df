//! Discovery: which directories under a root are workspace directories.
//!
//! A directory is one when it directly holds a state, `.terraform/`, a lock file, a plan JSON,
//! `errored.tfstate`, the `.iacwatch/` marker folder, or `terragrunt.hcl`. Caches, `.git`,
//! `node_modules` and the folders Terraform keeps inside a workspace are never descended into.
//! Each top-level directory of a root is walked in parallel.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use globset::GlobSet;
use rayon::prelude::*;

use super::layout::{PRUNED, is_marker};
use crate::workspace::{ProblemKind, is_within};

/// What the walk may do.
#[derive(Clone, Debug, Default)]
pub struct DiscoverOptions {
    pub follow_symlinks: bool,
    /// Globs over paths relative to the root; a match prunes the whole subtree.
    pub exclude: GlobSet,
}

/// A directory or file that could not be walked. The scan goes on without it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WalkProblem {
    /// Relative to the root.
    pub path: String,
    /// Bounded: `symlink_loop`, `permission_denied`, `io`.
    pub kind: ProblemKind,
    pub message: String,
}

/// Why a root cannot be scanned at all.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("root {0} does not exist")]
    Missing(PathBuf),
    #[error("root {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("root {path} cannot be read: {kind}")]
    Unreadable { path: PathBuf, kind: std::io::ErrorKind },
}

/// The path of `path` relative to `root`, with `/` separators; `.` for the root itself.
pub(crate) fn relative(root: &Path, path: &Path) -> String {
    joined(root, path).unwrap_or_else(|| by_components(root, path))
}

/// `relative` for the common case, a path made by joining plain names to the root: the bytes after
/// the root's. `None` for anything else (empty, doubled or `.` names, another prefix), which
/// `by_components` answers.
fn joined(root: &Path, path: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let (root, path) = (root.as_os_str().as_bytes(), path.as_os_str().as_bytes());
    let rest = path.strip_prefix(root).filter(|_| !root.is_empty())?;
    let rest = if root.ends_with(b"/") {
        rest
    } else {
        rest.strip_prefix(b"/")?
    };
    let plain = !rest.is_empty()
        && rest
            .split(|&b| b == b'/')
            .all(|name| !name.is_empty() && name != b"." && name != b"..");
    if !plain {
        return None;
    }
    let text = String::from_utf8_lossy(rest);
    Some(if text.contains('\\') {
        text.replace('\\', "/")
    } else {
        text.into_owned()
    })
}

fn by_components(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
        Ok(rel) => rel.to_string_lossy().replace('\\', "/"),
        Err(_) => path.to_string_lossy().into_owned(),
    }
}

/// Checks that a root can be walked.
pub(crate) fn check_root(root: &Path) -> Result<(), RootError> {
    match fs::metadata(root) {
        Ok(meta) if meta.is_dir() => match fs::read_dir(root) {
            Ok(_) => Ok(()),
            Err(e) => Err(RootError::Unreadable {
                path: root.to_owned(),
                kind: e.kind(),
            }),
        },
        Ok(_) => Err(RootError::NotADirectory(root.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(RootError::Missing(root.to_owned())),
        Err(e) => Err(RootError::Unreadable {
            path: root.to_owned(),
            kind: e.kind(),
        }),
    }
}

/// A workspace directory as the walk found it: where it is, and the entries its one listing
/// gave (valid while the callback runs; the directory is closed after it).
pub(crate) struct Found<'a> {
    /// Relative to the root.
    pub rel: String,
    pub entries: &'a [fs::DirEntry],
}

/// Finds the workspace directories under `root` (relative paths, sorted).
pub(crate) fn discover(root: &Path, options: &DiscoverOptions) -> Result<(Vec<String>, Vec<WalkProblem>), RootError> {
    let found = Mutex::new(Vec::new());
    let problems = discover_each(root, options, &|dir| {
        found.lock().unwrap_or_else(|e| e.into_inner()).push(dir.rel);
    })?;
    let mut found = found.into_inner().unwrap_or_default();
    found.sort();
    Ok((found, problems))
}

/// Finds the workspace directories under `root` and hands each to `each` (once, as soon as it is
/// found, from whichever thread walks it, with the listing the walk made of it), so that reading
/// can start before the walk ends. The walk's problems are returned sorted by path.
pub(crate) fn discover_each(
    root: &Path,
    options: &DiscoverOptions,
    each: &(dyn Fn(Found<'_>) + Sync),
) -> Result<Vec<WalkProblem>, RootError> {
    check_root(root)?;
    let problems = Mutex::new(Vec::new());
    // The root's own entries first, one level deep; then each subdirectory in parallel.
    let subdirs = walk(root, root, Some(1), options, each, &problems);
    subdirs.par_iter().for_each(|dir| {
        walk(root, dir, None, options, each, &problems);
    });
    let mut problems = problems.into_inner().unwrap_or_default();
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(problems)
}

/// Finds the workspace directories at and below `rel` (a directory relative to `root`). A
/// directory that no longer exists has none.
pub(crate) fn discover_subtree(root: &Path, rel: &str, options: &DiscoverOptions) -> (Vec<String>, Vec<WalkProblem>) {
    let start = directory(root, rel);
    if !start.is_dir() {
        return (Vec::new(), Vec::new());
    }
    let found = Mutex::new(BTreeSet::new());
    let problems = Mutex::new(Vec::new());
    let each = |dir: Found<'_>| {
        found.lock().unwrap_or_else(|e| e.into_inner()).insert(dir.rel);
    };
    walk(root, &start, None, options, &each, &problems);
    let found: Vec<String> = found
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .filter(|d| is_within(d, rel))
        .collect();
    (found, problems.into_inner().unwrap_or_default())
}

/// True when the directory directly holds something that makes it a workspace directory.
pub(crate) fn is_workspace_dir(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        is_marker(&name.to_string_lossy(), e.path().is_dir())
    })
}

/// A directory still to be listed: its path, its depth below the walk's start, and (when symbolic
/// links are followed) the directories above it, for loop detection.
struct Pending {
    path: PathBuf,
    depth: usize,
    ancestors: Vec<Ancestor>,
}

/// A directory above the one being listed, as a link could lead back to it.
#[derive(Clone)]
struct Ancestor {
    id: (u64, u64),
    path: PathBuf,
}

impl Ancestor {
    /// The directory `path` names (through a link), by device and inode.
    fn of(path: &Path) -> Option<Ancestor> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(path).ok()?;
        Some(Ancestor {
            id: (meta.dev(), meta.ino()),
            path: path.to_owned(),
        })
    }

    /// The directories a link under `start` could loop back to before the walk has gone down:
    /// every directory above `start`'s real path, and `start` itself.
    fn of_start(start: &Path) -> Vec<Ancestor> {
        let mut chain: Vec<Ancestor> = match start.canonicalize() {
            Ok(real) => real.ancestors().skip(1).filter_map(Ancestor::of).collect(),
            Err(_) => Vec::new(),
        };
        chain.reverse();
        chain.extend(Ancestor::of(start));
        chain
    }
}

/// Walks from `start` down to `max_depth` (the start is depth 0), listing each directory once:
/// each that holds a marker is handed to `found` with its listing; `.git`, `node_modules` and the
/// folders Terraform keeps are never opened, nor is an excluded directory. Gives the directories
/// directly below `start` that would be walked on from.
fn walk(
    root: &Path,
    start: &Path,
    max_depth: Option<usize>,
    options: &DiscoverOptions,
    found: &(dyn Fn(Found<'_>) + Sync),
    problems: &Mutex<Vec<WalkProblem>>,
) -> Vec<PathBuf> {
    let ancestors = match options.follow_symlinks {
        true => Ancestor::of_start(start),
        false => Vec::new(),
    };
    let mut walk = Walk {
        root,
        options,
        found,
        errors: Vec::new(),
        below_start: Vec::new(),
    };
    walk.run(
        Pending {
            path: start.to_owned(),
            depth: 0,
            ancestors,
        },
        max_depth,
    );
    problems.lock().unwrap_or_else(|e| e.into_inner()).extend(walk.errors);
    walk.below_start
}

struct Walk<'a> {
    root: &'a Path,
    options: &'a DiscoverOptions,
    found: &'a (dyn Fn(Found<'_>) + Sync),
    errors: Vec<WalkProblem>,
    /// The directories at depth 1 walked on from (or that would be, past the maximum depth).
    below_start: Vec<PathBuf>,
}

impl Walk<'_> {
    /// Depth first, without recursion: one directory open at a time.
    fn run(&mut self, start: Pending, max_depth: Option<usize>) {
        let mut pending = vec![start];
        while let Some(dir) = pending.pop() {
            let entries = match fs::read_dir(&dir.path) {
                Ok(entries) => entries,
                Err(err) => {
                    self.problem(&dir.path, &err);
                    continue;
                }
            };
            let mut listed = Vec::new();
            for entry in entries {
                match entry {
                    Ok(entry) => listed.push(entry),
                    Err(err) => self.problem(&dir.path, &err),
                }
            }
            let mut workspace = false;
            let mut below = Vec::new();
            for entry in &listed {
                let Some(is_dir) = self.is_dir(entry, &dir) else {
                    continue;
                };
                let name = entry.file_name();
                let name = name.to_string_lossy();
                workspace = workspace || is_marker(&name, is_dir);
                if is_dir && !PRUNED.contains(&name.as_ref()) && !self.excluded(&entry.path()) {
                    below.push(entry.path());
                }
            }
            if workspace {
                (self.found)(Found {
                    rel: relative(self.root, &dir.path),
                    entries: &listed,
                });
            }
            drop(listed);
            if dir.depth == 0 {
                self.below_start.clone_from(&below);
            }
            if max_depth.is_some_and(|max| dir.depth + 1 >= max) {
                continue;
            }
            for path in below.into_iter().rev() {
                let ancestors = if self.options.follow_symlinks {
                    let mut chain = dir.ancestors.clone();
                    chain.extend(Ancestor::of(&path));
                    chain
                } else {
                    Vec::new()
                };
                pending.push(Pending {
                    path,
                    depth: dir.depth + 1,
                    ancestors,
                });
            }
        }
    }

    /// Whether an entry is a directory to the walk: a symbolic link is one only when links are
    /// followed and it names a directory that is not one of those above it (a loop, reported). `None`
    /// for an entry the walk cannot use (reported).
    fn is_dir(&mut self, entry: &fs::DirEntry, parent: &Pending) -> Option<bool> {
        let kind = match entry.file_type() {
            Ok(kind) => kind,
            Err(err) => {
                self.problem(&entry.path(), &err);
                return None;
            }
        };
        if !(kind.is_symlink() && self.options.follow_symlinks) {
            return Some(kind.is_dir());
        }
        let path = entry.path();
        let target = match fs::metadata(&path) {
            Ok(target) => target,
            Err(err) => {
                self.problem(&path, &err);
                return None;
            }
        };
        if !target.is_dir() {
            return Some(false);
        }
        let id = {
            use std::os::unix::fs::MetadataExt;
            (target.dev(), target.ino())
        };
        if let Some(ancestor) = parent.ancestors.iter().rev().find(|a| a.id == id) {
            self.errors.push(WalkProblem {
                message: format!("symbolic link loop back to {}", relative(self.root, &ancestor.path)),
                path: relative(self.root, &path),
                kind: ProblemKind::SymlinkLoop,
            });
            return None;
        }
        Some(true)
    }

    fn excluded(&self, path: &Path) -> bool {
        !self.options.exclude.is_empty() && self.options.exclude.is_match(relative(self.root, path))
    }

    fn problem(&mut self, path: &Path, err: &std::io::Error) {
        self.errors.push(walk_problem(relative(self.root, path), err));
    }
}

fn walk_problem(path: String, err: &std::io::Error) -> WalkProblem {
    match err.kind() {
        std::io::ErrorKind::PermissionDenied => WalkProblem {
            message: "permission denied: skipped".into(),
            path,
            kind: ProblemKind::PermissionDenied,
        },
        kind => WalkProblem {
            message: format!("cannot be read ({kind}): skipped"),
            path,
            kind: ProblemKind::Io,
        },
    }
}

/// The directory `rel` (relative to `root`, `.` for the root itself) on disk.
pub(crate) fn directory(root: &Path, rel: &str) -> PathBuf {
    if rel == "." { root.to_owned() } else { root.join(rel) }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    #[test]
    fn relative_paths_are_the_components_after_the_root() {
        let roots = ["/r", "/r/", "r", ".", "./", "/", "./r/", "a//b", "/r/.", "r/.."];
        let tails: [&[u8]; 18] = [
            b"",
            b"/",
            b"/x",
            b"/x/",
            b"/x//y",
            b"/./x",
            b"/x/./y",
            b"/x/.",
            b"/..",
            b"/x/..",
            b"y",
            b"//x",
            b"/x\\y",
            "/\u{e9}t\u{e9}/a".as_bytes(),
            b"/\xff/a",
            b"/x/y/z",
            b"x/y",
            b"/.x/..y",
        ];
        for root in roots {
            for tail in tails {
                let path = [root.as_bytes(), tail].concat();
                let (root, path) = (Path::new(root), Path::new(OsStr::from_bytes(&path)));
                assert_eq!(relative(root, path), by_components(root, path), "{root:?} {path:?}");
            }
        }
        assert_eq!(relative(Path::new("/r"), Path::new("/r/team/x")), "team/x");
        assert_eq!(
            joined(Path::new("/r"), Path::new("/r/team/x")).as_deref(),
            Some("team/x")
        );
        assert_eq!(relative(Path::new("/r"), Path::new("/r")), ".");
        assert_eq!(relative(Path::new("/r"), Path::new("/rx/a")), "/rx/a");
    }
}
