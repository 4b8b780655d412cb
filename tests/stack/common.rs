//! Shared helpers: the exporter on a free port, the simulated test fleet, polling, temp dirs,
//! and reading a scrape.
//!
//! `Exporter`, `value` and `unix_now` come from the shared `tests/support` module; this
//! binary's `eventually` returns a diagnosis with each failed probe.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[path = "../support/mod.rs"]
mod support;

pub use support::{test_certificates, unix_now, value, Exporter};

use dbsync_exporter::Config;
use dbsync_fixture::{Cluster, IndexSet, SchemaVersion, TestDatabase};
use dbsync_sim::{
    FaultSet, FollowOptions, GenerateOptions, GenerateReport, InitOptions, Network, Scale,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

/// A config for `url`, comparing its tip with the exporters at `peers`, with checks fast
/// enough for a 1 s scrape, yet slow enough that three intervals (the `DbSyncCheckStale`
/// threshold) comfortably exceed scrape plus evaluation delay on a loaded CI machine.
pub fn config(url: &str, peers: &[SocketAddr]) -> Config {
    let mut config = Config::with_database(url.parse().unwrap());
    config.checks.tip_interval = Duration::from_secs(2);
    config.checks.info_interval = Duration::from_secs(3);
    config.checks.grest_interval = Duration::from_secs(3);
    config.checks.integrity_interval = Duration::from_secs(10);
    config.checks.integrity_timeout = Duration::from_secs(30);
    config.checks.check_timeout = Duration::from_secs(10);
    config.db.connect_timeout = Duration::from_secs(5);
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
            let package = match tool {
                "victoria-metrics" | "vmalert" | "vmauth" | "vmagent" => "victoria-metrics",
                "prometheus-alertmanager" | "amtool" => "prometheus-alertmanager",
                _ => "prometheus",
            };
            panic!(
                "`{tool}` is not on PATH: run ./scripts/test (it installs it) or \
                 `apt-get install {package}`"
            )
        })
}

/// The network every test instance is on (so that fleet comparisons apply).
pub const NETWORK: &str = "mainnet";

