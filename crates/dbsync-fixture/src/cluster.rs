//! Throwaway PostgreSQL clusters for tests and demos.
//!
//! [`Cluster::shared`] starts one cluster per test process (or adopts the server named by
//! `DBSYNC_TEST_DATABASE_URL`); [`Cluster::start_private`] starts one that a test may stop and
//! start again. [`Cluster::create_database`] hands out fresh, uniquely named databases.
//!
//! Process handling is blocking (`std::process`): the calls are short, and keeping them
//! synchronous lets [`Cluster::shared`] be a plain `OnceLock` usable from any runtime. A test
//! whose other tasks must keep running meanwhile (e.g. an exporter under test on a
//! current-thread runtime) should call [`Cluster::stop`], [`Cluster::start`],
//! [`Cluster::start_private`] and the private cluster's drop via `spawn_blocking`.

use std::fmt::Write as _;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::OnceCell;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// Env var naming an existing server to use instead of starting a cluster.
const EXTERNAL_URL_ENV: &str = "DBSYNC_TEST_DATABASE_URL";
/// Env var naming the directory holding `initdb`, `pg_ctl`, ….
const PG_BIN_ENV: &str = "PG_BIN";
const LOCALHOST: &str = "127.0.0.1";
const SUPERUSER: &str = "postgres";
const READER_ROLE: &str = "dbsync_reader";
/// Seconds `pg_ctl -w` may wait for the server to accept connections.
const START_TIMEOUT_SECS: &str = "60";
/// A freshly picked port can be taken by someone else before the server binds it.
const PORT_ATTEMPTS: usize = 3;

/// Counter making temp dirs and database names unique within this process.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A PostgreSQL server that tests create databases on.
pub struct Cluster {
    server: Server,
    /// `None` when the server is external (`DBSYNC_TEST_DATABASE_URL`): nothing to stop.
    managed: Option<Managed>,
    /// The reader role is created lazily, once, by the first `create_database`.
    roles_ready: OnceCell<()>,
}

/// Where and as whom to connect.
#[derive(Clone, Debug)]
struct Server {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    /// Database the superuser connects to for `CREATE DATABASE`.
    admin_db: String,
}

impl Server {
    fn url(&self, user: &str, password: Option<&str>, db: &str) -> String {
        let mut url = format!("postgres://{}", percent_encode(user));
        if let Some(password) = password {
            let _ = write!(url, ":{}", percent_encode(password));
        }
        let _ = write!(url, "@{}:{}/{}", self.host, self.port, percent_encode(db));
        url
    }

    fn superuser_url(&self, db: &str) -> String {
        self.url(&self.user, self.password.as_deref(), db)
    }
}

/// A cluster this process started and owns.
struct Managed {
    root: PathBuf,
    data: PathBuf,
    log: PathBuf,
    tools: PgTools,
    /// Stops the server if this process dies without running `Drop` (always, for `shared`).
    watchdog: Option<Child>,
}

/// How to run the PostgreSQL server binaries.
#[derive(Clone, Debug)]
struct PgTools {
    /// `None` means "rely on PATH".
    bin: Option<PathBuf>,
    /// PostgreSQL refuses to run as root, so as root every tool runs as `postgres`.
    as_postgres: bool,
}

impl PgTools {
    fn discover() -> Self {
        Self {
            bin: find_bin_dir(),
            as_postgres: running_as_root(),
        }
    }

    fn tool_path(&self, tool: &str) -> PathBuf {
        match &self.bin {
            Some(dir) => dir.join(tool),
            None => PathBuf::from(tool),
        }
    }

    fn command(&self, tool: &str, cwd: &Path) -> Command {
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", SUPERUSER, "--"]).arg(self.tool_path(tool));
            cmd
        } else {
            Command::new(self.tool_path(tool))
        };
        // The caller's cwd may be unreadable for `postgres`; initdb complains about that.
        cmd.current_dir(cwd).stdin(Stdio::null());
        cmd
    }

    /// The same as [`PgTools::command`], as a shell snippet for the watchdog.
    fn shell_command(&self, tool: &str, args: &str) -> String {
        let tool = shell_quote(&self.tool_path(tool).to_string_lossy());
        if self.as_postgres {
            format!("runuser -u {SUPERUSER} -- {tool} {args}")
        } else {
            format!("{tool} {args}")
        }
    }
}

