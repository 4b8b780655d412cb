//! Writes a [`Plan`] with server-side bulk SQL: each statement expands a compact description
//! (segments, spans, active pools) with `generate_series`, or inserts a chunk of planned rows
//! through `unnest` of arrays. Nothing is sent row by row.
//!
//! Every generated id is explicit, so rows point at each other by arithmetic (a block's
//! transactions, an epoch's first block) and no lookup is needed during the load. Hashes
//! start with the row id (big-endian) followed by SHA-256 bytes: unique, deterministic per
//! seed, and appended in index order, which keeps the unique-hash index builds sequential.
//! (Real hashes are uniformly random; nothing in the exporter depends on their order.)

use dbsync_fixture::{near_tip_ddl, SchemaVersion};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use crate::error::Context as _;
use crate::plan::layout::Segment;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::SimError;

/// Rows per `unnest` statement for planned rows.
const CHUNK: usize = 50_000;
/// Approximate rows per bulk statement (blocks, transactions, stake), for progress steps.
const BULK_ROWS: i64 = 1_000_000;

type Param<'a> = &'a (dyn ToSql + Sync);

/// Session settings for a bulk load on a throwaway database.
pub async fn prepare_session(client: &Client) -> Result<(), SimError> {
    client
        .batch_execute(
            "SET synchronous_commit = off; \
             SET maintenance_work_mem = '1GB'; \
             SET work_mem = '256MB'; \
             SET TIME ZONE 'UTC';",
        )
        .await
        .context("preparing the session")
}

/// Tables that a bulk load fills with millions of rows.
const BULK_TABLES: [&str; 7] = [
    "block",
    "tx",
    "epoch_stake",
    "reward",
    "tx_out",
    "tx_in",
    "withdrawal",
];

/// Turns autovacuum off for the bulk tables during the load (insert-triggered vacuums would
/// compete for the two cores with the load itself) and back to the server default after.
pub async fn autovacuum(client: &Client, on: bool) -> Result<(), SimError> {
    for table in BULK_TABLES {
        let sql = if on {
            format!("ALTER TABLE {table} RESET (autovacuum_enabled)")
        } else {
            format!("ALTER TABLE {table} SET (autovacuum_enabled = false)")
        };
        client
            .batch_execute(&sql)
            .await
            .context("switching autovacuum")?;
    }
    Ok(())
}

/// Slot leaders (Byron delegates, one per pool), pools and stake addresses.
pub async fn write_entities(client: &Client, plan: &Plan) -> Result<(), SimError> {
    let seed = seed_bytes(plan);
    let delegates = crate::plan::layout::BYRON_DELEGATES;
    client
        .execute(
            "INSERT INTO pool_hash (id, hash_raw, view) \
             SELECT g, substr(h, 1, 28), 'pool1' || encode(substr(h, 1, 26), 'hex') \
             FROM generate_series(1::int8, $1::int8) g \
             CROSS JOIN LATERAL (SELECT sha256(int8send(g) || $2::bytea || '\\x70'::bytea) AS h) x",
            &[&plan.ledger.pools, &seed],
        )
        .await
        .context("inserting pool_hash")?;
    client
        .execute(
            "INSERT INTO slot_leader (id, hash, pool_hash_id, description) \
             SELECT $1::int8 + g - 1, substr(sha256(int8send(g) || $3::bytea || '\\x64'::bytea), 1, 28), \
                    NULL, 'ByronGenesis-' || g \
             FROM generate_series(1::int8, $2::int8) g",
            &[&plan.leader_base, &delegates, &seed],
        )
        .await
        .context("inserting Byron slot leaders")?;
    client
        .execute(
            "INSERT INTO slot_leader (id, hash, pool_hash_id, description) \
             SELECT $1::int8 + p.id - 1, p.hash_raw, p.id, 'Pool-' || encode(substr(p.hash_raw, 1, 8), 'hex') \
             FROM pool_hash p ORDER BY p.id",
            &[&(plan.leader_base + delegates)],
        )
        .await
        .context("inserting pool slot leaders")?;
    client
        .execute(
            "INSERT INTO stake_address (id, hash_raw, view, script_hash) \
             SELECT g, '\\xe1'::bytea || substr(h, 1, 28), \
                    'stake1u' || encode(substr(h, 1, 26), 'hex'), NULL \
             FROM generate_series(1::int8, $1::int8) g \
             CROSS JOIN LATERAL (SELECT sha256(int8send(g) || $2::bytea || '\\x73'::bytea) AS h) x",
            &[&plan.ledger.stake_addresses, &seed],
        )
        .await
        .context("inserting stake_address")?;
    Ok(())
}

/// Groups segments into runs of about `BULK_ROWS` rows by `rows_of`.
fn chunks(segments: &[Segment], rows_of: impl Fn(&Segment) -> i64) -> Vec<&[Segment]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut rows = 0;
    for (i, s) in segments.iter().enumerate() {
        rows += rows_of(s);
        if rows >= BULK_ROWS {
            out.push(&segments[start..=i]);
            start = i + 1;
            rows = 0;
        }
    }
    if start < segments.len() {
        out.push(&segments[start..]);
    }
    out
}

