//! The command line: every flag, its `DBSYNC_EXPORTER_*` environment twin, and its default.
//!
//! These definitions are the only place a default is written; [`Args::defaults`] parses an
//! empty command line to get them for tests and embedding. Values that may hold a secret are
//! hidden from `--help` and never echoed by clap.

use std::net::SocketAddr;

use clap::{Args as ClapArgs, CommandFactory, FromArgMatches, Parser, ValueEnum};

use super::HumanDuration;

/// Prometheus exporter and health sidecar for cardano-db-sync.
///
/// Runs its checks against the db-sync database in the background and serves the cached
/// results on /metrics, /health and /tip; scrapes never touch the database.
#[derive(Debug, Parser)]
// Values may start with a hyphen so that `-1s` reaches the value parser, whose error names
// the flag, instead of clap taking it for an unknown flag.
#[command(name = "dbsync-exporter", version, about, long_about = None, allow_hyphen_values = true)]
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

    /// Longest time a client may take to send a request's headers (slowloris guard).
    #[arg(
        long = "web.header-read-timeout",
        env = "DBSYNC_EXPORTER_WEB_HEADER_READ_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub header_read_timeout: HumanDuration,

    /// A keep-alive connection with no request for this long is closed.
    #[arg(
        long = "web.idle-timeout",
        env = "DBSYNC_EXPORTER_WEB_IDLE_TIMEOUT",
        default_value = "60s",
        value_name = "DURATION"
    )]
    pub idle_timeout: HumanDuration,

    /// A request whose answer makes no progress for this long (a client that stops reading)
    /// is cut off.
    #[arg(
        long = "web.request-timeout",
        env = "DBSYNC_EXPORTER_WEB_REQUEST_TIMEOUT",
        default_value = "30s",
        value_name = "DURATION"
    )]
    pub request_timeout: HumanDuration,

    /// Most HTTP connections open at once; at the cap the oldest connection that is not being
    /// answered (idle, or still sending its request) is closed to admit the new one.
    #[arg(
        long = "web.max-connections",
        env = "DBSYNC_EXPORTER_WEB_MAX_CONNECTIONS",
        default_value_t = 512,
        value_parser = clap::value_parser!(u32).range(1..),
        value_name = "N"
    )]
    pub max_connections: u32,

    /// After SIGTERM/SIGINT, how long requests in flight may finish before every connection
    /// is closed and the process exits.
    #[arg(
        long = "web.shutdown-timeout",
        env = "DBSYNC_EXPORTER_WEB_SHUTDOWN_TIMEOUT",
        default_value = "5s",
        value_name = "DURATION"
    )]
    pub shutdown_timeout: HumanDuration,

    /// TLS and basic auth for the HTTP listener, in prometheus/exporter-toolkit's web config
    /// format (re-read when it changes and on SIGHUP).
    #[arg(
        long = "web.config.file",
        env = "DBSYNC_EXPORTER_WEB_CONFIG_FILE",
        value_name = "PATH"
    )]
    pub config_file: Option<std::path::PathBuf>,

    /// A second, plain and unauthenticated listener with only /health and /live, for load
    /// balancers that cannot send credentials (bind it to an address only they reach).
    #[arg(
        id = "health_listen_address",
        long = "web.health-listen-address",
        env = "DBSYNC_EXPORTER_WEB_HEALTH_LISTEN_ADDRESS",
        value_parser = parse_listen_address,
        value_name = "ADDRESS"
    )]
    pub health_listen_address: Option<SocketAddr>,
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

    /// How often the size check reads the database and schema sizes and the sessions by
    /// state (catalog functions only, never a db-sync table).
    #[arg(
        long = "size-interval",
        env = "DBSYNC_EXPORTER_SIZE_INTERVAL",
        default_value = "5m",
        value_name = "DURATION"
    )]
    pub size_interval: HumanDuration,

    /// Longest run of the tip, rollback, info, grest and size checks; the server cancels the query after it.
    #[arg(
        long = "check-timeout",
        env = "DBSYNC_EXPORTER_CHECK_TIMEOUT",
        default_value = "10s",
        value_name = "DURATION"
    )]
    pub check_timeout: HumanDuration,

    /// How often the integrity checks (mir, pool_refunds, ada_pots, epoch_stake,
    /// block_tx_counts, pool_owners, block_number_gaps, block_time_disorder, blocks_in_future,
    /// epoch_table) run; after the first run they only re-examine the epochs that can have
    /// changed.
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

    /// Most peers polled (flags and file together); more are ignored with a warning, so a
    /// long or runaway peers file cannot make each round unbounded.
    #[arg(
        long = "peer.max",
        env = "DBSYNC_EXPORTER_PEER_MAX",
        default_value_t = 64,
        value_parser = clap::value_parser!(u16).range(1..),
        value_name = "N"
    )]
    pub max: u16,
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
    /// Log filter: a level (error, warn, info, debug, trace, off) or a comma-separated list of
    /// `target=level` directives with optional levels (`info,dbsync_exporter=debug`).
    #[arg(
        long = "log-level",
        env = "DBSYNC_EXPORTER_LOG_LEVEL",
        default_value = "info",
        value_parser = parse_log_level
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

const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// A log filter whose every directive ends in a level: a bare word like `nonsense` is a valid
/// tracing target and would silence every log line, so it is refused instead.
pub fn parse_log_level(text: &str) -> Result<String, String> {
    for directive in text.split(',').map(str::trim) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "`{directive}` does not end in a level (error, warn, info, debug, trace, off)"
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(text).map_err(|error| error.to_string())?;
    Ok(text.to_owned())
}

impl Args {
    /// Every flag at its default, ignoring the environment.
    pub fn defaults() -> Args {
        let command = Args::command().mut_args(|arg| arg.env(None::<&str>));
        let matches = command
            .try_get_matches_from(["dbsync-exporter"])
            .expect("an empty command line parses");
        Args::from_arg_matches(&matches).expect("an empty command line parses")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
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
    fn log_levels_must_name_a_level() {
        for good in [
            "info",
            "DEBUG",
            "info,dbsync_exporter=debug",
            "warn,hyper=off",
        ] {
            assert_eq!(parse_log_level(good).as_deref(), Ok(good));
        }
        for bad in ["nonsense", "info,hyper", "dbsync_exporter=loud", ""] {
            assert!(parse_log_level(bad).is_err(), "{bad}");
        }
    }
}
