//! Which objects of a bucket are state, and which workspace each is: the identity rule of the
//! remote-state contract, `(root, path, workspace)` from a state key. Pure.
//!
//! Terraform's S3 backend keeps workspace `default` at `KEY` and workspace `W` at
//! `PREFIX/W/KEY` (`PREFIX` is `workspace_key_prefix`, `env:` by default). `path` is `KEY` relative
//! to the root's prefix, so every workspace of one configuration groups under one path.

use std::collections::BTreeSet;

use globset::GlobSet;

use super::settings::S3Root;

/// Terraform's suffix of the S3 native lock object (`KEY.tflock`).
pub const LOCK_OBJECT_SUFFIX: &str = ".tflock";
/// The suffix of the DynamoDB item that holds the state's MD5 (`BUCKET/KEY-md5`).
pub const DIGEST_ITEM_SUFFIX: &str = "-md5";

/// One state object under a root, and the workspace it is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StateIdentity {
    /// The state key relative to the root's prefix, the workspace part removed.
    pub path: String,
    pub workspace: String,
    /// The object's full key in the bucket.
    pub key: String,
}

/// True for a state object: the key ends in `.tfstate` and no part of it is a pipeline marker
/// folder (`STATEKEY.iacwatch/`). `.tfstate.backup` and `.tflock` objects end otherwise.
pub fn is_state_key(key: &str) -> bool {
    key.ends_with(".tfstate")
        && !key.split('/').any(|segment| segment.ends_with(".iacwatch"))
        && !key.ends_with("/.tfstate")
        && key != ".tfstate"
}

/// The key of the S3 native lock object of a state key.
pub fn lock_object_key(state_key: &str) -> String {
    format!("{state_key}{LOCK_OBJECT_SUFFIX}")
}

/// The state key a `.tflock` object locks, when it is one.
pub fn locked_state_key(key: &str) -> Option<&str> {
    key.strip_suffix(LOCK_OBJECT_SUFFIX).filter(|state| is_state_key(state))
}

/// The DynamoDB `LockID` of a state's lock item: `BUCKET/KEY`.
pub fn lock_id(bucket: &str, state_key: &str) -> String {
    format!("{bucket}/{state_key}")
}

/// The DynamoDB `LockID` of a state's digest item: `BUCKET/KEY-md5`.
pub fn digest_id(bucket: &str, state_key: &str) -> String {
    format!("{bucket}/{state_key}{DIGEST_ITEM_SUFFIX}")
}

/// The key prefixes to list for a root: its own prefix, and where its named workspaces live.
/// Prefixes inside another are dropped, so no object is listed twice.
pub fn listing_prefixes(root: &S3Root, workspace_prefix: &str) -> Vec<String> {
    let own = root.key_prefix();
    let named = if workspace_prefix.is_empty() {
        // `W/KEY`: a named workspace may be anywhere in the bucket.
        String::new()
    } else {
        format!("{workspace_prefix}/")
    };
    let mut prefixes = vec![own, named];
    prefixes.sort();
    prefixes.dedup();
    let all = prefixes.clone();
    prefixes.retain(|p| !all.iter().any(|q| q != p && p.starts_with(q.as_str())));
    prefixes
}

