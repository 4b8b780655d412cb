//! Command-line flags, their `DBSYNC_EXPORTER_*` environment twins, and validation into an
//! immutable [`Config`].
//!
//! Everything that can be wrong with the configuration is found here, before any I/O, and
//! reported as one line naming the flag. The database password is never part of an error,
//! a log line or `--help` (env values are hidden, the URL is parsed outside clap so clap
//! never echoes it). Defaults are written once, in the flag definitions ([`Args`]); the
//! [`Config`] groups mirror the flag groups.

mod args;
mod duration;
pub mod libpq;
mod validate;

use std::net::SocketAddr;
use std::time::Duration;

pub use args::{
    parse_listen_address, AgentArgs, Args, ChainArgs, CheckArgs, DatabaseArgs, HealthArgs, LogArgs,
    LogFormat, PeerArgs, WebArgs,
};
pub use duration::HumanDuration;
pub use validate::{from_libpq_env, parse_peer_url};

use crate::chain::NetworkParams;

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
    /// The database and how gently to use it.
    pub db: DbConfig,
    /// The HTTP listener.
    pub web: WebConfig,
    /// Check cadence and limits.
    pub checks: ChecksConfig,
    /// Health thresholds.
    pub health: HealthConfig,
    /// HAProxy agent listener and weights.
    pub agent: AgentConfig,
    /// Peers to compare the tip with.
    pub peers: PeerConfig,
    /// Chain constants given on the command line, overriding the network's own.
    pub chain_override: Option<NetworkParams>,
}

/// The database connection and the pool.
#[derive(Clone)]
pub struct DbConfig {
    /// Connection settings; holds the password, so never formatted with `{:?}`.
    pub connection: tokio_postgres::Config,
    /// Pool size.
    pub pool_size: usize,
    /// Connect and pool-wait timeout.
    pub connect_timeout: Duration,
    /// Server-side lock wait limit.
    pub lock_timeout: Duration,
    /// TLS to the server (libpq's sslmode and certificate files).
    pub tls: libpq::TlsConfig,
}

/// The HTTP listener and its limits.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// HTTP listen address.
    pub listen_address: SocketAddr,
    /// Longest time to receive a request's headers.
    pub header_read_timeout: Duration,
    /// Keep-alive connections idle this long are closed.
    pub idle_timeout: Duration,
    /// A request whose answer makes no progress this long is cut off.
    pub request_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long in-flight requests may finish after a stop signal.
    pub shutdown_timeout: Duration,
    /// `--web.config.file`.
    pub config_file: Option<std::path::PathBuf>,
    /// The unauthenticated /health listener, when set.
    pub health_listen_address: Option<SocketAddr>,
}

/// How often each check runs and how long a run may take.
#[derive(Clone, Debug)]
pub struct ChecksConfig {
    /// Tip and rollback check interval.
    pub tip_interval: Duration,
    /// Info check interval.
    pub info_interval: Duration,
    /// Timeout of the tip, rollback, info, grest and size checks.
    pub check_timeout: Duration,
    /// Koios cache check interval.
    pub grest_interval: Duration,
    /// Size check interval.
    pub size_interval: Duration,
    /// Interval of the integrity checks.
    pub integrity_interval: Duration,
    /// How often the integrity checks examine the whole history again.
    pub integrity_full_interval: Duration,
    /// Timeout of an integrity check run.
    pub integrity_timeout: Duration,
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

/// The HAProxy agent.
#[derive(Clone, Debug)]
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
    /// Timeout of one whole peer request (connect, headers and body).
    pub timeout: Duration,
    /// Most peers polled.
    pub max: usize,
}

impl Config {
    /// Validates parsed flags into a configuration, reading the URL file and PG* variables.
    pub fn from_args(args: Args) -> Result<Config, ConfigError> {
        let checks = ChecksConfig {
            tip_interval: args.checks.tip_interval.0,
            info_interval: args.checks.info_interval.0,
            check_timeout: args.checks.check_timeout.0,
            grest_interval: args.checks.grest_interval.0,
            size_interval: args.checks.size_interval.0,
            integrity_interval: args.checks.integrity_interval.0,
            integrity_full_interval: args.checks.integrity_full_interval.0,
            integrity_timeout: args.checks.integrity_timeout.0,
        };
        let (connection, tls) = validate::database_config(&args.database)?;
        if let Some(path) = &args.web.config_file {
            std::fs::File::open(path).map_err(|error| {
                ConfigError::new(
                    "--web.config.file",
                    format!("cannot read {}: {error}", path.display()),
                )
            })?;
        }
        Ok(Config {
            db: DbConfig {
                connection,
                tls,
                pool_size: usize::from(args.database.pool_size),
                connect_timeout: args.database.connect_timeout.0,
                lock_timeout: args.database.lock_timeout.0,
            },
            web: WebConfig {
                listen_address: args.web.listen_address,
                header_read_timeout: args.web.header_read_timeout.0,
                idle_timeout: args.web.idle_timeout.0,
                request_timeout: args.web.request_timeout.0,
                max_connections: args.web.max_connections as usize,
                shutdown_timeout: args.web.shutdown_timeout.0,
                config_file: args.web.config_file,
                health_listen_address: args.web.health_listen_address,
            },
            health: validate::health_config(&args.health, checks.tip_interval)?,
            checks,
            agent: AgentConfig {
                listen_address: args.agent.listen_address,
                weight_follows_lag: args.agent.weight_follows_lag,
            },
            peers: validate::peer_config(&args.peers)?,
            chain_override: validate::chain_override(&args.chain)?,
        })
    }

    /// Every flag at its default, with `connection` as the database; for tests and embedding.
    pub fn with_database(connection: tokio_postgres::Config) -> Config {
        let mut config = Config::defaults();
        config.db.connection = connection;
        config
    }

    /// Every flag at its default (the environment is not read).
    fn defaults() -> Config {
        Config::from_args(Args::defaults()).expect("the flag defaults are a valid configuration")
    }

    /// The longest timeout of any check: the connection-wide `statement_timeout` cap.
    pub fn max_check_timeout(&self) -> Duration {
        self.checks.check_timeout.max(self.checks.integrity_timeout)
    }
}

impl Default for HealthConfig {
    /// The flags' defaults.
    fn default() -> HealthConfig {
        Config::defaults().health
    }
}

impl Default for AgentConfig {
    /// The flags' defaults.
    fn default() -> AgentConfig {
        Config::defaults().agent
    }
}

impl Default for PeerConfig {
    /// The flags' defaults.
    fn default() -> PeerConfig {
        Config::defaults().peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_flag_definitions() {
        let config = Config::defaults();
        assert_eq!(config.db.pool_size, 3);
        assert_eq!(config.db.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.db.lock_timeout, Duration::from_secs(1));
        assert_eq!(
            config.web.listen_address,
            SocketAddr::from(([0, 0, 0, 0], 9895))
        );
        assert_eq!(config.checks.tip_interval, Duration::from_secs(5));
        assert_eq!(
            config.checks.integrity_full_interval,
            Duration::from_secs(86_400)
        );
        assert_eq!(config.health.tip_failure_grace, Duration::from_secs(15));
        assert_eq!(config.peers.interval, Duration::from_secs(15));
        assert_eq!(config.max_check_timeout(), Duration::from_secs(120));
    }
}
