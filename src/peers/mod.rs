//! Polls other providers' sidecars for their tip, so each instance can tell whether it is
//! behind the fleet without a central service.
//!
//! Every `--peer.interval` the poller reads the peer list ([`list`]: flags plus
//! `--peers-file`, re-read each round), asks each peer's `/tip` ([`fetch`]: time, size and
//! redirects bounded), at most [`CONCURRENCY`] at a time, and replaces the peer list in the
//! store. A peer that fails is retried with exponential backoff (up to [`MAX_BACKOFF`]), so a
//! dead peer costs almost nothing. TLS certificates are verified (rustls, webpki roots).
//!
//! A peer's word is checked before it counts: a tip whose slot lies in the future of its
//! network's wall clock, or that claims more blocks ahead of our tip than slots (there is at
//! most one block per slot), cannot be true. Such a peer is reported down and logged once
//! per change of its problem, so one broken or lying provider cannot move our health.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

mod fetch;
mod list;
mod plausible;

use crate::config::PeerConfig;
use crate::store::{PeerStatus, Store};
use list::PeerList;
use plausible::implausible;

pub use fetch::MAX_BODY_BYTES;

/// Peers asked at the same time.
pub const CONCURRENCY: usize = 8;
/// Longest wait before retrying a failing peer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How far a peer's tip may lie ahead of the wall clock (clock skew; db-sync itself calls a
/// block "following" within 120 s).
pub const MAX_FUTURE_SECONDS: i64 = 120;

/// What we read from a peer's `/tip`.
#[derive(Debug, Deserialize)]
struct PeerTip {
    network: Option<String>,
    block_no: i64,
    slot_no: Option<i64>,
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
    /// Why each peer's last answer was not believed, to log changes only.
    implausible: HashMap<String, String>,
    list: PeerList,
}

impl PeerPoller {
    /// A poller for `config`, writing to `store`.
    pub fn new(config: PeerConfig, store: Arc<Store>) -> Result<PeerPoller, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(fetch::redirects())
            .user_agent(concat!("dbsync-exporter/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(PeerPoller {
            store,
            client,
            backoff: HashMap::new(),
            last: HashMap::new(),
            implausible: HashMap::new(),
            list: PeerList::new(&config),
            config,
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
        let peers = self.list.current();
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
                let result = fetch::fetch_tip(&client, &url)
                    .await
                    .map_err(Rejected::Unreachable);
                (label, result)
            });
        }
        while let Some(Ok((label, result))) = polls.join_next().await {
            let result = result.and_then(|tip| {
                let own = self.store.tip().map(|(tip, _)| tip);
                let verdict = implausible(&tip, own.as_ref(), self.store.now_unix() as i64);
                self.note_plausibility(&label, verdict.as_deref());
                match verdict {
                    Some(_) => Err(Rejected::Implausible),
                    None => Ok(tip),
                }
            });
            let backoff = self.backoff.entry(label.clone()).or_default();
            let status = match result {
                Ok(tip) => {
                    *backoff = Backoff::default();
                    PeerStatus {
                        peer: label.clone(),
                        up: true,
                        block_no: Some(tip.block_no),
                        slot_no: tip.slot_no,
                        network: tip.network,
                    }
                }
                // Not an outage: poll again on the normal interval, it may be fixed soon.
                Err(Rejected::Implausible) => {
                    *backoff = Backoff::default();
                    PeerStatus::down(label.clone())
                }
                Err(Rejected::Unreachable(error)) => {
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
                    PeerStatus::down(label.clone())
                }
            };
            self.last.insert(label, status);
        }
        let current: Vec<String> = peers.iter().map(label).collect();
        self.last.retain(|peer, _| current.contains(peer));
        self.implausible.retain(|peer, _| current.contains(peer));
        self.backoff.retain(|peer, _| current.contains(peer));
        let mut statuses: Vec<PeerStatus> = self.last.values().cloned().collect();
        statuses.sort_by(|a, b| a.peer.cmp(&b.peer));
        self.store.set_peers(statuses);
    }

    /// Logs a peer's problem when it starts, changes or ends.
    fn note_plausibility(&mut self, label: &str, problem: Option<&str>) {
        match problem {
            Some(why) if self.implausible.get(label).map(String::as_str) != Some(why) => {
                tracing::warn!(peer = %label, reason = %why, "ignoring the peer's tip");
                self.implausible.insert(label.to_owned(), why.to_owned());
            }
            None if self.implausible.remove(label).is_some() => {
                tracing::info!(peer = %label, "the peer's tip is plausible again");
            }
            _ => {}
        }
    }
}

/// A peer's label: its URL without a trailing slash.
fn label(url: &reqwest::Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// Why a poll did not yield a usable tip.
enum Rejected {
    /// The peer did not answer with a tip.
    Unreachable(String),
    /// It answered with a tip that cannot be true (logged when noticed).
    Implausible,
}
