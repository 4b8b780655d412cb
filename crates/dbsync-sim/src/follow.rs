//! `follow`: keeps a generated database moving like a db-sync that follows the chain.
//!
//! - Blocks arrive at the network's average rate: slot gaps are geometric with mean 20 (the
//!   Praos leader lottery with `activeSlotsCoeff` 0.05), each block with one or two
//!   transactions. The chain clock is anchored to the wall clock at start: blocks whose
//!   slot time has passed are written at once (catching up after a long `generate`), later
//!   ones when their time comes, `--speed` times faster. With a speed above 1 the chain
//!   therefore runs ahead of the wall clock, which is what crossing epoch boundaries in a
//!   test needs.
//! - The first block of an epoch carries what db-sync writes at the boundary, in the same
//!   transaction: `ada_pots` (summing to 45e15), `epoch_param`, `epoch_sync_time` of the
//!   finished epoch, the new epoch's `epoch_stake` and `epoch_stake_progress`, the member
//!   rewards that became spendable, the pool deposit refunds of pools retiring now (the
//!   ledger's POOLREAP rule in SQL), and the finished epoch's aggregate row.
//! - Rollbacks (`--rollback-every`) are done the way db-sync does them: in one transaction,
//!   delete every block with `block_no ≥ N` (and their transactions) and insert the new
//!   block N; the rest of the winning fork follows at once, so readers see the same tip
//!   height with different hashes and new, higher ids. A rollback never crosses an epoch
//!   boundary (that would need db-sync's epoch-level undo, which the simulator does not
//!   model), so it is skipped when the fork would reach the epoch's first block.
//! - `--stall-after` stops producing (the process stays up, idle) so a stale tip can be
//!   shown.

use std::future::Future;
use std::task::Poll;
use std::time::{Duration, Instant};

use dbsync_fixture::SchemaVersion;
use tokio_postgres::{Client, GenericClient};

use crate::error::Context as _;
use crate::generate::describe;
use crate::network::Network;
use crate::rng::Rng;
use crate::time::rfc3339;
use crate::SimError;

/// How to follow.
#[derive(Clone, Debug)]
pub struct FollowOptions {
    /// Chain clock speed relative to the wall clock (1 = real time).
    pub speed: f64,
    /// Roll back 1–3 blocks this often; `None` = never (see [`follow_with`] for occasional
    /// random rollbacks, the CLI's default).
    pub rollback_every: Option<Duration>,
    /// Stop producing blocks after this long (stay up, idle).
    pub stall_after: Option<Duration>,
    /// Stop (return) after producing this many blocks.
    pub max_blocks: Option<u64>,
    /// Seed for gaps, hashes and rollback depths (mixed with the clock, so two runs never
    /// produce the same hashes).
    pub seed: u64,
    /// Print one line per block, boundary and rollback on stdout.
    pub log: bool,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            speed: 1.0,
            rollback_every: None,
            stall_after: None,
            max_blocks: None,
            seed: 1,
            log: true,
        }
    }
}

/// When the follower rolls back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rollbacks {
    /// Never.
    Never,
    /// After about one block in [`OCCASIONAL_ROLLBACK_BLOCKS`] (every ~10 minutes of chain
    /// time), like the short forks a following db-sync sees.
    Occasional,
    /// At this interval of wall-clock time.
    Every(Duration),
}

/// Mean number of blocks between occasional rollbacks.
pub const OCCASIONAL_ROLLBACK_BLOCKS: u64 = 30;

/// One rollback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollback {
    /// Blocks replaced.
    pub depth: u32,
    /// `(block_no, old hash, new hash)` per replaced height.
    pub replaced: Vec<(i64, Vec<u8>, Vec<u8>)>,
}

/// What `follow` did (when it returns).
#[derive(Clone, Debug, Default)]
pub struct FollowReport {
    /// Blocks written (rollback replacements included).
    pub blocks: u64,
    /// Rollbacks done.
    pub rollbacks: Vec<Rollback>,
    /// Epochs entered.
    pub epochs_entered: Vec<i64>,
    /// Whether it stalled.
    pub stalled: bool,
}

