//! Turning parsed flags into the validated parts of a [`Config`]: the database connection
//! (URL, URL file or libpq variables), the health thresholds and how they compose, the peers
//! and the chain override. Each error names the flag the user gave.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::args::{ChainArgs, DatabaseArgs, HealthArgs, PeerArgs};
use super::libpq::{
    password_from_file, split_tls_params, tls_config, PasswordLookup, SslMode, TlsConfig,
};
use super::{ConfigError, HealthConfig, HumanDuration, PeerConfig};
use crate::chain::NetworkParams;

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

/// The peers given on the command line, validated.
pub(super) fn peer_config(args: &PeerArgs) -> Result<PeerConfig, ConfigError> {
    // Re-read every round later; a file that cannot be read at start is a typo, not an outage.
    if let Some(path) = &args.peers_file {
        std::fs::File::open(path).map_err(|error| {
            ConfigError::new(
                "--peers-file",
                format!("cannot read {}: {error}", path.display()),
            )
        })?;
    }
    Ok(PeerConfig {
        urls: args
            .peers
            .iter()
            .filter(|text| !text.trim().is_empty())
            .map(|text| parse_peer_url(text).map_err(|reason| ConfigError::new("--peer", reason)))
            .collect::<Result<_, _>>()?,
        file: args.peers_file.clone(),
        interval: args.interval.0,
        timeout: args.timeout.0,
        max: usize::from(args.max),
    })
}

/// Default drain tip age, unless the maximum is lower: then half of it.
const DEFAULT_DRAIN_TIP_AGE: Duration = Duration::from_secs(180);
/// Default drain fleet lag, unless the maximum is lower: then half of it.
const DEFAULT_DRAIN_FLEET_LAG_BLOCKS: u64 = 10;
/// Failed tip runs tolerated (in tip intervals) before the instance is down.
const TIP_FAILURE_GRACE_INTERVALS: u32 = 3;

pub(super) fn health_config(
    args: &HealthArgs,
    tip_interval: Duration,
) -> Result<HealthConfig, ConfigError> {
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

pub(super) fn database_config(
    args: &DatabaseArgs,
) -> Result<(tokio_postgres::Config, TlsConfig), ConfigError> {
    let env = |name: &str| std::env::var(name).ok();
    let (text, flag) = if let Some(path) = &args.database_url_file {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError::new(
                "--database-url-file",
                format!("cannot read {path}: {error}"),
            )
        })?;
        (Some(text.trim().to_owned()), "--database-url-file")
    } else {
        (args.database_url.clone(), "--database-url")
    };
    let (mut config, params) = match text {
        Some(text) => {
            let (rest, params) = split_tls_params(&text);
            (parse_url(&rest, flag)?, params)
        }
        None => (from_libpq_env(env), Default::default()),
    };
    let home = env("HOME").map(PathBuf::from);
    let tls = tls_config(&params, env, home.as_deref())
        .map_err(|reason| ConfigError::new(flag, reason))?;
    config.ssl_mode(match tls.mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    if config.get_password().is_none() {
        let file = env("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| home.map(|home| home.join(".pgpass")));
        if let Some(password) = file.and_then(|file| password_for(&config, &file)) {
            config.password(password);
        }
    }
    Ok((config, tls))
}

/// The password file's entry for the first host of `config`, as libpq looks it up.
fn password_for(config: &tokio_postgres::Config, file: &Path) -> Option<String> {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        // libpq matches a Unix socket as `localhost`.
        _ => "localhost".to_owned(),
    };
    let user = config.get_user()?;
    password_from_file(
        file,
        &PasswordLookup {
            host: &host,
            port: config.get_ports().first().copied().unwrap_or(5432),
            database: config.get_dbname().unwrap_or(user),
            user,
        },
    )
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

pub(super) fn chain_override(args: &ChainArgs) -> Result<Option<NetworkParams>, ConfigError> {
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
    use crate::config::{Args, Config};
    use clap::Parser;

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
