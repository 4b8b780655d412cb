//! Never hurting the database, and surviving it: the session guard, server-side timeouts,
//! a database that is down, scrapes that cost nothing, and secrets that never leak.

use std::process::{Command, Stdio};
use std::time::Duration;

use dbsync_exporter::db::{Database, APPLICATION_NAME};
use dbsync_fixture::{Cluster, SchemaVersion, TestDatabase};
use reqwest::StatusCode;
use tokio_postgres::error::SqlState;

use crate::common::{
    chain, config, eventually, finished_runs, must, unix_now, value, wait_for_at_least,
    wait_for_value, Exporter,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_guard_refuses_writes_even_for_a_superuser() {
    let db = Cluster::shared().create_database("guard").await;
    let _fixture = chain(&db, SchemaVersion::V13_6, "mainnet", unix_now(), 2).await;
    let mut settings = config(&db.superuser_url());
    settings.checks.check_timeout = Duration::from_secs(3);
    settings.checks.integrity_timeout = Duration::from_secs(5);
    // The connection-wide cap is the longest check timeout.
    assert_eq!(settings.max_check_timeout(), Duration::from_secs(5));
    let database = Database::new(&settings).unwrap();
    let client = database.pool().get().await.unwrap();
    for write in [
        "CREATE TABLE intruder (id int)",
        "DELETE FROM block",
        "INSERT INTO meta (start_time, network_name, version) VALUES (now(), 'x', 'y')",
    ] {
        let error = client.batch_execute(write).await.unwrap_err();
        assert_eq!(
            error.code(),
            Some(&SqlState::READ_ONLY_SQL_TRANSACTION),
            "{write}: {error}"
        );
    }
    let settings = client
        .query_one("SELECT current_setting('application_name'), current_setting('statement_timeout'), current_setting('lock_timeout'), current_setting('jit')", &[])
        .await
        .unwrap();
    assert_eq!(settings.get::<_, String>(0), APPLICATION_NAME);
    assert_eq!(settings.get::<_, String>(1), "5s");
    assert_eq!(settings.get::<_, String>(2), "1s");
    assert_eq!(settings.get::<_, String>(3), "off");
    // The guard survives what a recycled connection may run.
    client.batch_execute("RESET ALL").await.unwrap();
    client.batch_execute("DISCARD ALL").await.unwrap();
    let error = client
        .batch_execute("CREATE TABLE intruder (id int)")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::READ_ONLY_SQL_TRANSACTION));
}

