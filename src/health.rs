//! The health policy: one function from the latest results to a routing state, so that
//! `/health`, the metrics and the HAProxy agent can never disagree.
//!
//! - **down** (do not serve): the database is unreachable or not db-sync, no tip, a tip older
//!   than `--health.max-tip-age`, more than `--health.max-fleet-lag-blocks` behind the best
//!   same-network peer, or an integrity fault with `--health.fail-on-integrity`.
//! - **drain** (finish current connections, take no new ones): still correct but lagging a
//!   little (tip older than `--health.drain-tip-age`, or `--health.drain-fleet-lag-blocks`
//!   behind the fleet), or a Koios cache late by grest-poll's thresholds.
//! - **up** otherwise.
//!
//! The worst reason decides; every active reason is reported.

use std::time::Duration;

use serde::Serialize;

use crate::checks::{CheckError, CheckName, Findings, Grest, Tip};
use crate::config::HealthConfig;
use crate::peers::fleet_lag;
use crate::store::{CheckSnapshot, PeerStatus};

/// Koios checks the active stake cache once this share of the epoch has passed
/// (grest-poll.sh: `epochLength / 6`).
const ACTIVE_STAKE_GRACE: f64 = 1.0 / 6.0;

/// Whether the instance should receive traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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
    /// The tip check could not reach the database (or timed out).
    DbUnreachable,
    /// The database is not db-sync.
    NotDbsync,
    /// No tip has been read (yet).
    NoTip,
    /// The tip is older than the maximum age.
    TipStale,
    /// The tip is older than the drain age.
    TipLagging,
    /// Behind the best same-network peer.
    BehindFleet,
    /// An integrity check reports faults (only with `--health.fail-on-integrity`).
    Integrity,
    /// Koios stake distribution cache too far behind the tip.
    GrestStakeDistributionCache,
    /// Koios pool history cache not updated recently.
    GrestPoolHistoryCache,
    /// Koios active stake cache not on the current epoch.
    GrestActiveStakeCache,
}

impl Reason {
    /// Every reason, in exposition order.
    pub const ALL: [Reason; 10] = [
        Reason::DbUnreachable,
        Reason::NotDbsync,
        Reason::NoTip,
        Reason::TipStale,
        Reason::TipLagging,
        Reason::BehindFleet,
        Reason::Integrity,
        Reason::GrestStakeDistributionCache,
        Reason::GrestPoolHistoryCache,
        Reason::GrestActiveStakeCache,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::DbUnreachable => "db_unreachable",
            Reason::NotDbsync => "not_dbsync",
            Reason::NoTip => "no_tip",
            Reason::TipStale => "tip_stale",
            Reason::TipLagging => "tip_lagging",
            Reason::BehindFleet => "behind_fleet",
            Reason::Integrity => "integrity",
            Reason::GrestStakeDistributionCache => "grest_stake_distribution_cache",
            Reason::GrestPoolHistoryCache => "grest_pool_history_cache",
            Reason::GrestActiveStakeCache => "grest_active_stake_cache",
        }
    }
}

/// An active reason, the state it calls for, and a human explanation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    /// Machine-readable reason.
    pub reason: Reason,
    /// The state this reason calls for.
    pub state: State,
    /// What exactly is wrong, for people (`/health` body, agent `#` text, logs).
    pub detail: String,
}

/// The verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Routing state: the worst state any reason calls for.
    pub state: State,
    /// Every active reason, worst first.
    pub reasons: Vec<Finding>,
    /// Blocks behind the best same-network peer, when peers answered.
    pub fleet_lag_blocks: Option<u64>,
}

/// Thresholds.
#[derive(Clone, Debug)]
pub struct HealthPolicy {
    config: HealthConfig,
}

impl HealthPolicy {
    /// The policy configured on the command line.
    pub fn new(config: &HealthConfig) -> HealthPolicy {
        HealthPolicy {
            config: config.clone(),
        }
    }

