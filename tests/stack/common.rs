//! Shared helpers: the exporter on a free port, fixtures with a fresh or an old tip, a chain
//! follower, polling, temp dirs, and reading a scrape.
//!
//! `Exporter`, `config`, `chain`, `eventually` and `unix_now` are copies of the helpers in
//! `tests/it/common.rs` (owned by the core integration tests, which this binary must not
//! edit); move both copies into a shared `tests/support/` module when that file is free.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Starts on a listener the caller bound (to know the address in advance, e.g. to make
    /// two exporters each other's peers).
    pub async fn start_on(listener: TcpListener, config: Config) -> Exporter {
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(dbsync_exporter::run(config, listener, async move {
            let _ = stopped.await;
        }));
        Exporter {
            addr,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// One scrape in the classic text format (what `promtool check metrics` reads).
    pub async fn metrics(&self) -> String {
        let response = reqwest::get(self.url("/metrics"))
            .await
            .unwrap_or_else(|e| panic!("scraping {}: {e}", self.addr));
        assert_eq!(response.status(), 200, "GET /metrics on {}", self.addr);
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

/// A config for `url`, comparing its tip with the exporters at `peers`, with checks fast
/// enough for a 1 s scrape, yet slow enough that three intervals (the `DbSyncCheckStale`
/// threshold) comfortably exceed scrape plus evaluation delay on a loaded CI machine.
pub fn config(url: &str, peers: &[SocketAddr]) -> Config {
    let mut config = Config::with_database(url.parse().unwrap());
    config.tip_interval = Duration::from_secs(2);
    config.info_interval = Duration::from_secs(3);
    config.grest_interval = Duration::from_secs(3);
    config.integrity_interval = Duration::from_secs(10);
    config.integrity_timeout = Duration::from_secs(30);
    config.check_timeout = Duration::from_secs(10);
    config.connect_timeout = Duration::from_secs(5);
    config.peers.urls = peers
        .iter()
        .map(|peer| format!("http://{peer}/").parse().unwrap())
        .collect();
    config.peers.interval = Duration::from_secs(1);
    config.peers.timeout = Duration::from_secs(2);
    config
}

/// Polls `probe` every 250 ms until it returns `Some`, for at most `limit`; on timeout panics
/// with `what` and the last diagnosis `describe` gives.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) => assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}; last state:\n{last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
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
    let params = NetworkParams::known(network).unwrap();
    let mut fixture = Fixture::create(
        db,
        version,
        IndexSet::NearTip,
        network,
        params.byron_start_unix,
    )
    .await;
    fixture.genesis_block(params.byron_start_unix).await;
    let first_slot = params.slot_at(tip_unix) - 20 * i64::from(n - 1);
    let epoch = params.epoch_of_slot(first_slot);
    let hash = fixture.next_hash(1000);
    fixture
        .insert_block(NewBlock {
            block_no: Some(1000),
            slot_no: Some(first_slot),
            epoch_no: Some(epoch),
            epoch_slot_no: Some(first_slot - params.epoch_first_slot(epoch)),
            time_unix: params.slot_time(first_slot),
            hash,
            proto_major: 10,
            proto_minor: 0,
            tx_count: 0,
        })
        .await;
    if n > 1 {
        fixture.extend(n - 1, 20).await;
    }
    fixture
}

/// Keeps a fixture's tip at the wall clock, like db-sync following the chain: a block for the
/// current slot every `every`. Stops (and gives the fixture back) on [`Follower::stop`];
/// aborted on drop.
pub struct Follower {
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Fixture>>,
}

impl Follower {
    /// `tip_block_no` and `tip_slot` describe the fixture's current tip.
    pub fn start(
        mut fixture: Fixture,
        network: &str,
        tip_block_no: i64,
        tip_slot: i64,
        every: Duration,
    ) -> Follower {
        let params = NetworkParams::known(network).unwrap();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let (mut block_no, mut last_slot) = (tip_block_no, tip_slot);
            loop {
                let slot = params.slot_at(unix_now());
                if slot > last_slot {
                    block_no += 1;
                    let epoch = params.epoch_of_slot(slot);
                    let hash = fixture.next_hash(block_no);
                    fixture
                        .insert_block(NewBlock {
                            block_no: Some(block_no),
                            slot_no: Some(slot),
                            epoch_no: Some(epoch),
                            epoch_slot_no: Some(slot - params.epoch_first_slot(epoch)),
                            time_unix: params.slot_time(slot),
                            hash,
                            proto_major: 10,
                            proto_minor: 0,
                            tx_count: 0,
                        })
                        .await;
                    last_slot = slot;
                }
                tokio::select! {
                    _ = &mut stopped => return fixture,
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
        Follower {
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// Stops following and returns the fixture.
    #[allow(dead_code)]
    pub async fn stop(mut self) -> Fixture {
        let _ = self.stop.take().unwrap().send(());
        self.handle.take().unwrap().await.unwrap()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// Sample names in a text-format scrape, plus every `# TYPE` name with the suffixes its
/// type implies (a counter family `x` is sampled as `x_total`, a histogram as `x_bucket`, …):
/// the metric names this exporter really serves, including families that have a descriptor
/// but no series right now.
pub fn served_names(body: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                panic!("malformed TYPE line: {line}");
            };
            names.insert(name.to_owned());
            let suffixes: &[&str] = match kind {
                "counter" if !name.ends_with("_total") => &["_total", "_created"],
                "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count", "_created"],
                "summary" => &["_sum", "_count", "_created"],
                "info" if !name.ends_with("_info") => &["_info"],
                _ => &[],
            };
            for suffix in suffixes {
                names.insert(format!("{name}{suffix}"));
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// Label values of `label` over the series of `family` in a text-format scrape.
pub fn label_values(body: &str, family: &str, label: &str) -> BTreeSet<String> {
    let needle = format!("{label}=\"");
    body.lines()
        .filter(|line| line.starts_with(&format!("{family}{{")))
        .filter_map(|line| {
            let start = line.find(&needle)? + needle.len();
            let len = line[start..].find('"')?;
            Some(line[start..start + len].to_owned())
        })
        .collect()
}

/// A uniquely named directory under the system temp dir, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "dbsync-stack-{prefix}-{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The repository root (where `alerts/` and `dashboards/` live).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// An executable on `PATH`, or a panic that says how to install it.
pub fn require_tool(tool: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(tool))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{tool}` is not on PATH: run ./scripts/test (it installs it) or \
                 `apt-get install prometheus`"
            )
        })
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

/// The network every test instance is on (so that fleet comparisons apply).
pub const NETWORK: &str = "mainnet";

/// A db-sync database of one test instance and where its tip is.
pub struct Instance {
    pub db: TestDatabase,
    pub fixture: Fixture,
    pub tip_block_no: i64,
    pub tip_slot: i64,
}

impl Instance {
    /// A healthy instance: db-sync 13.7, 30 blocks up to a tip 2 s old (start a [`Follower`]
    /// to keep it fresh), two `epoch_sync_time` rows of normal length, and a Koios
    /// `grest.control_table` with a version, a block-height key and a timestamp key.
    pub async fn fresh(prefix: &str) -> Instance {
        let instance = Instance::build(prefix, SchemaVersion::V13_7, unix_now() - 2, 30).await;
        let epoch = NetworkParams::known(NETWORK)
            .unwrap()
            .epoch_of_slot(instance.tip_slot);
        let fixture = &instance.fixture;
        fixture
            .epoch_sync_time(epoch - 2, 431_000, "following")
            .await;
        fixture
            .epoch_sync_time(epoch - 1, 432_100, "following")
            .await;
        fixture.execute(dbsync_fixture::grest_ddl()).await;
        fixture
            .execute(&format!(
                "INSERT INTO grest.control_table (key, last_value) VALUES \
                   ('version', 'v1.3.2'), \
                   ('stake_distribution_lbh', '{}'); \
                 INSERT INTO grest.control_table (key, last_value) \
                   SELECT 'pool_history_cache_last_updated', \
                          to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS');",
                instance.tip_block_no - 5
            ))
            .await;
        instance
    }

    /// An instance whose db-sync stopped an hour ago: db-sync 13.6, 5 blocks (so it is also
    /// far behind a fresh instance of the same network), one slow `epoch_sync_time` row.
    pub async fn stalled(prefix: &str) -> Instance {
        let instance = Instance::build(prefix, SchemaVersion::V13_6, unix_now() - 3600, 5).await;
        let epoch = NetworkParams::known(NETWORK)
            .unwrap()
            .epoch_of_slot(instance.tip_slot);
        instance
            .fixture
            .epoch_sync_time(epoch - 1, 1_200, "lagging")
            .await;
        instance
    }

    async fn build(prefix: &str, version: SchemaVersion, tip_unix: i64, n: u32) -> Instance {
        let db = dbsync_fixture::Cluster::shared()
            .create_database(prefix)
            .await;
        let fixture = chain(&db, version, NETWORK, tip_unix, n).await;
        Instance {
            db,
            fixture,
            tip_block_no: 1000 + i64::from(n) - 1,
            tip_slot: NetworkParams::known(NETWORK).unwrap().slot_at(tip_unix),
        }
    }
}

/// The test fleet: `fresh`, a db-sync 13.7 instance that follows the chain (a block a second),
/// and `stalled`, a db-sync 13.6 instance of the same network whose tip is an hour old, which
/// is far behind, and whose `info` check fails (a column renamed under it after its first
/// run; the findings, `dbsync_info` included, stay). Each exporter has the other as its peer.
/// Together they give every core panel something to show, and the alert rules one instance
/// that must stay silent and one that must alert.
pub struct Fleet {
    pub fresh: Exporter,
    pub stalled: Exporter,
    _fresh_db: TestDatabase,
    _stalled: Instance,
    _follower: Follower,
}

impl Fleet {
    pub async fn start(prefix: &str) -> Fleet {
        let fresh = Instance::fresh(&format!("{prefix}_fresh")).await;
        let stalled = Instance::stalled(&format!("{prefix}_stalled")).await;
        let fresh_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stalled_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (fresh_addr, stalled_addr) = (
            fresh_listener.local_addr().unwrap(),
            stalled_listener.local_addr().unwrap(),
        );
        let fresh_exporter = Exporter::start_on(
            fresh_listener,
            config(&fresh.db.reader_url(), &[stalled_addr]),
        )
        .await;
        let stalled_exporter = Exporter::start_on(
            stalled_listener,
            config(&stalled.db.reader_url(), &[fresh_addr]),
        )
        .await;
        let follower = Follower::start(
            fresh.fixture,
            NETWORK,
            fresh.tip_block_no,
            fresh.tip_slot,
            Duration::from_secs(1),
        );
        eventually(
            Duration::from_secs(60),
            "the stalled exporter's first successful info run",
            || async {
                let body = stalled_exporter.metrics().await;
                (value(&body, "dbsync_check_success{check=\"info\"}") == Some(1.0))
                    .then_some(())
                    .ok_or(body)
            },
        )
        .await;
        stalled
            .fixture
            .execute("ALTER TABLE epoch_sync_time RENAME COLUMN seconds TO seconds_renamed_by_test")
            .await;
        Fleet {
            fresh: fresh_exporter,
            stalled: stalled_exporter,
            _fresh_db: fresh.db,
            _stalled: stalled,
            _follower: follower,
        }
    }

    /// Stops both exporters cleanly.
    pub async fn shutdown(self) {
        self.fresh.shutdown().await;
        self.stalled.shutdown().await;
    }
}
