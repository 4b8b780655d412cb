//! Command-line flags, their `DBSYNC_EXPORTER_*` environment twins, and validation into an
//! immutable [`Config`].
//!
//! Everything that can be wrong with the configuration is found here, before any I/O, and
//! reported as one line naming the flag. The database password is never part of an error,
//! a log line or `--help` (env values are hidden, the URL is parsed outside clap so clap
//! never echoes it).

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args as ClapArgs, Parser, ValueEnum};

use crate::chain::NetworkParams;

/// Prometheus exporter and health sidecar for cardano-db-sync.
///
/// Runs its checks against the db-sync database in the background and serves the cached
/// results on /metrics, /health and /tip; scrapes never touch the database.
#[derive(Debug, Parser)]
#[command(name = "dbsync-exporter", version, about, long_about = None)]
pub struct Args {
    /// Database connection.
    #[command(flatten, next_help_heading = "Database")]
    pub database: DatabaseArgs,
    /// HTTP listener.
    #[command(flatten, next_help_heading = "Web")]
    pub web: WebArgs,
    /// Check cadence.
    #[command(flatten, next_help_heading = "Checks")]
    pub checks: CheckArgs,
    /// Health thresholds.
    #[command(flatten, next_help_heading = "Health")]
    pub health: HealthArgs,
    /// HAProxy agent.
    #[command(flatten, next_help_heading = "HAProxy agent")]
    pub agent: AgentArgs,
    /// Peers.
    #[command(flatten, next_help_heading = "Peers")]
    pub peers: PeerArgs,
    /// Genesis constants override.
    #[command(flatten, next_help_heading = "Chain (other networks)")]
    pub chain: ChainArgs,
    /// Logging.
    #[command(flatten, next_help_heading = "Logging")]
    pub log: LogArgs,
}

/// Where the db-sync database is and how gently to use it.
#[derive(Debug, ClapArgs)]
pub struct DatabaseArgs {
    /// PostgreSQL URL of the db-sync database (postgres://user:pass@host:port/db). Prefer the
    /// environment variable or --database-url-file: a flag is visible in the process list.
    /// Without a URL, the libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE
    /// are used.
    #[arg(
        long,
        env = "DBSYNC_EXPORTER_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,

    /// File holding the database URL (e.g. a Docker or Kubernetes secret).
    #[arg(
        long,
        env = "DBSYNC_EXPORTER_DATABASE_URL_FILE",
        conflicts_with = "database_url",
        value_name = "PATH"
    )]
    pub database_url_file: Option<String>,

    /// Connections kept in the pool; every check shares them.
    #[arg(long = "db.pool-size", env = "DBSYNC_EXPORTER_DB_POOL_SIZE", default_value_t = 3,
          value_parser = clap::value_parser!(u16).range(1..=16), value_name = "N")]
    pub pool_size: u16,

    /// Time allowed to open a connection, and to wait for a free one.
    #[arg(
        long = "db.connect-timeout",
        env = "DBSYNC_EXPORTER_DB_CONNECT_TIMEOUT",
        default_value = "5s",
        value_name = "DURATION"
    )]
    pub connect_timeout: HumanDuration,

    /// Longest time a query waits for a lock before the server gives up.
    #[arg(
        long = "db.lock-timeout",
        env = "DBSYNC_EXPORTER_DB_LOCK_TIMEOUT",
        default_value = "1s",
        value_name = "DURATION"
    )]
    pub lock_timeout: HumanDuration,
}

/// The HTTP listener.
#[derive(Debug, ClapArgs)]
pub struct WebArgs {
    /// Address for /metrics, /health, /tip, /live and /ready.
    #[arg(
        long = "web.listen-address",
        env = "DBSYNC_EXPORTER_WEB_LISTEN_ADDRESS",
        default_value = "0.0.0.0:9895",
        value_parser = parse_listen_address, value_name = "ADDRESS")]
    pub listen_address: SocketAddr,
}

