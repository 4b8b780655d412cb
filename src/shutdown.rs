//! Process signals: the first SIGINT or SIGTERM starts a graceful shutdown, a second one
//! exits at once, and SIGHUP never kills the process (its default action would): it asks for
//! a reload ([`hangups`]).

use std::sync::OnceLock;

use tokio::signal::unix::{signal as unix_signal, Signal, SignalKind};
use tokio::sync::watch;

/// Counts SIGHUPs; readers reload what they own when it moves.
fn hangup_counter() -> &'static watch::Sender<u64> {
    static HANGUPS: OnceLock<watch::Sender<u64>> = OnceLock::new();
    HANGUPS.get_or_init(|| watch::channel(0).0)
}

/// Changes on every SIGHUP (once [`signal`] listens).
pub fn hangups() -> watch::Receiver<u64> {
    hangup_counter().subscribe()
}

/// Exit status after a second stop signal: the graceful shutdown was cut short.
pub const FORCED_EXIT: i32 = 1;

/// Resolves on the first SIGINT or SIGTERM; from then on, another one exits the process at
/// once. SIGHUP is received (and logged) instead of ending the process.
pub async fn signal() {
    let (Some(mut interrupt), Some(mut terminate), hangup) = (
        listen(SignalKind::interrupt(), "SIGINT"),
        listen(SignalKind::terminate(), "SIGTERM"),
        listen(SignalKind::hangup(), "SIGHUP"),
    ) else {
        return std::future::pending().await;
    };
    if let Some(mut hangup) = hangup {
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                tracing::info!("SIGHUP received: reloading the web config (the peers file is re-read every poll round)");
                hangup_counter().send_modify(|count| *count += 1);
            }
        });
    }
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
        _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::warn!("second stop signal: exiting now");
        std::process::exit(FORCED_EXIT);
    });
}

fn listen(kind: SignalKind, name: &str) -> Option<Signal> {
    match unix_signal(kind) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::error!(%error, "cannot listen for {name}");
            None
        }
    }
}
