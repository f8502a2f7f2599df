//! Discovery: which directories under a root are workspace directories.
//!
//! A directory is one when it directly holds a state, `.terraform/`, a lock file, a plan JSON,
//! `errored.tfstate`, the `.iacwatch/` marker folder, or `terragrunt.hcl`. Caches, `.git`,
//! `node_modules` and the folders Terraform keeps inside a workspace are never descended into.
//! Each top-level directory of a root is walked in parallel.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use globset::GlobSet;
use rayon::prelude::*;
use walkdir::{DirEntry, WalkDir};

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
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => match std::fs::read_dir(root) {
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

/// Finds the workspace directories under `root` (relative paths, sorted).
pub(crate) fn discover(root: &Path, options: &DiscoverOptions) -> Result<(Vec<String>, Vec<WalkProblem>), RootError> {
    let found = Mutex::new(Vec::new());
    let problems = discover_each(root, options, &|rel| {
        found.lock().unwrap_or_else(|e| e.into_inner()).push(rel);
    })?;
    let mut found = found.into_inner().unwrap_or_default();
    found.sort();
    Ok((found, problems))
}

/// Finds the workspace directories under `root` and hands each to `each` (once, as soon as it is
/// found, from whichever thread walks it), so that reading can start before the walk ends. The
/// walk's problems are returned sorted by path.
pub(crate) fn discover_each(
    root: &Path,
    options: &DiscoverOptions,
    each: &(dyn Fn(String) + Sync),
) -> Result<Vec<WalkProblem>, RootError> {
    check_root(root)?;
    let seen = Mutex::new(HashSet::new());
    let found = |rel: String| {
        if seen.lock().unwrap_or_else(|e| e.into_inner()).insert(rel.clone()) {
            each(rel);
        }
    };
    let problems = Mutex::new(Vec::new());
    // The root's own entries first, one level deep; then each subdirectory in parallel.
    let mut subdirs = Vec::new();
    walk(root, root, Some(1), options, &found, &problems, |entry| {
        if entry.depth() == 1 && is_dir(entry, options.follow_symlinks) {
            subdirs.push(entry.path().to_owned());
        }
    });
    subdirs
        .par_iter()
        .for_each(|dir| walk(root, dir, None, options, &found, &problems, |_| {}));
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
    let each = |rel: String| {
        found.lock().unwrap_or_else(|e| e.into_inner()).insert(rel);
    };
    walk(root, &start, None, options, &each, &problems, |_| {});
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
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        is_marker(&name.to_string_lossy(), e.path().is_dir())
    })
}

fn is_dir(entry: &DirEntry, follow: bool) -> bool {
    entry.file_type().is_dir() || (follow && entry.path_is_symlink() && entry.path().is_dir())
}

fn walk(
    root: &Path,
    start: &Path,
    max_depth: Option<usize>,
    options: &DiscoverOptions,
    found: &(dyn Fn(String) + Sync),
    problems: &Mutex<Vec<WalkProblem>>,
    mut visit: impl FnMut(&DirEntry),
) {
    let mut walker = WalkDir::new(start).follow_links(options.follow_symlinks);
    if let Some(depth) = max_depth {
        walker = walker.max_depth(depth);
    }
    // A directory holding several markers is handed on once, at the first.
    let mut local = HashSet::new();
    let iter = walker.into_iter().filter_entry(|entry| {
        let name = entry.file_name().to_string_lossy();
        let dir = is_dir(entry, options.follow_symlinks);
        if entry.depth() > 0
            && is_marker(&name, dir)
            && let Some(parent) = entry.path().parent()
        {
            let rel = relative(root, parent);
            if !local.contains(&rel) {
                local.insert(rel.clone());
                found(rel);
            }
        }
        // Only a directory is walked on from, so only a directory needs the exclusions' look
        // (a file left out here would only not be visited, and a visit of a file does nothing).
        if entry.depth() == 0 || !dir {
            return true;
        }
        if PRUNED.contains(&name.as_ref()) {
            return false;
        }
        options.exclude.is_empty() || !options.exclude.is_match(relative(root, entry.path()))
    });
    let mut errors = Vec::new();
    for item in iter {
        match item {
            Ok(entry) => visit(&entry),
            Err(err) => errors.push(walk_problem(root, &err)),
        }
    }
    problems.lock().unwrap_or_else(|e| e.into_inner()).extend(errors);
}

fn walk_problem(root: &Path, err: &walkdir::Error) -> WalkProblem {
    let path = err.path().map(|p| relative(root, p)).unwrap_or_else(|| ".".into());
    if let Some(ancestor) = err.loop_ancestor() {
        return WalkProblem {
            message: format!("symbolic link loop back to {}", relative(root, ancestor)),
            path,
            kind: ProblemKind::SymlinkLoop,
        };
    }
    match err.io_error().map(std::io::Error::kind) {
        Some(std::io::ErrorKind::PermissionDenied) => WalkProblem {
            message: "permission denied: skipped".into(),
            path,
            kind: ProblemKind::PermissionDenied,
        },
        Some(kind) => WalkProblem {
            message: format!("cannot be read ({kind}): skipped"),
            path,
            kind: ProblemKind::Io,
        },
        None => WalkProblem {
            message: "cannot be walked: skipped".into(),
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