/// Check cadence and limits.
#[derive(Debug, ClapArgs)]
pub struct CheckArgs {
    /// How often the tip and rollback checks run.
    #[arg(
        long = "tip-interval",
        env = "DBSYNC_EXPORTER_TIP_INTERVAL",
        default_value = "5s",
        value_name = "DURATION"
    )]
    pub tip_interval: HumanDuration,

    /// How often the info check (schema, network, epoch sync time) runs.
    #[arg(
        long = "info-interval",
        env = "DBSYNC_EXPORTER_INFO_INTERVAL",
        default_value = "1m",
        value_name = "DURATION"
    )]
    pub info_interval: HumanDuration,

    /// How often the Koios cache check reads grest.control_table (when the grest schema exists).
    #[arg(
        long = "grest-interval",
        env = "DBSYNC_EXPORTER_GREST_INTERVAL",
        default_value = "1m",
        value_name = "DURATION"
    )]
    pub grest_interval: HumanDuration,

    /// Longest run of the tip, rollback and info checks; the server cancels the query after it.
    #[arg(
        long = "check-timeout",
        env = "DBSYNC_EXPORTER_CHECK_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub check_timeout: HumanDuration,

    /// How often the integrity checks (mir, pool_refunds, ada_pots, epoch_stake) run; after
    /// the first run they only re-examine the epochs that can have changed.
    #[arg(
        long = "integrity-interval",
        env = "DBSYNC_EXPORTER_INTEGRITY_INTERVAL",
        default_value = "10m",
        value_name = "DURATION"
    )]
    pub integrity_interval: HumanDuration,

    /// How often the integrity checks examine the whole history again (also after a rollback
    /// across an epoch boundary).
    #[arg(
        long = "integrity.full-interval",
        env = "DBSYNC_EXPORTER_INTEGRITY_FULL_INTERVAL",
        default_value = "24h",
        value_name = "DURATION"
    )]
    pub integrity_full_interval: HumanDuration,

    /// Longest run of an integrity check; the server cancels the query after it.
    #[arg(
        long = "integrity.timeout",
        env = "DBSYNC_EXPORTER_INTEGRITY_TIMEOUT",
        default_value = "2m",
        value_name = "DURATION"
    )]
    pub integrity_timeout: HumanDuration,
}

/// What /health and the HAProxy agent call healthy.
#[derive(Debug, ClapArgs)]
pub struct HealthArgs {
    /// Oldest tip that still counts as in sync; older is down (Koios routes on 600 s).
    #[arg(
        long = "health.max-tip-age",
        env = "DBSYNC_EXPORTER_HEALTH_MAX_TIP_AGE",
        default_value = "600s",
        value_name = "DURATION"
    )]
    pub max_tip_age: HumanDuration,

    /// Tip age from which the instance drains (finishes connections, takes no new ones)
    /// [default: 180s, or half of --health.max-tip-age when that is lower].
    #[arg(
        long = "health.drain-tip-age",
        env = "DBSYNC_EXPORTER_HEALTH_DRAIN_TIP_AGE",
        value_name = "DURATION"
    )]
    pub drain_tip_age: Option<HumanDuration>,

    /// How long the tip may go unread (failed tip runs: timeouts, permission or query errors)
    /// before the instance is down; a database that refuses connections is down at once
    /// [default: 3 × --tip-interval].
    #[arg(
        long = "health.tip-failure-grace",
        env = "DBSYNC_EXPORTER_HEALTH_TIP_FAILURE_GRACE",
        value_name = "DURATION"
    )]
    pub tip_failure_grace: Option<HumanDuration>,

    /// Blocks behind the best same-network peer from which the instance drains
    /// [default: 10, or half of --health.max-fleet-lag-blocks when that is lower].
    #[arg(
        long = "health.drain-fleet-lag-blocks",
        env = "DBSYNC_EXPORTER_HEALTH_DRAIN_FLEET_LAG_BLOCKS",
        value_name = "N"
    )]
    pub drain_fleet_lag_blocks: Option<u64>,

    /// Blocks behind the best same-network peer from which the instance is down.
    #[arg(
        long = "health.max-fleet-lag-blocks",
        env = "DBSYNC_EXPORTER_HEALTH_MAX_FLEET_LAG_BLOCKS",
        default_value_t = 30,
        value_name = "N"
    )]
    pub max_fleet_lag_blocks: u64,

    /// Peers that must each be more than --health.max-fleet-lag-blocks ahead before the
    /// fleet marks the instance down (one is enough to drain). 1 lets a single peer take the
    /// instance down: set it only when you trust that peer.
    #[arg(
        long = "health.fleet-quorum",
        env = "DBSYNC_EXPORTER_HEALTH_FLEET_QUORUM",
        default_value_t = 2,
        value_parser = clap::value_parser!(u16).range(1..),
        value_name = "N"
    )]
    pub fleet_quorum: u16,

    /// Mark the instance down while an integrity check reports a fault.
    #[arg(
        long = "health.fail-on-integrity",
        env = "DBSYNC_EXPORTER_HEALTH_FAIL_ON_INTEGRITY"
    )]
    pub fail_on_integrity: bool,

    /// Koios: largest lag of the stake distribution cache before draining (grest-poll uses 2000).
    #[arg(
        long = "health.grest-stake-distribution-lag-blocks",
        env = "DBSYNC_EXPORTER_HEALTH_GREST_STAKE_DISTRIBUTION_LAG_BLOCKS",
        default_value_t = 2000,
        value_name = "N"
    )]
    pub grest_stake_distribution_lag_blocks: i64,

    /// Koios: oldest pool history cache update before draining (grest-poll uses 1000 s).
    #[arg(
        long = "health.grest-pool-history-max-age",
        env = "DBSYNC_EXPORTER_HEALTH_GREST_POOL_HISTORY_MAX_AGE",
        default_value = "1000s",
        value_name = "DURATION"
    )]
    pub grest_pool_history_max_age: HumanDuration,

    /// Koios: the release grest.control_table must show (e.g. v1.3.2, the version of the API
    /// spec your monitors expect); another one drains. Off unless set.
    #[arg(
        long = "grest.expected-version",
        env = "DBSYNC_EXPORTER_GREST_EXPECTED_VERSION",
        value_name = "VERSION"
    )]
    pub grest_expected_version: Option<String>,
}

