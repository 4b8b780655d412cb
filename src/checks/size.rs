//! `size`: the database facts Koios operators graph today (getmetrics.sh's `dbsize`,
//! `pubschsize` / `grestschsize` and `grestconns`): the database's size, the total size of
//! the `public` and `grest` schemas, and the server's client sessions on this database by
//! state.
//!
//! Only catalog functions and views are read (`pg_database_size`, `pg_total_relation_size`
//! over `pg_class`, `pg_stat_activity`): no db-sync table is scanned, which
//! `tests/it/size.rs` checks with `EXPLAIN`. Sizing a relation takes its `AccessShareLock`,
//! so while db-sync migrates a table the check waits at most the session's `lock_timeout`
//! and fails instead of queueing behind it. It runs on its own, slow interval.

use super::{Check, CheckError, CheckName, Context, Findings, Verdict};

/// Size of the current database in bytes (a walk over its files; no table is read).
pub const DATABASE_SIZE_SQL: &str = "SELECT pg_database_size(current_database())::bigint";

/// Total size (heap, indexes, TOAST) of the tables and materialised views of each schema
/// Koios operators watch; a schema that does not exist yields no row.
pub const SCHEMA_SIZE_SQL: &str = "SELECT n.nspname::text, \
     coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname IN ('public', 'grest') AND c.relkind IN ('r', 'm') \
     GROUP BY n.nspname ORDER BY n.nspname";

/// Client sessions on this database by state, server-wide (every role, not only this
/// pool). The state (and the backend type) of another role's session is hidden from a role
/// without `pg_read_all_stats`; those sessions are counted as `unknown`.
pub const CONNECTIONS_SQL: &str = "SELECT coalesce(state, 'unknown')::text, count(*)::bigint \
     FROM pg_catalog.pg_stat_activity \
     WHERE datname = current_database() \
     AND (backend_type = 'client backend' OR backend_type IS NULL) \
     GROUP BY 1 ORDER BY 1";

/// The states PostgreSQL reports in `pg_stat_activity.state`: always exported (0 when no
/// session is in them), so that a series does not vanish when its count drops to zero.
pub const SESSION_STATES: [&str; 6] = [
    "active",
    "disabled",
    "fastpath function call",
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
];

/// Sizes and sessions at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseSize {
    /// `pg_database_size` of the current database.
    pub database_bytes: i64,
    /// (schema, total relation size) for `public` and, when it exists, `grest`; by schema.
    pub schema_bytes: Vec<(String, i64)>,
    /// (state, sessions) for every state in [`SESSION_STATES`] and any other one seen
    /// (`unknown` for hidden states); by state.
    pub connections: Vec<(String, i64)>,
}

/// Reads the size and session facts.
#[derive(Default)]
pub struct SizeCheck;

impl Check for SizeCheck {
    fn name(&self) -> CheckName {
        CheckName::Size
    }

    async fn run(&mut self, ctx: Context<'_>) -> Result<Verdict, CheckError> {
        let tx = ctx.tx;
        let database_bytes = tx
            .query_one(&tx.prepare_cached(DATABASE_SIZE_SQL).await?, &[])
            .await?
            .try_get(0)?;
        let mut schema_bytes = Vec::new();
        for row in tx
            .query(&tx.prepare_cached(SCHEMA_SIZE_SQL).await?, &[])
            .await?
        {
            schema_bytes.push((row.try_get(0)?, row.try_get(1)?));
        }
        let mut connections: Vec<(String, i64)> = SESSION_STATES
            .iter()
            .map(|state| ((*state).to_owned(), 0))
            .collect();
        for row in tx
            .query(&tx.prepare_cached(CONNECTIONS_SQL).await?, &[])
            .await?
        {
            let (state, count): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
            match connections.iter_mut().find(|(known, _)| *known == state) {
                Some(slot) => slot.1 = count,
                None => connections.push((state, count)),
            }
        }
        connections.sort();
        Ok(Verdict::Found(Findings::Size(DatabaseSize {
            database_bytes,
            schema_bytes,
            connections,
        })))
    }
}