/// A check stuck behind a lock is cancelled by the server at its timeout, counted as
/// outcome=timeout, and the other checks keep running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_check_times_out_on_the_server_and_the_others_keep_working() {
    let db = Cluster::shared().create_database("timeout").await;
    let _fixture = chain(&db, SchemaVersion::V13_6, "mainnet", unix_now(), 3).await;
    let mut settings = config(&db.reader_url());
    settings.checks.check_timeout = Duration::from_secs(1);
    // block_tx_counts reads block without ledger data, so it waits on the lock too: with the
    // same short timeout, the server cancels it like the others.
    settings.checks.integrity_timeout = Duration::from_secs(1);
    settings.db.lock_timeout = Duration::from_secs(30); // the statement timeout must be what fires
    settings.health.tip_failure_grace = Duration::from_secs(1);
    let exporter = Exporter::start(settings).await;
    wait_for_value(&exporter, "dbsync_up", 1.0).await;

    let mut blocker = db.connect().await;
    let lock = blocker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE block IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let body = wait_for_at_least(
        &exporter,
        "dbsync_check_runs_total{check=\"tip\",outcome=\"timeout\"}",
        2.0,
    )
    .await;
    assert_eq!(must(&body, "dbsync_up"), 0.0);
    assert_eq!(must(&body, "dbsync_check_success{check=\"tip\"}"), 0.0);
    assert_eq!(
        must(
            &body,
            "dbsync_check_runs_total{check=\"tip\",outcome=\"error\"}"
        ),
        0.0
    );
    // The last known tip is still served, with its age, while the check fails.
    assert_eq!(must(&body, "dbsync_block_height"), 1002.0);
    let info_runs = must(
        &body,
        "dbsync_check_runs_total{check=\"info\",outcome=\"success\"}",
    );
    eventually(
        Duration::from_secs(30),
        "info runs while tip is blocked",
        || async {
            let body = exporter.metrics().await;
            (value(
                &body,
                "dbsync_check_runs_total{check=\"info\",outcome=\"success\"}",
            )? >= info_runs + 2.0)
                .then_some(())
        },
    )
    .await;

    // Server side: no exporter query outlives its timeout (they were cancelled, not abandoned).
    let observer = db.connect().await;
    for _ in 0..5 {
        let lingering: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
                 AND state = 'active' AND now() - query_start > interval '1.8 seconds'",
                &[&APPLICATION_NAME],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(lingering, 0, "an exporter query ran past its timeout");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let health: serde_json::Value = exporter.get("/health").await.json().await.unwrap();
    assert_eq!(health["reasons"][0]["reason"], "check_timeout");
    assert!(
        health["reasons"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("statement timeout"),
        "{health}"
    );

    lock.rollback().await.unwrap();
    wait_for_value(&exporter, "dbsync_up", 1.0).await;
    exporter.shutdown().await;
}

/// Started while the database is down: serves `dbsync_up 0` and 503, then recovers alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_with_the_database_down_and_recovers_by_itself() {
    let cluster = tokio::task::spawn_blocking(Cluster::start_private)
        .await
        .unwrap()
        .unwrap();
    let db = cluster.create_database("down").await;
    let _fixture = chain(&db, SchemaVersion::V13_6, "mainnet", unix_now(), 3).await;
    drop(_fixture);
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop().unwrap();
        cluster
    })
    .await
    .unwrap();

    let exporter = Exporter::start(config(&db.reader_url())).await;
    let body = wait_for_at_least(
        &exporter,
        "dbsync_check_runs_total{check=\"tip\",outcome=\"error\"}",
        2.0,
    )
    .await;
    assert_eq!(must(&body, "dbsync_up"), 0.0);
    assert_eq!(
        must(&body, "dbsync_health_reason{reason=\"db_unreachable\"}"),
        1.0
    );
    assert_eq!(value(&body, "dbsync_block_height"), None);
    assert_eq!(
        exporter.get("/health").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        exporter.get("/ready").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(exporter.get("/live").await.status(), StatusCode::OK);

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start().unwrap();
        cluster
    })
    .await
    .unwrap();
    let body = wait_for_value(&exporter, "dbsync_up", 1.0).await;
    assert_eq!(must(&body, "dbsync_block_height"), 1002.0);
    wait_for_value(&exporter, "dbsync_check_success{check=\"info\"}", 1.0).await;
    assert_eq!(exporter.get("/health").await.status(), StatusCode::OK);
    exporter.shutdown().await;
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();
}

