//! A monitoring server (Prometheus, VictoriaMetrics, vmauth, vmalert, Alertmanager) as a
//! child process, and the Prometheus-compatible HTTP API most of them speak.
//!
//! Each server gets its own temp dir (config files, data, log) and a free port on 127.0.0.1,
//! is killed and its dir removed on drop, and a small watchdog shell stops it if the test
//! process dies without unwinding (a CI timeout, `kill -9`). Every failure message ends with
//! the tail of the server's log.

use std::fs::File;
use std::future::Future;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{require_tool, TempDir};

/// How many times to retry when another process took the free port first.
const PORT_ATTEMPTS: usize = 3;
/// How long a server may take to become ready on a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A server's command line, made from its temp dir and its port.
pub type Args<'a> = Box<dyn Fn(&Path, u16) -> Vec<String> + 'a>;

/// What to start: the binary, the files to write into its dir, its arguments (given the dir
/// and the port), and the path that answers 2xx once it is ready.
pub struct Spec<'a> {
    pub name: &'a str,
    pub binary: &'a str,
    pub files: Vec<(String, String)>,
    pub args: Args<'a>,
    pub ready_path: &'a str,
}

pub struct Server {
    pub name: String,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    child: Child,
    watchdog: Option<Child>,
    log: PathBuf,
    /// Removed on drop, after the server is dead (field order: dropped last).
    dir: TempDir,
}

impl Server {
    /// Writes the spec's files into a fresh temp dir, starts the binary on a free port and
    /// waits until it is ready.
    pub async fn start(spec: Spec<'_>) -> Server {
        let binary = require_tool(spec.binary);
        let client = reqwest::Client::new();
        for attempt in 1..=PORT_ATTEMPTS {
            // A fresh dir per attempt: a failed attempt's watchdog removes its own.
            let dir = TempDir::new(spec.name);
            for (name, content) in &spec.files {
                let path = dir.join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, content).unwrap();
            }
            let log = dir.join("server.log");
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let log_file = File::create(&log).unwrap();
            let child = Command::new(&binary)
                .args((spec.args)(&dir.path, port))
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
            let mut server = Server {
                name: spec.name.to_owned(),
                base: format!("http://127.0.0.1:{port}"),
                child,
                watchdog,
                log,
                dir,
            };
            match server.wait_ready(&client, spec.ready_path).await {
                Ok(()) => return server,
                Err(why)
                    if attempt < PORT_ATTEMPTS
                        && server.log_tail(200).contains("address already in use") =>
                {
                    eprintln!(
                        "{} lost the race for port {port} ({why}); retrying",
                        spec.name
                    );
                }
                Err(why) => server.fail(&format!("{} did not become ready: {why}", spec.name)),
            }
        }
        unreachable!("the last attempt returns or fails")
    }

    async fn wait_ready(&mut self, client: &reqwest::Client, path: &str) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("it exited with {status}"));
            }
            if let Ok(response) = client.get(format!("{}{path}", self.base)).send().await {
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

    /// The server's own temp dir (its config files are there).
    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    /// The last `lines` lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Panics with `message` and the log tail.
    pub fn fail(&self, message: &str) -> ! {
        fail(&self.name, &self.log, message)
    }

    /// Sends SIGHUP: Prometheus, vmauth and Alertmanager re-read their config files.
    pub fn reload(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "kill -HUP {} ({})",
            self.child.id(),
            self.name
        );
    }

    /// A Prometheus-API client for this server, failing with its log.
    pub fn api(&self) -> Api {
        Api {
            name: self.name.clone(),
            base: self.base.clone(),
            log: self.log.clone(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    /// SIGKILL, as when a host dies: no shutdown, no goodbye to anyone.
    pub fn kill(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn fail(name: &str, log: &Path, message: &str) -> ! {
    panic!(
        "{message}\n--- last lines of the {name} log ({}) ---\n{}",
        log.display(),
        log_tail(log, 40)
    )
}

/// The Prometheus HTTP API (`/api/v1/…`) of a server: Prometheus or VictoriaMetrics.
pub struct Api {
    pub name: String,
    pub base: String,
    log: PathBuf,
    client: reqwest::Client,
}

impl Api {
    /// Panics with `message` and the tail of the server's log.
    pub fn fail(&self, message: &str) -> ! {
        fail(&self.name, &self.log, message)
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

    /// Like [`Api::api`], failing the test (with the log tail) on an API error.
    pub async fn must(&self, path: &str, params: &[(&str, &str)]) -> Value {
        match self.api(path, params).await {
            Ok(data) => data,
            Err(e) => self.fail(&format!("API call {path} {params:?} failed: {e}")),
        }
    }

    /// An instant query: the result as a list of samples (a scalar counts as one), or the
    /// error the server gave for the expression.
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
}

/// A shell that stops the server and removes its dir once this test process is gone.
fn spawn_watchdog(server_pid: u32, dir: &Path) -> Option<Child> {
    let dir = dir.to_string_lossy().replace('\'', r"'\''");
    let script = format!(
        "while kill -0 {test} 2>/dev/null && kill -0 {server} 2>/dev/null; do sleep 1; done; \
         kill -9 {server} 2>/dev/null; sleep 1; rm -rf '{dir}'",
        test = std::process::id(),
        server = server_pid,
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
