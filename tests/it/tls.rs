//! `--web.config.file` the Prometheus exporter-toolkit way: TLS with and without client
//! certificates, basic auth with bcrypt hashes (401 with `WWW-Authenticate`), response headers,
//! certificates reloaded without a restart, `promtool check web-config` on the example files, and a
//! real Prometheus scraping over TLS with basic auth. Certificates are made at test time with the
//! openssl command line.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Daemon, eventually, free_port, iacwatch, repo, tool};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and a client certificate.
fn certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        dir,
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=iacwatch test CA",
                "-days",
                "2",
            ],
        ]
        .concat(),
    );
    issue(
        dir,
        "server",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    issue(dir, "client", "extendedKeyUsage=clientAuth\n");
}

fn issue(dir: &Path, name: &str, extensions: &str) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let (key, csr, crt, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("{name}.ext"),
    );
    fs::write(dir.join(&ext), extensions).unwrap();
    openssl(
        dir,
        &[
            &["req"],
            &ec[..],
            &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={name}")],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

/// `iacwatch serve` with a web configuration; the address from its log.
fn serve(root: &Path, web_config: &Path) -> Daemon {
    Daemon::builder()
        .arg("--web.config.file")
        .arg(web_config)
        .root(root)
        .without_ready_check()
        .start()
}

/// `curl` with `args`; the HTTP code and the response headers.
fn curl(args: &[&str]) -> (String, String) {
    let headers = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "10", "-w", "%{http_code}", "-D"])
        .arg(headers.path())
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        fs::read_to_string(headers.path()).unwrap_or_default().to_lowercase(),
    )
}

fn tree() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let scenario = crate::support::load_scenario_at("active", Some(chrono::Utc::now()));
    crate::support::copy_tree(scenario.root(), &root.path().join("active"));
    root
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("web.yml");
    fs::write(&path, body).unwrap();
    path
}

#[test]
fn tls_with_and_without_client_certificates_and_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    let hash = bcrypt::hash("right-password", 4).unwrap();
    let config = write_config(
        d,
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS12\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\nbasic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    );
    let root = tree();
    let served = serve(root.path(), &config);
    let url = format!("https://{}/metrics", served.address);
    let ca = d.join("ca.crt").display().to_string();
    let (cert, key) = (
        d.join("client.crt").display().to_string(),
        d.join("client.key").display().to_string(),
    );
    let with_client = ["--cacert", &ca, "--cert", &cert, "--key", &key];

    // Right password and client certificate: 200, with the configured headers.
    let (code, headers) = eventually(Duration::from_secs(20), "a TLS answer", || {
        let answer = curl(&[&with_client[..], &["-u", "prometheus:right-password", &url]].concat());
        (answer.0 == "200").then_some(answer)
    });
    assert_eq!(code, "200");
    assert!(headers.contains("x-frame-options: deny"), "{headers}");
    assert!(headers.contains("x-content-type-options: nosniff"), "{headers}");
    // Wrong password, unknown user, no credentials: 401 with a challenge.
    for user in ["prometheus:wrong", "someone:right-password"] {
        let (code, headers) = curl(&[&with_client[..], &["-u", user, &url]].concat());
        assert_eq!(code, "401", "{user}");
        assert!(headers.contains("www-authenticate: basic"), "{headers}");
    }
    let (code, _) = curl(&[&with_client[..], &[url.as_str()]].concat());
    assert_eq!(code, "401");
    // No client certificate: the handshake fails, no HTTP answer at all.
    let (code, _) = curl(&["--cacert", &ca, "-u", "prometheus:right-password", &url]);
    assert_eq!(code, "000", "a request without a client certificate was answered");
    // Plain HTTP on the TLS port gets nothing either.
    let (code, _) = curl(&[&format!("http://{}/metrics", served.address)]);
    assert_ne!(code, "200");
}