/// The state objects among `keys` (a listing of the prefixes of `listing_prefixes`) that belong
/// to `root`, with their identities, sorted by path then workspace. `exclude` globs match the
/// identity's path and each folder above it, as they match paths under a directory root.
///
/// With an empty `workspace_prefix` Terraform writes `W/KEY`, which a plain key of two parts also
/// looks like: `W/KEY` is taken as workspace `W` only when `KEY` itself is a state object of the
/// listing (the default workspace of that configuration).
pub fn identify<'a>(
    root: &S3Root,
    workspace_prefix: &str,
    keys: impl IntoIterator<Item = &'a str>,
    exclude: &GlobSet,
) -> Vec<StateIdentity> {
    let states: BTreeSet<&str> = keys.into_iter().filter(|k| is_state_key(k)).collect();
    let own = root.key_prefix();
    let mut found: Vec<StateIdentity> = states
        .iter()
        .filter_map(|key| {
            let (workspace, state_key) = split_workspace(key, workspace_prefix, &states);
            let path = state_key.strip_prefix(own.as_str())?;
            (!path.is_empty() && !excluded(path, exclude)).then(|| StateIdentity {
                path: path.to_owned(),
                workspace: workspace.to_owned(),
                key: (*key).to_owned(),
            })
        })
        .collect();
    found.sort();
    // `PREFIX/default/KEY` is not where Terraform keeps `default`: the plain `KEY` wins.
    found.dedup_by(|later, earlier| later.path == earlier.path && later.workspace == earlier.workspace);
    found
}

/// `(workspace, state key)` of a key: Terraform's `keyEnv`, in reverse.
fn split_workspace<'k>(key: &'k str, workspace_prefix: &str, states: &BTreeSet<&str>) -> (&'k str, &'k str) {
    let named = if workspace_prefix.is_empty() {
        key.split_once('/').filter(|(_, rest)| states.contains(rest))
    } else {
        key.strip_prefix(workspace_prefix)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|rest| rest.split_once('/'))
    };
    match named {
        Some((workspace, rest)) if !workspace.is_empty() && !rest.is_empty() => (workspace, rest),
        _ => ("default", key),
    }
}

