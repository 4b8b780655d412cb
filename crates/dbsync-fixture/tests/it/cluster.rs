//! Cluster management: reader role, concurrent database creation, stop/start.

use dbsync_fixture::{Cluster, TestDatabase};
use tokio::task::JoinSet;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

#[tokio::test]
async fn reader_can_read_but_not_write() {
    let db = Cluster::shared().create_database("reader").await;
    let admin = db.connect().await;
    admin
        .batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1);")
        .await
        .unwrap();

    let url = db.reader_url();
    assert!(url.starts_with("postgres://dbsync_reader:"));
    assert!(url.contains(TestDatabase::READER_PASSWORD));
    let reader = connect(&url).await.expect("reader connects with scram");
    let n: i64 = reader
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let denied = reader
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));
    let denied = reader
        .batch_execute("CREATE TABLE u (x int)")
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE));

    let wrong = url.replace(TestDatabase::READER_PASSWORD, "wrong-password");
    let err = connect(&wrong)
        .await
        .expect_err("wrong password is rejected");
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD));
}

#[tokio::test]
async fn pg_stat_statements_is_loaded() {
    let db = Cluster::shared().create_database("pgss").await;
    let client = db.connect().await;
    client.batch_execute("SELECT 42").await.unwrap();
    let n: i64 = client
        .query_one("SELECT count(*) FROM pg_stat_statements", &[])
        .await
        .unwrap()
        .get(0);
    assert!(n > 0);
}

#[tokio::test]
async fn concurrent_create_database() {
    let mut tasks = JoinSet::new();
    for _ in 0..8 {
        tasks.spawn(async { Cluster::shared().create_database("parallel").await.name });
    }
    let mut names = Vec::new();
    while let Some(name) = tasks.join_next().await {
        names.push(name.unwrap());
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 8);
    assert!(names.iter().all(|n| n.starts_with("parallel_")));
}

#[tokio::test]
async fn private_cluster_stops_and_starts_on_the_same_port() {
    let cluster = tokio::task::spawn_blocking(Cluster::start_private)
        .await
        .unwrap()
        .expect("private cluster starts");
    assert_eq!(cluster.host(), "127.0.0.1");
    let port = cluster.port();
    let db = cluster.create_database("private").await;
    let url = db.reader_url();
    connect(&url).await.expect("up");

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop().expect("stop");
        cluster
    })
    .await
    .unwrap();
    assert!(connect(&url).await.is_err(), "still accepting after stop");

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start().expect("start");
        cluster
    })
    .await
    .unwrap();
    assert_eq!(cluster.port(), port);
    let client = connect(&url).await.expect("up again with the same data");
    client.batch_execute("SELECT 1").await.unwrap();
    drop(client);
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();
    assert!(connect(&url).await.is_err(), "still accepting after drop");
}
