//! Koios' routing rules against `grest.control_table` rows written exactly as Koios' cron
//! jobs write them, at pinned points of an epoch (so the outcome does not depend on the day
//! the suite runs), and its timestamps in every `DateStyle` PostgreSQL can write.

use std::time::Duration;

use dbsync_exporter::chain::NetworkParams;
use dbsync_fixture::{grest_ddl, Cluster, Fixture, SchemaVersion};

use crate::common::{
    chain_on, config, eventually, must, pinned_network, unix_now, value, wait_for_value, Exporter,
};

/// Koios' statements: `setup-grest.sh` (version), the stake distribution cache's
/// `update_control_table` (a block height), `pool_history_cache_update` (`NOW() AT TIME ZONE
/// 'utc'` into the text column) and `active_stake_cache_update` (the newest completed
/// `epoch_stake_progress` epoch, normally the tip's + 1).
fn koios_rows(stake_lbh: i64, active_stake_epoch: i64) -> String {
    format!(
        "INSERT INTO grest.control_table (key, last_value, artifacts) VALUES ('version', 'v1.3.2', '[abc]'); \
         INSERT INTO grest.control_table (key, last_value) VALUES ('stake_distribution_lbh', '{stake_lbh}'); \
         INSERT INTO grest.control_table (key, last_value) VALUES ('pool_history_cache_last_updated', NOW() AT TIME ZONE 'utc') \
           ON CONFLICT (key) DO UPDATE SET last_value = NOW() AT TIME ZONE 'utc'; \
         INSERT INTO grest.control_table (key, last_value) VALUES ('last_active_stake_validated_epoch', '{active_stake_epoch}')"
    )
}

/// A Koios instance on a network pinned at `position` of epoch 10, its tip 10 s old.
async fn pinned_koios(position: f64) -> (Exporter, Fixture, NetworkParams) {
    let db = Cluster::shared()
        .create_database(&format!("koios_{}", (position * 100.0) as i64))
        .await;
    // Epochs of a day: a test lasts seconds, so the position barely moves.
    let params = pinned_network(unix_now(), 86_400, position);
    let fixture = chain_on(&db, SchemaVersion::V13_7, &params, unix_now() - 10, 5).await;
    fixture.execute(grest_ddl()).await;
    // Tip block 1004 in epoch 10.
    fixture.execute(&koios_rows(1004 - 5, 11)).await;
    let mut settings = config(&db.reader_url());
    settings.checks.grest_interval = Duration::from_millis(200);
    settings.chain_override = Some(params.clone());
    let exporter = Exporter::start(settings).await;
    (exporter, fixture, params)
}

/// Waits until the exporter has read the control table as it is now (two more grest runs),
/// and returns that scrape.
async fn after_grest_run(exporter: &Exporter) -> String {
    let runs = "dbsync_check_runs_total{check=\"grest\",outcome=\"success\"}";
    let before = value(&exporter.metrics().await, runs).unwrap_or(0.0);
    eventually(Duration::from_secs(30), "two more grest runs", || async {
        let body = exporter.metrics().await;
        (value(&body, runs)? >= before + 2.0).then_some(body)
    })
    .await
}

fn state(body: &str) -> &'static str {
    ["up", "drain", "down"]
        .into_iter()
        .find(|state| {
            value(body, &format!("dbsync_health_state{{state=\"{state}\"}}")) == Some(1.0)
        })
        .unwrap_or_else(|| panic!("no health state in:\n{body}"))
}