/// The `block` rows, one statement per run of segments.
pub async fn write_blocks(
    client: &Client,
    plan: &Plan,
    progress: &Progress,
) -> Result<(), SimError> {
    const SQL: &str = "
        INSERT INTO block (id, hash, epoch_no, slot_no, epoch_slot_no, block_no, previous_id,
                           slot_leader_id, size, time, tx_count, proto_major, proto_minor)
        SELECT i.id,
               int8send(i.id) || substr(sha256(int8send(i.id) || $16::bytea || '\\x62'::bytea), 9),
               s.epoch,
               sl.slot,
               sl.slot - s.epoch_first_slot,
               CASE WHEN g.j < 0 THEN NULL ELSE s.first_block_no + g.j END,
               i.id - 1,
               s.leader_base + hh.h % s.leader_count,
               CASE WHEN g.j < 0 THEN 500
                    WHEN s.slot_seconds = 20 THEN 600 + hh.h % 400
                    ELSE 800 + 400 * s.k + hh.h % 2000 END,
               timestamp '1970-01-01' + (s.first_slot_unix
                   + (coalesce(sl.slot, s.first_slot) - s.first_slot) * s.slot_seconds) * interval '1 second',
               CASE WHEN g.j < 0 THEN 0 ELSE s.k END,
               s.major, s.minor
        FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::bool[],
                    $7::int8[], $8::int8[], $9::int8[], $10::int4[], $11::int4[], $12::int8[],
                    $13::int8[], $14::int8[], $15::int8[])
             AS s(epoch, epoch_first_slot, first_slot, len, regular, ebb, first_id, first_block_no,
                  k, major, minor, first_slot_unix, slot_seconds, leader_base, leader_count)
        CROSS JOIN LATERAL generate_series(CASE WHEN s.ebb THEN -1 ELSE 0 END, s.regular - 1) AS g(j)
        CROSS JOIN LATERAL (SELECT s.first_id + s.ebb::int + g.j AS id) i
        CROSS JOIN LATERAL (SELECT (i.id * 2654435761) % 4294967291 AS h) hh
        CROSS JOIN LATERAL (SELECT CASE WHEN g.j < 0 THEN NULL ELSE
               s.first_slot + (g.j * s.len) / s.regular
               + hh.h % greatest(((g.j + 1) * s.len) / s.regular - (g.j * s.len) / s.regular, 1)
               END AS slot) sl";
    let seed = seed_bytes(plan);
    let phase = progress.phase("blocks", plan.layout.blocks() as u64);
    for run in chunks(&plan.layout.segments, Segment::rows) {
        let col = |f: fn(&Segment) -> i64| run.iter().map(f).collect::<Vec<i64>>();
        let epoch = col(|s| s.epoch);
        let epoch_first_slot = col(|s| s.epoch_first_slot);
        let first_slot = col(|s| s.first_slot);
        let len = col(|s| s.len);
        let regular = col(|s| s.regular);
        let ebb: Vec<bool> = run.iter().map(|s| s.ebb).collect();
        let first_id = col(|s| s.first_id);
        let first_block_no = col(|s| s.first_block_no);
        let k = col(|s| s.txs_per_block);
        let major: Vec<i32> = run.iter().map(|s| s.major).collect();
        let minor: Vec<i32> = run.iter().map(|s| s.minor).collect();
        let first_slot_unix = col(|s| s.first_slot_unix);
        let slot_seconds = col(|s| s.slot_seconds);
        let leader_base = col(|s| s.leader_base);
        let leader_count = col(|s| s.leader_count);
        let params: [Param<'_>; 16] = [
            &epoch,
            &epoch_first_slot,
            &first_slot,
            &len,
            &regular,
            &ebb,
            &first_id,
            &first_block_no,
            &k,
            &major,
            &minor,
            &first_slot_unix,
            &slot_seconds,
            &leader_base,
            &leader_count,
            &seed,
        ];
        phase.note(format!(
            "epochs {}..{}",
            run[0].epoch,
            run[run.len() - 1].epoch
        ));
        let n = client
            .execute(SQL, &params)
            .await
            .context("inserting blocks")?;
        phase.inc(n);
    }
    phase.finish();
    Ok(())
}

/// What each generated transaction moves from its change to its payment (see
/// [`crate::plan::utxo`]).
pub const DRAIN: i64 = crate::plan::utxo::DRAIN;

/// The irregular transactions ([`crate::plan::utxo::Utxo::adjustments`]) in a keyed staging
/// table the bulk statements join, plus the epochs' transaction ranges (for withdrawals).
/// Unlogged tables rather than temporary ones: both connections of the load read them.
pub async fn stage_adjustments(client: &Client, plan: &Plan) -> Result<(), SimError> {
    client
        .batch_execute(
            "DROP TABLE IF EXISTS sim_adj, sim_epoch;
             CREATE UNLOGGED TABLE sim_adj (tx_id int8 PRIMARY KEY, deposit int8 NOT NULL DEFAULT 0,
                 deposit_null bool NOT NULL DEFAULT false, donation int8 NOT NULL DEFAULT 0,
                 fee_delta int8 NOT NULL DEFAULT 0, change_tx int8, change_index int4,
                 extra_tx int8, extra_index int4, extra_value int8 NOT NULL DEFAULT 0,
                 invalid bool NOT NULL DEFAULT false, extra int8 NOT NULL DEFAULT 0,
                 wdr int8 NOT NULL DEFAULT 0);
             CREATE UNLOGGED TABLE sim_epoch (epoch int8 PRIMARY KEY, first_tx int8, txs int8);",
        )
        .await
        .context("creating the staging tables")?;
    let adj: Vec<(&i64, &crate::plan::utxo::TxAdj)> = plan.utxo.adjustments.iter().collect();
    for chunk in adj.chunks(CHUNK) {
        let id: Vec<i64> = chunk.iter().map(|(t, _)| **t).collect();
        let dep: Vec<i64> = chunk.iter().map(|(_, a)| a.deposit).collect();
        let null: Vec<bool> = chunk.iter().map(|(_, a)| a.deposit_null).collect();
        let don: Vec<i64> = chunk.iter().map(|(_, a)| a.donation).collect();
        let fd: Vec<i64> = chunk.iter().map(|(_, a)| a.fee_delta).collect();
        let ct: Vec<Option<i64>> = chunk
            .iter()
            .map(|(_, a)| a.change_from.map(|c| c.0))
            .collect();
        let ci: Vec<Option<i32>> = chunk
            .iter()
            .map(|(_, a)| a.change_from.map(|c| c.1))
            .collect();
        let xt: Vec<Option<i64>> = chunk
            .iter()
            .map(|(_, a)| a.extra_input.map(|c| c.0))
            .collect();
        let xi: Vec<Option<i32>> = chunk
            .iter()
            .map(|(_, a)| a.extra_input.map(|c| c.1))
            .collect();
        let xv: Vec<i64> = chunk
            .iter()
            .map(|(_, a)| a.extra_input.map_or(0, |c| c.2))
            .collect();
        let inv: Vec<bool> = chunk.iter().map(|(_, a)| a.invalid.is_some()).collect();
        let ex: Vec<i64> = chunk.iter().map(|(_, a)| a.extra).collect();
        let params: [Param<'_>; 12] = [
            &id, &dep, &null, &don, &fd, &ct, &ci, &xt, &xi, &xv, &inv, &ex,
        ];
        client
            .execute(
                "INSERT INTO sim_adj (tx_id, deposit, deposit_null, donation, fee_delta, change_tx, \
                    change_index, extra_tx, extra_index, extra_value, invalid, extra) \
                 SELECT * FROM unnest($1::int8[], $2::int8[], $3::bool[], $4::int8[], $5::int8[], \
                    $6::int8[], $7::int4[], $8::int8[], $9::int4[], $10::int8[], $11::bool[], $12::int8[])",
                &params,
            )
            .await
            .context("staging the irregular transactions")?;
    }
    let epochs: Vec<_> = plan.layout.epochs.iter().filter(|e| e.txs > 0).collect();
    let e: Vec<i64> = epochs.iter().map(|x| x.epoch).collect();
    let f: Vec<i64> = epochs.iter().map(|x| x.first_tx_id).collect();
    let n: Vec<i64> = epochs.iter().map(|x| x.txs).collect();
    client
        .execute(
            "INSERT INTO sim_epoch SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[])",
            &[&e, &f, &n],
        )
        .await
        .context("staging the epochs")?;
    client
        .batch_execute("ANALYZE sim_adj; ANALYZE sim_epoch;")
        .await
        .context("analyzing the staging tables")
}