impl Cluster {
    /// Process-wide shared cluster, started on first use and stopped by a watchdog once the
    /// test process exits. With `DBSYNC_TEST_DATABASE_URL` set, that server is used instead.
    ///
    /// # Panics
    /// If the cluster cannot be started (the message includes the server log tail).
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(|| match std::env::var(EXTERNAL_URL_ENV) {
            Ok(url) if !url.trim().is_empty() => Cluster::external(&url),
            _ => Cluster::start_managed().unwrap_or_else(|e| panic!("{e}")),
        })
    }

    /// A private cluster the caller may stop and start again on the same port. It is stopped
    /// and its directory removed on drop (or by a watchdog if the process dies first).
    pub fn start_private() -> io::Result<Cluster> {
        Cluster::start_managed()
    }

    /// Stops the server (`pg_ctl stop -m fast`), keeping its data directory and port.
    pub fn stop(&self) -> io::Result<()> {
        let managed = self.managed()?;
        let status = managed
            .tools
            .command("pg_ctl", &managed.root)
            .arg("-D")
            .arg(&managed.data)
            .args(["-m", "fast", "-w", "-s", "stop"])
            .status()?;
        check_status("pg_ctl stop", status, &managed.log)
    }

    /// Starts the server again and waits until it accepts connections.
    pub fn start(&self) -> io::Result<()> {
        self.managed()?.pg_ctl_start()
    }

    /// Turns TLS on with this server certificate and key (PEM files, copied into the data
    /// directory), puts `hba_lines` before the cluster's own `pg_hba.conf` lines (first match
    /// wins), and reloads the configuration.
    pub fn enable_tls(&self, cert: &Path, key: &Path, hba_lines: &str) -> io::Result<()> {
        let managed = self.managed()?;
        for (from, name) in [(cert, "server.crt"), (key, "server.key")] {
            let to = managed.data.join(name);
            std::fs::copy(from, &to)?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))?;
            if managed.tools.as_postgres {
                let status = Command::new("chown")
                    .arg(format!("{SUPERUSER}:{SUPERUSER}"))
                    .arg(&to)
                    .status()?;
                check_status("chown", status, &managed.log)?;
            }
        }
        append(
            &managed.data.join("postgresql.conf"),
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
        )?;
        let hba = managed.data.join("pg_hba.conf");
        let existing = std::fs::read_to_string(&hba)?;
        std::fs::write(&hba, format!("{hba_lines}\n{existing}"))?;
        let status = managed
            .tools
            .command("pg_ctl", &managed.root)
            .arg("-D")
            .arg(&managed.data)
            .args(["-s", "reload"])
            .status()?;
        check_status("pg_ctl reload", status, &managed.log)?;
        // The reload is asynchronous: give the postmaster a moment to read the files.
        std::thread::sleep(std::time::Duration::from_millis(500));
        Ok(())
    }

    /// TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Host the server listens on (`127.0.0.1` for managed clusters).
    pub fn host(&self) -> &str {
        &self.server.host
    }

    /// Superuser URL for database `db` (trust auth for managed clusters).
    pub fn superuser_url(&self, db: &str) -> String {
        self.server.superuser_url(db)
    }

    /// Creates a fresh, uniquely named empty database whose name starts with `prefix`
    /// (lower-cased, non-identifier characters replaced). Safe to call concurrently.
    ///
    /// # Panics
    /// On any database error: this is test scaffolding.
    pub async fn create_database(&self, prefix: &str) -> TestDatabase {
        self.roles_ready.get_or_init(|| self.setup_roles()).await;
        let name = unique_database_name(prefix);
        let admin = connect(&self.server.superuser_url(&self.server.admin_db))
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.server.admin_db));
        // CREATE DATABASE fails while anyone else is connected to the template; that can only
        // be another short-lived setup connection, so retry briefly.
        let mut attempt = 0;
        loop {
            match admin
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .await
            {
                Ok(()) => break,
                Err(e) if e.code() == Some(&SqlState::OBJECT_IN_USE) && attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("CREATE DATABASE {name}: {e}"),
            }
        }
        let db = TestDatabase {
            name,
            server: self.server.clone(),
        };
        // Tests count queries with pg_stat_statements; on an external server it may not be
        // installed, which only those tests need to care about.
        let client = db.connect().await;
        if let Err(e) = client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await
        {
            assert!(
                self.managed.is_none(),
                "CREATE EXTENSION pg_stat_statements: {e}"
            );
        }
        db
    }

    fn external(url: &str) -> Cluster {
        let config: tokio_postgres::Config = url
            .parse()
            .unwrap_or_else(|e| panic!("{EXTERNAL_URL_ENV} is not a valid URL: {e}"));
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => panic!("{EXTERNAL_URL_ENV} must name a TCP host (reader URLs use TCP)"),
        };
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        Cluster {
            server: Server {
                host,
                port: config.get_ports().first().copied().unwrap_or(5432),
                user: config.get_user().unwrap_or(SUPERUSER).to_owned(),
                password,
                admin_db: config.get_dbname().unwrap_or("postgres").to_owned(),
            },
            managed: None,
            roles_ready: OnceCell::new(),
        }
    }

    fn start_managed() -> io::Result<Cluster> {
        let tools = PgTools::discover();
        let root = std::env::temp_dir().join(format!(
            "dbsync-fixture-{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        if root.exists() {
            std::fs::remove_dir_all(&root)?;
        }
        std::fs::create_dir_all(&root)?;
        let mut managed = Managed {
            data: root.join("data"),
            log: root.join("server.log"),
            root,
            tools,
            watchdog: None,
        };
        // From here on the directory is ours to clean up, whatever fails.
        match managed.init_and_start() {
            Ok(port) => Ok(Cluster {
                server: Server {
                    host: LOCALHOST.to_owned(),
                    port,
                    user: SUPERUSER.to_owned(),
                    password: None,
                    admin_db: "postgres".to_owned(),
                },
                managed: Some(managed),
                roles_ready: OnceCell::new(),
            }),
            Err(e) => {
                managed.shutdown();
                Err(e)
            }
        }
    }

    async fn setup_roles(&self) {
        let client = connect(&self.server.superuser_url(&self.server.admin_db))
            .await
            .unwrap_or_else(|e| panic!("connecting as superuser: {e}"));
        let password = TestDatabase::READER_PASSWORD;
        let sql = format!(
            "DO $$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{READER_ROLE}') THEN
                    CREATE ROLE {READER_ROLE} LOGIN PASSWORD '{password}';
                ELSE
                    ALTER ROLE {READER_ROLE} LOGIN PASSWORD '{password}';
                END IF;
             END $$;
             GRANT pg_read_all_data TO {READER_ROLE};"
        );
        // Another process sharing an external server may create the role at the same moment.
        if let Err(first) = client.batch_execute(&sql).await {
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("creating role {READER_ROLE}: {first}; retry: {e}"));
        }
    }

    fn managed(&self) -> io::Result<&Managed> {
        self.managed.as_ref().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "the server named by DBSYNC_TEST_DATABASE_URL is not managed by this process",
            )
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(managed) = &mut self.managed {
            managed.shutdown();
        }
    }
}

