//! The real servers of the remote-state tests (`tools/install-remote`): SeaweedFS as the S3 server
//! (checking SigV4 with the test keys) and moto_server as DynamoDB, each on free loopback ports
//! and stopped on drop; and the writes the tests make to them: objects with iacwatch's own S3
//! client, the bucket and the lock table with `aws.py` (boto3).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use iacwatch::source::s3::{AwsEnvironment, RemoteSettings, S3Client, S3Root};
use tempfile::TempDir;

use crate::support::{Daemon, converge, eventually, free_port, free_ports, http_request, repo, tool};

pub const ACCESS_KEY: &str = "iacwatch-test-key";
/// The servers' secret: it must never appear in anything iacwatch says.
pub const SECRET_KEY: &str = "SECRET-9d41c7-iacwatch-test";
pub const BUCKET: &str = "tfstate";
pub const TABLE: &str = "locks";
/// How many of the tests' own PUTs run at once.
const WRITES_AT_ONCE: usize = 16;

/// `weed mini`'s listeners, each moved off its default so that tests run side by side.
const WEED_PORTS: [&str; 11] = [
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "webdav.port",
    "admin.port",
    "admin.port.grpc",
];

/// The Unix sockets `weed mini` makes in /tmp, named `seaweedfs-KIND-PORT.sock`.
const WEED_SOCKETS: [&str; 7] = [
    "filer",
    "s3",
    "master-grpc",
    "volume-grpc",
    "filer-grpc",
    "s3-grpc",
    "admin-grpc",
];

/// A running SeaweedFS (`weed mini`) with one bucket, `BUCKET`.
pub struct SeaweedFs {
    child: Option<Child>,
    weed: PathBuf,
    pub endpoint: String,
    ports: Vec<u16>,
    /// The data and `weed.log`, removed with the server.
    dir: TempDir,
}

impl SeaweedFs {
    /// `None` when SeaweedFS is not installed (outside CI).
    pub fn start() -> Option<SeaweedFs> {
        let weed = tool("remote/bin/weed")?;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let ports = free_ports(WEED_PORTS.len());
        let s3_port = ports[WEED_PORTS.iter().position(|p| *p == "s3.port").unwrap()];
        let mut server = SeaweedFs {
            child: None,
            weed,
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            ports,
            dir,
        };
        server.start_again();
        // `weed mini` can answer S3 and still be bringing its filer up on a busy machine, and
        // refuse the next connection: the bucket is asked for again until it is made.
        converge(Duration::from_secs(60), "the bucket to be made", || {
            try_aws(Some(&server.endpoint), None, &["create-bucket", BUCKET])
        });
        Some(server)
    }

    /// Starts the server (again, after `stop`) on the same ports and data, and waits until S3
    /// answers.
    pub fn start_again(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("weed.log"))
            .unwrap();
        let mut command = Command::new(&self.weed);
        command
            .arg("mini")
            .arg(format!("-dir={}", self.dir.path().join("data").display()))
            .args([
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                "-admin.ui=false",
            ])
            // The Iceberg and Lance endpoints are off (0), so no listener stays on a default port.
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .args(
                WEED_PORTS
                    .iter()
                    .zip(&self.ports)
                    .map(|(flag, port)| format!("-{flag}={port}")),
            )
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(command.spawn().unwrap());
        let address = self.endpoint.trim_start_matches("http://").to_owned();
        // Unsigned requests are refused (403) once S3 answers at all.
        eventually(Duration::from_secs(60), "SeaweedFS's S3 API to answer", || {
            http_request(&address, "GET", "/").ok().map(|_| ())
        });
    }

    /// Kills the server; its data stays for `start_again`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // weed names its Unix sockets by port, in /tmp; they outlive a killed server.
        for port in &self.ports {
            for kind in WEED_SOCKETS {
                let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{kind}-{port}.sock"));
            }
        }
    }

    /// Writes `body` at `key` of the bucket.
    pub fn put(&self, key: &str, body: &[u8]) {
        self.put_all([(key, body)]);
    }

    /// Writes each `(key, body)` into the bucket (distinct keys), up to `WRITES_AT_ONCE` at a
    /// time, as signed PUTs of iacwatch's own S3 client: one call for a whole fixture, with no
    /// process started per object. Panics on the first write that fails.
    pub fn put_all<K: AsRef<str>, B: AsRef<[u8]>>(&self, objects: impl IntoIterator<Item = (K, B)>) {
        let objects: Vec<(String, Bytes)> = objects
            .into_iter()
            .map(|(key, body)| (key.as_ref().to_owned(), Bytes::copy_from_slice(body.as_ref())))
            .collect();
        let client = self.writer();
        let puts = stream::iter(&objects)
            .map(|(key, body)| {
                let client = &client;
                async move { (key, client.put(key, body.clone()).await) }
            })
            .buffer_unordered(WRITES_AT_ONCE)
            .collect::<Vec<_>>();
        for (key, result) in runtime().block_on(puts) {
            if let Err(e) = result {
                panic!("PUT {key}: {e}");
            }
        }
    }

    /// Writes `count` small states, `PREFIX/N/terraform.tfstate` for N = 0..count.
    pub fn put_many(&self, prefix: &str, count: usize) {
        let body = br#"{"version": 4, "serial": 1, "lineage": "many", "terraform_version": "1.0.3", "resources": []}"#;
        self.put_all((0..count).map(|n| (format!("{prefix}/{n}/terraform.tfstate"), body)));
    }

    /// Removes `key` from the bucket.
    pub fn delete(&self, key: &str) {
        let client = self.writer();
        if let Err(e) = runtime().block_on(client.delete(key)) {
            panic!("DELETE {key}: {e}");
        }
    }

    /// A client of the bucket for the tests' own writes, made per call so that no pooled
    /// connection outlives a `stop` or the runtime it ran on.
    fn writer(&self) -> S3Client {
        self.client(&format!("s3://{BUCKET}"), self.settings())
    }

    /// The settings of a root on this server.
    pub fn settings(&self) -> RemoteSettings {
        RemoteSettings {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            force_path_style: true,
            ..RemoteSettings::default()
        }
    }

    /// A client of `url` on this server with the right keys.
    pub fn client(&self, url: &str, settings: RemoteSettings) -> S3Client {
        S3Client::new(&S3Root::parse(url).unwrap(), &settings, &test_keys(SECRET_KEY)).unwrap()
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running moto_server (DynamoDB) with the lock table `TABLE`.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    address: String,
}

