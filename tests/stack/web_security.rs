//! `/metrics` over TLS with basic auth, as an operator sets it up for node_exporter: a test CA
//! and server certificate made with `openssl`, a bcrypt hash made with `htpasswd -nBC 10`,
//! and a real Prometheus scraping with `scheme: https`, `tls_config.ca_file` and
//! `basic_auth` — once with the right password (target up) and once with a wrong one (down).
//! A changed web config on disk takes effect without a restart.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use dbsync_fixture::{Cluster, Fixture, IndexSet, NewBlock, SchemaVersion};
use tokio::net::TcpListener;

use crate::common::{config, eventually, require_tool, test_certificates, TempDir};
use crate::prometheus::Prometheus;

fn run(tool: &str, dir: &Path, args: &[&str]) -> String {
    let output = Command::new(require_tool(tool))
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{tool} {args:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// `user:hash` as `htpasswd -nbBC 10` prints it; the hash part.
fn bcrypt_hash(dir: &Path, user: &str, password: &str) -> String {
    let line = run("htpasswd", dir, &["-nbBC", "10", user, password]);
    line.trim().split_once(':').unwrap().1.to_owned()
}

fn web_config(hash: &str) -> String {
    format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS12\n\
         http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n\
         basic_auth_users:\n  prometheus: '{hash}'\n"
    )
}

/// A client that trusts the test CA.
fn client(dir: &Path) -> reqwest::Client {
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_over_tls_with_basic_auth_and_a_wrong_password_is_refused() {
    let dir = TempDir::new("websec");
    test_certificates(&dir.path, &["ca"], "DNS:localhost,IP:127.0.0.1");
    std::fs::write(
        dir.join("web.yml"),
        web_config(&bcrypt_hash(&dir.path, "prometheus", "s3cret")),
    )
    .unwrap();
    std::fs::write(dir.join("password"), "s3cret").unwrap();
    std::fs::write(dir.join("wrong"), "guess").unwrap();

    let db = Cluster::shared().create_database("websec").await;
    let start = dbsync_exporter::chain::NetworkParams::known("preview").unwrap();
    let mut fixture = Fixture::create(
        &db,
        SchemaVersion::V13_7,
        IndexSet::NearTip,
        "preview",
        start.byron_start_unix,
    )
    .await;
    fixture.genesis_block(start.byron_start_unix).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let slot = start.slot_at(now - 5);
    let hash = fixture.next_hash(1);
    fixture
        .insert_block(NewBlock {
            block_no: Some(1),
            slot_no: Some(slot),
            epoch_no: Some(start.epoch_of_slot(slot)),
            epoch_slot_no: Some(start.slot_in_epoch(slot)),
            time_unix: start.slot_time(slot),
            hash,
            proto_major: 10,
            proto_minor: 0,
            tx_count: 0,
        })
        .await;
    let mut settings = config(&db.reader_url(), &[]);
    settings.web.config_file = Some(dir.join("web.yml"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let exporter = crate::common::Exporter::start_on(listener, None, settings).await;
    let base = format!("https://localhost:{port}");
    let https = client(&dir.path);

    // Direct: credentials required everywhere but /live; the configured header is sent.
    let live = https.get(format!("{base}/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["x-content-type-options"], "nosniff");
    let anonymous = https.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Basic realm=\"dbsync-exporter\""
    );
    let wrong = https
        .get(format!("{base}/health"))
        .basic_auth("prometheus", Some("guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let metrics = https
        .get(format!("{base}/metrics"))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().contains("dbsync_up"));
    // Plain HTTP on the TLS port gets nothing.
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/live"))
        .await
        .is_err());

    // A real Prometheus, the way docker/STACK.md tells operators to configure it.
    let ca_file = dir.join("ca.crt").display().to_string();
    let password_file = dir.join("password").display().to_string();
    let wrong_file = dir.join("wrong").display().to_string();
    let prometheus = Prometheus::start(&[], |_, _| {
        format!(
            "global:\n  scrape_interval: 1s\n\
             scrape_configs:\n\
             - job_name: good\n  scheme: https\n  tls_config:\n    ca_file: {ca_file}\n\
             \x20 basic_auth:\n    username: prometheus\n    password_file: {password_file}\n\
             \x20 static_configs: [{{targets: ['localhost:{port}']}}]\n\
             - job_name: bad\n  scheme: https\n  tls_config:\n    ca_file: {ca_file}\n\
             \x20 basic_auth:\n    username: prometheus\n    password_file: {wrong_file}\n\
             \x20 static_configs: [{{targets: ['localhost:{port}']}}]\n"
        )
    })
    .await;
    let up = |job: &'static str| {
        let prometheus = &prometheus;
        async move {
            let result = prometheus
                .query(&format!("up{{job=\"{job}\"}}"))
                .await
                .ok()?;
            result.first()?["value"][1].as_str().map(str::to_owned)
        }
    };
    eventually(Duration::from_secs(60), "both targets scraped", || async {
        let (good, bad) = (up("good").await, up("bad").await);
        if good.as_deref() == Some("1") && bad.as_deref() == Some("0") {
            Ok(())
        } else {
            Err(format!("good {good:?}, bad {bad:?}"))
        }
    })
    .await;
    let dbsync_up = prometheus.query("dbsync_up{job=\"good\"}").await.unwrap();
    assert_eq!(dbsync_up.len(), 1, "{dbsync_up:?}");

    // A new password on disk takes effect for the next connection, without a restart.
    std::fs::write(
        dir.join("web.yml"),
        web_config(&bcrypt_hash(&dir.path, "prometheus", "rotated")),
    )
    .unwrap();
    let fresh = |password: &'static str| {
        let ca = dir.join("ca.crt");
        let base = base.clone();
        async move {
            let ca = std::fs::read(ca).unwrap();
            let client = reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            client
                .get(format!("{base}/metrics"))
                .basic_auth("prometheus", Some(password))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    eventually(Duration::from_secs(10), "the rotated password", || async {
        let status = fresh("rotated").await;
        if status == 200 {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    })
    .await;
    assert_eq!(fresh("s3cret").await, 401);
    eventually(
        Duration::from_secs(60),
        "the good job down with the old password",
        || async {
            let good = up("good").await;
            if good.as_deref() == Some("0") {
                Ok(())
            } else {
                Err(format!("good {good:?}"))
            }
        },
    )
    .await;
    exporter.shutdown().await;
}
