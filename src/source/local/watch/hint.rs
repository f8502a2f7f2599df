//! File events to hints: which directory (or subtree) must be read again for a changed path.
//! Events are hints, never facts: only their paths count, and the directory is read again.

use std::collections::BTreeSet;
use std::path::Path;

use notify::event::{AccessKind, AccessMode, EventKind};

use super::super::Root;
use super::super::discover::relative;
use super::super::layout::PRUNED;
use crate::workspace::is_within;

/// What needs reading again.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Hint {
    /// One directory (relative to its root).
    Dir(String),
    /// A directory and everything below it: it appeared, vanished or moved.
    Subtree(String),
}

/// Maps a changed path to what must be read again; nothing for paths that never matter.
pub(super) fn hint_for(root: &Path, path: &Path) -> Vec<Hint> {
    let rel = relative(root, path);
    if rel == "." {
        return vec![Hint::Subtree(".".into())];
    }
    let parts: Vec<&str> = rel.split('/').collect();
    if let Some(i) = parts.iter().position(|p| PRUNED.contains(p)) {
        if matches!(parts[i], ".git" | "node_modules") {
            return Vec::new();
        }
        let dir = if i == 0 { ".".to_owned() } else { parts[..i].join("/") };
        return vec![Hint::Dir(dir)];
    }
    let parent = if parts.len() == 1 {
        ".".to_owned()
    } else {
        parts[..parts.len() - 1].join("/")
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_dir() => vec![Hint::Dir(parent)],
        // A directory that appeared, or a path that vanished (it may have been a directory).
        _ => vec![Hint::Dir(parent), Hint::Subtree(rel)],
    }
}

/// A file event worth acting on (not our own reads).
pub(super) fn relevant(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// The root a path belongs to (the innermost when roots nest), with its index.
pub(super) fn root_of<'a>(roots: &'a [Root], path: &Path) -> Option<(usize, &'a Root)> {
    roots
        .iter()
        .enumerate()
        .filter(|(_, r)| path.starts_with(&r.path))
        .max_by_key(|(_, r)| r.path.as_os_str().len())
}

/// Drops subtrees that lie inside another one of the set.
pub(super) fn outermost(subtrees: BTreeSet<String>) -> Vec<String> {
    let all: Vec<String> = subtrees.into_iter().collect();
    all.iter()
        .filter(|s| !all.iter().any(|o| o != *s && is_within(s, o)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, ModifyKind, RemoveKind};

    use super::*;

    fn dir(rel: &str) -> Hint {
        Hint::Dir(rel.into())
    }

    fn subtree(rel: &str) -> Hint {
        Hint::Subtree(rel.into())
    }

    #[test]
    fn a_changed_file_hints_its_directory() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("env/prod")).unwrap();
        std::fs::write(root.path().join("env/prod/terraform.tfstate"), b"{}").unwrap();
        std::fs::write(root.path().join("main.tf"), b"").unwrap();
        assert_eq!(
            hint_for(root.path(), &root.path().join("env/prod/terraform.tfstate")),
            [dir("env/prod")]
        );
        assert_eq!(hint_for(root.path(), &root.path().join("main.tf")), [dir(".")]);
    }

    #[test]
    fn a_directory_or_a_vanished_path_hints_its_parent_and_its_subtree() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("env/new")).unwrap();
        assert_eq!(
            hint_for(root.path(), &root.path().join("env/new")),
            [dir("env"), subtree("env/new")]
        );
        assert_eq!(
            hint_for(root.path(), &root.path().join("gone")),
            [dir("."), subtree("gone")]
        );
        assert_eq!(hint_for(root.path(), root.path()), [subtree(".")]);
    }

    #[test]
    fn inside_a_pruned_folder_the_workspace_directory_is_hinted_and_git_never() {
        let root = Path::new("/nonexistent-root");
        let hint = |rel: &str| hint_for(root, &root.join(rel));
        assert_eq!(hint("app/.iacwatch/default/lock.json"), [dir("app")]);
        assert_eq!(hint("app/terraform.tfstate.d/prod/terraform.tfstate"), [dir("app")]);
        assert_eq!(hint(".terraform/environment"), [dir(".")]);
        assert_eq!(hint("app/.terragrunt-cache/x/y/terraform.tfstate"), [dir("app")]);
        assert!(hint("app/.git/HEAD").is_empty());
        assert!(hint("node_modules/x/package.json").is_empty());
    }

    #[test]
    fn only_reads_of_others_are_ignored() {
        assert!(!relevant(&EventKind::Access(AccessKind::Read)));
        assert!(!relevant(&EventKind::Access(AccessKind::Close(AccessMode::Read))));
        assert!(relevant(&EventKind::Access(AccessKind::Close(AccessMode::Write))));
        assert!(relevant(&EventKind::Create(CreateKind::File)));
        assert!(relevant(&EventKind::Modify(ModifyKind::Any)));
        assert!(relevant(&EventKind::Remove(RemoveKind::Folder)));
    }

    #[test]
    fn a_path_belongs_to_the_innermost_root_that_holds_it() {
        let roots = [Root::new("/srv/tf"), Root::new("/srv/tf/nested"), Root::new("/srv/tfx")];
        let index = |p: &str| root_of(&roots, Path::new(p)).map(|(i, _)| i);
        assert_eq!(index("/srv/tf/a/terraform.tfstate"), Some(0));
        assert_eq!(index("/srv/tf/nested/b"), Some(1));
        assert_eq!(index("/srv/tfx/c"), Some(2));
        assert_eq!(index("/elsewhere"), None);
    }

    #[test]
    fn nested_subtrees_fold_into_the_outermost() {
        let set: BTreeSet<String> = ["a", "a/b", "ab", "c/d", "c/d/e"].map(String::from).into();
        assert_eq!(outermost(set), ["a", "ab", "c/d"]);
        let root: BTreeSet<String> = [".", "a"].map(String::from).into();
        assert_eq!(outermost(root), ["."]);
    }
}
