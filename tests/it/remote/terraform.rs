//! The real Terraform 1.0.3 writing state through `backend "s3"` into SeaweedFS, with its lock
//! table in moto: the client lists what Terraform wrote, maps it to workspaces, parses it, and
//! reads the lock table's digest items and a lock held by a running apply.

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use globset::GlobSet;
use iacwatch::artifact::tflock::LockOperation;
use iacwatch::source::s3::keys::{digest_id, identify, lock_id};
use iacwatch::source::s3::{Fetched, RemoteSettings};

use super::servers::{ACCESS_KEY, BUCKET, Moto, SECRET_KEY, SeaweedFs, TABLE, runtime};
use crate::support::{CANARY, eventually};
use crate::terraform::{Workspace, text};

pub(super) const KEY: &str = "apps/web/terraform.tfstate";

pub(super) fn main_tf(s3: &SeaweedFs, moto: &Moto, resources: &str) -> String {
    format!(
        r#"terraform {{
  backend "s3" {{
    bucket                      = "{BUCKET}"
    key                         = "{KEY}"
    region                      = "us-east-1"
    endpoint                    = "{endpoint}"
    force_path_style            = true
    dynamodb_endpoint           = "{dynamodb}"
    dynamodb_table              = "{TABLE}"
    skip_credentials_validation = true
    skip_region_validation      = true
    skip_metadata_api_check     = true
    access_key                  = "{ACCESS_KEY}"
    secret_key                  = "{SECRET_KEY}"
  }}
}}

{resources}
"#,
        endpoint = s3.endpoint,
        dynamodb = moto.endpoint,
    )
}

fn settings(s3: &SeaweedFs, moto: &Moto) -> RemoteSettings {
    RemoteSettings {
        dynamodb_table: Some(TABLE.into()),
        dynamodb_endpoint: Some(moto.endpoint.clone()),
        ..s3.settings()
    }
}

/// A workspace on the servers whose state holds the canary: `default` applied, then `staging`
/// made (and selected) with the empty state `workspace new` writes at once.
pub(super) fn applied_with_staging(s3: &SeaweedFs, moto: &Moto) -> Option<Workspace> {
    let resources = format!(r#"resource "null_resource" "a" {{ triggers = {{ secret = "{CANARY}" }} }}"#);
    let ws = Workspace::new(&main_tf(s3, moto, &resources))?;
    run(&ws, &["apply", "-auto-approve", "-input=false", "-no-color"]);
    run(&ws, &["workspace", "new", "-no-color", "staging"]);
    Some(ws)
}

pub(super) fn run(ws: &Workspace, args: &[&str]) {
    let out = ws.terraform(args).output().unwrap();
    assert!(
        out.status.success(),
        "terraform {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn terraform_state_in_s3_is_listed_parsed_and_digested() {
    let (Some(s3), Some(moto)) = (SeaweedFs::start(), Moto::start()) else {
        return;
    };
    let Some(ws) = applied_with_staging(&s3, &moto) else {
        return;
    };
    run(&ws, &["apply", "-auto-approve", "-input=false", "-no-color"]);
    run(&ws, &["workspace", "new", "-no-color", "empty"]);

    // The directory's backend configuration, as init wrote it, says where each workspace lives.
    let config = std::fs::read(ws.path().join(".terraform/terraform.tfstate")).unwrap();
    let backend = iacwatch::source::s3::backend::parse(&config).unwrap().unwrap();
    assert_eq!((backend.bucket.as_str(), backend.key.as_str()), (BUCKET, KEY));
    assert_eq!(backend.settings.endpoint.as_deref(), Some(s3.endpoint.as_str()));
    assert_eq!(backend.settings.dynamodb_table.as_deref(), Some(TABLE));
    assert!(backend.settings.force_path_style);
    assert_eq!(backend.state_key("staging"), "env:/staging/apps/web/terraform.tfstate");
    assert!(
        !format!("{backend:?}").contains(SECRET_KEY),
        "the backend's secret_key is not read"
    );

    let client = s3.client("s3://tfstate", settings(&s3, &moto));
    let rt = runtime();
    let objects = rt.block_on(client.list()).unwrap();
    let ids = identify(
        client.root(),
        client.settings().workspace_prefix(),
        objects.iter().map(|o| o.key.as_str()),
        &GlobSet::empty(),
    );
    let found: Vec<(&str, &str, &str)> = ids
        .iter()
        .map(|id| (id.path.as_str(), id.workspace.as_str(), id.key.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (KEY, "default", KEY),
            (KEY, "empty", "env:/empty/apps/web/terraform.tfstate"),
            (KEY, "staging", "env:/staging/apps/web/terraform.tfstate"),
        ],
        "{objects:?}"
    );

    let table = rt.block_on(client.scan_lock_table()).unwrap().unwrap();
    assert!(table.locks.is_empty(), "no operation runs: {:?}", table.locks.keys());
    let mut shown = format!("{table:?} {objects:?}");
    for id in &ids {
        let object = objects.iter().find(|o| o.key == id.key).unwrap();
        let Fetched::Changed { body, .. } = rt.block_on(client.get(&id.key, None)).unwrap() else {
            panic!("{}: a first GET has a body", id.key);
        };
        let meta = iacwatch::artifact::state::parse(&body).unwrap();
        let expected = if id.workspace == "empty" { 0 } else { 1 };
        assert_eq!(meta.resources, Some(expected), "{}", id.key);
        shown.push_str(&format!("{meta:?}"));
        // Terraform's digest item holds the MD5 of what it wrote: the single-part ETag.
        let digest = table.digests.get(&lock_id(BUCKET, &id.key));
        assert_eq!(
            digest.cloned().flatten(),
            object.etag_digest(),
            "{} ({})",
            id.key,
            digest_id(BUCKET, &id.key)
        );
    }
    assert!(!shown.contains(CANARY), "a state value came out");
}

#[test]
fn a_running_apply_holds_its_lock_in_the_table() {
    let (Some(s3), Some(moto)) = (SeaweedFs::start(), Moto::start()) else {
        return;
    };
    let resources = r#"resource "null_resource" "slow" {
  provisioner "local-exec" {
    command = "sleep 120"
  }
}"#;
    let Some(ws) = Workspace::new(&main_tf(&s3, &moto, resources)) else {
        return;
    };
    let mut apply = ws.terraform(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    // Terraform runs as two processes (and the provisioner a third): kill them all at the end.
    apply.process_group(0).stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = apply.spawn().unwrap();
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let stop = scopeguard(move || {
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    });

    let client = s3.client("s3://tfstate", settings(&s3, &moto));
    let rt = runtime();
    let lock = eventually(Duration::from_secs(90), "the apply's lock item", || {
        let table = rt.block_on(client.scan_lock_table()).ok()??;
        table.locks.get(&lock_id(BUCKET, KEY)).cloned()
    });
    let lock = lock.unwrap();
    assert_eq!(lock.operation, LockOperation::Apply);
    assert_eq!(lock.version.as_deref(), Some("1.0.3"));
    assert!(lock.created.is_some());
    drop(stop);
    let _ = child.wait();

    // A killed Terraform leaves its lock item behind.
    let table = rt.block_on(client.scan_lock_table()).unwrap().unwrap();
    assert!(table.locks.contains_key(&lock_id(BUCKET, KEY)));
}

/// Runs `f` when dropped (also when the test panics), so no Terraform outlives its test.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
