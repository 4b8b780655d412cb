//! Where alerts end up: a real Alertmanager running the repository's
//! `docker/central/alertmanager/alertmanager.yml`, and a recorder standing in for the servers
//! it notifies (the Telegram Bot API's `POST /bot<token>/sendMessage`, and the webhook).
//!
//! The recorder is someone else's server, so it may be a fake: it answers what the Bot API
//! answers and keeps every request for the test to read.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::common::{eventually, repo};
use crate::process::{Server, Spec};

/// The bot token the test's Alertmanager uses.
pub const BOT_TOKEN: &str = "123456:test-token";

/// One request the recorder received.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub path: String,
    pub body: Value,
}

impl Delivery {
    /// The Telegram message text (empty for a webhook call).
    pub fn text(&self) -> &str {
        self.body["text"].as_str().unwrap_or_default()
    }

    pub fn chat_id(&self) -> &str {
        self.body["chat_id"].as_str().unwrap_or_default()
    }
}

/// The fake Bot API and webhook, on a free port; stopped on drop.
pub struct Recorder {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Delivery>>>,
    handle: JoinHandle<()>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .fallback(record)
            .with_state(received.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Recorder {
            addr,
            received,
            handle,
        }
    }

    /// Every Telegram message so far (`sendMessage` calls with the test's token).
    pub fn telegram(&self) -> Vec<Delivery> {
        let path = format!("/bot{BOT_TOKEN}/sendMessage");
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.path == path)
            .cloned()
            .collect()
    }

    /// Every webhook call so far.
    pub fn webhook(&self) -> Vec<Delivery> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.path == "/webhook")
            .cloned()
            .collect()
    }

    /// Telegram messages whose text mentions `alertname` and `instance`.
    pub fn messages_about(&self, alertname: &str, instance: &str) -> Vec<Delivery> {
        self.telegram()
            .into_iter()
            .filter(|d| d.text().contains(alertname) && d.text().contains(instance))
            .collect()
    }

    /// Waits (at most `limit`) until there are `count` Telegram messages about `alertname`
    /// on `instance` with `status` ("FIRING" / "RESOLVED"), and returns them.
    pub async fn wait_for(
        &self,
        limit: Duration,
        alertname: &str,
        instance: &str,
        status: &str,
        count: usize,
    ) -> Vec<Delivery> {
        eventually(
            limit,
            &format!("{count} {status} Telegram message(s) about {alertname} on {instance}"),
            || async {
                let all = self.messages_about(alertname, instance);
                let matching: Vec<Delivery> = all
                    .iter()
                    .filter(|d| d.text().contains(status))
                    .cloned()
                    .collect();
                if matching.len() >= count {
                    Ok(matching)
                } else {
                    Err(format!("{all:#?}\nall messages: {:#?}", self.telegram()))
                }
            },
        )
        .await
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

async fn record(
    State(received): State<Arc<Mutex<Vec<Delivery>>>>,
    uri: Uri,
    body: Bytes,
) -> Json<Value> {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    received.lock().unwrap().push(Delivery {
        path: uri.path().to_owned(),
        body: body.clone(),
    });
    // What the Bot API answers to sendMessage: the message it posted.
    Json(json!({
        "ok": true,
        "result": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": body["chat_id"].as_str().and_then(|c| c.parse::<i64>().ok()), "type": "group"},
            "text": body["text"],
        }
    }))
}

/// The on-call and team chat ids in the repository's Alertmanager config.
pub const ONCALL_CHAT: &str = "-1001000000001";
pub const TEAM_CHAT: &str = "-1001000000002";

/// `text` with each `(from, to)` replaced, where `from` must occur exactly `n` times: the
/// test then runs the repository's file with only these deployment values changed, and a
/// change to the file that moves them fails here instead of silently testing something else.
pub fn substitute(file: &str, text: &str, replacements: &[(&str, &str, usize)]) -> String {
    let mut out = text.to_owned();
    for (from, to, n) in replacements {
        assert_eq!(
            out.matches(from).count(),
            *n,
            "{file}: expected {from:?} {n} time(s)"
        );
        out = out.replace(from, to);
    }
    out
}

/// The repository's Alertmanager config with the recorder as Telegram's and the webhook's
/// server, Debian 0.25's inline `bot_token`, and 1 s grouping waits.
pub fn alertmanager_config(recorder: SocketAddr) -> Vec<(String, String)> {
    let dir = repo().join("docker/central/alertmanager");
    let config = std::fs::read_to_string(dir.join("alertmanager.yml")).unwrap();
    let api_url = format!("api_url: http://{recorder}");
    let webhook = format!("url: \"http://{recorder}/webhook\"");
    let token = format!("bot_token: \"{BOT_TOKEN}\"");
    let config = substitute(
        "alertmanager.yml",
        &config,
        &[
            ("api_url: https://api.telegram.org", &api_url, 2),
            ("bot_token_file: /run/secrets/telegram_bot_token", &token, 2),
            (
                "url: \"http://alert-webhook.example.internal:8080/alerts\"",
                &webhook,
                1,
            ),
            ("group_wait: 30s", "group_wait: 1s", 1),
            ("group_interval: 5m", "group_interval: 1s", 1),
        ],
    );
    let template = std::fs::read_to_string(dir.join("templates/dbsync.tmpl")).unwrap();
    vec![
        ("alertmanager.yml".to_owned(), config),
        ("templates/dbsync.tmpl".to_owned(), template),
    ]
}

/// Debian's `prometheus-alertmanager` with [`alertmanager_config`], clustering off.
pub async fn start_alertmanager(recorder: SocketAddr) -> Server {
    Server::start(Spec {
        name: "alertmanager",
        binary: "prometheus-alertmanager",
        files: alertmanager_config(recorder),
        args: Box::new(|dir, port| {
            vec![
                format!("--config.file={}", dir.join("alertmanager.yml").display()),
                format!("--storage.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                // no gossip port: tests run side by side
                "--cluster.listen-address=".to_owned(),
            ]
        }),
        ready_path: "/-/ready",
    })
    .await
}

/// The alerts Alertmanager holds (`/api/v2/alerts`), active or not.
pub async fn alertmanager_alerts(alertmanager: &Server) -> Result<Vec<Value>, String> {
    let response = reqwest::get(format!("{}/api/v2/alerts", alertmanager.base))
        .await
        .map_err(|e| e.to_string())?;
    response
        .json::<Vec<Value>>()
        .await
        .map_err(|e| e.to_string())
}
