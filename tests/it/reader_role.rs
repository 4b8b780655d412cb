//! `deploy/postgres/reader-role.sql`, applied with the real `psql` on the db-sync schema with
//! Koios' grest schema: the exporter runs as the role with every check succeeding, sees
//! every session's state, and the role can neither write nor open a sixth session.
//!
//! Both grant modes run in one test, one after the other: the role is cluster-wide.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dbsync_fixture::{grest_ddl, Cluster, Fixture, SchemaVersion, TestDatabase};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::common::{chain, config, eventually, must, unix_now, value, Exporter};
use crate::size::park_sessions;

const ROLE: &str = "dbsync_exporter";
const PASSWORD: &str = "role-test-Pa55word";
/// Every check the exporter registers.
const CHECKS: [&str; 18] = [
    "tip",
    "rollback",
    "info",
    "grest",
    "mir",
    "pool_refunds",
    "ada_pots",
    "epoch_stake",
    "block_tx_counts",
    "pool_owners",
    "tx_balance",
    "tx_in_double_spends",
    "withdrawals",
    "block_number_gaps",
    "block_time_disorder",
    "blocks_in_future",
    "epoch_table",
    "size",
];

fn psql() -> std::path::PathBuf {
    let versioned = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|dir| dir.path().join("bin/psql"))
                .find(|path| path.exists())
        });
    versioned.unwrap_or_else(|| "psql".into())
}

/// Runs the script like an operator; returns its NOTICE lines.
fn apply(db: &TestDatabase, grants: Option<&str>) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/postgres/reader-role.sql");
    let mut command = Command::new(psql());
    command.args([
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        &db.superuser_url(),
        "-f",
    ]);
    command.arg(&script);
    if let Some(grants) = grants {
        command.args(["-v", &format!("grants={grants}")]);
    }
    let output = command.output().expect("psql runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "reader-role.sql failed: {stderr}");
    stderr
        .lines()
        .filter(|line| line.starts_with("psql:") && line.contains("NOTICE"))
        .map(|line| line.split("NOTICE:  ").nth(1).unwrap_or(line).to_owned())
        .collect()
}

fn role_url(db: &TestDatabase) -> String {
    db.reader_url().replace(
        &format!("dbsync_reader:{}", TestDatabase::READER_PASSWORD),
        &format!("{ROLE}:{PASSWORD}"),
    )
}

