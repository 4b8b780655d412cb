//! Polls other providers' sidecars for their tip, so each instance can tell whether it is
//! behind the fleet without a central service.
//!
//! Every `--peer.interval` the poller reads the peer list (flags plus `--peers-file`,
//! re-read each round so peers can be added without a restart), asks each peer's `/tip`
//! with a timeout, at most [`CONCURRENCY`] at a time, and replaces the peer list in the
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

use crate::chain::{can_lead, NetworkParams};
use crate::checks::Tip;
use crate::config::{parse_peer_url, PeerConfig};
use crate::store::{PeerStatus, Store};

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
            implausible: HashMap::new(),
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

/// Why a poll did not yield a usable tip.
enum Rejected {
    /// The peer did not answer with a tip.
    Unreachable(String),
    /// It answered with a tip that cannot be true (logged when noticed).
    Implausible,
}

/// Why `peer` cannot be telling the truth, judged against the wall clock at `now_unix` and
/// our own tip; `None` when it can.
fn implausible(peer: &PeerTip, own: Option<&Tip>, now_unix: i64) -> Option<String> {
    let Some(slot) = peer.slot_no else {
        return Some("its /tip has no slot_no, so it cannot be checked".into());
    };
    let own = own.filter(|own| own.network == peer.network);
    let params = match own {
        Some(own) => own.params.clone(),
        None => peer.network.as_deref().and_then(NetworkParams::known),
    };
    if let Some(params) = params {
        let ahead = params.slot_time(slot) - now_unix;
        if ahead > MAX_FUTURE_SECONDS {
            return Some(format!(
                "its tip slot {slot} is {ahead} s ahead of the wall clock (at most {MAX_FUTURE_SECONDS} s)"
            ));
        }
    }
    let own = own?;
    let blocks_ahead = peer.block_no.saturating_sub(own.block_no);
    let slots_ahead = slot.saturating_sub(own.slot_no);
    (!can_lead(blocks_ahead, slots_ahead)).then(|| {
        format!(
            "it claims {blocks_ahead} blocks ahead of our tip in {slots_ahead} slots (at most one block per slot)"
        )
    })
}

async fn fetch_tip(client: &reqwest::Client, base: &reqwest::Url) -> Result<PeerTip, Rejected> {
    fetch(client, base).await.map_err(Rejected::Unreachable)
}

async fn fetch(client: &reqwest::Client, base: &reqwest::Url) -> Result<PeerTip, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02 00:00:00 UTC.
    const NOW: i64 = 1_796_169_600;

    fn own(block_no: i64, slot_no: i64) -> Tip {
        Tip {
            id: block_no,
            block_no,
            slot_no,
            epoch_no: 0,
            hash: "00".into(),
            time_unix: 0,
            network: Some("mainnet".into()),
            params: NetworkParams::known("mainnet"),
        }
    }

    fn claim(block_no: i64, slot_no: Option<i64>) -> PeerTip {
        PeerTip {
            network: Some("mainnet".into()),
            block_no,
            slot_no,
        }
    }

    #[test]
    fn honest_tips_are_believed() {
        let slot = NetworkParams::known("mainnet").unwrap().slot_at(NOW);
        let us = own(12_000_000, slot - 100);
        assert_eq!(
            implausible(&claim(12_000_004, Some(slot)), Some(&us), NOW),
            None
        );
        assert_eq!(
            implausible(&claim(11_999_000, Some(slot - 9000)), Some(&us), NOW),
            None
        );
        // Exactly one block per slot is possible; slightly ahead of our clock too.
        assert_eq!(
            implausible(&claim(12_000_100, Some(slot)), Some(&us), NOW),
            None
        );
        assert_eq!(
            implausible(&claim(12_000_010, Some(slot + 120)), Some(&us), NOW),
            None
        );
        // Without our own tip only the clock can be checked.
        assert_eq!(
            implausible(&claim(999_999_999, Some(slot)), None, NOW),
            None
        );
    }

    #[test]
    fn impossible_tips_are_refused_with_the_reason() {
        let slot = NetworkParams::known("mainnet").unwrap().slot_at(NOW);
        let us = own(12_000_000, slot - 100);
        assert_eq!(
            implausible(&claim(999_999_999, Some(slot)), Some(&us), NOW).as_deref(),
            Some("it claims 987999999 blocks ahead of our tip in 100 slots (at most one block per slot)")
        );
        assert_eq!(
            implausible(&claim(12_000_101, Some(slot)), Some(&us), NOW).as_deref(),
            Some("it claims 101 blocks ahead of our tip in 100 slots (at most one block per slot)")
        );
        assert_eq!(
            implausible(&claim(12_000_005, Some(slot + 121)), Some(&us), NOW).as_deref(),
            Some(&*format!(
                "its tip slot {} is 121 s ahead of the wall clock (at most 120 s)",
                slot + 121
            ))
        );
        // The clock applies to a known network even before we have a tip of our own.
        assert!(implausible(&claim(1, Some(slot + 3600)), None, NOW).is_some());
        assert_eq!(
            implausible(&claim(12_000_001, None), Some(&us), NOW).as_deref(),
            Some("its /tip has no slot_no, so it cannot be checked")
        );
    }
}
