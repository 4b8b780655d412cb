//! The core families: build and schema info, tip and lag, rollbacks, epoch sync, per-check
//! bookkeeping, the connection pool, and the health state.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use crate::checks::{CheckName, Findings, Outcome};
use crate::db::PoolStatus;

use super::{counter_value, family, gauge, gauges, human, noted_gauges, Scrape, NO_LABELS};

pub(super) fn encode(
    encoder: &mut DescriptorEncoder,
    scrape: &Scrape,
    pool: &PoolStatus,
) -> fmt::Result {
    gauges(
        encoder,
        "dbsync_exporter_build_info",
        "Build information of dbsync-exporter; always 1.",
        [(
            [
                ("version", env!("CARGO_PKG_VERSION")),
                ("revision", crate::build_info::REVISION),
                ("rustc", crate::build_info::RUSTC_VERSION),
            ],
            1,
        )],
    )?;
    encode_tip(encoder, scrape)?;
    encode_info(encoder, scrape)?;
    encode_rollbacks(encoder, scrape)?;
    encode_checks(encoder, scrape)?;
    encode_pool(encoder, pool)
}

fn cadence_of(scrape: &Scrape, name: CheckName) -> String {
    scrape
        .checks
        .iter()
        .find(|check| check.name == name)
        .map_or_else(|| "?".into(), |check| human(check.cadence.interval))
}

fn encode_tip(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    let tip_state = scrape
        .checks
        .iter()
        .find(|check| check.name == CheckName::Tip);
    let up = tip_state.is_some_and(|check| check.state.succeeded());
    let every = cadence_of(scrape, CheckName::Tip);
    gauge(
        encoder,
        "dbsync_up",
        &format!(
            "1 when the last tip check (every {every}) read the tip from the database, else 0."
        ),
        i64::from(up),
    )?;
    let Some(Findings::Tip(tip)) = scrape.findings(CheckName::Tip) else {
        return Ok(());
    };
    let cached = format!("Cached: read by the tip check every {every}; see dbsync_check_last_success_timestamp_seconds for its age.");
    noted_gauges(
        encoder,
        &cached,
        &[
            (
                "dbsync_block_height",
                "Block number of the newest block.",
                tip.block_no,
            ),
            (
                "dbsync_slot_number",
                "Absolute slot of the newest block.",
                tip.slot_no,
            ),
            (
                "dbsync_epoch_number",
                "Epoch of the newest block.",
                tip.epoch_no,
            ),
            (
                "dbsync_tip_timestamp_seconds",
                "Slot start time of the newest block, unix seconds.",
                tip.time_unix,
            ),
        ],
    )?;
    gauge(
        encoder,
        "dbsync_tip_age_seconds",
        "Seconds between the wall clock at scrape time (computed at most once per second) and the cached tip's slot time.",
        tip.age_seconds(scrape.now),
    )?;
    let Some(params) = &tip.params else {
        return Ok(());
    };
    let now = scrape.now.floor() as i64;
    let expected = params.slot_at(now);
    gauge(
        encoder,
        "dbsync_expected_slot_number",
        "Slot the chain is at by the wall clock at scrape time, from the network's genesis constants.",
        expected,
    )?;
    gauge(
        encoder,
        "dbsync_slot_lag",
        "Expected slot at scrape time minus the cached tip's slot.",
        expected - tip.slot_no,
    )?;
    gauge(
        encoder,
        "dbsync_sync_progress_ratio",
        "Share of the chain's wall-clock history covered by the cached tip (0 to 1).",
        params.sync_progress(tip.time_unix, now),
    )?;
    gauge(
        encoder,
        "dbsync_epoch_progress_ratio",
        "How far the cached tip is into its epoch (0 to 1).",
        params.epoch_progress(tip.slot_no),
    )
}

