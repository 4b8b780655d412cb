//! Asking one peer for its tip, with everything about the answer bounded: the whole request
//! (connect, headers, body) within `--peer.timeout` (the client's timeout covers the body),
//! at most [`MAX_BODY_BYTES`] of body, a JSON content type, and redirects only within the
//! peer's own host. Whatever a broken or hostile peer sends, one poll costs at most that much
//! memory and time.

use reqwest::header::CONTENT_TYPE;
use reqwest::redirect::Policy;

use super::PeerTip;
use crate::error_text::with_causes;

/// Largest `/tip` body read; a real one is about 300 bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Redirects followed (same host only).
const MAX_REDIRECTS: usize = 3;

/// The redirect policy: same host, a few hops.
pub(super) fn redirects() -> Policy {
    Policy::custom(|attempt| {
        let same_host = attempt
            .previous()
            .first()
            .is_some_and(|first| first.host_str() == attempt.url().host_str());
        if !same_host {
            attempt.error("redirect to another host")
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

/// The peer's `/tip`, or why not.
pub(super) async fn fetch_tip(
    client: &reqwest::Client,
    base: &reqwest::Url,
) -> Result<PeerTip, String> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    let url = base.join("tip").map_err(|error| error.to_string())?;
    let mut response = client.get(url).send().await.map_err(describe)?;
    if !response.status().is_success() {
        return Err(format!("/tip answered {}", response.status()));
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(format!("/tip is not JSON (content type {content_type:?})"));
    }
    if response
        .content_length()
        .is_some_and(|length| length > MAX_BODY_BYTES as u64)
    {
        return Err(format!("/tip body larger than {MAX_BODY_BYTES} bytes"));
    }
    let mut body = Vec::with_capacity(1024);
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("/tip body larger than {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|error| format!("unreadable /tip: {error}"))
}

/// The error and its causes, without the URL (it is the peer label already).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let head = if error.is_timeout() {
        "timed out (--peer.timeout)".to_owned()
    } else {
        error.to_string()
    };
    with_causes(head, &error)
}
