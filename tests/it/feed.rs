//! The live feed (`GET /api/v1/events`) of the real daemon, with real files changing: a client
//! receives each transition after it is recorded, a client that reconnects with `Last-Event-ID`
//! gets what it missed from the database, and a hundred clients, half of them never reading, do
//! not slow the watcher or grow the daemon's memory without bound; an idle feed gets its keep-alive
//! comment; SIGTERM ends the feed; `kill -9` in a burst loses nothing the feed sent or the history
//! endpoint answered; a commit held back holds back the feed, never the API's listing.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::{Daemon, Fleet, wait_status};

/// One event of the stream.
#[derive(Debug, Clone)]
pub struct Received {
    pub kind: String,
    pub id: Option<u64>,
    pub data: serde_json::Value,
    pub at: Instant,
}

/// A feed client reading the raw stream (HTTP/1.0, so the body is not chunked).
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(address: &str, last_event_id: Option<u64>) -> Client {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        write!(stream, "GET /api/v1/events HTTP/1.0\r\nHost: x\r\n{resume}\r\n").unwrap();
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "{status}");
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header.trim().is_empty() {
                break;
            }
            if header.to_lowercase().starts_with("content-type:") {
                assert!(header.contains("text/event-stream"), "{header}");
            }
        }
        Client { reader }
    }

    /// The next event (comments skipped); panics after the read timeout.
    pub fn next(&mut self) -> Received {
        let (mut kind, mut id, mut data) = (String::new(), None, String::new());
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(n > 0, "the feed ended");
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if data.is_empty() {
                    continue;
                }
                return Received {
                    kind,
                    id,
                    data: serde_json::from_str(&data).unwrap(),
                    at: Instant::now(),
                };
            }
            if let Some(v) = line.strip_prefix("event:") {
                kind = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim().parse().unwrap());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    }

    /// Every event that arrives within `wait`.
    pub fn events_within(&mut self, wait: Duration) -> Vec<Received> {
        let deadline = Instant::now() + wait;
        let stream = self.reader.get_ref().try_clone().unwrap();
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            stream.set_read_timeout(Some(left)).unwrap();
            // Only a peek: an event that begins to arrive is then read whole by `next`.
            let arrived = match self.reader.fill_buf() {
                Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
                Ok(_) => true,
            };
            stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            if !arrived {
                break;
            }
            events.push(self.next());
        }
        events
    }

    /// The next `transition` event.
    pub fn transition(&mut self) -> Received {
        loop {
            let event = self.next();
            if event.kind == "transition" {
                return event;
            }
            assert_eq!(event.kind, "summary", "{event:?}");
        }
    }
}

/// Takes the state away (inactive) or puts it back (active).
struct Flipper {
    state: PathBuf,
    saved: Vec<u8>,
}

impl Flipper {
    fn new(fleet: &Fleet) -> Flipper {
        let state = fleet.path().join("active/ws/terraform.tfstate");
        let saved = fs::read(&state).unwrap();
        Flipper { state, saved }
    }

