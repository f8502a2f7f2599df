//! The overview page at `/`: server-rendered without JavaScript (counts, filters, escaping, an
//! unknown status), and in a real headless Chromium driven through chromedriver (cards, filter in
//! the address, live updates from disk without a reload, search, updates through the feed and a
//! workspace's timeline, polling when the feed is off). The browser test saves
//! `target/page-screenshot.png` (the README's picture is made from the demo tree by
//! `tools/screenshot`).

mod webdriver;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::support::{Daemon, ScenarioTree, eventually, http_get, load_scenario, repo, set_mtime, tool};
use webdriver::Browser;

/// Workspaces of the fleet: (directory under the root, scenario, minutes its story is moved back).
const FLEET: &[(&str, &str, i64)] = &[
    ("prod/network", "active", 26 * 60),
    ("prod/app", "drifted-and-pending", 95),
    ("prod/database", "failed-tainted", 12),
    ("prod/dns", "provisioning-pipeline", 0),
    ("shared/iam", "active", 3 * 24 * 60),
    ("staging/app", "apply-needed-plan", 42),
    ("staging/network", "failed-last-run", 7),
    ("sandbox/demo", "inactive-destroyed", 6 * 24 * 60),
];

/// What the fleet's cards say, in the spec's order.
const COUNTS: [(&str, u64); 7] = [
    ("destroying", 0),
    ("provisioning", 1),
    ("failed", 2),
    ("drifted", 1),
    ("apply_needed", 1),
    ("active", 2),
    ("inactive", 1),
];

/// Several fixture scenarios under one root, their times moved so that each scenario's "now" is a
/// little before the real now (the daemon classifies with the real clock).
struct Fleet {
    root: tempfile::TempDir,
}

impl Fleet {
    fn new() -> Fleet {
        let root = tempfile::tempdir().unwrap();
        for (dir, scenario, minutes_back) in FLEET {
            place(&load_scenario(scenario), &root.path().join(dir), *minutes_back);
        }
        Fleet { root }
    }

    fn path(&self) -> &Path {
        self.root.path()
    }
}

/// Moves a scenario's `ws` to `target`, shifting its recorded times (file times and the times
/// inside pipeline markers) so that the scenario's "now" becomes `minutes_back` minutes ago.
fn place(tree: &ScenarioTree, target: &Path, minutes_back: i64) {
    let shift = Utc::now() - chrono::Duration::minutes(minutes_back) - tree.scenario.now;
    let source = tree.root().join("ws");
    for marker in ["lock.json", "last-run.json"] {
        let path = source.join(".iacwatch/default").join(marker);
        if let Ok(text) = fs::read_to_string(&path) {
            let mut value: Value = serde_json::from_str(&text).unwrap();
            for field in ["started_at", "finished_at"] {
                if let Some(t) = value[field].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()) {
                    value[field] = json!((t.with_timezone(&Utc) + shift).to_rfc3339());
                }
            }
            fs::write(&path, value.to_string()).unwrap();
        }
    }
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::rename(&source, target).unwrap();
    let mtimes: BTreeMap<&str, DateTime<Utc>> = tree
        .scenario
        .mtimes
        .iter()
        .filter_map(|(rel, t)| Some((rel.strip_prefix("ws")?.trim_start_matches('/'), *t + shift)))
        .collect();
    // Files first, then directories (writing a file touches its directory).
    let (dirs, files): (Vec<_>, Vec<_>) = mtimes.iter().partition(|(rel, _)| target.join(rel).is_dir());
    for (rel, time) in files.into_iter().chain(dirs) {
        set_mtime(&target.join(rel), *time);
    }
}

/// The number on a card of the server-rendered page.
fn card_count(html: &str, status: &str) -> u64 {
    let at = html
        .find(&format!("id=\"card-{status}\""))
        .unwrap_or_else(|| panic!("no card for {status}"));
    let rest = &html[at..];
    let start = rest.find("<span class=\"count\">").unwrap() + "<span class=\"count\">".len();
    rest[start..start + rest[start..].find('<').unwrap()].parse().unwrap()
}

