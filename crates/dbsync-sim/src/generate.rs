//! `generate`: plan a history for the database's network and release, plant the requested
//! faults, bulk-load it, add the near-tip indexes, analyze, and report row counts and what
//! the exporter should see.

use std::time::{Duration, Instant};

use dbsync_fixture::bootstrap::version_from_stage_two;
use dbsync_fixture::SchemaVersion;
use tokio_postgres::Client;

use crate::error::Context as _;
use crate::faults::{self, Expectation, FaultSet, PlantedFault};
use crate::load;
use crate::network::Network;
use crate::plan::{Plan, PlanInput};
use crate::progress::Progress;
use crate::scale::Scale;
use crate::SimError;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// How big.
    pub scale: Scale,
    /// Faults to plant.
    pub faults: FaultSet,
    /// Seed of every random choice (same seed, same database).
    pub seed: u64,
    /// End of the history (default: now).
    pub until_unix: Option<i64>,
    /// Add the stage-4 indexes and run-time constraints at the end (what a synced db-sync
    /// has). Off = a database still in initial sync.
    pub near_tip_indexes: bool,
    /// Draw progress bars on stderr.
    pub progress: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            scale: Scale::Small,
            faults: FaultSet::none(),
            seed: 1,
            until_unix: None,
            near_tip_indexes: true,
            progress: false,
        }
    }
}

/// What `generate` did.
#[derive(Clone, Debug)]
pub struct GenerateReport {
    /// Network.
    pub network: String,
    /// Schema release.
    pub version: SchemaVersion,
    /// Epoch of the tip.
    pub tip_epoch: i64,
    /// Unix time the history ends at.
    pub until_unix: i64,
    /// `(table, rows)` after the load.
    pub counts: Vec<(String, i64)>,
    /// The planted faults.
    pub planted: Vec<PlantedFault>,
    /// Every integrity series the exporter should export, with its expected value.
    pub expectations: Vec<Expectation>,
    /// Wall time.
    pub elapsed: Duration,
}

/// The network and release a database was initialised for.
pub async fn describe(client: &Client) -> Result<(Network, SchemaVersion), SimError> {
    let row = client
        .query_one(
            "SELECT (SELECT stage_two FROM schema_version ORDER BY id DESC LIMIT 1), \
                    (SELECT network_name::text FROM meta ORDER BY id LIMIT 1)",
            &[],
        )
        .await
        .context("reading schema_version and meta (run `dbsync-sim init` first)")?;
    let stage_two: Option<i64> = row.get(0);
    let network: Option<String> = row.get(1);
    let (Some(stage_two), Some(network)) = (stage_two, network) else {
        return Err(SimError::Invalid(
            "schema_version or meta is empty (run `dbsync-sim init` first)".into(),
        ));
    };
    let version = version_from_stage_two(stage_two).ok_or_else(|| {
        SimError::Invalid(format!(
            "schema_version.stage_two = {stage_two} is not a release the simulator writes"
        ))
    })?;
    Ok((Network::known(&network)?, version))
}

/// Generates the history into a database prepared by [`crate::init()`], on one connection.
pub async fn generate(client: &Client, opts: &GenerateOptions) -> Result<GenerateReport, SimError> {
    generate_on(client, client, opts).await
}

