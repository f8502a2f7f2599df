//! `/metrics` as scrapers ask for it: OpenMetrics 1.0 (golden file, promtool), gzip (decoding to
//! the plain body), and the `process_*` metrics of the daemon's own process.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::support::{Daemon, FLEET, check_golden, converge, load_scenario_at, promtool_check_metrics, repo, tool};

/// What Prometheus 2 sends.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A GET with extra headers: the response head (lowercase) and the raw body.
fn get_with(address: &str, path: &str, headers: &[(&str, &str)]) -> (String, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("transfer-encoding: chunked"), "{head}");
    (head, raw[split + 4..].to_vec())
}

fn fleet() -> tempfile::TempDir {
    // Times fixed in the past, so that every value in the golden file is the same on every run.
    let now = "2026-01-01T00:00:00Z".parse().unwrap();
    let root = tempfile::tempdir().unwrap();
    for name in FLEET.iter().copied().chain(["failed-dead-lock"]) {
        let scenario = load_scenario_at(name, Some(now));
        // A rename keeps the restored modification times (a copy would not).
        fs::rename(scenario.root(), root.path().join(name))
            .unwrap_or_else(|_| crate::support::copy_tree(scenario.root(), &root.path().join(name)));
    }
    root
}

/// The per-workspace families and the end, with the root named ROOT.
fn stable(body: &str, root: &Path) -> String {
    let root = root.to_string_lossy();
    let out: String = body
        .lines()
        .filter(|l| {
            let name = l
                .trim_start_matches("# HELP ")
                .trim_start_matches("# TYPE ")
                .trim_start_matches("# UNIT ");
            name.starts_with("iacwatch_workspace") || *l == "# EOF"
        })
        .map(|l| format!("{}\n", l.replace(root.as_ref(), "ROOT")))
        .collect();
    out
}

/// The body without what moves between two scrapes (process metrics, scrape-time counters).
fn steady(body: &str) -> Vec<&str> {
    body.lines().filter(|l| !l.contains("process_")).collect()
}