/// The newest block.
#[derive(Clone, Debug)]
struct Tip {
    id: i64,
    block_no: i64,
    slot: i64,
    epoch: i64,
}

struct Follower {
    network: Network,
    version: SchemaVersion,
    leaders: Vec<i64>,
    rng: Rng,
    tip: Tip,
    log: bool,
    /// Wall clock when the current epoch began (for `epoch_sync_time.seconds`).
    epoch_started: Instant,
}

/// Follows until `shutdown` resolves, `max_blocks` are written, or (after a stall) forever;
/// rolls back at `opts.rollback_every`, or never.
pub async fn follow(
    client: &mut Client,
    opts: &FollowOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<FollowReport, SimError> {
    let rollbacks = opts
        .rollback_every
        .map_or(Rollbacks::Never, Rollbacks::Every);
    follow_with(client, opts, rollbacks, shutdown).await
}

/// Like [`follow`], with the rollback policy given explicitly (`opts.rollback_every` is
/// ignored), e.g. [`Rollbacks::Occasional`].
pub async fn follow_with(
    client: &mut Client,
    opts: &FollowOptions,
    rollbacks: Rollbacks,
    shutdown: impl Future<Output = ()>,
) -> Result<FollowReport, SimError> {
    if !(opts.speed > 0.0 && opts.speed.is_finite()) {
        return Err(SimError::Invalid(
            "--speed must be a positive number".into(),
        ));
    }
    let (network, version) = describe(client).await?;
    let tip = read_tip(client).await?.ok_or_else(|| {
        SimError::Invalid("no blocks yet (run `dbsync-sim generate` first)".into())
    })?;
    let leaders: Vec<i64> = client
        .query(
            "SELECT id FROM slot_leader WHERE pool_hash_id IS NOT NULL ORDER BY id",
            &[],
        )
        .await
        .context("reading slot leaders")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let leaders = if leaders.is_empty() {
        vec![client
            .query_one("SELECT min(id) FROM slot_leader", &[])
            .await
            .context("reading slot leaders")?
            .get::<_, i64>(0)]
    } else {
        leaders
    };
    let clock_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut f = Follower {
        network,
        version,
        leaders,
        rng: Rng::new(opts.seed ^ clock_seed),
        tip,
        log: opts.log,
        epoch_started: Instant::now(),
    };

    let mut report = FollowReport::default();
    let start_wall = Instant::now();
    let start_unix = crate::unix_now() as f64;
    let mut last_rollback = Instant::now();
    // A rollback replaces blocks made since the previous one: at least one new block first.
    let mut fresh_blocks = 0u64;
    tokio::pin!(shutdown);
    f.say(&format!(
        "following {} ({}) from block {} slot {} epoch {} at speed {}",
        f.network.name(),
        f.version,
        f.tip.block_no,
        f.tip.slot,
        f.tip.epoch,
        opts.speed
    ));
    loop {
        if opts.max_blocks.is_some_and(|max| report.blocks >= max) {
            return Ok(report);
        }
        // While catching up (blocks already due) nothing below waits on `shutdown`; look
        // at it between blocks so a Ctrl-C stops a long catch-up too.
        let stop = std::future::poll_fn(|cx| Poll::Ready(shutdown.as_mut().poll(cx).is_ready()));
        if stop.await {
            return Ok(report);
        }
        if opts.stall_after.is_some_and(|d| start_wall.elapsed() >= d) {
            f.say(&format!(
                "stalled: no more blocks after {:?}; the tip stays at block {} (slot {})",
                opts.stall_after.unwrap_or_default(),
                f.tip.block_no,
                f.tip.slot
            ));
            report.stalled = true;
            shutdown.as_mut().await;
            return Ok(report);
        }
        let due = match rollbacks {
            Rollbacks::Never => false,
            Rollbacks::Occasional => f.rng.below(OCCASIONAL_ROLLBACK_BLOCKS) == 0,
            Rollbacks::Every(every) => last_rollback.elapsed() >= every,
        };
        if fresh_blocks > 0 && due {
            last_rollback = Instant::now();
            fresh_blocks = 0;
            if let Some(rb) = f.rollback(client).await? {
                report.blocks += u64::from(rb.depth);
                report.rollbacks.push(rb);
                continue;
            }
        }

        let gap = f.gap();
        let next_slot = f.tip.slot + gap;
        let next_unix = f.network.clock.slot_time(next_slot) as f64;
        // Blocks whose slot time has passed are due at once; later ones when the chain
        // clock (anchored at start, running `speed` times the wall clock) reaches them.
        let wait =
            ((next_unix - start_unix).max(0.0) / opts.speed) - start_wall.elapsed().as_secs_f64();
        if wait > 0.0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {}
                _ = shutdown.as_mut() => return Ok(report),
            }
        }
        let entered = f.produce(client, next_slot).await?;
        report.blocks += 1;
        fresh_blocks += 1;
        if let Some(epoch) = entered {
            report.epochs_entered.push(epoch);
        }
    }
}