#[test]
fn certificates_reload_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    let config = write_config(
        d,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    let root = tree();
    let served = serve(root.path(), &config);
    let subject = || {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl s_client -connect {} </dev/null 2>/dev/null | openssl x509 -noout -subject",
                served.address
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    eventually(Duration::from_secs(20), "the first certificate", || {
        subject().contains("CN = server").then_some(())
    });
    // A new certificate and key under the same names, as a renewal would write them.
    issue(d, "renewed", "subjectAltName=IP:127.0.0.1\n");
    fs::rename(d.join("renewed.key"), d.join("server.key")).unwrap();
    fs::rename(d.join("renewed.crt"), d.join("server.crt")).unwrap();
    eventually(Duration::from_secs(20), "the renewed certificate to be served", || {
        subject().contains("CN = renewed").then_some(())
    });
    let ca = d.join("ca.crt").display().to_string();
    let (code, _) = curl(&["--cacert", &ca, &format!("https://{}/healthz", served.address)]);
    assert_eq!(code, "200");
}

#[test]
fn a_bad_web_config_stops_the_daemon_with_a_message_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "tls_server_config:\n  cert_file: server.crt\n");
    let out = iacwatch()
        .args(["serve", "--listen", "127.0.0.1:0", "--web.config.file"])
        .arg(&config)
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("key_file"), "{stderr}");
}

#[test]
fn the_example_web_configs_pass_promtool() {
    let Some(promtool) = tool("prometheus/bin/promtool") else {
        return;
    };
    let examples = repo().join("deploy/web-config");
    // promtool loads the files the examples name: put test certificates beside copies of them.
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    fs::copy(dir.path().join("server.crt"), dir.path().join("iacwatch.crt")).unwrap();
    fs::copy(dir.path().join("server.key"), dir.path().join("iacwatch.key")).unwrap();
    fs::copy(dir.path().join("ca.crt"), dir.path().join("clients-ca.crt")).unwrap();
    let mut checked = 0;
    for entry in fs::read_dir(&examples).unwrap().flatten() {
        let path = dir.path().join(entry.file_name());
        fs::copy(entry.path(), &path).unwrap();
        if path.extension().is_some_and(|e| e == "yml") {
            let out = Command::new(&promtool)
                .args(["check", "web-config"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}{}",
                path.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // And iacwatch reads it too.
            iacwatch::http::web::WebConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            checked += 1;
        }
    }
    assert!(checked >= 2, "no example web configs under {}", examples.display());
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth() {
    let Some(prometheus) = tool("prometheus/bin/prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    let hash = bcrypt::hash("scrape-password", 4).unwrap();
    let config = write_config(
        d,
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\nbasic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    );
    let root = tree();
    let served = serve(root.path(), &config);
    let port = free_port();
    fs::write(
        d.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: iacwatch\n    scheme: https\n    tls_config:\n      ca_file: {d}/ca.crt\n      cert_file: {d}/client.crt\n      key_file: {d}/client.key\n    basic_auth:\n      username: prometheus\n      password: scrape-password\n    static_configs:\n      - targets: ['{address}']\n",
            d = d.display(),
            address = served.address
        ),
    )
    .unwrap();
    let mut prom = Command::new(prometheus)
        .arg(format!("--config.file={}/prometheus.yml", d.display()))
        .arg(format!("--storage.tsdb.path={}/data", d.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let query = format!(
        "/api/v1/query?query={}",
        crate::support::url_encode("sum(iacwatch_workspaces)")
    );
    let result = std::panic::catch_unwind(|| {
        eventually(
            Duration::from_secs(30),
            "Prometheus to scrape iacwatch over TLS",
            || {
                let (code, body) = crate::support::http_get(&format!("127.0.0.1:{port}"), &query).ok()?;
                let v: serde_json::Value = serde_json::from_str(&body).ok()?;
                (code == 200 && v["data"]["result"][0]["value"][1] == "1").then_some(())
            },
        )
    });
    let targets = crate::support::http_get(&format!("127.0.0.1:{port}"), "/api/v1/targets").map(|r| r.1);
    let _ = prom.kill();
    let _ = prom.wait();
    if result.is_err() {
        panic!("Prometheus did not scrape iacwatch: {targets:?}");
    }
}