#[test]
fn openmetrics_matches_its_golden_file_and_passes_promtool() {
    let root = fleet();
    let daemon = Daemon::start(&[root.path()], &[]);
    let (head, body) = get_with(&daemon.address, "/metrics", &[("Accept", PROMETHEUS_ACCEPT)]);
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{head}"
    );
    let body = String::from_utf8(body).unwrap();
    assert!(body.ends_with("\n# EOF\n"), "{body}");
    assert!(body.contains("# TYPE iacwatch_scans counter\n"), "{body}");
    assert!(body.contains("\niacwatch_scans_total{kind=\"full\"} 1\n"), "{body}");
    assert!(body.contains("# UNIT process_cpu_seconds seconds\n"), "{body}");
    check_golden(
        &repo().join("tests/golden/metrics.openmetrics.txt"),
        &stable(&body, root.path()),
    )
    .unwrap();
    let Some(promtool) = tool("prometheus/bin/promtool") else {
        return;
    };
    // promtool's `check metrics` reads the text format only (OpenMetrics counters have no
    // `_total` in their TYPE line, which it takes for a family without help). Prometheus's own
    // OpenMetrics parser reads the body instead, through the backfill command, which wants a
    // timestamp on every sample.
    let dir = tempfile::tempdir().unwrap();
    let stamped: String = body
        .lines()
        .map(|l| {
            if l.starts_with('#') {
                format!("{l}\n")
            } else {
                format!("{l} 1767225600\n")
            }
        })
        .collect();
    fs::write(dir.path().join("metrics.om"), stamped).unwrap();
    let out = std::process::Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
        .arg(dir.path().join("metrics.om"))
        .arg(dir.path().join("blocks"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool's OpenMetrics parser: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The text format of the same daemon passes promtool's linter.
    let (passed, printed) = promtool_check_metrics(&promtool, &daemon.get("/metrics"));
    assert!(passed && printed.is_empty(), "promtool check metrics: {printed}");
}

#[test]
fn gzip_decodes_to_the_plain_body_in_both_formats() {
    let root = fleet();
    let daemon = Daemon::start(&[root.path()], &[]);
    for accept in ["*/*", PROMETHEUS_ACCEPT] {
        let (_, plain) = get_with(&daemon.address, "/metrics", &[("Accept", accept)]);
        let (head, compressed) = get_with(
            &daemon.address,
            "/metrics",
            &[("Accept", accept), ("Accept-Encoding", "gzip")],
        );
        assert!(head.contains("content-encoding: gzip"), "{head}");
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(compressed.as_slice())
            .read_to_string(&mut decoded)
            .unwrap();
        let plain = String::from_utf8(plain).unwrap();
        assert_eq!(steady(&decoded), steady(&plain));
        assert!(
            compressed.len() * 5 < plain.len(),
            "{} bytes compressed from {}",
            compressed.len(),
            plain.len()
        );
    }
}

/// A sample's value from a text body.
fn value(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing from:\n{body}"))
        .parse()
        .unwrap()
}

#[test]
fn process_metrics_describe_the_daemon() {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let root = fleet();
    let daemon = Daemon::start(&[root.path()], &[]);
    let body = daemon.get("/metrics");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // Whole seconds of boot time and 10 ms ticks: within a second or two of the truth.
    let start = value(&body, "process_start_time_seconds");
    assert!(
        start > started - 2.0 && start < now + 2.0,
        "started at {start}, test ran {started}..{now}"
    );
    // The watcher, the runtime's workers and the main thread at least.
    assert!(value(&body, "process_threads") >= 3.0, "{body}");
    let rss = value(&body, "process_resident_memory_bytes");
    let vsz = value(&body, "process_virtual_memory_bytes");
    assert!(rss > 1e6 && rss < vsz, "rss {rss}, virtual {vsz}");
    let (open, max) = (value(&body, "process_open_fds"), value(&body, "process_max_fds"));
    assert!(open >= 3.0 && open < max, "open {open}, max {max}");
    assert!(value(&body, "process_virtual_memory_max_bytes") >= vsz);
    assert!(value(&body, "process_cpu_seconds_total") >= 0.0);
    // The same limit as this process inherited and handed down.
    let limits = fs::read_to_string("/proc/self/limits").unwrap();
    let soft: f64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(max, soft);
    let build = format!(
        "iacwatch_build_info{{version=\"{}\",revision=\"",
        env!("CARGO_PKG_VERSION")
    );
    assert!(body.contains(&build), "{body}");
}

#[test]
fn root_up_follows_whether_each_root_can_be_read() {
    let present = fleet();
    let parent = tempfile::tempdir().unwrap();
    let vanishing = parent.path().join("later");
    fs::create_dir(&vanishing).unwrap();
    let daemon = Daemon::start(&[present.path(), &vanishing], &[]);
    let up = |root: &Path| {
        let body = daemon.get("/metrics");
        let series = format!("iacwatch_root_up{{root=\"{}\"}}", root.display());
        body.lines()
            .find_map(|l| l.strip_prefix(series.as_str())?.strip_prefix(' ').map(str::to_owned))
            .ok_or_else(|| format!("{series} missing"))
    };
    let wait = std::time::Duration::from_secs(10);
    converge(wait, "both roots up", || match (up(present.path())?, up(&vanishing)?) {
        (a, b) if a == "1" && b == "1" => Ok(()),
        other => Err(format!("{other:?}")),
    });
    fs::remove_dir(&vanishing).unwrap();
    converge(wait, "the removed root down", || match up(&vanishing)?.as_str() {
        "0" => Ok(()),
        other => Err(other.to_owned()),
    });
    assert_eq!(up(present.path()).unwrap(), "1", "the other root stays up");
    fs::create_dir(&vanishing).unwrap();
    converge(wait, "the recreated root up again", || match up(&vanishing)?.as_str() {
        "1" => Ok(()),
        other => Err(other.to_owned()),
    });
}