/// Scrapes are served from the store: 1,000 of them run no statement at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_scrapes_cost_the_database_nothing() {
    let db = Cluster::shared().create_database("scrape_cost").await;
    let fixture = chain(&db, SchemaVersion::V13_6, "mainnet", unix_now(), 3).await;
    fixture.epoch_sync_time(510, 321, "following").await;
    let mut settings = config(&db.reader_url());
    settings.checks.tip_interval = Duration::from_secs(3600);
    settings.checks.info_interval = Duration::from_secs(3600);
    settings.checks.grest_interval = Duration::from_secs(3600);
    settings.checks.integrity_interval = Duration::from_secs(3600);
    settings.checks.size_interval = Duration::from_secs(3600);
    let exporter = Exporter::start(settings).await;
    // Every scheduled check has finished its first run (the next is an hour away).
    eventually(
        Duration::from_secs(60),
        "every check's first run",
        || async {
            let body = exporter.metrics().await;
            let checks: Vec<&str> = body
                .lines()
                .filter_map(|line| line.strip_prefix("dbsync_check_interval_seconds{check=\""))
                .filter_map(|rest| rest.split('"').next())
                .collect();
            let all_ran = checks.len() >= 9
                && checks.iter().all(|check| {
                    value(&body, &format!("dbsync_check_success{{check=\"{check}\"}}")) == Some(1.0)
                });
            all_ran.then_some(())
        },
    )
    .await;
    let observer_db = Cluster::shared().create_database("observer").await;
    let observer = observer_db.connect().await;
    let statements = || async {
        observer
            .query_one(
                "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements \
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)",
                &[&db.name],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let before = statements().await;
    assert!(before > 0, "pg_stat_statements saw the checks' own queries");
    let client = reqwest::Client::new();
    for i in 0..1000 {
        let path = ["/metrics", "/health", "/tip", "/ready"][i % 4];
        let response = client.get(exporter.url(path)).send().await.unwrap();
        assert!(response.status().is_success());
        response.bytes().await.unwrap();
    }
    assert_eq!(
        statements().await,
        before,
        "scrapes ran database statements"
    );
    exporter.shutdown().await;
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dbsync-exporter"))
}

/// Bad flags: exit status 2 and exactly one line naming the flag.
#[test]
fn bad_flags_exit_2_with_one_line_naming_the_flag() {
    let cases: [(&[&str], &str); 11] = [
        (
            &["--web.config.file", "/nonexistent/web.yml"],
            "--web.config.file",
        ),
        (&["--tip-interval", "5x"], "--tip-interval"),
        (&["--db.lock-timeout", "-1s"], "--db.lock-timeout"),
        (&["--log-level", "nonsense"], "--log-level"),
        (&["--peers-file", "/nonexistent/peers"], "--peers-file"),
        (&["--web.max-connections", "0"], "--web.max-connections"),
        (&["--health.max-tip-age", "0s"], "--health.max-tip-age"),
        (&["--web.listen-address", "nowhere"], "--web.listen-address"),
        (&["--log-format", "xml"], "--log-format"),
        (
            &["--chain.byron-start", "1506203091"],
            "--chain.byron-epoch-slots",
        ),
        (
            &[
                "--database-url",
                "postgres://u:hunter2secret@host:notaport/db",
            ],
            "--database-url",
        ),
    ];
    for (args, flag) in cases {
        let output = binary()
            .args(args)
            .env_remove("DBSYNC_EXPORTER_DATABASE_URL")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(!stderr.contains("hunter2secret"), "{stderr}");
    }
    let output = binary()
        .env("DBSYNC_EXPORTER_DATABASE_URL_FILE", "/nonexistent/url")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--database-url-file"));
}

/// The password appears nowhere: not in --help, logs (even at debug level, even when
/// authentication fails), metrics or /health.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_never_leaks() {
    let db = Cluster::shared().create_database("secret").await;
    let _fixture = chain(&db, SchemaVersion::V13_6, "mainnet", unix_now(), 2).await;
    let help = binary()
        .arg("--help")
        .env("DBSYNC_EXPORTER_DATABASE_URL", db.reader_url())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains(TestDatabase::READER_PASSWORD));

    let wrong = db
        .reader_url()
        .replace(TestDatabase::READER_PASSWORD, "Wr0ng-s3cret-pw");
    for (url, password, expect_up) in [
        (db.reader_url(), TestDatabase::READER_PASSWORD, 1.0),
        (wrong, "Wr0ng-s3cret-pw", 0.0),
    ] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = binary()
            .args([
                "--web.listen-address",
                &format!("127.0.0.1:{port}"),
                "--log-level",
                "debug",
                "--tip-interval",
                "200ms",
            ])
            .env("DBSYNC_EXPORTER_DATABASE_URL", &url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let body = eventually(Duration::from_secs(30), "two tip runs", || async {
            let body = reqwest::get(format!("{base}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let runs: f64 = finished_runs(&body, "tip");
            (runs >= 2.0).then_some(body)
        })
        .await;
        assert_eq!(must(&body, "dbsync_up"), expect_up);
        let health = reqwest::get(format!("{base}/health"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if expect_up == 0.0 {
            assert!(
                health.contains("password authentication failed"),
                "{health}"
            );
        }
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0), "SIGTERM is a clean shutdown");
        let logs = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(logs.contains("serving /metrics"), "{logs}");
        for text in [&body, &health, &logs] {
            assert!(!text.contains(password), "the password leaked:\n{text}");
        }
    }
}

/// The schema probe runs under the check's own server-side timeouts: a lock on `meta` cannot
/// hold it (and every check queued behind it) longer than the check's timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_on_meta_cannot_hold_the_schema_probe() {
    let db = Cluster::shared().create_database("probe_lock").await;
    let _fixture = chain(&db, SchemaVersion::V13_6, "mainnet", unix_now(), 2).await;
    let mut settings = config(&db.reader_url());
    settings.db.lock_timeout = Duration::from_secs(30);
    let database = Database::new(&settings).unwrap();
    let mut blocker = db.connect().await;
    let lock = blocker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE meta IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let error = match database.session(Duration::from_secs(1)).await {
        Ok(_) => panic!("the probe read meta through an exclusive lock"),
        Err(error) => error,
    };
    let took = started.elapsed();
    assert!(
        matches!(&error, dbsync_exporter::db::CheckError::Timeout(why)
            if why.starts_with("canceling statement due to")),
        "{error}"
    );
    assert!(took < Duration::from_secs(10), "the probe waited {took:?}");
    lock.rollback().await.unwrap();
    // The connection is usable again and the probe succeeds.
    let session = database.session(Duration::from_secs(1)).await.unwrap();
    assert_eq!(session.schema.network.as_deref(), Some("mainnet"));
}