/// The `data-status` of every table row of the server-rendered page.
fn row_statuses(html: &str) -> Vec<String> {
    html.match_indices("<tr data-id=\"")
        .map(|(at, _)| {
            let rest = &html[at..];
            let start = rest.find("data-status=\"").unwrap() + "data-status=\"".len();
            rest[start..start + rest[start..].find('"').unwrap()].to_owned()
        })
        .collect()
}

#[test]
fn the_page_without_javascript_has_counts_filters_and_escapes_paths() {
    let fleet = Fleet::new();
    // A directory name is the attacker's text: `a<script>alert(1)<` holding `script>`.
    let evil = fleet.path().join("a<script>alert(1)<").join("script>");
    place(&load_scenario("active"), &evil, 5);
    let daemon = Daemon::start(&[fleet.path()], &[]);

    let html = daemon.get("/");
    for (status, n) in COUNTS {
        let expected = if status == "active" { n + 1 } else { n };
        assert_eq!(card_count(&html, status), expected, "card {status}");
    }
    assert_eq!(row_statuses(&html).len(), FLEET.len() + 1);
    // Most urgent first: the rows follow the spec's order of statuses.
    let order: Vec<String> = row_statuses(&html);
    assert_eq!(order.first().map(String::as_str), Some("provisioning"));
    assert_eq!(order.last().map(String::as_str), Some("inactive"));
    assert!(!html.contains("<script>alert"), "an unescaped path");
    assert!(
        html.contains("a&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the escaped path is missing"
    );
    assert!(html.contains("<details><summary>"), "reasons are expandable");
    assert!(!html.contains(crate::support::CANARY));

    // The filter in the address: cards keep their counts, the table keeps only those statuses.
    let html = daemon.get("/?status=failed,drifted");
    assert_eq!(card_count(&html, "active"), 3);
    let mut statuses = row_statuses(&html);
    statuses.dedup();
    assert_eq!(statuses, ["failed", "drifted"]);
    assert!(html.contains("aria-current=\"true\""));

    // The path search narrows the counts and the rows.
    let html = daemon.get("/?q=STAGING");
    assert_eq!(row_statuses(&html), ["failed", "apply_needed"]);
    assert_eq!(card_count(&html, "active"), 0);
    assert!(html.contains("value=\"STAGING\""));

    // Sorting by path, descending.
    let html = daemon.get("/?sort=-path");
    let first = html.find("staging/network").unwrap();
    assert!(first < html.find("prod/app").unwrap());

    // An unknown status: a 400 whose page says so and shows everything.
    let (code, html) = http_get(&daemon.address, "/?status=failed,bogus%3Cb%3E").unwrap();
    assert_eq!(code, 400);
    assert!(html.contains("unknown status"), "{html}");
    assert!(html.contains("bogus&lt;b&gt;") && !html.contains("bogus<b>"));
    assert_eq!(row_statuses(&html).len(), FLEET.len() + 1);

    // Nothing matches: the empty state says so.
    let html = daemon.get("/?status=destroying");
    assert!(html.contains("No workspace matches this filter"));
}

#[test]
fn the_page_says_when_no_workspace_is_found() {
    let empty = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&[empty.path()], &[]);
    let html = daemon.get("/");
    let under = format!("No workspaces found under <code>{}</code>", empty.path().display());
    assert!(html.contains(&under), "{html}");
    for (status, _) in COUNTS {
        assert_eq!(card_count(&html, status), 0);
    }
}

/// What the cards and the rows say in the browser, as the script left them.
fn page_state(browser: &Browser) -> Value {
    browser.eval(
        "var cards = {};
         document.querySelectorAll('#cards a[data-status]').forEach(function (a) {
           cards[a.dataset.status] = Number(a.querySelector('.count').textContent);
         });
         var rows = Array.prototype.map.call(document.querySelectorAll('#rows tr'), function (tr) {
           return {status: tr.dataset.status, path: tr.querySelector('.path').textContent};
         });
         return {cards: cards, rows: rows, noReload: window.__noReload === true,
                 refreshed: document.body.getAttribute('data-refreshed'),
                 connection: document.getElementById('conn').hidden};",
        json!([]),
    )
}