    /// Makes the workspace `to` ("inactive" or "active").
    fn flip(&self, to: &str) {
        match to {
            "inactive" => fs::remove_file(&self.state).unwrap(),
            _ => fs::write(&self.state, &self.saved).unwrap(),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn a_client_receives_each_transition_and_resumes_with_last_event_id() {
    let fleet = Fleet::new(&["active"]);
    let daemon = Daemon::start(&[fleet.path()], &[]);
    let flipper = Flipper::new(&fleet);
    let mut client = Client::connect(&daemon.address, None);
    let mut latencies = Vec::new();
    let mut last = 0;
    for round in 0..20 {
        let to = if round % 2 == 0 { "inactive" } else { "active" };
        let changed = Instant::now();
        flipper.flip(to);
        let event = client.transition();
        latencies.push(event.at - changed);
        assert_eq!(event.data["path"], "active/ws", "{event:?}");
        assert_eq!(event.data["to"], to, "{event:?}");
        let id = event.id.expect("a transition has an id");
        assert!(id > last, "{id} after {last}");
        last = id;
        // What the feed sent is in the history.
        let listed = daemon.get_json("/api/v1/transitions?limit=1");
        assert_eq!(listed["transitions"][0], event.data);
    }
    latencies.sort();
    eprintln!(
        "feed latency, change on disk to event received: p50 {:?}, p99 {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    assert!(percentile(&latencies, 0.99) < Duration::from_secs(5), "{latencies:?}");

    // Gone for two changes, back with the last id it saw: both, in order, from the database.
    drop(client);
    flipper.flip("inactive");
    wait_status(&daemon, "active/ws", Some("inactive"), Duration::from_secs(5));
    flipper.flip("active");
    wait_status(&daemon, "active/ws", Some("active"), Duration::from_secs(5));
    let mut again = Client::connect(&daemon.address, Some(last));
    let (a, b) = (again.transition(), again.transition());
    assert_eq!((a.id, b.id), (Some(last + 1), Some(last + 2)));
    assert_eq!((&a.data["to"], &b.data["to"]), (&"inactive".into(), &"active".into()));
    // And then the live ones.
    flipper.flip("inactive");
    let live = again.transition();
    assert_eq!((live.id, &live.data["to"]), (Some(last + 3), &"inactive".into()));

    // SIGTERM ends the feed: the daemon does not wait its grace time for the open client.
    let mut daemon = daemon;
    let asked = Instant::now();
    assert!(daemon.terminate().success());
    assert!(asked.elapsed() < Duration::from_secs(3), "took {:?}", asked.elapsed());
}

#[test]
fn a_commit_held_back_holds_back_the_feed_but_not_the_api() {
    let fleet = Fleet::new(&["active"]);
    let daemon = Daemon::start(&[fleet.path()], &[]);
    let flipper = Flipper::new(&fleet);
    let mut client = Client::connect(&daemon.address, None);
    let before = daemon.get_json("/api/v1/transitions?limit=1")["transitions"][0].clone();
    // Another connection holds the database's write lock: the daemon's commit waits for it (up
    // to its busy timeout of 5 s), as it would wait for a slow fsync.
    let lock = rusqlite::Connection::open(daemon.data_dir.path().join("history.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let held = Instant::now();
    // Two changes: a writer that waited for the first one's commit would show the second only
    // once the lock is gone.
    flipper.flip("inactive");
    wait_status(&daemon, "active/ws", Some("inactive"), Duration::from_secs(3));
    flipper.flip("active");
    wait_status(&daemon, "active/ws", Some("active"), Duration::from_secs(3));
    let shown = held.elapsed();
    // Neither is committed, so neither is in the history or on the feed; the counts, which say
    // what the listing shows, are sent at once (the page refreshes on them).
    let early = client.events_within(Duration::from_millis(300));
    let sent: Vec<_> = early.iter().filter(|e| e.kind == "transition").collect();
    assert!(
        sent.is_empty(),
        "the feed sent a transition before its commit: {sent:?}"
    );
    let counts = &early.last().expect("no summary while the commit is held back").data["counts"];
    assert_eq!(
        (&counts["active"], &counts["inactive"]),
        (&1.into(), &0.into()),
        "{early:?}"
    );
    assert_eq!(daemon.get_json("/api/v1/transitions?limit=1")["transitions"][0], before);
    assert!(
        held.elapsed() < Duration::from_secs(4),
        "the lock was held too long: {:?}",
        held.elapsed()
    );
    lock.execute_batch("ROLLBACK").unwrap();
    // Once the commits can go through, the feed sends both in order, and the history has them.
    let (first, second) = (client.transition(), client.transition());
    assert_eq!(
        (&first.data["to"], &second.data["to"]),
        (&"inactive".into(), &"active".into())
    );
    assert_eq!(first.data["path"], "active/ws", "{first:?}");
    assert_eq!(
        daemon.get_json("/api/v1/transitions?limit=1")["transitions"][0],
        second.data
    );
    eprintln!("with the history's commit held back, both changes were visible in the API after {shown:?}");
}

fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_hundred_clients_some_never_reading_do_not_slow_the_watcher() {
    let fleet = Fleet::new(&["active"]);
    let daemon = Daemon::start(&[fleet.path()], &[]);
    let flipper = Flipper::new(&fleet);
    let before = rss_kib(daemon.pid());
    // Fifty that never read a byte, fifty that read everything.
    let idle: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(&daemon.address).unwrap();
            write!(s, "GET /api/v1/events HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            s
        })
        .collect();
    let readers: Vec<_> = (0..50)
        .map(|_| {
            let mut client = Client::connect(&daemon.address, None);
            std::thread::spawn(move || {
                let mut seen = 0;
                while seen < 40 {
                    client.transition();
                    seen += 1;
                }
                seen
            })
        })
        .collect();
    for round in 0..40 {
        let to = if round % 2 == 0 { "inactive" } else { "active" };
        flipper.flip(to);
        wait_status(&daemon, "active/ws", Some(to), Duration::from_secs(5));
    }
    for reader in readers {
        assert_eq!(reader.join().unwrap(), 40);
    }
    let after = rss_kib(daemon.pid());
    eprintln!("daemon RSS with 100 feed clients: {before} KiB before, {after} KiB after");
    assert!(after < before + 64 * 1024, "{before} KiB -> {after} KiB");
    drop(idle);
}

/// One transition as the API and the feed show it, by event id.
type Seen = std::collections::BTreeMap<u64, serde_json::Value>;

#[test]
fn kill_9_during_a_burst_keeps_every_transition_the_feed_sent() {
    // The feed sends a transition only once it is committed, and `/api/v1/transitions` reads the
    // database: neither may lose one. The workspace listing is not checked: it shows a batch as
    // soon as it is applied, so it may be ahead of the history by the batches not yet committed,
    // which a kill loses (the next start records the status it finds then).
    let fleet = Fleet::new(&["active"]);
    let flipper = std::sync::Arc::new(Flipper::new(&fleet));
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut answered = Seen::new();
    // The history endpoint does not show event ids: these are matched by content.
    let mut from_api: Vec<serde_json::Value> = Vec::new();
    for run in 0..3 {
        let daemon = Daemon::builder()
            .data_dir(&dir)
            .root(fleet.path())
            .args(["--quiet-time", "20ms"])
            .start();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let burst = {
            let (flipper, stop) = (flipper.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut round = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    flipper.flip(if round % 2 == 0 { "inactive" } else { "active" });
                    round += 1;
                    std::thread::sleep(Duration::from_millis(30));
                }
                // Leave it active for the next run.
                if round % 2 == 1 {
                    flipper.flip("active");
                }
            })
        };
        let mut client = Client::connect(&daemon.address, None);
        let deadline = Instant::now() + Duration::from_millis(1500 + 300 * run);
        let mut from_feed = 0;
        while Instant::now() < deadline {
            let event = client.transition();
            answered.insert(event.id.unwrap(), event.data);
            from_feed += 1;
            if from_feed % 3 == 0 {
                let listed = daemon.get_json("/api/v1/transitions?limit=5");
                from_api.extend(listed["transitions"].as_array().unwrap().iter().cloned());
            }
        }
        assert!(from_feed >= 5, "only {from_feed} transitions in the burst");
        drop(daemon); // SIGKILL, in the middle of the burst.
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        burst.join().unwrap();

        let history = iacwatch::history::History::open(dir.path(), Default::default(), chrono::Utc::now())
            .unwrap_or_else(|e| panic!("run {run}: the database does not open after kill -9: {e}"));
        let stored: Vec<_> = history.reads().after(0, iacwatch::history::MAX_LIMIT).unwrap();
        let same = |kept: &iacwatch::history::Stored, data: &serde_json::Value| {
            let t = &kept.transition;
            t.path == data["path"].as_str().unwrap_or_default()
                && t.from.map(|s| s.as_str()) == data["from"].as_str()
                && t.to.map(|s| s.as_str()) == data["to"].as_str()
                && iacwatch::report::rfc3339(t.at) == data["at"].as_str().unwrap_or_default()
        };
        for (id, data) in &answered {
            let kept = stored
                .iter()
                .find(|s| s.event_id == *id)
                .unwrap_or_else(|| panic!("run {run}: event {id} was sent and is gone"));
            assert!(
                same(kept, data),
                "run {run}: event {id} is {kept:?}, was sent as {data}"
            );
        }
        for data in &from_api {
            assert!(
                stored.iter().any(|kept| same(kept, data)),
                "run {run}: {data} was answered and is gone"
            );
        }
    }
}

#[test]
fn an_idle_feed_gets_a_keep_alive_comment_every_15_seconds() {
    let fleet = Fleet::new(&["active"]);
    let daemon = Daemon::start(&[fleet.path()], &[]);
    let mut client = Client::connect(&daemon.address, None);
    let opened = Instant::now();
    let comment = loop {
        let mut line = String::new();
        assert!(client.reader.read_line(&mut line).unwrap() > 0, "the feed ended");
        if line.starts_with(':') {
            break opened.elapsed();
        }
    };
    assert!(
        comment >= Duration::from_secs(14) && comment < Duration::from_secs(19),
        "the first keep-alive after {comment:?}"
    );
}
