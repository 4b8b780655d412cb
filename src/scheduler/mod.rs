//! Runs each check on its own interval, in the background, and records the results.
//!
//! Checks are registered once ([`Scheduler::spawn`], called from [`crate::checks::schedule`]);
//! registering a check creates its store slot, and [`Scheduler::start`] freezes the slots
//! into the [`Store`] before anything is served, so no check can run without a place for its
//! results.
//!
//! One task per check: a run starts only after the previous one finished, so a slow database
//! never sees a pile-up of the same query (a late run delays the next, never bunches them);
//! a failed run is retried after 1 s, doubling up to the interval. Starts are
//! jittered so that the checks (and a fleet of exporters restarted together) do not hit the
//! database in lockstep. The [`Runner`] does the database side of a run (a read-only
//! transaction whose server-side timeouts are the check's own); the task adds a client-side
//! cap a little longer than the check's timeout as the backstop for a connection that hangs,
//! and catches a panicking check, which counts as an error run and keeps its schedule.

mod database;

use std::any::Any;
use std::future::Future;
use std::hash::BuildHasher;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use crate::checks::{Cadence, Check, CheckError, CheckName, Registry, Verdict};
use crate::clock::Clock;
use crate::store::Store;

/// Extra time the client gives the server to report its own timeout before giving up.
pub const CLIENT_GRACE: Duration = Duration::from_secs(2);
/// Longest start-up jitter.
const MAX_JITTER: Duration = Duration::from_secs(2);
/// First retry after a failed run; it doubles up to the check's interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// The database side of one run: in production a pooled, read-only transaction
/// ([`crate::db::Database`]); in tests a stand-in.
pub trait Runner: Send + Sync + 'static {
    /// One run of `check` with `cadence`'s timeout. The scheduler drops the future when the
    /// client-side cap expires or on shutdown, so dropping it must leave nothing behind.
    fn run<'a, C: Check>(
        &'a self,
        check: &'a mut C,
        cadence: Cadence,
    ) -> impl Future<Output = Result<Verdict, CheckError>> + Send + 'a;
}

/// Starts a registered check's task once the store exists.
type Start = Box<dyn FnOnce(Arc<Store>, watch::Receiver<bool>) -> BoxFuture<'static, ()> + Send>;

/// Collects the checks; [`Scheduler::start`] runs them.
pub struct Scheduler<R> {
    runner: Arc<R>,
    clock: Clock,
    slots: Vec<(CheckName, Cadence)>,
    starts: Vec<(CheckName, Start)>,
}

/// The running check tasks.
pub struct Running {
    tasks: JoinSet<()>,
}

impl<R: Runner> Scheduler<R> {
    /// A scheduler whose runs go through `runner` and whose results are stamped by `clock`.
    pub fn new(runner: Arc<R>, clock: Clock) -> Scheduler<R> {
        Scheduler {
            runner,
            clock,
            slots: Vec::new(),
            starts: Vec::new(),
        }
    }

    /// Registers `check` on `cadence`, with its store slot.
    pub fn spawn<C: Check>(&mut self, check: C, cadence: Cadence) {
        let name = check.name();
        self.slots.push((name, cadence));
        let runner = self.runner.clone();
        let start: Start = Box::new(move |store, shutdown| {
            let task = CheckTask {
                check,
                cadence,
                runner,
                store,
                shutdown,
            };
            task.run().boxed()
        });
        self.starts.push((name, start));
    }

    /// Freezes the registered slots into the store and starts every check; the tasks stop
    /// when `shutdown` turns true (or its sender is dropped).
    ///
    /// # Panics
    /// If a check was registered twice.
    pub fn start(self, shutdown: watch::Receiver<bool>) -> (Arc<Store>, Running) {
        let store = Arc::new(Store::new(self.clock, self.slots));
        let mut tasks = JoinSet::new();
        for (name, start) in self.starts {
            tasks.spawn(
                start(store.clone(), shutdown.clone())
                    .instrument(tracing::info_span!("check", check = %name)),
            );
        }
        (store, Running { tasks })
    }
}

impl<R: Runner> Registry for Scheduler<R> {
    fn register<C: Check>(&mut self, check: C, cadence: Cadence) {
        self.spawn(check, cadence);
    }
}

impl Running {
    /// Waits until every task has stopped (after shutdown was signalled).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

struct CheckTask<C, R> {
    check: C,
    cadence: Cadence,
    runner: Arc<R>,
    store: Arc<Store>,
    shutdown: watch::Receiver<bool>,
}

impl<C: Check, R: Runner> CheckTask<C, R> {
    async fn run(mut self) {
        let name = self.check.name();
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(jitter(name, self.cadence.interval)) => {}
            _ = stopped(&mut shutdown) => return,
        }
        let mut due = Instant::now();
        let mut retry = FIRST_RETRY;
        let mut last: Option<Result<(), String>> = None;
        loop {
            tokio::select! {
                biased;
                _ = stopped(&mut shutdown) => break,
                _ = tokio::time::sleep_until(due) => {}
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
            // A run starts an interval after the previous one started (at once when that one
            // ran longer); after a failure it is retried sooner, 1 s doubling up to the
            // interval, so a short outage does not leave results stale for a whole interval.
            let now = Instant::now();
            due = if result.is_ok() {
                retry = FIRST_RETRY;
                (due + self.cadence.interval).max(now)
            } else {
                let wait = retry.min(self.cadence.interval);
                retry = retry.saturating_mul(2);
                now + wait
            };
            self.store.record(name, result, elapsed);
        }
        tracing::debug!("stopped");
    }

    /// One run, capped on the client side and with a panic turned into an error.
    async fn run_once(&mut self) -> Result<Verdict, CheckError> {
        let cap = self.cadence.timeout + CLIENT_GRACE;
        let run = AssertUnwindSafe(self.runner.run(&mut self.check, self.cadence)).catch_unwind();
        match tokio::time::timeout(cap, run).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => {
                let message = panic_message(panic.as_ref());
                tracing::error!(panic = %message, "the check panicked; it keeps its schedule");
                Err(CheckError::Internal(format!(
                    "the check panicked: {message}"
                )))
            }
            Err(_) => Err(CheckError::Timeout(format!("no answer within {cap:?}"))),
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
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
