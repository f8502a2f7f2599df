//! The S3 client against a real SeaweedFS and the lock-table read against a real moto: pagination,
//! conditional GETs, identities, and the faults (wrong secret, closed port, unresolvable host, an
//! object deleted between listing and GET, a malformed lock item).

use globset::GlobSet;
use iacwatch::artifact::tflock::LockOperation;
use iacwatch::source::s3::keys::{identify, lock_object_key, locked_state_key};
use iacwatch::source::s3::locktable::parse_lock_object;
use iacwatch::source::s3::{ErrorKind, Fetched, RemoteSettings, S3Client, S3Root};

use super::servers::{Moto, SECRET_KEY, SeaweedFs, TABLE, put_items, runtime, test_keys};
use crate::support::{CANARY, free_port};

#[test]
fn lists_every_page_and_gets_only_changed_objects() {
    let Some(s3) = SeaweedFs::start() else { return };
    s3.put_many("many", 1050);
    let state = format!(
        r#"{{"version":4,"serial":3,"lineage":"l-1","terraform_version":"1.0.3","outputs":{{"pw":{{"value":"{CANARY}","type":"string","sensitive":true}}}},"resources":[{{"mode":"managed","type":"null_resource","name":"a","instances":[{{"attributes":{{"id":"1"}}}}]}}]}}"#
    );
    s3.put_all([
        ("apps/web/terraform.tfstate", state.as_str()),
        ("env:/qa/apps/web/terraform.tfstate", &state),
        ("apps/web/terraform.tfstate.backup", "{}"),
    ]);
    let client = s3.client("s3://tfstate", s3.settings());
    let rt = runtime();

    let objects = rt.block_on(client.list()).unwrap();
    assert_eq!(objects.len(), 1053, "every page listed");
    assert!(client.counts().requests() >= 2, "S3 pages at 1,000 keys");
    let ids = identify(
        client.root(),
        client.settings().workspace_prefix(),
        objects.iter().map(|o| o.key.as_str()),
        &GlobSet::empty(),
    );
    assert_eq!(ids.len(), 1052);
    let web: Vec<_> = ids
        .iter()
        .filter(|id| id.path == "apps/web/terraform.tfstate")
        .collect();
    assert_eq!(
        web.iter().map(|id| id.workspace.as_str()).collect::<Vec<_>>(),
        ["default", "qa"]
    );

    let object = objects.iter().find(|o| o.key == "apps/web/terraform.tfstate").unwrap();
    let Fetched::Changed { body, etag, .. } = rt.block_on(client.get(&object.key, None)).unwrap() else {
        panic!("a GET without an ETag returns the body");
    };
    assert_eq!(etag, object.etag);
    let meta = iacwatch::artifact::state::parse(&body).unwrap();
    assert_eq!((meta.serial, meta.resources), (Some(3), Some(1)));
    assert!(!format!("{meta:?}").contains(CANARY));

    let before = client.counts().not_modified();
    let again = rt.block_on(client.get(&object.key, object.etag.as_deref())).unwrap();
    assert_eq!(again, Fetched::Unchanged);
    assert_eq!(client.counts().not_modified(), before + 1, "answered 304, no body");

    // Deleted between the listing and the GET.
    s3.delete("env:/qa/apps/web/terraform.tfstate");
    let err = rt
        .block_on(client.get("env:/qa/apps/web/terraform.tfstate", None))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert!(
        err.to_string()
            .contains("s3://tfstate/env:/qa/apps/web/terraform.tfstate"),
        "{err}"
    );
}

#[test]
fn a_root_with_a_prefix_lists_its_named_workspaces_outside_it() {
    let Some(s3) = SeaweedFs::start() else { return };
    let empty = r#"{"version":4,"resources":[]}"#;
    // An S3 native lock (Terraform >= 1.10, `use_lockfile`), as Terraform writes it.
    let lock = r#"{"ID":"e3a3b7c2-1f0d-4c1e-9d2a-6b0b1c2d3e4f","Operation":"OperationTypeApply","Info":"","Who":"runner@ci-7","Version":"1.10.0","Created":"2026-11-29T10:00:00.123456789Z","Path":"tfstate/env:/blue/prod/net/terraform.tfstate"}"#;
    s3.put_all([
        ("prod/net/terraform.tfstate", empty),
        ("env:/blue/prod/net/terraform.tfstate", empty),
        ("env:/blue/dev/net/terraform.tfstate", empty),
        ("dev/net/terraform.tfstate", empty),
        ("env:/blue/prod/net/terraform.tfstate.tflock", lock),
    ]);
    let client = s3.client("s3://tfstate/prod", s3.settings());
    let rt = runtime();
    let objects = rt.block_on(client.list()).unwrap();
    let locks: Vec<&str> = objects.iter().filter_map(|o| locked_state_key(&o.key)).collect();
    assert_eq!(locks, ["env:/blue/prod/net/terraform.tfstate"]);
    let Fetched::Changed { body, .. } = rt.block_on(client.get(&lock_object_key(locks[0]), None)).unwrap() else {
        panic!("the lock object has a body");
    };
    let lock = parse_lock_object(&body).unwrap();
    assert_eq!(
        (lock.operation, lock.version.as_deref()),
        (LockOperation::Apply, Some("1.10.0"))
    );
    let ids = identify(
        client.root(),
        "env:",
        objects.iter().map(|o| o.key.as_str()),
        &GlobSet::empty(),
    );
    let got: Vec<(String, String)> = ids.into_iter().map(|id| (id.path, id.workspace)).collect();
    assert_eq!(
        got,
        [
            ("net/terraform.tfstate".to_owned(), "blue".to_owned()),
            ("net/terraform.tfstate".to_owned(), "default".to_owned())
        ]
    );
}

