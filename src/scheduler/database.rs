//! The production [`Runner`]: a pooled connection, the schema probe, and a read-only
//! transaction whose `statement_timeout` and `lock_timeout` are the check's own, so the
//! *server* stops a slow query.
//!
//! When the scheduler gives up on a run (its client-side cap, or shutdown) it drops the run's
//! future. The connection is then in an unknown state: the query is cancelled on the server
//! and the connection is taken out of the pool instead of being handed back.

use std::time::Duration;

use deadpool_postgres::Object;

use super::Runner;
use crate::checks::{Cadence, Check, CheckError, Context, Verdict};
use crate::db::{Database, Session};

impl Runner for Database {
    async fn run<C: Check>(&self, check: &mut C, cadence: Cadence) -> Result<Verdict, CheckError> {
        let mut guard = DiscardUnlessFinished {
            session: Some(self.session(cadence.timeout).await?),
            database: self,
        };
        let probed = if check.needs_fresh_schema() {
            self.refresh_schema(guard.session(), cadence.timeout).await
        } else {
            Ok(())
        };
        let lock_timeout = self.lock_timeout().min(cadence.timeout);
        let result = match probed {
            Ok(()) => {
                run_in_transaction(check, guard.session(), cadence.timeout, lock_timeout).await
            }
            Err(error) => Err(error),
        };
        // Errors the server reported leave the connection usable: back to the pool.
        guard.finish();
        result
    }
}

/// Holds a run's session; dropped before [`DiscardUnlessFinished::finish`] (the run's
/// future was dropped mid-query), it cancels the query and closes the connection.
struct DiscardUnlessFinished<'a> {
    session: Option<Session>,
    database: &'a Database,
}

impl DiscardUnlessFinished<'_> {
    fn session(&mut self) -> &mut Session {
        self.session
            .as_mut()
            .expect("the session is held until the run finishes")
    }

    /// The run ended normally: the connection goes back to the pool.
    fn finish(mut self) {
        drop(self.session.take());
    }
}

impl Drop for DiscardUnlessFinished<'_> {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let cancel = session.client.cancel_token();
        let tls = self.database.tls();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = cancel.cancel_query(tls).await;
            });
        }
        drop(Object::take(session.client));
    }
}

async fn run_in_transaction<C: Check>(
    check: &mut C,
    session: &mut Session,
    statement_timeout: Duration,
    lock_timeout: Duration,
) -> Result<Verdict, CheckError> {
    let schema = session.schema.clone();
    let tx = session
        .client
        .build_transaction()
        .read_only(true)
        .start()
        .await?;
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}",
        statement_timeout.as_millis().max(1),
        lock_timeout.as_millis().max(1),
    ))
    .await?;
    let verdict = check
        .run(Context {
            tx: &tx,
            schema: &schema,
        })
        .await?;
    tx.commit().await?;
    Ok(verdict)
}
