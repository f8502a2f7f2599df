//! `iacwatch serve`: the daemon. Scans, then watches, and serves HTTP until SIGTERM or SIGINT.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;

use super::Exit;
use crate::config::ServeConfig;
use crate::http::{AppState, router};
use crate::liveness::SystemProbe;
use crate::metrics::Telemetry;
use crate::scan::Scanner;
use crate::store::Store;
use crate::watch::Watch;

pub fn main(config: ServeConfig) -> anyhow::Result<Exit> {
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

/// Binds, starts the watcher and serves until a shutdown signal.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let mut listeners = Vec::new();
    for address in &config.listen {
        let listener = tokio::net::TcpListener::bind((address.host.as_str(), address.port))
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        listeners.push(listener);
    }
    let web = match &config.web_config_file {
        Some(path) => crate::web::Web::load(path)?,
        None => crate::web::Web::plain(),
    };
    let labels: Vec<&String> = config.common.roots.iter().map(|r| &r.label).collect();
    for listener in &listeners {
        let address = listener.local_addr().context("reading the listen address")?;
        tracing::info!(address = %address, roots = %crate::logging::json(&labels), "serving");
    }
    let store = Arc::new(Store::new());
    let telemetry = Telemetry::default();
    let metrics = Arc::new(crate::metrics::Metrics::new(
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
    let app = router(AppState { store, metrics, roots });
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