/// The HAProxy agent-check listener.
#[derive(Debug, ClapArgs)]
pub struct AgentArgs {
    /// Address of the HAProxy agent-check listener (off unless set), e.g. 0.0.0.0:9896.
    #[arg(id = "agent_listen_address", long = "agent.listen-address", env = "DBSYNC_EXPORTER_AGENT_LISTEN_ADDRESS", value_parser = parse_listen_address, value_name = "ADDRESS")]
    pub listen_address: Option<SocketAddr>,

    /// Lower the agent's weight as the instance falls behind its peers (100% at no lag,
    /// 10 points less per block behind, at least 10%).
    #[arg(
        long = "agent.weight-follows-lag",
        env = "DBSYNC_EXPORTER_AGENT_WEIGHT_FOLLOWS_LAG"
    )]
    pub weight_follows_lag: bool,
}

/// Other providers' sidecars to compare the tip with.
#[derive(Debug, ClapArgs)]
pub struct PeerArgs {
    /// Base URL of a peer's dbsync-exporter (its /tip is polled); repeatable, or comma-separated
    /// in the environment variable.
    #[arg(
        long = "peer",
        env = "DBSYNC_EXPORTER_PEERS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub peers: Vec<String>,

    /// File listing peer URLs, one per line (# comments); re-read every poll round.
    #[arg(
        long = "peers-file",
        env = "DBSYNC_EXPORTER_PEERS_FILE",
        value_name = "PATH"
    )]
    pub peers_file: Option<std::path::PathBuf>,

    /// How often peers are polled.
    #[arg(
        long = "peer.interval",
        env = "DBSYNC_EXPORTER_PEER_INTERVAL",
        default_value = "15s",
        value_name = "DURATION"
    )]
    pub interval: HumanDuration,

    /// Timeout of one peer request.
    #[arg(
        long = "peer.timeout",
        env = "DBSYNC_EXPORTER_PEER_TIMEOUT",
        default_value = "3s",
        value_name = "DURATION"
    )]
    pub timeout: HumanDuration,
}