fn excluded(path: &str, exclude: &GlobSet) -> bool {
    if exclude.is_empty() {
        return false;
    }
    let mut end = 0;
    for segment in path.split('/') {
        end += segment.len();
        if exclude.is_match(&path[..end]) {
            return true;
        }
        end += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(url: &str) -> S3Root {
        S3Root::parse(url).unwrap()
    }

    fn globs(patterns: &[&str]) -> GlobSet {
        let mut set = globset::GlobSetBuilder::new();
        for p in patterns {
            set.add(globset::Glob::new(p).unwrap());
        }
        set.build().unwrap()
    }

    fn ids(root_url: &str, prefix: &str, keys: &[&str], exclude: &[&str]) -> Vec<(String, String)> {
        identify(&root(root_url), prefix, keys.iter().copied(), &globs(exclude))
            .into_iter()
            .map(|id| (format!("{}@{}", id.path, id.workspace), id.key))
            .collect()
    }

    #[test]
    fn tells_state_objects() {
        let cases = [
            ("terraform.tfstate", true),
            ("apps/web/terraform.tfstate", true),
            ("env:/staging/apps/web/terraform.tfstate", true),
            ("prod.tfstate", true),
            ("terraform.tfstate.backup", false),
            ("terraform.tfstate.tflock", false),
            ("apps/web/terraform.tfstate.iacwatch/plan.json", false),
            ("apps/web/terraform.tfstate.iacwatch/old.tfstate", false),
            ("apps/web/terraform.tfstate.1700000000.backup", false),
            ("apps/web/", false),
            ("apps/.tfstate", false),
            ("README.md", false),
        ];
        for (key, expected) in cases {
            assert_eq!(is_state_key(key), expected, "{key}");
        }
    }

    #[test]
    fn names_the_lock_objects_and_items() {
        assert_eq!(lock_object_key("a/terraform.tfstate"), "a/terraform.tfstate.tflock");
        assert_eq!(
            locked_state_key("a/terraform.tfstate.tflock"),
            Some("a/terraform.tfstate")
        );
        assert_eq!(locked_state_key("a/notes.tflock"), None);
        assert_eq!(lock_id("b", "a/terraform.tfstate"), "b/a/terraform.tfstate");
        assert_eq!(digest_id("b", "a/terraform.tfstate"), "b/a/terraform.tfstate-md5");
    }

    #[test]
    fn workspaces_of_a_whole_bucket_group_under_one_path() {
        let keys = [
            "apps/web/terraform.tfstate",
            "env:/staging/apps/web/terraform.tfstate",
            "env:/qa/apps/web/terraform.tfstate",
            "env:/qa/apps/web/terraform.tfstate.tflock",
            "apps/web/terraform.tfstate.iacwatch/last-run.json",
            "apps/web/terraform.tfstate.backup",
            "net.tfstate",
        ];
        let got = ids("s3://bucket", "env:", &keys, &[]);
        let expected = [
            ("apps/web/terraform.tfstate@default", "apps/web/terraform.tfstate"),
            ("apps/web/terraform.tfstate@qa", "env:/qa/apps/web/terraform.tfstate"),
            (
                "apps/web/terraform.tfstate@staging",
                "env:/staging/apps/web/terraform.tfstate",
            ),
            ("net.tfstate@default", "net.tfstate"),
        ];
        let expected: Vec<(String, String)> = expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn a_root_with_a_prefix_holds_its_named_workspaces_outside_it() {
        let keys = [
            "prod/apps/web/terraform.tfstate",
            "env:/staging/prod/apps/web/terraform.tfstate",
            "env:/staging/dev/apps/web/terraform.tfstate",
            "dev/apps/web/terraform.tfstate",
            "production/x.tfstate",
        ];
        let got = ids("s3://bucket/prod", "env:", &keys, &[]);
        let paths: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            paths,
            [
                "apps/web/terraform.tfstate@default",
                "apps/web/terraform.tfstate@staging"
            ]
        );
    }

    #[test]
    fn a_custom_workspace_key_prefix() {
        let keys = ["app.tfstate", "workspaces/blue/app.tfstate", "env:/green/app.tfstate"];
        let got = ids("s3://bucket", "workspaces", &keys, &[]);
        let paths: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
        // `env:` is no workspace prefix here: that object is the default workspace of its own key.
        assert_eq!(
            paths,
            [
                "app.tfstate@blue",
                "app.tfstate@default",
                "env:/green/app.tfstate@default"
            ]
        );
    }

    #[test]
    fn an_empty_workspace_key_prefix_needs_the_default_state() {
        let keys = ["app.tfstate", "blue/app.tfstate", "team/other.tfstate"];
        let got = ids("s3://bucket", "", &keys, &[]);
        let paths: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            paths,
            ["app.tfstate@blue", "app.tfstate@default", "team/other.tfstate@default"]
        );
    }

    #[test]
    fn the_plain_key_wins_over_a_default_folder() {
        let keys = ["app.tfstate", "env:/default/app.tfstate"];
        let got = ids("s3://bucket", "env:", &keys, &[]);
        assert_eq!(got, [("app.tfstate@default".to_owned(), "app.tfstate".to_owned())]);
    }

    #[test]
    fn exclude_globs_prune_folders_and_match_paths() {
        let keys = [
            "apps/web/terraform.tfstate",
            "env:/qa/apps/web/terraform.tfstate",
            "sandbox/x/terraform.tfstate",
            "legacy.tfstate",
        ];
        let got = ids("s3://bucket", "env:", &keys, &["sandbox", "legacy.*", "apps/web"]);
        assert!(got.is_empty(), "{got:?}");
        let got = ids("s3://bucket", "env:", &keys, &["**/x/*"]);
        assert_eq!(got.len(), 3, "{got:?}");
    }

    #[test]
    fn listing_prefixes_cover_both_places_once() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("s3://bucket", "env:", &[""]),
            ("s3://bucket/prod", "env:", &["env:/", "prod/"]),
            ("s3://bucket/prod", "", &[""]),
            ("s3://bucket/env:", "env:", &["env:/"]),
        ];
        for (url, prefix, expected) in cases {
            assert_eq!(listing_prefixes(&root(url), prefix), *expected, "{url} {prefix}");
        }
    }
}
