//! `serve --shard I/N`: two instances on one SeaweedFS bucket split its workspaces between them,
//! each in exactly one, and together list what an unsharded instance lists; each GETs only its
//! share of the objects; a restart with a shard records no other shard's workspace as vanished.

use std::collections::BTreeSet;
use std::sync::Arc;

use globset::GlobSet;
use iacwatch::shard::Shard;
use iacwatch::source::s3::Poller;
use iacwatch::workspace::workspace_id;

use super::servers::{ACCESS_KEY, SECRET_KEY, SeaweedFs, runtime};
use crate::support::{Daemon, id_rows};

const STATE: &str = r#"{"version":4,"serial":3,"lineage":"l","outputs":{},"resources":[{"mode":"managed","type":"null_resource","name":"a","instances":[{"attributes":{"id":"1"}}]}]}"#;

fn serve(s3: &SeaweedFs, shard: Option<&str>) -> Daemon {
    serve_with_history(s3, shard, None)
}

/// `serve` of the bucket, with the history in `data_dir` when given (its own otherwise).
fn serve_with_history(s3: &SeaweedFs, shard: Option<&str>, data_dir: Option<&Arc<tempfile::TempDir>>) -> Daemon {
    let mut args = vec!["--s3-endpoint", &s3.endpoint, "--s3-force-path-style"];
    if let Some(shard) = shard {
        args.extend(["--shard", shard]);
    }
    let builder = match data_dir {
        Some(dir) => Daemon::builder().data_dir(dir),
        None => Daemon::builder(),
    };
    builder
        .args(args)
        .arg("s3://tfstate")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .start()
}

/// (id, path, workspace) of every workspace the daemon lists; the counts agree with them.
fn rows(daemon: &Daemon) -> BTreeSet<(String, String, String)> {
    id_rows(&daemon.get_json("/api/v1/workspaces"))
}

#[test]
fn two_serve_instances_on_one_bucket_split_it_and_agree_with_the_unsharded_listing() {
    let Some(s3) = SeaweedFs::start() else {
        return;
    };
    s3.put_all((0..12).flat_map(|n| {
        [
            (format!("stacks/{n}/terraform.tfstate"), STATE),
            (format!("env:/qa/stacks/{n}/terraform.tfstate"), STATE),
        ]
    }));
    // Ready means the first poll is in.
    let whole = rows(&serve(&s3, None));
    assert_eq!(whole.len(), 24, "{whole:?}");
    let first = rows(&serve(&s3, Some("0/2")));
    let second = rows(&serve(&s3, Some("1/2")));
    for (index, part) in [(0, &first), (1, &second)] {
        for (id, ..) in part {
            assert_eq!(u64::from_str_radix(id, 16).unwrap() % 2, index, "{id}");
        }
    }
    assert!(first.is_disjoint(&second), "{first:?} {second:?}");
    let union: BTreeSet<_> = first.union(&second).cloned().collect();
    assert_eq!(union, whole);
    // 24 workspaces: a hash that put them all in one shard would be no split.
    assert!(!first.is_empty() && !second.is_empty(), "{first:?} {second:?}");
}

/// Twelve stacks, each with `default` and `qa`; the first `locked` of them hold a `.tflock` on
/// `default` too.
fn fill(s3: &SeaweedFs, locked: usize) {
    let lock = r#"{"ID":"1","Operation":"OperationTypePlan","Created":"2026-11-29T10:00:00Z"}"#;
    let states = (0..12).flat_map(|n| {
        [
            (format!("stacks/{n}/terraform.tfstate"), STATE),
            (format!("env:/qa/stacks/{n}/terraform.tfstate"), STATE),
        ]
    });
    let locks = (0..locked).map(|n| (format!("stacks/{n}/terraform.tfstate.tflock"), lock));
    s3.put_all(states.chain(locks));
}

