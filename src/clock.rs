//! Wall-clock time: what every "how old is this" compares with (tip age, cache ages, the
//! grace of failed runs, last-success timestamps).
//!
//! One handle, cloned wherever "now" is needed, so a test can pin the time the whole
//! exporter sees instead of depending on when it runs. Durations between two instants of the
//! exporter's own (run times, intervals) use tokio's monotonic clock instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock, or a pinned one.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// `None`: the system clock. `Some`: the bits of a pinned unix time (f64).
    pinned: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that stays at `unix` seconds until [`Clock::set`] moves it.
    pub fn pinned(unix: f64) -> Clock {
        Clock {
            pinned: Some(Arc::new(AtomicU64::new(unix.to_bits()))),
        }
    }

    /// Moves a pinned clock (and every clone of it) to `unix`; no effect on the system clock.
    pub fn set(&self, unix: f64) {
        if let Some(pinned) = &self.pinned {
            pinned.store(unix.to_bits(), Ordering::Relaxed);
        }
    }

    /// Now, in unix seconds.
    pub fn now_unix(&self) -> f64 {
        match &self.pinned {
            Some(pinned) => f64::from_bits(pinned.load(Ordering::Relaxed)),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |since| since.as_secs_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_clock_moves_only_when_told_and_clones_follow() {
        let clock = Clock::pinned(1_000.5);
        let clone = clock.clone();
        assert_eq!(clone.now_unix(), 1_000.5);
        clock.set(2_000.0);
        assert_eq!(clone.now_unix(), 2_000.0);
        let system = Clock::system();
        system.set(1.0);
        assert!(system.now_unix() > 1_700_000_000.0);
    }
}