/// Genesis constants for networks other than mainnet, preprod and preview.
///
/// All four must be given together; they override what `meta.network_name` selects.
#[derive(Debug, ClapArgs)]
pub struct ChainArgs {
    /// Unix time of slot 0 (Byron genesis startTime).
    #[arg(
        long = "chain.byron-start",
        env = "DBSYNC_EXPORTER_CHAIN_BYRON_START",
        value_name = "N"
    )]
    pub byron_start: Option<i64>,
    /// Slots per Byron epoch (10 × k).
    #[arg(
        long = "chain.byron-epoch-slots",
        env = "DBSYNC_EXPORTER_CHAIN_BYRON_EPOCH_SLOTS",
        value_name = "N"
    )]
    pub byron_epoch_slots: Option<i64>,
    /// First epoch with 1 s slots (0 when the network started in Shelley).
    #[arg(
        long = "chain.shelley-start-epoch",
        env = "DBSYNC_EXPORTER_CHAIN_SHELLEY_START_EPOCH",
        value_name = "N"
    )]
    pub shelley_start_epoch: Option<i64>,
    /// Slots per epoch from Shelley on.
    #[arg(
        long = "chain.epoch-slots",
        env = "DBSYNC_EXPORTER_CHAIN_EPOCH_SLOTS",
        value_name = "N"
    )]
    pub epoch_slots: Option<i64>,
}

/// Logging.
#[derive(Debug, ClapArgs)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long = "log-format", env = "DBSYNC_EXPORTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub format: LogFormat,
    /// Log filter: a level (error, warn, info, debug, trace) or a tracing directive list.
    #[arg(
        long = "log-level",
        env = "DBSYNC_EXPORTER_LOG_LEVEL",
        default_value = "info"
    )]
    pub level: String,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// A listen address: `host:port`, or `:port` for every interface (Prometheus' convention).
pub fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_owned(),
    };
    full.parse()
        .map_err(|_| format!("`{text}` is not an address (expected host:port or :port)"))
}

/// A duration written as `500ms`, `5s`, `2m`, `1h` or `1d` (units may be combined: `1m30s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty duration (expected e.g. 500ms, 5s, 2m)".into());
        }
        let mut total = Duration::ZERO;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!(
                    "`{text}` is not a duration (expected e.g. 500ms, 5s, 2m)"
                ));
            }
            let number: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("`{text}` is too large"))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let part = match &rest[..unit_len] {
                "ms" => Duration::from_millis(number),
                "s" => Duration::from_secs(number),
                "m" => Duration::from_secs(number.saturating_mul(60)),
                "h" => Duration::from_secs(number.saturating_mul(3600)),
                "d" => Duration::from_secs(number.saturating_mul(86_400)),
                "" => return Err(format!("`{text}` needs a unit (ms, s, m, h or d)")),
                unit => {
                    return Err(format!(
                        "unknown unit `{unit}` in `{text}` (use ms, s, m, h or d)"
                    ))
                }
            };
            total = total.saturating_add(part);
            rest = &rest[unit_len..];
        }
        if total.is_zero() {
            return Err("must be greater than zero".into());
        }
        Ok(HumanDuration(total))
    }
}

/// A configuration error: the flag it concerns and what is wrong, without the value when the
/// value may hold a secret.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for '{flag}': {reason}")]
pub struct ConfigError {
    /// The flag as the user writes it, e.g. `--database-url`.
    pub flag: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    fn new(flag: &'static str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            flag,
            reason: reason.into(),
        }
    }
}

/// The validated, immutable configuration the exporter runs with.
#[derive(Clone)]
pub struct Config {
    /// Connection settings; holds the password, so never formatted with `{:?}`.
    pub database: tokio_postgres::Config,
    /// Pool size.
    pub pool_size: usize,
    /// Connect and pool-wait timeout.
    pub connect_timeout: Duration,
    /// Server-side lock wait limit.
    pub lock_timeout: Duration,
    /// HTTP listen address.
    pub listen_address: SocketAddr,
    /// Tip and rollback check interval.
    pub tip_interval: Duration,
    /// Info check interval.
    pub info_interval: Duration,
    /// Timeout of the tip, rollback and info checks.
    pub check_timeout: Duration,
    /// Koios cache check interval.
    pub grest_interval: Duration,
    /// Interval of the integrity checks.
    pub integrity_interval: Duration,
    /// How often the integrity checks examine the whole history again.
    pub integrity_full_interval: Duration,
    /// Timeout of an integrity check run.
    pub integrity_timeout: Duration,
    /// Health thresholds.
    pub health: HealthConfig,
    /// HAProxy agent listener and weights.
    pub agent: AgentConfig,
    /// Peers to compare the tip with.
    pub peers: PeerConfig,
    /// Chain constants given on the command line, overriding the network's own.
    pub chain_override: Option<NetworkParams>,
}