    /// Evaluates the latest results at `now` (unix seconds).
    pub fn evaluate(&self, checks: &[CheckSnapshot], peers: &[PeerStatus], now: f64) -> Report {
        let mut reasons = Vec::new();
        let findings = |name: CheckName| {
            checks
                .iter()
                .find(|check| check.name == name)
                .and_then(|check| check.state.findings.as_deref())
        };
        let tip_check = checks.iter().find(|check| check.name == CheckName::Tip);
        let tip = match findings(CheckName::Tip) {
            Some(Findings::Tip(tip)) => Some(tip),
            _ => None,
        };
        let mut down = |reason, detail| {
            reasons.push(Finding {
                reason,
                state: State::Down,
                detail,
            })
        };
        match tip_check.and_then(|check| check.state.last_error.as_ref()) {
            Some(CheckError::NotDbSync(why)) => {
                down(Reason::NotDbsync, format!("not a db-sync database: {why}"))
            }
            Some(CheckError::Data(why)) => down(Reason::NoTip, why.clone()),
            Some(error) => down(Reason::DbUnreachable, error.to_string()),
            None if tip.is_none() => down(Reason::NoTip, "the tip has not been read yet".into()),
            None => {}
        }
        let fleet_lag_blocks =
            tip.and_then(|tip| fleet_lag(peers, tip.network.as_deref(), tip.block_no));
        if let Some(tip) = tip {
            self.tip_age(tip, now, &mut reasons);
            if let Some(lag) = fleet_lag_blocks {
                self.fleet(lag, &mut reasons);
            }
            if let Some(Findings::Grest(grest)) = findings(CheckName::Grest) {
                self.grest(grest, tip, now, &mut reasons);
            }
        }
        if self.config.fail_on_integrity {
            for check in checks {
                let faults = check
                    .state
                    .findings
                    .as_deref()
                    .and_then(Findings::integrity_faults)
                    .unwrap_or(0);
                if faults > 0 {
                    reasons.push(Finding {
                        reason: Reason::Integrity,
                        state: State::Down,
                        detail: format!("integrity check {} reports {faults} fault(s)", check.name),
                    });
                }
            }
        }
        reasons.sort_by_key(|finding| std::cmp::Reverse(finding.state));
        let state = reasons.first().map_or(State::Up, |finding| finding.state);
        Report {
            state,
            reasons,
            fleet_lag_blocks,
        }
    }

    fn tip_age(&self, tip: &Tip, now: f64, reasons: &mut Vec<Finding>) {
        let age = tip.age_seconds(now);
        let (max, drain) = (
            secs(self.config.max_tip_age),
            secs(self.config.drain_tip_age),
        );
        if age > max {
            reasons.push(Finding {
                reason: Reason::TipStale,
                state: State::Down,
                detail: format!("tip is {age:.0} s old (max {max:.0} s)"),
            });
        } else if age > drain {
            reasons.push(Finding {
                reason: Reason::TipLagging,
                state: State::Drain,
                detail: format!("tip is {age:.0} s old (drain from {drain:.0} s)"),
            });
        }
    }

    fn fleet(&self, lag: u64, reasons: &mut Vec<Finding>) {
        let (max, drain) = (
            self.config.max_fleet_lag_blocks,
            self.config.drain_fleet_lag_blocks,
        );
        let state = if lag > max {
            State::Down
        } else if lag > drain {
            State::Drain
        } else {
            return;
        };
        reasons.push(Finding {
            reason: Reason::BehindFleet,
            state,
            detail: format!(
                "{lag} blocks behind the best peer (drain above {drain}, down above {max})"
            ),
        });
    }