impl Moto {
    /// `None` when moto is not installed (outside CI).
    pub fn start() -> Option<Moto> {
        let moto = tool("remote/bin/moto_server")?;
        let port = free_port();
        let child = Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let address = format!("127.0.0.1:{port}");
        let server = Moto {
            child,
            endpoint: format!("http://{address}"),
            address,
        };
        server.reset();
        aws(None, Some(&server.endpoint), &["create-table", TABLE]);
        Some(server)
    }

    /// `POST /moto-api/reset`: every table gone.
    pub fn reset(&self) {
        eventually(Duration::from_secs(30), "moto_server to reset", || {
            http_request(&self.address, "POST", "/moto-api/reset")
                .ok()
                .filter(|(code, _)| *code == 200)
        });
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The AWS environment of a client with the test key id and `secret`.
pub fn test_keys(secret: &str) -> AwsEnvironment {
    AwsEnvironment::from_pairs([
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_REGION", "us-east-1"),
    ])
}

/// A runtime for the async client, in a sync test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn python() -> PathBuf {
    repo().join(".tools/remote/venv/bin/python")
}

fn script() -> PathBuf {
    repo().join("tests/it/remote/aws.py")
}

/// Runs `aws.py ARGS` with the test keys; panics with its output if it fails.
pub fn aws(s3: Option<&str>, dynamodb: Option<&str>, args: &[&str]) {
    if let Err(failed) = try_aws(s3, dynamodb, args) {
        panic!("{failed}");
    }
}

/// Runs `aws.py ARGS` with the test keys; its output when it fails.
pub fn try_aws(s3: Option<&str>, dynamodb: Option<&str>, args: &[&str]) -> Result<(), String> {
    let mut command = Command::new(python());
    command
        .arg(script())
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("S3_ENDPOINT", s3.unwrap_or("http://127.0.0.1:1"))
        .env("DYNAMODB_ENDPOINT", dynamodb.unwrap_or("http://127.0.0.1:1"))
        .stdin(Stdio::null());
    let out = command.output().unwrap();
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "aws.py {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Writes `items` (DynamoDB wire format) into the lock table.
pub fn put_items(moto: &Moto, items: &serde_json::Value) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), items.to_string()).unwrap();
    aws(None, Some(&moto.endpoint), &["put-items", TABLE, path_str(file.path())]);
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `serve` of `roots` (a directory and `s3://tfstate`) on this server with the test keys,
/// polling every second.
pub fn serve_polling(s3: &SeaweedFs, roots: &[&str]) -> Daemon {
    Daemon::builder()
        .args([
            "--remote-poll-interval",
            "1s",
            "--s3-endpoint",
            &s3.endpoint,
            "--s3-force-path-style",
        ])
        .args(roots)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .start()
}
