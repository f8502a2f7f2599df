//! Roots resolved once at start-up: file events name absolute, resolved paths, so a root typed as
//! `root`, `./root/` or through a symbolic link must be compared in that form too. The `root`
//! label stays as the user typed it.

use std::path::{Component, Path, PathBuf};

use crate::source::local::Root;

/// `label` made absolute against `cwd`, with symbolic links resolved; a root that does not exist
/// yet (it may appear later) is only made absolute and cleaned of `.` and `..`.
pub fn resolve(label: String, cwd: &Path) -> Root {
    let absolute = cwd.join(&label);
    let path = absolute.canonicalize().unwrap_or_else(|_| clean(&absolute));
    Root { label, path }
}

/// `path` without `.` components, and with each `..` taking away the component before it.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_trailing_slash_and_symlinked_roots_resolve_to_one_path() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap().join("root");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        for label in ["root", "./root/", "link", "../root"] {
            let cwd = if label.starts_with("..") {
                real.clone()
            } else {
                dir.path().to_owned()
            };
            let root = resolve(label.to_owned(), &cwd);
            assert_eq!(root.path, real, "{label}");
            assert_eq!(root.label, label);
        }
        let absolute = real.display().to_string();
        assert_eq!(resolve(absolute.clone(), Path::new("/elsewhere")).path, real);
    }

    #[test]
    fn a_missing_root_is_made_absolute_and_clean() {
        let root = resolve("./not/../yet/".to_owned(), Path::new("/srv/tf"));
        assert_eq!(root.path, Path::new("/srv/tf/yet"));
        assert_eq!(root.label, "./not/../yet/");
    }
}
