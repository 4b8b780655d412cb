//! A real Prometheus server as a child process, and its HTTP API.
//!
//! The server gets its own temp dir (config, TSDB, log) and a free port, is killed and its
//! dir removed on drop, and a small watchdog shell stops it if the test process dies without
//! unwinding (a CI timeout, `kill -9`). Every failure message ends with the tail of its log.

use std::fs::File;
use std::future::Future;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{require_tool, TempDir};

/// How many times to retry when another process took the free port first.
const PORT_ATTEMPTS: usize = 3;
/// How long Prometheus may take to become ready on a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Prometheus {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    child: Child,
    watchdog: Option<Child>,
    log: PathBuf,
    client: reqwest::Client,
    /// Removed on drop, after the server is dead (field order: dropped last).
    _dir: TempDir,
}

impl Prometheus {
    /// Writes `files` (name, content) and `prometheus.yml` (made by `config` from the temp
    /// dir's path) into a fresh temp dir, starts Prometheus on a free port and waits until it
    /// is ready.
    pub async fn start(
        files: &[(&str, String)],
        config: impl Fn(&std::path::Path) -> String,
    ) -> Prometheus {
        let binary = require_tool("prometheus");
        for attempt in 1..=PORT_ATTEMPTS {
            // A fresh dir per attempt: a failed attempt's watchdog removes its own.
            let dir = TempDir::new("prometheus");
            for (name, content) in files {
                std::fs::write(dir.join(name), content).unwrap();
            }
            let config_path = dir.join("prometheus.yml");
            std::fs::write(&config_path, config(&dir.path)).unwrap();
            let log = dir.join("prometheus.log");
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let log_file = File::create(&log).unwrap();
            let child = Command::new(&binary)
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--storage.tsdb.retention.time=1h")
                .arg("--log.level=info")
                .current_dir(&dir.path)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                // Its own process group: a Ctrl-C aimed at `cargo test` reaches the test,
                // which then kills it in order.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            let watchdog = spawn_watchdog(child.id(), &dir.path);
            let mut prometheus = Prometheus {
                base: format!("http://127.0.0.1:{port}"),
                child,
                watchdog,
                log,
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(20))
                    .build()
                    .unwrap(),
                _dir: dir,
            };
            match prometheus.wait_ready().await {
                Ok(()) => return prometheus,
                Err(why)
                    if attempt < PORT_ATTEMPTS
                        && prometheus.log_tail(200).contains("address already in use") =>
                {
                    eprintln!("Prometheus lost the race for port {port} ({why}); retrying");
                }
                Err(why) => prometheus.fail(&format!("Prometheus did not become ready: {why}")),
            }
        }
        unreachable!("the last attempt returns or fails")
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("it exited with {status}"));
            }
            if let Ok(response) = self
                .client
                .get(format!("{}/-/ready", self.base))
                .send()
                .await
            {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("not ready after {READY_TIMEOUT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Panics with `message` and the log tail.
    pub fn fail(&self, message: &str) -> ! {
        panic!(
            "{message}\n--- last lines of the Prometheus log ({}) ---\n{}",
            self.log.display(),
            self.log_tail(40)
        )
    }

    /// `GET /api/v1/<path>`; the `data` of a `success` response, else the error.
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let response = self
            .client
            .get(format!("{}/api/v1/{path}", self.base))
            .query(params)
            .send()
            .await
            .map_err(|e| format!("GET /api/v1/{path}: {e}"))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("GET /api/v1/{path} ({status}): not JSON: {e}"))?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!(
                "{status} {}: {}",
                body["errorType"].as_str().unwrap_or("?"),
                body["error"].as_str().unwrap_or("?")
            ))
        }
    }

    /// Like [`Prometheus::api`], failing the test (with the log tail) on an API error.
    pub async fn must(&self, path: &str, params: &[(&str, &str)]) -> Value {
        match self.api(path, params).await {
            Ok(data) => data,
            Err(e) => self.fail(&format!("API call {path} {params:?} failed: {e}")),
        }
    }

    /// An instant query: the result as a list of samples (a scalar counts as one), or the
    /// error Prometheus gave for the expression.
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api("query", &[("query", expr)]).await?;
        match data["resultType"].as_str() {
            Some("vector" | "matrix") => Ok(data["result"].as_array().cloned().unwrap_or_default()),
            Some("scalar" | "string") => Ok(vec![data["result"].clone()]),
            other => Err(format!("unexpected result type {other:?}")),
        }
    }

    /// Polls `probe` every 500 ms for at most `limit`; on timeout fails with `what`, the
    /// probe's last diagnosis and the log tail.
    pub async fn wait_for<T, F, Fut>(&self, limit: Duration, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match probe().await {
                Ok(value) => return value,
                Err(last) if tokio::time::Instant::now() > deadline => self.fail(&format!(
                    "timed out after {limit:?} waiting for {what}; last state:\n{last}"
                )),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A shell that stops Prometheus and removes its dir once this test process is gone.
fn spawn_watchdog(prometheus_pid: u32, dir: &std::path::Path) -> Option<Child> {
    let dir = dir.to_string_lossy().replace('\'', r"'\''");
    let script = format!(
        "while kill -0 {test} 2>/dev/null && kill -0 {prometheus} 2>/dev/null; do sleep 1; done; \
         kill -9 {prometheus} 2>/dev/null; sleep 1; rm -rf '{dir}'",
        test = std::process::id(),
        prometheus = prometheus_pid,
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok()
}
