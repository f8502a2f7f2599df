//! A poll of a root against the real SeaweedFS and moto: what each workspace holds, and what a
//! poll costs (a steady poll: the listing and the lock table, no GET).

use globset::GlobSet;
use iacwatch::source::s3::poll::LockSource;
use iacwatch::source::s3::{DigestCheck, ErrorKind, Poller, RemoteSettings};

use super::servers::{BUCKET, Moto, SeaweedFs, TABLE, put_items, runtime};
use crate::support::CANARY;

#[test]
fn a_steady_poll_gets_nothing_and_a_change_gets_one_object() {
    let (Some(s3), Some(moto)) = (SeaweedFs::start(), Moto::start()) else {
        return;
    };
    let state = format!(
        r#"{{"version":4,"serial":7,"lineage":"l","outputs":{{"pw":{{"value":"{CANARY}","type":"string"}}}},"resources":[{{"mode":"managed","type":"null_resource","name":"a","instances":[{{"attributes":{{"id":"1"}}}}]}}]}}"#
    );
    s3.put_all([
        ("app/terraform.tfstate", state.as_str()),
        ("env:/qa/app/terraform.tfstate", r#"{"version":4,"serial":1,"#),
        (
            "env:/qa/app/terraform.tfstate.tflock",
            r#"{"ID":"1","Operation":"OperationTypePlan","Created":"2026-11-29T10:00:00Z"}"#,
        ),
        ("gone/terraform.tfstate", r#"{"version":4,"resources":[]}"#),
    ]);
    let settings = RemoteSettings {
        dynamodb_table: Some(TABLE.into()),
        dynamodb_endpoint: Some(moto.endpoint.clone()),
        ..s3.settings()
    };
    let client = s3.client("s3://tfstate", settings);
    let rt = runtime();
    let etag = rt.block_on(client.list()).unwrap()[0].etag_digest().unwrap();
    put_items(
        &moto,
        &serde_json::json!([
            {"LockID": {"S": format!("{BUCKET}/app/terraform.tfstate-md5")}, "Digest": {"S": etag}},
            {"LockID": {"S": format!("{BUCKET}/env:/qa/app/terraform.tfstate-md5")}, "Digest": {"S": "0".repeat(32)}},
            {"LockID": {"S": format!("{BUCKET}/app/terraform.tfstate")}, "Info": {"S": "{\"Operation\":\"OperationTypeApply\"}"}},
        ]),
    );
    let mut poller = Poller::new(client, GlobSet::empty());

    let first = rt.block_on(poller.poll()).unwrap();
    assert_eq!(first.lock_table, None);
    let found: Vec<(&str, &str)> = first
        .workspaces
        .iter()
        .map(|w| (w.identity.path.as_str(), w.identity.workspace.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("app/terraform.tfstate", "default"),
            ("app/terraform.tfstate", "qa"),
            ("gone/terraform.tfstate", "default")
        ]
    );
    let default = &first.workspaces[0];
    assert_eq!(
        default.state.as_ref().unwrap().content.as_ref().unwrap().resources,
        Some(1)
    );
    assert_eq!(default.digest, DigestCheck::Matches);
    assert_eq!(default.locks.len(), 1);
    assert_eq!(default.locks[0].source, LockSource::Table);
    let qa = &first.workspaces[1];
    assert_eq!(
        qa.state.as_ref().unwrap().content.as_ref().unwrap_err().kind(),
        "truncated"
    );
    assert_eq!(qa.digest, DigestCheck::Differs);
    assert_eq!(qa.locks[0].source, LockSource::Object);
    assert!(!format!("{first:?}").contains(CANARY), "no state value kept");

    // Steady: one listing page and one Scan page, no GET.
    let before = poller.client().counts().requests();
    let second = rt.block_on(poller.poll()).unwrap();
    assert_eq!(second, first);
    assert_eq!(poller.client().counts().requests() - before, 2, "LIST + Scan only");

    // One object changes, one is deleted: exactly one GET, and the deleted one is gone.
    s3.put(
        "app/terraform.tfstate",
        b"{\"version\":4,\"serial\":8,\"resources\":[]}",
    );
    s3.delete("gone/terraform.tfstate");
    let before = poller.client().counts().requests();
    let third = rt.block_on(poller.poll()).unwrap();
    assert_eq!(poller.client().counts().requests() - before, 3, "LIST + one GET + Scan");
    assert_eq!(third.workspaces.len(), 2);
    assert_eq!(
        third.workspaces[0]
            .state
            .as_ref()
            .unwrap()
            .content
            .as_ref()
            .unwrap()
            .serial,
        Some(8)
    );
    assert_eq!(third.workspaces[0].digest, DigestCheck::Differs);
    assert!(third.problems.is_empty());

    // The lock table gone: the poll still reads the bucket, and says why the locks are unknown.
    moto.reset();
    let fourth = rt.block_on(poller.poll()).unwrap();
    assert_eq!(fourth.lock_table.as_ref().map(|e| e.kind), Some(ErrorKind::NotFound));
    assert_eq!(fourth.workspaces[0].digest, DigestCheck::NotChecked);
}
