//! `iacwatch serve`: the daemon. Scans, then watches, and serves HTTP until SIGTERM or SIGINT.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

use super::Exit;
use crate::config::ServeConfig;
use crate::http::{AppState, RouterOptions, router};
use crate::source::local::liveness::SystemProbe;
use crate::source::local::read::STREAM_ABOVE_IN_DAEMON;
use crate::source::local::scan::Scanner;
use crate::source::local::watch::Watch;
use crate::store::Writer;
use crate::store::feed::{Batch, Loop};
use crate::telemetry::Telemetry;

/// How long the first scan's batches wait for the history's commit at most.
const FIRST_SCAN_COMMIT: Duration = Duration::from_secs(60);

/// How long the history may take at shutdown to write what is queued.
const HISTORY_DRAIN: Duration = Duration::from_secs(2);

pub fn main(config: ServeConfig) -> anyhow::Result<Exit> {
    one_heap_unless_told();
    crate::logging::init(config.log_format, config.log_level)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("iacwatch-http")
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run(config))?;
    Ok(Exit::Ok)
}

/// Makes every thread allocate from one heap, unless `MALLOC_ARENA_MAX` says otherwise. glibc
/// gives threads that allocate at once heaps of their own (up to eight a core), and the reading
/// threads' heaps each keep the freed buffers of the files they read: resident memory the daemon
/// never uses again. Its threads allocate little but while they read, so one heap costs no speed
/// worth measuring (`docs/deploy.md`).
fn one_heap_unless_told() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it runs before any other thread is
        // started.
        unsafe {
            nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
        }
    }
}

