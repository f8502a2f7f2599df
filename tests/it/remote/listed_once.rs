//! A directory whose backend is S3 in a bucket that is also a root: each of its workspaces is
//! listed once, under the directory, at every moment, also while the directory and its
//! workspaces are being created (the API polled without pause meanwhile).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::servers::{Moto, SeaweedFs, serve_polling};
use super::terraform::{KEY, main_tf, run};
use crate::support::{Daemon, eventually, http_get};
use crate::terraform::Workspace;

/// What one answer of `/api/v1/workspaces` lists twice: the CLI workspaces of `KEY` listed both
/// under the directory root and under the bucket root.
fn twice(body: &str, dir_root: &str) -> Vec<String> {
    let doc: serde_json::Value = serde_json::from_str(body).unwrap();
    let rows = doc["workspaces"].as_array().unwrap();
    let names = |keep: &dyn Fn(&serde_json::Value) -> bool| -> BTreeSet<String> {
        rows.iter()
            .filter(|w| keep(w))
            .map(|w| w["workspace"].as_str().unwrap().to_owned())
            .collect()
    };
    let under_dir = names(&|w| w["root"] == dir_root);
    let under_bucket = names(&|w| w["root"] == "s3://tfstate" && w["path"] == KEY);
    under_dir.intersection(&under_bucket).cloned().collect()
}

#[test]
fn a_directory_and_its_workspaces_are_never_listed_twice_while_they_are_created() {
    let (Some(s3), Some(moto)) = (SeaweedFs::start(), Moto::start()) else {
        return;
    };
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().to_str().unwrap().to_owned();
    let daemon = serve_polling(&s3, &[&root, "s3://tfstate"]);

    // The API polled without pause from before the directory exists until the end.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = std::thread::spawn({
        let (stop, address, root) = (stop.clone(), daemon.address.clone(), root.clone());
        move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            let (mut answers, mut doubles) = (0u64, Vec::new());
            while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                let Ok((200, body)) = http_get(&address, "/api/v1/workspaces") else {
                    continue;
                };
                answers += 1;
                let both = twice(&body, &root);
                if !both.is_empty() && doubles.len() < 5 {
                    doubles.push(format!("{both:?} in {body}"));
                }
            }
            (answers, doubles)
        }
    });

    let ws = Workspace::new_in(
        parent.path(),
        &main_tf(&s3, &moto, r#"resource "null_resource" "a" {}"#),
    );
    let Some(ws) = ws else {
        stop.store(true, Ordering::Release);
        let _ = watcher.join();
        return;
    };
    run(&ws, &["apply", "-auto-approve", "-input=false", "-no-color"]);
    let names = ["default", "qa", "staging", "uat"];
    for name in &names[1..] {
        run(&ws, &["workspace", "new", "-no-color", name]);
    }
    let listed = |daemon: &Daemon| -> BTreeSet<String> {
        let doc = daemon.get_json("/api/v1/workspaces");
        doc["workspaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["root"] == root.as_str() && w["backend"] == "s3")
            .map(|w| w["workspace"].as_str().unwrap().to_owned())
            .collect()
    };
    eventually(Duration::from_secs(60), "every workspace under the directory", || {
        (listed(&daemon) == names.map(str::to_owned).into()).then_some(())
    });
    // Three more polls of the bucket root: what it would have listed twice has had its chance.
    let settle = Instant::now() + Duration::from_secs(3);
    eventually(Duration::from_secs(10), "three more poll intervals", || {
        (Instant::now() >= settle).then_some(())
    });
    stop.store(true, Ordering::Release);
    let (answers, doubles) = watcher.join().unwrap();
    eprintln!("{answers} answers of the API while the workspaces were created");
    assert!(answers > 20, "the API was polled {answers} times only");
    assert_eq!(doubles, Vec::<String>::new(), "listed twice");
    let doc = daemon.get_json("/api/v1/workspaces");
    let bucket: Vec<_> = doc["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["root"] == "s3://tfstate")
        .collect();
    assert_eq!(
        bucket,
        Vec::<&serde_json::Value>::new(),
        "the bucket root lists the directory's objects"
    );
}
