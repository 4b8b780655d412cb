//! A store filled by hand, on a pinned clock: what a healthy mainnet instance's checks
//! would have found.

use std::sync::Arc;
use std::time::Duration;

use dbsync_exporter::chain::NetworkParams;
use dbsync_exporter::checks::info::EpochSync;
use dbsync_exporter::checks::{
    Cadence, CheckName, DatabaseSize, Findings, Grest, Info, RollbackStats, Tip, Verdict,
};
use dbsync_exporter::clock::Clock;
use dbsync_exporter::config::HealthConfig;
use dbsync_exporter::db::PoolStatus;
use dbsync_exporter::health::HealthPolicy;
use dbsync_exporter::http::{router, AppState, Security};
use dbsync_exporter::metrics::{Exposition, ProcessStats};
use dbsync_exporter::store::Store;

/// 2026-12-02 00:00:00 UTC: mainnet slot 204 603 309, in epoch 671.
pub const NOW: f64 = 1_796_169_600.0;
/// The tip: 12 s old.
pub const TIP_AGE: i64 = 12;

pub fn cadence(seconds: u64) -> Cadence {
    Cadence {
        interval: Duration::from_secs(seconds),
        timeout: Duration::from_secs(10),
    }
}

/// The store of a mainnet exporter with tip, rollback, info, grest and size registered,
/// nothing recorded yet.
pub fn empty_store(clock: Clock) -> Arc<Store> {
    Arc::new(Store::new(
        clock,
        [
            (CheckName::Tip, cadence(5)),
            (CheckName::Rollback, cadence(5)),
            (CheckName::Info, cadence(60)),
            (CheckName::Grest, cadence(60)),
            (CheckName::Size, cadence(300)),
        ],
    ))
}

pub fn tip() -> Tip {
    let params = NetworkParams::known("mainnet").unwrap();
    let time_unix = NOW as i64 - TIP_AGE;
    let slot_no = params.slot_at(time_unix);
    Tip {
        id: 13_000_042,
        block_no: 12_345_678,
        slot_no,
        epoch_no: params.epoch_of_slot(slot_no),
        hash: "ab".repeat(32),
        time_unix,
        network: Some("mainnet".into()),
        params: Some(params),
    }
}

/// Records one successful run of every registered check.
pub fn record_healthy(store: &Store) {
    let tip = tip();
    let found = |findings| Ok(Verdict::Found(findings));
    store.record(
        CheckName::Tip,
        found(Findings::Tip(tip.clone())),
        Duration::from_millis(3),
    );
    store.record(
        CheckName::Rollback,
        found(Findings::Rollback(RollbackStats {
            total: 2,
            last_depth: 1,
        })),
        Duration::from_millis(4),
    );
    store.record(
        CheckName::Info,
        found(Findings::Info(Info {
            network: "mainnet".into(),
            release: "13.6.0",
            stages: "15.44.6".into(),
            last_epoch_sync: Some(EpochSync {
                epoch_no: tip.epoch_no - 1,
                seconds: 321,
            }),
            tls: Some(true),
        })),
        Duration::from_millis(5),
    );
    store.record(
        CheckName::Grest,
        found(Findings::Grest(Grest {
            version: Some("v1.3.2".into()),
            tip_block_no: tip.block_no,
            tip_epoch_no: tip.epoch_no,
            lag_blocks: vec![("stake_distribution_lbh".into(), 7)],
            last_updates: vec![("pool_history_cache_last_updated".into(), NOW - 300.0)],
            active_stake_epoch: Some(tip.epoch_no + 1),
            unreadable: Vec::new(),
        })),
        Duration::from_millis(6),
    );
    // A mainnet-sized database: 512 GiB, of which grest holds 48 GiB; db-sync's own session
    // idle in a transaction, PostgREST's pool mostly idle.
    let connections = [
        ("active", 2),
        ("disabled", 0),
        ("fastpath function call", 0),
        ("idle", 9),
        ("idle in transaction", 1),
        ("idle in transaction (aborted)", 0),
    ];
    store.record(
        CheckName::Size,
        found(Findings::Size(DatabaseSize {
            database_bytes: 512 << 30,
            schema_bytes: vec![("grest".into(), 48 << 30), ("public".into(), 463 << 30)],
            connections: connections
                .iter()
                .map(|(state, count)| ((*state).to_owned(), *count))
                .collect(),
        })),
        Duration::from_millis(7),
    );
}

pub fn pool() -> PoolStatus {
    PoolStatus {
        idle: 2,
        active: 1,
        max: 3,
    }
}

/// An exporter 40 minutes old, at 9 MiB resident with 17 of 65 536 descriptors open.
pub fn process() -> ProcessStats {
    ProcessStats {
        cpu_seconds: 12.34,
        resident_bytes: 9 * 1024 * 1024,
        virtual_bytes: 1_200 * 1024 * 1024,
        open_fds: 17,
        max_fds: 65_536,
        start_time_seconds: NOW - 2400.0,
    }
}

pub fn exposition(store: &Arc<Store>) -> Exposition {
    Exposition::new(
        store.clone(),
        Arc::new(pool()),
        Arc::new(process()),
        Arc::new(HealthPolicy::new(&HealthConfig::default())),
    )
}

pub fn app(store: &Arc<Store>) -> axum::Router {
    router(AppState {
        store: store.clone(),
        exposition: Arc::new(exposition(store)),
        policy: Arc::new(HealthPolicy::new(&HealthConfig::default())),
        security: Arc::new(Security::none()),
    })
}
