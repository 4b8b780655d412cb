//! The simulator's error type: what went wrong, with the server's own words for SQL errors.

/// Why a simulator command failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The database could not be reached.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// A statement failed; `what` names the step.
    #[error("{what}: {message}")]
    Sql {
        /// The step, e.g. `inserting blocks`.
        what: String,
        /// The server's message, detail and hint.
        message: String,
    },
    /// The request cannot be carried out on this database or with these options.
    #[error("{0}")]
    Invalid(String),
}

impl SimError {
    /// A connection error (the URL is never part of it).
    pub fn connect(e: &tokio_postgres::Error) -> SimError {
        SimError::Connect(describe(e))
    }

    /// Wraps a statement error with the step it happened in.
    pub fn sql(what: impl Into<String>, e: &tokio_postgres::Error) -> SimError {
        SimError::Sql {
            what: what.into(),
            message: describe(e),
        }
    }
}

/// Adds the step name to a `tokio_postgres` result.
pub trait Context<T> {
    /// Maps the error to [`SimError::Sql`] naming `what`.
    fn context(self, what: &str) -> Result<T, SimError>;
}

impl<T> Context<T> for Result<T, tokio_postgres::Error> {
    fn context(self, what: &str) -> Result<T, SimError> {
        self.map_err(|e| SimError::sql(what, &e))
    }
}

/// The server's message, detail and hint: tokio-postgres' `Display` alone says "db error".
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" (detail: {detail})"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!(" (hint: {hint})"));
            }
            text
        }
        None => e.to_string(),
    }
}
