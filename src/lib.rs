//! dbsync-exporter: a Prometheus exporter and health sidecar for cardano-db-sync.
//!
//! It reads the db-sync PostgreSQL database directly, read-only, runs its checks in the
//! background on their own intervals, and serves the latest results to any number of
//! scrapers (and load balancers) without touching the database again.
//!
//! # Layout
//!
//! Each layer uses only the layers listed before it:
//!
//! - [`chain`]: network constants and slot arithmetic; [`clock`]: the injectable wall clock;
//!   [`shutdown`]: the stop signal.
//! - [`config`]: flags and `DBSYNC_EXPORTER_*` variables (defaults written once, in the flag
//!   definitions), validated into a [`Config`]; [`logging`].
//! - [`db`]: the small read-only connection pool, the schema probe, and [`db::CheckError`],
//!   the classes every database failure falls into.
//! - [`checks`]: one file per check, each returning typed findings, and
//!   [`checks::schedule`], the one list of checks.
//! - [`store`]: the latest result of every check (one slot per registered check) and of the
//!   peers, stamped by the clock.
//! - [`scheduler`]: one task per registered check (interval, timeout, jitter, a caught
//!   panic), writing the store; [`peers`]: polls other providers' sidecars and writes the
//!   store too.
//! - [`health`]: the policy that turns the store into up / drain / down.
//! - [`metrics`] (reads the store and the pool's status), [`http`] (the axum router) and
//!   [`agent`] (the HAProxy agent-check listener): what scrapers and balancers see.
//! - [`file_sd`]: the `file-sd` subcommand (Koios topology → Prometheus file_sd), a tool
//!   beside the layers that uses none of them.
//!
//! Data flow: `Config` → [`db::Database`] → [`checks`] run by the [`scheduler::Scheduler`]
//! (and the [`peers::PeerPoller`]) → [`store::Store`] → [`health::HealthPolicy`] →
//! [`metrics`] / [`http`] / [`agent`]. Scrapes never touch the database.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accept;
pub mod agent;
pub mod build_info;
pub mod chain;
pub mod checks;
pub mod clock;
pub mod config;
pub mod db;
pub mod error_text;
pub mod file_sd;
pub mod health;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod peers;
pub mod scheduler;
pub mod shutdown;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use build_info::{REVISION, RUSTC_VERSION};
pub use config::Config;

use clock::Clock;
use db::{CheckError, Database};
use health::HealthPolicy;
use peers::PeerPoller;
use scheduler::Scheduler;
use tracing::Instrument;

/// Runs the exporter on an already-bound HTTP listener until `shutdown` resolves, binding
/// the HAProxy agent listener too when `--agent.listen-address` is set.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let agent = match config.agent.listen_address {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .map_err(|error| RunError::Agent(address, error))?,
        ),
        None => None,
    };
    serve(config, listener, agent, shutdown).await
}

/// Runs the exporter on already-bound listeners until `shutdown` resolves, then stops the
/// background tasks between runs and drains in-flight requests.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    agent_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let db = Arc::new(Database::new(&config).map_err(RunError::Database)?);
    let (stop, stopped) = watch::channel(false);
    let mut scheduler = Scheduler::new(db.clone(), Clock::system());
    checks::schedule(&config, &mut scheduler);
    let (store, checks) = scheduler.start(stopped.clone());
    let policy = Arc::new(HealthPolicy::new(&config.health));
    let exposition = Arc::new(metrics::Exposition::new(
        store.clone(),
        db.clone(),
        Arc::new(metrics::SelfProcess),
        policy.clone(),
    ));

    let mut background = tokio::task::JoinSet::new();
    if PeerPoller::has_peers(&config.peers) {
        let poller =
            PeerPoller::new(config.peers.clone(), store.clone()).map_err(RunError::Peers)?;
        background.spawn(
            poller
                .run(stopped.clone())
                .instrument(tracing::info_span!("peers")),
        );
    }
    if let Some(agent_listener) = agent_listener {
        tracing::info!(address = %agent_listener.local_addr().map_err(RunError::Serve)?, "serving HAProxy agent checks");
        background.spawn(
            agent::serve(
                agent_listener,
                store.clone(),
                policy.clone(),
                config.agent.weight_follows_lag,
                stopped.clone(),
            )
            .instrument(tracing::info_span!("agent")),
        );
    }

    let security = Arc::new(match &config.web.config_file {
        Some(path) => http::Security::from_file(path)
            .map_err(|reason| RunError::WebConfig(path.display().to_string(), reason))?,
        None => http::Security::none(),
    });
    background.spawn(reload_on_hangup(security.clone(), stopped.clone()));
    let state = http::AppState {
        store,
        exposition,
        policy,
        security: security.clone(),
    };
    if let Some(address) = config.web.health_listen_address {
        let health = TcpListener::bind(address)
            .await
            .map_err(|error| RunError::HealthListener(address, error))?;
        tracing::info!(%address, "serving /health without authentication");
        let app = http::health_router(http::AppState {
            security: Arc::new(http::Security::none()),
            ..state.clone()
        });
        let (limits, mut stopped) = (config.web.clone(), stopped.clone());
        background.spawn(async move {
            let stop = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            http::serve(health, app, Arc::new(http::Security::none()), limits, stop).await;
        });
    }
    let app = http::router(state);
    let scheme = if security.current().tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(address = %listener.local_addr().map_err(RunError::Serve)?, scheme, "serving /metrics");
    http::serve(listener, app, security, config.web.clone(), async move {
        shutdown.await;
        let _ = stop.send(true);
    })
    .await;
    // The checks stop between runs or drop the run in flight (its query is cancelled).
    checks.join().await;
    while background.join_next().await.is_some() {}
    Ok(())
}

/// Reads the web config again on every SIGHUP until shutdown.
async fn reload_on_hangup(security: Arc<http::Security>, mut stopped: watch::Receiver<bool>) {
    let mut hangups = shutdown::hangups();
    loop {
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            changed = hangups.changed() => {
                if changed.is_err() {
                    break;
                }
                security.reload();
            }
        }
    }
}

/// Why [`run`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The pool could not be built.
    #[error("database: {0}")]
    Database(CheckError),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Serve(std::io::Error),
    /// The web config file is missing or broken.
    #[error("invalid value for '--web.config.file': {0}: {1}")]
    WebConfig(String, String),
    /// The health listener could not be bound.
    #[error("cannot listen on {0} (--web.health-listen-address): {1}")]
    HealthListener(std::net::SocketAddr, std::io::Error),
    /// The agent listener could not be bound.
    #[error("cannot listen on {0} (--agent.listen-address): {1}")]
    Agent(std::net::SocketAddr, std::io::Error),
    /// The peer HTTP client could not be built.
    #[error("peer client: {0}")]
    Peers(reqwest::Error),
}
