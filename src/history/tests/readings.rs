//! Recording and reading back: round trip, order, filters, since/limit, resume, retention,
//! what a restart needs.

use std::time::Duration;

use super::{ago, at, now, open, quick, transition};
use crate::history::{Filter, History, MAX_LIMIT, Options, PRUNE_BATCH, Stored};
use crate::model::Status::{self, *};

fn ids(stored: &[Stored]) -> Vec<u64> {
    stored.iter().map(|s| s.event_id).collect()
}

fn paths(stored: &[Stored]) -> Vec<&str> {
    stored.iter().map(|s| s.transition.path.as_str()).collect()
}

/// A small fleet's day: appearances, changes, one vanishing.
fn fleet(history: &mut History) -> Vec<Stored> {
    let batches = [
        vec![
            transition(ago(5000), "a", "prod/network", None, Some(Active)),
            transition(ago(5000), "a", "prod/app", None, Some(Active)),
            transition(ago(5000), "b", "staging/Network", None, Some(Inactive)),
        ],
        vec![transition(ago(4000), "a", "prod/network", Some(Active), Some(Drifted))],
        vec![
            transition(ago(3000), "a", "prod/app", Some(Active), Some(Failed)),
            transition(ago(3000), "b", "staging/Network", Some(Inactive), Some(Drifted)),
        ],
        vec![transition(ago(2000), "a", "prod/app", Some(Failed), Some(Active))],
        vec![transition(ago(1000), "b", "staging/Network", Some(Drifted), None)],
    ];
    batches.iter().flat_map(|b| history.record(b).unwrap()).collect()
}

#[test]
fn a_batch_round_trips_with_increasing_ids_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = open(dir.path());
    assert_eq!(history.record(&[]).unwrap(), vec![]);
    let all = fleet(&mut history);
    assert_eq!(ids(&all), (1..=8).collect::<Vec<_>>());
    assert_eq!(history.reads().after(0, 100).unwrap(), all);
    assert_eq!(history.reads().last_event_id().unwrap(), 8);
    drop(history);
    let history = open(dir.path());
    assert_eq!(history.reads().after(0, 100).unwrap(), all);
    let reader = history.reader().unwrap();
    assert_eq!(reader.after(0, 100).unwrap(), all);
    // Exactly what was given: times to the microsecond, reasons as codes, `None`s.
    let drift = &all[3].transition;
    assert_eq!(
        drift,
        &transition(ago(4000), "a", "prod/network", Some(Active), Some(Drifted))
    );
    assert_eq!(all[7].transition.to, None);
}

#[test]
fn a_workspace_history_is_newest_first_with_since_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = open(dir.path());
    let all = fleet(&mut history);
    let app = &all[1].transition.id;
    let reads = history.reads();
    let statuses = |s: &[Stored]| s.iter().map(|s| s.transition.to).collect::<Vec<_>>();
    let full = reads.workspace(app, None, 100).unwrap();
    assert_eq!(statuses(&full), vec![Some(Active), Some(Failed), Some(Active)]);
    assert!(full.iter().all(|s| &s.transition.id == app));
    let recent = reads.workspace(app, Some(ago(3000)), 100).unwrap();
    assert_eq!(statuses(&recent), vec![Some(Active), Some(Failed)]);
    assert_eq!(ids(&reads.workspace(app, None, 1).unwrap()), vec![ids(&full)[0]]);
    assert_eq!(reads.workspace("no-such-id", None, 100).unwrap(), vec![]);
    assert_eq!(reads.workspace(app, None, 0).unwrap(), vec![]);
}

