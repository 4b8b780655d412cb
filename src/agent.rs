//! The HAProxy agent-check listener.
//!
//! HAProxy connects, reads one line, and closes (`agent-check agent-port N`). The line
//! always states the state explicitly, because only the agent can undo what it set: a
//! recovered instance must say `up ready` to be put back. Tested against HAProxy 2.6: the
//! `#reason` must be its own word (`down #tip too old`), or HAProxy ignores the line.
//!
//! - up: `up ready 100%` (with `--agent.weight-follows-lag`, the weight drops 10 points per
//!   block behind the best peer, to at least 10%)
//! - drain: `up drain`
//! - down: `down #<first reason>`

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::accept::AcceptBackoff;
use crate::health::{HealthPolicy, Report, State};
use crate::store::Store;

/// Connections answered at the same time; more are closed at once (HAProxy retries on its
/// next `agent-inter`).
pub const MAX_CONNECTIONS: usize = 64;
/// Longest time to write the line and close; a peer that does not read loses its answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves agent checks on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    store: Arc<Store>,
    policy: Arc<HealthPolicy>,
    weight_follows_lag: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = AcceptBackoff::new("agent");
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        let (mut stream, peer) = match accepted {
            Ok(accepted) => {
                backoff.succeeded();
                accepted
            }
            Err(error) => {
                let delay = backoff.failed(&error);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => continue,
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "agent connection refused: {MAX_CONNECTIONS} already open");
            continue;
        };
        let report = policy.evaluate(&store.snapshot(), &store.peers(), store.now_unix());
        let line = agent_line(&report, weight_follows_lag);
        tokio::spawn(async move {
            let reply = async {
                stream.write_all(line.as_bytes()).await?;
                stream.shutdown().await
            };
            match tokio::time::timeout(WRITE_TIMEOUT, reply).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%peer, %error, "agent reply failed"),
                Err(_) => tracing::debug!(%peer, "agent reply timed out"),
            }
            drop(slot);
        });
    }
}

/// The agent protocol line for `report`, newline included.
pub fn agent_line(report: &Report, weight_follows_lag: bool) -> String {
    match report.state {
        State::Up => {
            let weight = match (weight_follows_lag, report.fleet_lag_blocks) {
                (true, Some(lag)) => 100u64.saturating_sub(lag.saturating_mul(10)).max(10),
                _ => 100,
            };
            format!("up ready {weight}%\n")
        }
        State::Drain => "up drain\n".to_owned(),
        State::Down => {
            let reason = report
                .reasons
                .first()
                .map_or("unhealthy", |finding| finding.detail.as_str());
            // The reason runs to the end of the line; keep it on one line and free of the
            // protocol's word separators' look-alikes that could confuse a reader.
            let reason: String = reason
                .chars()
                .map(|c| if c.is_control() || c == ',' { ' ' } else { c })
                .collect();
            format!("down #{}\n", reason.trim())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Finding, Reason};

    fn report(state: State, lag: Option<u64>) -> Report {
        Report {
            state,
            reasons: match state {
                State::Up => vec![],
                _ => vec![Finding {
                    reason: Reason::TipStale,
                    state,
                    detail: "tip is 840 s old (max 600 s),\nreally".into(),
                }],
            },
            fleet_lag_blocks: lag,
        }
    }

    #[test]
    fn lines_state_the_state_explicitly() {
        assert_eq!(
            agent_line(&report(State::Up, None), false),
            "up ready 100%\n"
        );
        assert_eq!(agent_line(&report(State::Drain, None), false), "up drain\n");
        assert_eq!(
            agent_line(&report(State::Down, None), false),
            "down #tip is 840 s old (max 600 s)  really\n"
        );
    }

    #[test]
    fn weight_follows_lag_when_asked() {
        assert_eq!(
            agent_line(&report(State::Up, Some(3)), true),
            "up ready 70%\n"
        );
        assert_eq!(
            agent_line(&report(State::Up, Some(30)), true),
            "up ready 10%\n"
        );
        assert_eq!(
            agent_line(&report(State::Up, Some(3)), false),
            "up ready 100%\n"
        );
        assert_eq!(
            agent_line(&report(State::Up, None), true),
            "up ready 100%\n"
        );
    }
}
