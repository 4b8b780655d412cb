//! Why a database read failed, in classes the health policy and the metrics can act on.
//!
//! Every error from the pool, the driver or the server becomes one [`CheckError`] here, at
//! the lowest layer, so nothing above the database needs to know tokio-postgres' error
//! types. Messages never carry connection strings.

use deadpool_postgres::{PoolError, TimeoutType};
use tokio_postgres::error::SqlState;

use crate::error_text::with_causes;

/// Why a run failed. Messages never carry connection strings.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckError {
    /// No connection could be had (database down, refused, pool exhausted).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database is reachable but is not a db-sync database, or its schema does not match
    /// what the query expects (a missing table or column, a changed type).
    #[error("not a db-sync database: {0}")]
    NotDbSync(String),
    /// The role may not read what the check needs (`permission denied`).
    #[error("permission denied: {0}")]
    Permission(String),
    /// The check ran out of time (server-side statement/lock timeout, or the client's cap).
    #[error("timed out: {0}")]
    Timeout(String),
    /// A query failed for another reason.
    #[error("query failed: {0}")]
    Query(String),
    /// The check itself failed (it panicked); the scheduler caught it and keeps its schedule.
    #[error("internal error: {0}")]
    Internal(String),
    /// The data broke an assumption the check relies on.
    #[error("unexpected data: {0}")]
    Data(String),
}

impl From<tokio_postgres::Error> for CheckError {
    fn from(error: tokio_postgres::Error) -> CheckError {
        let message = describe(&error);
        let Some(code) = error.code() else {
            // Client-side errors: a row that does not have the column or the type the check
            // reads (`Row::try_get`) is a schema mismatch, the rest is the connection.
            if message.starts_with("error deserializing column")
                || message.starts_with("invalid column")
            {
                return CheckError::NotDbSync(message);
            }
            return CheckError::Unavailable(message);
        };
        let class = &code.code()[..2];
        if *code == SqlState::QUERY_CANCELED || *code == SqlState::LOCK_NOT_AVAILABLE {
            CheckError::Timeout(message)
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            CheckError::Permission(message)
        } else if [
            SqlState::UNDEFINED_TABLE,
            SqlState::UNDEFINED_COLUMN,
            SqlState::UNDEFINED_FUNCTION,
            SqlState::DATATYPE_MISMATCH,
            SqlState::CANNOT_COERCE,
            SqlState::UNDEFINED_OBJECT,
        ]
        .contains(code)
        {
            // The schema is not the one the query was written for.
            CheckError::NotDbSync(message)
        } else if matches!(class, "08" | "28" | "53" | "57" | "3D") {
            // Connection exceptions, authentication, resources, operator intervention and a
            // missing database: the database is not available to us, whatever the query.
            CheckError::Unavailable(message)
        } else {
            CheckError::Query(message)
        }
    }
}

/// The server's message for database errors; otherwise the error with its causes
/// ("error connecting to server: Connection refused (os error 111)"). Neither carries the
/// connection string.
fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return db.message().to_owned();
    }
    if error.is_closed() {
        return "connection closed".into();
    }
    tls_in_words(with_causes(error.to_string(), error))
}

/// rustls names certificate failures by enum variant; say them as libpq users know them.
fn tls_in_words(text: String) -> String {
    if text.contains("UnknownIssuer") {
        text.replace(
            "invalid peer certificate: UnknownIssuer",
            "certificate verify failed: unknown issuer",
        )
    } else if text.contains("not valid for name") || text.contains("NotValidForName") {
        text.replace("invalid peer certificate: ", "host name mismatch: ")
    } else {
        text
    }
}

impl From<PoolError> for CheckError {
    fn from(error: PoolError) -> CheckError {
        match error {
            PoolError::Backend(error) => CheckError::from(error),
            // Every pooled connection is busy with a slow query: the database answers, but
            // not in time. Not the same as a database that refuses connections.
            PoolError::Timeout(TimeoutType::Wait) => {
                CheckError::Timeout("no free pooled connection in time".into())
            }
            other => CheckError::Unavailable(other.to_string()),
        }
    }
}
