//! dbsync-sim: a simulated cardano-db-sync database, for demos, end-to-end tests and
//! benchmarks of `dbsync-exporter`.
//!
//! It writes a database that looks like db-sync's to a reader: the schema of a chosen release
//! (from `dbsync-fixture`, the one schema definition), a history shaped like a chosen network
//! up to now, ledger data that obeys the rules the exporter's integrity checks enforce,
//! optionally a few planted faults, and a live follower that keeps adding blocks and rollbacks.
//!
//! It does not depend on the exporter: slots, epochs and times come from its own
//! [`slots`] arithmetic, checked against the networks' published anchor points, so a test
//! that compares the exporter's output with a simulated database checks the exporter
//! instead of repeating its arithmetic.
//!
//! # Layout
//! - [`slots`]: genesis constants and slot/epoch/time arithmetic per network.
//! - [`network`]: eras and protocol versions per network, on top of [`slots`].
//! - [`scale`]: what `small`, `mainnet` and `N` mean in rows.
//! - [`mod@init`]: `init` — schema, `schema_version`, `meta`, genesis row.
//! - [`plan`]: the history, decided in Rust: block layout per epoch, certificates, the
//!   ledger replay that derives instant rewards, refunds and pots from them, and the UTxO
//!   plan (a chain of change outputs from a genesis reservoir, deposits, the UTxO traps).
//! - [`load`]: writes a plan with server-side bulk SQL.
//! - [`faults`]: the faults `--faults` can plant and what the exporter should report.
//! - [`mod@generate`]: `generate` — plan, load, plant, index, analyze, report.
//! - [`mod@follow`]: `follow` — live blocks, epoch boundaries, rollbacks, stalls.
//! - [`progress`]: indicatif bars, hidden when not wanted.
//! - [`rng`]: a seeded, dependency-free PRNG so every run with a seed is reproducible.
//! - [`time`]: RFC 3339 timestamps and `1m30s`-style durations.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
pub mod faults;
pub mod follow;
pub mod generate;
pub mod init;
pub mod load;
pub mod network;
pub mod plan;
pub mod progress;
pub mod rng;
pub mod scale;
pub mod slots;
pub mod time;

pub use error::SimError;
pub use faults::{Fault, FaultSet, PlantedFault};
pub use follow::{follow, follow_with, FollowOptions, FollowReport, Rollbacks};
pub use generate::{generate, generate_on, GenerateOptions, GenerateReport};
pub use init::{init, InitOptions};
pub use network::Network;
pub use scale::Scale;

/// Total ADA supply in lovelace (Shelley genesis `maxLovelaceSupply`, the same on mainnet,
/// preprod and preview): every `ada_pots` row sums to it.
pub const MAX_LOVELACE_SUPPLY: i64 = 45_000_000_000_000_000;

/// Pool deposit (`epoch_param.pool_deposit`), refunded when a pool retires.
pub const POOL_DEPOSIT: i64 = 500_000_000;

/// Stake key deposit (`epoch_param.key_deposit`).
pub const KEY_DEPOSIT: i64 = 2_000_000;

/// Values of the genesis outputs, one genesis transaction each, in `tx.id` order (the
/// genesis supply is their sum). Each has a job in the simulated history:
/// 0. the reservoir every generated transaction's change descends from ([`GENESIS_RESERVOIR`]);
/// 1. a second collateral input of the Babbage phase-2-invalid trap;
/// 2. a second collateral input of the Conway phase-2-invalid trap;
/// 3. the only collateral of the Alonzo phase-2-invalid trap (no collateral return in Alonzo);
/// 4. spent by an early Shelley transaction, and again by the `double-spend` fault;
/// 5. never spent, like the unredeemed AVVM outputs on mainnet.
pub const GENESIS_OUTPUTS: [i64; 6] = [
    GENESIS_RESERVOIR,
    1_000_000_000,
    1_000_000_000,
    5_000_000,
    DOUBLE_SPENT_VALUE,
    30_000_000_000_000_000,
];

/// The reservoir (1e9 ADA): every generated transaction spends the previous one's change,
/// which shrinks by [`crate::load::DRAIN`] plus deposits and donations per transaction.
pub const GENESIS_RESERVOIR: i64 = 1_000_000_000_000_000;

/// Value of genesis output 4, the one the `double-spend` fault spends a second time.
pub const DOUBLE_SPENT_VALUE: i64 = 7_000_000;

/// Connects to `url` and drives the connection on a spawned task.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, SimError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| SimError::connect(&e))?;
    tokio::spawn(async move {
        // The error resurfaces on the client's next call.
        let _ = connection.await;
    });
    Ok(client)
}

/// Seconds since the Unix epoch, from the system clock.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