async fn connect_as_role(db: &TestDatabase) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(&role_url(db), NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A Koios-flavoured db-sync database: the 13.7 schema, a short chain, grest's table.
async fn koios_database(prefix: &str) -> (TestDatabase, Fixture) {
    let db = Cluster::shared().create_database(prefix).await;
    let fixture = chain(&db, SchemaVersion::V13_7, "mainnet", unix_now(), 5).await;
    fixture.execute(grest_ddl()).await;
    fixture
        .execute("INSERT INTO grest.control_table (key, last_value) VALUES ('version', 'v1.3.2')")
        .await;
    (db, fixture)
}

/// The exporter as the role: every check's first run succeeds, none failed; returns the
/// scrape.
async fn every_check_succeeds(db: &TestDatabase) -> String {
    let mut settings = config(&role_url(db));
    settings.db.pool_size = 1;
    let exporter = Exporter::start(settings).await;
    let body = eventually(
        Duration::from_secs(60),
        "every check's first success",
        || async {
            let body = exporter.metrics().await;
            CHECKS
                .iter()
                .all(|check| {
                    value(&body, &format!("dbsync_check_success{{check=\"{check}\"}}")) == Some(1.0)
                })
                .then_some(body)
        },
    )
    .await;
    for check in CHECKS {
        for outcome in ["error", "timeout"] {
            assert_eq!(
                must(
                    &body,
                    &format!("dbsync_check_runs_total{{check=\"{check}\",outcome=\"{outcome}\"}}")
                ),
                0.0,
                "{check} {outcome}"
            );
        }
    }
    assert_eq!(must(&body, "dbsync_up"), 1.0);
    assert_eq!(must(&body, "dbsync_block_height"), 1004.0);
    exporter.shutdown().await;
    body
}

/// Each write is refused for lack of privilege, even with the session made writable.
async fn cannot_write(db: &TestDatabase) {
    let client = connect_as_role(db).await.unwrap();
    let read_only: String = client
        .query_one("SHOW default_transaction_read_only", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(read_only, "on", "the role's sessions start read-only");
    client
        .batch_execute("SET default_transaction_read_only = off")
        .await
        .unwrap();
    for sql in [
        "INSERT INTO meta (start_time, network_name, version) VALUES (now(), 'x', 'x')",
        "UPDATE block SET slot_no = 0",
        "DELETE FROM block",
        "TRUNCATE block",
        "CREATE TABLE public.exporter_was_here (id int)",
        "CREATE TABLE grest.exporter_was_here (id int)",
        "INSERT INTO grest.control_table (key, last_value) VALUES ('x', 'y')",
        "CREATE SCHEMA exporter_was_here",
    ] {
        let error = client.batch_execute(sql).await.unwrap_err();
        assert_eq!(
            error.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_role_reads_everything_and_writes_nothing() {
    let observer = Cluster::shared()
        .create_database("role_observer")
        .await
        .connect()
        .await;

    // PostgreSQL < 14's path, forced: schema grants and default privileges.
    let (narrow, narrow_fixture) = koios_database("role_schemas").await;
    assert_eq!(
        apply(&narrow, Some("schemas")),
        ["dbsync_exporter: USAGE and SELECT on public and grest"]
    );
    narrow_fixture
        .execute(&format!("ALTER ROLE {ROLE} PASSWORD '{PASSWORD}'"))
        .await;
    every_check_succeeds(&narrow).await;
    cannot_write(&narrow).await;
    // A table db-sync or Koios adds on upgrade (created by the owner) is readable at once.
    narrow_fixture
        .execute("CREATE TABLE public.added_on_upgrade (id int); CREATE TABLE grest.added_cache (id int)")
        .await;
    let client = connect_as_role(&narrow).await.unwrap();
    for table in ["public.added_on_upgrade", "grest.added_cache"] {
        let rows: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 0, "{table}");
    }
    drop(client);

    // The default on PostgreSQL 14 and later: pg_read_all_data.
    let (db, _fixture) = koios_database("role_auto").await;
    let notices = apply(&db, None);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].starts_with("dbsync_exporter: pg_read_all_data (PostgreSQL 1"),
        "{notices:?}"
    );
    let row = role_attributes(&db).await;
    assert_eq!(row, (true, false, false, false, 5));
    cannot_write(&db).await;

    // pg_read_all_stats: the exporter tells the state of other roles' sessions.
    let parked = park_sessions(&db, &observer, 2, 1).await;
    let body = every_check_succeeds(&db).await;
    for (state, count) in [("active", 1.0), ("idle", 3.0), ("idle in transaction", 1.0)] {
        assert_eq!(
            must(
                &body,
                &format!("dbsync_database_connections{{state=\"{state}\"}}")
            ),
            count,
            "{state}"
        );
    }
    assert_eq!(
        value(&body, "dbsync_database_connections{state=\"unknown\"}"),
        None
    );
    drop(parked);

    // CONNECTION LIMIT 5: once the exporter's sessions are gone, five open and a sixth is
    // refused.
    eventually(
        Duration::from_secs(30),
        "no session of the role",
        || async {
            let rows = observer
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
                    &[&ROLE],
                )
                .await
                .unwrap();
            (rows.get::<_, i64>(0) == 0).then_some(())
        },
    )
    .await;
    let mut five = Vec::new();
    for _ in 0..5 {
        five.push(connect_as_role(&db).await.unwrap());
    }
    let sixth = connect_as_role(&db).await.map(|_| ()).unwrap_err();
    assert_eq!(
        sixth.code(),
        Some(&SqlState::TOO_MANY_CONNECTIONS),
        "{sixth}"
    );
}

/// (login, superuser, createdb, createrole, connection limit) of the role.
async fn role_attributes(db: &TestDatabase) -> (bool, bool, bool, bool, i32) {
    let client = db.connect().await;
    let row = client
        .query_one(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolconnlimit \
             FROM pg_roles WHERE rolname = $1",
            &[&ROLE],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}