/// Thresholds of the health policy (defaults are Koios' own).
#[derive(Clone, Debug)]
pub struct HealthConfig {
    /// Oldest tip that still counts as in sync; older is down.
    pub max_tip_age: Duration,
    /// Tip age from which the instance drains.
    pub drain_tip_age: Duration,
    /// How long the tip may go unread before failed tip runs mark the instance down.
    pub tip_failure_grace: Duration,
    /// Blocks behind the fleet from which the instance drains.
    pub drain_fleet_lag_blocks: u64,
    /// Blocks behind the fleet from which the instance is down.
    pub max_fleet_lag_blocks: u64,
    /// Peers that must agree (each far ahead) before the fleet marks the instance down.
    pub fleet_quorum: usize,
    /// Integrity faults mark the instance down.
    pub fail_on_integrity: bool,
    /// Koios stake distribution cache: largest lag in blocks.
    pub grest_stake_distribution_lag_blocks: i64,
    /// Koios pool history cache: oldest update.
    pub grest_pool_history_max_age: Duration,
    /// Koios release that must be installed, when set.
    pub grest_expected_version: Option<String>,
}

impl Default for HealthConfig {
    fn default() -> HealthConfig {
        HealthConfig {
            max_tip_age: Duration::from_secs(600),
            drain_tip_age: Duration::from_secs(180),
            tip_failure_grace: Duration::from_secs(15),
            drain_fleet_lag_blocks: 10,
            max_fleet_lag_blocks: 30,
            fleet_quorum: 2,
            fail_on_integrity: false,
            grest_stake_distribution_lag_blocks: 2000,
            grest_pool_history_max_age: Duration::from_secs(1000),
            grest_expected_version: None,
        }
    }
}

/// The HAProxy agent.
#[derive(Clone, Debug, Default)]
pub struct AgentConfig {
    /// Listener address; `None` keeps the agent off.
    pub listen_address: Option<SocketAddr>,
    /// Weight follows the fleet lag.
    pub weight_follows_lag: bool,
}

/// Peer polling.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// Peer base URLs from the command line.
    pub urls: Vec<reqwest::Url>,
    /// File with more peer URLs, re-read every round.
    pub file: Option<std::path::PathBuf>,
    /// Poll interval.
    pub interval: Duration,
    /// Request timeout.
    pub timeout: Duration,
}

impl Default for PeerConfig {
    fn default() -> PeerConfig {
        PeerConfig {
            urls: Vec::new(),
            file: None,
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(3),
        }
    }
}

/// Parses a peer's base URL: http or https, no query; credentials are refused because the
/// URL becomes a label value.
pub fn parse_peer_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|error| format!("`{text}`: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{text}`: only http and https peers are supported"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("peer URLs must not carry credentials (they become label values)".into());
    }
    if url.host_str().is_none() {
        return Err(format!("`{text}` has no host"));
    }
    Ok(url)
}

impl Config {
    /// Validates parsed flags into a configuration, reading the URL file and PG* variables.
    pub fn from_args(args: Args) -> Result<Config, ConfigError> {
        let database = database_config(&args.database)?;
        let chain_override = chain_override(&args.chain)?;
        let health = health_config(&args.health, args.checks.tip_interval.0)?;
        let peers = PeerConfig {
            urls: args
                .peers
                .peers
                .iter()
                .filter(|text| !text.trim().is_empty())
                .map(|text| {
                    parse_peer_url(text).map_err(|reason| ConfigError::new("--peer", reason))
                })
                .collect::<Result<_, _>>()?,
            file: args.peers.peers_file.clone(),
            interval: args.peers.interval.0,
            timeout: args.peers.timeout.0,
        };
        Ok(Config {
            database,
            pool_size: usize::from(args.database.pool_size),
            connect_timeout: args.database.connect_timeout.0,
            lock_timeout: args.database.lock_timeout.0,
            listen_address: args.web.listen_address,
            tip_interval: args.checks.tip_interval.0,
            info_interval: args.checks.info_interval.0,
            check_timeout: args.checks.check_timeout.0,
            grest_interval: args.checks.grest_interval.0,
            integrity_interval: args.checks.integrity_interval.0,
            integrity_full_interval: args.checks.integrity_full_interval.0,
            integrity_timeout: args.checks.integrity_timeout.0,
            health,
            agent: AgentConfig {
                listen_address: args.agent.listen_address,
                weight_follows_lag: args.agent.weight_follows_lag,
            },
            peers,
            chain_override,
        })
    }

