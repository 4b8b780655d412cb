//! Helpers shared by the integration test binaries (`tests/it`, `tests/stack`): start the
//! exporter on a free port, scrape it, read values, wait, build a fixture chain.
//!
//! Each binary includes this file with `#[path]`; not every binary uses every helper.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use dbsync_exporter::chain::NetworkParams;
use dbsync_exporter::Config;
use dbsync_fixture::{Fixture, IndexSet, NewBlock, SchemaVersion, TestDatabase};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running exporter; stopped on drop.
pub struct Exporter {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), dbsync_exporter::RunError>>>,
}

impl Exporter {
    pub async fn start(config: Config) -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Exporter::start_on(listener, None, config).await
    }

    /// Starts on listeners the test bound itself (to know the addresses in advance).
    pub async fn start_on(
        listener: TcpListener,
        agent: Option<TcpListener>,
        config: Config,
    ) -> Exporter {
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(dbsync_exporter::serve(
            config,
            listener,
            agent,
            async move {
                let _ = stopped.await;
            },
        ));
        Exporter {
            addr,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(self.url(path)).await.unwrap()
    }

    pub async fn metrics(&self) -> String {
        let response = self.get("/metrics").await;
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// Stops the exporter and waits for a clean exit.
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let result = tokio::time::timeout(Duration::from_secs(15), self.handle.take().unwrap())
            .await
            .expect("exporter did not stop within 15 s");
        result.unwrap().unwrap();
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A config for `url` with fast checks.
pub fn config(url: &str) -> Config {
    let mut config = Config::with_database(url.parse().unwrap());
    config.checks.tip_interval = Duration::from_millis(200);
    config.checks.info_interval = Duration::from_millis(500);
    config.checks.check_timeout = Duration::from_secs(5);
    config.db.connect_timeout = Duration::from_secs(2);
    config
}

/// The value of the series `series` (name plus exact label text, e.g. `x{a="b"}`).
pub fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
}

/// Finished runs of `check` in a scrape, whatever their outcome.
pub fn finished_runs(body: &str, check: &str) -> f64 {
    ["success", "error", "timeout"]
        .iter()
        .filter_map(|outcome| {
            value(
                body,
                &format!("dbsync_check_runs_total{{check=\"{check}\",outcome=\"{outcome}\"}}"),
            )
        })
        .sum()
}

/// Like [`value`], panicking with the body when the series is missing.
pub fn must(body: &str, series: &str) -> f64 {
    value(body, series).unwrap_or_else(|| panic!("series {series} missing from:\n{body}"))
}

/// Polls `probe` every 100 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until a scrape shows `series` with `expected`, and returns that scrape.
pub async fn wait_for_value(exporter: &Exporter, series: &str, expected: f64) -> String {
    eventually(
        Duration::from_secs(30),
        &format!("{series} == {expected}"),
        || async {
            let body = exporter.metrics().await;
            (value(&body, series) == Some(expected)).then_some(body)
        },
    )
    .await
}

/// Waits until a scrape shows `series` at `minimum` or more (e.g. a run counter), and
/// returns that scrape.
pub async fn wait_for_at_least(exporter: &Exporter, series: &str, minimum: f64) -> String {
    eventually(
        Duration::from_secs(30),
        &format!("{series} >= {minimum}"),
        || async {
            let body = exporter.metrics().await;
            (value(&body, series)? >= minimum).then_some(body)
        },
    )
    .await
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A network of `epoch_slots`-slot epochs (1 s slots from slot 0) whose wall-clock slot
/// at `now_unix` lies `position` (0–1) into epoch 10: tests that depend on where now falls in
/// an epoch pin it with this instead of depending on the day they run.
pub fn pinned_network(now_unix: i64, epoch_slots: i64, position: f64) -> NetworkParams {
    let into = (epoch_slots as f64 * position) as i64;
    NetworkParams {
        name: "pinned".into(),
        byron_start_unix: now_unix - (10 * epoch_slots + into),
        byron_epoch_slots: epoch_slots,
        shelley_start_epoch: 0,
        epoch_slots,
    }
}

/// A db-sync fixture for `network` whose tip (block 1000 + n - 1) is at `tip_unix`,
/// built from `n` Shelley-era blocks 20 slots apart.
pub async fn chain(
    db: &TestDatabase,
    version: SchemaVersion,
    network: &str,
    tip_unix: i64,
    n: u32,
) -> Fixture {
    chain_on(
        db,
        version,
        &NetworkParams::known(network).unwrap(),
        tip_unix,
        n,
    )
    .await
}

/// Like [`chain`], on a network of the test's own making (`params.name` goes into `meta`);
/// the exporter needs the same `params` as its `chain_override`.
pub async fn chain_on(
    db: &TestDatabase,
    version: SchemaVersion,
    params: &NetworkParams,
    tip_unix: i64,
    n: u32,
) -> Fixture {
    let mut fixture = Fixture::create(
        db,
        version,
        IndexSet::NearTip,
        &params.name,
        params.byron_start_unix,
    )
    .await;
    fixture.genesis_block(params.byron_start_unix).await;
    // Each block gets the epoch of its own slot, so a chain that happens to straddle an
    // epoch boundary (the first minutes of every epoch) is still a true one.
    let first_slot = params.slot_at(tip_unix) - 20 * i64::from(n - 1);
    for index in 0..i64::from(n) {
        let slot = first_slot + 20 * index;
        let epoch = params.epoch_of_slot(slot);
        let hash = fixture.next_hash(1000 + index);
        fixture
            .insert_block(NewBlock {
                block_no: Some(1000 + index),
                slot_no: Some(slot),
                epoch_no: Some(epoch),
                epoch_slot_no: Some(params.slot_in_epoch(slot)),
                time_unix: params.slot_time(slot),
                hash,
                proto_major: 10,
                proto_minor: 0,
                tx_count: 0,
            })
            .await;
    }
    fixture
}

/// Runs `openssl` in `dir` (Debian's package; `./scripts/test` installs it).
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (Debian package openssl)");
    assert!(status.success(), "openssl {args:?}");
}

/// Test certificates in `dir`: a CA per name in `cas` (`<name>.crt`, `<name>.key`) and
/// `server.crt`/`server.key` for `/CN=localhost`, signed by the first CA, with `san` (e.g.
/// `DNS:localhost,IP:127.0.0.1`).
pub fn test_certificates(dir: &std::path::Path, cas: &[&str], san: &str) {
    for ca in cas {
        let (subject, key, cert) = (
            format!("/CN=dbsync-exporter test {ca}"),
            format!("{ca}.key"),
            format!("{ca}.crt"),
        );
        openssl(
            dir,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj",
                &subject, "-keyout", &key, "-out", &cert,
            ],
        );
    }
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("san.ext"), format!("subjectAltName={san}\n")).unwrap();
    let (ca_cert, ca_key) = (format!("{}.crt", cas[0]), format!("{}.key", cas[0]));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
}
