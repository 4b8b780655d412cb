//! The simulator's invariants against real PostgreSQL: slots and times follow genesis,
//! protocol versions follow the eras, every Shelley epoch has one `ada_pots` row summing to
//! 45e15, the ledger rules hold (checked with independent SQL), faults are exactly what was
//! planted, and `follow` produces blocks, epoch boundaries and db-sync style rollbacks.

mod common;

use std::time::Duration;

use dbsync_fixture::SchemaVersion;
use dbsync_fixture::{Cluster, IndexSet};
use dbsync_sim::{
    faults::Fault, follow, generate, init, FaultSet, FollowOptions, GenerateOptions, InitOptions,
    Network, Scale,
};

use common::*;

fn opts(scale: Scale) -> GenerateOptions {
    GenerateOptions {
        scale,
        ..GenerateOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_and_times_follow_genesis_on_every_network() {
    for (network, version) in [
        ("mainnet", SchemaVersion::V13_6),
        ("preprod", SchemaVersion::V13_2),
        ("preview", SchemaVersion::V13_7),
    ] {
        let (_db, client, report) = generated(network, version, opts(Scale::Blocks(12_000))).await;
        let net = Network::known(network).unwrap();
        let p = &net.clock;
        let rows = client
            .query(
                "SELECT id, previous_id, block_no::int8, slot_no::int8, epoch_no::int8, \
                        epoch_slot_no::int8, extract(epoch FROM time)::int8, proto_major::int4, \
                        proto_minor::int4 \
                 FROM block WHERE epoch_no IS NOT NULL ORDER BY id",
                &[],
            )
            .await
            .unwrap();
        assert!(rows.len() > 10_000, "{network}: {} blocks", rows.len());
        let mut prev_id = 1;
        let mut prev_no = 0;
        let mut prev_slot = -1;
        let mut epochs_seen = std::collections::BTreeSet::new();
        let mut byron = 0;
        for r in &rows {
            let id: i64 = r.get(0);
            let previous: i64 = r.get(1);
            assert_eq!(previous, prev_id, "{network}: chain broken at id {id}");
            prev_id = id;
            let epoch: i64 = r.get(4);
            epochs_seen.insert(epoch);
            let time: i64 = r.get(6);
            let (major, minor): (i32, i32) = (r.get(7), r.get(8));
            assert_eq!(
                (major, minor),
                net.protocol_at(epoch),
                "{network} epoch {epoch}"
            );
            let Some(slot) = r.get::<_, Option<i64>>(3) else {
                // A Byron epoch boundary block: no slot, no number, the epoch's start time.
                assert!(epoch < p.shelley_start_epoch);
                assert_eq!(r.get::<_, Option<i64>>(2), None);
                assert_eq!(time, p.slot_time(p.epoch_first_slot(epoch)));
                continue;
            };
            let block_no: i64 = r.get(2);
            assert_eq!(
                block_no,
                prev_no + 1,
                "{network}: block numbers must be consecutive"
            );
            prev_no = block_no;
            assert!(slot > prev_slot, "{network}: slots must increase");
            prev_slot = slot;
            assert_eq!(time, p.slot_time(slot), "{network} slot {slot}");
            assert_eq!(epoch, p.epoch_of_slot(slot), "{network} slot {slot}");
            let epoch_slot: i64 = r.get(5);
            assert_eq!(epoch_slot, slot - p.epoch_first_slot(epoch));
            if slot < p.shelley_start_slot {
                byron += 1;
                assert_eq!((time - p.byron_start_unix) % 20, 0, "Byron slots are 20 s");
            }
        }
        assert_eq!(
            byron > 0,
            p.shelley_start_epoch > 0,
            "{network}: Byron blocks"
        );
        // Every epoch up to the tip exists, and the tip is fresh.
        assert_eq!(
            epochs_seen.into_iter().collect::<Vec<_>>(),
            (0..=report.tip_epoch).collect::<Vec<_>>()
        );
        let tip_time: i64 = rows.last().unwrap().get(6);
        let age = dbsync_sim::unix_now() - tip_time;
        assert!((0..180).contains(&age), "{network}: tip is {age} s old");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_histories_obey_the_ledger_rules_on_every_release() {
    for (network, version) in [
        ("mainnet", SchemaVersion::V13_2),
        ("mainnet", SchemaVersion::V13_3),
        ("preprod", SchemaVersion::V13_6),
        ("preview", SchemaVersion::V13_7),
    ] {
        let (_db, client, report) = generated(network, version, opts(Scale::Small)).await;
        let net = Network::known(network).unwrap();
        let e0 = net.shelley_start_epoch();
        assert!(report.planted.is_empty());
        assert_eq!(
            unpaid_mir(&client, version).await,
            vec![],
            "{network} {version}"
        );
        assert_eq!(
            wrong_mir_amounts(&client, version).await,
            0,
            "{network} {version}"
        );
        assert_eq!(
            orphan_mir(&client, version).await,
            vec![],
            "{network} {version}"
        );
        let (missing, unclaimed) = refunds(&client).await;
        assert_eq!(missing, 0, "{network} {version}");
        let want_unclaimed = report
            .expectations
            .iter()
            .find(|e| e.series == "dbsync_pool_refunds_unclaimed")
            .unwrap()
            .value;
        assert_eq!(unclaimed, want_unclaimed);
        assert!(unclaimed >= 1, "the unclaimed-refund trap is there");
        // Every Shelley-era epoch: exactly one ada_pots row, summing to 45e15.
        assert_eq!(
            ada_pots(&client, version, e0).await,
            (0, 0, 0),
            "{network} {version}"
        );
        let rows: i64 = client
            .query_one("SELECT count(*) FROM ada_pots", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, report.tip_epoch - e0 + 1);

        // Protocol versions by era, from epoch_param.
        for r in client
            .query(
                "SELECT epoch_no::int8, protocol_major::int4, protocol_minor::int4, \
                        pool_deposit::int8, key_deposit::int8 FROM epoch_param ORDER BY epoch_no",
                &[],
            )
            .await
            .unwrap()
        {
            let epoch: i64 = r.get(0);
            assert_eq!((r.get(1), r.get(2)), net.protocol_at(epoch));
            assert_eq!(
                (r.get::<_, i64>(3), r.get::<_, i64>(4)),
                (500_000_000, 2_000_000)
            );
        }
        // The tip epoch's stake distribution is complete; every finished epoch has a sync time.
        let row = client
            .query_one(
                "SELECT (SELECT completed FROM epoch_stake_progress WHERE epoch_no = $1::int8), \
                        (SELECT count(*) FROM epoch_stake WHERE epoch_no = $1::int8), \
                        (SELECT count(*) FROM epoch_sync_time)",
                &[&report.tip_epoch],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, Option<bool>>(0), Some(true));
        assert!(row.get::<_, i64>(1) > 0);
        assert_eq!(row.get::<_, i64>(2), report.tip_epoch);
        // MIR only before Conway; Conway withdrawals exist.
        let row = client
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM reserve r JOIN tx ON tx.id = r.tx_id \
                             JOIN block b ON b.id = tx.block_id WHERE b.proto_major >= 9), \
                            (SELECT count(*) FROM {} WHERE type = 'treasury' \
                             AND spendable_epoch > $1::int8)",
                    instant_table(version)
                ),
                &[&net.conway_start_epoch()],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 0);
        assert!(
            row.get::<_, i64>(1) > 0,
            "{network}: Conway treasury withdrawals"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mainnet_eras_carry_their_protocol_versions() {
    let (_db, client, _) =
        generated("mainnet", SchemaVersion::V13_6, opts(Scale::Blocks(8_000))).await;
    for (epoch, major, minor) in [
        (100_i64, 0, 0),
        (200, 1, 0),
        (208, 2, 0),
        (236, 3, 0),
        (251, 4, 0),
        (290, 5, 0),
        (298, 6, 0),
        (365, 7, 0),
        (394, 8, 0),
        (507, 9, 0),
        (537, 10, 0),
        (644, 11, 0),
    ] {
        let row = client
            .query_one(
                "SELECT min(proto_major)::int4, max(proto_major)::int4, max(proto_minor)::int4 \
                 FROM block WHERE epoch_no = $1::int8",
                &[&epoch],
            )
            .await
            .unwrap();
        assert_eq!(
            (
                row.get::<_, i32>(0),
                row.get::<_, i32>(1),
                row.get::<_, i32>(2)
            ),
            (major, major, minor),
            "epoch {epoch}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_faults_are_exactly_what_the_rules_detect() {
    for version in [SchemaVersion::V13_2, SchemaVersion::V13_6] {
        let (_db, client, report) = generated(
            "mainnet",
            version,
            GenerateOptions {
                faults: FaultSet::all(),
                ..opts(Scale::Small)
            },
        )
        .await;
        assert_eq!(report.planted.len(), Fault::ALL.len());
        let want = |series: &str| {
            report
                .expectations
                .iter()
                .find(|e| e.series == series)
                .unwrap_or_else(|| panic!("no expectation for {series}"))
                .value
        };
        let unpaid = unpaid_mir(&client, version).await;
        assert_eq!(unpaid.len(), 1, "{unpaid:?}");
        let (pot, count, lovelace) = &unpaid[0];
        assert_eq!(*count, 1);
        assert_eq!(
            *lovelace,
            want(&format!("dbsync_mir_unpaid_lovelace{{pot=\"{pot}\"}}"))
        );
        assert_eq!(
            orphan_mir(&client, version).await,
            vec![("reserves".to_owned(), 1)]
        );
        let (missing, unclaimed) = refunds(&client).await;
        assert_eq!(missing, 1);
        assert_eq!(unclaimed, want("dbsync_pool_refunds_unclaimed"));
        assert_eq!(ada_pots(&client, version, 208).await, (1, 1, 0));
    }
}

/// The data the integrity rules of issue 15 read, checked with reference SQL of the rules
/// (tests/common `integrity_v2`): zero everywhere on a clean history, and exactly the
/// predicted value of every series with all faults planted (the drift adds up), on 13.2,
/// 13.6 and 13.7 schemas. Also: every planted trap is there (invalid transactions with
/// collateral in tx_in, declared collateral and reference inputs of outputs another
/// transaction spends, negative and NULL deposits, donations, a zero withdrawal, withdrawals
/// equal to the rewards spendable by their epoch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_utxo_and_chain_rules_hold_exactly_as_predicted() {
    for version in [
        SchemaVersion::V13_2,
        SchemaVersion::V13_6,
        SchemaVersion::V13_7,
    ] {
        for faults in [FaultSet::none(), FaultSet::all()] {
            let label = format!("{version} {} faults", faults.0.len());
            let (_db, client, report) = generated(
                "mainnet",
                version,
                GenerateOptions {
                    faults,
                    ..opts(Scale::Small)
                },
            )
            .await;
            for (series, got) in integrity_v2(&client, version).await {
                let want = report
                    .expectations
                    .iter()
                    .find(|e| e.series == series)
                    .unwrap_or_else(|| panic!("no expectation for {series}"))
                    .value;
                assert_eq!(got, want, "{label}: {series}");
            }
            let count = |sql: &'static str| {
                let client = &client;
                async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
            };
            // Traps.
            assert_eq!(
                count("SELECT count(*) FROM tx WHERE NOT valid_contract").await,
                3,
                "{label}: invalid transactions"
            );
            assert_eq!(
                count(
                    "SELECT count(*) FROM tx t WHERE NOT valid_contract AND EXISTS \
                     (SELECT 1 FROM tx_in i WHERE i.tx_in_id = t.id)"
                )
                .await,
                3,
                "{label}: invalid transactions' collateral in tx_in"
            );
            assert!(
                count(
                    "SELECT count(*) FROM collateral_tx_in c WHERE EXISTS (SELECT 1 FROM tx_in i \
                     WHERE i.tx_out_id = c.tx_out_id AND i.tx_out_index = c.tx_out_index \
                       AND i.tx_in_id <> c.tx_in_id)"
                )
                .await
                    > 10,
                "{label}: declared collateral spent by another tx"
            );
            assert!(
                count(
                    "SELECT count(*) FROM reference_tx_in c WHERE EXISTS (SELECT 1 FROM tx_in i \
                     WHERE i.tx_out_id = c.tx_out_id AND i.tx_out_index = c.tx_out_index \
                       AND i.tx_in_id <> c.tx_in_id)"
                )
                .await
                    > 10,
                "{label}: reference inputs spent by another tx"
            );
            assert!(count("SELECT count(*) FROM tx WHERE deposit < 0").await > 0);
            assert_eq!(
                count("SELECT count(*) FROM tx WHERE deposit IS NULL").await,
                1
            );
            assert_eq!(
                count("SELECT count(*) FROM withdrawal WHERE amount = 0").await,
                1
            );
            if version != SchemaVersion::V13_2 {
                assert_eq!(
                    count("SELECT count(*) FROM tx WHERE treasury_donation > 0").await,
                    4,
                    "{label}: three applied donations and an unapplied one"
                );
            }
            // Withdrawals that take every reward spendable in their very epoch.
            assert!(
                count(
                    "SELECT count(*) FROM withdrawal w JOIN tx ON tx.id = w.tx_id \
                     JOIN block b ON b.id = tx.block_id \
                     WHERE EXISTS (SELECT 1 FROM reward r WHERE r.addr_id = w.addr_id \
                                   AND r.spendable_epoch = b.epoch_no)",
                )
                .await
                    > 10
            );
            // Every output is spent at most once (but for the planted double spend).
            let planted = report.planted.iter().any(|p| p.fault == Fault::DoubleSpend);
            assert_eq!(
                count(
                    "SELECT count(*) FROM (SELECT 1 FROM tx_in GROUP BY tx_out_id, tx_out_index \
                     HAVING count(*) > 1) x"
                )
                .await,
                i64::from(planted)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_crosses_an_epoch_boundary_and_rolls_back_like_db_sync() {
    let net = Network::known("preview").unwrap();
    let p = &net.clock;
    // End the history five minutes before the current epoch began: the follower catches up
    // through the boundary at once.
    let current = p.epoch_of_slot(p.slot_at(dbsync_sim::unix_now()));
    let boundary_unix = p.slot_time(p.epoch_first_slot(current));
    let version = SchemaVersion::V13_6;
    let (_db, mut client, report) = generated(
        "preview",
        version,
        GenerateOptions {
            until_unix: Some(boundary_unix - 300),
            ..opts(Scale::Blocks(5_000))
        },
    )
    .await;
    assert_eq!(report.tip_epoch, current - 1);
    let before: i64 = client
        .query_one("SELECT max(id) FROM block", &[])
        .await
        .unwrap()
        .get(0);

    let followed = follow(
        &mut client,
        &FollowOptions {
            speed: 1000.0,
            rollback_every: Some(Duration::from_millis(20)),
            max_blocks: Some(100),
            log: false,
            ..FollowOptions::default()
        },
        std::future::pending(),
    )
    .await
    .unwrap();
    assert!(followed.blocks >= 100);
    assert_eq!(followed.epochs_entered, vec![current]);

    // Rollbacks: same heights, new hashes, ids above everything before.
    assert!(!followed.rollbacks.is_empty());
    for rb in &followed.rollbacks {
        assert!((1..=3).contains(&rb.depth));
        assert_eq!(rb.replaced.len(), rb.depth as usize);
        for (block_no, old, new) in &rb.replaced {
            assert_ne!(old, new, "block {block_no} kept its hash");
            let row = client
                .query_one(
                    "SELECT count(*), max(id) FROM block WHERE block_no = $1::int8",
                    &[block_no],
                )
                .await
                .unwrap();
            assert_eq!(
                row.get::<_, i64>(0),
                1,
                "one block per height after the swap"
            );
            assert!(row.get::<_, i64>(1) > before);
        }
    }
    // The chain is whole: consecutive numbers, each block pointing at the previous one.
    let rows = client
        .query(
            "SELECT id, previous_id, block_no::int8, slot_no::int8 FROM block \
             WHERE id > $1::int8 - 5 ORDER BY block_no",
            &[&before],
        )
        .await
        .unwrap();
    for w in rows.windows(2) {
        assert_eq!(w[1].get::<_, i64>(2), w[0].get::<_, i64>(2) + 1);
        assert_eq!(w[1].get::<_, i64>(1), w[0].get::<_, i64>(0));
        assert!(w[1].get::<_, i64>(3) > w[0].get::<_, i64>(3));
    }

    // The boundary rows db-sync writes.
    assert_eq!(ada_pots(&client, version, 0).await, (0, 0, 0));
    let row = client
        .query_one(
            "SELECT (SELECT protocol_major::int4 FROM epoch_param WHERE epoch_no = $1::int8), \
                    (SELECT count(*) FROM epoch_sync_time WHERE no = $1::int8 - 1), \
                    (SELECT completed FROM epoch_stake_progress WHERE epoch_no = $1::int8), \
                    (SELECT count(*) FROM epoch_stake WHERE epoch_no = $1::int8), \
                    (SELECT count(*) FROM epoch WHERE no = $1::int8 - 1)",
            &[&current],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Option<i32>>(0),
        Some(net.protocol_at(current).0)
    );
    assert_eq!(row.get::<_, i64>(1), 1);
    assert_eq!(row.get::<_, Option<bool>>(2), Some(true));
    assert!(row.get::<_, i64>(3) > 0);
    assert_eq!(row.get::<_, i64>(4), 1);

    // New transactions spent the newest unspent outputs and rollbacks took their inputs,
    // outputs and withdrawals with them: every rule of issue 15 still finds nothing (the
    // chain clock may run ahead of the wall clock here, so future blocks are not asked).
    for (series, got) in integrity_v2(&client, version).await {
        if series != "dbsync_blocks_in_future" {
            assert_eq!(got, 0, "after following: {series}");
        }
    }
    let orphans: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM tx_out o WHERE NOT EXISTS \
                       (SELECT 1 FROM tx WHERE tx.id = o.tx_id)) \
                  + (SELECT count(*) FROM tx_in i WHERE NOT EXISTS \
                       (SELECT 1 FROM tx WHERE tx.id = i.tx_in_id))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0, "rows of rolled-back transactions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_stalls_on_request() {
    let (_db, mut client, _) =
        generated("mainnet", SchemaVersion::V13_6, opts(Scale::Blocks(3_000))).await;
    async fn tip(c: &tokio_postgres::Client) -> i64 {
        c.query_one("SELECT max(id) FROM block", &[])
            .await
            .unwrap()
            .get(0)
    }
    let before = tip(&client).await;
    let followed = follow(
        &mut client,
        &FollowOptions {
            speed: 1000.0,
            stall_after: Some(Duration::from_millis(300)),
            log: false,
            ..FollowOptions::default()
        },
        tokio::time::sleep(Duration::from_millis(800)),
    )
    .await
    .unwrap();
    assert!(followed.stalled);
    assert!(followed.blocks > 0);
    assert_eq!(tip(&client).await, before + followed.blocks as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_and_generate_refuse_a_database_that_has_them_already() {
    let db = Cluster::shared().create_database("sim_twice").await;
    let client = db.connect().await;
    let opts = InitOptions {
        version: SchemaVersion::V13_6,
        network: Network::known("preview").unwrap(),
        indexes: IndexSet::NearTip,
    };
    // generate before init: a clear error, not a panic.
    let error = generate(&client, &GenerateOptions::default())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("init"), "{error}");
    init(&client, &opts).await.unwrap();
    let error = init(&client, &opts).await.unwrap_err();
    assert!(error.to_string().contains("already"), "{error}");
    // One generate on one connection (the library default), then a refusal.
    generate(&client, &opts_blocks(3_000)).await.unwrap();
    let error = generate(&client, &opts_blocks(3_000)).await.unwrap_err();
    assert!(error.to_string().contains("already holds"), "{error}");
}

fn opts_blocks(n: u64) -> GenerateOptions {
    opts(Scale::Blocks(n))
}