async fn read_tip(client: &Client) -> Result<Option<Tip>, SimError> {
    Ok(client
        .query_opt(
            "SELECT id, block_no::int8, slot_no::int8, epoch_no::int8 FROM block \
             WHERE block_no IS NOT NULL ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .context("reading the tip")?
        .map(|r| Tip {
            id: r.get(0),
            block_no: r.get(1),
            slot: r.get(2),
            epoch: r.get(3),
        }))
}

impl Follower {
    fn say(&self, line: &str) {
        if self.log {
            println!("{} {line}", rfc3339(crate::unix_now()));
        }
    }

    /// Slots to the next block: geometric with mean 20.
    fn gap(&mut self) -> i64 {
        let u = self.rng.unit().max(1e-12);
        1 + (u.ln() / (1.0 - 0.05_f64).ln()).floor() as i64
    }

    /// Writes the next block at `slot` (with its epoch boundary, if it starts an epoch);
    /// returns the epoch entered, if any.
    async fn produce(&mut self, client: &mut Client, slot: i64) -> Result<Option<i64>, SimError> {
        let epoch = self.network.clock.epoch_of_slot(slot);
        let tx = client.transaction().await.context("BEGIN")?;
        let (id, hash) = self.insert_block(&tx, slot, self.tip.id).await?;
        let entered = if epoch > self.tip.epoch {
            let notes = self.boundary(&tx, epoch, id, slot).await?;
            Some((epoch, notes))
        } else {
            None
        };
        tx.commit().await.context("COMMIT")?;
        self.tip = Tip {
            id,
            block_no: self.tip.block_no + 1,
            slot,
            epoch,
        };
        let lag = crate::unix_now() - self.network.clock.slot_time(slot);
        self.say(&format!(
            "block {} slot {} epoch {} hash {} lag {lag}s",
            self.tip.block_no,
            slot,
            epoch,
            short(&hash)
        ));
        Ok(entered.map(|(epoch, notes)| {
            self.say(&format!("epoch {epoch} begins: {notes}"));
            epoch
        }))
    }

    /// Inserts a block after `previous_id` with one or two transactions; `(id, hash)`.
    async fn insert_block(
        &mut self,
        client: &impl GenericClient,
        slot: i64,
        previous_id: i64,
    ) -> Result<(i64, Vec<u8>), SimError> {
        let p = &self.network.clock;
        let epoch = p.epoch_of_slot(slot);
        let (major, minor) = self.network.protocol_at(epoch);
        let hash = self.rng.hash32().to_vec();
        let leader = self.leaders[self.rng.below(self.leaders.len() as u64) as usize];
        let txs = self.rng.range(1, 2);
        let row = client
            .query_one(
                "INSERT INTO block (hash, epoch_no, slot_no, epoch_slot_no, block_no, previous_id, \
                    slot_leader_id, size, time, tx_count, proto_major, proto_minor) \
                 SELECT $1::bytea, $2::int8, $3::int8, $4::int8, \
                        (SELECT block_no FROM block WHERE id = $5::int8) + 1, $5::int8, \
                        $6::int8, $7::int8, timestamp '1970-01-01' + $8::int8 * interval '1 second', \
                        $9::int8, $10::int4, $11::int4 \
                 RETURNING id",
                &[
                    &hash,
                    &epoch,
                    &slot,
                    &(slot - p.epoch_first_slot(epoch)),
                    &previous_id,
                    &leader,
                    &(1_000 + txs * 400),
                    &p.slot_time(slot),
                    &txs,
                    &major,
                    &minor,
                ],
            )
            .await
            .context("inserting a block")?;
        let id: i64 = row.get(0);
        for index in 0..txs {
            let tx_hash = self.rng.hash32().to_vec();
            let fee = crate::plan::utxo::fee_at(index);
            // Spend the newest unspent output (the previous transaction's change), keep the
            // change and pay 10 ADA: the transaction balances with deposit 0.
            let written = client
                .execute(
                    "WITH src AS (
                        SELECT o.tx_id, o.index, o.value::int8 AS value FROM tx_out o
                        WHERE o.tx_id = (SELECT max(id) FROM tx)
                          AND NOT EXISTS (SELECT 1 FROM tx_in i
                                          WHERE i.tx_out_id = o.tx_id AND i.tx_out_index = o.index)
                        ORDER BY o.index LIMIT 1),
                     t AS (
                        INSERT INTO tx (hash, block_id, block_index, out_sum, fee, deposit, size,
                                        valid_contract, script_size)
                        SELECT $1::bytea, $2::int8, $3::int8, src.value - $4::int8, $4::int8, 0,
                               $5::int8, true, 0 FROM src
                        RETURNING id),
                     i AS (
                        INSERT INTO tx_in (tx_in_id, tx_out_id, tx_out_index)
                        SELECT t.id, src.tx_id, src.index FROM t, src RETURNING 1)
                     INSERT INTO tx_out (tx_id, index, address, address_has_script, value)
                     SELECT t.id, o.i, 'addr1simfollow', false,
                            CASE WHEN o.i = 0 THEN src.value - $4::int8 - $6::int8 ELSE $6::int8 END
                     FROM t, src, (VALUES (0), (1)) AS o(i)",
                    &[
                        &tx_hash,
                        &id,
                        &index,
                        &fee,
                        &(250 + self.rng.range(0, 750)),
                        &crate::plan::utxo::DRAIN,
                    ],
                )
                .await
                .context("inserting a transaction")?;
            if written != 2 {
                return Err(SimError::Invalid(
                    "the newest transaction has no unspent output to spend (generate first)".into(),
                ));
            }
        }
        Ok((id, hash))
    }

    /// What db-sync writes when the first block of `epoch` arrives.
    async fn boundary(
        &mut self,
        client: &impl GenericClient,
        epoch: i64,
        block_id: i64,
        slot: i64,
    ) -> Result<String, SimError> {
        let (major, minor) = self.network.protocol_at(epoch);
        let (dep_cols, dep_sum) = if self.version == SchemaVersion::V13_2 {
            ("deposits", "deposits")
        } else {
            (
                "deposits_stake, deposits_drep, deposits_proposal",
                "deposits_stake + deposits_drep + deposits_proposal",
            )
        };
        // Expansion moves ~0.17 % of the reserves into treasury and rewards; utxo is the
        // residual, so the row sums to the supply whatever the previous row said.
        client
            .execute(
                &format!(
                    "WITH prev AS (SELECT * FROM ada_pots WHERE epoch_no < $2::int8 \
                                   ORDER BY epoch_no DESC, id DESC LIMIT 1), \
                     n AS (SELECT treasury + div(reserves, 10000) * 3 AS treasury, \
                                  reserves - div(reserves, 10000) * 17 AS reserves, \
                                  rewards + div(reserves, 10000) * 14 AS rewards, \
                                  {dep_cols}, fees FROM prev) \
                     INSERT INTO ada_pots (slot_no, epoch_no, treasury, reserves, rewards, utxo, \
                                           {dep_cols}, fees, block_id) \
                     SELECT $1::int8, $2::int8, treasury, reserves, rewards, \
                            {supply} - (treasury + reserves + rewards + {dep_sum} + fees), \
                            {dep_cols}, fees, $3::int8 FROM n",
                    supply = crate::MAX_LOVELACE_SUPPLY
                ),
                &[&slot, &epoch, &block_id],
            )
            .await
            .context("inserting ada_pots")?;
        client
            .execute(
                "INSERT INTO epoch_param (epoch_no, min_fee_a, min_fee_b, max_block_size, \
                    max_tx_size, max_bh_size, key_deposit, pool_deposit, max_epoch, \
                    optimal_pool_count, influence, monetary_expand_rate, treasury_growth_rate, \
                    decentralisation, protocol_major, protocol_minor, min_utxo_value, \
                    min_pool_cost, nonce, coins_per_utxo_size, block_id, gov_action_lifetime, \
                    gov_action_deposit, drep_deposit, drep_activity) \
                 SELECT $1::int8, min_fee_a, min_fee_b, max_block_size, max_tx_size, max_bh_size, \
                    key_deposit, pool_deposit, max_epoch, optimal_pool_count, influence, \
                    monetary_expand_rate, treasury_growth_rate, decentralisation, $2::int4, \
                    $3::int4, min_utxo_value, min_pool_cost, \
                    sha256(int8send($1::int8) || '\\x6e'::bytea), coins_per_utxo_size, $4::int8, \
                    gov_action_lifetime, gov_action_deposit, drep_deposit, drep_activity \
                 FROM epoch_param WHERE epoch_no < $1::int8 ORDER BY epoch_no DESC, id DESC LIMIT 1",
                &[&epoch, &major, &minor, &block_id],
            )
            .await
            .context("inserting epoch_param")?;

        // The finished epoch: how long it took on the wall clock, and whether the boundary
        // arrived within db-sync's 120 s "following" window.
        let seconds = self.epoch_started.elapsed().as_secs() as i64;
        self.epoch_started = Instant::now();
        let lag = (crate::unix_now() - self.network.clock.slot_time(slot)).abs();
        let state = if lag <= 120 { "following" } else { "lagging" };
        client
            .execute(
                "INSERT INTO epoch_sync_time (no, seconds, state) \
                 VALUES ($1::int8, $2::int8, $3::text::syncstatetype) \
                 ON CONFLICT (no) DO UPDATE SET seconds = EXCLUDED.seconds, state = EXCLUDED.state",
                &[&(epoch - 1), &seconds, &state],
            )
            .await
            .context("inserting epoch_sync_time")?;

        let staked = client
            .execute(
                "INSERT INTO epoch_stake (addr_id, pool_id, amount, epoch_no) \
                 SELECT addr_id, pool_id, amount + (addr_id % 7) * 1000000, $1::int8 \
                 FROM epoch_stake WHERE epoch_no = $1::int8 - 1 \
                   AND NOT EXISTS (SELECT 1 FROM epoch_stake WHERE epoch_no = $1::int8)",
                &[&epoch],
            )
            .await
            .context("inserting epoch_stake")?;
        client
            .execute(
                "INSERT INTO epoch_stake_progress (epoch_no, completed) VALUES ($1::int8, true) \
                 ON CONFLICT (epoch_no) DO UPDATE SET completed = true",
                &[&epoch],
            )
            .await
            .context("inserting epoch_stake_progress")?;
        let members = client
            .execute(
                "INSERT INTO reward (addr_id, type, amount, spendable_epoch, pool_id) \
                 SELECT addr_id, 'member', div(amount, 1900) + 1, $1::int8, pool_id \
                 FROM epoch_stake WHERE epoch_no = $1::int8 - 2 \
                 ON CONFLICT DO NOTHING",
                &[&epoch],
            )
            .await
            .context("inserting member rewards")?;
        let refunds = client
            .execute(POOLREAP_SQL, &[&epoch, &crate::POOL_DEPOSIT])
            .await
            .context("inserting pool refunds")?;

        let table = if self.version == SchemaVersion::V13_7 {
            "epoch_finalized"
        } else {
            "epoch"
        };
        client
            .execute(
                &format!(
                    "INSERT INTO {table} (out_sum, fees, tx_count, blk_count, no, start_time, end_time) \
                     SELECT coalesce(sum(t.out_sum), 0), coalesce(sum(t.fee), 0), count(t.id), \
                            count(DISTINCT b.id), $1::int8, min(b.time), max(b.time) \
                     FROM block b LEFT JOIN tx t ON t.block_id = b.id \
                     WHERE b.epoch_no = $1::int8 HAVING count(*) > 0 \
                     ON CONFLICT (no) DO UPDATE SET out_sum = EXCLUDED.out_sum, fees = EXCLUDED.fees, \
                        tx_count = EXCLUDED.tx_count, blk_count = EXCLUDED.blk_count, \
                        start_time = EXCLUDED.start_time, end_time = EXCLUDED.end_time"
                ),
                &[&(epoch - 1)],
            )
            .await
            .context("finalising the epoch aggregate")?;
        Ok(format!(
            "ada_pots, epoch_param, epoch_sync_time {} ({state}, {seconds}s), epoch_stake {staked} rows, \
             member rewards {members}, pool refunds {refunds}",
            epoch - 1
        ))
    }

    /// A db-sync style rollback of 1–3 blocks; `None` when it would cross an epoch boundary.
    async fn rollback(&mut self, client: &mut Client) -> Result<Option<Rollback>, SimError> {
        let depth = self.rng.range(1, 3);
        let first_no = self.tip.block_no - depth + 1;
        let doomed = client
            .query(
                "SELECT id, block_no::int8, slot_no::int8, epoch_no::int8, hash::bytea FROM block \
                 WHERE block_no >= $1::int8 ORDER BY block_no, id",
                &[&first_no],
            )
            .await
            .context("reading the blocks to roll back")?;
        // The epoch's first block (where its ada_pots and epoch_param rows point) must survive.
        let survivors_in_epoch: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM block WHERE epoch_no = $1::int8 \
                                AND block_no < $2::int8)",
                &[&self.tip.epoch, &first_no],
            )
            .await
            .context("reading the blocks to roll back")?
            .get(0);
        let same_epoch = doomed.iter().all(|r| r.get::<_, i64>(3) == self.tip.epoch);
        if doomed.is_empty() || !same_epoch || !survivors_in_epoch {
            self.say("rollback skipped: the fork would reach the epoch's first block");
            return Ok(None);
        }
        let ids: Vec<i64> = doomed.iter().map(|r| r.get(0)).collect();
        let parent: i64 = client
            .query_one(
                "SELECT id FROM block WHERE block_no = $1::int8 - 1 ORDER BY id DESC LIMIT 1",
                &[&first_no],
            )
            .await
            .context("reading the fork point")?
            .get(0);

        // One transaction: delete every block >= N, insert the new block N.
        let tx = client.transaction().await.context("BEGIN")?;
        // db-sync deletes what hangs off the removed transactions with them.
        tx.batch_execute(&format!(
            "CREATE TEMP TABLE IF NOT EXISTS sim_doomed (id int8);
             TRUNCATE sim_doomed;
             INSERT INTO sim_doomed SELECT id FROM tx WHERE block_id IN ({ids});
             DELETE FROM tx_in WHERE tx_in_id IN (SELECT id FROM sim_doomed);
             DELETE FROM tx_out WHERE tx_id IN (SELECT id FROM sim_doomed);
             DELETE FROM withdrawal WHERE tx_id IN (SELECT id FROM sim_doomed);
             DELETE FROM collateral_tx_in WHERE tx_in_id IN (SELECT id FROM sim_doomed);
             DELETE FROM reference_tx_in WHERE tx_in_id IN (SELECT id FROM sim_doomed);
             DELETE FROM tx WHERE id IN (SELECT id FROM sim_doomed);",
            ids = ids
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await
        .context("deleting rolled-back transactions")?;
        tx.execute("DELETE FROM block WHERE id = ANY($1::int8[])", &[&ids])
            .await
            .context("deleting rolled-back blocks")?;
        let first_slot: i64 = doomed[0].get(2);
        let (mut previous, first_hash) = self.insert_block(&tx, first_slot, parent).await?;
        tx.commit().await.context("COMMIT rollback")?;

        // The rest of the winning fork arrives right after, one block per transaction.
        let mut replaced = vec![(first_no, doomed[0].get::<_, Vec<u8>>(4), first_hash)];
        for row in &doomed[1..] {
            let slot: i64 = row.get(2);
            let tx = client.transaction().await.context("BEGIN")?;
            let (id, hash) = self.insert_block(&tx, slot, previous).await?;
            tx.commit().await.context("COMMIT")?;
            previous = id;
            replaced.push((row.get(1), row.get(4), hash));
        }
        self.tip = read_tip(client).await?.unwrap_or(self.tip.clone());
        let detail: Vec<String> = replaced
            .iter()
            .map(|(no, old, new)| format!("{no}: {} -> {}", short(old), short(new)))
            .collect();
        self.say(&format!(
            "rollback depth {depth}: deleted blocks >= {first_no} and replaced them ({}); tip block {}",
            detail.join(", "),
            self.tip.block_no
        ));
        Ok(Some(Rollback {
            depth: depth as u32,
            replaced,
        }))
    }
}

