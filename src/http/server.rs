//! The HTTP server: an accept loop of our own around hyper, because the port faces other
//! providers and the internet and every limit must hold.
//!
//! - A client has `--web.header-read-timeout` to send a request's headers (hyper's timer).
//! - A keep-alive connection with no request for `--web.idle-timeout` is closed; an answer
//!   that makes no progress for `--web.request-timeout` (a client that stops reading) is cut
//!   off. A watchdog per connection looks every second.
//! - At most `--web.max-connections` are open; at the cap the oldest one that is not being
//!   answered is closed to admit the new one ([`super::connections`]).
//! - `accept` failures back off ([`crate::accept`]).
//! - On shutdown the listener closes, every connection is asked to finish, and after
//!   `--web.shutdown-timeout` whatever is left is closed.
//!
//! axum's own `serve` has none of these limits; the router is served unchanged.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::connections::{Connection, Registry, TrackedIo};
use super::security::Security;
use crate::accept::AcceptBackoff;
use crate::config::WebConfig;

/// How often each connection's watchdog looks at it.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` resolves, then drains within the deadline.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    security: Arc<Security>,
    limits: WebConfig,
    shutdown: impl Future<Output = ()>,
) {
    let registry = Arc::new(Registry::new());
    let mut tasks = JoinSet::new();
    let mut backoff = AcceptBackoff::new("http");
    let mut shutdown = std::pin::pin!(shutdown);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        match accepted {
            Ok((stream, _peer)) => {
                backoff.succeeded();
                // Answers are written at once, not held back waiting for an ACK (Nagle).
                let _ = stream.set_nodelay(true);
                let (connection, evicted) = registry.admit(limits.max_connections);
                if evicted {
                    tracing::debug!(
                        max = limits.max_connections,
                        "connection cap reached: closed the oldest idle connection"
                    );
                }
                let settings = security.current();
                let (app, registry, limits, stopping) = (
                    app.clone(),
                    registry.clone(),
                    limits.clone(),
                    stopping.clone(),
                );
                tasks.spawn(async move {
                    let Some(acceptor) = settings.tls.clone() else {
                        return serve_connection(
                            stream, app, connection, registry, limits, stopping,
                        )
                        .await;
                    };
                    // The handshake counts against the header timeout: a client that opens a
                    // socket and says nothing is closed all the same.
                    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => {
                            serve_connection(tls, app, connection, registry, limits, stopping).await
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%error, "TLS handshake failed");
                            registry.close(&connection);
                        }
                        Err(_) => registry.close(&connection),
                    }
                });
            }
            Err(error) => {
                let delay = backoff.failed(&error);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = &mut shutdown => break,
                }
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            open = registry.len(),
            deadline = ?limits.shutdown_timeout,
            "closing the connections still open at the shutdown deadline"
        );
        tasks.shutdown().await;
    }
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    app: Router,
    connection: Arc<Connection>,
    registry: Arc<Registry>,
    limits: WebConfig,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let io = TokioIo::new(TrackedIo {
        inner: stream,
        connection: connection.clone(),
    });
    let answering = connection.clone();
    let service = app.map_request(move |request: hyper::Request<Incoming>| {
        // Busy from here until the response is handed back (the guard rides in the
        // request's extensions, which the handlers drop with the request).
        let (parts, body) = request.into_parts();
        let mut request = hyper::Request::from_parts(parts, axum::body::Body::new(body));
        request
            .extensions_mut()
            .insert(Arc::new(answering.answering()));
        request
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, TowerToHyperService::new(service));
    let mut conn = std::pin::pin!(conn);
    let mut watchdog = tokio::time::interval(WATCH_EVERY);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::trace!(%error, "connection ended");
                }
                break;
            }
            _ = connection.evict.notified() => break,
            _ = stopping.wait_for(|stop| *stop), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = watchdog.tick() => {
                let quiet = connection.quiet_for();
                if connection.busy() {
                    if quiet > limits.request_timeout {
                        tracing::debug!(?quiet, "answer made no progress: closing");
                        break;
                    }
                } else if quiet > limits.idle_timeout {
                    break;
                }
            }
        }
    }
    registry.close(&connection);
}
