//! Database access: the small, fixed, read-only connection pool and the schema probe.
//!
//! Every connection starts with `application_name=dbsync-exporter`, `jit=off`,
//! `default_transaction_read_only=on`, `statement_timeout` and `lock_timeout` as startup
//! options, so they hold for the connection's whole life (they survive `RESET ALL`). Each
//! check run then happens in a read-only transaction with its own `SET LOCAL` timeouts.

mod error;
mod schema;
mod tls;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Hook, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::sync::Mutex;
use tokio_postgres_rustls::MakeRustlsConnect;

pub use error::CheckError;
pub use schema::{release_for_stage_two, InstantRewardTable, Schema};

use crate::config::Config;

/// Application name every exporter session carries (visible in `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "dbsync-exporter";

/// The pool plus what we know about the schema behind it.
pub struct Database {
    pool: Pool,
    /// Last successful probe; `None` until one succeeds.
    schema: Mutex<Option<Arc<Schema>>>,
    /// Set by the pool whenever it opens a connection: a reconnect may mean a restored or
    /// upgraded database, so the schema is probed again before the next check runs.
    reprobe: Arc<AtomicBool>,
    lock_timeout: Duration,
    /// The TLS connector, also for cancel requests.
    tls: MakeRustlsConnect,
}

/// Pool occupancy, read at scrape time from the pool's own counters (no database I/O).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open and idle.
    pub idle: usize,
    /// Connections checked out by a running check.
    pub active: usize,
    /// Pool size limit.
    pub max: usize,
}

/// Something that knows the pool's occupancy without touching the database (the metrics read
/// it at scrape time; tests give a fixed one).
pub trait PoolStatusSource: Send + Sync {
    /// Occupancy now.
    fn pool_status(&self) -> PoolStatus;
}

impl PoolStatusSource for Database {
    fn pool_status(&self) -> PoolStatus {
        self.status()
    }
}

impl PoolStatusSource for PoolStatus {
    fn pool_status(&self) -> PoolStatus {
        *self
    }
}

/// A pooled connection together with the schema it was probed against.
pub struct Session {
    /// The pooled connection.
    pub client: Object,
    /// What the probe found.
    pub schema: Arc<Schema>,
}

impl Database {
    /// Builds the pool. No connection is opened yet: a database that is down at start-up is
    /// a status reported by the checks, not a start-up failure.
    pub fn new(config: &Config) -> Result<Database, CheckError> {
        let mut pg = config.db.connection.clone();
        // Every statement the server runs for us is capped, whichever check issued it; each
        // check lowers it further with SET LOCAL.
        let statement_cap = config.max_check_timeout();
        let user_options = pg.get_options().unwrap_or_default().to_owned();
        // JIT off (before the user's options, which may turn it back on): every statement we
        // send is a short index-driven read that the planner often costs above
        // `jit_above_cost`, and compiling it took longer than running it (on the mainnet-scale
        // benchmark database, a 65 k-transaction epoch of `tx_balance`: 762 ms with JIT,
        // 507 ms without).
        pg.options(format!(
            "-c jit=off {user_options} -c default_transaction_read_only=on -c statement_timeout={} -c lock_timeout={}",
            statement_cap.as_millis(),
            config.db.lock_timeout.as_millis(),
        ));
        pg.application_name(APPLICATION_NAME);
        pg.connect_timeout(config.db.connect_timeout);
        pg.keepalives(true);

        let tls = tls::connector(&config.db.tls)
            .map_err(|error| CheckError::Unavailable(format!("TLS to PostgreSQL: {error}")))?;
        let reprobe = Arc::new(AtomicBool::new(true));
        let flag = reprobe.clone();
        let manager = Manager::from_config(
            pg,
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.db.pool_size)
            .wait_timeout(Some(config.db.connect_timeout))
            .create_timeout(Some(config.db.connect_timeout))
            .recycle_timeout(Some(config.db.connect_timeout))
            .runtime(Runtime::Tokio1)
            .post_create(Hook::sync_fn(move |_, _| {
                flag.store(true, Ordering::Relaxed);
                Ok(())
            }))
            .build()
            .map_err(|error| CheckError::Unavailable(format!("cannot build the pool: {error}")))?;
        Ok(Database {
            pool,
            schema: Mutex::new(None),
            reprobe,
            lock_timeout: config.db.lock_timeout,
            tls,
        })
    }

    /// Checks out a connection and makes sure the schema has been probed on it; a probe
    /// runs under `timeout` like the check that needs it.
    pub async fn session(&self, timeout: Duration) -> Result<Session, CheckError> {
        let client = self.pool.get().await?;
        let schema = self.schema_for(&client, false, timeout).await?;
        Ok(Session { client, schema })
    }

    /// Probes the schema again on this connection, whatever the cache says.
    pub async fn refresh_schema(
        &self,
        session: &mut Session,
        timeout: Duration,
    ) -> Result<(), CheckError> {
        session.schema = self.schema_for(&session.client, true, timeout).await?;
        Ok(())
    }

    async fn schema_for(
        &self,
        client: &Object,
        force: bool,
        timeout: Duration,
    ) -> Result<Arc<Schema>, CheckError> {
        let mut cached = self.schema.lock().await;
        let stale = self.reprobe.swap(false, Ordering::Relaxed);
        match (&*cached, stale || force) {
            (Some(schema), false) => Ok(schema.clone()),
            _ => match self.bounded_probe(client, timeout).await {
                Ok(schema) => {
                    let schema = Arc::new(schema);
                    if cached.as_deref() != Some(&schema) {
                        tracing::info!(
                            network = %schema.network.as_deref().unwrap_or("unknown"),
                            release = %schema.release,
                            stage_two = schema.stage_two,
                            "probed the db-sync schema"
                        );
                    }
                    *cached = Some(schema.clone());
                    Ok(schema)
                }
                Err(error) => {
                    *cached = None;
                    // Probe again next time rather than trusting a failed probe.
                    self.reprobe.store(true, Ordering::Relaxed);
                    Err(error)
                }
            },
        }
    }

    /// The probe in a read-only transaction with the check's own server-side timeouts: a
    /// lock on a catalog or `meta` cannot hold it (and every check waiting for it) longer.
    async fn bounded_probe(
        &self,
        client: &Object,
        timeout: Duration,
    ) -> Result<Schema, CheckError> {
        client
            .batch_execute(&format!(
                "BEGIN READ ONLY; SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}",
                timeout.as_millis().max(1),
                self.lock_timeout.min(timeout).as_millis().max(1),
            ))
            .await?;
        let probed = Schema::probe(client).await;
        let end = if probed.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = client.batch_execute(end).await;
        let schema = probed?;
        ended?;
        Ok(schema)
    }

    /// The schema from the last successful probe, if any.
    pub async fn schema(&self) -> Option<Arc<Schema>> {
        self.schema.lock().await.clone()
    }

    /// The connector sessions use (cancel requests go the same way).
    pub fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }

    /// Lock wait limit the checks use.
    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }

    /// Pool occupancy from the pool's counters.
    pub fn status(&self) -> PoolStatus {
        let status = self.pool.status();
        PoolStatus {
            idle: status.available,
            active: status.size.saturating_sub(status.available),
            max: status.max_size,
        }
    }

    /// The underlying pool (tests use it to prove the session guards).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}