/// SIGHUP reloads instead of killing the process (its default action), and a broken web
/// config on disk keeps the running settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_never_kills() {
    let db = Cluster::shared().create_database("sighup").await;
    let _fixture = chain(&db, SchemaVersion::V13_6, "mainnet", unix_now(), 2).await;
    let dir = std::env::temp_dir().join(format!("sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(&web, "http_server_config:\n  headers:\n    X-Test: one\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = binary()
        .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
        .arg("--web.config.file")
        .arg(&web)
        .env("DBSYNC_EXPORTER_DATABASE_URL", db.reader_url())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/live");
    let header = |url: String| async move {
        let response = reqwest::get(url).await.ok()?;
        Some(response.headers().get("x-test")?.to_str().ok()?.to_owned())
    };
    eventually(Duration::from_secs(30), "the first header", || async {
        (header(url.clone()).await.as_deref() == Some("one")).then_some(())
    })
    .await;
    let hangup = || {
        Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap()
    };
    // Same size, same second: only the SIGHUP can tell the file changed.
    std::fs::write(&web, "http_server_config:\n  headers:\n    X-Test: two\n").unwrap();
    hangup();
    eventually(Duration::from_secs(10), "the reloaded header", || async {
        (header(url.clone()).await.as_deref() == Some("two")).then_some(())
    })
    .await;
    std::fs::write(&web, "basic_auth_users: [not, a, map]\n").unwrap();
    hangup();
    // Every answer keeps the previous header; a request that fails outright (a loaded CI
    // machine) is retried rather than taken for a header, so the test cannot pass by luck
    // and cannot fail on a slow connect.
    let mut answers = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    tokio::time::sleep(Duration::from_millis(500)).await;
    while answers < 3 && std::time::Instant::now() < deadline {
        if let Ok(response) = reqwest::get(url.clone()).await {
            let value = response
                .headers()
                .get("x-test")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(value.as_deref(), Some("two"), "the broken file was ignored");
            answers += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        answers, 3,
        "the server kept answering after the broken reload"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP killed the process"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("web config not reloaded; keeping the previous one"),
        "{log}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