/// Epochs apart between two withdrawals of one stake address.
pub const WITHDRAWAL_EVERY: i64 = 20;

/// `withdrawal`, derived from the reward rows actually written (`reward` and the instant
/// rewards): a stake address `a` withdraws in the epochs `E` with `(E + a) % 20 = 0`, each
/// time exactly the rewards that became spendable since its previous withdrawal epoch (the
/// whole balance, as the ledger does) — so its withdrawals up to any epoch never exceed its
/// rewards spendable by then, are equal to them in every withdrawal epoch, and include
/// rewards spendable in that very epoch. The withdrawal goes into a transaction of `E` chosen
/// by the address, never the epoch's last (where the invalid traps are). Then the traps'
/// zero withdrawal, and each transaction's withdrawal sum into the staging table.
pub async fn write_withdrawals(client: &Client, plan: &Plan) -> Result<u64, SimError> {
    let sql = format!(
        "INSERT INTO withdrawal (addr_id, amount, redeemer_id, tx_id)
         SELECT r.addr_id, sum(r.amount), NULL,
                e.first_tx + (r.addr_id * 7919 + w.epoch) % greatest(e.txs - 1, 1) AS tx_id
         FROM (SELECT addr_id, amount, spendable_epoch FROM reward
               UNION ALL SELECT addr_id, amount, spendable_epoch FROM {instant}) r
         CROSS JOIN LATERAL (SELECT r.spendable_epoch
                + ($1::int8 - (r.spendable_epoch + r.addr_id) % $1::int8) % $1::int8 AS epoch) w
         JOIN sim_epoch e ON e.epoch = w.epoch
         GROUP BY r.addr_id, w.epoch, e.first_tx, e.txs
         ORDER BY tx_id, r.addr_id",
        instant = plan.instant_table()
    );
    let n = client
        .execute(&sql, &[&WITHDRAWAL_EVERY])
        .await
        .context("inserting withdrawals")?;
    if let Some((addr, tx)) = plan.utxo.zero_withdrawal {
        client
            .execute(
                "INSERT INTO withdrawal (addr_id, amount, redeemer_id, tx_id) VALUES ($1, 0, NULL, $2)",
                &[&addr, &tx],
            )
            .await
            .context("inserting the zero withdrawal")?;
    }
    Ok(n)
}

/// Each transaction's withdrawals into the staging table (after the faults that change them).
pub async fn stage_withdrawals(client: &Client) -> Result<(), SimError> {
    client
        .batch_execute(
            "INSERT INTO sim_adj (tx_id, wdr)
             SELECT tx_id, sum(amount)::int8 FROM withdrawal GROUP BY tx_id
             ON CONFLICT (tx_id) DO UPDATE SET wdr = EXCLUDED.wdr;
             ANALYZE sim_adj;",
        )
        .await
        .context("staging withdrawals")
}

