//! The size check against a real server: database and schema sizes equal what PostgreSQL
//! itself reports, sessions are counted by state (and hidden states as `unknown`), and none
//! of its queries scans a db-sync table.

use std::collections::BTreeMap;
use std::time::Duration;

use dbsync_exporter::checks::size::{CONNECTIONS_SQL, DATABASE_SIZE_SQL, SCHEMA_SIZE_SQL};
use dbsync_fixture::{grest_ddl, Cluster, SchemaVersion, TestDatabase};
use serde_json::Value;
use tokio_postgres::Client;

use crate::common::{chain, config, eventually, must, unix_now, value, Exporter};

/// Sessions on `db` by state, as a superuser connected elsewhere sees them.
async fn sessions(observer: &Client, db: &str) -> BTreeMap<String, i64> {
    observer
        .query(
            "SELECT coalesce(state, 'none'), count(*) FROM pg_stat_activity \
             WHERE datname = $1 AND backend_type = 'client backend' GROUP BY 1",
            &[&db],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// Opens `idle` idle superuser sessions and one idle in a transaction on `db`, and waits
/// until the server shows exactly those plus the `open` (idle) ones the test holds already.
pub async fn park_sessions(
    db: &TestDatabase,
    observer: &Client,
    idle: usize,
    open: usize,
) -> Vec<Client> {
    let mut parked = Vec::new();
    for _ in 0..idle {
        parked.push(db.connect().await);
    }
    let in_transaction = db.connect().await;
    in_transaction
        .batch_execute("BEGIN; SELECT 1")
        .await
        .unwrap();
    parked.push(in_transaction);
    let expected = BTreeMap::from([
        ("idle".to_owned(), (idle + open) as i64),
        ("idle in transaction".to_owned(), 1),
    ]);
    eventually(
        Duration::from_secs(30),
        "the parked sessions alone",
        || async { (sessions(observer, &db.name).await == expected).then_some(()) },
    )
    .await;
    parked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_are_the_servers_own_and_hidden_states_are_unknown() {
    let db = Cluster::shared().create_database("size").await;
    let fixture = chain(&db, SchemaVersion::V13_7, "mainnet", unix_now(), 5).await;
    fixture.execute(grest_ddl()).await;
    let admin = db.connect().await;
    // Leave autovacuum nothing to do (it would add free-space maps and statistics rows,
    // changing the size between our reading and the exporter's).
    admin.batch_execute("VACUUM (ANALYZE)").await.unwrap();
    // Written differently from the check: every table of the schema by name.
    let schema_bytes = |schema: &'static str| {
        let admin = &admin;
        async move {
            admin
                .query_one(
                    "SELECT sum(pg_total_relation_size(format('%I.%I', schemaname, tablename)::regclass))::bigint \
                     FROM pg_tables WHERE schemaname = $1",
                    &[&schema],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    let (public, grest) = (schema_bytes("public").await, schema_bytes("grest").await);
    assert!(public > 0 && grest > 0);
    let observer = Cluster::shared()
        .create_database("size_observer")
        .await
        .connect()
        .await;
    let _parked = park_sessions(&db, &observer, 2, 2).await;

    // The fixture's reader role may not see superusers' session states; one pooled
    // connection, so the exporter's own session is exactly one, active while it counts.
    let mut settings = config(&db.reader_url());
    settings.db.pool_size = 1;
    let exporter = Exporter::start(settings).await;
    let body = eventually(
        Duration::from_secs(30),
        "the size check's first run",
        || async {
            let body = exporter.metrics().await;
            value(&body, "dbsync_database_size_bytes").map(|_| body)
        },
    )
    .await;
    assert_eq!(must(&body, "dbsync_check_success{check=\"size\"}"), 1.0);
    assert_eq!(
        must(&body, "dbsync_check_interval_seconds{check=\"size\"}"),
        300.0
    );
    // Read after the exporter's: the first session after VACUUM rewrites the relation cache
    // file (pg_internal.init), which pg_database_size counts too.
    let database_bytes: i64 = admin
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        must(&body, "dbsync_database_size_bytes"),
        database_bytes as f64
    );
    assert_eq!(
        must(&body, "dbsync_schema_size_bytes{schema=\"public\"}"),
        public as f64
    );
    assert_eq!(
        must(&body, "dbsync_schema_size_bytes{schema=\"grest\"}"),
        grest as f64
    );
    let connections: BTreeMap<&str, f64> = body
        .lines()
        .filter_map(|line| line.strip_prefix("dbsync_database_connections{state=\""))
        .filter_map(|rest| rest.split_once("\"} "))
        .map(|(state, count)| (state, count.parse().unwrap()))
        .collect();
    assert_eq!(
        connections,
        BTreeMap::from([
            ("active", 1.0),
            ("disabled", 0.0),
            ("fastpath function call", 0.0),
            ("idle", 0.0),
            ("idle in transaction", 0.0),
            ("idle in transaction (aborted)", 0.0),
            // The fixture's session and ours, two parked idle ones, one idle in a transaction.
            ("unknown", 5.0),
        ])
    );
    exporter.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_grest_only_public_is_sized() {
    let db = Cluster::shared().create_database("size_plain").await;
    let _fixture = chain(&db, SchemaVersion::V13_6, "mainnet", unix_now(), 3).await;
    let exporter = Exporter::start(config(&db.reader_url())).await;
    let body = eventually(
        Duration::from_secs(30),
        "the size check's first run",
        || async {
            let body = exporter.metrics().await;
            value(&body, "dbsync_schema_size_bytes{schema=\"public\"}").map(|_| body)
        },
    )
    .await;
    let schemas: Vec<&str> = body
        .lines()
        .filter(|line| line.starts_with("dbsync_schema_size_bytes{"))
        .collect();
    assert_eq!(schemas.len(), 1, "{schemas:?}");
    exporter.shutdown().await;
}

/// Every relation a plan reads, as `schema.name`.
fn scanned(plan: &Value, found: &mut Vec<String>) {
    match plan {
        Value::Object(node) => {
            if let (Some(Value::String(name)), Some(Value::String(schema))) =
                (node.get("Relation Name"), node.get("Schema"))
            {
                found.push(format!("{schema}.{name}"));
            }
            node.values().for_each(|child| scanned(child, found));
        }
        Value::Array(items) => items.iter().for_each(|child| scanned(child, found)),
        _ => {}
    }
}

/// The queries read the catalog only: on a database holding every db-sync table (and
/// grest's), their plans touch no relation outside `pg_catalog`.
#[tokio::test]
async fn the_size_queries_scan_no_dbsync_table() {
    let db = Cluster::shared().create_database("size_explain").await;
    let fixture = chain(&db, SchemaVersion::V13_7, "mainnet", unix_now(), 3).await;
    fixture.execute(grest_ddl()).await;
    let client = db.connect().await;
    let mut plans = BTreeMap::new();
    for (name, sql) in [
        ("database", DATABASE_SIZE_SQL),
        ("schemas", SCHEMA_SIZE_SQL),
        ("connections", CONNECTIONS_SQL),
    ] {
        let messages = client
            .simple_query(&format!("EXPLAIN (VERBOSE, FORMAT JSON) {sql}"))
            .await
            .unwrap();
        let text = messages
            .iter()
            .find_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0),
                _ => None,
            })
            .unwrap();
        let plan: Value = serde_json::from_str(text).unwrap();
        let mut found = Vec::new();
        scanned(&plan, &mut found);
        found.sort();
        found.dedup();
        plans.insert(name, found);
    }
    assert_eq!(
        plans,
        BTreeMap::from([
            ("database", vec![]),
            (
                "schemas",
                vec![
                    "pg_catalog.pg_class".to_owned(),
                    "pg_catalog.pg_namespace".to_owned()
                ]
            ),
            ("connections", vec!["pg_catalog.pg_database".to_owned()]),
        ])
    );
}