    /// The longest timeout of any check: the connection-wide `statement_timeout` cap.
    pub fn max_check_timeout(&self) -> Duration {
        self.check_timeout.max(self.integrity_timeout)
    }

    /// Defaults for everything but the database; handy for tests and embedding.
    pub fn with_database(database: tokio_postgres::Config) -> Config {
        Config {
            database,
            pool_size: 3,
            connect_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(1),
            listen_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            tip_interval: Duration::from_secs(5),
            info_interval: Duration::from_secs(60),
            check_timeout: Duration::from_secs(10),
            grest_interval: Duration::from_secs(60),
            integrity_interval: Duration::from_secs(600),
            integrity_full_interval: Duration::from_secs(86_400),
            integrity_timeout: Duration::from_secs(120),
            health: HealthConfig::default(),
            agent: AgentConfig::default(),
            peers: PeerConfig::default(),
            chain_override: None,
        }
    }
}

/// Default drain tip age, unless the maximum is lower: then half of it.
const DEFAULT_DRAIN_TIP_AGE: Duration = Duration::from_secs(180);
/// Default drain fleet lag, unless the maximum is lower: then half of it.
const DEFAULT_DRAIN_FLEET_LAG_BLOCKS: u64 = 10;
/// Failed tip runs tolerated (in tip intervals) before the instance is down.
const TIP_FAILURE_GRACE_INTERVALS: u32 = 3;

fn health_config(args: &HealthArgs, tip_interval: Duration) -> Result<HealthConfig, ConfigError> {
    let max_tip_age = args.max_tip_age.0;
    let drain_tip_age = match args.drain_tip_age {
        Some(HumanDuration(drain)) if drain > max_tip_age => {
            return Err(ConfigError::new(
                "--health.drain-tip-age",
                "must not exceed --health.max-tip-age",
            ))
        }
        Some(HumanDuration(drain)) => drain,
        None if max_tip_age < DEFAULT_DRAIN_TIP_AGE => max_tip_age / 2,
        None => DEFAULT_DRAIN_TIP_AGE,
    };
    let max_fleet_lag_blocks = args.max_fleet_lag_blocks;
    let drain_fleet_lag_blocks = match args.drain_fleet_lag_blocks {
        Some(drain) if drain > max_fleet_lag_blocks => {
            return Err(ConfigError::new(
                "--health.drain-fleet-lag-blocks",
                "must not exceed --health.max-fleet-lag-blocks",
            ))
        }
        Some(drain) => drain,
        None if max_fleet_lag_blocks < DEFAULT_DRAIN_FLEET_LAG_BLOCKS => max_fleet_lag_blocks / 2,
        None => DEFAULT_DRAIN_FLEET_LAG_BLOCKS,
    };
    let expected_version = args
        .grest_expected_version
        .as_deref()
        .map(str::trim)
        .filter(|version| !version.is_empty());
    Ok(HealthConfig {
        max_tip_age,
        drain_tip_age,
        tip_failure_grace: args
            .tip_failure_grace
            .map_or(tip_interval * TIP_FAILURE_GRACE_INTERVALS, |grace| grace.0),
        drain_fleet_lag_blocks,
        max_fleet_lag_blocks,
        fleet_quorum: usize::from(args.fleet_quorum),
        fail_on_integrity: args.fail_on_integrity,
        grest_stake_distribution_lag_blocks: args.grest_stake_distribution_lag_blocks,
        grest_pool_history_max_age: args.grest_pool_history_max_age.0,
        grest_expected_version: expected_version.map(str::to_owned),
    })
}

fn database_config(args: &DatabaseArgs) -> Result<tokio_postgres::Config, ConfigError> {
    if let Some(path) = &args.database_url_file {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError::new(
                "--database-url-file",
                format!("cannot read {path}: {error}"),
            )
        })?;
        return parse_url(text.trim(), "--database-url-file");
    }
    if let Some(url) = &args.database_url {
        return parse_url(url, "--database-url");
    }
    Ok(from_libpq_env(|name| std::env::var(name).ok()))
}