#[test]
fn a_wrong_secret_is_access_denied_and_never_shown() {
    let Some(s3) = SeaweedFs::start() else { return };
    let wrong = "WRONG-secret-0c6f1d";
    let root = S3Root::parse("s3://tfstate").unwrap();
    let client = S3Client::new(&root, &s3.settings(), &test_keys(wrong)).unwrap();
    let err = runtime().block_on(client.list()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::AccessDenied, "{err}");
    let shown = format!("{err} {err:?} {client:?}");
    assert!(shown.contains("s3:ListBucket"), "names the permission: {shown}");
    for secret in [wrong, SECRET_KEY] {
        assert!(!shown.contains(secret), "the secret leaked: {shown}");
    }
}

#[test]
fn a_closed_port_or_an_unknown_host_is_unreachable() {
    let keys = test_keys(SECRET_KEY);
    let root = S3Root::parse("s3://tfstate").unwrap();
    let rt = runtime();
    for endpoint in [
        format!("http://127.0.0.1:{}", free_port()),
        "http://no-such-host.invalid:8333".to_owned(),
    ] {
        let settings = RemoteSettings {
            endpoint: Some(endpoint.clone()),
            force_path_style: true,
            ..RemoteSettings::default()
        };
        let client = S3Client::new(&root, &settings, &keys).unwrap();
        let err = rt.block_on(client.list()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unreachable, "{endpoint}: {err}");
        assert!(!format!("{err} {err:?}").contains(SECRET_KEY));
    }
}

#[test]
fn reads_the_lock_table_with_pages_and_a_malformed_item() {
    let Some(moto) = Moto::start() else { return };
    let info = format!(
        r#"{{"ID":"5d3c","Operation":"OperationTypeApply","Info":"{CANARY}","Who":"ci@runner-1","Version":"1.0.3","Created":"2026-11-29T10:00:00.123Z","Path":"tfstate/app.tfstate"}}"#
    );
    put_items(
        &moto,
        &serde_json::json!([
            {"LockID": {"S": "tfstate/app.tfstate"}, "Info": {"S": info}},
            {"LockID": {"S": "tfstate/app.tfstate-md5"}, "Digest": {"S": "0123456789abcdef0123456789abcdef"}},
            {"LockID": {"S": "tfstate/bad.tfstate"}, "Info": {"S": format!("{{\"ID\": \"{CANARY}")}},
        ]),
    );
    super::servers::aws(None, Some(&moto.endpoint), &["put-many-items", TABLE, "1100"]);
    let settings = RemoteSettings {
        endpoint: Some("http://127.0.0.1:1".into()),
        dynamodb_table: Some(TABLE.into()),
        dynamodb_endpoint: Some(moto.endpoint.clone()),
        ..RemoteSettings::default()
    };
    let client = S3Client::new(
        &S3Root::parse("s3://tfstate").unwrap(),
        &settings,
        &test_keys(SECRET_KEY),
    )
    .unwrap();
    let table = runtime().block_on(client.scan_lock_table()).unwrap().unwrap();
    assert!(client.counts().requests() >= 2, "the table came in pages");
    assert_eq!(table.digests.len(), 1101);
    assert_eq!(
        table.digests["tfstate/app.tfstate"].as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    let lock = table.locks["tfstate/app.tfstate"].as_ref().unwrap();
    assert_eq!(lock.operation, LockOperation::Apply);
    assert_eq!(
        table.locks["tfstate/bad.tfstate"].as_ref().unwrap_err().kind(),
        "truncated"
    );
    assert!(!format!("{table:?}").contains(CANARY));

    // A table that does not exist.
    moto.reset();
    let err = runtime().block_on(client.scan_lock_table()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("dynamodb:locks"), "{err}");
}
