//! The health policy: one function from the latest results to a routing state, so that
//! `/health`, the metrics and the HAProxy agent can never disagree.
//!
//! - **down** (do not serve): the database refuses connections or is not db-sync, no tip, the
//!   tip could not be read for longer than `--health.tip-failure-grace`, a tip older than
//!   `--health.max-tip-age`, `--health.fleet-quorum` peers more than
//!   `--health.max-fleet-lag-blocks` ahead, or an integrity fault with
//!   `--health.fail-on-integrity`.
//! - **drain** (finish current connections, take no new ones): still correct but lagging a
//!   little (tip older than `--health.drain-tip-age`, or a peer more than
//!   `--health.drain-fleet-lag-blocks` ahead), or a Koios cache late by grest-poll's rules.
//! - **up** otherwise.
//!
//! The worst reason decides; every active reason is reported. A single failed tip run (a
//! lock wait, one slow query) does not move the state: the cached tip keeps its age, so a
//! stale tip still goes down on time, and the failure itself counts once it outlasts the
//! grace.

use std::time::Duration;

use serde::Serialize;

use crate::chain::can_lead;
use crate::checks::grest::{ACTIVE_STAKE_KEY, POOL_HISTORY_KEY, STAKE_DISTRIBUTION_KEY};
use crate::checks::{CheckError, CheckName, Findings, Grest, Tip};
use crate::config::HealthConfig;
use crate::store::{CheckSnapshot, PeerStatus};

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
    /// The database cannot be connected to or refuses our role (authentication).
    DbUnreachable,
    /// The tip query was cancelled by the server's statement or lock timeout, or no pooled
    /// connection became free in time.
    CheckTimeout,
    /// The role lacks a privilege the tip query needs.
    DbPermission,
    /// The database is not db-sync, or its schema does not match (missing table or column,
    /// changed type).
    NotDbsync,
    /// The tip query failed for another reason the server gave.
    QueryFailed,
    /// The tip check itself failed (an internal error, logged).
    CheckFailed,
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
    /// Koios release differs from `--grest.expected-version`.
    GrestVersion,
    /// Koios stake distribution cache too far behind the tip, or never computed.
    GrestStakeDistributionCache,
    /// Koios pool history cache not updated recently.
    GrestPoolHistoryCache,
    /// Koios active stake cache older than the tip's epoch past a sixth of the epoch.
    GrestActiveStakeCache,
}

