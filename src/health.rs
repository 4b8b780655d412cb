//! The health policy: one function from the latest check results to a routing state, so
//! that `/health`, the metrics and (later) the HAProxy agent can never disagree.

use std::time::Duration;

use serde::Serialize;

use crate::checks::{CheckError, CheckName, Findings};
use crate::config::HealthConfig;
use crate::store::CheckSnapshot;

/// Whether the instance should receive traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Serve.
    Up,
    /// Correct but lagging a little: finish current connections, take no new ones.
    Drain,
    /// Do not serve.
    Down,
}

impl State {
    /// All states, in exposition order.
    pub const ALL: [State; 3] = [State::Up, State::Drain, State::Down];

    /// The `state` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Drain => "drain",
            State::Down => "down",
        }
    }
}

/// Why the instance is not `up`; the `reason` label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The tip check could not reach the database (or it timed out).
    DbUnreachable,
    /// The database is not db-sync.
    NotDbsync,
    /// No tip has been read (yet).
    NoTip,
    /// The tip is older than the maximum age.
    TipStale,
}

impl Reason {
    /// Every reason, in exposition order.
    pub const ALL: [Reason; 4] = [
        Reason::DbUnreachable,
        Reason::NotDbsync,
        Reason::NoTip,
        Reason::TipStale,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::DbUnreachable => "db_unreachable",
            Reason::NotDbsync => "not_dbsync",
            Reason::NoTip => "no_tip",
            Reason::TipStale => "tip_stale",
        }
    }

    /// The state this reason forces.
    fn state(self) -> State {
        State::Down
    }
}

/// An active reason with a human explanation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    /// Machine-readable reason.
    pub reason: Reason,
    /// What exactly is wrong, for people (`/health` body, agent `#` text, logs).
    pub detail: String,
}

/// The verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Routing state.
    pub state: State,
    /// Every active reason, worst first.
    pub reasons: Vec<Finding>,
}

/// Thresholds.
#[derive(Clone, Debug)]
pub struct HealthPolicy {
    /// Oldest acceptable tip.
    pub max_tip_age: Duration,
}

impl HealthPolicy {
    /// The policy configured on the command line.
    pub fn new(config: &HealthConfig) -> HealthPolicy {
        HealthPolicy {
            max_tip_age: config.max_tip_age,
        }
    }

    /// Evaluates the latest results at `now` (unix seconds).
    pub fn evaluate(&self, checks: &[CheckSnapshot], now: f64) -> Report {
        let mut reasons = Vec::new();
        let tip_check = checks.iter().find(|check| check.name == CheckName::Tip);
        let tip = tip_check.and_then(|check| match check.state.findings.as_deref() {
            Some(Findings::Tip(tip)) => Some(tip),
            _ => None,
        });
        match tip_check.and_then(|check| check.state.last_error.as_ref()) {
            Some(CheckError::NotDbSync(why)) => reasons.push(Finding {
                reason: Reason::NotDbsync,
                detail: format!("not a db-sync database: {why}"),
            }),
            Some(CheckError::Data(why)) => reasons.push(Finding {
                reason: Reason::NoTip,
                detail: why.clone(),
            }),
            Some(error) => reasons.push(Finding {
                reason: Reason::DbUnreachable,
                detail: error.to_string(),
            }),
            None => {}
        }
        match tip {
            None if reasons.is_empty() => reasons.push(Finding {
                reason: Reason::NoTip,
                detail: "the tip has not been read yet".into(),
            }),
            None => {}
            Some(tip) => {
                let age = tip.age_seconds(now);
                let max = self.max_tip_age.as_secs_f64();
                if age > max {
                    reasons.push(Finding {
                        reason: Reason::TipStale,
                        detail: format!("tip is {age:.0} s old (max {max:.0} s)"),
                    });
                }
            }
        }
        let state = reasons
            .iter()
            .map(|finding| finding.reason.state())
            .max_by_key(|state| *state as u8)
            .unwrap_or(State::Up);
        Report { state, reasons }
    }
}