fn rows(state: &Value) -> Vec<(String, String)> {
    state["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_owned(),
                r["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_page_in_a_browser_filters_searches_and_follows_the_disk() {
    let (Some(chromium), Some(chromedriver)) = (tool("chromium/bin/chromium"), tool("chromium/bin/chromedriver"))
    else {
        return;
    };
    let fleet = Fleet::new();
    let daemon = Daemon::start(&[fleet.path()], &[]);
    let browser = Browser::start(&chromedriver, &chromium, 1400, 900);
    let page = format!("http://{}/", daemon.address);
    browser.goto(&page);

    // The cards show the right counts once the script has refreshed the page from the API.
    let state = eventually(Duration::from_secs(20), "the script's first refresh", || {
        let state = page_state(&browser);
        state["refreshed"].is_string().then_some(state)
    });
    for (status, n) in COUNTS {
        assert_eq!(state["cards"][status], n, "card {status}: {state}");
    }
    assert_eq!(rows(&state).len(), FLEET.len());
    assert!(state["connection"] == true, "connection banner shown: {state}");
    // Open the reasons of the failed database (the second row): they stay open across refreshes.
    browser.click("#rows tr:nth-child(2) summary");
    // The whole page in the picture: the window grows by what the viewport lacks.
    let sizes = browser.eval(
        "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight];",
        json!([]),
    );
    let height = sizes[0].as_u64().unwrap_or(900) + sizes[1].as_u64().unwrap_or(0);
    browser.set_window(1400, u32::try_from(height).unwrap_or(900));
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let artifact = repo().join("target/page-screenshot.png");
    fs::create_dir_all(artifact.parent().unwrap()).unwrap();
    fs::write(&artifact, &png).unwrap();
    browser.eval("window.__noReload = true; return null;", json!([]));

    // A click on the failed card leaves only failed rows and puts the filter in the address.
    browser.click("#card-failed");
    let state = eventually(Duration::from_secs(10), "only failed rows", || {
        let state = page_state(&browser);
        let rows = rows(&state);
        (rows.len() == 2 && rows.iter().all(|(s, _)| s == "failed")).then_some(state)
    });
    assert!(browser.url().ends_with("/?status=failed"), "address: {}", browser.url());
    assert_eq!(state["cards"]["active"], 2, "the other cards keep their counts");

    // A change on disk shows up without a reload: a new failed workspace, then one removed.
    place(&load_scenario("failed-tainted"), &fleet.path().join("prod/queue"), 1);
    eventually(Duration::from_secs(30), "the new workspace in the table", || {
        let state = page_state(&browser);
        rows(&state)
            .iter()
            .any(|(s, p)| s == "failed" && p == "prod/queue")
            .then_some(())
    });
    let open = browser.eval(
        "return Array.prototype.some.call(document.querySelectorAll('#rows tr'), function (tr) {
           return tr.querySelector('.path').textContent === 'prod/database' && tr.querySelector('details').open;
         });",
        json!([]),
    );
    assert!(open == true, "the opened reasons were closed by a refresh");
    fs::remove_dir_all(fleet.path().join("staging/network")).unwrap();
    let state = eventually(Duration::from_secs(30), "the removed workspace gone", || {
        let state = page_state(&browser);
        (!rows(&state).iter().any(|(_, p)| p == "staging/network") && state["cards"]["failed"] == 2).then_some(state)
    });
    assert!(state["noReload"] == true, "the page was reloaded");

    // Clicking the selected card again shows every status; the search box then filters by path.
    browser.click("#card-failed");
    eventually(Duration::from_secs(10), "every row back", || {
        (rows(&page_state(&browser)).len() == FLEET.len()).then_some(())
    });
    browser.type_into("#q", "staging");
    let state = eventually(Duration::from_secs(10), "only staging rows", || {
        let state = page_state(&browser);
        let rows = rows(&state);
        (!rows.is_empty() && rows.iter().all(|(_, p)| p.contains("staging"))).then_some(state)
    });
    assert_eq!(rows(&state), [("apply_needed".to_owned(), "staging/app".to_owned())]);
    assert_eq!(state["cards"]["apply_needed"], 1);
    assert_eq!(state["cards"]["failed"], 0, "counts follow the search");
    assert!(browser.url().ends_with("/?q=staging"), "address: {}", browser.url());
    assert!(state["noReload"] == true, "the page was reloaded");

    // The same address opened afresh (a shared link) renders the same filter on the server.
    browser.goto(&format!("{page}?status=failed&q=prod"));
    let state = eventually(Duration::from_secs(20), "the shared link's rows", || {
        let state = page_state(&browser);
        let rows = rows(&state);
        (rows.len() == 2 && rows.iter().all(|(s, p)| s == "failed" && p.starts_with("prod/"))).then_some(state)
    });
    assert_eq!(state["cards"]["drifted"], 1);

    // A phone-sized window, for a look at the narrow layout.
    browser.goto(&page);
    browser.set_window(390, 844);
    eventually(Duration::from_secs(20), "the narrow page", || {
        let state = page_state(&browser);
        state["refreshed"].is_string().then_some(())
    });
    fs::write(repo().join("target/page-screenshot-phone.png"), browser.screenshot()).unwrap();

    // The server goes away: the page says so, keeps its rows, and goes on trying.
    drop(daemon);
    eventually(Duration::from_secs(20), "the connection banner", || {
        let banner = browser.eval(
            "var b = document.getElementById('conn'); return b.hidden ? null : b.textContent;",
            json!([]),
        );
        banner
            .as_str()
            .filter(|t| t.contains("cannot reach the server"))
            .map(str::to_owned)
    });
    assert_eq!(rows(&page_state(&browser)).len(), FLEET.len());
}

