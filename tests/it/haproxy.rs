//! A real HAProxy (Debian's package) in front of two instances, routed by the sidecars'
//! agent checks: a stalled tip drains and then takes an instance out, a moving tip brings it
//! back, and traffic follows.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dbsync_exporter::chain::NetworkParams;
use dbsync_fixture::{Cluster, Fixture, NewBlock, SchemaVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};

use crate::common::{chain, config, eventually, unix_now, wait_for_value, Exporter};

/// HAProxy as a child process, killed on drop.
struct Haproxy {
    child: Child,
    dir: PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Haproxy {
    fn socket(&self) -> PathBuf {
        self.dir.join("admin.sock")
    }

    /// `status` of each server of backend `instances`, from the stats socket's CSV.
    async fn statuses(&self) -> Vec<(String, String)> {
        let Ok(mut stream) = UnixStream::connect(self.socket()).await else {
            return Vec::new();
        };
        stream.write_all(b"show stat\n").await.unwrap();
        let mut csv = String::new();
        stream.read_to_string(&mut csv).await.unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (px, sv, status) = (column("pxname"), column("svname"), column("status"));
        lines
            .map(|line| line.split(',').collect::<Vec<_>>())
            .filter(|row| {
                row.len() > status
                    && row[px] == "instances"
                    && !matches!(row[sv], "FRONTEND" | "BACKEND")
            })
            .map(|row| (row[sv].to_owned(), row[status].to_owned()))
            .collect()
    }

    async fn status_of(&self, server: &str) -> String {
        self.statuses()
            .await
            .into_iter()
            .find(|(s, _)| s == server)
            .map(|(_, status)| status)
            .unwrap_or_default()
    }
}

fn haproxy_binary() -> &'static str {
    for candidate in ["/usr/sbin/haproxy", "/usr/bin/haproxy"] {
        if Path::new(candidate).exists() {
            return candidate;
        }
    }
    panic!("haproxy not found: install Debian's haproxy package (./scripts/test does)");
}

/// An instance's "API": answers every request with the instance's name.
async fn api_server(name: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(move || async move { name });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// Keeps adding a block at the wall clock every 300 ms, unless stalled.
fn follow(
    mut fixture: Fixture,
    network: &'static str,
    stalled: Arc<AtomicBool>,
    mut block_no: i64,
) {
    let params = NetworkParams::known(network).unwrap();
    tokio::spawn(async move {
        loop {
            if !stalled.load(Ordering::Relaxed) {
                block_no += 1;
                let slot = params.slot_at(unix_now());
                let epoch = params.epoch_of_slot(slot);
                let hash = fixture.next_hash(block_no);
                fixture
                    .insert_block(NewBlock {
                        block_no: Some(block_no),
                        slot_no: Some(slot),
                        epoch_no: Some(epoch),
                        epoch_slot_no: Some(slot - params.epoch_first_slot(epoch)),
                        time_unix: params.slot_time(slot),
                        hash,
                        proto_major: 10,
                        proto_minor: 0,
                        tx_count: 0,
                    })
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
}

/// Sends `n` requests through HAProxy and returns who answered.
async fn route(port: u16, n: usize) -> Vec<String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut answers = Vec::new();
    for _ in 0..n {
        let response = client
            .get(format!("http://127.0.0.1:{port}/api/v1/tip"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        answers.push(response.text().await.unwrap());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_routes_only_to_instances_in_sync() {
    let mut agents = Vec::new();
    let mut stalls = Vec::new();
    let mut exporters = Vec::new();
    for name in ["a", "b"] {
        let db = Cluster::shared()
            .create_database(&format!("haproxy_{name}"))
            .await;
        let fixture = chain(&db, SchemaVersion::V13_6, "preview", unix_now(), 3).await;
        let stalled = Arc::new(AtomicBool::new(false));
        follow(fixture, "preview", stalled.clone(), 1002);
        stalls.push(stalled);
        let agent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        agents.push(agent.local_addr().unwrap().port());
        let mut settings = config(&db.reader_url());
        settings.health.drain_tip_age = Duration::from_secs(4);
        settings.health.max_tip_age = Duration::from_secs(8);
        let exporter = Exporter::start_on(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            Some(agent),
            settings,
        )
        .await;
        wait_for_value(&exporter, "dbsync_up", 1.0).await;
        exporters.push(exporter);
    }
    let apis = [api_server("a").await, api_server("b").await];
    let frontend = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let dir =
        std::env::temp_dir().join(format!("dbsync-haproxy-{}-{frontend}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let servers: String = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            format!(
                "  server {name} 127.0.0.1:{api} check inter 500ms agent-check agent-addr 127.0.0.1 agent-port {agent} agent-inter 300ms\n",
                api = apis[i],
                agent = agents[i]
            )
        })
        .collect();
    let cfg = format!(
        "global\n  stats socket {sock} mode 600 level admin\n\
         defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n\
         frontend api\n  bind 127.0.0.1:{frontend}\n  default_backend instances\n\
         backend instances\n  balance roundrobin\n{servers}",
        sock = dir.join("admin.sock").display()
    );
    std::fs::write(dir.join("haproxy.cfg"), &cfg).unwrap();
    let check = Command::new(haproxy_binary())
        .args(["-c", "-f"])
        .arg(dir.join("haproxy.cfg"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c:\n{}\n{cfg}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new(haproxy_binary())
        .args(["-db", "-f"])
        .arg(dir.join("haproxy.cfg"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let haproxy = Haproxy { child, dir };

    let up = |server: &'static str, expected: &'static str| {
        let haproxy = &haproxy;
        async move {
            eventually(
                Duration::from_secs(30),
                &format!("{server} {expected}"),
                || async {
                    let status = haproxy.status_of(server).await;
                    status.starts_with(expected).then_some(status)
                },
            )
            .await
        }
    };
    up("a", "UP").await;
    up("b", "UP").await;
    let answers = route(frontend, 10).await;
    assert!(
        answers.contains(&"a".to_owned()) && answers.contains(&"b".to_owned()),
        "{answers:?}"
    );

    // a's tip stalls: drain past 4 s, down past 8 s; traffic goes to b only.
    stalls[0].store(true, Ordering::Relaxed);
    up("a", "DRAIN").await;
    up("a", "DOWN").await;
    assert!(haproxy.status_of("b").await.starts_with("UP"));
    let answers = route(frontend, 10).await;
    assert!(answers.iter().all(|who| who == "b"), "{answers:?}");

    // a's tip moves again: it is put back.
    stalls[0].store(false, Ordering::Relaxed);
    up("a", "UP").await;
    let answers = route(frontend, 10).await;
    assert!(
        answers.contains(&"a".to_owned()) && answers.contains(&"b".to_owned()),
        "{answers:?}"
    );
    drop(haproxy);
    for exporter in exporters {
        exporter.shutdown().await;
    }
}
