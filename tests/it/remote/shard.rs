//! `serve --shard I/N`: two instances on one SeaweedFS bucket split its workspaces between them,
//! each in exactly one, and together list what an unsharded instance lists.

use std::collections::BTreeSet;

use super::servers::{ACCESS_KEY, SECRET_KEY, SeaweedFs};
use crate::support::{Daemon, id_rows};

const STATE: &str = r#"{"version":4,"serial":3,"lineage":"l","outputs":{},"resources":[{"mode":"managed","type":"null_resource","name":"a","instances":[{"attributes":{"id":"1"}}]}]}"#;

fn serve(s3: &SeaweedFs, shard: Option<&str>) -> Daemon {
    let mut args = vec!["--s3-endpoint", &s3.endpoint, "--s3-force-path-style"];
    if let Some(shard) = shard {
        args.extend(["--shard", shard]);
    }
    Daemon::builder()
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
    for n in 0..12 {
        s3.put(&format!("stacks/{n}/terraform.tfstate"), STATE.as_bytes());
        s3.put(&format!("env:/qa/stacks/{n}/terraform.tfstate"), STATE.as_bytes());
    }
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
