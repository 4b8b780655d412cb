//! Every core metric with its exact value, per network and schema version.

use std::time::Duration;

use dbsync_exporter::chain::NetworkParams;
use dbsync_fixture::{Cluster, SchemaVersion};

use crate::common::{
    chain, config, must, unix_now, value, wait_for_at_least, wait_for_value, Exporter,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_core_metric_has_its_value() {
    let db = Cluster::shared().create_database("core_metrics").await;
    let tip_unix = unix_now() - 42;
    let fixture = chain(&db, SchemaVersion::V13_6, "mainnet", tip_unix, 5).await;
    fixture.epoch_sync_time(509, 1234, "following").await;
    fixture.epoch_sync_time(510, 321, "following").await;
    let params = NetworkParams::known("mainnet").unwrap();
    let tip_slot = params.slot_at(tip_unix);

    let exporter = Exporter::start(config(&db.reader_url())).await;
    let body = wait_for_value(&exporter, "dbsync_check_success{check=\"info\"}", 1.0).await;
    let body = if value(&body, "dbsync_check_success{check=\"rollback\"}") == Some(1.0) {
        body
    } else {
        wait_for_value(&exporter, "dbsync_check_success{check=\"rollback\"}", 1.0).await
    };
    // The tip check's first run too: on a loaded machine it can end after the info and
    // rollback checks' (all of them share the pool at start).
    wait_for_value(&exporter, "dbsync_up", 1.0).await;
    let before = unix_now();
    let body = {
        let fresh = exporter.metrics().await;
        assert!(fresh.contains("dbsync_up 1"), "{body}");
        fresh
    };
    let after = unix_now();

    assert_eq!(must(&body, "dbsync_up"), 1.0);
    assert_eq!(
        must(
            &body,
            "dbsync_info{network=\"mainnet\",dbsync_release=\"13.6.0\",schema=\"15.44.6\"}"
        ),
        1.0
    );
    assert_eq!(
        must(
            &body,
            &format!(
                "dbsync_exporter_build_info{{version=\"{}\",revision=\"{}\",rustc=\"{}\"}}",
                env!("CARGO_PKG_VERSION"),
                dbsync_exporter::REVISION,
                dbsync_exporter::RUSTC_VERSION
            )
        ),
        1.0
    );
    assert_eq!(must(&body, "dbsync_block_height"), 1004.0);
    assert_eq!(must(&body, "dbsync_slot_number"), tip_slot as f64);
    assert_eq!(
        must(&body, "dbsync_epoch_number"),
        params.epoch_of_slot(tip_slot) as f64
    );
    assert_eq!(
        must(&body, "dbsync_tip_timestamp_seconds"),
        params.slot_time(tip_slot) as f64
    );

    // The scrape happened between `before` and `after + 1` (whole seconds).
    let age = must(&body, "dbsync_tip_age_seconds");
    assert!(
        ((before - tip_unix) as f64..=(after + 1 - tip_unix) as f64).contains(&age),
        "tip age {age}"
    );
    let expected = must(&body, "dbsync_expected_slot_number") as i64;
    assert!(
        (params.slot_at(before)..=params.slot_at(after + 1)).contains(&expected),
        "expected slot {expected}"
    );
    assert_eq!(must(&body, "dbsync_slot_lag") as i64, expected - tip_slot);
    let progress = must(&body, "dbsync_sync_progress_ratio");
    assert!(
        progress > 0.99999 && progress < 1.0,
        "sync progress {progress}"
    );
    let epoch_progress = must(&body, "dbsync_epoch_progress_ratio");
    assert_eq!(epoch_progress, params.epoch_progress(tip_slot));

    assert_eq!(must(&body, "dbsync_rollbacks_total"), 0.0);
    assert_eq!(must(&body, "dbsync_last_rollback_depth_blocks"), 0.0);
    assert_eq!(
        must(&body, "dbsync_last_epoch_sync_duration_seconds"),
        321.0
    );
    assert_eq!(must(&body, "dbsync_last_synced_epoch_number"), 510.0);

    for check in ["tip", "rollback", "info"] {
        assert_eq!(
            must(&body, &format!("dbsync_check_success{{check=\"{check}\"}}")),
            1.0
        );
        assert_eq!(
            must(
                &body,
                &format!("dbsync_check_applicable{{check=\"{check}\"}}")
            ),
            1.0
        );
        assert!(
            must(
                &body,
                &format!("dbsync_check_runs_total{{check=\"{check}\",outcome=\"success\"}}")
            ) >= 1.0
        );
        assert_eq!(
            must(
                &body,
                &format!("dbsync_check_runs_total{{check=\"{check}\",outcome=\"error\"}}")
            ),
            0.0
        );
        assert_eq!(
            must(
                &body,
                &format!("dbsync_check_runs_total{{check=\"{check}\",outcome=\"timeout\"}}")
            ),
            0.0
        );
        let last = must(
            &body,
            &format!("dbsync_check_last_success_timestamp_seconds{{check=\"{check}\"}}"),
        );
        assert!(
            last <= after as f64 + 1.0 && last > (before - 30) as f64,
            "{check} last success {last}"
        );
        let duration = must(
            &body,
            &format!("dbsync_check_duration_seconds{{check=\"{check}\"}}"),
        );
        assert!(
            duration > 0.0 && duration < 5.0,
            "{check} duration {duration}"
        );
    }
    assert_eq!(
        must(&body, "dbsync_check_interval_seconds{check=\"tip\"}"),
        0.2
    );
    assert_eq!(
        must(&body, "dbsync_check_interval_seconds{check=\"info\"}"),
        0.5
    );
    assert_eq!(must(&body, "dbsync_db_max_connections"), 3.0);
    let idle = must(&body, "dbsync_db_connections{state=\"idle\"}");
    let active = must(&body, "dbsync_db_connections{state=\"active\"}");
    assert!(
        (1.0..=3.0).contains(&(idle + active)),
        "pool idle {idle} active {active}"
    );
    assert_eq!(must(&body, "dbsync_health_state{state=\"up\"}"), 1.0);
    assert_eq!(must(&body, "dbsync_health_state{state=\"down\"}"), 0.0);
    assert!(!body.contains("dbsync_health_reason{"), "{body}");
    exporter.shutdown().await;
}

/// Tip age and slot lag on each public network and schema version: a tip 300 s old is
/// 300 slots behind (1 s slots), whatever the network's genesis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tip_age_and_slot_lag_per_network() {
    let cases = [
        ("mainnet", SchemaVersion::V13_2),
        ("preprod", SchemaVersion::V13_3),
        ("preview", SchemaVersion::V13_7),
    ];
    for (network, version) in cases {
        let db = Cluster::shared()
            .create_database(&format!("lag_{network}"))
            .await;
        let tip_unix = unix_now() - 300;
        let _fixture = chain(&db, version, network, tip_unix, 3).await;
        let params = NetworkParams::known(network).unwrap();
        let exporter = Exporter::start(config(&db.reader_url())).await;
        let body = wait_for_value(&exporter, "dbsync_up", 1.0).await;
        let tip_slot = must(&body, "dbsync_slot_number") as i64;
        assert_eq!(tip_slot, params.slot_at(tip_unix), "{network}");
        let age = must(&body, "dbsync_tip_age_seconds");
        assert!((300.0..305.0).contains(&age), "{network}: age {age}");
        let lag = must(&body, "dbsync_slot_lag");
        assert!((300.0..=305.0).contains(&lag), "{network}: slot lag {lag}");
        assert_eq!(
            must(&body, "dbsync_expected_slot_number") as i64 - tip_slot,
            lag as i64,
            "{network}"
        );
        let body = wait_for_value(&exporter, "dbsync_check_success{check=\"info\"}", 1.0).await;
        let release = match version {
            SchemaVersion::V13_2 => "13.2.0",
            SchemaVersion::V13_3 => "13.3.0",
            SchemaVersion::V13_6 => "13.6.0",
            SchemaVersion::V13_7 => "13.7.2",
        };
        let info = format!(
            "dbsync_info{{network=\"{network}\",dbsync_release=\"{release}\",schema=\"{}.{}.6\"}}",
            version.stage_one(),
            version.stage_two()
        );
        assert_eq!(must(&body, &info), 1.0);
        exporter.shutdown().await;
    }
}

