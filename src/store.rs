//! The latest result of every check: what scrapes, `/health`, `/tip` and the agent read.
//!
//! Writers are the scheduler's check tasks (one per check, a few times a minute) and the peer
//! poller; readers are scrapes, `/health`, `/tip` and the agent (any number, any rate). Each
//! check has its own slot behind an uncontended `RwLock`, created when the check is
//! registered and fixed before anything is served, and readers take cheap snapshots
//! (findings are shared through `Arc`), so a scrape never waits on the database and never
//! sees half a result. The store also carries the [`Clock`] that stamps results and that
//! readers compare them with.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::checks::{Cadence, CheckError, CheckName, Findings, Outcome, Tip, Verdict};
use crate::clock::Clock;

/// One check's latest state.
#[derive(Clone, Debug, Default)]
pub struct CheckState {
    /// Outcome of the last finished run.
    pub last_outcome: Option<Outcome>,
    /// Error of the last run, when it failed.
    pub last_error: Option<CheckError>,
    /// Duration of the last finished run.
    pub last_duration: Option<Duration>,
    /// Unix time at which the last successful run finished.
    pub last_success_unix: Option<f64>,
    /// Finished runs by outcome, indexed like [`Outcome::ALL`].
    pub runs: [u64; 3],
    /// Whether the check applies to this database (`None` until a run succeeds).
    pub applicable: Option<bool>,
    /// Why it does not apply.
    pub not_applicable_reason: Option<String>,
    /// Findings of the last successful applicable run. Kept when a later run fails: they are
    /// the last known truth, and `dbsync_check_success` / the last-success timestamp say how
    /// old it is.
    pub findings: Option<Arc<Findings>>,
}

impl CheckState {
    /// Whether the last finished run succeeded.
    pub fn succeeded(&self) -> bool {
        self.last_outcome == Some(Outcome::Success)
    }
}

/// A check's slot.
#[derive(Debug)]
pub struct CheckEntry {
    /// Which check.
    pub name: CheckName,
    /// Its interval and timeout.
    pub cadence: Cadence,
    state: RwLock<CheckState>,
}

/// A snapshot of one entry, taken for a scrape.
#[derive(Clone, Debug)]
pub struct CheckSnapshot {
    /// Which check.
    pub name: CheckName,
    /// Its interval and timeout.
    pub cadence: Cadence,
    /// Its state at snapshot time.
    pub state: CheckState,
}

/// What the last poll learnt about one peer.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerStatus {
    /// The peer's base URL (the `peer` label).
    pub peer: String,
    /// Whether its last poll answered with a tip.
    pub up: bool,
    /// Its tip height from the last successful poll.
    pub block_no: Option<i64>,
    /// Its tip slot from the last successful poll.
    pub slot_no: Option<i64>,
    /// Its network from the last successful poll.
    pub network: Option<String>,
}

impl PeerStatus {
    /// A peer that gave no usable tip at its last poll.
    pub fn down(peer: String) -> PeerStatus {
        PeerStatus {
            peer,
            up: false,
            block_no: None,
            slot_no: None,
            network: None,
        }
    }
}

/// The latest results of all checks.
#[derive(Debug)]
pub struct Store {
    entries: Vec<CheckEntry>,
    /// Peers, replaced as a whole after each poll round.
    peers: RwLock<Arc<Vec<PeerStatus>>>,
    /// Bumped by every write, so readers can tell whether anything changed.
    generation: AtomicU64,
    clock: Clock,
}

impl Store {
    /// A store with an empty slot for each scheduled check, stamping results with `clock`.
    ///
    /// # Panics
    /// If a check is listed twice: each check has exactly one slot.
    pub fn new(clock: Clock, checks: impl IntoIterator<Item = (CheckName, Cadence)>) -> Store {
        let mut entries: Vec<CheckEntry> = checks
            .into_iter()
            .map(|(name, cadence)| CheckEntry {
                name,
                cadence,
                state: RwLock::new(CheckState::default()),
            })
            .collect();
        entries.sort_by_key(|entry| entry.name);
        if let Some(twice) = entries.windows(2).find(|pair| pair[0].name == pair[1].name) {
            panic!("check {} is registered twice", twice[0].name);
        }
        Store {
            entries,
            peers: RwLock::default(),
            generation: AtomicU64::new(0),
            clock,
        }
    }

    /// The clock results are stamped with.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Now, by the store's clock (unix seconds).
    pub fn now_unix(&self) -> f64 {
        self.clock.now_unix()
    }

    fn entry(&self, name: CheckName) -> Option<&CheckEntry> {
        self.entries.iter().find(|entry| entry.name == name)
    }

