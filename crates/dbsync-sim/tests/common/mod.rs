//! Shared helpers: a fresh simulated database on the shared test cluster, and the reference
//! SQL of the ledger rules (dbsync.md §8), written independently of the simulator's Rust
//! replay so that the two cross-check each other.
#![allow(dead_code)]

use dbsync_fixture::{Cluster, IndexSet, SchemaVersion, TestDatabase};
use dbsync_sim::{generate_on, init, GenerateOptions, GenerateReport, InitOptions, Network};
use tokio_postgres::Client;

/// A database initialised for `network`/`version` and generated with `opts` on two
/// connections, as the CLI does.
pub async fn generated(
    network: &str,
    version: SchemaVersion,
    opts: GenerateOptions,
) -> (TestDatabase, Client, GenerateReport) {
    let db = Cluster::shared()
        .create_database(&format!("sim_{network}"))
        .await;
    let client = db.connect().await;
    init(
        &client,
        &InitOptions {
            version,
            network: Network::known(network).unwrap(),
            indexes: IndexSet::InitialSync,
        },
    )
    .await
    .unwrap();
    let second = db.connect().await;
    let report = generate_on(&client, &second, &opts).await.unwrap();
    (db, client, report)
}

/// The instant-reward table of `version`.
pub fn instant_table(version: SchemaVersion) -> &'static str {
    if version == SchemaVersion::V13_2 {
        "instant_reward"
    } else {
        "reward_rest"
    }
}

/// The `ada_pots` sum expression of `version`.
pub fn pots_sum(version: SchemaVersion) -> &'static str {
    if version == SchemaVersion::V13_2 {
        "treasury + reserves + rewards + utxo + deposits + fees"
    } else {
        "treasury + reserves + rewards + utxo + deposits_stake + deposits_drep + deposits_proposal + fees"
    }
}

/// Reference §8.1 with the pre-Alonzo replace rule: (pot, unpaid count, unpaid lovelace).
pub async fn unpaid_mir(client: &Client, version: SchemaVersion) -> Vec<(String, i64, i64)> {
    let sql = format!(
        "WITH tip AS (SELECT epoch_no FROM block ORDER BY id DESC LIMIT 1),
         certs AS (
           SELECT 'reserves' AS pot, r.addr_id, b.epoch_no AS e, r.amount, r.tx_id, r.cert_index
           FROM reserve r JOIN tx ON tx.id = r.tx_id JOIN block b ON b.id = tx.block_id
           UNION ALL
           SELECT 'treasury', t.addr_id, b.epoch_no, t.amount, t.tx_id, t.cert_index
           FROM treasury t JOIN tx ON tx.id = t.tx_id JOIN block b ON b.id = tx.block_id),
         owed AS (
           SELECT c.pot, c.addr_id, c.e,
                  CASE WHEN (SELECT protocol_major FROM epoch_param p WHERE p.epoch_no = c.e) >= 5
                       THEN sum(c.amount)
                       ELSE (array_agg(c.amount ORDER BY c.tx_id DESC, c.cert_index DESC))[1] END AS amt
           FROM certs c GROUP BY 1, 2, 3)
         SELECT o.pot, count(*)::int8, coalesce(sum(o.amt), 0)::int8
         FROM owed o CROSS JOIN tip
         WHERE o.e < tip.epoch_no
           AND NOT EXISTS (SELECT 1 FROM {table} rr WHERE rr.addr_id = o.addr_id
                           AND rr.type::text = o.pot AND rr.spendable_epoch = o.e + 1)
           AND EXISTS (SELECT 1 FROM (
                 SELECT tx_id, cert_index, true AS is_reg FROM stake_registration
                  WHERE addr_id = o.addr_id AND epoch_no <= o.e
                 UNION ALL
                 SELECT tx_id, cert_index, false FROM stake_deregistration
                  WHERE addr_id = o.addr_id AND epoch_no <= o.e
                 ORDER BY tx_id DESC, cert_index DESC LIMIT 1) last_cert WHERE last_cert.is_reg)
         GROUP BY 1 ORDER BY 1",
        table = instant_table(version)
    );
    client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Paid amounts that differ from the rule (replace before Alonzo, sum after).
pub async fn wrong_mir_amounts(client: &Client, version: SchemaVersion) -> i64 {
    let sql = format!(
        "WITH certs AS (
           SELECT 'reserves' AS pot, r.addr_id, b.epoch_no AS e, r.amount, r.tx_id, r.cert_index
           FROM reserve r JOIN tx ON tx.id = r.tx_id JOIN block b ON b.id = tx.block_id
           UNION ALL
           SELECT 'treasury', t.addr_id, b.epoch_no, t.amount, t.tx_id, t.cert_index
           FROM treasury t JOIN tx ON tx.id = t.tx_id JOIN block b ON b.id = tx.block_id),
         owed AS (
           SELECT c.pot, c.addr_id, c.e,
                  CASE WHEN (SELECT protocol_major FROM epoch_param p WHERE p.epoch_no = c.e) >= 5
                       THEN sum(c.amount)
                       ELSE (array_agg(c.amount ORDER BY c.tx_id DESC, c.cert_index DESC))[1] END AS amt
           FROM certs c GROUP BY 1, 2, 3)
         SELECT count(*)::int8 FROM owed o JOIN {table} rr ON rr.addr_id = o.addr_id
           AND rr.type::text = o.pot AND rr.spendable_epoch = o.e + 1
         WHERE rr.amount <> o.amt",
        table = instant_table(version)
    );
    client.query_one(&sql, &[]).await.unwrap().get(0)
}

