//! The exporter binary under abuse, on loopback: hostile peers, thousands of idle and
//! slowloris sockets under a low open-files limit, SIGTERM with half-sent requests, and the
//! agent at descriptor exhaustion. Figures (memory, latency, CPU) are printed for the record;
//! what is asserted are the limits, generously, so the tests hold on a busy machine.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use dbsync_fixture::{Cluster, SchemaVersion, TestDatabase};
use futures_util::stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{chain, eventually, must, unix_now, value};

/// The exporter as a child process (killed on drop), optionally under a shell `ulimit`.
struct Exporter {
    child: Option<Child>,
    port: u16,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Exporter {
    /// Starts the binary on a free port with `args`, under `ulimit` options when given
    /// (e.g. `-Sn 1024`), and waits until it answers.
    async fn start(db: &TestDatabase, ulimit: Option<&str>, args: &[&str]) -> Exporter {
        let port = free_port();
        let binary = env!("CARGO_BIN_EXE_dbsync-exporter");
        let listen = format!("127.0.0.1:{port}");
        let mut all = vec!["--web.listen-address", &listen, "--tip-interval", "500ms"];
        all.extend_from_slice(args);
        let mut command = match ulimit {
            Some(limits) => {
                let mut command = Command::new("sh");
                command
                    .arg("-c")
                    .arg(format!("ulimit {limits} && exec \"$0\" \"$@\""))
                    .arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let child = command
            .args(&all)
            .env("DBSYNC_EXPORTER_DATABASE_URL", db.reader_url())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let exporter = Exporter {
            child: Some(child),
            port,
        };
        eventually(Duration::from_secs(30), "the exporter's tip", || async {
            let body = exporter.get("/metrics").await.ok()?;
            (value(&body, "dbsync_up") == Some(1.0)).then_some(())
        })
        .await;
        exporter
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn get(&self, path: &str) -> Result<String, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        client
            .get(format!("{}{path}", self.base()))
            .send()
            .await?
            .text()
            .await
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits for the process to exit by itself.
    fn wait(&mut self) -> std::process::ExitStatus {
        self.child.as_mut().unwrap().wait().unwrap()
    }

    /// Kills the process and returns what it wrote.
    fn kill(mut self) -> std::process::Output {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        child.wait_with_output().unwrap()
    }

    /// A line of `/proc/<pid>/status`, in kB.
    fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap()
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// utime + stime, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    fn signal(&self, name: &str) {
        Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
    }
}

async fn fresh_db(name: &str) -> TestDatabase {
    let db = Cluster::shared().create_database(name).await;
    chain(&db, SchemaVersion::V13_7, "preview", unix_now() - 5, 3).await;
    db
}

/// Peers that misbehave in every way a broken or hostile server can.
async fn hostile_peers() -> Vec<String> {
    let chunk = || bytes::Bytes::from(vec![b' '; 64 * 1024]);
    let app = axum::Router::new()
        // 500 MB announced.
        .route(
            "/huge/tip",
            get(move || async move {
                let body = Body::from_stream(stream::iter(
                    (0..8000).map(move |_| Ok::<_, std::io::Error>(chunk())),
                ));
                (
                    [
                        (CONTENT_TYPE, "application/json"),
                        (CONTENT_LENGTH, "524288000"),
                    ],
                    body,
                )
            }),
        )
        // Endless, chunked, as fast as the socket takes it.
        .route(
            "/endless/tip",
            get(move || async move {
                let body =
                    Body::from_stream(stream::repeat_with(
                        move || Ok::<_, std::io::Error>(chunk()),
                    ));
                ([(CONTENT_TYPE, "application/json")], body)
            }),
        )
        // One byte a second.
        .route(
            "/drip/tip",
            get(|| async {
                let body = Body::from_stream(futures_util::StreamExt::then(
                    stream::repeat(()),
                    |()| async {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b" "))
                    },
                ));
                ([(CONTENT_TYPE, "application/json")], body)
            }),
        )
        .route(
            "/loop/tip",
            get(|| async { (StatusCode::FOUND, [(LOCATION, "/loop/tip")]).into_response() }),
        )
        .route(
            "/elsewhere/tip",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [(LOCATION, "http://example.invalid/tip")],
                )
                    .into_response()
            }),
        )
        .route(
            "/html/tip",
            get(|| async {
                (
                    [(CONTENT_TYPE, "text/html")],
                    "<html>block 999999999</html>",
                )
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    ["huge", "endless", "drip", "loop", "elsewhere", "html"]
        .iter()
        .map(|path| format!("{base}/{path}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_cost_bounded_memory_and_move_nothing() {
    let db = fresh_db("hostile_peers").await;
    let peers = hostile_peers().await;
    let peer_list = peers.join(",");
    let exporter = Exporter::start(
        &db,
        None,
        &[
            "--peer",
            &peer_list,
            "--peer.interval",
            "300ms",
            "--peer.timeout",
            "2s",
        ],
    )
    .await;
    // Enough rounds for every peer to have been polled several times (the failing ones back
    // off from 300 ms doubling).
    tokio::time::sleep(Duration::from_secs(8)).await;
    let body = exporter.get("/metrics").await.unwrap();
    for peer in &peers {
        assert_eq!(
            must(&body, &format!("dbsync_peer_up{{peer=\"{peer}\"}}")),
            0.0,
            "{peer}"
        );
    }
    assert_eq!(value(&body, "dbsync_fleet_lag_blocks"), None);
    assert_eq!(
        must(&body, "dbsync_health_state{state=\"up\"}"),
        1.0,
        "{body}"
    );
    let health = exporter.get("/health").await.unwrap();
    assert!(
        health.starts_with(r#"{"status":"up","reasons":[]"#),
        "{health}"
    );
    let peak_kb = exporter.status_kb("VmHWM:");
    println!("hostile peers: peak RSS {} KiB", peak_kb);
    assert!(peak_kb < 32 * 1024, "peak RSS {peak_kb} KiB");
}

/// Opens `n` connections to `port`, each sending `prefix` and then nothing.
async fn hold(port: u16, n: usize, prefix: &'static [u8]) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for batch in 0..n.div_ceil(250) {
        let size = 250.min(n - batch * 250);
        let connects = (0..size).map(|_| async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            stream.write_all(prefix).await.ok()?;
            Some(stream)
        });
        streams.extend(
            futures_util::future::join_all(connects)
                .await
                .into_iter()
                .flatten(),
        );
    }
    streams
}

/// Reads until EOF or error; true when the server closed the socket.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_and_slowloris_sockets_under_a_low_fd_limit() {
    rlimit::increase_nofile_limit(20_000).unwrap();
    let db = fresh_db("slowloris").await;
    let exporter = Exporter::start(
        &db,
        Some("-Sn 1024"),
        &[
            "--web.header-read-timeout",
            "3s",
            "--web.idle-timeout",
            "4s",
        ],
    )
    .await;
    // 2,500 keep-alive connections that asked once and went quiet, 2,500 that never finish
    // their headers.
    let mut idle = hold(
        exporter.port,
        2500,
        b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let mut slow = hold(exporter.port, 2500, b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
    println!(
        "opened {} idle and {} slowloris connections; exporter fds {}",
        idle.len(),
        slow.len(),
        exporter.open_fds()
    );
    assert!(
        idle.len() + slow.len() > 4000,
        "the flood reached the server"
    );
    // The cap (512) holds: the oldest idle sockets were closed to admit the new ones. An
    // evicted connection's task closes its socket when it next runs, so on a loaded machine
    // the count settles a moment after the flood; 1 s is well inside both timeouts (the
    // newest sockets are younger than that), and without the cap the process would sit at
    // its 1024 fd limit.
    let settle = Instant::now() + Duration::from_secs(1);
    while exporter.open_fds() >= 700 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(exporter.open_fds() < 700, "{} fds", exporter.open_fds());
    // A new client is served at once.
    for path in ["/metrics", "/health"] {
        let started = Instant::now();
        let body = exporter.get(path).await.unwrap();
        println!("{path} during the flood: {:?}", started.elapsed());
        assert!(body.contains("up"), "{path}: {body}");
    }
    // The timeouts close what the cap left open.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut still_open = 0;
    for stream in idle.iter_mut().chain(slow.iter_mut()) {
        if !closed(stream).await {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "sockets left open by the timeouts");
    assert!(exporter.open_fds() < 64, "{} fds", exporter.open_fds());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_half_sent_requests_exits_within_the_deadline() {
    let db = fresh_db("sigterm").await;
    let mut exporter = Exporter::start(&db, None, &["--web.shutdown-timeout", "2s"]).await;
    let _slow = hold(exporter.port, 300, b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
    let started = Instant::now();
    exporter.signal("TERM");
    let status = tokio::task::block_in_place(|| exporter.wait());
    let took = started.elapsed();
    println!("SIGTERM with 300 half-sent requests: exited in {took:?}");
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accept_loops_do_not_spin_at_descriptor_exhaustion() {
    let db = fresh_db("emfile").await;
    let agent_port = free_port();
    let agent = format!("127.0.0.1:{agent_port}");
    let exporter = Exporter::start(
        &db,
        Some("-n 64"),
        &["--agent.listen-address", &agent, "--log-level", "warn"],
    )
    .await;
    // Idle HTTP connections until the exporter has no descriptor left.
    let _held = hold(exporter.port, 100, b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let _agent_waiting: Vec<TcpStream> = hold(agent_port, 20, b"").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ticks = exporter.cpu_ticks();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let spent = exporter.cpu_ticks() - ticks;
    println!("CPU at descriptor exhaustion: {spent} ticks in 3 s");
    // A spinning loop burns ~300 ticks (a whole core); backing off costs almost nothing.
    assert!(spent < 60, "{spent} ticks in 3 s");
    let output = exporter.kill();
    let log = String::from_utf8_lossy(&output.stderr);
    let failures = log.matches("accept failed").count();
    println!("accept failure log lines: {failures}");
    assert!((1..=6).contains(&failures), "{log}");
}
