//! The server loop: hyper with a header-read timeout, a request timeout, the web guard (TLS,
//! basic auth, limits, headers) and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use super::web::{Web, guard};

/// Timeouts of the server loop.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Time to receive a request's headers (slowloris protection).
    pub header_timeout: Duration,
    /// Time to answer a request.
    pub request_timeout: Duration,
    /// Time given to open connections at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(4),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open connections finish for
/// at most the grace time.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    serve_with(listener, app, limits, Arc::new(Web::plain()), shutdown).await;
}

/// `serve` with the web configuration's TLS, basic auth and headers (see `web`).
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    web: Arc<Web>,
    shutdown: impl Future<Output = ()>,
) {
    let app = app
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(web.clone(), guard::guard));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // Out of file descriptors and the like: back off a moment, keep serving.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = TowerToHyperService::new(app.clone());
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).max_buf_size(64 * 1024);
                if let Some(acceptor) = web.current().tls.clone() {
                    // The handshake counts against the header timeout, like the headers it precedes.
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        if let Ok(Ok(stream)) = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                            let _ = watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await;
                        }
                    });
                    continue;
                }
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::info!("connections still open at shutdown were closed");
        }
    }
}
