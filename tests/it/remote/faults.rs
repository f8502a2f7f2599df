//! Answers a real server gives only when it is in trouble (503 SlowDown, 500, a garbled listing),
//! from a loopback listener that sends exactly those; and a real SeaweedFS stopped mid-poll and
//! started again on the same data.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use globset::GlobSet;
use iacwatch::source::s3::{ErrorKind, Fetched, Poller, RemoteSettings, S3Client, S3Root};

use super::servers::{SECRET_KEY, SeaweedFs, runtime, test_keys};
use crate::support::eventually;

/// Serves `status` with `body` to every request, on a loopback port, until the test ends.
fn answering(status: &'static str, content_type: &'static str, body: &'static str) -> String {
    answering_by(move |_| (status, content_type, body.to_owned()))
}

/// Serves what `answer` gives for each request line, on a loopback port, until the test ends.
fn answering_by(answer: impl Fn(&str) -> (&'static str, &'static str, String) + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let (status, content_type, body) = answer(&request);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{address}")
}

fn client(endpoint: String) -> S3Client {
    let settings = RemoteSettings {
        endpoint: Some(endpoint),
        force_path_style: true,
        ..RemoteSettings::default()
    };
    S3Client::new(
        &S3Root::parse("s3://tfstate").unwrap(),
        &settings,
        &test_keys(SECRET_KEY),
    )
    .unwrap()
}

#[test]
fn slow_down_server_errors_and_garbage_have_their_kinds() {
    let cases = [
        (
            "503 Slow Down",
            "application/xml",
            "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
            ErrorKind::Throttled,
            Some("SlowDown"),
        ),
        (
            "500 Internal Server Error",
            "application/xml",
            "<Error><Code>InternalError</Code></Error>",
            ErrorKind::ServerError,
            Some("InternalError"),
        ),
        (
            "200 OK",
            "application/xml",
            "<ListBucketResult><Contents>",
            ErrorKind::BadResponse,
            None,
        ),
        (
            "200 OK",
            "text/html",
            "<html>a captive portal</html>",
            ErrorKind::BadResponse,
            None,
        ),
    ];
    let rt = runtime();
    for (status, content_type, body, kind, code) in cases {
        let client = client(answering(status, content_type, body));
        let err = rt.block_on(client.list()).unwrap_err();
        assert_eq!((err.kind, err.code.as_deref()), (kind, code), "{status}: {err}");
        if kind == ErrorKind::Throttled || kind == ErrorKind::ServerError {
            assert_eq!(client.counts().requests(), 3, "{status}: retried twice");
        }
        assert!(
            !err.to_string().contains("reduce your request rate"),
            "no body text: {err}"
        );
    }
}

/// A listing of `a.tfstate` and `b.tfstate`, as S3 sends it.
fn listing() -> String {
    let item = |key: &str| {
        format!(
            "<Contents><Key>{key}</Key><LastModified>2026-11-29T10:00:00.000Z</LastModified><ETag>&quot;0123456789abcdef0123456789abcdef&quot;</ETag><Size>2</Size></Contents>"
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>tfstate</Name><Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>{}{}</ListBucketResult>",
        item("a.tfstate"),
        item("b.tfstate")
    )
}

#[test]
fn a_poll_tells_a_root_down_from_an_object_gone() {
    let rt = runtime();
    // GETs throttled after a good listing: the root is down, the last statuses stay.
    let throttled = answering_by(|request| {
        if request.contains("list-type=2") {
            ("200 OK", "application/xml", listing())
        } else {
            (
                "503 Slow Down",
                "application/xml",
                "<Error><Code>SlowDown</Code></Error>".to_owned(),
            )
        }
    });
    let mut poller = Poller::new(client(throttled), GlobSet::empty());
    let err = rt.block_on(poller.poll()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Throttled, "{err}");

    // One object deleted between the listing and its GET: only that one is left out.
    let one_gone = answering_by(|request| {
        if request.contains("list-type=2") {
            ("200 OK", "application/xml", listing())
        } else if request.contains("/a.tfstate") {
            (
                "404 Not Found",
                "application/xml",
                "<Error><Code>NoSuchKey</Code></Error>".to_owned(),
            )
        } else {
            (
                "200 OK",
                "application/json",
                "{\"version\":4,\"serial\":2,\"resources\":[]}".to_owned(),
            )
        }
    });
    let mut poller = Poller::new(client(one_gone), GlobSet::empty());
    let result = rt.block_on(poller.poll()).unwrap();
    let paths: Vec<&str> = result.workspaces.iter().map(|w| w.identity.path.as_str()).collect();
    assert_eq!(paths, ["b.tfstate"]);
    assert_eq!(result.problems.len(), 1);
    assert_eq!(result.problems[0].kind, ErrorKind::NotFound);
    assert!(result.problems[0].to_string().contains("s3://tfstate/a.tfstate"));
}

#[test]
fn a_server_stopped_mid_poll_is_unreachable_then_read_again() {
    let Some(mut s3) = SeaweedFs::start() else { return };
    s3.put("app.tfstate", b"{\"version\":4,\"serial\":1,\"resources\":[]}");
    let client = s3.client("s3://tfstate", s3.settings());
    let rt = runtime();
    let objects = rt.block_on(client.list()).unwrap();
    let etag = objects[0].etag.clone();

    s3.stop();
    let err = rt.block_on(client.list()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unreachable, "{err}");
    assert!(err.kind.root_down());

    s3.start_again();
    // The same client (and its connection pool) reads again once the server is back.
    let again = eventually(Duration::from_secs(60), "the restarted server to list", || {
        rt.block_on(client.list()).ok()
    });
    assert_eq!(again, objects);
    let fetched = rt.block_on(client.get("app.tfstate", etag.as_deref())).unwrap();
    assert_eq!(fetched, Fetched::Unchanged);
}
