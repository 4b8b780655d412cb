//! Creating a db-sync database through any client: the schema of one release plus the rows
//! db-sync writes before its first block (`schema_version`, `meta`).
//!
//! [`crate::Fixture::create`] does the same for a [`crate::TestDatabase`]; this variant takes a
//! plain client so that tools holding only a URL (the simulator, benchmarks) reuse the one
//! schema definition instead of copying it.

use tokio_postgres::GenericClient;

use crate::schema::{ddl, IndexSet, SchemaVersion};

/// `schema_version.stage_three` after stage 4 ran (reference §2: a stage-4 file forces it).
pub const STAGE_THREE: i64 = 6;

/// `meta.version` as db-sync writes it: the Haskell `show` of its package version record.
pub fn meta_version(version: SchemaVersion) -> String {
    let [a, b, c, d] = version.release();
    format!("Version {{versionBranch = [{a},{b},{c},{d}], versionTags = []}}")
}

/// Creates the schema of `version` with `indexes`, and inserts `schema_version` and `meta`
/// (`start_time` = `start_unix` as a UTC timestamp). The database must be empty.
pub async fn create_schema(
    client: &impl GenericClient,
    version: SchemaVersion,
    indexes: IndexSet,
    network_name: &str,
    start_unix: i64,
) -> Result<(), tokio_postgres::Error> {
    client.batch_execute(&ddl(version, indexes)).await?;
    client
        .execute(
            "INSERT INTO schema_version (stage_one, stage_two, stage_three) \
             VALUES ($1::int8, $2::int8, $3::int8)",
            &[&version.stage_one(), &version.stage_two(), &STAGE_THREE],
        )
        .await?;
    client
        .execute(
            "INSERT INTO meta (start_time, network_name, version) \
             VALUES (to_timestamp($1::int8) AT TIME ZONE 'UTC', $2::text, $3::text)",
            &[&start_unix, &network_name, &meta_version(version)],
        )
        .await?;
    Ok(())
}

/// The release whose `schema_version.stage_two` is `stage_two`, if it is one of
/// [`SchemaVersion::ALL`].
pub fn version_from_stage_two(stage_two: i64) -> Option<SchemaVersion> {
    SchemaVersion::ALL
        .into_iter()
        .find(|v| v.stage_two() == stage_two)
}
