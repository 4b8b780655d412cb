//! Every schema version applies to a real database and the catalog says what the reference says.

use dbsync_fixture::{ddl, grest_ddl, near_tip_ddl, Cluster, IndexSet, SchemaVersion};
use tokio_postgres::Client;

async fn database_with(version: SchemaVersion, indexes: IndexSet) -> Client {
    let db = Cluster::shared()
        .create_database(&format!("schema_{}", version.label()))
        .await;
    let client = db.connect().await;
    client
        .batch_execute(&ddl(version, indexes))
        .await
        .unwrap_or_else(|e| panic!("{version} {indexes:?}: {e:?}"));
    client
}

async fn relkind(client: &Client, name: &str) -> Option<String> {
    client
        .query_opt(
            "SELECT relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname = $1",
            &[&name],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

async fn indexes(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn columns(client: &Client, table: &str) -> Vec<String> {
    client
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn every_version_matches_the_reference() {
    for version in SchemaVersion::ALL {
        let c = database_with(version, IndexSet::InitialSync).await;
        let is_13_2 = version == SchemaVersion::V13_2;
        let is_13_7 = version == SchemaVersion::V13_7;

        assert_eq!(
            relkind(&c, "reward_rest").await.is_some(),
            !is_13_2,
            "{version}"
        );
        assert_eq!(
            relkind(&c, "instant_reward").await.is_some(),
            is_13_2,
            "{version}"
        );
        let want_epoch = if is_13_7 { "v" } else { "r" };
        assert_eq!(
            relkind(&c, "epoch").await.as_deref(),
            Some(want_epoch),
            "{version}"
        );
        assert_eq!(
            relkind(&c, "epoch_finalized").await.is_some(),
            is_13_7,
            "{version}"
        );

        let pots = columns(&c, "ada_pots").await;
        assert_eq!(pots.contains(&"deposits".to_owned()), is_13_2, "{version}");
        for col in ["deposits_stake", "deposits_drep", "deposits_proposal"] {
            assert_eq!(pots.contains(&col.to_owned()), !is_13_2, "{version} {col}");
        }
        for (table, col) in [
            ("pool_update", "deposit"),
            ("stake_registration", "deposit"),
            ("tx", "treasury_donation"),
        ] {
            let has = columns(&c, table).await.contains(&col.to_owned());
            assert_eq!(has, !is_13_2, "{version} {table}.{col}");
        }
        assert!(!columns(&c, "reward").await.contains(&"id".to_owned()));

        let labels: Vec<String> = c
            .query("SELECT unnest(enum_range(NULL::rewardtype))::text", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            labels.contains(&"proposal_refund".to_owned()),
            !is_13_2,
            "{version} {labels:?}"
        );

        // No foreign keys since 13.1.
        let fks: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_constraint WHERE contype = 'f'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(fks, 0);

        let idx = indexes(&c).await;
        for name in [
            "idx_block_block_no",
            "idx_block_slot_no",
            "idx_tx_block_id",
            "unique_block",
        ] {
            assert!(idx.contains(&name.to_owned()), "{version} lacks {name}");
        }
        assert_eq!(
            idx.contains(&"idx_pool_update_registered_tx_id".to_owned()),
            !is_13_2,
            "{version}"
        );
        for absent in [
            "idx_reward_addr_id",
            "idx_block_time",
            "unique_reward",
            "idx_epoch_no",
        ] {
            assert!(!idx.contains(&absent.to_owned()), "{version} has {absent}");
        }

        // The 13.7 epoch view is selectable (and aggregates the running epoch).
        c.query("SELECT no, out_sum, fees, blk_count FROM epoch", &[])
            .await
            .unwrap_or_else(|e| panic!("{version}: SELECT FROM epoch: {e:?}"));
    }
}

#[tokio::test]
async fn near_tip_adds_stage_four_and_run_time_constraints() {
    for version in SchemaVersion::ALL {
        let near = database_with(version, IndexSet::NearTip).await;
        let near_idx = indexes(&near).await;
        for name in [
            "idx_reward_addr_id",
            "idx_reward_pool_id",
            "idx_reward_earned_epoch",
            "idx_block_time",
            "idx_pool_retire_hash_id",
            "idx_stake_address_view",
            "idx_epoch_stake_addr_id",
            "unique_reward",
            "unique_epoch_stake",
        ] {
            assert!(
                near_idx.contains(&name.to_owned()),
                "{version} lacks {name}"
            );
        }
        assert_eq!(
            near_idx.contains(&"idx_epoch_no".to_owned()),
            version != SchemaVersion::V13_7
        );

        // Upgrading an initial-sync database gives the same index set; twice is harmless.
        let upgraded = database_with(version, IndexSet::InitialSync).await;
        upgraded
            .batch_execute(&near_tip_ddl(version))
            .await
            .unwrap();
        upgraded
            .batch_execute(&near_tip_ddl(version))
            .await
            .unwrap();
        assert_eq!(indexes(&upgraded).await, near_idx, "{version}");
    }
}

#[tokio::test]
async fn generated_earned_epochs() {
    for version in SchemaVersion::ALL {
        let c = database_with(version, IndexSet::NearTip).await;
        let generated: Vec<String> = c
            .query(
                "SELECT attrelid::regclass::text FROM pg_attribute \
                 WHERE attname = 'earned_epoch' AND attgenerated = 's' ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let rest = if version == SchemaVersion::V13_2 {
            "instant_reward"
        } else {
            "reward_rest"
        };
        let mut want = vec!["reward".to_owned(), rest.to_owned()];
        want.sort();
        assert_eq!(generated, want, "{version}");

        c.batch_execute(
            "INSERT INTO reward (addr_id, type, amount, spendable_epoch, pool_id) VALUES
                 (1, 'refund', 500000000, 300, 7),
                 (1, 'member', 10, 300, 7),
                 (1, 'leader', 10, 1, 7)",
        )
        .await
        .unwrap();
        let rows = c
            .query(
                "SELECT type::text, earned_epoch FROM reward ORDER BY spendable_epoch DESC, type",
                &[],
            )
            .await
            .unwrap();
        let got: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(
            got,
            [
                ("member".to_owned(), 298),
                ("refund".to_owned(), 300),
                ("leader".to_owned(), 0)
            ]
        );

        c.batch_execute(&format!(
            "INSERT INTO {rest} (addr_id, type, amount, spendable_epoch) VALUES
                 (1, 'reserves', 5, 209), (2, 'treasury', 5, 0)"
        ))
        .await
        .unwrap();
        let earned: Vec<i64> = c
            .query(
                &format!("SELECT earned_epoch FROM {rest} ORDER BY addr_id"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(earned, [208, 0]);

        // unique_reward (a run-time constraint) is there near the tip.
        let dup = c
            .batch_execute(
                "INSERT INTO reward (addr_id, type, amount, spendable_epoch, pool_id) \
                 VALUES (1, 'member', 11, 300, 7)",
            )
            .await;
        assert!(dup.is_err(), "{version}: duplicate reward accepted");
    }
}

#[tokio::test]
async fn domains_keep_their_base_types_and_checks() {
    let c = database_with(SchemaVersion::V13_6, IndexSet::InitialSync).await;
    let rows = c
        .query(
            "SELECT typname::text, format_type(typbasetype, typtypmod) FROM pg_type \
             WHERE typtype = 'd' AND typname IN ('lovelace', 'word31type', 'word63type', \
             'word128type', 'int65type', 'hash32type', 'txindex') ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let want = [
        ("hash32type", "bytea"),
        ("int65type", "numeric(20,0)"),
        ("lovelace", "numeric(20,0)"),
        ("txindex", "smallint"),
        ("word128type", "numeric(39,0)"),
        ("word31type", "integer"),
        ("word63type", "bigint"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(got, want);

    for ok in ["0", "18446744073709551615"] {
        c.batch_execute(&format!("SELECT '{ok}'::lovelace"))
            .await
            .unwrap();
    }
    for bad in ["-1", "18446744073709551616"] {
        let err = c.batch_execute(&format!("SELECT '{bad}'::lovelace")).await;
        assert!(err.is_err(), "lovelace accepted {bad}");
    }
    assert!(c
        .batch_execute("SELECT '\\x00'::bytea::hash32type")
        .await
        .is_err());

    // A domain-typed result column reaches the client as its base type.
    c.batch_execute(
        "INSERT INTO block (hash, epoch_no, slot_no, block_no, slot_leader_id, size, time, \
         tx_count, proto_major, proto_minor) VALUES \
         (decode(repeat('ab', 32), 'hex'), 5, 123456789012, 7, 1, 0, now(), 0, 9, 0)",
    )
    .await
    .unwrap();
    let row = c
        .query_one("SELECT slot_no, epoch_no, hash FROM block", &[])
        .await
        .unwrap();
    let slot: i64 = row.get(0);
    let epoch: i32 = row.get(1);
    let hash: Vec<u8> = row.get(2);
    assert_eq!((slot, epoch, hash.len()), (123_456_789_012, 5, 32));
}

#[tokio::test]
async fn grest_control_table() {
    let c = database_with(SchemaVersion::V13_6, IndexSet::InitialSync).await;
    c.batch_execute(grest_ddl()).await.unwrap();
    c.batch_execute(grest_ddl()).await.unwrap();
    c.batch_execute(
        "INSERT INTO grest.control_table (key, last_value) VALUES ('version', 'v1.3.2')",
    )
    .await
    .unwrap();
    assert!(c
        .batch_execute("INSERT INTO grest.control_table (key, last_value) VALUES ('x', NULL)")
        .await
        .is_err());
}
