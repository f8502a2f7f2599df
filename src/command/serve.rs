//! `iacwatch serve`: the daemon. Scans, then watches, and serves HTTP until SIGTERM or SIGINT.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

use super::Exit;
use crate::cli::ServeArgs;
use crate::config::{LogFormat, ServeConfig};
use crate::http::{AppState, RouterOptions, router};
use crate::liveness::SystemProbe;
use crate::scan::Scanner;
use crate::store::Store;
use crate::telemetry::Telemetry;
use crate::watch::Watch;

pub fn main(args: &ServeArgs) -> anyhow::Result<Exit> {
    let config = ServeConfig::new(args)?;
    init_logging(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("iacwatch-http")
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run(config))?;
    Ok(Exit::Ok)
}

fn init_logging(config: &ServeConfig) -> anyhow::Result<()> {
    // The watcher library's own chatter (a watch removed twice) is not the operator's concern.
    let filter = tracing_subscriber::EnvFilter::try_new(format!("notify=warn,{}", config.log_level))
        .map_err(|e| anyhow::anyhow!("log_level: '{}' is not a level or filter ({e})", config.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // Already set (tests that start the daemon in-process more than once): keep the first.
    let _ = result;
    Ok(())
}

/// Binds, starts the watcher and serves until a shutdown signal.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let web = match &config.web_config_file {
        Some(path) => crate::http::web::Web::load(path)?,
        None => crate::http::web::Web::plain(),
    };
    let address = listener.local_addr().context("reading the listen address")?;
    tracing::info!(address = %address, roots = ?config.common.roots.iter().map(|r| &r.label).collect::<Vec<_>>(), "serving");
    let store = Arc::new(Store::new());
    let telemetry = Telemetry::default();
    let metrics = Arc::new(crate::http::metrics::Metrics::new(
        store.clone(),
        &telemetry,
        config.per_workspace_metrics,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    // The probe lives as long as the process; the watcher thread borrows it for good.
    let probe: &'static SystemProbe = Box::leak(Box::new(match &config.common.hostname {
        Some(host) => SystemProbe::with_host(host),
        None => SystemProbe::new(),
    }));
    let watch = Watch {
        roots: config.common.roots.clone(),
        scanner: Scanner {
            discover: config.common.discover.clone(),
            policy: config.common.policy,
            probe,
            // A daemon stays up: its memory should not jump by the size of the largest state.
            stream_above: crate::read::STREAM_ABOVE_IN_DAEMON,
            progress: None,
        },
        store: store.clone(),
        telemetry,
        timing: config.timing,
        stop: stop.clone(),
    };
    let watcher = std::thread::Builder::new()
        .name("iacwatch-watch".into())
        .spawn(move || watch.run())
        .context("starting the watcher")?;
    let roots = config.common.roots.iter().map(|r| r.label.clone()).collect();
    let app = router(AppState::new(store, metrics, roots), &RouterOptions::default());
    crate::http::serve_with(listener, app, config.limits, Arc::new(web), shutdown_signal()).await;
    stop.store(true, Ordering::Release);
    // The watcher notices within half a second unless it is in the middle of a full scan.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while !watcher.is_finished() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
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