/// Instant rewards of a pot type without a certificate for that credential in the earned
/// epoch, before Conway: (pot, count).
pub async fn orphan_mir(client: &Client, version: SchemaVersion) -> Vec<(String, i64)> {
    let sql = format!(
        "SELECT rr.type::text, count(*)::int8 FROM {table} rr
         JOIN epoch_param p ON p.epoch_no = rr.spendable_epoch - 1 AND p.protocol_major < 9
         WHERE rr.type::text IN ('reserves', 'treasury')
           AND NOT EXISTS (
             SELECT 1 FROM (SELECT addr_id, tx_id FROM reserve WHERE rr.type::text = 'reserves'
                            UNION ALL
                            SELECT addr_id, tx_id FROM treasury WHERE rr.type::text = 'treasury') c
             JOIN tx ON tx.id = c.tx_id JOIN block b ON b.id = tx.block_id
             WHERE c.addr_id = rr.addr_id AND b.epoch_no = rr.spendable_epoch - 1)
         GROUP BY 1 ORDER BY 1",
        table = instant_table(version)
    );
    client
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Reference §8.2: (missing refunds, unclaimed refunds) among effective retirements.
pub async fn refunds(client: &Client) -> (i64, i64) {
    let row = client
        .query_one(
            "WITH tip AS (SELECT epoch_no FROM block ORDER BY id DESC LIMIT 1),
             effective AS (
               SELECT pr.hash_id, pr.retiring_epoch, pr.announced_tx_id, pr.cert_index
               FROM pool_retire pr CROSS JOIN tip
               WHERE pr.retiring_epoch <= tip.epoch_no
                 AND NOT EXISTS (
                   SELECT 1 FROM pool_retire p2
                   JOIN tx ON tx.id = p2.announced_tx_id JOIN block b ON b.id = tx.block_id
                   WHERE p2.hash_id = pr.hash_id AND b.epoch_no < pr.retiring_epoch
                     AND (p2.announced_tx_id, p2.cert_index) > (pr.announced_tx_id, pr.cert_index))
                 AND NOT EXISTS (
                   SELECT 1 FROM pool_update pu
                   JOIN tx ON tx.id = pu.registered_tx_id JOIN block b ON b.id = tx.block_id
                   WHERE pu.hash_id = pr.hash_id AND b.epoch_no < pr.retiring_epoch
                     AND (pu.registered_tx_id, pu.cert_index) > (pr.announced_tx_id, pr.cert_index))),
             acct AS (
               SELECT e.*, (SELECT pu.reward_addr_id FROM pool_update pu
                            WHERE pu.hash_id = e.hash_id
                              AND (pu.registered_tx_id, pu.cert_index) < (e.announced_tx_id, e.cert_index)
                            ORDER BY pu.registered_tx_id DESC, pu.cert_index DESC LIMIT 1) AS reward_addr_id
               FROM effective e),
             judged AS (
               SELECT a.*, EXISTS (SELECT 1 FROM (
                   SELECT tx_id, cert_index, true AS is_reg FROM stake_registration
                    WHERE addr_id = a.reward_addr_id AND epoch_no < a.retiring_epoch
                   UNION ALL
                   SELECT tx_id, cert_index, false FROM stake_deregistration
                    WHERE addr_id = a.reward_addr_id AND epoch_no < a.retiring_epoch
                   ORDER BY tx_id DESC, cert_index DESC LIMIT 1) last_cert
                 WHERE last_cert.is_reg) AS registered
               FROM acct a
               WHERE NOT EXISTS (SELECT 1 FROM reward rw
                                 WHERE rw.addr_id = a.reward_addr_id AND rw.type = 'refund'
                                   AND rw.earned_epoch = a.retiring_epoch AND rw.pool_id = a.hash_id))
             SELECT count(*) FILTER (WHERE registered)::int8,
                    count(*) FILTER (WHERE NOT registered)::int8 FROM judged",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// §9: (epochs whose sum is not 45e15, Shelley epochs up to the tip without a row,
/// epochs with more than one row).
pub async fn ada_pots(
    client: &Client,
    version: SchemaVersion,
    first_shelley: i64,
) -> (i64, i64, i64) {
    let sql = format!(
        "WITH tip AS (SELECT epoch_no FROM block ORDER BY id DESC LIMIT 1),
         per AS (SELECT epoch_no, count(*) AS n, max({sum}) AS total FROM ada_pots GROUP BY epoch_no)
         SELECT (SELECT count(*) FROM per WHERE total <> 45000000000000000)::int8,
                (SELECT count(*) FROM generate_series($1::int8, (SELECT epoch_no FROM tip)) e
                 WHERE NOT EXISTS (SELECT 1 FROM per WHERE per.epoch_no = e))::int8,
                (SELECT count(*) FROM per WHERE n > 1)::int8",
        sum = pots_sum(version)
    );
    let row = client.query_one(&sql, &[&first_shelley]).await.unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// The integrity rules of issue 15 as plain reference SQL (dbtool-parity.md §4–§9), written
/// independently of the simulator's plan: `(series, value)` for every new gauge. Full scans,
/// fine at `--scale small`. The supply drift is computed both ways — the per-transaction sum
/// minus double-spent value, and genesis − (UTxO + fees + deposits + donations − withdrawals)
/// — and the two must agree.
pub async fn integrity_v2(client: &Client, version: SchemaVersion) -> Vec<(&'static str, i64)> {
    let donation = if version == SchemaVersion::V13_2 {
        "0"
    } else {
        "CASE WHEN t.valid_contract THEN t.treasury_donation ELSE 0 END"
    };
    let (epoch_table, instant) = (
        if version == SchemaVersion::V13_7 {
            "epoch_finalized"
        } else {
            "epoch"
        },
        instant_table(version),
    );
    let one = |sql: String| async move {
        client
            .query_one(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get::<_, i64>(0)
    };
    let per_tx = format!(
        "SELECT t.id,
                coalesce((SELECT sum(o.value) FROM tx_in i JOIN tx_out o
                          ON o.tx_id = i.tx_out_id AND o.index = i.tx_out_index
                          WHERE i.tx_in_id = t.id), 0)
              + coalesce((SELECT sum(amount) FROM withdrawal w WHERE w.tx_id = t.id), 0)
              - coalesce((SELECT sum(value) FROM tx_out o WHERE o.tx_id = t.id), 0)
              - t.fee - t.deposit - {donation} AS d,
                coalesce((SELECT sum(value) FROM tx_out o WHERE o.tx_id = t.id), 0) <> t.out_sum AS bad_sum
         FROM tx t JOIN block b ON b.id = t.block_id
         WHERE b.previous_id IS NOT NULL AND t.deposit IS NOT NULL"
    );
    let tip = "(SELECT max(epoch_no) FROM block)";
    let main = "SELECT block_no, time, lag(block_no) OVER w AS pno, lag(time) OVER w AS ptime \
                FROM block WHERE block_no IS NOT NULL WINDOW w AS (ORDER BY block_no, id)";
    let double_spent = "SELECT tx_out_id, tx_out_index, count(*) AS n FROM tx_in \
                        GROUP BY 1, 2 HAVING count(*) > 1";
    let drift_tx = one(format!(
        "SELECT (coalesce((SELECT sum(d) FROM ({per_tx}) x), 0)
               - coalesce((SELECT sum(o.value * (s.n - 1)) FROM ({double_spent}) s
                           JOIN tx_out o ON o.tx_id = s.tx_out_id AND o.index = s.tx_out_index), 0))::int8"
    ))
    .await;
    let drift_supply = one(format!(
        "SELECT ((SELECT sum(o.value) FROM tx_out o JOIN tx ON tx.id = o.tx_id
                  JOIN block b ON b.id = tx.block_id WHERE b.previous_id IS NULL)
               - ((SELECT sum(o.value) FROM tx_out o WHERE NOT EXISTS (SELECT 1 FROM tx_in i
                     WHERE i.tx_out_id = o.tx_id AND i.tx_out_index = o.index))
                  + (SELECT sum(fee) FROM tx) + (SELECT coalesce(sum(deposit), 0) FROM tx)
                  + (SELECT coalesce(sum({donation}), 0) FROM tx t)
                  - (SELECT coalesce(sum(amount), 0) FROM withdrawal)))::int8"
    ))
    .await;
    assert_eq!(drift_tx, drift_supply, "the supply identity");
    vec![
        (
            "dbsync_block_tx_count_mismatches",
            one("SELECT count(*) FROM block b WHERE b.tx_count <> \
                 (SELECT count(*) FROM tx WHERE tx.block_id = b.id)"
                .into())
            .await,
        ),
        (
            "dbsync_pool_updates_without_owner",
            one("SELECT count(*) FROM pool_update pu WHERE NOT EXISTS \
                 (SELECT 1 FROM pool_owner po WHERE po.pool_update_id = pu.id)"
                .into())
            .await,
        ),
        (
            "dbsync_blocks_in_future",
            one("SELECT count(*) FROM block WHERE extract(epoch FROM time) \
                 > extract(epoch FROM now()) + 60"
                .into())
            .await,
        ),
        (
            "dbsync_block_number_gaps",
            one(format!("SELECT count(*) FROM ({main}) x WHERE pno IS NOT NULL AND block_no - pno <> 1")).await,
        ),
        (
            "dbsync_block_time_disorder",
            one(format!("SELECT count(*) FROM ({main}) x WHERE ptime IS NOT NULL AND time <= ptime")).await,
        ),
        (
            "dbsync_epoch_table_mismatches",
            one(format!(
                "SELECT count(*) FROM (
                   SELECT b.epoch_no, coalesce(sum(tx.out_sum), 0) AS out_sum,
                          coalesce(sum(tx.fee), 0) AS fees, count(tx.id) AS tx_count,
                          count(DISTINCT b.id) AS blk_count, min(b.time) AS start_time,
                          max(b.time) AS end_time
                   FROM block b LEFT JOIN tx ON tx.block_id = b.id
                   WHERE b.epoch_no IS NOT NULL AND b.epoch_no < {tip} GROUP BY b.epoch_no) c
                 LEFT JOIN {epoch_table} s ON s.no = c.epoch_no
                 WHERE s.no IS NULL OR (c.out_sum, c.fees, c.tx_count, c.blk_count, c.start_time,
                       c.end_time) IS DISTINCT FROM (s.out_sum, s.fees, s.tx_count::int8,
                       s.blk_count::int8, s.start_time, s.end_time)"
            ))
            .await,
        ),
        (
            "dbsync_tx_balance_mismatches",
            one(format!("SELECT count(*) FROM ({per_tx}) x WHERE d <> 0 OR bad_sum")).await,
        ),
        (
            "dbsync_tx_in_double_spends",
            one(format!("SELECT count(*) FROM ({double_spent}) x")).await,
        ),
        ("dbsync_supply_drift_lovelace", drift_tx),
        (
            "dbsync_withdrawal_excess_accounts",
            one(format!(
                "WITH w AS (SELECT w.addr_id, b.epoch_no AS e, sum(w.amount) AS amount
                            FROM withdrawal w JOIN tx ON tx.id = w.tx_id
                            JOIN block b ON b.id = tx.block_id GROUP BY 1, 2),
                 r AS (SELECT addr_id, spendable_epoch AS e, sum(amount) AS amount FROM (
                         SELECT addr_id, spendable_epoch, amount FROM reward
                         UNION ALL SELECT addr_id, spendable_epoch, amount FROM {instant}) x
                       GROUP BY 1, 2)
                 SELECT count(DISTINCT w.addr_id) FROM w
                 WHERE (SELECT sum(amount) FROM w w2 WHERE w2.addr_id = w.addr_id AND w2.e <= w.e)
                     > coalesce((SELECT sum(amount) FROM r WHERE r.addr_id = w.addr_id AND r.e <= w.e), 0)"
            ))
            .await,
        ),
    ]
}
