//! `init`: an empty db-sync database for one release and network — the schema from
//! `dbsync-fixture` (never a copy), `schema_version`, `meta`, the genesis slot leader and
//! the artificial genesis block db-sync inserts before the first real one.

use dbsync_fixture::bootstrap;
use dbsync_fixture::{IndexSet, SchemaVersion};
use tokio_postgres::Client;

use crate::error::Context as _;
use crate::network::Network;
use crate::SimError;

/// What `init` creates.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Schema release.
    pub version: SchemaVersion,
    /// Network (`meta.network_name`, `meta.start_time`).
    pub network: Network,
    /// Index set to start with; `generate` adds the near-tip set after its bulk load.
    pub indexes: IndexSet,
}

/// Creates the schema and the rows db-sync writes before its first block. The database
/// must not have a `block` table yet.
pub async fn init(client: &Client, opts: &InitOptions) -> Result<(), SimError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('public.block') IS NOT NULL", &[])
        .await
        .context("probing the database")?
        .get(0);
    if exists {
        return Err(SimError::Invalid(
            "the database already has a db-sync schema (init needs an empty database)".into(),
        ));
    }
    let p = &opts.network.clock;
    // meta.start_time is Byron's startTime, or Shelley's systemStart on networks that
    // started in Shelley (preview) — the same instant as slot 0 either way.
    let start = p.byron_start_unix;
    bootstrap::create_schema(
        client,
        opts.version,
        opts.indexes,
        opts.network.name(),
        start,
    )
    .await
    .context("creating the schema")?;
    client
        .batch_execute(&format!(
            "INSERT INTO slot_leader (hash, pool_hash_id, description) \
             VALUES (decode(repeat('00', 28), 'hex'), NULL, 'Genesis slot leader');
             INSERT INTO block (hash, epoch_no, slot_no, epoch_slot_no, block_no, previous_id, \
                slot_leader_id, size, time, tx_count, proto_major, proto_minor) \
             SELECT sha256(convert_to('{name} genesis', 'UTF8')), NULL, NULL, NULL, NULL, NULL, \
                (SELECT min(id) FROM slot_leader), 0, \
                timestamp '1970-01-01' + {start} * interval '1 second', {n}, 0, 0;",
            name = opts.network.name(),
            n = crate::GENESIS_OUTPUTS.len()
        ))
        .await
        .context("inserting the genesis block")?;
    // One transaction per genesis distribution entry, one output each, no inputs, fee 0,
    // deposit 0, size 0 (db-sync's `Era/Byron/Genesis.hs`): their outputs are the genesis
    // supply every later output descends from.
    let values: Vec<i64> = crate::GENESIS_OUTPUTS.to_vec();
    client
        .execute(
            "WITH g AS (SELECT v, i - 1 AS i FROM unnest($1::int8[]) WITH ORDINALITY AS u(v, i)), \
             t AS (INSERT INTO tx (hash, block_id, block_index, out_sum, fee, deposit, size, \
                                   valid_contract, script_size) \
                   SELECT sha256(convert_to($2::text || ' genesis tx ' || g.i, 'UTF8')), \
                          (SELECT min(id) FROM block), g.i, g.v, 0, 0, 0, true, 0 \
                   FROM g ORDER BY g.i RETURNING id, block_index, out_sum) \
             INSERT INTO tx_out (tx_id, index, address, address_has_script, value) \
             SELECT t.id, 0, 'Ae2genesis' || t.block_index, false, t.out_sum FROM t",
            &[&values, &opts.network.name()],
        )
        .await
        .context("inserting the genesis transactions")?;
    Ok(())
}