/// Binds, starts the watcher and serves until a shutdown signal.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let telemetry = Telemetry::default();
    // Before anything listens: a history that cannot be opened stops the start.
    let opened = super::history::open(&config.history, &telemetry)?;
    let mut listeners = Vec::new();
    for address in &config.listen {
        let listener = tokio::net::TcpListener::bind((address.host.as_str(), address.port))
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        listeners.push(listener);
    }
    let web = match &config.web_config_file {
        Some(path) => crate::http::web::Web::load(path)?,
        None => crate::http::web::Web::plain(),
    };
    let labels = config.common.labels();
    for listener in &listeners {
        let address = listener.local_addr().context("reading the listen address")?;
        tracing::info!(address = %address, roots = %crate::logging::json(&labels), "serving");
    }
    let mut writer = Writer::new();
    let (mut handoff, drain, history) = match opened {
        Some(opened) => {
            writer.resume(opened.previous);
            let (handoff, drain) = super::history::spawn(opened.recorder).context("starting the history's thread")?;
            (Some(handoff), Some(drain), Some(opened.http))
        }
        None => (None, None, None),
    };
    let mut writer_loop = Loop::new(writer).with_shard(config.common.shard);
    let store = writer_loop.reader();
    let metrics = Arc::new(crate::http::metrics::Metrics::new(
        store.clone(),
        &telemetry,
        config.per_workspace_metrics,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let probe = match &config.common.hostname {
        Some(host) => SystemProbe::with_host(host),
        None => SystemProbe::new(),
    };
    let watch = Watch {
        roots: config.common.roots.clone(),
        scanner: Scanner {
            discover: config.common.discover.clone(),
            policy: config.common.policy,
            probe: Box::new(probe),
            // A daemon stays up: its memory should not jump by the size of the largest state.
            stream_above: STREAM_ABOVE_IN_DAEMON,
            progress: None,
        },
        telemetry: telemetry.clone(),
        timing: config.timing,
        stop: stop.clone(),
    };
    let common = &config.common;
    let dir_roots = common.roots.iter().map(|r| (r.label.clone(), r.path.clone())).collect();
    let (local, polled) = (writer_loop.feed(), writer_loop.feed());
    let interval = common.backed_poll_interval;
    let claims = crate::source::s3::backed::Claims::default();
    let polling = crate::source::s3::backed::Polling {
        policy: common.policy,
        interval,
        telemetry: telemetry.clone(),
    };
    let mut feed = crate::source::s3::backed::wrap(local, polled, dir_roots, polling, &stop, &claims)
        .context("starting the poller of directories with an S3 backend")?;
    let watching = crate::source::s3::watch::Watching {
        exclude: &common.discover.exclude,
        policy: common.policy,
        shard: common.shard,
        telemetry: &telemetry,
        stop: &stop,
        claims: &claims,
    };
    crate::source::s3::watch::spawn(&common.remote, &watching, || writer_loop.feed())
        .context("starting the S3 pollers")?;
    // The one loop that writes the store; it ends when the last source is gone.
    std::thread::Builder::new()
        .name("iacwatch-store".into())
        .spawn({
            let store = store.clone();
            move || {
                writer_loop.run(|batch| {
                    after(&batch, &telemetry);
                    if let Some(handoff) = &mut handoff {
                        let snapshot = store.snapshot();
                        let number = handoff.send(batch.applied, &snapshot);
                        // Until the store is ready (the first scans, what vanished while the
                        // daemon was down) the history is waited for, so that it starts complete.
                        if !snapshot.ready && !handoff.wait(number, FIRST_SCAN_COMMIT) {
                            tracing::warn!(
                                waited_s = FIRST_SCAN_COMMIT.as_secs(),
                                "the history has not recorded the first scan yet; serving without waiting for it"
                            );
                        }
                    }
                })
            }
        })
        .context("starting the store's writer")?;
    let watcher = std::thread::Builder::new()
        .name("iacwatch-watch".into())
        .spawn(move || watch.run(&mut feed))
        .context("starting the watcher")?;
    let roots = config.common.labels().into();
    let options = RouterOptions {
        telemetry_path: config.telemetry_path.clone(),
        route_prefix: config.route_prefix.clone(),
        external_url: config.external_url.clone(),
    };
    let mut state = AppState::new(store, metrics, roots);
    if let Some(history) = &history {
        state = state.with_history(history.clone());
    }
    let app = router(state, &options);
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let web = Arc::new(web);
    let servers: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let mut stopped = stopped.clone();
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            tokio::spawn(crate::http::serve_with(
                listener,
                app.clone(),
                config.limits,
                web.clone(),
                shutdown,
            ))
        })
        .collect();
    shutdown_signal().await;
    if let Some(history) = &history {
        history.close();
    }
    let _ = stopping.send(true);
    for server in servers {
        let _ = server.await;
    }
    stop.store(true, Ordering::Release);
    // The watcher notices within half a second unless it is in the middle of a full scan.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while !watcher.is_finished() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(drain) = &drain {
        let left = drain.drain(HISTORY_DRAIN);
        if left > 0 {
            tracing::warn!(batches = left, "stopping before the history recorded every batch");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
    }
}

/// What follows each batch: one log line a transition and a newly unreadable artifact, and the
/// error counter.
fn after(batch: &Batch<'_>, telemetry: &Telemetry) {
    log(batch.applied, batch.found_is_news);
    for t in &batch.applied.transitions {
        telemetry.transitions(t.from, t.to, 1);
    }
    let kinds: Vec<&'static str> = batch.applied.new_errors.iter().map(|e| e.kind).collect();
    telemetry.artifact_errors(&kinds);
}

/// The log lines of a batch.
fn log(applied: &crate::store::Applied, log_found: bool) {
    for t in &applied.transitions {
        let (root, path, workspace) = &t.key;
        match (t.from, t.to) {
            (Some(from), None) => {
                tracing::info!(root = %root, path = %path, workspace = %workspace, from = %from, "workspace removed")
            }
            (None, Some(status)) if log_found => {
                tracing::info!(root = %root, path = %path, workspace = %workspace, status = %status, "workspace found");
            }
            (Some(from), Some(to)) => {
                let reasons: Vec<&str> = t.reasons.iter().map(|r| r.as_str()).collect();
                tracing::info!(
                    root = %root, path = %path, workspace = %workspace, from = %from, to = %to,
                    reasons = %reasons.join(","), "status changed"
                );
            }
            _ => {}
        }
    }
    for e in &applied.new_errors {
        tracing::warn!(root = %e.root, path = %e.path, kind = e.kind, "artifact cannot be read");
    }
}