impl Reason {
    /// Every reason, in exposition order.
    pub const ALL: [Reason; 15] = [
        Reason::DbUnreachable,
        Reason::CheckTimeout,
        Reason::DbPermission,
        Reason::NotDbsync,
        Reason::QueryFailed,
        Reason::CheckFailed,
        Reason::NoTip,
        Reason::TipStale,
        Reason::TipLagging,
        Reason::BehindFleet,
        Reason::Integrity,
        Reason::GrestVersion,
        Reason::GrestStakeDistributionCache,
        Reason::GrestPoolHistoryCache,
        Reason::GrestActiveStakeCache,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::DbUnreachable => "db_unreachable",
            Reason::CheckTimeout => "check_timeout",
            Reason::DbPermission => "db_permission",
            Reason::NotDbsync => "not_dbsync",
            Reason::QueryFailed => "query_failed",
            Reason::CheckFailed => "check_failed",
            Reason::NoTip => "no_tip",
            Reason::TipStale => "tip_stale",
            Reason::TipLagging => "tip_lagging",
            Reason::BehindFleet => "behind_fleet",
            Reason::Integrity => "integrity",
            Reason::GrestVersion => "grest_version",
            Reason::GrestStakeDistributionCache => "grest_stake_distribution_cache",
            Reason::GrestPoolHistoryCache => "grest_pool_history_cache",
            Reason::GrestActiveStakeCache => "grest_active_stake_cache",
        }
    }

    /// The reason a failed tip run stands for.
    pub fn of_error(error: &CheckError) -> Reason {
        match error {
            CheckError::Unavailable(_) => Reason::DbUnreachable,
            CheckError::Timeout(_) => Reason::CheckTimeout,
            CheckError::Permission(_) => Reason::DbPermission,
            CheckError::NotDbSync(_) => Reason::NotDbsync,
            CheckError::Query(_) => Reason::QueryFailed,
            CheckError::Internal(_) => Reason::CheckFailed,
            CheckError::Data(_) => Reason::NoTip,
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

/// Collects findings.
struct Reasons(Vec<Finding>);

impl Reasons {
    fn push(&mut self, reason: Reason, state: State, detail: String) {
        self.0.push(Finding {
            reason,
            state,
            detail,
        });
    }
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
        let mut reasons = Reasons(Vec::new());
        let findings = |name: CheckName| {
            checks
                .iter()
                .find(|check| check.name == name)
                .and_then(|check| check.state.findings.as_deref())
        };
        let tip = match findings(CheckName::Tip) {
            Some(Findings::Tip(tip)) => Some(tip),
            _ => None,
        };
        if let Some(check) = checks.iter().find(|check| check.name == CheckName::Tip) {
            self.tip_failure(check, tip.is_some(), now, &mut reasons);
        }
        let fleet_lag_blocks = tip.and_then(|tip| fleet_lag(peers, tip));
        if let Some(tip) = tip {
            self.tip_age(tip, now, &mut reasons);
            if let Some(lag) = fleet_lag_blocks {
                self.fleet(lag, peers, tip, &mut reasons);
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
                    reasons.push(
                        Reason::Integrity,
                        State::Down,
                        format!("integrity check {} reports {faults} fault(s)", check.name),
                    );
                }
            }
        }
        let mut reasons = reasons.0;
        reasons.sort_by_key(|finding| std::cmp::Reverse(finding.state));
        let state = reasons.first().map_or(State::Up, |finding| finding.state);
        Report {
            state,
            reasons,
            fleet_lag_blocks,
        }
    }

    /// A failed tip run: down at once when there is no tip to fall back on or the database
    /// refuses us; otherwise only once the tip has gone unread for longer than the grace.
    fn tip_failure(&self, check: &CheckSnapshot, have_tip: bool, now: f64, reasons: &mut Reasons) {
        let Some(error) = check.state.last_error.as_ref() else {
            if !have_tip {
                reasons.push(
                    Reason::NoTip,
                    State::Down,
                    "the tip has not been read yet".into(),
                );
            }
            return;
        };
        let reason = Reason::of_error(error);
        let detail = match error {
            CheckError::Data(why) => why.clone(),
            other => other.to_string(),
        };
        if !have_tip || reason == Reason::DbUnreachable {
            reasons.push(reason, State::Down, detail);
            return;
        }
        let unread_for = check
            .state
            .last_success_unix
            .map_or(f64::INFINITY, |at| now - at);
        let grace = secs(self.config.tip_failure_grace);
        if unread_for > grace {
            reasons.push(
                reason,
                State::Down,
                format!("{detail} (tip unread for {unread_for:.0} s, grace {grace:.0} s)"),
            );
        }
    }

    fn tip_age(&self, tip: &Tip, now: f64, reasons: &mut Reasons) {
        let age = tip.age_seconds(now);
        let (max, drain) = (
            secs(self.config.max_tip_age),
            secs(self.config.drain_tip_age),
        );
        if age > max {
            reasons.push(
                Reason::TipStale,
                State::Down,
                format!("tip is {age:.0} s old (max {max:.0} s)"),
            );
        } else if age > drain {
            reasons.push(
                Reason::TipLagging,
                State::Drain,
                format!("tip is {age:.0} s old (drain from {drain:.0} s)"),
            );
        }
    }

    /// One peer ahead is enough to drain; going down on the fleet's word takes a quorum of
    /// peers that each are far ahead, so one lying or broken peer cannot take us down.
    fn fleet(&self, lag: u64, peers: &[PeerStatus], tip: &Tip, reasons: &mut Reasons) {
        let (max, drain, quorum) = (
            self.config.max_fleet_lag_blocks,
            self.config.drain_fleet_lag_blocks,
            self.config.fleet_quorum,
        );
        if lag <= drain {
            return;
        }
        let far_ahead = credible_tips(peers, tip)
            .filter(|block_no| block_no.saturating_sub(tip.block_no) > max as i64)
            .count();
        let (state, quorum_note) = if far_ahead >= quorum {
            (State::Down, String::new())
        } else if lag > max {
            (
                State::Drain,
                format!("; down needs {quorum} peer(s) that far ahead, {far_ahead} are"),
            )
        } else {
            (State::Drain, String::new())
        };
        reasons.push(
            Reason::BehindFleet,
            state,
            format!(
                "{lag} blocks behind the best peer (drain above {drain}, down above {max}){quorum_note}"
            ),
        );
    }

    /// grest-poll.sh's cache rules, on the same thresholds.
    fn grest(&self, grest: &Grest, tip: &Tip, now: f64, reasons: &mut Reasons) {
        let mut drain = |reason, detail| reasons.push(reason, State::Drain, detail);
        if let Some(expected) = &self.config.grest_expected_version {
            match &grest.version {
                Some(version) if version == expected => {}
                Some(version) => drain(
                    Reason::GrestVersion,
                    format!("Koios version {version:?} is not the expected {expected:?}"),
                ),
                None => drain(
                    Reason::GrestVersion,
                    format!("no Koios version in grest.control_table (expected {expected:?})"),
                ),
            }
        }
        let max_lag = self.config.grest_stake_distribution_lag_blocks;
        if let Some(problem) = ControlRow::new(
            "stake distribution cache",
            STAKE_DISTRIBUTION_KEY,
            "a block number",
        )
        .problem(
            grest.lag(STAKE_DISTRIBUTION_KEY),
            grest,
            |lag| {
                (lag > max_lag).then(|| {
                    format!("stake distribution cache {lag} blocks behind (max {max_lag})")
                })
            },
            format!("stake distribution cache never computed (no {STAKE_DISTRIBUTION_KEY})"),
        ) {
            drain(Reason::GrestStakeDistributionCache, problem);
        }
        let max_age = secs(self.config.grest_pool_history_max_age);
        if let Some(problem) =
            ControlRow::new("pool history cache", POOL_HISTORY_KEY, "a timestamp").problem(
                grest.last_update(POOL_HISTORY_KEY),
                grest,
                |updated| {
                    let age = now - updated;
                    (age > max_age).then(|| {
                        format!("pool history cache updated {age:.0} s ago (max {max_age:.0} s)")
                    })
                },
                "pool history cache has never been updated".into(),
            )
        {
            drain(Reason::GrestPoolHistoryCache, problem);
        }
        // Koios writes the newest completed stake epoch, normally the tip's epoch + 1;
        // grest-poll only fails a value older than the tip's epoch, from a sixth in.
        let Some(params) = tip.params.as_ref() else {
            return;
        };
        let epoch = tip.epoch_no;
        let length = params.epoch_length(params.epoch_of_slot(tip.slot_no));
        if params.slot_in_epoch(tip.slot_no) * 6 < length {
            return;
        }
        if let Some(problem) = ControlRow::new("active stake cache", ACTIVE_STAKE_KEY, "an epoch")
            .problem(
                grest.active_stake_epoch,
                grest,
                |cached| {
                    (cached < epoch).then(|| format!("active stake cache is on epoch {cached}"))
                },
                format!("active stake cache never computed (no {ACTIVE_STAKE_KEY})"),
            )
        {
            drain(
                Reason::GrestActiveStakeCache,
                format!(
                    "{problem} in epoch {epoch}, past a sixth of it (Koios wants {epoch} or {})",
                    epoch + 1
                ),
            );
        }
    }
}