/// Parses a connection string without ever repeating it: it may hold the password.
fn parse_url(url: &str, flag: &'static str) -> Result<tokio_postgres::Config, ConfigError> {
    if url.is_empty() {
        return Err(ConfigError::new(flag, "empty database URL"));
    }
    tokio_postgres::Config::from_str(url).map_err(|error| {
        // tokio-postgres names the offending key, not its value; keep only that much.
        let reason = error.to_string();
        let reason = if reason.contains(url) {
            "malformed database URL".to_owned()
        } else {
            reason
        };
        ConfigError::new(flag, reason)
    })
}

/// The libpq environment variables, for operators who configure psql that way.
pub fn from_libpq_env(var: impl Fn(&str) -> Option<String>) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config.host(var("PGHOST").as_deref().unwrap_or("localhost"));
    if let Some(port) = var("PGPORT").and_then(|p| p.parse().ok()) {
        config.port(port);
    }
    let user = var("PGUSER")
        .or_else(|| var("USER"))
        .unwrap_or_else(|| "postgres".into());
    config.dbname(var("PGDATABASE").as_deref().unwrap_or(&user));
    config.user(&user);
    if let Some(password) = var("PGPASSWORD") {
        config.password(password);
    }
    config
}

fn chain_override(args: &ChainArgs) -> Result<Option<NetworkParams>, ConfigError> {
    let given = [
        args.byron_start.is_some(),
        args.byron_epoch_slots.is_some(),
        args.shelley_start_epoch.is_some(),
        args.epoch_slots.is_some(),
    ];
    if given.iter().all(|g| !g) {
        return Ok(None);
    }
    let require = |value: Option<i64>, flag: &'static str| {
        value.ok_or_else(|| {
            ConfigError::new(
                flag,
                "missing: the --chain.* flags must be given together \
                 (byron-start, byron-epoch-slots, shelley-start-epoch, epoch-slots)",
            )
        })
    };
    let positive = |value: i64, flag: &'static str| {
        if value > 0 {
            Ok(value)
        } else {
            Err(ConfigError::new(flag, "must be greater than zero"))
        }
    };
    let params = NetworkParams {
        name: "custom".into(),
        byron_start_unix: require(args.byron_start, "--chain.byron-start")?,
        byron_epoch_slots: positive(
            require(args.byron_epoch_slots, "--chain.byron-epoch-slots")?,
            "--chain.byron-epoch-slots",
        )?,
        shelley_start_epoch: require(args.shelley_start_epoch, "--chain.shelley-start-epoch")?,
        epoch_slots: positive(
            require(args.epoch_slots, "--chain.epoch-slots")?,
            "--chain.epoch-slots",
        )?,
    };
    if params.shelley_start_epoch < 0 {
        return Err(ConfigError::new(
            "--chain.shelley-start-epoch",
            "must not be negative",
        ));
    }
    Ok(Some(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        let parse = |s: &str| HumanDuration::from_str(s).map(|d| d.0);
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("24h"), Ok(Duration::from_secs(86_400)));
        assert!(parse("5").unwrap_err().contains("needs a unit"));
        assert!(parse("5x").unwrap_err().contains("unknown unit `x`"));
        assert!(parse("0s").unwrap_err().contains("greater than zero"));
        assert!(parse("s").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn listen_addresses_accept_a_bare_port() {
        assert_eq!(
            parse_listen_address(":8059"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 8059)))
        );
        assert_eq!(
            parse_listen_address("127.0.0.1:9895"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9895)))
        );
        assert!(parse_listen_address("9895").is_err());
    }

    #[test]
    fn libpq_variables_fill_the_config() {
        let env = |name: &str| match name {
            "PGHOST" => Some("db.example".to_owned()),
            "PGPORT" => Some("6432".to_owned()),
            "PGUSER" => Some("koios".to_owned()),
            "PGPASSWORD" => Some("hunter2".to_owned()),
            _ => None,
        };
        let config = from_libpq_env(env);
        assert_eq!(config.get_ports(), &[6432]);
        assert_eq!(config.get_user(), Some("koios"));
        assert_eq!(config.get_dbname(), Some("koios"));
        assert_eq!(config.get_password(), Some(&b"hunter2"[..]));
    }

    #[test]
    fn a_bad_url_error_does_not_repeat_the_url() {
        let error =
            parse_url("postgres://u:topsecret@host:notaport/db", "--database-url").unwrap_err();
        assert_eq!(error.flag, "--database-url");
        assert!(!error.to_string().contains("topsecret"), "{error}");
    }

    fn health(flags: &[&str]) -> Result<HealthConfig, ConfigError> {
        let args = Args::try_parse_from(
            [
                "dbsync-exporter",
                "--database-url",
                "postgres://x@localhost/db",
            ]
            .iter()
            .chain(flags),
        )
        .unwrap();
        Config::from_args(args).map(|config| config.health)
    }

    #[test]
    fn drain_thresholds_follow_a_lower_maximum() {
        let defaults = health(&[]).unwrap();
        assert_eq!(defaults.max_tip_age, Duration::from_secs(600));
        assert_eq!(defaults.drain_tip_age, Duration::from_secs(180));
        assert_eq!(
            (
                defaults.drain_fleet_lag_blocks,
                defaults.max_fleet_lag_blocks
            ),
            (10, 30)
        );
        let low = health(&[
            "--health.max-tip-age",
            "60s",
            "--health.max-fleet-lag-blocks",
            "6",
        ])
        .unwrap();
        assert_eq!(low.drain_tip_age, Duration::from_secs(30));
        assert_eq!(low.drain_fleet_lag_blocks, 3);
        let at = health(&["--health.max-tip-age", "180s"]).unwrap();
        assert_eq!(at.drain_tip_age, Duration::from_secs(180));
        let explicit = health(&[
            "--health.max-tip-age",
            "60s",
            "--health.drain-tip-age",
            "50s",
        ])
        .unwrap();
        assert_eq!(explicit.drain_tip_age, Duration::from_secs(50));
    }

    #[test]
    fn an_explicit_drain_above_the_maximum_names_the_flag_given() {
        let error = health(&[
            "--health.max-tip-age",
            "60s",
            "--health.drain-tip-age",
            "90s",
        ])
        .unwrap_err();
        assert_eq!(error.flag, "--health.drain-tip-age");
        let error = health(&[
            "--health.max-fleet-lag-blocks",
            "5",
            "--health.drain-fleet-lag-blocks",
            "6",
        ])
        .unwrap_err();
        assert_eq!(error.flag, "--health.drain-fleet-lag-blocks");
    }

    #[test]
    fn tip_failure_grace_is_three_tip_intervals_unless_given() {
        assert_eq!(
            health(&[]).unwrap().tip_failure_grace,
            Duration::from_secs(15)
        );
        assert_eq!(
            health(&["--tip-interval", "2s"]).unwrap().tip_failure_grace,
            Duration::from_secs(6)
        );
        assert_eq!(
            health(&["--tip-interval", "2s", "--health.tip-failure-grace", "1m"])
                .unwrap()
                .tip_failure_grace,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn fleet_quorum_and_expected_version() {
        let defaults = health(&[]).unwrap();
        assert_eq!(defaults.fleet_quorum, 2);
        assert_eq!(defaults.grest_expected_version, None);
        let set = health(&[
            "--health.fleet-quorum",
            "1",
            "--grest.expected-version",
            "v1.3.2",
        ])
        .unwrap();
        assert_eq!(set.fleet_quorum, 1);
        assert_eq!(set.grest_expected_version.as_deref(), Some("v1.3.2"));
        let zero =
            Args::try_parse_from(["dbsync-exporter", "--health.fleet-quorum", "0"]).unwrap_err();
        assert!(zero.to_string().contains("--health.fleet-quorum"), "{zero}");
    }

    #[test]
    fn partial_chain_override_names_the_missing_flag() {
        let args = ChainArgs {
            byron_start: Some(1),
            byron_epoch_slots: Some(100),
            shelley_start_epoch: None,
            epoch_slots: Some(1000),
        };
        let error = chain_override(&args).unwrap_err();
        assert_eq!(error.flag, "--chain.shelley-start-epoch");
    }
}
