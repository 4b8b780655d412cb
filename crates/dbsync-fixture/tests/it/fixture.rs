//! The chain fixture builder.

use dbsync_fixture::{Cluster, Fixture, IndexSet, NewBlock, SchemaVersion};

const START: i64 = 1_666_656_000;

async fn fixture(version: SchemaVersion) -> Fixture {
    let db = Cluster::shared().create_database("fixture").await;
    Fixture::create(&db, version, IndexSet::InitialSync, "preview", START).await
}

/// (id, block_no, hash) of every numbered block, by id.
async fn blocks(f: &Fixture) -> Vec<(i64, i64, Vec<u8>)> {
    f.client
        .query(
            "SELECT id, block_no::int8, hash::bytea FROM block WHERE block_no IS NOT NULL ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn create_writes_schema_version_and_meta() {
    for version in SchemaVersion::ALL {
        let f = fixture(version).await;
        let row = f
            .client
            .query_one(
                "SELECT stage_one, stage_two, stage_three FROM schema_version",
                &[],
            )
            .await
            .unwrap();
        let stages: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(stages, (version.stage_one(), version.stage_two(), 6));
        // meta.start_time is UTC whatever the session time zone.
        f.execute("SET TIME ZONE 'America/New_York'").await;
        let row = f
            .client
            .query_one(
                "SELECT extract(epoch FROM start_time)::int8, network_name::text, version::text FROM meta",
                &[],
            )
            .await
            .unwrap();
        let start: i64 = row.get(0);
        let network: String = row.get(1);
        let meta_version: String = row.get(2);
        assert_eq!((start, network.as_str()), (START, "preview"));
        assert!(
            meta_version.starts_with("Version {versionBranch = [13,"),
            "{meta_version}"
        );
    }
}

#[tokio::test]
async fn genesis_and_extend() {
    let mut f = fixture(SchemaVersion::V13_6).await;
    let genesis = f.genesis_block(START).await;
    assert_eq!(f.tip().await, None);
    let row = f
        .client
        .query_one(
            "SELECT block_no IS NULL AND slot_no IS NULL AND epoch_no IS NULL FROM block WHERE id = $1",
            &[&genesis],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));

    let ids = f.extend(3, 20).await;
    assert_eq!(ids.len(), 3);
    f.extend_into_epoch(1, 2, 20).await;
    let rows = f
        .client
        .query(
            "SELECT block_no::int8, slot_no::int8, epoch_no::int8, epoch_slot_no::int8, \
             extract(epoch FROM time)::int8, previous_id FROM block \
             WHERE block_no IS NOT NULL ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(i64, i64, i64, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get::<_, i64>(4) - START,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (0, 0, 0, 0, 0),
            (1, 20, 0, 20, 20),
            (2, 40, 0, 40, 40),
            (3, 60, 1, 0, 60),
            (4, 80, 1, 20, 80)
        ]
    );
    let first_prev: Option<i64> = rows[0].get(5);
    assert_eq!(first_prev, Some(genesis));

    let (tip_id, tip_no, tip_hash) = f.tip().await.unwrap();
    assert_eq!(tip_no, 4);
    assert_eq!(tip_hash.len(), 32);
    let explicit = f
        .insert_block(NewBlock {
            block_no: Some(5),
            slot_no: Some(100),
            epoch_no: Some(1),
            epoch_slot_no: Some(40),
            time_unix: START + 100,
            hash: [7; 32],
            proto_major: 10,
            proto_minor: 2,
            tx_count: 3,
        })
        .await;
    assert!(explicit > tip_id);
    assert_eq!(f.tip().await, Some((explicit, 5, vec![7; 32])));
}

#[tokio::test]
async fn rollback_and_replace_keeps_numbers_changes_hashes_raises_ids() {
    for version in [SchemaVersion::V13_2, SchemaVersion::V13_7] {
        let mut f = fixture(version).await;
        f.genesis_block(START).await;
        f.extend(10, 20).await;
        let before = blocks(&f).await;
        let max_id_before = before.last().unwrap().0;

        let (top_id, _, _) = f.tip().await.unwrap();
        let low_tx = f.insert_tx(before[0].0, 170_000).await;
        let top_tx = f.insert_tx(top_id, 170_000).await;
        let second = f.insert_tx(top_id, 1).await;
        assert!(low_tx < top_tx && top_tx < second);

        assert_eq!(f.rollback_and_replace(3).await, 9);
        let after = blocks(&f).await;
        assert_eq!(after.len(), before.len());
        assert_eq!(
            before[..7],
            after[..7],
            "blocks below the fork are untouched"
        );
        for (old, new) in before[7..].iter().zip(&after[7..]) {
            assert_eq!(old.1, new.1, "same block_no");
            assert_ne!(old.2, new.2, "new hash");
            assert!(new.0 > max_id_before, "ids are never reused");
        }
        // The replacement chain links up through previous_id.
        let linked: i64 = f
            .client
            .query_one(
                "SELECT count(*) FROM block b JOIN block p ON p.id = b.previous_id \
                 WHERE b.block_no = p.block_no + 1",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(linked, 9);

        let txs: Vec<i64> = f
            .client
            .query("SELECT id FROM tx ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(txs, [low_tx], "txs of rolled-back blocks are deleted");

        f.extend(1, 20).await;
        assert_eq!(f.tip().await.unwrap().1, 10);
    }
}

#[tokio::test]
async fn truncate_moves_the_tip_back() {
    let mut f = fixture(SchemaVersion::V13_3).await;
    f.genesis_block(START).await;
    f.extend(5, 1).await;
    f.truncate(2).await;
    assert_eq!(f.tip().await.unwrap().1, 2);
    f.extend(1, 1).await;
    assert_eq!(f.tip().await.unwrap().1, 3);
}

#[tokio::test]
async fn epoch_sync_time_rows() {
    let f = fixture(SchemaVersion::V13_7).await;
    f.epoch_sync_time(10, 3600, "lagging").await;
    f.epoch_sync_time(11, 90, "following").await;
    let rows = f
        .client
        .query(
            "SELECT no, seconds, state::text FROM epoch_sync_time ORDER BY no",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(i64, i64, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        [
            (10, 3600, "lagging".to_owned()),
            (11, 90, "following".to_owned())
        ]
    );
}