/// The router and server of the library under a route prefix, in this process (the command line
/// of `serve` does not take the prefix yet), over an empty fleet: the script's fetches and the
/// addresses it writes must all carry the prefix, or the refresh fails and the banner shows.
#[test]
fn the_page_in_a_browser_works_under_a_route_prefix() {
    use std::sync::Arc;

    use iacwatch::http::metrics::Metrics;
    use iacwatch::http::{AppState, Limits, RouterOptions, router, serve};

    let (Some(chromium), Some(chromedriver)) = (tool("chromium/bin/chromium"), tool("chromium/bin/chromedriver"))
    else {
        return;
    };
    // The writer stays alive for the whole test: its readers see what it last published.
    let mut writer = iacwatch::store::Writer::new();
    writer.set_ready();
    let store = writer.reader();
    let metrics = Arc::new(Metrics::new(
        store.clone(),
        &iacwatch::telemetry::Telemetry::default(),
        true,
    ));
    let options = RouterOptions {
        route_prefix: "/tools/iacwatch".into(),
        ..RouterOptions::default()
    };
    let app = router(
        AppState::new(store, metrics, Arc::from(vec!["/srv/tf".to_owned()])),
        &options,
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(serve(listener, app, Limits::default(), async {
        let _ = stopped.await;
    }));

    let browser = Browser::start(&chromedriver, &chromium, 1200, 800);
    browser.goto(&format!("http://{address}/tools/iacwatch/"));
    let state = eventually(Duration::from_secs(20), "the script's first refresh", || {
        let state = page_state(&browser);
        state["refreshed"].is_string().then_some(state)
    });
    assert!(state["connection"] == true, "connection banner shown: {state}");
    let links = browser.eval(
        "return Array.prototype.map.call(document.querySelectorAll('footer a'), function (a) { return a.getAttribute('href'); });",
        json!([]),
    );
    assert_eq!(
        links,
        json!(["/tools/iacwatch/api/v1/workspaces", "/tools/iacwatch/metrics"])
    );
    browser.click("#card-failed");
    eventually(Duration::from_secs(10), "the filter in the address", || {
        browser.url().ends_with("/tools/iacwatch/?status=failed").then_some(())
    });
    // The script's next refreshes still reach the API under the prefix.
    let before = page_state(&browser)["refreshed"].clone();
    eventually(Duration::from_secs(20), "a refresh after the click", || {
        let state = page_state(&browser);
        (state["refreshed"] != before && state["connection"] == true).then_some(())
    });
    let _ = stop.send(());
    runtime.block_on(server).unwrap();
}

/// The feed's state as the page sees it, and one row's status.
fn feed_state(browser: &Browser, path: &str) -> Value {
    browser.eval(
        "var want = arguments[0];
         var tr = Array.prototype.find.call(document.querySelectorAll('#rows tr'), function (tr) {
           return tr.querySelector('.path').textContent === want;
         });
         return {feed: document.body.getAttribute('data-feed'),
                 cause: document.body.getAttribute('data-refresh-cause'),
                 status: tr ? tr.dataset.status : null};",
        json!([path]),
    )
}

#[test]
fn the_page_in_a_browser_follows_the_feed_and_opens_a_timeline() {
    let (Some(chromium), Some(chromedriver)) = (tool("chromium/bin/chromium"), tool("chromium/bin/chromedriver"))
    else {
        return;
    };
    let fleet = Fleet::new();
    let state = fleet.path().join("prod/network/terraform.tfstate");
    let saved = fs::read(&state).unwrap();
    let daemon = Daemon::start(&[fleet.path()], &[]);
    let browser = Browser::start(&chromedriver, &chromium, 1400, 900);
    browser.goto(&format!("http://{}/", daemon.address));
    eventually(Duration::from_secs(20), "the feed to open", || {
        let s = feed_state(&browser, "prod/network");
        (s["feed"] == "live" && s["status"] == "active").then_some(())
    });
    // A change on disk reaches the page through the feed, not the polling.
    fs::remove_file(&state).unwrap();
    let s = eventually(Duration::from_secs(10), "the change on the page", || {
        let s = feed_state(&browser, "prod/network");
        (s["status"] == "inactive").then_some(s)
    });
    assert_eq!(s["cause"], "feed", "{s}");
    fs::write(&state, &saved).unwrap();
    eventually(Duration::from_secs(10), "the change back on the page", || {
        (feed_state(&browser, "prod/network")["status"] == "active").then_some(())
    });

    // The timeline: newest first, when it entered each status and why.
    browser.eval(
        "Array.prototype.find.call(document.querySelectorAll('#rows tr'), function (tr) {
           return tr.querySelector('.path').textContent === 'prod/network';
         }).querySelector('td.c-since').click(); return null;",
        json!([]),
    );
    let items = eventually(Duration::from_secs(10), "the timeline", || {
        let items = browser.eval(
            "var t = document.getElementById('timeline');
             return t ? Array.prototype.map.call(t.querySelectorAll('li'), function (li) {
               return {to: li.dataset.to, text: li.textContent};
             }) : null;",
            json!([]),
        );
        items.as_array().filter(|i| !i.is_empty()).cloned()
    });
    let title = browser.eval("return document.querySelector('#timeline h2').textContent;", json!([]));
    let tos: Vec<&str> = items.iter().map(|i| i["to"].as_str().unwrap()).collect();
    assert!(title.as_str().unwrap().contains("prod/network"), "{title}");
    assert_eq!(tos, ["active", "inactive", "active"], "{items:?}");
    assert!(
        items[0]["text"].as_str().unwrap().contains("from inactive"),
        "{items:?}"
    );
    assert!(
        items[0]["text"].as_str().unwrap().contains("state_has_resources"),
        "{items:?}"
    );
    assert!(items[1]["text"].as_str().unwrap().contains("from active"), "{items:?}");
    assert!(items[2]["text"].as_str().unwrap().contains("first seen"), "{items:?}");
    fs::write(repo().join("target/page-screenshot-timeline.png"), browser.screenshot()).unwrap();
    drop(browser);

    // Without the history the feed is refused: the page polls, and still follows the disk.
    let plain = Daemon::start(&[fleet.path()], &["--history", "false"]);
    let browser = Browser::start(&chromedriver, &chromium, 1400, 900);
    browser.goto(&format!("http://{}/", plain.address));
    eventually(Duration::from_secs(20), "the page to give up on the feed", || {
        (feed_state(&browser, "prod/network")["feed"] == "off").then_some(())
    });
    fs::remove_file(&state).unwrap();
    let s = eventually(Duration::from_secs(15), "the change on the polling page", || {
        let s = feed_state(&browser, "prod/network");
        (s["status"] == "inactive").then_some(s)
    });
    assert_eq!(s["cause"], "poll", "{s}");
}
