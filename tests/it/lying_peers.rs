//! Peers that cannot be telling the truth are ignored, and going down on the fleet's word
//! takes a quorum. The peers are fake sidecars (someone else's servers) serving a `/tip`
//! the test sets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbsync_exporter::chain::NetworkParams;
use dbsync_exporter::config::parse_peer_url;
use dbsync_fixture::{Cluster, SchemaVersion};
use tokio::net::TcpListener;

use crate::common::{chain, config, eventually, must, unix_now, value, wait_for_value, Exporter};

/// A fake peer whose `/tip` body can be changed.
struct FakePeer {
    url: String,
    tip: Arc<Mutex<String>>,
}

impl FakePeer {
    async fn start() -> FakePeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let tip = Arc::new(Mutex::new(String::from("{}")));
        let served = tip.clone();
        let app = axum::Router::new().route(
            "/tip",
            axum::routing::get(move || {
                let body = served.lock().unwrap().clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakePeer { url, tip }
    }

    fn claim(&self, block_no: i64, slot_no: i64) {
        *self.tip.lock().unwrap() = format!(
            r#"{{"network":"mainnet","block_no":{block_no},"slot_no":{slot_no},"epoch_no":1,"hash":"00"}}"#
        );
    }

    fn up_series(&self) -> String {
        format!("dbsync_peer_up{{peer=\"{}\"}}", self.url)
    }
}

/// Waits until every peer has been polled at least once since now, returns that scrape.
async fn after_polls(exporter: &Exporter, peers: &[&FakePeer]) -> String {
    // Two poll rounds at 200 ms; then every peer's state reflects its current claim.
    tokio::time::sleep(Duration::from_millis(600)).await;
    eventually(Duration::from_secs(30), "every peer polled", || async {
        let body = exporter.metrics().await;
        peers
            .iter()
            .all(|peer| value(&body, &peer.up_series()).is_some())
            .then_some(body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_peer_cannot_move_the_health_and_down_needs_a_quorum() {
    let db = Cluster::shared().create_database("lying_peers").await;
    // Our tip: block 1002, 60 s old (fresh enough: drain starts at 180 s).
    let _fixture = chain(&db, SchemaVersion::V13_7, "mainnet", unix_now() - 60, 3).await;
    let (liar, future, honest) = (
        FakePeer::start().await,
        FakePeer::start().await,
        FakePeer::start().await,
    );
    let mut settings = config(&db.reader_url());
    settings.peers.interval = Duration::from_millis(200);
    settings.peers.timeout = Duration::from_secs(2);
    settings.peers.urls = [&liar, &future, &honest]
        .iter()
        .map(|peer| parse_peer_url(&peer.url).unwrap())
        .collect();
    let mainnet = NetworkParams::known("mainnet").unwrap();
    let now_slot = || mainnet.slot_at(unix_now());
    // Block 999999999 at the current slot; a slot an hour ahead; and an honest peer level
    // with us.
    liar.claim(999_999_999, now_slot());
    future.claim(1010, now_slot() + 3600);
    honest.claim(1002, now_slot() - 60);
    let exporter = Exporter::start(settings).await;
    wait_for_value(&exporter, "dbsync_up", 1.0).await;
    let body = after_polls(&exporter, &[&liar, &future, &honest]).await;
    assert_eq!(must(&body, &honest.up_series()), 1.0, "{body}");
    assert_eq!(must(&body, &liar.up_series()), 0.0);
    assert_eq!(must(&body, &future.up_series()), 0.0);
    assert_eq!(must(&body, "dbsync_fleet_lag_blocks"), 0.0);
    assert_eq!(
        must(&body, "dbsync_health_state{state=\"up\"}"),
        1.0,
        "{body}"
    );
    let health = exporter.get("/health").await;
    assert_eq!(health.status(), 200);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["reasons"], serde_json::json!([]));

    // One honest peer far ahead (plausibly: 40 blocks in 55 slots) drains, never downs.
    honest.claim(1042, now_slot() - 5);
    let body = eventually(Duration::from_secs(30), "the honest peer ahead", || async {
        let body = exporter.metrics().await;
        (value(&body, "dbsync_fleet_lag_blocks") == Some(40.0)).then_some(body)
    })
    .await;
    assert_eq!(
        must(&body, "dbsync_health_state{state=\"drain\"}"),
        1.0,
        "{body}"
    );
    let health: serde_json::Value = exporter.get("/health").await.json().await.unwrap();
    assert_eq!(
        health["reasons"][0]["detail"],
        "40 blocks behind the best peer (drain above 10, down above 30); \
         down needs 2 peer(s) that far ahead, 1 are"
    );

    // A second peer that agrees (and now tells the truth) makes the quorum: down.
    future.claim(1041, now_slot() - 6);
    let body = eventually(
        Duration::from_secs(30),
        "a quorum of peers ahead",
        || async {
            let body = exporter.metrics().await;
            (value(&body, &future.up_series()) == Some(1.0)).then_some(body)
        },
    )
    .await;
    assert_eq!(
        must(&body, "dbsync_health_state{state=\"down\"}"),
        1.0,
        "{body}"
    );
    assert_eq!(
        must(&body, "dbsync_health_reason{reason=\"behind_fleet\"}"),
        1.0
    );
    assert_eq!(
        must(&body, &liar.up_series()),
        0.0,
        "the liar still does not count"
    );
    exporter.shutdown().await;
}