/// A network db-sync names but the exporter has no constants for: tip metrics, but no
/// expected slot or lag (they would be made up); a --chain.* override brings them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_network_has_no_slot_arithmetic_unless_overridden() {
    let db = Cluster::shared().create_database("unknown_net").await;
    let _fixture = chain(&db, SchemaVersion::V13_6, "preview", unix_now() - 10, 2).await;
    _fixture
        .execute("UPDATE meta SET network_name = 'sanchonet'")
        .await;
    let exporter = Exporter::start(config(&db.reader_url())).await;
    let body = wait_for_value(&exporter, "dbsync_up", 1.0).await;
    assert!(value(&body, "dbsync_block_height").is_some());
    assert_eq!(value(&body, "dbsync_slot_lag"), None, "{body}");
    exporter.shutdown().await;

    let mut overridden = config(&db.reader_url());
    overridden.chain_override = Some(NetworkParams {
        name: "custom".into(),
        ..NetworkParams::known("preview").unwrap()
    });
    let exporter = Exporter::start(overridden).await;
    let body = wait_for_value(&exporter, "dbsync_up", 1.0).await;
    let lag = must(&body, "dbsync_slot_lag");
    assert!((10.0..=15.0).contains(&lag), "slot lag {lag}");
    exporter.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_block_rollback_is_counted_with_depth_two() {
    let db = Cluster::shared().create_database("rollback").await;
    let mut fixture = chain(&db, SchemaVersion::V13_6, "mainnet", unix_now() - 100, 10).await;
    let exporter = Exporter::start(config(&db.reader_url())).await;
    // Two successful rollback runs: the window is remembered.
    wait_for_at_least(
        &exporter,
        "dbsync_check_runs_total{check=\"rollback\",outcome=\"success\"}",
        2.0,
    )
    .await;

    let tip = fixture.rollback_and_replace(2).await;
    assert_eq!(tip, 1009, "db-sync's swap keeps the tip height");
    let body = wait_for_value(&exporter, "dbsync_rollbacks_total", 1.0).await;
    assert_eq!(must(&body, "dbsync_last_rollback_depth_blocks"), 2.0);
    assert_eq!(must(&body, "dbsync_block_height"), 1009.0);

    // A tip that goes backwards (blocks deleted, not yet replaced) is a rollback too.
    fixture.truncate(3).await;
    let body = wait_for_value(&exporter, "dbsync_rollbacks_total", 2.0).await;
    assert_eq!(must(&body, "dbsync_last_rollback_depth_blocks"), 3.0);

    // New blocks on top are not a rollback.
    fixture.extend(5, 20).await;
    let body = wait_for_value(&exporter, "dbsync_block_height", 1011.0).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = exporter.metrics().await;
    assert_eq!(must(&later, "dbsync_rollbacks_total"), 2.0, "{body}");
    exporter.shutdown().await;
}