/// One `grest.control_table` row a Koios rule reads.
struct ControlRow {
    /// The cache, as people call it.
    cache: &'static str,
    key: &'static str,
    /// What the value should be ("a block number").
    holds: &'static str,
}

impl ControlRow {
    fn new(cache: &'static str, key: &'static str, holds: &'static str) -> ControlRow {
        ControlRow { cache, key, holds }
    }

    /// What is wrong with the row, if anything: `late` judges a readable value; a value that
    /// cannot be read and a missing row are problems too (grest-poll fails on both).
    fn problem<T>(
        &self,
        value: Option<T>,
        grest: &Grest,
        late: impl FnOnce(T) -> Option<String>,
        missing: String,
    ) -> Option<String> {
        match (value, grest.unreadable(self.key)) {
            (Some(value), _) => late(value),
            (None, Some(text)) => Some(format!(
                "{}: {} {text:?} is not {}",
                self.cache, self.key, self.holds
            )),
            (None, None) => Some(missing),
        }
    }
}

/// Tip heights of the up peers on our network whose claim is possible against our tip as it
/// is now (the poller judged them against the tip it knew, which may be older or absent).
fn credible_tips<'a>(peers: &'a [PeerStatus], own: &'a Tip) -> impl Iterator<Item = i64> + 'a {
    peers
        .iter()
        .filter(move |peer| peer.up && peer.network == own.network)
        .filter_map(move |peer| {
            let (block_no, slot_no) = (peer.block_no?, peer.slot_no?);
            can_lead(block_no - own.block_no, slot_no - own.slot_no).then_some(block_no)
        })
}