/// Like [`generate`], with a second connection to the same database: the chain (blocks,
/// transactions, certificates, epoch rows) and the stake distribution with its rewards
/// (the two largest parts) are then written at the same time, one server backend each,
/// which roughly halves the time on a 2-core machine.
pub async fn generate_on(
    client: &Client,
    second: &Client,
    opts: &GenerateOptions,
) -> Result<GenerateReport, SimError> {
    let started = Instant::now();
    let (network, version) = describe(client).await?;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM block WHERE block_no IS NOT NULL), \
                    (SELECT coalesce(max(id), 0) + 1 FROM block), \
                    (SELECT coalesce(max(id), 0) + 1 FROM tx), \
                    (SELECT coalesce(max(id), 0) + 1 FROM slot_leader)",
            &[],
        )
        .await
        .context("reading the database state")?;
    let existing: i64 = row.get(0);
    if existing > 0 {
        return Err(SimError::Invalid(format!(
            "the database already holds {existing} blocks (generate needs a fresh `init`)"
        )));
    }
    let genesis_txs: Vec<i64> = client
        .query(
            "SELECT tx.id FROM tx JOIN block b ON b.id = tx.block_id \
             WHERE b.previous_id IS NULL ORDER BY tx.id",
            &[],
        )
        .await
        .context("reading the genesis transactions")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let until_unix = opts.until_unix.unwrap_or_else(crate::unix_now);
    let progress = Progress::new(opts.progress);

    let plan_phase = progress.phase("plan", 1);
    let mut plan = Plan::build(&PlanInput {
        network: &network,
        version,
        sizes: opts.scale.sizes(),
        seed: opts.seed,
        until_unix,
        first_block_id: row.get(1),
        first_tx_id: row.get(2),
        leader_base: row.get(3),
        genesis_txs,
    })?;
    let planted = faults::plant(&mut plan, &opts.faults)?;
    plan_phase.inc(1);
    plan_phase.finish();

    load::prepare_session(client).await?;
    load::prepare_session(second).await?;
    load::autovacuum(client, false).await?;
    load::write_entities(client, &plan).await?;
    // Blocks, certificates and instant rewards on one connection while the other writes the
    // stake distribution and its rewards; withdrawals need both (they are derived from the
    // reward rows), transactions need the withdrawals, and go on both connections.
    let chain = async {
        load::write_blocks(client, &plan, &progress).await?;
        load::write_certificates(client, &plan, &progress).await?;
        load::write_ledger_rewards(client, &plan).await?;
        load::stage_adjustments(client, &plan).await?;
        Ok::<(), SimError>(())
    };
    let stake = load::write_stake(second, &plan, &progress);
    tokio::try_join!(chain, stake)?;
    let epochs = progress.phase("withdrawals and epoch rows", 4);
    load::write_withdrawals(client, &plan).await?;
    faults::apply(client, &plan, &planted, faults::Stage::Withdrawals).await?;
    load::stage_withdrawals(client).await?;
    epochs.inc(1);
    tokio::try_join!(
        load::write_txs(client, &plan, &progress, (0, 2)),
        load::write_txs(second, &plan, &progress, (1, 2)),
    )?;
    load::write_special_txs(client, &plan).await?;
    faults::apply(client, &plan, &planted, faults::Stage::Chain).await?;
    epochs.inc(1);
    load::write_epoch_rows(client, &plan).await?;
    load::write_epoch_aggregates(client, &plan).await?;
    faults::apply(client, &plan, &planted, faults::Stage::EpochRows).await?;
    load::drop_staging(client).await?;
    epochs.inc(2);
    epochs.finish();
    load::sync_sequences(client).await?;
    load::autovacuum(client, true).await?;

    let finish = progress.phase("indexes", 2);
    if opts.near_tip_indexes {
        finish.note("near-tip indexes");
        load::near_tip(client, version).await?;
    }
    finish.inc(1);
    finish.note("ANALYZE");
    client.batch_execute("ANALYZE").await.context("ANALYZE")?;
    finish.inc(1);
    finish.finish();

    let counts = count_rows(client, &plan).await?;
    let expectations = faults::expectations(&plan, &planted);
    Ok(GenerateReport {
        network: network.name().to_owned(),
        version,
        tip_epoch: plan.tip_epoch(),
        until_unix,
        counts,
        planted,
        expectations,
        elapsed: started.elapsed(),
    })
}

/// Exact row counts of the tables the exporter reads (and a few more).
async fn count_rows(client: &Client, plan: &Plan) -> Result<Vec<(String, i64)>, SimError> {
    let mut tables = vec![
        "block",
        "tx",
        "slot_leader",
        "stake_address",
        "stake_registration",
        "stake_deregistration",
        "pool_hash",
        "pool_update",
        "pool_owner",
        "pool_retire",
        "reserve",
        "treasury",
        "pot_transfer",
        plan.instant_table(),
        "reward",
        "epoch_stake",
        "epoch_stake_progress",
        "ada_pots",
        "epoch_param",
        "epoch_sync_time",
        "tx_out",
        "tx_in",
        "withdrawal",
        "collateral_tx_in",
        "reference_tx_in",
    ];
    tables.push(if plan.version == SchemaVersion::V13_7 {
        "epoch_finalized"
    } else {
        "epoch"
    });
    let mut counts = Vec::with_capacity(tables.len());
    for table in tables {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .context("counting rows")?
            .get(0);
        counts.push((table.to_owned(), n));
    }
    Ok(counts)
}
