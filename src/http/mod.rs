//! The HTTP surface: `/metrics`, `/health`, `/tip`, `/live`, `/ready` and a landing page.
//!
//! Every handler reads the store; none touches the database. Only GET and HEAD are routed
//! (axum answers other methods with 405 and an `Allow` header, unknown paths with 404). With
//! `--web.config.file`, every path but `/live` needs the basic-auth credentials, and the
//! configured headers go on every response ([`security`]).

mod connections;
pub mod security;
mod server;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::chain::rfc3339;
use crate::health::{Finding, HealthPolicy, State as HealthState};
use crate::metrics::{self, Exposition, Format};
use crate::store::Store;

pub use security::Security;
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
    /// TLS, basic auth and headers from `--web.config.file`.
    pub security: Arc<Security>,
}

/// The router.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics_handler))
        .route("/health", get(health))
        .route("/tip", get(tip))
        .route("/live", get(live))
        .route("/ready", get(ready));
    // Without a web config file nothing can ever ask for credentials or headers: no guard on
    // the scrape path.
    let routes = if state.security.is_configured() {
        routes.layer(axum::middleware::from_fn_with_state(state.clone(), guard))
    } else {
        routes
    };
    routes.with_state(state)
}

/// `/health` and `/live` alone (`--web.health-listen-address`: for load balancers that cannot
/// send credentials; bind it to an address only they reach).
pub fn health_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/live", get(live))
        .with_state(state)
}

/// Basic auth (all but `/live`) and the configured response headers.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Looked at per request, like exporter-toolkit: a rotated password applies at once, even
    // on a scraper's kept-alive connection (TLS settings apply per connection).
    let settings = state.security.current();
    if settings.requires_auth() && request.uri().path() != "/live" {
        let allowed = match credentials(request.headers()) {
            Some((user, password)) => state.security.allows(&settings, &user, &password).await,
            None => false,
        };
        if !allowed {
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"dbsync-exporter\""),
                )],
                "unauthorized\n",
            )
                .into_response();
        }
    }
    let mut response = next.run(request).await;
    for (name, value) in &settings.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// The user and password of a `Basic` `Authorization` header.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
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
