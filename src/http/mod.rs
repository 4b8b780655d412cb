//! The HTTP surface: `/metrics`, `/health`, `/tip`, `/live`, `/ready` and a landing page.
//!
//! Every handler reads the store; none touches the database. Only GET and HEAD are routed
//! (axum answers other methods with 405 and an `Allow` header, unknown paths with 404).

mod connections;
mod server;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::chain::rfc3339;
use crate::health::{Finding, HealthPolicy, State as HealthState};
use crate::metrics::{self, Exposition, Format};
use crate::store::Store;

pub use server::serve;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Latest check results.
    pub store: Arc<Store>,
    /// The `/metrics` body, rendered from the store.
    pub exposition: Arc<Exposition>,
    /// The health policy.
    pub policy: Arc<HealthPolicy>,
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics_handler))
        .route("/health", get(health))
        .route("/tip", get(tip))
        .route("/live", get(live))
        .route("/ready", get(ready))
        .with_state(state)
}

async fn metrics_handler(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    let format = metrics::negotiate(accept);
    match state.exposition.render(format) {
        Ok(body) => {
            let content_type = match format {
                Format::OpenMetrics => metrics::OPENMETRICS_CONTENT_TYPE,
                Format::Text => metrics::TEXT_CONTENT_TYPE,
            };
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Err(error) => {
            tracing::error!(%error, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `/health` body.
#[derive(Serialize)]
struct HealthBody {
    status: HealthState,
    reasons: Vec<Finding>,
    tip: Option<TipBody>,
}

async fn health(State(state): State<AppState>) -> Response {
    let now = state.store.now_unix();
    let report = state
        .policy
        .evaluate(&state.store.snapshot(), &state.store.peers(), now);
    let code = if report.state == HealthState::Up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = HealthBody {
        status: report.state,
        reasons: report.reasons,
        tip: tip_body(&state.store, now),
    };
    (code, Json(body)).into_response()
}

/// `/tip` body: what peers compare themselves with.
#[derive(Serialize)]
struct TipBody {
    network: Option<String>,
    block_no: i64,
    slot_no: i64,
    epoch_no: i64,
    hash: String,
    time: String,
    time_unix: i64,
    age_seconds: f64,
}

fn tip_body(store: &Store, now: f64) -> Option<TipBody> {
    let (tip, _) = store.tip()?;
    Some(TipBody {
        network: tip.network.clone(),
        block_no: tip.block_no,
        slot_no: tip.slot_no,
        epoch_no: tip.epoch_no,
        age_seconds: (tip.age_seconds(now) * 1000.0).round() / 1000.0,
        time: rfc3339(tip.time_unix),
        time_unix: tip.time_unix,
        hash: tip.hash,
    })
}

async fn tip(State(state): State<AppState>) -> Response {
    match tip_body(&state.store, state.store.now_unix()) {
        Some(body) => Json(body).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": "the tip has not been read yet"})),
        )
            .into_response(),
    }
}

async fn live() -> &'static str {
    "ok\n"
}

async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.store.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the tip has not been read yet\n",
        )
    }
}

async fn index() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html><head><title>dbsync-exporter</title></head><body>",
        "<h1>dbsync-exporter</h1><p>Prometheus exporter and health sidecar for cardano-db-sync, version ",
        env!("CARGO_PKG_VERSION"),
        ".</p><ul>",
        "<li><a href=\"/metrics\">/metrics</a>: cached check results for Prometheus</li>",
        "<li><a href=\"/health\">/health</a>: routing state (200 up, 503 otherwise) with reasons</li>",
        "<li><a href=\"/tip\">/tip</a>: the newest block as JSON</li>",
        "<li><a href=\"/live\">/live</a>: liveness</li>",
        "<li><a href=\"/ready\">/ready</a>: readiness (after the first tip read)</li>",
        "</ul></body></html>\n"
    ))
}