/// The `tx`, `tx_out` and `tx_in` rows of every generated transaction but the invalid traps,
/// one statement per run of segments (every `parts`-th run from `part`, so two connections
/// can share the work): change and payment outputs as [`crate::plan::utxo`] describes, fees
/// by block index, deposits, donations, withdrawals and extra inputs from the staging table.
pub async fn write_txs(
    client: &Client,
    plan: &Plan,
    progress: &Progress,
    (part, parts): (usize, usize),
) -> Result<(), SimError> {
    let v13_3 = plan.version != SchemaVersion::V13_2;
    let (don_col, don_val) = if v13_3 {
        (", treasury_donation", ", v.donation")
    } else {
        ("", "")
    };
    let sql = format!(
        "WITH g AS (
            SELECT i.id, s.first_block_id + gj.j AS block_id, t.t AS bi,
                   coalesce(a.deposit, 0) AS deposit, coalesce(a.deposit_null, false) AS deposit_null,
                   coalesce(a.donation, 0) AS donation, coalesce(a.fee_delta, 0) AS fee_delta,
                   a.change_tx, a.change_index, a.extra_tx, a.extra_index,
                   coalesce(a.extra_value, 0) AS extra_value, coalesce(a.invalid, false) AS invalid,
                   coalesce(a.extra, 0) AS extra, coalesce(a.wdr, 0) AS wdr
            FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[])
                 AS s(first_block_id, regular, k, first_tx_id)
            CROSS JOIN LATERAL generate_series(0, s.regular - 1) AS gj(j)
            CROSS JOIN LATERAL generate_series(0, s.k - 1) AS t(t)
            CROSS JOIN LATERAL (SELECT s.first_tx_id + gj.j * s.k + t.t AS id) i
            LEFT JOIN sim_adj a ON a.tx_id = i.id),
         w AS (
            SELECT g.*,
                   $5::int8 - $6::int8 * (g.id - $7::int8 + 1) - sum(g.extra) OVER (ORDER BY g.id) AS change,
                   $6::int8 - ({fee_base} + {fee_step} * g.bi) + g.wdr + greatest(-g.deposit, 0)
                       + g.extra_value AS own
            FROM g),
         v AS (
            SELECT w.*, w.own + CASE WHEN w.bi = 1 THEN lag(w.own) OVER (ORDER BY w.id) ELSE 0 END AS out1
            FROM w WHERE NOT w.invalid),
         t_ins AS (
            INSERT INTO tx (id, hash, block_id, block_index, out_sum, fee, deposit, size,
                            valid_contract, script_size{don_col})
            SELECT v.id, int8send(v.id) || substr(sha256(int8send(v.id) || $8::bytea || '\\x74'::bytea), 9),
                   v.block_id, v.bi, v.change + v.out1, {fee_base} + {fee_step} * v.bi + v.fee_delta,
                   CASE WHEN v.deposit_null THEN NULL ELSE v.deposit END, 250 + v.id % 750, true, 0{don_val}
            FROM v RETURNING 1),
         o_ins AS (
            INSERT INTO tx_out (tx_id, index, address, address_has_script, value)
            SELECT v.id, o.i, 'addr1sim' || to_hex(v.id * 2 + o.i), false,
                   CASE WHEN o.i = 0 THEN v.change ELSE v.out1 END
            FROM v CROSS JOIN (VALUES (0), (1)) AS o(i) RETURNING 1),
         i_ins AS (
            INSERT INTO tx_in (tx_in_id, tx_out_id, tx_out_index, redeemer_id)
            SELECT v.id, r.tx, r.ix, NULL FROM v
            CROSS JOIN LATERAL (VALUES
                (coalesce(v.change_tx, v.id - 1), coalesce(v.change_index, 0), true),
                (v.id - 1, 1, v.bi = 1),
                (v.extra_tx, v.extra_index, v.extra_tx IS NOT NULL)) AS r(tx, ix, keep)
            WHERE r.keep RETURNING 1)
         SELECT (SELECT count(*) FROM t_ins), (SELECT count(*) FROM o_ins), (SELECT count(*) FROM i_ins)",
        fee_base = crate::plan::utxo::FEE_BASE,
        fee_step = crate::plan::utxo::FEE_STEP,
    );
    let seed = seed_bytes(plan);
    let phase = progress.phase(
        if part == 0 {
            "transactions"
        } else {
            "transactions (2nd connection)"
        },
        plan.layout.txs() as u64 / parts as u64,
    );
    let with_tx: Vec<Segment> = plan
        .layout
        .segments
        .iter()
        .filter(|s| s.txs() > 0)
        .cloned()
        .collect();
    let runs = chunks(&with_tx, Segment::txs);
    let firsts: Vec<i64> = runs.iter().map(|r| r[0].first_tx_id).collect();
    let bases = plan.utxo.change_before(&firsts);
    for (i, run) in runs.iter().enumerate() {
        if i % parts != part {
            continue;
        }
        let first_block: Vec<i64> = run.iter().map(|s| s.block_id(0)).collect();
        let regular: Vec<i64> = run.iter().map(|s| s.regular).collect();
        let k: Vec<i64> = run.iter().map(|s| s.txs_per_block).collect();
        let first_tx: Vec<i64> = run.iter().map(|s| s.first_tx_id).collect();
        phase.note(format!(
            "epochs {}..{}",
            run[0].epoch,
            run[run.len() - 1].epoch
        ));
        let params: [Param<'_>; 8] = [
            &first_block,
            &regular,
            &k,
            &first_tx,
            &bases[i],
            &DRAIN,
            &firsts[i],
            &seed,
        ];
        let row = client
            .query_one(&sql, &params)
            .await
            .context("inserting transactions, outputs and inputs")?;
        phase.inc(row.get::<_, i64>(0) as u64);
    }
    phase.finish();
    Ok(())
}