#[test]
fn all_transitions_filter_like_the_listing() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = open(dir.path());
    fleet(&mut history);
    let reads = history.reads();
    let get = |filter: Filter| reads.transitions(&Filter { limit: 100, ..filter }).unwrap();
    let everything = get(Filter::default());
    assert_eq!(everything.len(), 8);
    let times: Vec<_> = everything.iter().map(|s| s.transition.at).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    // Same time: the later event first.
    assert_eq!(ids(&everything[5..]), vec![3, 2, 1]);
    // `status` matches `to`; several statuses; a vanishing matches none.
    let drifted = get(Filter {
        statuses: vec![Drifted],
        ..Filter::default()
    });
    assert_eq!(paths(&drifted), vec!["staging/Network", "prod/network"]);
    let bad = get(Filter {
        statuses: vec![Drifted, Failed],
        ..Filter::default()
    });
    assert_eq!(bad.len(), 3);
    // `root` exactly, `q` a case-insensitive substring of the path.
    let root_b = get(Filter {
        root: Some("b".into()),
        ..Filter::default()
    });
    assert_eq!(paths(&root_b), vec!["staging/Network"; 3]);
    assert_eq!(
        get(Filter {
            root: Some("ab".into()),
            ..Filter::default()
        }),
        vec![]
    );
    let network = get(Filter {
        q: Some("NETwork".into()),
        ..Filter::default()
    });
    assert_eq!(
        paths(&network),
        vec![
            "staging/Network",
            "staging/Network",
            "prod/network",
            "staging/Network",
            "prod/network"
        ]
    );
    // Everything together, plus since and limit.
    let together = Filter {
        statuses: vec![Drifted],
        root: Some("a".into()),
        q: Some("net".into()),
        since: Some(ago(4000)),
        limit: 100,
    };
    assert_eq!(ids(&reads.transitions(&together).unwrap()), vec![4]);
    let later = Filter {
        since: Some(ago(3999)),
        ..together.clone()
    };
    assert_eq!(reads.transitions(&later).unwrap(), vec![]);
    assert_eq!(
        ids(&get(Filter {
            since: Some(ago(2000)),
            ..Filter::default()
        })),
        vec![8, 7]
    );
    assert_eq!(
        ids(&reads
            .transitions(&Filter {
                limit: 2,
                ..Filter::default()
            })
            .unwrap()),
        vec![8, 7]
    );
    // Characters SQL would treat specially are plain text.
    assert_eq!(
        get(Filter {
            q: Some("%".into()),
            ..Filter::default()
        }),
        vec![]
    );
}

#[test]
fn resume_after_an_event_is_oldest_first_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = open(dir.path());
    let all = fleet(&mut history);
    let reads = history.reads();
    assert_eq!(reads.after(3, 100).unwrap(), all[3..]);
    assert_eq!(ids(&reads.after(3, 2).unwrap()), vec![4, 5]);
    assert_eq!(reads.after(8, 100).unwrap(), vec![]);
    assert_eq!(reads.after(u64::MAX, 100).unwrap(), vec![]);
    // Paging after the last one seen gives every event once, in order.
    let mut seen = Vec::new();
    let mut last = 0;
    loop {
        let page = reads.after(last, 3).unwrap();
        seen.extend(ids(&page));
        match page.last() {
            Some(s) if page.len() == 3 => last = s.event_id,
            _ => break,
        }
    }
    assert_eq!(seen, (1..=8).collect::<Vec<_>>());
}

#[test]
fn a_reading_never_returns_more_than_the_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = open(dir.path());
    let batch: Vec<_> = (0..MAX_LIMIT + 10)
        .map(|i| transition(ago(i as i64), "a", &format!("ws{i}"), None, Some(Active)))
        .collect();
    history.record(&batch).unwrap();
    let reads = history.reads();
    assert_eq!(reads.after(0, usize::MAX).unwrap().len(), MAX_LIMIT);
    let all = reads
        .transitions(&Filter {
            limit: usize::MAX,
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(all.len(), MAX_LIMIT);
}

#[test]
fn retention_prunes_old_transitions_in_batches_but_keeps_ids_status_since_and_totals() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        retention: Duration::from_secs(24 * 3600),
        ..quick()
    };
    let day = 24 * 3600;
    let mut history = History::open(dir.path(), options, now()).unwrap();
    // More old rows than one pruning batch holds.
    let old: Vec<_> = (0..PRUNE_BATCH + 500)
        .map(|i| {
            transition(
                ago(2 * day + i as i64),
                "a",
                &format!("old{}", i % 7),
                None,
                Some(Active),
            )
        })
        .collect();
    history.record(&old).unwrap();
    let stable = transition(ago(3 * day), "a", "stable", None, Some(Drifted));
    let gone = transition(ago(3 * day), "a", "gone", Some(Active), None);
    let fresh = transition(ago(60), "a", "fresh", None, Some(Failed));
    history.record(&[stable.clone(), gone, fresh.clone()]).unwrap();
    let last = history.reads().last_event_id().unwrap();
    drop(history);

    // Pruned at open.
    let mut history = History::open(dir.path(), options, now()).unwrap();
    let left = history.reads().after(0, 100).unwrap();
    assert_eq!(left.iter().map(|s| &s.transition).collect::<Vec<_>>(), vec![&fresh]);
    // A workspace drifted for longer than the retention keeps its `status_since`; a workspace
    // that vanished before it is forgotten.
    let latest = history.latest().unwrap();
    let key = |p: &str| ("a".to_owned(), p.to_owned(), "default".to_owned());
    assert_eq!(latest[&key("stable")].transition, stable);
    assert!(!latest.contains_key(&key("gone")));
    assert_eq!(latest.len(), 7 + 2);
    // Counters never go down.
    assert_eq!(
        history.totals().unwrap()[&(None, Some(Active))],
        (PRUNE_BATCH + 500) as u64
    );
    // Ids are never reused, even once everything is pruned.
    assert_eq!(history.prune(now() + chrono::Duration::days(2)).unwrap(), 1);
    assert_eq!(history.reads().after(0, 10).unwrap(), vec![]);
    assert_eq!(history.reads().last_event_id().unwrap(), last);
    let next = history
        .record(&[transition(now(), "a", "fresh", Some(Failed), Some(Active))])
        .unwrap();
    assert_eq!(ids(&next), vec![last + 1]);
    // Nothing older than the retention: pruning again deletes nothing.
    assert_eq!(history.prune(now()).unwrap(), 0);
}

