//! Polls other providers' sidecars for their tip, so each instance can tell whether it is
//! behind the fleet without a central service.
//!
//! Every `--peer.interval` the poller reads the peer list (flags plus `--peers-file`,
//! re-read each round so peers can be added without a restart), asks each peer's `/tip`
//! with a timeout, at most [`CONCURRENCY`] at a time, and replaces the peer list in the
//! store. A peer that fails is retried with exponential backoff (up to [`MAX_BACKOFF`]), so a
//! dead peer costs almost nothing. TLS certificates are verified (rustls, webpki roots).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::{parse_peer_url, PeerConfig};
use crate::store::{PeerStatus, Store};

/// Peers asked at the same time.
pub const CONCURRENCY: usize = 8;
/// Longest wait before retrying a failing peer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What we read from a peer's `/tip`.
#[derive(Debug, Deserialize)]
struct PeerTip {
    network: Option<String>,
    block_no: i64,
}

/// Retry bookkeeping for one peer.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    next_attempt: Option<Instant>,
}

/// The poller task.
pub struct PeerPoller {
    config: PeerConfig,
    store: Arc<Store>,
    client: reqwest::Client,
    backoff: HashMap<String, Backoff>,
    /// Last status per peer, kept while a peer waits out its backoff.
    last: HashMap<String, PeerStatus>,
}

impl PeerPoller {
    /// A poller for `config`, writing to `store`.
    pub fn new(config: PeerConfig, store: Arc<Store>) -> Result<PeerPoller, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("dbsync-exporter/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(PeerPoller {
            config,
            store,
            client,
            backoff: HashMap::new(),
            last: HashMap::new(),
        })
    }

    /// Whether any peer is configured at all.
    pub fn has_peers(config: &PeerConfig) -> bool {
        !config.urls.is_empty() || config.file.is_some()
    }

    /// Polls until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = ticker.tick() => {}
            }
            tokio::select! {
                _ = self.round() => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
    }

    /// One round over every peer that is not backing off.
    async fn round(&mut self) {
        let peers = self.peer_list();
        let now = Instant::now();
        let limit = Arc::new(Semaphore::new(CONCURRENCY));
        let mut polls = JoinSet::new();
        for url in &peers {
            let label = label(url);
            let due = self
                .backoff
                .get(&label)
                .and_then(|b| b.next_attempt)
                .is_none_or(|at| at <= now);
            if !due {
                continue;
            }
            let client = self.client.clone();
            let limit = limit.clone();
            let url = url.clone();
            polls.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let result = fetch_tip(&client, &url).await;
                (label, result)
            });
        }
        while let Some(Ok((label, result))) = polls.join_next().await {
            let backoff = self.backoff.entry(label.clone()).or_default();
            let status = match result {
                Ok(tip) => {
                    *backoff = Backoff::default();
                    PeerStatus {
                        peer: label.clone(),
                        up: true,
                        block_no: Some(tip.block_no),
                        network: tip.network,
                    }
                }
                Err(error) => {
                    backoff.failures += 1;
                    let delay = self
                        .config
                        .interval
                        .saturating_mul(1 << backoff.failures.min(6).saturating_sub(1))
                        .min(MAX_BACKOFF);
                    backoff.next_attempt = Some(Instant::now() + delay);
                    if backoff.failures == 1 {
                        tracing::warn!(peer = %label, %error, "peer unreachable");
                    }
                    PeerStatus {
                        peer: label.clone(),
                        up: false,
                        block_no: None,
                        network: None,
                    }
                }
            };
            self.last.insert(label, status);
        }
        let current: Vec<String> = peers.iter().map(label).collect();
        self.last.retain(|peer, _| current.contains(peer));
        self.backoff.retain(|peer, _| current.contains(peer));
        let mut statuses: Vec<PeerStatus> = self.last.values().cloned().collect();
        statuses.sort_by(|a, b| a.peer.cmp(&b.peer));
        self.store.set_peers(statuses);
    }

    /// Flag peers plus the file's, deduplicated.
    fn peer_list(&self) -> Vec<reqwest::Url> {
        let mut urls = self.config.urls.clone();
        if let Some(path) = &self.config.file {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    for line in text.lines().map(str::trim) {
                        if line.is_empty() || line.starts_with('#') {
                            continue;
                        }
                        match parse_peer_url(line) {
                            Ok(url) => urls.push(url),
                            Err(error) => {
                                tracing::warn!(file = %path.display(), %error, "skipping peer")
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "cannot read the peers file")
                }
            }
        }
        urls.sort();
        urls.dedup();
        urls
    }
}

/// A peer's label: its URL without a trailing slash.
fn label(url: &reqwest::Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

async fn fetch_tip(client: &reqwest::Client, base: &reqwest::Url) -> Result<PeerTip, String> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    let url = base.join("tip").map_err(|error| error.to_string())?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|error| error.without_url().to_string())?;
    if !response.status().is_success() {
        return Err(format!("/tip answered {}", response.status()));
    }
    response
        .json::<PeerTip>()
        .await
        .map_err(|error| format!("unreadable /tip: {}", error.without_url()))
}

/// Blocks between the best up peer on `network` and `own_block_no` (never negative);
/// `None` when no such peer answered.
pub fn fleet_lag(peers: &[PeerStatus], network: Option<&str>, own_block_no: i64) -> Option<u64> {
    let best = peers
        .iter()
        .filter(|peer| peer.up && peer.network.as_deref() == network)
        .filter_map(|peer| peer.block_no)
        .max()?;
    Some(best.saturating_sub(own_block_no).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, up: bool, network: &str, block_no: i64) -> PeerStatus {
        PeerStatus {
            peer: name.into(),
            up,
            block_no: Some(block_no),
            network: Some(network.into()),
        }
    }

    #[test]
    fn fleet_lag_compares_with_the_best_up_peer_on_the_same_network() {
        let peers = [
            peer("a", true, "mainnet", 100),
            peer("b", true, "mainnet", 120),
            peer("c", false, "mainnet", 500),
            peer("d", true, "preview", 9000),
        ];
        assert_eq!(fleet_lag(&peers, Some("mainnet"), 110), Some(10));
        assert_eq!(fleet_lag(&peers, Some("mainnet"), 130), Some(0));
        assert_eq!(fleet_lag(&peers, Some("preprod"), 1), None);
        assert_eq!(fleet_lag(&[], Some("mainnet"), 1), None);
    }
}
