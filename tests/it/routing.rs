//! Routing surfaces: the Koios cache check, the HAProxy agent line over TCP, and peers.

use std::time::Duration;

use dbsync_exporter::config::parse_peer_url;
use dbsync_fixture::{grest_ddl, Cluster, SchemaVersion};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::common::{chain, config, eventually, must, unix_now, value, wait_for_value, Exporter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn koios_caches_are_exported_and_drain_when_late() {
    let db = Cluster::shared().create_database("grest").await;
    let fixture = chain(&db, SchemaVersion::V13_6, "mainnet", unix_now() - 10, 5).await;
    fixture.execute(grest_ddl()).await;
    let now = unix_now();
    fixture
        .execute(&format!(
            "INSERT INTO grest.control_table (key, last_value, artifacts) VALUES \
             ('version', 'v1.3.2', '[abc]'), \
             ('stake_distribution_lbh', '700', NULL), \
             ('pool_info_cache_last_block_height', '1000', NULL), \
             ('pool_history_cache_last_updated', to_char(to_timestamp({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), NULL), \
             ('epoch_info_cache_last_updated', to_char(to_timestamp({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'), NULL), \
             ('pool_groups_check', '2026-11-26_01:02:03', NULL), \
             ('last_active_stake_validated_epoch', 'not-a-number', NULL)",
            now - 100,
            now - 2000
        ))
        .await;
    let mut settings = config(&db.reader_url());
    settings.checks.grest_interval = Duration::from_millis(300);
    let exporter = Exporter::start(settings).await;
    // The health reasons below need the tip check's result as well as the grest check's.
    wait_for_value(&exporter, "dbsync_up", 1.0).await;
    let body = wait_for_value(&exporter, "dbsync_check_success{check=\"grest\"}", 1.0).await;
    assert_eq!(must(&body, "dbsync_check_applicable{check=\"grest\"}"), 1.0);
    assert_eq!(must(&body, "dbsync_grest_info{version=\"v1.3.2\"}"), 1.0);
    assert_eq!(
        must(
            &body,
            "dbsync_grest_cache_lag_blocks{cache=\"stake_distribution_lbh\"}"
        ),
        304.0
    );
    assert_eq!(
        must(
            &body,
            "dbsync_grest_cache_lag_blocks{cache=\"pool_info_cache_last_block_height\"}"
        ),
        4.0
    );
    assert_eq!(
        must(&body, "dbsync_grest_cache_last_update_timestamp_seconds{cache=\"pool_history_cache_last_updated\"}"),
        (now - 100) as f64
    );
    assert_eq!(
        must(&body, "dbsync_grest_cache_last_update_timestamp_seconds{cache=\"epoch_info_cache_last_updated\"}"),
        (now - 2000) as f64
    );
    assert!(
        !body.contains("pool_groups_check"),
        "odd values are skipped:\n{body}"
    );
    // Fresh enough by grest-poll's thresholds, except the active stake cache (garbage value),
    // which only matters after a sixth of the epoch.
    // This test runs on the real clock (the pinned-position tests are in tests/it/koios.rs).
    let params = dbsync_exporter::chain::NetworkParams::known("mainnet").unwrap();
    let slot = must(&body, "dbsync_slot_number") as i64;
    let late_in_epoch = params.slot_in_epoch(slot) * 6 >= params.epoch_slots;
    assert_eq!(
        value(
            &body,
            "dbsync_health_reason{reason=\"grest_active_stake_cache\"}"
        )
        .is_some(),
        late_in_epoch
    );
    assert_eq!(
        value(
            &body,
            "dbsync_health_reason{reason=\"grest_pool_history_cache\"}"
        ),
        None
    );

    fixture
        .execute(&format!(
            "UPDATE grest.control_table SET last_value = CASE key \
               WHEN 'stake_distribution_lbh' THEN '10' \
               WHEN 'pool_history_cache_last_updated' THEN to_char(to_timestamp({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') \
               WHEN 'last_active_stake_validated_epoch' THEN '{}' ELSE last_value END",
            now - 1500,
            params.epoch_of_slot(slot)
        ))
        .await;
    let body = wait_for_value(
        &exporter,
        "dbsync_grest_cache_lag_blocks{cache=\"stake_distribution_lbh\"}",
        994.0,
    )
    .await;
    let body = if value(
        &body,
        "dbsync_health_reason{reason=\"grest_pool_history_cache\"}",
    ) == Some(1.0)
    {
        body
    } else {
        wait_for_value(
            &exporter,
            "dbsync_health_reason{reason=\"grest_pool_history_cache\"}",
            1.0,
        )
        .await
    };
    assert_eq!(must(&body, "dbsync_health_state{state=\"drain\"}"), 1.0);
    assert_eq!(
        value(
            &body,
            "dbsync_health_reason{reason=\"grest_active_stake_cache\"}"
        ),
        None
    );
    assert_eq!(
        value(
            &body,
            "dbsync_health_reason{reason=\"grest_stake_distribution_cache\"}"
        ),
        None
    );
    let health = exporter.get("/health").await;
    assert_eq!(health.status(), 503, "drain is not 200");
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["status"], "drain");
    assert_eq!(health["reasons"][0]["reason"], "grest_pool_history_cache");
    exporter.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_grest_the_check_does_not_apply() {
    let db = Cluster::shared().create_database("no_grest").await;
    let _fixture = chain(&db, SchemaVersion::V13_7, "preview", unix_now() - 10, 2).await;
    let mut settings = config(&db.reader_url());
    settings.checks.grest_interval = Duration::from_millis(300);
    let exporter = Exporter::start(settings).await;
    let body = wait_for_value(&exporter, "dbsync_check_applicable{check=\"grest\"}", 0.0).await;
    assert_eq!(must(&body, "dbsync_check_success{check=\"grest\"}"), 1.0);
    assert!(!body.contains("dbsync_grest_cache"), "{body}");
    exporter.shutdown().await;
}

async fn agent_line(addr: std::net::SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut line))
        .await
        .expect("the agent closes after one line")
        .unwrap();
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_answers_one_line_per_connection() {
    let db = Cluster::shared().create_database("agent").await;
    let mut fixture = chain(&db, SchemaVersion::V13_6, "mainnet", unix_now() - 5, 3).await;
    let agent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_addr = agent.local_addr().unwrap();
    let mut settings = config(&db.reader_url());
    settings.health.drain_tip_age = Duration::from_secs(60);
    settings.health.max_tip_age = Duration::from_secs(120);
    let exporter = Exporter::start_on(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        Some(agent),
        settings,
    )
    .await;
    wait_for_value(&exporter, "dbsync_up", 1.0).await;
    assert_eq!(agent_line(agent_addr).await, "up ready 100%\n");

    // A tip 90 s old is in the drain band, one 200 s old is down.
    let params = dbsync_exporter::chain::NetworkParams::known("mainnet").unwrap();
    let old = |age: i64| {
        let slot = params.slot_at(unix_now() - age);
        format!("UPDATE block SET slot_no = {slot}, time = to_timestamp({}) AT TIME ZONE 'UTC' WHERE id = (SELECT max(id) FROM block)", params.slot_time(slot))
    };
    fixture.execute(&old(90)).await;
    eventually(Duration::from_secs(30), "drain", || async {
        (agent_line(agent_addr).await == "up drain\n").then_some(())
    })
    .await;
    fixture.execute(&old(200)).await;
    let line = eventually(Duration::from_secs(30), "down", || async {
        let line = agent_line(agent_addr).await;
        line.starts_with("down ").then_some(line)
    })
    .await;
    assert!(line.starts_with("down #tip is 2"), "{line}");
    assert!(line.ends_with(" s old (max 120 s)\n"), "{line}");
    fixture.extend(1, 200).await;
    fixture.execute(&old(1)).await;
    eventually(Duration::from_secs(30), "back up", || async {
        (agent_line(agent_addr).await == "up ready 100%\n").then_some(())
    })
    .await;
    exporter.shutdown().await;
}