    fn grest(&self, grest: &Grest, tip: &Tip, now: f64, reasons: &mut Vec<Finding>) {
        let mut drain = |reason, detail| {
            reasons.push(Finding {
                reason,
                state: State::Drain,
                detail,
            })
        };
        let max_lag = self.config.grest_stake_distribution_lag_blocks;
        for (cache, lag) in &grest.lag_blocks {
            if cache == "stake_distribution_lbh" && *lag > max_lag {
                drain(
                    Reason::GrestStakeDistributionCache,
                    format!("stake distribution cache {lag} blocks behind (max {max_lag})"),
                );
            }
        }
        let max_age = secs(self.config.grest_pool_history_max_age);
        match grest
            .last_updates
            .iter()
            .find(|(cache, _)| cache == "pool_history_cache_last_updated")
        {
            Some((_, updated)) if now - updated > max_age => drain(
                Reason::GrestPoolHistoryCache,
                format!(
                    "pool history cache updated {:.0} s ago (max {max_age:.0} s)",
                    now - updated
                ),
            ),
            Some(_) => {}
            None => drain(
                Reason::GrestPoolHistoryCache,
                "pool history cache has never been updated".into(),
            ),
        }
        let past_grace = tip
            .params
            .as_ref()
            .is_some_and(|params| params.epoch_progress(tip.slot_no) > ACTIVE_STAKE_GRACE);
        if past_grace && grest.active_stake_epoch != Some(tip.epoch_no) {
            drain(
                Reason::GrestActiveStakeCache,
                format!(
                    "active stake cache is on epoch {} in epoch {} (past a sixth of the epoch)",
                    grest
                        .active_stake_epoch
                        .map_or_else(|| "none".to_owned(), |epoch| epoch.to_string()),
                    tip.epoch_no
                ),
            );
        }
    }
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::chain::NetworkParams;
    use crate::checks::{Cadence, Outcome};
    use crate::store::CheckState;

    const NOW: f64 = 1_764_000_000.0;

    fn snapshot(
        name: CheckName,
        findings: Option<Findings>,
        error: Option<CheckError>,
    ) -> CheckSnapshot {
        CheckSnapshot {
            name,
            cadence: Cadence {
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(5),
            },
            state: CheckState {
                last_outcome: Some(if error.is_some() {
                    Outcome::Error
                } else {
                    Outcome::Success
                }),
                last_error: error,
                findings: findings.map(Arc::new),
                ..CheckState::default()
            },
        }
    }

    fn tip(age: f64, block_no: i64) -> Findings {
        let params = NetworkParams::known("mainnet").unwrap();
        let time_unix = (NOW - age) as i64;
        let slot_no = params.slot_at(time_unix);
        Findings::Tip(Tip {
            id: block_no,
            block_no,
            slot_no,
            epoch_no: params.epoch_of_slot(slot_no),
            hash: "00".into(),
            time_unix,
            network: Some("mainnet".into()),
            params: Some(params),
        })
    }

    fn peer(block_no: i64, network: &str) -> PeerStatus {
        PeerStatus {
            peer: format!("http://{network}-{block_no}"),
            up: true,
            block_no: Some(block_no),
            network: Some(network.into()),
        }
    }

    fn policy() -> HealthPolicy {
        HealthPolicy::new(&HealthConfig::default())
    }

    fn reasons(report: &Report) -> Vec<(Reason, State)> {
        report.reasons.iter().map(|f| (f.reason, f.state)).collect()
    }

    #[test]
    fn tip_age_bands() {
        let report = policy().evaluate(
            &[snapshot(CheckName::Tip, Some(tip(20.0, 100)), None)],
            &[],
            NOW,
        );
        assert_eq!(report.state, State::Up);
        assert!(report.reasons.is_empty());
        let report = policy().evaluate(
            &[snapshot(CheckName::Tip, Some(tip(240.0, 100)), None)],
            &[],
            NOW,
        );
        assert_eq!(reasons(&report), [(Reason::TipLagging, State::Drain)]);
        assert_eq!(report.state, State::Drain);
        let report = policy().evaluate(
            &[snapshot(CheckName::Tip, Some(tip(601.0, 100)), None)],
            &[],
            NOW,
        );
        assert_eq!(reasons(&report), [(Reason::TipStale, State::Down)]);
        assert_eq!(report.reasons[0].detail, "tip is 601 s old (max 600 s)");
    }