/// The phase-2-invalid traps (collateral in `tx_in`, return in `tx_out`) and the declared
/// collateral and reference inputs and collateral returns of valid Plutus transactions.
pub async fn write_special_txs(client: &Client, plan: &Plan) -> Result<(), SimError> {
    let v13_3 = plan.version != SchemaVersion::V13_2;
    let seed = seed_bytes(plan);
    for (t, a) in &plan.utxo.adjustments {
        let Some(inv) = &a.invalid else { continue };
        let (block_id, bi) = plan.layout.tx_position(*t);
        let donation = if v13_3 { inv.donation } else { 0 };
        client
            .execute(
                &format!(
                    "INSERT INTO tx (id, hash, block_id, block_index, out_sum, fee, deposit, size, \
                        valid_contract, script_size{}) \
                     VALUES ($1, int8send($1) || substr(sha256(int8send($1) || $2::bytea || '\\x74'::bytea), 9), \
                        $3, $4::int8::int4, $5::int8, $6::int8, 0, 900, false, 1200{})",
                    if v13_3 { ", treasury_donation" } else { "" },
                    if v13_3 { ", $7::int8" } else { "" }
                ),
                &if v13_3 {
                    vec![t as Param<'_>, &seed, &block_id, &bi, &inv.out_sum, &inv.fee, &donation]
                } else {
                    vec![t as Param<'_>, &seed, &block_id, &bi, &inv.out_sum, &inv.fee]
                },
            )
            .await
            .context("inserting an invalid transaction")?;
        for (tx, ix) in &inv.collateral {
            client
                .execute(
                    "INSERT INTO tx_in (tx_in_id, tx_out_id, tx_out_index) VALUES ($1, $2, $3::int4)",
                    &[t, tx, ix],
                )
                .await
                .context("inserting collateral inputs")?;
        }
        if let Some(v) = inv.collateral_return {
            client
                .execute(
                    "INSERT INTO tx_out (tx_id, index, address, address_has_script, value) \
                     VALUES ($1, 2, 'addr1simcollateral', false, $2::int8)",
                    &[t, &v],
                )
                .await
                .context("inserting a collateral return")?;
        }
    }
    let d = &plan.utxo.declared;
    for (table, rows) in [
        ("collateral_tx_in", &d.collateral),
        ("reference_tx_in", &d.reference),
    ] {
        for chunk in rows.chunks(CHUNK) {
            let a: Vec<i64> = chunk.iter().map(|r| r.0).collect();
            let b: Vec<i64> = chunk.iter().map(|r| r.1).collect();
            let c: Vec<i32> = chunk.iter().map(|r| r.2).collect();
            client
                .execute(
                    &format!(
                        "INSERT INTO {table} (tx_in_id, tx_out_id, tx_out_index) \
                         SELECT * FROM unnest($1::int8[], $2::int8[], $3::int4[])"
                    ),
                    &[&a, &b, &c],
                )
                .await
                .context("inserting declared inputs")?;
        }
    }
    for chunk in d.collateral_out.chunks(CHUNK) {
        let a: Vec<i64> = chunk.iter().map(|r| r.0).collect();
        let b: Vec<i32> = chunk.iter().map(|r| r.1).collect();
        let c: Vec<i64> = chunk.iter().map(|r| r.2).collect();
        client
            .execute(
                "INSERT INTO collateral_tx_out (tx_id, index, address, address_has_script, value, \
                    multi_assets_descr) \
                 SELECT t, i, 'addr1simcollateral', false, v, '' \
                 FROM unnest($1::int8[], $2::int4[], $3::int8[]) AS u(t, i, v)",
                &[&a, &b, &c],
            )
            .await
            .context("inserting declared collateral returns")?;
    }
    Ok(())
}

/// Drops the staging tables.
pub async fn drop_staging(client: &Client) -> Result<(), SimError> {
    client
        .batch_execute("DROP TABLE IF EXISTS sim_adj, sim_epoch")
        .await
        .context("dropping the staging tables")
}

/// Certificates: stake (de)registrations, pool updates and retirements, MIR rows, pot
/// transfers.
pub async fn write_certificates(
    client: &Client,
    plan: &Plan,
    progress: &Progress,
) -> Result<(), SimError> {
    let l = &plan.ledger;
    let v13_3 = plan.version != SchemaVersion::V13_2;
    let total = l.registrations.len()
        + l.deregistrations.len()
        + l.pool_updates.len()
        + l.pool_retires.len()
        + l.mir_rows.len()
        + l.pot_transfers.len();
    let phase = progress.phase("certificates", total as u64);

    let reg_sql = if v13_3 {
        "INSERT INTO stake_registration (addr_id, cert_index, epoch_no, tx_id, deposit) \
         SELECT a, c, e, t, 2000000 FROM unnest($1::int8[], $2::int4[], $3::int8[], $4::int8[]) AS u(a, c, e, t)"
    } else {
        "INSERT INTO stake_registration (addr_id, cert_index, epoch_no, tx_id) \
         SELECT a, c, e, t FROM unnest($1::int8[], $2::int4[], $3::int8[], $4::int8[]) AS u(a, c, e, t)"
    };
    for chunk in l.registrations.chunks(CHUNK) {
        let a: Vec<i64> = chunk.iter().map(|c| c.addr).collect();
        let c: Vec<i32> = chunk.iter().map(|c| c.cert_index).collect();
        let e: Vec<i64> = chunk.iter().map(|c| c.epoch).collect();
        let t: Vec<i64> = chunk.iter().map(|c| c.tx_id).collect();
        let n = client
            .execute(reg_sql, &[&a, &c, &e, &t])
            .await
            .context("inserting stake_registration")?;
        phase.inc(n);
    }
    for chunk in l.deregistrations.chunks(CHUNK) {
        let a: Vec<i64> = chunk.iter().map(|c| c.addr).collect();
        let c: Vec<i32> = chunk.iter().map(|c| c.cert_index).collect();
        let e: Vec<i64> = chunk.iter().map(|c| c.epoch).collect();
        let t: Vec<i64> = chunk.iter().map(|c| c.tx_id).collect();
        let n = client
            .execute(
                "INSERT INTO stake_deregistration (addr_id, cert_index, epoch_no, tx_id) \
                 SELECT a, c, e, t FROM unnest($1::int8[], $2::int4[], $3::int8[], $4::int8[]) AS u(a, c, e, t)",
                &[&a, &c, &e, &t],
            )
            .await
            .context("inserting stake_deregistration")?;
        phase.inc(n);
    }

    let deposit_col = if v13_3 { ", deposit" } else { "" };
    let deposit_val = if v13_3 { ", d" } else { "" };
    let update_sql = format!(
        "INSERT INTO pool_update (hash_id, cert_index, vrf_key_hash, pledge, active_epoch_no, \
            meta_id, margin, fixed_cost, registered_tx_id, reward_addr_id{deposit_col}) \
         SELECT p, c, sha256(int8send(p) || '\\x76'::bytea), 1000000000 * (1 + p % 500), e + 2, \
                NULL, (p % 5) / 100.0, 340000000, t, r{deposit_val} \
         FROM unnest($1::int8[], $2::int4[], $3::int8[], $4::int8[], $5::int8[], $6::int8[]) \
              AS u(p, c, e, t, r, d)"
    );
    for chunk in l.pool_updates.chunks(CHUNK) {
        let p: Vec<i64> = chunk.iter().map(|u| u.pool).collect();
        let c: Vec<i32> = chunk.iter().map(|u| u.cert_index).collect();
        let e: Vec<i64> = chunk.iter().map(|u| u.epoch).collect();
        let t: Vec<i64> = chunk.iter().map(|u| u.tx_id).collect();
        let r: Vec<i64> = chunk.iter().map(|u| u.reward).collect();
        let d: Vec<Option<i64>> = chunk.iter().map(|u| u.deposit).collect();
        let n = client
            .execute(&update_sql, &[&p, &c, &e, &t, &r, &d])
            .await
            .context("inserting pool_update")?;
        phase.inc(n);
    }
    // One owner per certificate (the reward account), two for every third pool (the second
    // an address chosen by the pool, registered or not): db-sync writes a `pool_owner` row per
    // owner of every registration and update certificate.
    client
        .execute(
            "INSERT INTO pool_owner (addr_id, pool_update_id) \
             SELECT o.addr, pu.id FROM pool_update pu \
             CROSS JOIN LATERAL (VALUES (pu.reward_addr_id, true), \
                 ((pu.hash_id * 7919) % $1::int8 + 1, pu.hash_id % 3 = 0)) AS o(addr, keep) \
             WHERE o.keep ORDER BY pu.id",
            &[&l.stake_addresses],
        )
        .await
        .context("inserting pool_owner")?;
    for chunk in l.pool_retires.chunks(CHUNK) {
        let p: Vec<i64> = chunk.iter().map(|u| u.pool).collect();
        let c: Vec<i32> = chunk.iter().map(|u| u.cert_index).collect();
        let t: Vec<i64> = chunk.iter().map(|u| u.tx_id).collect();
        let e: Vec<i64> = chunk.iter().map(|u| u.retiring_epoch).collect();
        let n = client
            .execute(
                "INSERT INTO pool_retire (hash_id, cert_index, announced_tx_id, retiring_epoch) \
                 SELECT p, c, t, e FROM unnest($1::int8[], $2::int4[], $3::int8[], $4::int8[]) AS u(p, c, t, e)",
                &[&p, &c, &t, &e],
            )
            .await
            .context("inserting pool_retire")?;
        phase.inc(n);
    }
    for pot in [crate::plan::Pot::Reserves, crate::plan::Pot::Treasury] {
        let rows: Vec<_> = l.mir_rows.iter().filter(|m| m.pot == pot).collect();
        for chunk in rows.chunks(CHUNK) {
            let a: Vec<i64> = chunk.iter().map(|m| m.addr).collect();
            let c: Vec<i32> = chunk.iter().map(|m| m.cert_index).collect();
            let amt: Vec<i64> = chunk.iter().map(|m| m.amount).collect();
            let t: Vec<i64> = chunk.iter().map(|m| m.tx_id).collect();
            let sql = format!(
                "INSERT INTO {} (addr_id, cert_index, amount, tx_id) \
                 SELECT a, c, m, t FROM unnest($1::int8[], $2::int4[], $3::int8[], $4::int8[]) AS u(a, c, m, t)",
                pot.table()
            );
            let n = client
                .execute(&sql, &[&a, &c, &amt, &t])
                .await
                .context("inserting MIR certificates")?;
            phase.inc(n);
        }
    }
    if !l.pot_transfers.is_empty() {
        let t: Vec<i64> = l.pot_transfers.iter().map(|p| p.0).collect();
        let c: Vec<i32> = l.pot_transfers.iter().map(|p| p.1).collect();
        let d: Vec<i64> = l.pot_transfers.iter().map(|p| p.2).collect();
        let n = client
            .execute(
                "INSERT INTO pot_transfer (cert_index, treasury, reserves, tx_id) \
                 SELECT c, d, -d, t FROM unnest($1::int8[], $2::int4[], $3::int8[]) AS u(t, c, d)",
                &[&t, &c, &d],
            )
            .await
            .context("inserting pot_transfer")?;
        phase.inc(n);
    }
    phase.finish();
    Ok(())
}

/// Instant rewards (MIR payouts, treasury withdrawals, proposal refunds) and pool refunds.
pub async fn write_ledger_rewards(client: &Client, plan: &Plan) -> Result<(), SimError> {
    let l = &plan.ledger;
    let sql = format!(
        "INSERT INTO {} (addr_id, type, amount, spendable_epoch) \
         SELECT a, k::rewardtype, m, s FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int8[]) AS u(a, k, m, s)",
        plan.instant_table()
    );
    for chunk in l.instant_rewards.chunks(CHUNK) {
        let a: Vec<i64> = chunk.iter().map(|r| r.addr).collect();
        let k: Vec<String> = chunk.iter().map(|r| r.kind.as_str().to_owned()).collect();
        let m: Vec<i64> = chunk.iter().map(|r| r.amount).collect();
        let s: Vec<i64> = chunk.iter().map(|r| r.spendable_epoch).collect();
        client
            .execute(&sql, &[&a, &k, &m, &s])
            .await
            .context("inserting instant rewards")?;
    }
    for chunk in l.refunds.chunks(CHUNK) {
        let a: Vec<i64> = chunk.iter().map(|r| r.addr).collect();
        let p: Vec<i64> = chunk.iter().map(|r| r.pool).collect();
        let e: Vec<i64> = chunk.iter().map(|r| r.epoch).collect();
        let m: Vec<i64> = chunk.iter().map(|r| r.amount).collect();
        client
            .execute(
                "INSERT INTO reward (addr_id, type, amount, spendable_epoch, pool_id) \
                 SELECT a, 'refund', m, e, p FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[]) AS u(a, p, e, m)",
                &[&a, &p, &e, &m],
            )
            .await
            .context("inserting pool refunds")?;
    }
    Ok(())
}

/// Per-epoch rows: `ada_pots`, `epoch_param`, `epoch_sync_time`, `epoch_stake_progress`
/// (the epoch aggregates come last, [`write_epoch_aggregates`]).
pub async fn write_epoch_rows(client: &Client, plan: &Plan) -> Result<(), SimError> {
    let l = &plan.ledger;
    let net = &plan.network;
    let tip = plan.tip_epoch();
    let e0 = net.shelley_start_epoch();
    let first_block = |e: i64| plan.layout.epochs[e as usize].first_block_id;

    let pots = &l.pots;
    let epoch: Vec<i64> = pots.iter().map(|p| p.epoch).collect();
    let block: Vec<i64> = pots.iter().map(|p| first_block(p.epoch)).collect();
    let col = |f: fn(&crate::plan::Pots) -> i64| pots.iter().map(f).collect::<Vec<i64>>();
    let (treasury, reserves, rewards, utxo, stake, drep, proposal, fees) = (
        col(|p| p.treasury),
        col(|p| p.reserves),
        col(|p| p.rewards),
        col(|p| p.utxo),
        col(|p| p.deposits_stake),
        col(|p| p.deposits_drep),
        col(|p| p.deposits_proposal),
        col(|p| p.fees),
    );
    let (columns, deposits) = if plan.version == SchemaVersion::V13_2 {
        // One deposits column up to 13.2, holding what 13.3 splits in three.
        ("deposits", "v.stake + v.drep + v.proposal")
    } else {
        (
            "deposits_stake, deposits_drep, deposits_proposal",
            "v.stake, v.drep, v.proposal",
        )
    };
    let sql = format!(
        "INSERT INTO ada_pots (slot_no, epoch_no, treasury, reserves, rewards, utxo, {columns}, fees, block_id) \
         SELECT b.slot_no, v.epoch, v.treasury, v.reserves, v.rewards, v.utxo, {deposits}, v.fees, v.block \
         FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], \
                     $7::int8[], $8::int8[], $9::int8[], $10::int8[]) \
              AS v(epoch, block, treasury, reserves, rewards, utxo, stake, drep, proposal, fees) \
         JOIN block b ON b.id = v.block"
    );
    client
        .execute(
            &sql,
            &[
                &epoch, &block, &treasury, &reserves, &rewards, &utxo, &stake, &drep, &proposal,
                &fees,
            ],
        )
        .await
        .context("inserting ada_pots")?;

    let epochs: Vec<i64> = (e0..=tip).collect();
    let blocks: Vec<i64> = epochs.iter().map(|e| first_block(*e)).collect();
    let major: Vec<i32> = epochs.iter().map(|e| net.protocol_at(*e).0).collect();
    let minor: Vec<i32> = epochs.iter().map(|e| net.protocol_at(*e).1).collect();
    client
        .execute(EPOCH_PARAM_SQL, &[&epochs, &blocks, &major, &minor, &e0])
        .await
        .context("inserting epoch_param")?;

    let following_seconds = net.clock.epoch_slots;
    client
        .execute(
            "INSERT INTO epoch_sync_time (no, seconds, state) \
             SELECT e, CASE WHEN e >= $1::int8 - 10 THEN $2::int8 ELSE 5 + (e * 37) % 600 END, \
                    (CASE WHEN e >= $1::int8 - 10 THEN 'following' ELSE 'lagging' END)::syncstatetype \
             FROM generate_series(0::int8, $1::int8 - 1) e",
            &[&tip, &following_seconds],
        )
        .await
        .context("inserting epoch_sync_time")?;

    client
        .execute(
            "INSERT INTO epoch_stake_progress (epoch_no, completed) \
             SELECT e, true FROM generate_series($1::int8, $2::int8) e",
            &[&e0, &tip],
        )
        .await
        .context("inserting epoch_stake_progress")?;
    Ok(())
}

/// The epoch aggregates (`epoch`, or `epoch_finalized` on 13.7.2+ where only finished
/// epochs are materialised), recomputed from what `block` and `tx` hold after the load and
/// the block and transaction faults, the way db-sync computes them: `blk_count` with EBBs,
/// `start_time`/`end_time` = min/max block time, and `out_sum`, `fees`, `tx_count` over every
/// transaction, invalid ones included. An epoch's transactions are a contiguous id range
/// (`sim_epoch`), summed through the primary key in one pass over `tx`.
pub async fn write_epoch_aggregates(client: &Client, plan: &Plan) -> Result<(), SimError> {
    let tip = plan.tip_epoch();
    let (table, bound) = if plan.version == SchemaVersion::V13_7 {
        ("epoch_finalized", tip - 1)
    } else {
        ("epoch", tip)
    };
    client
        .execute(
            &format!(
                "INSERT INTO {table} (out_sum, fees, tx_count, blk_count, no, start_time, end_time) \
                 SELECT coalesce(t.out_sum, 0), coalesce(t.fees, 0), coalesce(t.n, 0), b.n, b.epoch_no, \
                        b.start_time, b.end_time \
                 FROM (SELECT epoch_no, count(*) AS n, min(time) AS start_time, max(time) AS end_time \
                       FROM block WHERE epoch_no IS NOT NULL AND epoch_no <= $1::int8 \
                       GROUP BY epoch_no) b \
                 LEFT JOIN sim_epoch e ON e.epoch = b.epoch_no \
                 LEFT JOIN LATERAL (SELECT sum(tx.out_sum) AS out_sum, sum(tx.fee) AS fees, \
                                           count(*) AS n \
                                    FROM tx WHERE tx.id >= e.first_tx AND tx.id < e.first_tx + e.txs) t \
                        ON true \
                 ORDER BY b.epoch_no"
            ),
            &[&bound],
        )
        .await
        .context("inserting epoch aggregates")?;
    Ok(())
}

/// `epoch_param` for a list of epochs; `$5` is the first Shelley epoch (decentralisation
/// fell from 1 to 0 over the following ~50 epochs).
pub const EPOCH_PARAM_SQL: &str = "
    INSERT INTO epoch_param (epoch_no, min_fee_a, min_fee_b, max_block_size, max_tx_size,
        max_bh_size, key_deposit, pool_deposit, max_epoch, optimal_pool_count, influence,
        monetary_expand_rate, treasury_growth_rate, decentralisation, protocol_major,
        protocol_minor, min_utxo_value, min_pool_cost, nonce, coins_per_utxo_size, block_id,
        gov_action_lifetime, gov_action_deposit, drep_deposit, drep_activity)
    SELECT v.e, 44, 155381, CASE WHEN v.major >= 7 THEN 90112 ELSE 65536 END, 16384, 1100,
           2000000, 500000000, 18, CASE WHEN v.e - $5::int8 >= 100 THEN 500 ELSE 150 END, 0.3,
           0.003, 0.2, greatest(0.0, 1.0 - (v.e - $5::int8) / 49.0), v.major, v.minor,
           CASE WHEN v.major >= 5 THEN 0 ELSE 1000000 END, 340000000,
           sha256(int8send(v.e) || '\\x6e'::bytea),
           CASE WHEN v.major >= 5 THEN 4310 END, v.b,
           CASE WHEN v.major >= 9 THEN 6 END, CASE WHEN v.major >= 9 THEN 100000000000 END,
           CASE WHEN v.major >= 9 THEN 500000000 END, CASE WHEN v.major >= 9 THEN 20 END
    FROM unnest($1::int8[], $2::int8[], $3::int4[], $4::int4[]) AS v(e, b, major, minor)";

/// `epoch_stake` (expanded server-side from registration spans and each epoch's active
/// pools) with the member rewards paid on it two epochs later, then the leader rewards.
pub async fn write_stake(
    client: &Client,
    plan: &Plan,
    progress: &Progress,
) -> Result<(), SimError> {
    let l = &plan.ledger;
    let tip = plan.tip_epoch();
    client
        .batch_execute(
            "DROP TABLE IF EXISTS sim_span, sim_active_pool, sim_pool_count;
             CREATE TEMP TABLE sim_span (addr_id int8, first_epoch int8, last_epoch int8);
             CREATE TEMP TABLE sim_active_pool (epoch int8, idx int8, pool_id int8,
                 reward_addr int8, reward_ok bool, PRIMARY KEY (epoch, idx));
             CREATE TEMP TABLE sim_pool_count (epoch int8 PRIMARY KEY, n int8);",
        )
        .await
        .context("creating temporary tables")?;
    for chunk in l.spans.chunks(CHUNK) {
        let a: Vec<i64> = chunk.iter().map(|s| s.addr).collect();
        let f: Vec<i64> = chunk.iter().map(|s| s.first).collect();
        let t: Vec<i64> = chunk.iter().map(|s| s.last).collect();
        client
            .execute(
                "INSERT INTO sim_span SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[])",
                &[&a, &f, &t],
            )
            .await
            .context("staging stake spans")?;
    }
    for chunk in l.active_pools.chunks(CHUNK) {
        let e: Vec<i64> = chunk.iter().map(|p| p.epoch).collect();
        let i: Vec<i64> = chunk.iter().map(|p| p.idx).collect();
        let p: Vec<i64> = chunk.iter().map(|p| p.pool).collect();
        let r: Vec<i64> = chunk.iter().map(|p| p.reward).collect();
        let ok: Vec<bool> = chunk.iter().map(|p| p.reward_registered).collect();
        client
            .execute(
                "INSERT INTO sim_active_pool SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::bool[])",
                &[&e, &i, &p, &r, &ok],
            )
            .await
            .context("staging active pools")?;
    }
    client
        .batch_execute(
            "INSERT INTO sim_pool_count SELECT epoch, count(*) FROM sim_active_pool GROUP BY epoch;
             ANALYZE sim_span; ANALYZE sim_active_pool; ANALYZE sim_pool_count;",
        )
        .await
        .context("staging pool counts")?;

    // Expected rows per epoch, to cut the epochs into statements of about BULK_ROWS.
    let e0 = plan.network.shelley_start_epoch();
    let mut per_epoch = vec![0i64; (tip + 1) as usize];
    for s in &l.spans {
        for e in s.first..=s.last {
            per_epoch[e as usize] += 1;
        }
    }
    let total: i64 = per_epoch.iter().sum();
    let phase = progress.phase("epoch_stake", total as u64);
    let mut lo = e0;
    while lo <= tip {
        let mut hi = lo;
        let mut rows = per_epoch[lo as usize];
        while hi < tip && rows + per_epoch[(hi + 1) as usize] <= BULK_ROWS {
            hi += 1;
            rows += per_epoch[hi as usize];
        }
        phase.note(format!("epochs {lo}..{hi}"));
        // One pass writes the distribution and the member rewards paid on it at +2.
        let rows = client
            .query(
                "WITH stake AS (
                    INSERT INTO epoch_stake (addr_id, pool_id, amount, epoch_no)
                    SELECT s.addr_id, ap.pool_id,
                           2000000 + ((s.addr_id * 7919 + e * 104729) % 99991) * 1000000, e
                    FROM sim_span s
                    CROSS JOIN LATERAL generate_series(greatest(s.first_epoch, $1::int8),
                                                       least(s.last_epoch, $2::int8)) e
                    JOIN sim_pool_count pc ON pc.epoch = e
                    JOIN sim_active_pool ap ON ap.epoch = e AND ap.idx = (s.addr_id * 7919) % pc.n
                    RETURNING addr_id, pool_id, amount, epoch_no),
                 member AS (
                    INSERT INTO reward (addr_id, type, amount, spendable_epoch, pool_id)
                    SELECT addr_id, 'member', div(amount, 1900) + 1, epoch_no + 2, pool_id
                    FROM stake WHERE epoch_no + 2 <= $3::int8
                    RETURNING 1)
                 SELECT (SELECT count(*) FROM stake), (SELECT count(*) FROM member)",
                &[&lo, &hi, &tip],
            )
            .await
            .context("inserting epoch_stake and member rewards")?;
        let staked: i64 = rows[0].get(0);
        phase.inc(staked as u64);
        lo = hi + 1;
    }
    phase.finish();
    client
        .execute(
            "INSERT INTO reward (addr_id, type, amount, spendable_epoch, pool_id) \
             SELECT reward_addr, 'leader', 340000000 + (pool_id * 7919) % 1000 * 1000000, \
                    epoch + 2, pool_id \
             FROM sim_active_pool WHERE reward_ok AND epoch + 2 <= $1::int8",
            &[&tip],
        )
        .await
        .context("inserting leader rewards")?;
    client
        .batch_execute("DROP TABLE sim_span, sim_active_pool, sim_pool_count")
        .await
        .context("dropping temporary tables")?;
    Ok(())
}

/// Moves the id sequences past the explicit ids, so later inserts (the follower, db-sync
/// style) get fresh ids.
pub async fn sync_sequences(client: &Client) -> Result<(), SimError> {
    for table in ["block", "tx", "slot_leader", "pool_hash", "stake_address"] {
        client
            .batch_execute(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                        coalesce((SELECT max(id) FROM {table}), 1), \
                        (SELECT count(*) > 0 FROM {table}))"
            ))
            .await
            .context("moving sequences")?;
    }
    Ok(())
}

/// The stage-4 indexes and run-time constraints db-sync adds near the tip.
pub async fn near_tip(client: &Client, version: SchemaVersion) -> Result<(), SimError> {
    client
        .batch_execute(&near_tip_ddl(version))
        .await
        .context("creating the near-tip indexes")
}

fn seed_bytes(plan: &Plan) -> Vec<u8> {
    plan.seed.to_be_bytes().to_vec()
}
