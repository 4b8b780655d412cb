//! The HTTP surface: formats, status codes, methods, JSON bodies, and what a non-db-sync or
//! empty database looks like from the outside.

use std::process::Command;

use dbsync_fixture::{Cluster, SchemaVersion};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;

use crate::common::{
    chain, config, must, unix_now, value, wait_for_at_least, wait_for_value, Exporter,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_formats_and_methods() {
    let db = Cluster::shared().create_database("http").await;
    let _fixture = chain(&db, SchemaVersion::V13_6, "preprod", unix_now() - 30, 3).await;
    let exporter = Exporter::start(config(&db.reader_url())).await;
    wait_for_value(&exporter, "dbsync_up", 1.0).await;
    wait_for_value(&exporter, "dbsync_check_success{check=\"rollback\"}", 1.0).await;
    let client = reqwest::Client::new();

    let classic = client.get(exporter.url("/metrics")).send().await.unwrap();
    assert_eq!(
        classic.headers()[CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = classic.text().await.unwrap();
    assert!(
        body.contains("# TYPE dbsync_rollbacks_total counter")
            || body.contains("# TYPE dbsync_rollbacks counter"),
        "{body}"
    );
    assert!(!body.contains("# EOF"));

    let open = client
        .get(exporter.url("/metrics"))
        .header(
            ACCEPT,
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        open.headers()[CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let body = open.text().await.unwrap();
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("dbsync_rollbacks_total 0"), "{body}");

    let head = client.head(exporter.url("/metrics")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()[CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );

    let post = client.post(exporter.url("/metrics")).send().await.unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        client
            .get(exporter.url("/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(exporter.get("/live").await.status(), StatusCode::OK);
    assert_eq!(exporter.get("/ready").await.status(), StatusCode::OK);
    let index = exporter.get("/").await.text().await.unwrap();
    for link in ["/metrics", "/health", "/tip", "/live", "/ready"] {
        assert!(index.contains(&format!("href=\"{link}\"")), "{index}");
    }

    let health = exporter.get("/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["status"], "up");
    assert_eq!(health["reasons"], serde_json::json!([]));
    assert_eq!(health["tip"]["block_no"], 1002);

    let tip: serde_json::Value = exporter.get("/tip").await.json().await.unwrap();
    assert_eq!(tip["network"], "preprod");
    assert_eq!(tip["block_no"], 1002);
    assert_eq!(tip["hash"].as_str().unwrap().len(), 64);
    let age = tip["age_seconds"].as_f64().unwrap();
    assert!((30.0..40.0).contains(&age), "{tip}");
    assert!(tip["time"].as_str().unwrap().ends_with('Z'));
    exporter.shutdown().await;
}

/// A stale tip: /health 503 with the reason, metrics still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_tip_is_unhealthy() {
    let db = Cluster::shared().create_database("stale").await;
    let _fixture = chain(&db, SchemaVersion::V13_7, "preview", unix_now() - 900, 3).await;
    let exporter = Exporter::start(config(&db.reader_url())).await;
    let body = wait_for_value(&exporter, "dbsync_up", 1.0).await;
    assert_eq!(must(&body, "dbsync_health_state{state=\"down\"}"), 1.0);
    assert_eq!(
        must(&body, "dbsync_health_reason{reason=\"tip_stale\"}"),
        1.0
    );
    let health = exporter.get("/health").await;
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["status"], "down");
    assert_eq!(health["reasons"][0]["reason"], "tip_stale");
    assert!(
        health["reasons"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("max 600 s"),
        "{health}"
    );
    exporter.shutdown().await;
}

/// A database that is not db-sync: a status, not a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_not_dbsync_is_a_status() {
    let db = Cluster::shared().create_database("not_dbsync").await;
    db.connect()
        .await
        .batch_execute("CREATE TABLE customers (id int)")
        .await
        .unwrap();
    let exporter = Exporter::start(config(&db.reader_url())).await;
    let body = wait_for_at_least(
        &exporter,
        "dbsync_check_runs_total{check=\"tip\",outcome=\"error\"}",
        1.0,
    )
    .await;
    assert_eq!(must(&body, "dbsync_up"), 0.0);
    assert_eq!(
        must(&body, "dbsync_health_reason{reason=\"not_dbsync\"}"),
        1.0
    );
    assert_eq!(value(&body, "dbsync_block_height"), None);
    assert_eq!(
        exporter.get("/ready").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        exporter.get("/tip").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let health = exporter.get("/health").await;
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["reasons"][0]["reason"], "not_dbsync");
    assert_eq!(
        health["reasons"][0]["detail"],
        "not a db-sync database: no schema_version table"
    );
    exporter.shutdown().await;
}

/// db-sync just started: schema and genesis row, no real block yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_only_the_genesis_row_has_no_tip() {
    let db = Cluster::shared().create_database("genesis_only").await;
    let mut fixture = dbsync_fixture::Fixture::create(
        &db,
        SchemaVersion::V13_6,
        dbsync_fixture::IndexSet::InitialSync,
        "mainnet",
        1_506_203_091,
    )
    .await;
    fixture.genesis_block(1_506_203_091).await;
    let exporter = Exporter::start(config(&db.reader_url())).await;
    let body = wait_for_at_least(
        &exporter,
        "dbsync_check_runs_total{check=\"tip\",outcome=\"error\"}",
        1.0,
    )
    .await;
    assert_eq!(must(&body, "dbsync_up"), 0.0);
    assert_eq!(must(&body, "dbsync_health_reason{reason=\"no_tip\"}"), 1.0);
    exporter.shutdown().await;
}

/// `promtool check metrics` on a real scrape (classic text format, what promtool reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_a_real_scrape() {
    let db = Cluster::shared().create_database("promtool").await;
    let fixture = chain(&db, SchemaVersion::V13_6, "mainnet", unix_now() - 30, 3).await;
    fixture.epoch_sync_time(510, 321, "following").await;
    let exporter = Exporter::start(config(&db.reader_url())).await;
    wait_for_value(&exporter, "dbsync_check_success{check=\"info\"}", 1.0).await;
    let body = wait_for_value(&exporter, "dbsync_check_success{check=\"rollback\"}", 1.0).await;
    let promtool = promtool();
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}\non:\n{body}"
    );
    exporter.shutdown().await;
}

/// promtool from Debian's `prometheus` package (scripts/test installs it when missing).
pub fn promtool() -> String {
    for candidate in ["/usr/bin/promtool", "/usr/local/bin/promtool"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("promtool not found: install Debian's prometheus package (./scripts/test does)");
}
