//! The routing families: the health state and its reasons (what HAProxy sees), the peers
//! and the fleet lag, and the Koios cache freshness.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use crate::checks::{CheckName, Findings};
use crate::health::{HealthPolicy, Reason, State};

use super::{gauge, gauges, Scrape};

pub(super) fn encode(
    encoder: &mut DescriptorEncoder,
    scrape: &Scrape,
    policy: &HealthPolicy,
) -> fmt::Result {
    let report = policy.evaluate(&scrape.checks, &scrape.peers, scrape.now);
    gauges(
        encoder,
        "dbsync_health_state",
        "Routing state from the health policy, the same as /health and the HAProxy agent: 1 for the current state (up, drain, down).",
        State::ALL
            .iter()
            .map(|state| ([("state", state.as_str())], i64::from(*state == report.state))),
    )?;
    gauges(
        encoder,
        "dbsync_health_reason",
        "Active reasons of the health state; 1 per active reason.",
        Reason::ALL
            .iter()
            .filter(|reason| {
                report
                    .reasons
                    .iter()
                    .any(|finding| finding.reason == **reason)
            })
            .map(|reason| ([("reason", reason.as_str())], 1)),
    )?;
    if !scrape.peers.is_empty() {
        gauges(
            encoder,
            "dbsync_peer_up",
            "1 when the peer's /tip answered at its last poll, else 0.",
            scrape
                .peers
                .iter()
                .map(|peer| ([("peer", peer.peer.as_str())], i64::from(peer.up))),
        )?;
        gauges(
            encoder,
            "dbsync_peer_block_height",
            "Tip block number the peer reported at its last successful poll.",
            scrape
                .peers
                .iter()
                .filter(|peer| peer.up)
                .filter_map(|peer| Some(([("peer", peer.peer.as_str())], peer.block_no?))),
        )?;
    }
    if let Some(lag) = report.fleet_lag_blocks {
        gauge(
            encoder,
            "dbsync_fleet_lag_blocks",
            "Blocks between the best same-network peer's tip and ours (never negative; peers on other networks are ignored).",
            lag as i64,
        )?;
    }
    encode_grest(encoder, scrape)
}

fn encode_grest(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    let Some(Findings::Grest(grest)) = scrape.findings(CheckName::Grest) else {
        return Ok(());
    };
    if let Some(version) = &grest.version {
        gauges(
            encoder,
            "dbsync_grest_info",
            "The Koios (grest) release from grest.control_table; always 1.",
            [([("version", version.as_str())], 1)],
        )?;
    }
    if let Some(epoch) = grest.active_stake_epoch {
        gauge(
            encoder,
            "dbsync_grest_active_stake_epoch_number",
            "Epoch of the Koios active stake cache (last_active_stake_validated_epoch in grest.control_table; normally the tip's epoch + 1).",
            epoch,
        )?;
    }
    gauges(
        encoder,
        "dbsync_grest_cache_lag_blocks",
        "Tip block number minus the last block height a Koios cache has processed (grest.control_table keys holding heights).",
        grest
            .lag_blocks
            .iter()
            .map(|(cache, lag)| ([("cache", cache.as_str())], *lag)),
    )?;
    gauges(
        encoder,
        "dbsync_grest_cache_last_update_timestamp_seconds",
        "Unix time of a Koios cache's last update (grest.control_table keys holding timestamps).",
        grest
            .last_updates
            .iter()
            .map(|(cache, unix)| ([("cache", cache.as_str())], *unix)),
    )
}