fn encode_info(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    let Some(Findings::Info(info)) = scrape.findings(CheckName::Info) else {
        return Ok(());
    };
    let every = cadence_of(scrape, CheckName::Info);
    gauges(
        encoder,
        "dbsync_info",
        &format!(
            "The db-sync instance: network (meta.network_name), db-sync release (from schema_version.stage_two) and schema stages; always 1. Cached: read every {every}."
        ),
        [(
            [("network", info.network.as_str()), ("dbsync_release", info.release), ("schema", info.stages.as_str())],
            1,
        )],
    )?;
    if let Some(tls) = info.tls {
        gauge(
            encoder,
            "dbsync_db_tls",
            &format!("1 when the exporter's session to PostgreSQL is encrypted (pg_stat_ssl, as the server sees it), else 0. Cached: read every {every}."),
            i64::from(tls),
        )?;
    }
    let Some(sync) = &info.last_epoch_sync else {
        return Ok(());
    };
    noted_gauges(
        encoder,
        &format!("Cached: read every {every}."),
        &[
            (
                "dbsync_last_epoch_sync_duration_seconds",
                "Wall-clock seconds db-sync spent on the last finished epoch (epoch_sync_time).",
                sync.seconds,
            ),
            (
                "dbsync_last_synced_epoch_number",
                "The last epoch db-sync finished (epoch_sync_time.no).",
                sync.epoch_no,
            ),
        ],
    )
}

fn encode_rollbacks(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    let Some(Findings::Rollback(stats)) = scrape.findings(CheckName::Rollback) else {
        return Ok(());
    };
    let every = cadence_of(scrape, CheckName::Rollback);
    family(
        encoder,
        "dbsync_rollbacks",
        &format!("Rollbacks seen since the exporter started (vanished or replaced blocks among the last 50). Cached: checked every {every}."),
        MetricType::Counter,
        [(NO_LABELS, stats.total)],
        counter_value,
    )?;
    gauge(
        encoder,
        "dbsync_last_rollback_depth_blocks",
        &format!("Depth in blocks of the most recent rollback (0 before the first). Cached: checked every {every}."),
        stats.last_depth as i64,
    )
}

fn encode_checks(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    let checks = &scrape.checks;
    gauges(
        encoder,
        "dbsync_check_success",
        "1 when the check's last run succeeded, else 0 (also 0 before its first run).",
        checks
            .iter()
            .map(|c| ([("check", c.name.as_str())], i64::from(c.state.succeeded()))),
    )?;
    gauges(
        encoder,
        "dbsync_check_duration_seconds",
        "Duration of the check's last run.",
        checks.iter().filter_map(|c| {
            Some((
                [("check", c.name.as_str())],
                c.state.last_duration?.as_secs_f64(),
            ))
        }),
    )?;
    gauges(
        encoder,
        "dbsync_check_last_success_timestamp_seconds",
        "Unix time at which the check last succeeded; its results are this old.",
        checks
            .iter()
            .filter_map(|c| Some(([("check", c.name.as_str())], c.state.last_success_unix?))),
    )?;
    gauges(
        encoder,
        "dbsync_check_interval_seconds",
        "Configured interval between the check's runs.",
        checks.iter().map(|c| {
            (
                [("check", c.name.as_str())],
                c.cadence.interval.as_secs_f64(),
            )
        }),
    )?;
    gauges(
        encoder,
        "dbsync_check_applicable",
        "1 when the check applies to this database, 0 when it cannot (see the log for why); absent before its first successful run.",
        checks.iter().filter_map(|c| Some(([("check", c.name.as_str())], i64::from(c.state.applicable?)))),
    )?;
    family(
        encoder,
        "dbsync_check_runs",
        "Finished runs of the check by outcome (success, error, timeout).",
        MetricType::Counter,
        checks.iter().flat_map(|c| {
            Outcome::ALL
                .iter()
                .zip(c.state.runs)
                .map(move |(outcome, runs)| {
                    (
                        [("check", c.name.as_str()), ("outcome", outcome.as_str())],
                        runs,
                    )
                })
        }),
        counter_value,
    )
}

fn encode_pool(encoder: &mut DescriptorEncoder, pool: &PoolStatus) -> fmt::Result {
    gauges(
        encoder,
        "dbsync_db_connections",
        "Connections in the exporter's pool by state (idle, active).",
        [
            ([("state", "idle")], pool.idle as i64),
            ([("state", "active")], pool.active as i64),
        ],
    )?;
    gauge(
        encoder,
        "dbsync_db_max_connections",
        "Size limit of the exporter's connection pool.",
        pool.max as i64,
    )
}
