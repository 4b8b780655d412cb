//! Test support for `dbsync-exporter`: a db-sync-compatible schema, throwaway PostgreSQL
//! clusters and a chain fixture builder.
//!
//! # Layout
//! - [`schema`]: the DDL of db-sync 13.2, 13.3, 13.6 and 13.7.2+, with or without the
//!   near-tip (stage-4) indexes, plus the Koios `grest` bookkeeping table.
//! - [`bootstrap`]: the same schema through any client, for tools that only hold a URL.
//! - [`cluster`]: a PostgreSQL cluster per test process (or a private one that can be stopped
//!   and restarted), fresh databases, and the low-privilege `dbsync_reader` role.
//! - [`fixture`]: a builder that fills a database with blocks, rollbacks and epoch sync times.
//! - [`utxo`]: transactions with their accounting columns, outputs, inputs, withdrawals and
//!   the collateral/reference declarations of valid Plutus transactions.
//! - [`blocks`]: block-level faults (a block's number or time), transactions with amounts,
//!   the database's clock and the stored epoch rows.
//! - [`ledger`]: ledger data on top of that chain (certificates, MIR, pools, rewards,
//!   `ada_pots`, `epoch_param`, stake distributions), the same calls on every release.
//! - [`withdrawals`]: `withdrawal` rows, script stake addresses and invalid transactions.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod blocks;
pub mod bootstrap;
pub mod cluster;
pub mod fixture;
pub mod ledger;
pub mod schema;
pub mod utxo;
pub mod withdrawals;

pub use cluster::{Cluster, TestDatabase};
pub use fixture::{Fixture, NewBlock};
pub use ledger::{AdaPots, MirSource, MAX_SUPPLY};
pub use schema::{ddl, grest_ddl, near_tip_ddl, IndexSet, ParseSchemaVersionError, SchemaVersion};
pub use utxo::{Transfer, CONSUMED_TOKEN};