/// The ledger's POOLREAP at the boundary into `$1`: every retirement scheduled for that
/// epoch that was neither superseded by a later retirement nor cancelled by a
/// re-registration before the epoch pays the deposit (`$2`) back to the reward account of
/// the pool's newest update before it, if that account is registered at the boundary.
pub const POOLREAP_SQL: &str = "
    INSERT INTO reward (addr_id, type, amount, spendable_epoch, pool_id)
    SELECT acct.reward_addr_id, 'refund', $2::int8, $1::int8, pr.hash_id
    FROM pool_retire pr
    CROSS JOIN LATERAL (
        SELECT pu.reward_addr_id FROM pool_update pu
        WHERE pu.hash_id = pr.hash_id
          AND (pu.registered_tx_id, pu.cert_index) < (pr.announced_tx_id, pr.cert_index)
        ORDER BY pu.registered_tx_id DESC, pu.cert_index DESC LIMIT 1) acct
    WHERE pr.retiring_epoch = $1::int8
      AND NOT EXISTS (
        SELECT 1 FROM pool_retire p2 JOIN tx ON tx.id = p2.announced_tx_id
        JOIN block b ON b.id = tx.block_id
        WHERE p2.hash_id = pr.hash_id AND b.epoch_no < $1::int8
          AND (p2.announced_tx_id, p2.cert_index) > (pr.announced_tx_id, pr.cert_index))
      AND NOT EXISTS (
        SELECT 1 FROM pool_update pu JOIN tx ON tx.id = pu.registered_tx_id
        JOIN block b ON b.id = tx.block_id
        WHERE pu.hash_id = pr.hash_id AND b.epoch_no < $1::int8
          AND (pu.registered_tx_id, pu.cert_index) > (pr.announced_tx_id, pr.cert_index))
      AND EXISTS (
        SELECT 1 FROM (
            SELECT tx_id, cert_index, true AS is_reg FROM stake_registration
             WHERE addr_id = acct.reward_addr_id AND epoch_no < $1::int8
            UNION ALL
            SELECT tx_id, cert_index, false FROM stake_deregistration
             WHERE addr_id = acct.reward_addr_id AND epoch_no < $1::int8
            ORDER BY tx_id DESC, cert_index DESC LIMIT 1) last_cert
        WHERE last_cert.is_reg)
    ON CONFLICT DO NOTHING";

/// The last six bytes in hex: generated hashes start with the row id, so their heads look
/// alike; the tails differ.
fn short(hash: &[u8]) -> String {
    hash.iter()
        .skip(hash.len().saturating_sub(6))
        .map(|b| format!("{b:02x}"))
        .collect()
}