    /// Records a finished run, stamped with the store's clock. Only registered checks run,
    /// so every name has a slot.
    pub fn record(&self, name: CheckName, result: Result<Verdict, CheckError>, duration: Duration) {
        let now_unix = self.clock.now_unix();
        let Some(entry) = self.entry(name) else {
            debug_assert!(false, "check {name} has no slot");
            tracing::error!(check = %name, "a check without a store slot ran");
            return;
        };
        let mut state = entry.state.write().unwrap_or_else(PoisonError::into_inner);
        let outcome = Outcome::of(&result);
        state.last_outcome = Some(outcome);
        state.last_duration = Some(duration);
        let index = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        state.runs[index] += 1;
        match result {
            Ok(Verdict::Found(findings)) => {
                state.last_error = None;
                state.last_success_unix = Some(now_unix);
                state.applicable = Some(true);
                state.not_applicable_reason = None;
                state.findings = Some(Arc::new(findings));
            }
            Ok(Verdict::NotApplicable(reason)) => {
                state.last_error = None;
                state.last_success_unix = Some(now_unix);
                state.applicable = Some(false);
                state.not_applicable_reason = Some(reason);
                state.findings = None;
            }
            Err(error) => state.last_error = Some(error),
        }
        drop(state);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Snapshot of every check, in name order.
    pub fn snapshot(&self) -> Vec<CheckSnapshot> {
        self.entries
            .iter()
            .map(|entry| CheckSnapshot {
                name: entry.name,
                cadence: entry.cadence,
                state: entry
                    .state
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            })
            .collect()
    }

    /// One check's state (`None` when the check is not scheduled).
    pub fn state(&self, name: CheckName) -> Option<CheckState> {
        self.entry(name).map(|entry| {
            entry
                .state
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
    }

    /// The last tip read, with whether the last tip check succeeded.
    pub fn tip(&self) -> Option<(Tip, bool)> {
        let state = self.state(CheckName::Tip)?;
        match state.findings.as_deref() {
            Some(Findings::Tip(tip)) => Some((tip.clone(), state.succeeded())),
            _ => None,
        }
    }

    /// Replaces the peer list.
    pub fn set_peers(&self, peers: Vec<PeerStatus>) {
        *self.peers.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(peers);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// A number that changes whenever a check result or the peer list changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The peers as last polled.
    pub fn peers(&self) -> Arc<Vec<PeerStatus>> {
        self.peers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the tip has been read at least once (readiness).
    pub fn ready(&self) -> bool {
        self.state(CheckName::Tip)
            .is_some_and(|state| state.findings.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::RollbackStats;

    fn cadence() -> Cadence {
        Cadence {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_failed_run_keeps_the_last_findings_and_counts_the_outcome() {
        let clock = Clock::pinned(100.0);
        let store = Store::new(clock.clone(), [(CheckName::Rollback, cadence())]);
        let stats = RollbackStats {
            total: 1,
            last_depth: 2,
        };
        store.record(
            CheckName::Rollback,
            Ok(Verdict::Found(Findings::Rollback(stats.clone()))),
            Duration::from_millis(3),
        );
        clock.set(105.0);
        store.record(
            CheckName::Rollback,
            Err(CheckError::Timeout(
                "canceling statement due to statement timeout".into(),
            )),
            Duration::from_secs(1),
        );
        let state = store.state(CheckName::Rollback).unwrap();
        assert_eq!(state.runs, [1, 0, 1]);
        assert_eq!(state.last_outcome, Some(Outcome::Timeout));
        assert_eq!(state.last_success_unix, Some(100.0));
        assert_eq!(state.findings.as_deref(), Some(&Findings::Rollback(stats)));
    }

    #[test]
    #[should_panic(expected = "check tip is registered twice")]
    fn a_check_has_one_slot() {
        Store::new(
            Clock::system(),
            [(CheckName::Tip, cadence()), (CheckName::Tip, cadence())],
        );
    }

    #[test]
    fn not_applicable_drops_findings() {
        let store = Store::new(Clock::pinned(1.0), [(CheckName::Rollback, cadence())]);
        store.record(
            CheckName::Rollback,
            Ok(Verdict::Found(Findings::Rollback(RollbackStats::default()))),
            Duration::ZERO,
        );
        store.record(
            CheckName::Rollback,
            Ok(Verdict::NotApplicable("why".into())),
            Duration::ZERO,
        );
        let state = store.state(CheckName::Rollback).unwrap();
        assert_eq!(state.applicable, Some(false));
        assert!(state.findings.is_none());
        assert!(!store.ready());
    }
}
