//! The HTTP surface answered in-process (`tower::ServiceExt::oneshot`): status codes, content
//! types and exact bodies before and after the first tip.

use axum::body::{to_bytes, Body};
use axum::http::{header, Method, Request, StatusCode};
use dbsync_exporter::clock::Clock;
use serde_json::json;
use tower::ServiceExt;

use crate::fixtures::{app, empty_store, record_healthy, tip, NOW, TIP_AGE};

async fn call(
    app: &axum::Router,
    method: Method,
    path: &str,
    accept: Option<&str>,
) -> (StatusCode, String, String) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, String, String) {
    call(app, Method::GET, path, None).await
}

#[tokio::test]
async fn before_the_first_tip_everything_says_so() {
    let store = empty_store(Clock::pinned(NOW));
    let app = app(&store);
    let (status, _, body) = get(&app, "/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        json!({
            "status": "down",
            "reasons": [{"reason": "no_tip", "state": "down", "detail": "the tip has not been read yet"}],
            "tip": null
        })
    );
    let (status, content_type, body) = get(&app, "/tip").await;
    assert_eq!(
        (status, content_type.as_str(), body.as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "application/json",
            r#"{"error":"the tip has not been read yet"}"#
        )
    );
    assert_eq!(
        get(&app, "/ready").await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8".into(),
            "not ready: the tip has not been read yet\n".into()
        )
    );
    assert_eq!(
        get(&app, "/live").await,
        (
            StatusCode::OK,
            "text/plain; charset=utf-8".into(),
            "ok\n".into()
        )
    );
    let (status, content_type, body) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("\ndbsync_up 0\n"), "{body}");
    assert!(
        body.contains("\ndbsync_health_reason{reason=\"no_tip\"} 1\n"),
        "{body}"
    );
    assert!(
        !body.contains("dbsync_block_height"),
        "no tip, no height: {body}"
    );
}

#[tokio::test]
async fn after_the_first_tip_the_instance_is_up_and_serves_its_tip() {
    let store = empty_store(Clock::pinned(NOW));
    record_healthy(&store);
    let app = app(&store);
    let tip = tip();
    let expected_tip = json!({
        "network": "mainnet",
        "block_no": 12_345_678,
        "slot_no": tip.slot_no,
        "epoch_no": 671,
        "hash": "ab".repeat(32),
        "time": "2026-12-01T23:59:48Z",
        "time_unix": NOW as i64 - TIP_AGE,
        "age_seconds": 12.0
    });
    let (status, content_type, body) = get(&app, "/tip").await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, "application/json")
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        expected_tip
    );
    let (status, _, body) = get(&app, "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        json!({"status": "up", "reasons": [], "tip": expected_tip})
    );
    assert_eq!(get(&app, "/ready").await.2, "ready\n");
    let (status, content_type, body) = call(
        &app,
        Method::GET,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"));
    assert!(body.contains("\ndbsync_block_height 12345678\n"));
    // HEAD answers like GET without a body; other methods are refused with Allow.
    let (status, _, body) = call(&app, Method::HEAD, "/metrics", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    let response = app
        .clone()
        .oneshot(
            Request::builder()
                .method(Method::POST)
                .uri("/metrics")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[header::ALLOW], "GET,HEAD");
    assert_eq!(get(&app, "/nothing-here").await.0, StatusCode::NOT_FOUND);
}
