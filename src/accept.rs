//! Accept loops that survive running out of resources.
//!
//! When `accept` fails (most often EMFILE: out of file descriptors) the pending connection
//! stays queued, so retrying at once fails again at once: a loop that only logs and continues
//! spins a core and floods the log. [`AcceptBackoff`] waits 10 ms after a failure, doubling
//! up to 1 s, and logs at most once per 10 s with the number of failures since the last line.

use std::time::Duration;

use tokio::time::Instant;

const FIRST_DELAY: Duration = Duration::from_millis(10);
const MAX_DELAY: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Backoff and log rate limit for one listener.
#[derive(Debug)]
pub struct AcceptBackoff {
    listener: &'static str,
    delay: Duration,
    failures_unlogged: u64,
    last_log: Option<Instant>,
}

impl AcceptBackoff {
    /// Backoff for the listener named `listener` in log lines.
    pub fn new(listener: &'static str) -> AcceptBackoff {
        AcceptBackoff {
            listener,
            delay: FIRST_DELAY,
            failures_unlogged: 0,
            last_log: None,
        }
    }

    /// A connection was accepted: the next failure starts the backoff afresh.
    pub fn succeeded(&mut self) {
        self.delay = FIRST_DELAY;
    }

    /// `accept` failed: how long to wait before the next attempt (logged, rate-limited).
    pub fn failed(&mut self, error: &std::io::Error) -> Duration {
        self.failures_unlogged += 1;
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|last| now.duration_since(last) >= LOG_EVERY)
        {
            tracing::warn!(
                listener = self.listener,
                %error,
                failures = self.failures_unlogged,
                "accept failed; backing off"
            );
            self.failures_unlogged = 0;
            self.last_log = Some(now);
        }
        let delay = self.delay;
        self.delay = (self.delay * 2).min(MAX_DELAY);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn delays_double_to_a_second_and_reset_after_a_success() {
        let error = std::io::Error::from_raw_os_error(24);
        let mut backoff = AcceptBackoff::new("test");
        let delays: Vec<u64> = (0..9)
            .map(|_| backoff.failed(&error).as_millis() as u64)
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        // Logged once (the first), the other eight wait for the next line.
        assert_eq!(backoff.failures_unlogged, 8);
        tokio::time::advance(LOG_EVERY).await;
        backoff.failed(&error);
        assert_eq!(backoff.failures_unlogged, 0);
        backoff.succeeded();
        assert_eq!(backoff.failed(&error), FIRST_DELAY);
    }
}