/// A simulated db-sync database (`dbsync-sim`): `init` for `version`, then `generate` about
/// `blocks` blocks of history ending at `until_unix`, with `faults` planted.
pub async fn simulated(
    prefix: &str,
    version: SchemaVersion,
    blocks: u64,
    until_unix: i64,
    faults: FaultSet,
) -> (TestDatabase, Client, GenerateReport) {
    let db = Cluster::shared().create_database(prefix).await;
    let client = db.connect().await;
    dbsync_sim::init(
        &client,
        &InitOptions {
            version,
            network: Network::known(NETWORK).unwrap(),
            indexes: IndexSet::InitialSync,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("dbsync-sim init of {}: {e}", db.name));
    let report = dbsync_sim::generate(
        &client,
        &GenerateOptions {
            scale: Scale::Blocks(blocks),
            faults,
            seed: 5,
            until_unix: Some(until_unix),
            near_tip_indexes: true,
            progress: false,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("dbsync-sim generate into {}: {e}", db.name));
    (db, client, report)
}

/// `dbsync-sim follow` on a database, like db-sync following the chain in real time (a block
/// every ~20 s); stopped on drop.
pub struct Follower {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

impl Follower {
    pub fn start(mut client: Client) -> Follower {
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let options = FollowOptions {
                speed: 1.0,
                rollback_every: None,
                stall_after: None,
                max_blocks: None,
                seed: 11,
                log: false,
            };
            let stopped = async move {
                let _ = stopped.await;
            };
            if let Err(e) = dbsync_sim::follow(&mut client, &options, stopped).await {
                panic!("dbsync-sim follow: {e}");
            }
        });
        Follower {
            stop: Some(stop),
            handle,
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.handle.abort();
    }
}

/// The test fleet, two simulated mainnet db-sync instances, each exporter having the other
/// as its peer:
///
/// - `fresh`: db-sync 13.7, ~8000 blocks up to now, a clean ledger (every integrity value 0),
///   a Koios `grest.control_table`, and a follower adding blocks in real time. It must never
///   alert.
/// - `stalled`: db-sync 13.6, ~4000 blocks (the simulator's floor: one per epoch and
///   more) ending an hour ago (so its tip is stale and it is
///   far behind `fresh`), every simulator fault planted, and a failing `info` check (a column
///   renamed under it after its first run; its findings, `dbsync_info` included, stay). It
///   must raise the tip, fleet, health, check and integrity alerts.
///
/// Together they give every dashboard panel something to show.
pub struct Fleet {
    pub fresh: Exporter,
    pub stalled: Exporter,
    /// What the simulator planted in `stalled` and what the exporter should report for it.
    pub stalled_report: GenerateReport,
    _follower: Follower,
    _dbs: [TestDatabase; 2],
}

impl Fleet {
    pub async fn start(prefix: &str) -> Fleet {
        let now = unix_now();
        let (fresh_name, stalled_name) = (format!("{prefix}_fresh"), format!("{prefix}_stalled"));
        let fresh = simulated(
            &fresh_name,
            SchemaVersion::V13_7,
            8_000,
            now,
            FaultSet::none(),
        );
        let stalled = simulated(
            &stalled_name,
            SchemaVersion::V13_6,
            2_000,
            now - 3600,
            FaultSet::all(),
        );
        let ((fresh_db, fresh_client, _), (stalled_db, stalled_client, stalled_report)) =
            tokio::join!(fresh, stalled);
        // The simulator writes at least a block per epoch whatever the scale: make sure the
        // scales above still leave the stalled instance well behind.
        let (fresh_tip, stalled_tip) = (tip(&fresh_client).await, tip(&stalled_client).await);
        assert!(
            fresh_tip - stalled_tip > 100,
            "the stalled instance (tip {stalled_tip}) should be far behind the fresh one \
             (tip {fresh_tip}): adjust the scales in Fleet::start"
        );
        fresh_client
            .batch_execute(dbsync_fixture::grest_ddl())
            .await
            .unwrap();
        fresh_client
            .batch_execute(KOIOS_CONTROL_ROWS)
            .await
            .unwrap();

        let fresh_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stalled_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (fresh_addr, stalled_addr) = (
            fresh_listener.local_addr().unwrap(),
            stalled_listener.local_addr().unwrap(),
        );
        let fresh_exporter = Exporter::start_on(
            fresh_listener,
            None,
            config(&fresh_db.reader_url(), &[stalled_addr]),
        )
        .await;
        let stalled_exporter = Exporter::start_on(
            stalled_listener,
            None,
            config(&stalled_db.reader_url(), &[fresh_addr]),
        )
        .await;
        let follower = Follower::start(fresh_client);
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
        stalled_client
            .batch_execute(
                "ALTER TABLE epoch_sync_time RENAME COLUMN seconds TO seconds_renamed_by_test",
            )
            .await
            .unwrap();
        Fleet {
            fresh: fresh_exporter,
            stalled: stalled_exporter,
            stalled_report,
            _follower: follower,
            _dbs: [fresh_db, stalled_db],
        }
    }

    /// Stops both exporters cleanly.
    pub async fn shutdown(self) {
        self.fresh.shutdown().await;
        self.stalled.shutdown().await;
    }
}

/// The four keys Koios routes on, written the way its cron jobs write them: the release,
/// the stake distribution cache a few blocks behind, the pool history cache updated now (the
/// implicit text cast of `NOW() AT TIME ZONE 'utc'`, as `pool_history_cache_update` does), and
/// the active stake cache on the tip's epoch + 1 (`MAX(epoch_no)` of the completed
/// `epoch_stake_progress`, which db-sync fills a whole epoch in advance).
const KOIOS_CONTROL_ROWS: &str = "\
    INSERT INTO grest.control_table (key, last_value) VALUES ('version', 'v1.3.2'); \
    INSERT INTO grest.control_table (key, last_value) \
      SELECT 'stake_distribution_lbh', (max(block_no) - 5)::text FROM block; \
    INSERT INTO grest.control_table (key, last_value) \
      VALUES ('pool_history_cache_last_updated', NOW() AT TIME ZONE 'utc'); \
    INSERT INTO grest.control_table (key, last_value) \
      SELECT 'last_active_stake_validated_epoch', (max(epoch_no) + 1)::text FROM block;";

/// The newest block number in a db-sync database.
async fn tip(client: &Client) -> i64 {
    client
        .query_one("SELECT max(block_no)::int8 FROM block", &[])
        .await
        .unwrap()
        .get(0)
}
