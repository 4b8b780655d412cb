//! The checks: what each one asks the database, and the typed findings it returns.
//!
//! A check is a small state machine owned by its own scheduler task (so it can remember the
//! previous run without locks). Each run gets a read-only transaction with server-side
//! timeouts and returns a [`Verdict`]: findings to publish, or the reason the check does not
//! apply to this database. One file per check.

pub mod info;
pub mod rollback;
pub mod tip;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{PoolError, Transaction};
use tokio_postgres::error::SqlState;

use crate::db::Schema;

pub use info::{Info, InfoCheck};
pub use rollback::{RollbackCheck, RollbackStats};
pub use tip::{Tip, TipCheck};

/// Every check the exporter knows; the value of the `check` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckName {
    /// Newest block.
    Tip,
    /// Rollback detection.
    Rollback,
    /// Schema, network, epoch sync time.
    Info,
}

impl CheckName {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Tip => "tip",
            CheckName::Rollback => "rollback",
            CheckName::Info => "info",
        }
    }
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a check found, by check. Typed, so that the metrics encoder, the health policy and
/// `/tip` each read exactly the fields they need.
#[derive(Clone, Debug, PartialEq)]
pub enum Findings {
    /// From [`TipCheck`].
    Tip(Tip),
    /// From [`RollbackCheck`].
    Rollback(RollbackStats),
    /// From [`InfoCheck`].
    Info(Info),
}

/// The result of one successful run.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Publish these findings.
    Found(Findings),
    /// The check cannot apply to this database (with the reason, logged once).
    NotApplicable(String),
}

/// How a run ended; the `outcome` label of `dbsync_check_runs_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The check ran to the end (applicable or not).
    Success,
    /// The database refused, broke or is unreachable.
    Error,
    /// The server cancelled the query at the check's timeout (or the client gave up).
    Timeout,
}

impl Outcome {
    /// All outcomes, in exposition order.
    pub const ALL: [Outcome; 3] = [Outcome::Success, Outcome::Error, Outcome::Timeout];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
        }
    }
}

/// Why a run failed. Messages never carry connection strings.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckError {
    /// No connection could be had (database down, refused, pool exhausted).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database is reachable but is not a db-sync database.
    #[error("not a db-sync database: {0}")]
    NotDbSync(String),
    /// The check ran out of time (server-side statement/lock timeout, or the client's cap).
    #[error("timed out: {0}")]
    Timeout(String),
    /// A query failed for another reason.
    #[error("query failed: {0}")]
    Query(String),
    /// The data broke an assumption the check relies on.
    #[error("unexpected data: {0}")]
    Data(String),
}

impl CheckError {
    /// The outcome label this error counts under.
    pub fn outcome(&self) -> Outcome {
        match self {
            CheckError::Timeout(_) => Outcome::Timeout,
            _ => Outcome::Error,
        }
    }
}

impl From<tokio_postgres::Error> for CheckError {
    fn from(error: tokio_postgres::Error) -> CheckError {
        match error.code() {
            Some(code)
                if *code == SqlState::QUERY_CANCELED || *code == SqlState::LOCK_NOT_AVAILABLE =>
            {
                CheckError::Timeout(
                    error
                        .as_db_error()
                        .map_or_else(|| error.to_string(), |db| db.message().to_owned()),
                )
            }
            Some(code)
                if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::UNDEFINED_COLUMN =>
            {
                CheckError::NotDbSync(
                    error
                        .as_db_error()
                        .map_or_else(|| error.to_string(), |db| db.message().to_owned()),
                )
            }
            Some(_) => CheckError::Query(
                error
                    .as_db_error()
                    .map_or_else(|| error.to_string(), |db| db.message().to_owned()),
            ),
            None if error.is_closed() => CheckError::Unavailable("connection closed".into()),
            None => CheckError::Unavailable(error.to_string()),
        }
    }
}

impl From<PoolError> for CheckError {
    fn from(error: PoolError) -> CheckError {
        match error {
            PoolError::Backend(error) => CheckError::from(error),
            other => CheckError::Unavailable(other.to_string()),
        }
    }
}

/// What a run may use.
pub struct Context<'a> {
    /// A read-only transaction with this check's timeouts set.
    pub tx: &'a Transaction<'a>,
    /// The probed schema.
    pub schema: &'a Schema,
}

/// A background check.
pub trait Check: Send + 'static {
    /// Its name (the `check` label).
    fn name(&self) -> CheckName;

    /// Whether the schema must be probed afresh before each run (the info check reports it).
    fn needs_fresh_schema(&self) -> bool {
        false
    }

    /// One run.
    fn run(&mut self, ctx: Context<'_>)
        -> impl Future<Output = Result<Verdict, CheckError>> + Send;
}

/// Settings the scheduler applies to one check.
#[derive(Clone, Copy, Debug)]
pub struct Cadence {
    /// Time between the starts of two runs.
    pub interval: Duration,
    /// Longest run; enforced by the server (`statement_timeout`) and, as a backstop, the client.
    pub timeout: Duration,
}