impl Managed {
    /// `initdb`, configuration, start; returns the port.
    fn init_and_start(&mut self) -> io::Result<u16> {
        if self.tools.as_postgres {
            let status = Command::new("chown")
                .arg(format!("{SUPERUSER}:{SUPERUSER}"))
                .arg(&self.root)
                .status()?;
            check_status("chown", status, &self.log)?;
        }
        let output = self
            .tools
            .command("initdb", &self.root)
            .arg("-D")
            .arg(&self.data)
            .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "initdb failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        self.write_config()?;
        self.watchdog = Some(self.spawn_watchdog()?);

        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            // A later `port` line wins, so a retry simply appends another one.
            append(
                &self.data.join("postgresql.conf"),
                &format!("port = {port}\n"),
            )?;
            match self.pg_ctl_start() {
                Ok(()) => return Ok(port),
                // Only a lost port race is worth another try; anything else would repeat.
                Err(e) if log_tail(&self.log, 30).contains("could not bind") => {
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no start attempt made")))
    }

    fn write_config(&self) -> io::Result<()> {
        let socket_dir = self.root.to_string_lossy().replace('\'', "''");
        // Throwaway data: durability settings off for speed.
        let conf = format!(
            "\n# dbsync-fixture\n\
             listen_addresses = '{LOCALHOST}'\n\
             unix_socket_directories = '{socket_dir}'\n\
             shared_preload_libraries = 'pg_stat_statements'\n\
             max_connections = 200\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             password_encryption = 'scram-sha-256'\n\
             timezone = 'UTC'\n"
        );
        append(&self.data.join("postgresql.conf"), &conf)?;
        // Overwriting in place keeps the file owned by `postgres`.
        std::fs::write(
            self.data.join("pg_hba.conf"),
            format!(
                "local all all trust\n\
                 host all {SUPERUSER} {LOCALHOST}/32 trust\n\
                 host all all {LOCALHOST}/32 scram-sha-256\n"
            ),
        )
    }

    fn pg_ctl_start(&self) -> io::Result<()> {
        let status = self
            .tools
            .command("pg_ctl", &self.root)
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", START_TIMEOUT_SECS, "-s", "start"])
            // pg_ctl redirects the server's output to the log; ours stays quiet.
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        check_status("pg_ctl start", status, &self.log)
    }

    /// A detached `sh` that stops the server and removes the directory once this process is
    /// gone, so clusters do not outlive a test run (statics are never dropped).
    fn spawn_watchdog(&self) -> io::Result<Child> {
        let data = shell_quote(&self.data.to_string_lossy());
        let root = shell_quote(&self.root.to_string_lossy());
        let stop = self
            .tools
            .shell_command("pg_ctl", &format!("-D {data} -m immediate -w stop"));
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {root}",
            pid = std::process::id()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so a Ctrl-C aimed at `cargo test` does not kill it first.
            .process_group(0)
            .spawn()
    }

    /// Best-effort immediate stop and cleanup (errors are ignored: nothing left to do).
    fn shutdown(&mut self) {
        if self.data.join("postmaster.pid").exists() {
            let _ = self
                .tools
                .command("pg_ctl", &self.root)
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "-s", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A database created by [`Cluster::create_database`]. It is not dropped afterwards: the
/// managed cluster disappears with the process anyway.
#[derive(Clone, Debug)]
pub struct TestDatabase {
    /// Database name.
    pub name: String,
    server: Server,
}

impl TestDatabase {
    /// Password of the `dbsync_reader` role; tests grep logs and metrics for it.
    pub const READER_PASSWORD: &'static str = "s3cret-Pa55word-never-log-me";

    /// Superuser URL for this database.
    pub fn superuser_url(&self) -> String {
        self.server.superuser_url(&self.name)
    }

    /// URL for the low-privilege `dbsync_reader` role (scram-sha-256 over TCP, member of
    /// `pg_read_all_data`): the URL to hand to the exporter in tests.
    pub fn reader_url(&self) -> String {
        self.server
            .url(READER_ROLE, Some(Self::READER_PASSWORD), &self.name)
    }

    /// A superuser client; its connection task is spawned on the current runtime.
    ///
    /// # Panics
    /// If the connection fails.
    pub async fn connect(&self) -> Client {
        connect(&self.superuser_url())
            .await
            .unwrap_or_else(|e| panic!("connecting to database {}: {e}", self.name))
    }
}

/// Connects and drives the connection on a spawned task.
async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        // The error resurfaces on the client's next call; nothing to add here.
        let _ = connection.await;
    });
    Ok(client)
}

fn unique_database_name(prefix: &str) -> String {
    let mut clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    if clean.is_empty() || clean.starts_with(|c: char| c.is_ascii_digit()) {
        clean.insert(0, 'd');
    }
    // pid + counter are unique within a server's lifetime; the timestamp keeps names unique
    // on an external server that outlives many test runs.
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!(
        "{clean}_{}_{}_{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed),
        millis % 100_000_000
    )
}

fn find_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(PG_BIN_ENV) {
        return Some(PathBuf::from(dir));
    }
    // Debian layout: /usr/lib/postgresql/<major>/bin; the newest major wins.
    let entries = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<f64>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// Reads the real uid from `/proc/self/status` (no libc, no `unsafe`).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|uids| uids.split_whitespace().next().map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind((LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn append(path: &Path, text: &str) -> io::Result<()> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)?
        .write_all(text.as_bytes())
}

fn check_status(what: &str, status: std::process::ExitStatus, log: &Path) -> io::Result<()> {
    if status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{what} failed ({status}); server log tail:\n{}",
        log_tail(log, 30)
    )))
}

fn log_tail(log: &Path, lines: usize) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", log.display()),
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for URL user info/path).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_identifiers() {
        let a = unique_database_name("Rollback Test!");
        let b = unique_database_name("Rollback Test!");
        assert_ne!(a, b);
        assert!(a.starts_with("rollback_test__"), "{a}");
        assert!(a.len() <= 63);
        assert!(unique_database_name("9lives").starts_with("d9lives_"));
        assert!(unique_database_name(&"x".repeat(100)).len() <= 63);
    }

    #[test]
    fn urls_encode_user_info() {
        assert_eq!(percent_encode("s3cret-Pa55word"), "s3cret-Pa55word");
        assert_eq!(percent_encode("a@b:c/d"), "a%40b%3Ac%2Fd");
    }
}