/// Blocks between the best credible peer on our network and our tip (never negative);
/// `None` when no such peer answered.
pub fn fleet_lag(peers: &[PeerStatus], own: &Tip) -> Option<u64> {
    let best = credible_tips(peers, own).max()?;
    Some(best.saturating_sub(own.block_no).max(0) as u64)
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
                last_success_unix: findings.is_some().then_some(NOW - 1.0),
                findings: findings.map(Arc::new),
                ..CheckState::default()
            },
        }
    }

    fn tip_on(params: NetworkParams, age: f64, block_no: i64) -> Findings {
        let time_unix = (NOW - age) as i64;
        let slot_no = params.slot_at(time_unix);
        Findings::Tip(Tip {
            id: block_no,
            block_no,
            slot_no,
            epoch_no: params.epoch_of_slot(slot_no),
            hash: "00".into(),
            time_unix,
            network: Some(params.name.clone()),
            params: Some(params),
        })
    }

    fn tip(age: f64, block_no: i64) -> Findings {
        tip_on(NetworkParams::known("mainnet").unwrap(), age, block_no)
    }

    fn peer(block_no: i64, network: &str) -> PeerStatus {
        PeerStatus {
            peer: format!("http://{network}-{block_no}"),
            up: true,
            block_no: Some(block_no),
            // Far enough ahead in slots for any lead these tests claim.
            slot_no: Some(i64::MAX / 2),
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

    /// A tip check that failed `unread_for` seconds after its last success.
    fn failed_tip(error: CheckError, unread_for: f64) -> CheckSnapshot {
        let mut check = snapshot(CheckName::Tip, Some(tip(1.0, 100)), Some(error));
        check.state.last_success_unix = Some(NOW - unread_for);
        check
    }

    #[test]
    fn a_database_that_refuses_us_is_down_at_once_even_with_a_fresh_cached_tip() {
        let checks = [failed_tip(
            CheckError::Unavailable("connection refused".into()),
            1.0,
        )];
        let report = policy().evaluate(&checks, &[], NOW);
        assert_eq!(report.state, State::Down);
        assert_eq!(reasons(&report), [(Reason::DbUnreachable, State::Down)]);
        assert_eq!(
            report.reasons[0].detail,
            "database unavailable: connection refused"
        );
    }

    #[test]
    fn other_tip_failures_count_only_after_the_grace() {
        let grace = HealthConfig::default().tip_failure_grace.as_secs_f64();
        let cases = [
            (
                CheckError::Timeout("canceling statement due to lock timeout".into()),
                Reason::CheckTimeout,
            ),
            (
                CheckError::Permission("permission denied for table block".into()),
                Reason::DbPermission,
            ),
            (
                CheckError::NotDbSync("column \"slot_no\" does not exist".into()),
                Reason::NotDbsync,
            ),
            (
                CheckError::Query("division by zero".into()),
                Reason::QueryFailed,
            ),
            (CheckError::Data("no blocks".into()), Reason::NoTip),
        ];
        for (error, reason) in cases {
            let within = policy().evaluate(&[failed_tip(error.clone(), grace)], &[], NOW);
            assert_eq!(within.state, State::Up, "{error} within the grace");
            let past = policy().evaluate(&[failed_tip(error.clone(), grace + 1.0)], &[], NOW);
            assert_eq!(reasons(&past), [(reason, State::Down)], "{error}");
            assert!(
                past.reasons[0]
                    .detail
                    .ends_with("(tip unread for 16 s, grace 15 s)"),
                "{}",
                past.reasons[0].detail
            );
            // Without a tip to fall back on there is nothing to wait for.
            let never = policy().evaluate(
                &[snapshot(CheckName::Tip, None, Some(error.clone()))],
                &[],
                NOW,
            );
            assert_eq!(reasons(&never), [(reason, State::Down)], "{error}");
        }
    }

    #[test]
    fn a_stale_cached_tip_goes_down_on_time_while_the_tip_check_fails() {
        let mut check = failed_tip(CheckError::Timeout("lock timeout".into()), 2.0);
        check.state.findings = Some(Arc::new(tip(601.0, 100)));
        let report = policy().evaluate(&[check], &[], NOW);
        assert_eq!(reasons(&report), [(Reason::TipStale, State::Down)]);
    }

    #[test]
    fn fleet_lag_drains_on_one_peer_and_downs_on_a_quorum() {
        let checks = [snapshot(CheckName::Tip, Some(tip(5.0, 1000)), None)];
        let peers = [peer(1005, "mainnet"), peer(9_000_000, "preview")];
        let report = policy().evaluate(&checks, &peers, NOW);
        assert_eq!(
            (report.state, report.fleet_lag_blocks),
            (State::Up, Some(5))
        );
        let report = policy().evaluate(&checks, &[peer(1011, "mainnet")], NOW);
        assert_eq!(reasons(&report), [(Reason::BehindFleet, State::Drain)]);
        // One peer far ahead is not enough to go down with the default quorum of 2.
        let report = policy().evaluate(&checks, &[peer(1031, "mainnet")], NOW);
        assert_eq!(reasons(&report), [(Reason::BehindFleet, State::Drain)]);
        assert_eq!(
            report.reasons[0].detail,
            "31 blocks behind the best peer (drain above 10, down above 30); \
             down needs 2 peer(s) that far ahead, 1 are"
        );
        let report = policy().evaluate(
            &checks,
            &[peer(1031, "mainnet"), peer(1040, "mainnet")],
            NOW,
        );
        assert_eq!(reasons(&report), [(Reason::BehindFleet, State::Down)]);
        let trusting = HealthPolicy::new(&HealthConfig {
            fleet_quorum: 1,
            ..HealthConfig::default()
        });
        let report = trusting.evaluate(&checks, &[peer(1031, "mainnet")], NOW);
        assert_eq!(reasons(&report), [(Reason::BehindFleet, State::Down)]);
        let report = policy().evaluate(&checks, &[peer(900, "mainnet")], NOW);
        assert_eq!(
            (report.state, report.fleet_lag_blocks),
            (State::Up, Some(0))
        );
    }

    #[test]
    fn fleet_lag_compares_with_the_best_credible_up_peer_on_the_same_network() {
        let Findings::Tip(own) = tip(5.0, 110) else {
            unreachable!()
        };
        let mut down = peer(500, "mainnet");
        down.up = false;
        // 40 blocks ahead in 10 slots: impossible, whatever the poller thought.
        let mut impossible = peer(150, "mainnet");
        impossible.slot_no = Some(own.slot_no + 10);
        let mut silent = peer(140, "mainnet");
        silent.slot_no = None;
        let peers = [
            peer(100, "mainnet"),
            peer(120, "mainnet"),
            down,
            impossible,
            silent,
            peer(9000, "preview"),
        ];
        assert_eq!(fleet_lag(&peers, &own), Some(10));
        let mut ahead = own.clone();
        ahead.block_no = 130;
        assert_eq!(fleet_lag(&peers, &ahead), Some(0));
        let mut preprod = own.clone();
        preprod.network = Some("preprod".into());
        assert_eq!(fleet_lag(&peers, &preprod), None);
        assert_eq!(fleet_lag(&[], &own), None);
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

    /// A network of 600-slot epochs whose slot at [`NOW`] is `position` into epoch 10.
    fn pinned(position: f64) -> NetworkParams {
        let into = (600.0 * position) as i64;
        NetworkParams {
            name: "pinned".into(),
            byron_start_unix: NOW as i64 - (10 * 600 + into),
            byron_epoch_slots: 600,
            shelley_start_epoch: 0,
            epoch_slots: 600,
        }
    }

    /// Koios' four keys as its cron jobs write them on a healthy instance.
    fn koios(tip_epoch: i64) -> Grest {
        Grest {
            version: Some("v1.3.2".into()),
            tip_block_no: 10_000,
            tip_epoch_no: tip_epoch,
            lag_blocks: vec![(STAKE_DISTRIBUTION_KEY.into(), 12)],
            last_updates: vec![(POOL_HISTORY_KEY.into(), NOW - 300.0)],
            active_stake_epoch: Some(tip_epoch + 1),
            unreadable: Vec::new(),
        }
    }

    fn evaluate_grest(policy: &HealthPolicy, params: NetworkParams, grest: &Grest) -> Report {
        policy.evaluate(
            &[
                snapshot(CheckName::Tip, Some(tip_on(params, 0.0, 10_000)), None),
                snapshot(CheckName::Grest, Some(Findings::Grest(grest.clone())), None),
            ],
            &[],
            NOW,
        )
    }

    #[test]
    fn active_stake_of_the_tip_epoch_or_the_next_is_healthy_at_any_point_of_the_epoch() {
        for position in [0.05, 0.5, 0.99] {
            for cached in [10, 11] {
                let mut grest = koios(10);
                grest.active_stake_epoch = Some(cached);
                let report = evaluate_grest(&policy(), pinned(position), &grest);
                assert_eq!(report.state, State::Up, "epoch {cached} at {position}");
            }
        }
    }

    #[test]
    fn older_or_missing_active_stake_drains_only_past_a_sixth_of_the_epoch() {
        let unreadable = Grest {
            active_stake_epoch: None,
            unreadable: vec![(ACTIVE_STAKE_KEY.into(), "soon".into())],
            ..koios(10)
        };
        let cases = [
            (
                Grest {
                    active_stake_epoch: Some(9),
                    ..koios(10)
                },
                "active stake cache is on epoch 9 in epoch 10, past a sixth of it (Koios wants 10 or 11)",
            ),
            (
                Grest {
                    active_stake_epoch: None,
                    ..koios(10)
                },
                "active stake cache never computed (no last_active_stake_validated_epoch) in epoch 10, past a sixth of it (Koios wants 10 or 11)",
            ),
            (
                unreadable,
                "active stake cache: last_active_stake_validated_epoch \"soon\" is not an epoch in epoch 10, past a sixth of it (Koios wants 10 or 11)",
            ),
        ];
        for (grest, detail) in cases {
            let early = evaluate_grest(&policy(), pinned(0.05), &grest);
            assert_eq!(early.state, State::Up, "{detail}");
            for position in [0.5, 0.99] {
                let report = evaluate_grest(&policy(), pinned(position), &grest);
                assert_eq!(
                    reasons(&report),
                    [(Reason::GrestActiveStakeCache, State::Drain)],
                    "{position}"
                );
                assert_eq!(report.reasons[0].detail, detail);
            }
        }
        // grest-poll's boundary: epoch_slot >= epoch_length / 6 (slot 100 of 600).
        let older = Grest {
            active_stake_epoch: Some(9),
            ..koios(10)
        };
        let at = |slot: f64| evaluate_grest(&policy(), pinned(slot / 600.0), &older).state;
        assert_eq!(at(99.0), State::Up);
        assert_eq!(at(100.0), State::Drain);
    }

    /// Evaluates each case (control table contents, the drain detail expected, or `None`
    /// for up) at the start, middle and end of an epoch.
    fn assert_cache_rule(reason: Reason, cases: Vec<(Grest, Option<&str>)>) {
        for position in [0.05, 0.5, 0.99] {
            for (grest, detail) in &cases {
                let report = evaluate_grest(&policy(), pinned(position), grest);
                match detail {
                    None => assert_eq!(report.state, State::Up, "{grest:?}"),
                    Some(detail) => {
                        assert_eq!(reasons(&report), [(reason, State::Drain)]);
                        assert_eq!(report.reasons[0].detail, *detail);
                    }
                }
            }
        }
    }

    #[test]
    fn stake_distribution_cache_drains_when_late_missing_or_unreadable() {
        let with = |lag_blocks: Vec<(String, i64)>, unreadable: Vec<(String, String)>| Grest {
            lag_blocks,
            unreadable,
            ..koios(10)
        };
        assert_cache_rule(
            Reason::GrestStakeDistributionCache,
            vec![
                (with(vec![(STAKE_DISTRIBUTION_KEY.into(), 2000)], vec![]), None),
                (
                    with(vec![(STAKE_DISTRIBUTION_KEY.into(), 2001)], vec![]),
                    Some("stake distribution cache 2001 blocks behind (max 2000)"),
                ),
                (
                    with(vec![], vec![]),
                    Some("stake distribution cache never computed (no stake_distribution_lbh)"),
                ),
                (
                    with(vec![], vec![(STAKE_DISTRIBUTION_KEY.into(), String::new())]),
                    Some("stake distribution cache: stake_distribution_lbh \"\" is not a block number"),
                ),
            ],
        );
    }

    #[test]
    fn pool_history_cache_drains_when_old_missing_or_unreadable() {
        let with = |last_updates: Vec<(String, f64)>, unreadable: Vec<(String, String)>| Grest {
            last_updates,
            unreadable,
            ..koios(10)
        };
        assert_cache_rule(
            Reason::GrestPoolHistoryCache,
            vec![
                (with(vec![(POOL_HISTORY_KEY.into(), NOW - 1000.0)], vec![]), None),
                (
                    with(vec![(POOL_HISTORY_KEY.into(), NOW - 1001.0)], vec![]),
                    Some("pool history cache updated 1001 s ago (max 1000 s)"),
                ),
                (
                    with(vec![], vec![]),
                    Some("pool history cache has never been updated"),
                ),
                (
                    with(vec![], vec![(POOL_HISTORY_KEY.into(), "yesterday".into())]),
                    Some("pool history cache: pool_history_cache_last_updated \"yesterday\" is not a timestamp"),
                ),
            ],
        );
    }

    #[test]
    fn an_unexpected_koios_version_drains_only_when_one_is_expected() {
        let expecting = HealthPolicy::new(&HealthConfig {
            grest_expected_version: Some("v1.3.2".into()),
            ..HealthConfig::default()
        });
        assert_eq!(
            evaluate_grest(&expecting, pinned(0.5), &koios(10)).state,
            State::Up
        );
        let older = Grest {
            version: Some("v1.3.1".into()),
            ..koios(10)
        };
        assert_eq!(
            evaluate_grest(&policy(), pinned(0.5), &older).state,
            State::Up
        );
        let report = evaluate_grest(&expecting, pinned(0.5), &older);
        assert_eq!(reasons(&report), [(Reason::GrestVersion, State::Drain)]);
        assert_eq!(
            report.reasons[0].detail,
            "Koios version \"v1.3.1\" is not the expected \"v1.3.2\""
        );
        let none = Grest {
            version: None,
            ..koios(10)
        };
        let report = evaluate_grest(&expecting, pinned(0.5), &none);
        assert_eq!(
            report.reasons[0].detail,
            "no Koios version in grest.control_table (expected \"v1.3.2\")"
        );
    }

    #[test]
    fn every_reason_has_a_distinct_label() {
        let mut labels: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Reason::ALL.len());
    }
}
