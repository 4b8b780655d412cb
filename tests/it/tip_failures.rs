//! Failed tip runs and the routing state: one slow run does not flap the instance, a failure
//! that outlasts the grace is down with a reason that says what happened.

use std::time::Duration;

use dbsync_fixture::{Cluster, SchemaVersion, TestDatabase};

use crate::common::{chain, config, eventually, must, unix_now, value, wait_for_value, Exporter};

/// `--tip-interval 2s` with the default grace of three intervals.
fn slow_tip_settings(db: &TestDatabase) -> dbsync_exporter::Config {
    let mut settings = config(&db.reader_url());
    settings.checks.tip_interval = Duration::from_secs(2);
    settings.health.tip_failure_grace = settings.checks.tip_interval * 3;
    settings.db.lock_timeout = Duration::from_secs(1);
    settings
}

async fn health(exporter: &Exporter) -> (u16, serde_json::Value) {
    let response = exporter.get("/health").await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_timeout_on_one_tip_run_leaves_the_instance_up() {
    let db = Cluster::shared().create_database("one_slow_tip").await;
    let _fixture = chain(&db, SchemaVersion::V13_7, "preview", unix_now() - 5, 3).await;
    let exporter = Exporter::start(slow_tip_settings(&db)).await;
    wait_for_value(&exporter, "dbsync_up", 1.0).await;
    assert_eq!(health(&exporter).await.0, 200);

    let mut blocker = db.connect().await;
    let lock = blocker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE block IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    // Until one tip run has hit the 1 s lock timeout, /health must answer 200 throughout.
    let timeouts = "dbsync_check_runs_total{check=\"tip\",outcome=\"timeout\"}";
    eventually(
        Duration::from_secs(30),
        "a tip run that timed out",
        || async {
            let (status, body) = health(&exporter).await;
            assert_eq!(status, 200, "one slow tip run flipped the state: {body}");
            (value(&exporter.metrics().await, timeouts)? >= 1.0).then_some(())
        },
    )
    .await;
    lock.rollback().await.unwrap();
    let body = exporter.metrics().await;
    assert_eq!(must(&body, "dbsync_up"), 0.0, "the failed run is reported");
    assert_eq!(
        must(&body, "dbsync_health_state{state=\"up\"}"),
        1.0,
        "{body}"
    );
    let (status, body) = health(&exporter).await;
    assert_eq!((status, &body["status"]), (200, &"up".into()), "{body}");
    wait_for_value(&exporter, "dbsync_up", 1.0).await;
    exporter.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_that_outlasts_the_grace_is_down_as_check_timeout() {
    let db = Cluster::shared().create_database("long_lock").await;
    let _fixture = chain(&db, SchemaVersion::V13_7, "preview", unix_now() - 5, 3).await;
    let exporter = Exporter::start(slow_tip_settings(&db)).await;
    wait_for_value(&exporter, "dbsync_up", 1.0).await;

    let mut blocker = db.connect().await;
    let lock = blocker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE block IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let body = wait_for_value(
        &exporter,
        "dbsync_health_reason{reason=\"check_timeout\"}",
        1.0,
    )
    .await;
    assert_eq!(must(&body, "dbsync_health_state{state=\"down\"}"), 1.0);
    assert_eq!(
        value(&body, "dbsync_health_reason{reason=\"db_unreachable\"}"),
        None
    );
    let (status, body) = health(&exporter).await;
    assert_eq!(status, 503);
    let detail = body["reasons"][0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("timed out: canceling statement due to lock timeout (tip unread for "),
        "{detail}"
    );
    assert!(detail.ends_with(" s, grace 6 s)"), "{detail}");
    lock.rollback().await.unwrap();
    wait_for_value(&exporter, "dbsync_health_state{state=\"up\"}", 1.0).await;
    exporter.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_may_not_read_the_block_table_is_down_as_db_permission() {
    let db = Cluster::shared().create_database("permission").await;
    let _fixture = chain(&db, SchemaVersion::V13_7, "preview", unix_now() - 5, 3).await;
    // A role of its own, with SELECT granted table by table (the shared reader role holds
    // pg_read_all_data, which no REVOKE can narrow).
    let role = format!("limited_{}", db.name);
    let admin = db.connect().await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{}'; \
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};",
            TestDatabase::READER_PASSWORD
        ))
        .await
        .unwrap();
    let url = db.reader_url().replace("dbsync_reader", &role);
    let mut settings = config(&url);
    settings.health.tip_failure_grace = Duration::from_secs(1);
    let exporter = Exporter::start(settings).await;
    wait_for_value(&exporter, "dbsync_up", 1.0).await;
    admin
        .batch_execute(&format!("REVOKE SELECT ON block FROM {role}"))
        .await
        .unwrap();
    let body = wait_for_value(
        &exporter,
        "dbsync_health_reason{reason=\"db_permission\"}",
        1.0,
    )
    .await;
    assert_eq!(must(&body, "dbsync_health_state{state=\"down\"}"), 1.0);
    let (status, body) = health(&exporter).await;
    assert_eq!(status, 503);
    let detail = body["reasons"][0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("permission denied: permission denied for table block"),
        "{detail}"
    );
    exporter.shutdown().await;
}
