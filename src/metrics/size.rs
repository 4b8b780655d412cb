//! The size families: database and schema sizes and the server's sessions on this database
//! by state (getmetrics.sh's `dbsize`, `pubschsize` / `grestschsize` and `grestconns`).
//! Written only once the size check has findings.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use crate::checks::{CheckName, Findings};

use super::{gauge, gauges, human, Scrape};

pub(super) fn encode(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    let Some(Findings::Size(size)) = scrape.findings(CheckName::Size) else {
        return Ok(());
    };
    let every = scrape
        .checks
        .iter()
        .find(|check| check.name == CheckName::Size)
        .map_or_else(|| "?".into(), |check| human(check.cadence.interval));
    let cached = format!("Cached: read every {every}.");
    gauge(
        encoder,
        "dbsync_database_size_bytes",
        &format!("Size of the db-sync database on disk (pg_database_size). {cached}"),
        size.database_bytes,
    )?;
    gauges(
        encoder,
        "dbsync_schema_size_bytes",
        &format!("Total size of a schema's tables with their indexes and TOAST (pg_total_relation_size summed; public, and grest on Koios instances). {cached}"),
        size.schema_bytes
            .iter()
            .map(|(schema, bytes)| ([("schema", schema.as_str())], *bytes)),
    )?;
    gauges(
        encoder,
        "dbsync_database_connections",
        &format!("Client sessions on this database, server-wide (every role), by pg_stat_activity state; unknown: another role's session whose state this role may not see (grant pg_read_all_stats). {cached}"),
        size.connections
            .iter()
            .map(|(state, count)| ([("state", state.as_str())], *count)),
    )
}
