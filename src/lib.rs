//! dbsync-exporter: a Prometheus exporter and health sidecar for cardano-db-sync.
//!
//! It reads the db-sync PostgreSQL database directly, read-only, runs its checks in the
//! background on their own intervals, and serves the latest results to any number of
//! scrapers (and load balancers) without touching the database again.
//!
//! # Layout
//!
//! - [`config`]: flags and `DBSYNC_EXPORTER_*` variables, validated into a [`Config`].
//! - [`logging`], [`shutdown`]: process plumbing.
//! - [`db`]: the small read-only connection pool and the schema probe.
//! - [`chain`]: network constants and slot arithmetic.
//! - [`checks`]: one file per check; each returns typed findings.
//! - [`scheduler`]: one task per check, its interval, timeout and jitter.
//! - [`store`]: the latest result of every check.
//! - [`metrics`]: encodes the store for Prometheus at scrape time.
//! - [`health`]: the policy that turns the store into up / drain / down.
//! - [`http`]: the axum router.
//!
//! Data flow: `Config` → [`db::Database`] → [`scheduler::Scheduler`] writes the
//! [`store::Store`] → [`http`] handlers and the [`metrics`] collector read it.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod chain;
pub mod checks;
pub mod config;
pub mod db;
pub mod health;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod scheduler;
pub mod shutdown;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Config;

use checks::{Cadence, CheckError, CheckName, InfoCheck, RollbackCheck, TipCheck};
use db::Database;
use health::HealthPolicy;
use scheduler::Scheduler;
use store::Store;

/// Runs the exporter on an already-bound listener until `shutdown` resolves, then stops
/// the checks between runs and drains in-flight requests.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let db = Arc::new(Database::new(&config).map_err(RunError::Database)?);
    let fast = |interval| Cadence {
        interval,
        timeout: config.check_timeout,
    };
    let schedule = [
        (CheckName::Tip, fast(config.tip_interval)),
        (CheckName::Rollback, fast(config.tip_interval)),
        (CheckName::Info, fast(config.info_interval)),
    ];
    let store = Arc::new(Store::new(schedule));
    let policy = Arc::new(HealthPolicy::new(&config.health));
    let registry = Arc::new(metrics::registry(store.clone(), db.clone(), policy.clone()));

    let (stop, stopped) = watch::channel(false);
    let mut scheduler = Scheduler::new(db.clone(), store.clone(), stopped);
    scheduler.spawn(TipCheck::new(config.chain_override.clone()), schedule[0].1);
    scheduler.spawn(RollbackCheck::new(), schedule[1].1);
    scheduler.spawn(InfoCheck, schedule[2].1);

    let app = http::router(http::AppState {
        store,
        registry,
        policy,
    });
    tracing::info!(address = %listener.local_addr().map_err(RunError::Serve)?, "serving /metrics");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await;
    scheduler.join().await;
    served.map_err(RunError::Serve)
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
}