#[test]
fn a_shard_lists_the_whole_bucket_but_gets_only_its_own_objects() {
    let Some(s3) = SeaweedFs::start() else {
        return;
    };
    fill(&s3, 4);
    let rt = runtime();
    // (path, workspace) of each workspace read, and the GETs of the first poll (its requests
    // less those of a steady poll, which are the listing's alone: no lock table here).
    let poll = |shard: Option<Shard>| {
        let client = s3.client("s3://tfstate", s3.settings());
        let mut poller = Poller::new(client, GlobSet::empty()).with_shard(shard);
        let first = rt.block_on(poller.poll()).unwrap();
        let after_first = poller.client().counts().requests();
        rt.block_on(poller.poll()).unwrap();
        let listing = poller.client().counts().requests() - after_first;
        let locks = first.workspaces.iter().filter(|w| !w.locks.is_empty()).count();
        let read: BTreeSet<(String, String)> = first
            .workspaces
            .iter()
            .map(|w| (w.identity.path.clone(), w.identity.workspace.clone()))
            .collect();
        (read, after_first - listing, locks)
    };
    let (whole, whole_gets, whole_locks) = poll(None);
    assert_eq!((whole.len(), whole_gets, whole_locks), (24, 28, 4), "{whole:?}");
    let mut union = BTreeSet::new();
    let mut gets = 0;
    for index in 0..2 {
        let shard = Shard { index, count: 2 };
        let (part, part_gets, part_locks) = poll(Some(shard));
        for (path, workspace) in &part {
            assert!(
                shard.takes_identity("s3://tfstate", path, workspace),
                "{path} {workspace}"
            );
        }
        assert!(!part.is_empty() && part.len() < whole.len(), "{part:?}");
        assert!(union.is_disjoint(&part), "{union:?} {part:?}");
        // Its own states and the lock objects of its own workspaces, nothing else.
        assert_eq!(part_gets, part.len() as u64 + part_locks as u64, "shard {shard}");
        eprintln!(
            "shard {shard}: {} workspaces, {part_gets} GETs of {whole_gets}",
            part.len()
        );
        gets += part_gets;
        union.extend(part);
    }
    assert_eq!(union, whole);
    assert_eq!(gets, whole_gets, "together the shards GET each object once");
    // The workspace ids are those the API lists: the same shard as the daemon's.
    let (id, ..) = rows(&serve(&s3, Some("0/2"))).into_iter().next().unwrap();
    let listed = whole
        .iter()
        .find(|(p, w)| workspace_id("s3://tfstate", p, w) == id)
        .unwrap();
    assert!(Shard { index: 0, count: 2 }.takes_identity("s3://tfstate", &listed.0, &listed.1));
}

#[test]
fn a_restart_with_a_shard_records_no_other_shards_workspace_as_vanished() {
    let Some(s3) = SeaweedFs::start() else {
        return;
    };
    fill(&s3, 0);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let transitions = |daemon: &Daemon| -> Vec<serde_json::Value> {
        daemon.get_json("/api/v1/transitions?limit=1000")["transitions"]
            .as_array()
            .unwrap()
            .clone()
    };
    // An unsharded run records every workspace of the bucket.
    let mut whole = serve_with_history(&s3, None, Some(&dir));
    assert_eq!(transitions(&whole).len(), 24);
    whole.terminate();
    drop(whole);
    for shard in ["0/2", "1/2"] {
        let mut daemon = serve_with_history(&s3, Some(shard), Some(&dir));
        let listed = rows(&daemon);
        assert!(!listed.is_empty() && listed.len() < 24, "{listed:?}");
        // Ready means what a restart found vanished is recorded: nothing did.
        let vanished: Vec<_> = transitions(&daemon).into_iter().filter(|t| t["to"].is_null()).collect();
        assert_eq!(vanished, Vec::<serde_json::Value>::new(), "shard {shard}");
        assert_eq!(
            transitions(&daemon).len(),
            24,
            "shard {shard}: the restart is no transition"
        );
        daemon.terminate();
    }
    // Something that did vanish from this shard is still recorded.
    let gone = rows(&serve(&s3, Some("0/2")));
    let (_, path, workspace) = gone.iter().next().unwrap();
    let key = match workspace.as_str() {
        "default" => path.clone(),
        w => format!("env:/{w}/{path}"),
    };
    s3.delete(&key);
    let daemon = serve_with_history(&s3, Some("0/2"), Some(&dir));
    let vanished: Vec<(String, String)> = transitions(&daemon)
        .into_iter()
        .filter(|t| t["to"].is_null())
        .map(|t| {
            (
                t["path"].as_str().unwrap().to_owned(),
                t["workspace"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(vanished, [(path.clone(), workspace.clone())]);
}
