//! What every integrity check is configured with: how often it examines the whole history,
//! the gate that runs them one at a time, and the plan log tests read.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;

/// Settings shared by the integrity checks.
#[derive(Clone, Debug)]
pub struct IntegritySettings {
    /// How often the whole history is examined again (`--integrity.full-interval`).
    pub full_interval: Duration,
    /// How long a run keeps examining older windows of a pass over the history after its
    /// first window (a quarter of `--integrity.timeout`), so a mainnet-sized first pass is
    /// spread over several runs instead of holding one transaction for an hour.
    pub pass_budget: Duration,
    /// Integrity checks holding the same gate run one at a time, and take a connection only
    /// once they hold it, so that a long full run never starves the tip check of connections.
    pub gate: Option<Arc<Semaphore>>,
    /// When set, every query is also `EXPLAIN`ed and its plan recorded (tests).
    pub plans: Option<PlanLog>,
}

impl IntegritySettings {
    /// Settings with `full_interval`, a pass budget of 30 s, no gate and no plan log.
    pub fn new(full_interval: Duration) -> IntegritySettings {
        IntegritySettings {
            full_interval,
            pass_budget: Duration::from_secs(30),
            gate: None,
            plans: None,
        }
    }

    /// Keeps examining older windows of a pass for `budget` per run.
    pub fn pass_budget(mut self, budget: Duration) -> IntegritySettings {
        self.pass_budget = budget;
        self
    }

    /// Runs the check under `gate`.
    pub fn gated(mut self, gate: Arc<Semaphore>) -> IntegritySettings {
        self.gate = Some(gate);
        self
    }

    /// Records the plan of every query in `plans`.
    pub fn explain_into(mut self, plans: PlanLog) -> IntegritySettings {
        self.plans = Some(plans);
        self
    }
}

/// The plans of the queries a check ran, as `EXPLAIN` printed them with the real parameters.
#[derive(Clone, Debug, Default)]
pub struct PlanLog(Arc<Mutex<Vec<QueryPlan>>>);

/// One query and its plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryPlan {
    /// The SQL text.
    pub sql: String,
    /// `EXPLAIN` output, one plan line per line.
    pub plan: String,
}

impl PlanLog {
    /// Everything recorded so far.
    pub fn plans(&self) -> Vec<QueryPlan> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn push(&self, plan: QueryPlan) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(plan);
    }
}
