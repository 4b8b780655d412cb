//! Runs each check on its own interval, in the background, and records the results.
//!
//! One task per check: a run starts only after the previous one finished, so a slow database
//! never sees a pile-up of the same query (missed ticks are delayed, not bunched). Starts are
//! jittered so that the checks (and a fleet of exporters restarted together) do not hit the
//! database in lockstep. Each run gets a read-only transaction whose `statement_timeout`
//! and `lock_timeout` are the check's own, so the *server* stops a slow query; a client-side
//! cap a little longer than that is the backstop for a connection that hangs, and cancels
//! the query on the server before giving the connection up.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use deadpool_postgres::Object;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_postgres::NoTls;
use tracing::Instrument;

use crate::checks::{Cadence, Check, CheckError, CheckName, Context, Verdict};
use crate::db::{Database, Session};
use crate::store::Store;

/// Extra time the client gives the server to report its own timeout before giving up.
const CLIENT_GRACE: Duration = Duration::from_secs(2);
/// Longest start-up jitter.
const MAX_JITTER: Duration = Duration::from_secs(2);

/// Owns the check tasks.
pub struct Scheduler {
    db: Arc<Database>,
    store: Arc<Store>,
    shutdown: watch::Receiver<bool>,
    tasks: JoinSet<()>,
}

impl Scheduler {
    /// A scheduler that stops its tasks when `shutdown` turns true (or its sender is dropped).
    pub fn new(db: Arc<Database>, store: Arc<Store>, shutdown: watch::Receiver<bool>) -> Scheduler {
        Scheduler {
            db,
            store,
            shutdown,
            tasks: JoinSet::new(),
        }
    }

    /// Starts `check` on `cadence`.
    pub fn spawn<C: Check>(&mut self, check: C, cadence: Cadence) {
        let name = check.name();
        let task = CheckTask {
            check,
            cadence,
            db: self.db.clone(),
            store: self.store.clone(),
            shutdown: self.shutdown.clone(),
        };
        self.tasks.spawn(
            task.run()
                .instrument(tracing::info_span!("check", check = %name)),
        );
    }

    /// Waits until every task has stopped (after shutdown was signalled).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

struct CheckTask<C> {
    check: C,
    cadence: Cadence,
    db: Arc<Database>,
    store: Arc<Store>,
    shutdown: watch::Receiver<bool>,
}

impl<C: Check> CheckTask<C> {
    async fn run(mut self) {
        let name = self.check.name();
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(jitter(name, self.cadence.interval)) => {}
            _ = stopped(&mut shutdown) => return,
        }
        let mut ticker = tokio::time::interval(self.cadence.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last: Option<Result<(), String>> = None;
        loop {
            tokio::select! {
                biased;
                _ = stopped(&mut shutdown) => break,
                _ = ticker.tick() => {}
            }
            // Gated checks (the integrity checks) queue here, before taking a connection, so
            // that together they hold at most one; the wait is not part of their run time.
            let _permit = match self.check.gate() {
                Some(gate) => tokio::select! {
                    permit = gate.acquire_owned() => permit.ok(),
                    _ = stopped(&mut shutdown) => break,
                },
                None => None,
            };
            let started = Instant::now();
            let result = tokio::select! {
                result = self.run_once() => result,
                _ = stopped(&mut shutdown) => break,
            };
            let elapsed = started.elapsed();
            log_transition(&mut last, &result, elapsed);
            self.store.record(name, result, elapsed, unix_now());
        }
        tracing::debug!("stopped");
    }

    async fn run_once(&mut self) -> Result<Verdict, CheckError> {
        let mut session = self.db.session().await?;
        if self.check.needs_fresh_schema() {
            self.db.refresh_schema(&mut session).await?;
        }
        let cancel = session.client.cancel_token();
        let cap = self.cadence.timeout + CLIENT_GRACE;
        let lock_timeout = self.db.lock_timeout().min(self.cadence.timeout);
        match tokio::time::timeout(
            cap,
            run_in_transaction(
                &mut self.check,
                &mut session,
                self.cadence.timeout,
                lock_timeout,
            ),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => {
                // The server did not answer in time: stop the query there, and do not hand
                // a connection in an unknown state back to the pool.
                tokio::spawn(async move {
                    let _ = cancel.cancel_query(NoTls).await;
                });
                drop(Object::take(session.client));
                Err(CheckError::Timeout(format!("no answer within {cap:?}")))
            }
        }
    }
}

async fn run_in_transaction<C: Check>(
    check: &mut C,
    session: &mut Session,
    statement_timeout: Duration,
    lock_timeout: Duration,
) -> Result<Verdict, CheckError> {
    let schema = session.schema.clone();
    let tx = session
        .client
        .build_transaction()
        .read_only(true)
        .start()
        .await?;
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}",
        statement_timeout.as_millis().max(1),
        lock_timeout.as_millis().max(1),
    ))
    .await?;
    let verdict = check
        .run(Context {
            tx: &tx,
            schema: &schema,
        })
        .await?;
    tx.commit().await?;
    Ok(verdict)
}

/// Logs failures when they start and when they end, not on every run, so a database that is
/// down for an hour does not fill the log.
fn log_transition(
    last: &mut Option<Result<(), String>>,
    result: &Result<Verdict, CheckError>,
    elapsed: Duration,
) {
    let now = match result {
        Ok(Verdict::Found(_)) => Ok(()),
        Ok(Verdict::NotApplicable(reason)) => Err(format!("not applicable: {reason}")),
        Err(error) => Err(error.to_string()),
    };
    if last.as_ref() != Some(&now) {
        match (&now, result) {
            (Ok(()), _) if last.is_some() => tracing::info!(?elapsed, "check succeeded again"),
            (Ok(()), _) => tracing::debug!(?elapsed, "first run succeeded"),
            (Err(reason), Ok(_)) => {
                tracing::info!(%reason, "check does not apply to this database")
            }
            (Err(reason), Err(_)) => tracing::warn!(error = %reason, "check failed"),
        }
    }
    *last = Some(now);
}

/// Resolves once shutdown is requested (or the sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A random delay of up to a tenth of the interval (at most [`MAX_JITTER`]).
fn jitter(name: CheckName, interval: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new().hash_one(name.as_str());
    let max = (interval / 10).min(MAX_JITTER);
    max.mul_f64((random % 1000) as f64 / 1000.0)
}

/// Wall-clock unix seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_tenth_of_the_interval() {
        for _ in 0..100 {
            assert!(jitter(CheckName::Tip, Duration::from_secs(5)) < Duration::from_millis(500));
            assert!(jitter(CheckName::Info, Duration::from_secs(600)) < MAX_JITTER);
        }
    }
}