    #[test]
    fn a_failed_tip_check_is_down_even_with_a_fresh_cached_tip() {
        let checks = [snapshot(
            CheckName::Tip,
            Some(tip(1.0, 100)),
            Some(CheckError::Unavailable("connection refused".into())),
        )];
        let report = policy().evaluate(&checks, &[], NOW);
        assert_eq!(report.state, State::Down);
        assert_eq!(reasons(&report), [(Reason::DbUnreachable, State::Down)]);
    }

    #[test]
    fn fleet_lag_drains_then_downs_and_ignores_other_networks() {
        let checks = [snapshot(CheckName::Tip, Some(tip(5.0, 1000)), None)];
        let peers = [peer(1005, "mainnet"), peer(9_000_000, "preview")];
        let report = policy().evaluate(&checks, &peers, NOW);
        assert_eq!(
            (report.state, report.fleet_lag_blocks),
            (State::Up, Some(5))
        );
        let report = policy().evaluate(&checks, &[peer(1011, "mainnet")], NOW);
        assert_eq!(reasons(&report), [(Reason::BehindFleet, State::Drain)]);
        let report = policy().evaluate(&checks, &[peer(1031, "mainnet")], NOW);
        assert_eq!(reasons(&report), [(Reason::BehindFleet, State::Down)]);
        let report = policy().evaluate(&checks, &[peer(900, "mainnet")], NOW);
        assert_eq!(
            (report.state, report.fleet_lag_blocks),
            (State::Up, Some(0))
        );
    }

    #[test]
    fn the_worst_reason_comes_first() {
        let checks = [snapshot(CheckName::Tip, Some(tip(700.0, 1000)), None)];
        let report = policy().evaluate(&checks, &[peer(1015, "mainnet")], NOW);
        assert_eq!(report.state, State::Down);
        assert_eq!(
            reasons(&report),
            [
                (Reason::TipStale, State::Down),
                (Reason::BehindFleet, State::Drain)
            ]
        );
    }

    #[test]
    fn koios_caches_drain_by_grest_poll_thresholds() {
        let tip_findings = tip(5.0, 10_000);
        let Findings::Tip(t) = &tip_findings else {
            unreachable!()
        };
        let progress = t.params.as_ref().unwrap().epoch_progress(t.slot_no);
        let fresh = Grest {
            version: Some("v1.3.2".into()),
            tip_block_no: 10_000,
            tip_epoch_no: t.epoch_no,
            lag_blocks: vec![("stake_distribution_lbh".into(), 2000)],
            last_updates: vec![("pool_history_cache_last_updated".into(), NOW - 1000.0)],
            active_stake_epoch: Some(t.epoch_no),
        };
        let evaluate = |grest: &Grest| {
            policy().evaluate(
                &[
                    snapshot(CheckName::Tip, Some(tip_findings.clone()), None),
                    snapshot(CheckName::Grest, Some(Findings::Grest(grest.clone())), None),
                ],
                &[],
                NOW,
            )
        };
        assert_eq!(evaluate(&fresh).state, State::Up);
        let mut late = fresh.clone();
        late.lag_blocks = vec![("stake_distribution_lbh".into(), 2001)];
        late.last_updates = vec![("pool_history_cache_last_updated".into(), NOW - 1001.0)];
        late.active_stake_epoch = Some(t.epoch_no - 1);
        let report = evaluate(&late);
        assert_eq!(report.state, State::Drain);
        let mut expected = vec![
            (Reason::GrestStakeDistributionCache, State::Drain),
            (Reason::GrestPoolHistoryCache, State::Drain),
        ];
        // Koios only requires the current epoch's active stake after a sixth of the epoch;
        // NOW is three quarters into mainnet epoch 596.
        assert!(progress > 0.75 && progress < 0.76, "{progress}");
        expected.push((Reason::GrestActiveStakeCache, State::Drain));
        assert_eq!(reasons(&report), expected);
    }
}