fn active(body: &str, reason: &str) -> bool {
    value(
        body,
        &format!("dbsync_health_reason{{reason=\"{reason}\"}}"),
    ) == Some(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn koios_rules_hold_at_any_point_of_the_epoch() {
    for position in [0.05, 0.5, 0.99] {
        let (exporter, fixture, params) = pinned_koios(position).await;
        wait_for_value(&exporter, "dbsync_up", 1.0).await;
        let body = wait_for_value(&exporter, "dbsync_grest_active_stake_epoch_number", 11.0).await;
        let slot = must(&body, "dbsync_slot_number") as i64;
        assert_eq!(params.epoch_of_slot(slot), 10, "pinned into epoch 10");
        let past_a_sixth = position > 1.0 / 6.0;
        // Koios' normal state, the tip's epoch + 1, and the tip's epoch itself: healthy.
        let body = after_grest_run(&exporter).await;
        assert_eq!(state(&body), "up", "epoch + 1 at {position}:\n{body}");
        assert_eq!(
            must(
                &body,
                "dbsync_grest_cache_lag_blocks{cache=\"stake_distribution_lbh\"}"
            ),
            5.0
        );
        fixture
            .execute("UPDATE grest.control_table SET last_value = '10' WHERE key = 'last_active_stake_validated_epoch'")
            .await;
        let body = wait_for_value(&exporter, "dbsync_grest_active_stake_epoch_number", 10.0).await;
        assert_eq!(state(&body), "up", "tip epoch at {position}:\n{body}");

        // Older than the tip's epoch, or missing: drains past the first sixth only.
        fixture
            .execute("UPDATE grest.control_table SET last_value = '9' WHERE key = 'last_active_stake_validated_epoch'")
            .await;
        let body = wait_for_value(&exporter, "dbsync_grest_active_stake_epoch_number", 9.0).await;
        assert_eq!(
            active(&body, "grest_active_stake_cache"),
            past_a_sixth,
            "{position}"
        );
        assert_eq!(state(&body), if past_a_sixth { "drain" } else { "up" });
        fixture
            .execute(
                "DELETE FROM grest.control_table WHERE key = 'last_active_stake_validated_epoch'",
            )
            .await;
        let body = after_grest_run(&exporter).await;
        assert_eq!(value(&body, "dbsync_grest_active_stake_epoch_number"), None);
        assert_eq!(
            active(&body, "grest_active_stake_cache"),
            past_a_sixth,
            "{position}"
        );
        if past_a_sixth {
            let health: serde_json::Value = exporter.get("/health").await.json().await.unwrap();
            assert_eq!(
                health["reasons"][0]["detail"],
                "active stake cache never computed (no last_active_stake_validated_epoch) \
                 in epoch 10, past a sixth of it (Koios wants 10 or 11)"
            );
        }
        fixture
            .execute("INSERT INTO grest.control_table (key, last_value) VALUES ('last_active_stake_validated_epoch', '11')")
            .await;

        // The stake distribution cache: more than 2000 blocks behind, or never computed.
        fixture
            .execute("UPDATE grest.control_table SET last_value = '1004' WHERE key = 'stake_distribution_lbh'")
            .await;
        let body = wait_for_value(
            &exporter,
            "dbsync_grest_cache_lag_blocks{cache=\"stake_distribution_lbh\"}",
            0.0,
        )
        .await;
        assert_eq!(state(&body), "up", "{position}:\n{body}");
        fixture
            .execute("DELETE FROM grest.control_table WHERE key = 'stake_distribution_lbh'")
            .await;
        let body = after_grest_run(&exporter).await;
        assert_eq!(state(&body), "drain", "{position}:\n{body}");
        assert!(active(&body, "grest_stake_distribution_cache"));
        let health: serde_json::Value = exporter.get("/health").await.json().await.unwrap();
        assert_eq!(health["status"], "drain");
        assert_eq!(
            health["reasons"][0]["detail"],
            "stake distribution cache never computed (no stake_distribution_lbh)"
        );
        exporter.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expected_koios_version_drains_on_another() {
    let db = Cluster::shared().create_database("koios_version").await;
    let params = pinned_network(unix_now(), 86_400, 0.5);
    let fixture = chain_on(&db, SchemaVersion::V13_7, &params, unix_now() - 10, 5).await;
    fixture.execute(grest_ddl()).await;
    fixture.execute(&koios_rows(1000, 11)).await;
    let mut settings = config(&db.reader_url());
    settings.checks.grest_interval = Duration::from_millis(200);
    settings.chain_override = Some(params);
    settings.health.grest_expected_version = Some("v1.3.2".into());
    let exporter = Exporter::start(settings).await;
    let body = wait_for_value(&exporter, "dbsync_grest_info{version=\"v1.3.2\"}", 1.0).await;
    let body = if value(&body, "dbsync_up") == Some(1.0) {
        body
    } else {
        wait_for_value(&exporter, "dbsync_up", 1.0).await
    };
    assert_eq!(state(&body), "up", "{body}");
    fixture
        .execute("UPDATE grest.control_table SET last_value = 'v1.2.0' WHERE key = 'version'")
        .await;
    let body = wait_for_value(&exporter, "dbsync_grest_info{version=\"v1.2.0\"}", 1.0).await;
    assert_eq!(state(&body), "drain");
    assert!(active(&body, "grest_version"));
    let health: serde_json::Value = exporter.get("/health").await.json().await.unwrap();
    assert_eq!(
        health["reasons"][0]["detail"],
        "Koios version \"v1.2.0\" is not the expected \"v1.3.2\""
    );
    exporter.shutdown().await;
}

/// `pool_history_cache_last_updated` as written by `NOW() AT TIME ZONE 'utc'` under each
/// `DateStyle`: the exporter reads the instant PostgreSQL wrote, to the microsecond. The
/// day-or-month-first SQL and Postgres styles are read in the database's default order (the
/// one the writer's session has unless it sets its own), so they are written into a database
/// with that default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn koios_timestamps_are_read_in_every_datestyle() {
    for (default, styles) in [
        (
            "ISO, MDY",
            ["ISO, MDY", "SQL, MDY", "Postgres, MDY", "German"],
        ),
        (
            "ISO, DMY",
            ["ISO, DMY", "SQL, DMY", "Postgres, DMY", "German"],
        ),
    ] {
        let db = Cluster::shared().create_database("datestyle").await;
        let admin = db.connect().await;
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {} SET DateStyle = '{default}'",
                db.name
            ))
            .await
            .unwrap();
        let params = pinned_network(unix_now(), 86_400, 0.5);
        let fixture = chain_on(&db, SchemaVersion::V13_7, &params, unix_now() - 10, 5).await;
        fixture.execute(grest_ddl()).await;
        // One transaction: NOW() is the same instant for every row.
        let mut writes = String::from("BEGIN;");
        for (index, style) in styles.iter().enumerate() {
            let key = format!("style{index}_cache_last_updated");
            writes.push_str(&format!(
                "SET LOCAL DateStyle = '{style}'; \
                 INSERT INTO grest.control_table (key, last_value) VALUES ('{key}', NOW() AT TIME ZONE 'utc');"
            ));
        }
        writes.push_str("CREATE TEMP TABLE written AS SELECT extract(epoch FROM now())::float8 AS unix; COMMIT;");
        let client = db.connect().await;
        client.batch_execute(&writes).await.unwrap();
        let written: f64 = client
            .query_one("SELECT unix FROM written", &[])
            .await
            .unwrap()
            .get(0);
        let texts: Vec<String> = client
            .query(
                "SELECT last_value FROM grest.control_table ORDER BY key",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut settings = config(&db.reader_url());
        settings.checks.grest_interval = Duration::from_millis(200);
        settings.chain_override = Some(params);
        let exporter = Exporter::start(settings).await;
        let body = wait_for_value(&exporter, "dbsync_check_success{check=\"grest\"}", 1.0).await;
        for (index, style) in styles.iter().enumerate() {
            let read = must(
                &body,
                &format!(
                    "dbsync_grest_cache_last_update_timestamp_seconds{{cache=\"style{index}_cache_last_updated\"}}"
                ),
            );
            assert!(
                (read - written).abs() < 2e-6,
                "{style} ({:?}, database default {default}): read {read}, written {written}",
                texts[index]
            );
        }
        exporter.shutdown().await;
        drop(fixture);
    }
}

/// A pool history timestamp nobody can read is a drain reason that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_pool_history_timestamp_drains_with_the_value() {
    let (exporter, fixture, _) = pinned_koios(0.5).await;
    wait_for_value(&exporter, "dbsync_up", 1.0).await;
    wait_for_value(&exporter, "dbsync_grest_active_stake_epoch_number", 11.0).await;
    fixture
        .execute("UPDATE grest.control_table SET last_value = 'last tuesday' WHERE key = 'pool_history_cache_last_updated'")
        .await;
    let body = eventually(
        Duration::from_secs(30),
        "pool history unreadable",
        || async {
            let body = exporter.metrics().await;
            active(&body, "grest_pool_history_cache").then_some(body)
        },
    )
    .await;
    assert_eq!(state(&body), "drain");
    assert!(
        !body.contains("cache=\"pool_history_cache_last_updated\""),
        "no timestamp is made up:\n{body}"
    );
    let health: serde_json::Value = exporter.get("/health").await.json().await.unwrap();
    assert_eq!(
        health["reasons"][0]["detail"],
        "pool history cache: pool_history_cache_last_updated \"last tuesday\" is not a timestamp"
    );
    exporter.shutdown().await;
}