#[test]
fn latest_and_totals_are_what_a_restart_needs() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = open(dir.path());
    let all = fleet(&mut history);
    drop(history);
    let history = open(dir.path());
    let latest = history.latest().unwrap();
    let key = |r: &str, p: &str| (r.to_owned(), p.to_owned(), "default".to_owned());
    assert_eq!(latest.len(), 3);
    assert_eq!(latest[&key("a", "prod/network")], all[3]);
    assert_eq!(latest[&key("a", "prod/app")], all[6]);
    assert_eq!(latest[&key("b", "staging/Network")].transition.to, None);
    let totals = history.totals().unwrap();
    let count = |from: Option<Status>, to: Option<Status>| totals.get(&(from, to)).copied();
    assert_eq!(count(None, Some(Active)), Some(2));
    assert_eq!(count(None, Some(Inactive)), Some(1));
    assert_eq!(count(Some(Active), Some(Drifted)), Some(1));
    assert_eq!(count(Some(Drifted), None), Some(1));
    assert_eq!(count(Some(Drifted), Some(Active)), None);
    assert_eq!(totals.values().sum::<u64>(), 8);
}

#[test]
fn the_same_time_twice_and_odd_names_are_kept_apart() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = open(dir.path());
    let odd = "it's \"quoted\", 'x' OR 1=1; -- ünïcode/dir";
    let mut t = transition(at("1970-01-01T00:00:00Z"), "root with space", odd, None, Some(Inactive));
    t.workspace = "blue".into();
    let stored = history.record(&[t.clone(), t.clone()]).unwrap();
    assert_eq!(ids(&stored), vec![1, 2]);
    assert_eq!(history.reads().workspace(&t.id, None, 10).unwrap().len(), 2);
    let q = Filter {
        q: Some("ÜNÏCODE".into()),
        limit: 10,
        ..Filter::default()
    };
    assert_eq!(history.reads().transitions(&q).unwrap().len(), 2);
}

#[test]
fn a_reader_on_another_thread_sees_whole_batches_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut history = open(dir.path());
    let reader = history.reader().unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let watcher = std::thread::spawn(move || {
        let mut sizes = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            sizes.push(reader.after(0, MAX_LIMIT).unwrap().len());
        }
        sizes.push(reader.after(0, MAX_LIMIT).unwrap().len());
        sizes
    });
    for n in 0..300 {
        let batch: Vec<_> = (0..5)
            .map(|i| transition(ago(n), "a", &format!("ws{i}"), None, Some(Active)))
            .collect();
        history.record(&batch).unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let sizes = watcher.join().unwrap();
    assert!(
        sizes.iter().all(|n| n % 5 == 0),
        "a reading saw part of a batch: {sizes:?}"
    );
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(sizes.last(), Some(&1500));
}
