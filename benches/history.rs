//! Benchmarks of the history database: transitions written per second (batches of 1 and of 100,
//! both durabilities), readings on a filled database, and, printed once, the size of the file per
//! 100,000 transitions and the time to open a database of a million.
//!
//! `cargo bench --bench history`; the database lives under `target/` (ext4 here), or under
//! `$IACWATCH_BENCH_DIR` to measure another disk.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use iacwatch::history::{DATABASE_FILE, Durability, Filter, History, Options, Transition};
use iacwatch::model::{ReasonCode, Status};

fn scratch() -> tempfile::TempDir {
    let base = std::env::var_os("IACWATCH_BENCH_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from);
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

/// Transition `n` of a fleet of 2,000 workspaces named like real ones, each cycling through
/// statuses with one or two reason codes, a second apart.
fn transition(n: usize) -> Transition {
    const CYCLE: [(Status, &[ReasonCode]); 4] = [
        (Status::Active, &[ReasonCode::StateHasResources]),
        (
            Status::Drifted,
            &[ReasonCode::DriftDetected, ReasonCode::StateHasResources],
        ),
        (Status::Provisioning, &[ReasonCode::PipelineLock]),
        (
            Status::Failed,
            &[ReasonCode::LastRunFailed, ReasonCode::StateHasResources],
        ),
    ];
    let ws = n % 2000;
    let path = format!(
        "team-{:02}/{}/stack-{ws:04}",
        ws % 40,
        ["prod", "staging", "dev"][ws % 3]
    );
    let step = n / 2000;
    let (from, _) = CYCLE[step % 4];
    let (to, reasons) = CYCLE[(step + 1) % 4];
    Transition {
        at: DateTime::<Utc>::from_timestamp(1_780_000_000 + n as i64, 0).unwrap(),
        id: iacwatch::workspace::workspace_id("infra", &path, "default"),
        root: "infra".into(),
        path,
        workspace: "default".into(),
        from: Some(from),
        to: Some(to),
        reasons: reasons.to_vec(),
    }
}

fn open(dir: &Path, durability: Durability) -> History {
    let options = Options {
        retention: Duration::from_secs(100 * 365 * 24 * 3600),
        durability,
    };
    History::open(dir, options, Utc::now()).unwrap()
}

/// Fills a history with `count` transitions in batches of 1,000 and closes it.
fn fill(dir: &Path, count: usize) {
    let mut history = open(dir, Durability::Normal);
    let all: Vec<_> = (0..count).map(transition).collect();
    for batch in all.chunks(1000) {
        history.record(batch).unwrap();
    }
}

/// Printed once: bytes per 100,000 transitions (the file after closing, WAL checkpointed) and
/// the time to open a database of a million (with its `quick_check`).
fn sizes() {
    for count in [100_000, 1_000_000] {
        let dir = scratch();
        fill(dir.path(), count);
        let bytes = std::fs::metadata(dir.path().join(DATABASE_FILE)).unwrap().len();
        let started = Instant::now();
        let history = open(dir.path(), Durability::Full);
        let opened = started.elapsed();
        let started = Instant::now();
        let latest = history.latest().unwrap().len();
        let read = started.elapsed();
        eprintln!(
            "history: {count} transitions: {:.1} MiB ({:.1} MiB per 100,000); open {opened:.2?}; latest of {latest} workspaces {read:.2?}",
            bytes as f64 / 1048576.0,
            bytes as f64 / 1048576.0 * 100_000.0 / count as f64,
        );
    }
}

fn writes(c: &mut Criterion) {
    sizes();
    let mut group = c.benchmark_group("history_record");
    group.sample_size(20).measurement_time(Duration::from_secs(8));
    for (name, durability) in [("full", Durability::Full), ("normal", Durability::Normal)] {
        for size in [1_usize, 100] {
            let dir = scratch();
            let mut history = open(dir.path(), durability);
            let mut n = 0;
            group.throughput(Throughput::Elements(size as u64));
            group.bench_function(format!("{name}/batch_{size}"), |b| {
                b.iter_batched(
                    || {
                        n += size;
                        (n - size..n).map(transition).collect::<Vec<_>>()
                    },
                    |batch| black_box(history.record(&batch).unwrap()),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

fn reads(c: &mut Criterion) {
    let dir = scratch();
    fill(dir.path(), 100_000);
    let history = open(dir.path(), Durability::Full);
    let reads = history.reads();
    let id = transition(17).id;
    let mut group = c.benchmark_group("history_read_100k");
    group.bench_function("workspace_limit_100", |b| {
        b.iter(|| black_box(reads.workspace(&id, None, 100).unwrap()))
    });
    let newest = Filter {
        limit: 100,
        ..Filter::default()
    };
    group.bench_function("transitions_limit_100", |b| {
        b.iter(|| black_box(reads.transitions(&newest).unwrap()))
    });
    let filtered = Filter {
        statuses: vec![Status::Failed],
        q: Some("prod".into()),
        limit: 100,
        ..Filter::default()
    };
    group.bench_function("transitions_failed_q_limit_100", |b| {
        b.iter(|| black_box(reads.transitions(&filtered).unwrap()))
    });
    group.bench_function("after_limit_1000", |b| {
        b.iter(|| black_box(reads.after(50_000, 1000).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, writes, reads);
criterion_main!(benches);
