//! Log set-up: an `EnvFilter` from `--log-level` and a plain or JSON formatter on stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{ConfigError, LogFormat};

/// Installs the global subscriber.
pub fn init(level: &str, format: LogFormat) -> Result<(), ConfigError> {
    let filter = EnvFilter::try_new(level).map_err(|error| ConfigError {
        flag: "--log-level",
        reason: error.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}