/// Three exporters on loopback comparing tips; one is 15 blocks behind, a fourth peer runs
/// another network and a fifth is dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_tell_an_instance_it_is_behind_the_fleet() {
    // (name, network, blocks, tip age): a peer's tip can only be n blocks ahead if it is at
    // least n slots ahead (peers that claim more are ignored), so the ages keep them honest.
    let heights = [
        ("a", "mainnet", 20, 10),
        ("b", "mainnet", 18, 12),
        ("c", "mainnet", 5, 26),
        ("d", "preview", 40, 10),
    ];
    let mut listeners = Vec::new();
    let mut urls = Vec::new();
    for _ in heights {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(format!("http://{}", listener.local_addr().unwrap()));
        listeners.push(listener);
    }
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/", dead.local_addr().unwrap());
    drop(dead);
    let mut exporters = Vec::new();
    let mut fixtures = Vec::new();
    // One "now" for every chain: read per chain, the slot gaps between the tips shrank by
    // however long building the chains before took, and on a loaded machine a peer then
    // claimed more blocks than slots ahead and was rightly ignored (the test flaked).
    let now = unix_now();
    for ((name, network, blocks, age), listener) in heights.into_iter().zip(listeners) {
        let db = Cluster::shared()
            .create_database(&format!("peer_{name}"))
            .await;
        fixtures.push(chain(&db, SchemaVersion::V13_6, network, now - age, blocks).await);
        let mut settings = config(&db.reader_url());
        settings.peers.interval = Duration::from_millis(200);
        settings.peers.timeout = Duration::from_secs(2);
        settings.peers.urls = urls
            .iter()
            .filter(|url| !url.ends_with(&listener.local_addr().unwrap().to_string()))
            .chain([&dead_url])
            .map(|url| parse_peer_url(url).unwrap())
            .collect();
        exporters.push(Exporter::start_on(listener, None, settings).await);
    }
    let (a, c, d) = (&exporters[0], &exporters[2], &exporters[3]);
    let body = wait_for_value(c, "dbsync_fleet_lag_blocks", 15.0).await;
    assert_eq!(
        must(
            &body,
            &format!("dbsync_peer_block_height{{peer=\"{}\"}}", urls[0])
        ),
        1019.0
    );
    assert_eq!(
        must(
            &body,
            &format!("dbsync_peer_block_height{{peer=\"{}\"}}", urls[1])
        ),
        1017.0
    );
    // Every exporter may not have read its own tip when first asked: polls retry.
    let body = wait_for_value(c, &format!("dbsync_peer_up{{peer=\"{}\"}}", urls[3]), 1.0).await;
    assert_eq!(must(&body, "dbsync_fleet_lag_blocks"), 15.0);
    assert_eq!(
        must(
            &body,
            &format!(
                "dbsync_peer_up{{peer=\"{}\"}}",
                dead_url.trim_end_matches('/')
            )
        ),
        0.0
    );
    assert_eq!(must(&body, "dbsync_health_state{state=\"drain\"}"), 1.0);
    assert_eq!(
        must(&body, "dbsync_health_reason{reason=\"behind_fleet\"}"),
        1.0
    );
    let health: serde_json::Value = c.get("/health").await.json().await.unwrap();
    assert_eq!(
        health["reasons"][0]["detail"],
        "15 blocks behind the best peer (drain above 10, down above 30)"
    );

    let body = wait_for_value(a, "dbsync_fleet_lag_blocks", 0.0).await;
    assert_eq!(must(&body, "dbsync_health_state{state=\"up\"}"), 1.0);
    // The preview instance has no same-network peer: no fleet lag at all.
    let body = eventually(Duration::from_secs(30), "preview peers polled", || async {
        let body = d.metrics().await;
        value(&body, &format!("dbsync_peer_up{{peer=\"{}\"}}", urls[0])).map(|_| body)
    })
    .await;
    assert_eq!(value(&body, "dbsync_fleet_lag_blocks"), None, "{body}");
    assert_eq!(must(&body, "dbsync_health_state{state=\"up\"}"), 1.0);

    // c catches up: back to up.
    fixtures[2].extend(15, 1).await;
    let body = wait_for_value(c, "dbsync_fleet_lag_blocks", 0.0).await;
    assert_eq!(must(&body, "dbsync_health_state{state=\"up\"}"), 1.0);
    for exporter in exporters {
        exporter.shutdown().await;
    }
}
