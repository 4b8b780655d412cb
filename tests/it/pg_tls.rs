//! TLS to PostgreSQL with libpq's conventions, against a real server with `ssl = on`, a test
//! CA and a certificate for `localhost` made here with the `openssl` CLI, and `pg_hba.conf`
//! letting the exporter's role in over TLS only. Also the password file.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use dbsync_fixture::{Cluster, SchemaVersion, TestDatabase};

use crate::common::{chain, eventually, finished_runs, must, test_certificates, unix_now, value};

const ROLE: &str = "tls_reader";
const PASSWORD: &str = "tls-Pa55word-never-log-me";

struct TlsServer {
    cluster: Cluster,
    db: TestDatabase,
    dir: PathBuf,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TlsServer {
    async fn start() -> TlsServer {
        let cluster = tokio::task::spawn_blocking(Cluster::start_private)
            .await
            .unwrap()
            .unwrap();
        let db = cluster.create_database("tls").await;
        let _fixture = chain(&db, SchemaVersion::V13_7, "preview", unix_now() - 5, 3).await;
        let dir =
            std::env::temp_dir().join(format!("dbsync-tls-{}-{}", std::process::id(), db.name));
        std::fs::create_dir_all(&dir).unwrap();
        test_certificates(&dir, &["ca", "other-ca"], "DNS:localhost");
        db.connect()
            .await
            .batch_execute(&format!(
                "CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'; GRANT pg_read_all_data TO {ROLE};"
            ))
            .await
            .unwrap();
        cluster
            .enable_tls(
                &dir.join("server.crt"),
                &dir.join("server.key"),
                &format!(
                    "hostssl all {ROLE} 127.0.0.1/32 scram-sha-256\n\
                     host all {ROLE} 127.0.0.1/32 reject"
                ),
            )
            .unwrap();
        TlsServer { cluster, db, dir }
    }

    fn url(&self, host: &str, password: bool, params: &str) -> String {
        let auth = if password {
            format!("{ROLE}:{PASSWORD}")
        } else {
            ROLE.to_owned()
        };
        format!(
            "postgres://{auth}@{host}:{}/{}?{params}",
            self.cluster.port(),
            self.db.name
        )
    }

    fn ca(&self, name: &str) -> String {
        self.dir.join(format!("{name}.crt")).display().to_string()
    }
}

/// What one run of the binary showed.
struct Seen {
    body: String,
    health: String,
    log: String,
    /// The exporter role's sessions on the server: (encrypted, all), while it ran.
    sessions: (i64, i64),
}

/// The binary against `url`, with extra environment, until its checks settled.
async fn scrape(server: &TlsServer, url: &str, env: &[(&str, &str)]) -> Seen {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_dbsync-exporter"));
    command
        .args([
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
            "--tip-interval",
            "300ms",
            "--info-interval",
            "300ms",
        ])
        .env("DBSYNC_EXPORTER_DATABASE_URL", url)
        .env_remove("PGPASSFILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let child = command.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let body = eventually(
        Duration::from_secs(30),
        "a settled tip and info run",
        || async {
            let body = reqwest::get(format!("{base}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let tip_runs: f64 = finished_runs(&body, "tip");
            let settled = value(&body, "dbsync_up") == Some(0.0)
                || value(&body, "dbsync_check_success{check=\"info\"}") == Some(1.0);
            (tip_runs >= 2.0 && settled).then_some(body)
        },
    )
    .await;
    let health = reqwest::get(format!("{base}/health"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let row = server
        .db
        .connect()
        .await
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.usename = $1",
            &[&ROLE],
        )
        .await
        .unwrap();
    let sessions = (row.get(0), row.get(1));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    for text in [&body, &health, &log] {
        assert!(!text.contains(PASSWORD), "the password leaked:\n{text}");
    }
    Seen {
        body,
        health,
        log,
        sessions,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libpq_ssl_modes_against_a_tls_only_role() {
    let server = TlsServer::start().await;
    let ca = server.ca("ca");
    let other = server.ca("other-ca");

    // verify-full with the right CA: connected, and the server sees an encrypted session.
    let seen = scrape(
        &server,
        &server.url(
            "localhost",
            true,
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        &[],
    )
    .await;
    assert_eq!(must(&seen.body, "dbsync_up"), 1.0, "{}", seen.body);
    assert_eq!(must(&seen.body, "dbsync_db_tls"), 1.0);
    let (encrypted, all) = seen.sessions;
    assert!(
        all >= 1 && encrypted == all,
        "pg_stat_ssl: {encrypted} of {all} encrypted"
    );

    // The wrong CA, or the right CA for another name: refused with the cause.
    for (url, cause) in [
        (
            server.url(
                "localhost",
                true,
                &format!("sslmode=verify-full&sslrootcert={other}"),
            ),
            "certificate verify failed: unknown issuer",
        ),
        (
            server.url(
                "127.0.0.1",
                true,
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
            "host name mismatch",
        ),
    ] {
        let seen = scrape(&server, &url, &[]).await;
        assert_eq!(must(&seen.body, "dbsync_up"), 0.0);
        assert_eq!(
            must(
                &seen.body,
                "dbsync_health_reason{reason=\"db_unreachable\"}"
            ),
            1.0
        );
        assert!(seen.health.contains(cause), "{cause}: {}", seen.health);
    }

    // verify-ca checks the chain, not the name; prefer and require encrypt unverified.
    for params in [
        format!("sslmode=verify-ca&sslrootcert={ca}"),
        "sslmode=prefer".to_owned(),
        "sslmode=require".to_owned(),
    ] {
        let seen = scrape(&server, &server.url("127.0.0.1", true, &params), &[]).await;
        assert_eq!(
            must(&seen.body, "dbsync_up"),
            1.0,
            "{params}: {}",
            seen.body
        );
        assert_eq!(must(&seen.body, "dbsync_db_tls"), 1.0, "{params}");
    }
    // PGSSLMODE applies when the URL says nothing.
    let seen = scrape(
        &server,
        &server.url("localhost", true, ""),
        &[("PGSSLMODE", "require")],
    )
    .await;
    assert_eq!(must(&seen.body, "dbsync_db_tls"), 1.0);

    // Plaintext is refused by pg_hba.conf for this role: a status, not a silent downgrade.
    let seen = scrape(
        &server,
        &server.url("localhost", true, "sslmode=disable"),
        &[],
    )
    .await;
    assert_eq!(must(&seen.body, "dbsync_up"), 0.0);
    assert!(
        seen.health.contains("pg_hba.conf rejects connection"),
        "{}",
        seen.health
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_file_is_used_unless_others_can_read_it() {
    use std::os::unix::fs::PermissionsExt;
    let server = TlsServer::start().await;
    let file = server.dir.join("pgpass");
    std::fs::write(
        &file,
        format!(
            "# guild-operators keep this in $CNODE_HOME/priv/.pgpass\n\
             localhost:{}:{}:{ROLE}:{PASSWORD}\n",
            server.cluster.port(),
            server.db.name
        ),
    )
    .unwrap();
    let url = server.url(
        "localhost",
        false,
        &format!("sslmode=verify-full&sslrootcert={}", server.ca("ca")),
    );
    let passfile = file.display().to_string();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let seen = scrape(&server, &url, &[("PGPASSFILE", &passfile)]).await;
    assert_eq!(must(&seen.body, "dbsync_up"), 1.0, "{}", seen.body);

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let seen = scrape(&server, &url, &[("PGPASSFILE", &passfile)]).await;
    assert_eq!(must(&seen.body, "dbsync_up"), 0.0);
    assert!(
        seen.log.contains("password file has group or world access"),
        "{}",
        seen.log
    );
}
