//! The integrity checks (`mir`, `pool_refunds`, `ada_pots`, `epoch_stake`,
//! `block_tx_counts`, `pool_owners`, `block_number_gaps`, `block_time_disorder`,
//! `blocks_in_future`, `epoch_table`) against real
//! fixtures of db-sync 13.2, 13.3 and 13.7.2+: every rule with its trap, applicability,
//! incremental runs, rollbacks, query plans, and the metrics as a scrape shows them.
//!
//! Rule scenarios put each trap in its own epoch and assert the check's per-epoch results,
//! so a failure names the trap; totals and metrics are asserted too.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use dbsync_exporter::chain::NetworkParams;
use dbsync_exporter::checks::integrity::GENESIS;
use dbsync_exporter::checks::{
    AdaPotsCheck, AdaPotsFindings, BlockTxCountFindings, BlockTxCountsCheck, Check, Context,
    EpochStakeCheck, Findings, IntegritySettings, MirCheck, MirFindings, MirPot, MirTotals,
    PlanLog, PoolOwnerFindings, PoolOwnersCheck, PoolRefundFindings, PoolRefundsCheck,
    RefundTotals, Verdict,
};
use dbsync_exporter::db::Database;
use dbsync_fixture::{
    near_tip_ddl, AdaPots, Cluster, Fixture, IndexSet, MirSource, NewBlock, SchemaVersion,
    TestDatabase, MAX_SUPPLY,
};

use crate::common::{config, must, value, wait_for_value, Exporter};

const DAY: Duration = Duration::from_secs(86_400);
const POOL_DEPOSIT: i64 = 500_000_000;

/// Runs each scenario once per schema shape, as its own test: `instant_reward` + `deposits`
/// (13.2); `reward_rest` + split deposits (13.3); the same with `tx_out.consumed_by_tx_id`
/// present but unused (13.6); `epoch` as a view over `epoch_finalized` (13.7.2+).
macro_rules! per_version {
    ($($name:ident => $scenario:path;)*) => {$(
        mod $name {
            use dbsync_fixture::SchemaVersion;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v13_2() { $scenario(SchemaVersion::V13_2).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v13_3() { $scenario(SchemaVersion::V13_3).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v13_6() { $scenario(SchemaVersion::V13_6).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v13_7() { $scenario(SchemaVersion::V13_7).await }
        }
    )*};
}

per_version! {
    mir_rules => super::mir_rules;
    pool_refund_rules => super::pool_refund_rules;
    ada_pots_broken_and_missing_epochs => super::ada_pots_broken_and_missing_epochs;
    epoch_stake_completeness => super::epoch_stake_completeness;
    ledger_disabled_is_not_applicable => super::ledger_disabled_is_not_applicable;
    initial_sync_is_not_applicable_until_near_tip => super::initial_sync_is_not_applicable_until_near_tip;
    incremental_runs_equal_a_full_run => super::incremental_runs_equal_a_full_run;
    rollback_across_an_epoch_boundary_rechecks_everything => super::rollback_across_an_epoch_boundary_rechecks_everything;
    every_integrity_metric_in_a_scrape => super::every_integrity_metric_in_a_scrape;
    no_sequential_scan_of_reward_tx_or_block => super::no_sequential_scan_of_reward_tx_or_block;
    block_tx_count_rules => super::block_tx_count_rules;
    block_tx_counts_incremental_and_rollback => super::block_tx_counts_incremental_and_rollback;
    pool_owner_rules => super::pool_owner_rules;
    a_first_pass_resumes_over_several_runs => super::a_first_pass_resumes_over_several_runs;
}

// === helpers ===

/// A mainnet fixture holding only the genesis row; the scenario appends epochs in order.
pub(crate) async fn ledger_fixture(
    db: &TestDatabase,
    version: SchemaVersion,
    indexes: IndexSet,
) -> Fixture {
    ledger_fixture_on(db, version, indexes, "mainnet").await
}

async fn ledger_fixture_on(
    db: &TestDatabase,
    version: SchemaVersion,
    indexes: IndexSet,
    network: &str,
) -> Fixture {
    let start = NetworkParams::known("mainnet").unwrap().byron_start_unix;
    let mut fixture = Fixture::create(db, version, indexes, network, start).await;
    fixture.genesis_block(start).await;
    fixture
}

/// Starts `epoch` the way a ledger-enabled db-sync does: its first block carries the epoch's
/// protocol parameters and a balanced `ada_pots` row.
pub(crate) async fn open_epoch(fixture: &mut Fixture, epoch: i64, protocol_major: i32) {
    fixture.epoch_param(epoch, protocol_major).await;
    fixture.ada_pots(epoch, AdaPots::balanced()).await;
}

/// A stake address registered by a transaction in `epoch`.
async fn registered_address(fixture: &mut Fixture, epoch: i64) -> i64 {
    let addr = fixture.stake_address().await;
    let tx = fixture.tx_in_epoch(epoch).await;
    fixture.stake_registration(addr, tx, 0).await;
    addr
}

/// Runs checks directly, each run in its own read-only transaction, as the scheduler does.
pub(crate) struct Direct {
    database: Database,
}

impl Direct {
    pub(crate) fn new(db: &TestDatabase) -> Direct {
        Direct {
            database: Database::new(&config(&db.reader_url())).unwrap(),
        }
    }

    pub(crate) async fn run<C: Check>(&self, check: &mut C) -> Verdict {
        let timeout = Duration::from_secs(30);
        let mut session = self.database.session(timeout).await.unwrap();
        // Scenarios add indexes between runs; the exporter's info check re-probes likewise.
        self.database
            .refresh_schema(&mut session, timeout)
            .await
            .unwrap();
        let schema = session.schema.clone();
        let tx = session
            .client
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .unwrap();
        let verdict = check
            .run(Context {
                tx: &tx,
                schema: &schema,
            })
            .await
            .unwrap_or_else(|error| panic!("{} failed: {error}", check.name()));
        tx.commit().await.unwrap();
        verdict
    }

    /// The reason a check does not apply (panics if it does).
    pub(crate) async fn not_applicable<C: Check>(&self, check: &mut C) -> String {
        match self.run(check).await {
            Verdict::NotApplicable(reason) => reason,
            other => panic!("{}: expected not applicable, got {other:?}", check.name()),
        }
    }

    async fn mir(&self, check: &mut MirCheck) -> MirFindings {
        match self.run(check).await {
            Verdict::Found(Findings::Mir(found)) => found,
            other => panic!("mir: {other:?}"),
        }
    }

    async fn refunds(&self, check: &mut PoolRefundsCheck) -> PoolRefundFindings {
        match self.run(check).await {
            Verdict::Found(Findings::PoolRefunds(found)) => found,
            other => panic!("pool_refunds: {other:?}"),
        }
    }

    async fn ada_pots(&self, check: &mut AdaPotsCheck) -> AdaPotsFindings {
        match self.run(check).await {
            Verdict::Found(Findings::AdaPots(found)) => found,
            other => panic!("ada_pots: {other:?}"),
        }
    }

    async fn tx_counts(&self, check: &mut BlockTxCountsCheck) -> BlockTxCountFindings {
        match self.run(check).await {
            Verdict::Found(Findings::BlockTxCounts(found)) => found,
            other => panic!("block_tx_counts: {other:?}"),
        }
    }

    async fn owners(&self, check: &mut PoolOwnersCheck) -> PoolOwnerFindings {
        match self.run(check).await {
            Verdict::Found(Findings::PoolOwners(found)) => found,
            other => panic!("pool_owners: {other:?}"),
        }
    }
}

fn unpaid(payments: u64, lovelace: i64) -> MirPot {
    MirPot {
        unpaid_payments: payments,
        unpaid_lovelace: lovelace,
        orphan_rewards: 0,
    }
}

fn orphans(count: u64) -> MirPot {
    MirPot {
        orphan_rewards: count,
        ..MirPot::default()
    }
}

fn mir_epoch(reserves: MirPot, treasury: MirPot) -> MirTotals {
    MirTotals { reserves, treasury }
}

fn missing(count: u64) -> RefundTotals {
    RefundTotals {
        missing: count,
        missing_lovelace: POOL_DEPOSIT * count as i64,
        unclaimed: 0,
    }
}

// === mir ===

fn mir_protocol(epoch: i64) -> i32 {
    match epoch {
        ..=259 => 4,    // Shelley to Mary: a later certificate replaces an earlier one
        260..=269 => 6, // Alonzo/Babbage: certificates add up
        _ => 9,         // Conway: no MIR certificates, treasury withdrawals instead
    }
}

/// Every MIR rule, one trap per certificate epoch (249 to 272, the tip); built in pieces
/// so that a test can run the check between them.
#[derive(Default)]
struct MirScenario {
    addr: BTreeMap<&'static str, i64>,
}

impl MirScenario {
    async fn build(&mut self, fixture: &mut Fixture, epochs: RangeInclusive<i64>) {
        let addr = &mut self.addr;
        for epoch in epochs {
            open_epoch(fixture, epoch, mir_protocol(epoch)).await;
            match epoch {
                249 => {
                    for name in ["a", "b", "d1", "d2", "f1", "f2", "g", "t"] {
                        addr.insert(name, registered_address(fixture, 249).await);
                    }
                }
                250 => {
                    // Control: registered and paid. Trap: b deregisters after its certificate but
                    // before the boundary, so the ledger pays nothing: not unpaid.
                    let tx = fixture.tx_in_epoch(250).await;
                    fixture
                        .mir(MirSource::Reserves, addr["a"], tx, 0, 5_000)
                        .await;
                    fixture
                        .mir(MirSource::Reserves, addr["b"], tx, 1, 1_000)
                        .await;
                    fixture
                        .instant_reward("reserves", addr["a"], 5_000, 251)
                        .await;
                    let later = fixture.tx_in_epoch(250).await;
                    fixture.stake_deregistration(addr["b"], later, 0).await;
                }
                251 => {
                    // Trap: registered only after the certificate, but before the boundary: paid.
                    // c1's reward is missing (unpaid), c2's is there (fine).
                    let c1 = fixture.stake_address().await;
                    let c2 = fixture.stake_address().await;
                    let tx = fixture.tx_in_epoch(251).await;
                    fixture.mir(MirSource::Treasury, c1, tx, 0, 2_000).await;
                    fixture.mir(MirSource::Treasury, c2, tx, 1, 3_000).await;
                    let later = fixture.tx_in_epoch(251).await;
                    fixture.stake_registration(c1, later, 0).await;
                    fixture.stake_registration(c2, later, 1).await;
                    fixture.instant_reward("treasury", c2, 3_000, 252).await;
                }
                252 => {
                    // Pre-Alonzo, two certificates: only the last counts. d1's reward of the last
                    // amount is correct; d2 is owed 70 (not 570).
                    let first = fixture.tx_in_epoch(252).await;
                    let second = fixture.tx_in_epoch(252).await;
                    fixture
                        .mir(MirSource::Reserves, addr["d1"], first, 0, 100)
                        .await;
                    fixture
                        .mir(MirSource::Reserves, addr["d1"], second, 0, 30)
                        .await;
                    fixture
                        .instant_reward("reserves", addr["d1"], 30, 253)
                        .await;
                    fixture
                        .mir(MirSource::Reserves, addr["d2"], first, 1, 500)
                        .await;
                    fixture
                        .mir(MirSource::Reserves, addr["d2"], second, 1, 70)
                        .await;
                }
                253 => {
                    // Never registered: owed nothing. Orphans: a reserves reward to a credential
                    // without a certificate this epoch, and a treasury reward to one whose only
                    // certificate is from the reserves.
                    let never = fixture.stake_address().await;
                    let tx = fixture.tx_in_epoch(253).await;
                    fixture.mir(MirSource::Reserves, never, tx, 0, 900).await;
                    fixture
                        .instant_reward("reserves", addr["a"], 777, 254)
                        .await;
                    fixture.instant_reward("treasury", never, 900, 254).await;
                }
                260 => {
                    // From Alonzo, two certificates add up: f1 is owed 130; f2's reward of the sum
                    // is correct.
                    let first = fixture.tx_in_epoch(260).await;
                    let second = fixture.tx_in_epoch(260).await;
                    fixture
                        .mir(MirSource::Reserves, addr["f1"], first, 0, 100)
                        .await;
                    fixture
                        .mir(MirSource::Reserves, addr["f1"], second, 0, 30)
                        .await;
                    fixture
                        .mir(MirSource::Reserves, addr["f2"], first, 1, 40)
                        .await;
                    fixture
                        .mir(MirSource::Reserves, addr["f2"], second, 1, 60)
                        .await;
                    fixture
                        .instant_reward("reserves", addr["f2"], 100, 261)
                        .await;
                }
                261 => {
                    // Deltas that cancel out owe nothing.
                    let first = fixture.tx_in_epoch(261).await;
                    let second = fixture.tx_in_epoch(261).await;
                    fixture
                        .mir(MirSource::Treasury, addr["g"], first, 0, 100)
                        .await;
                    fixture
                        .mir(MirSource::Treasury, addr["g"], second, 0, -100)
                        .await;
                }
                270 => {
                    // Conway: an enacted treasury withdrawal and a proposal refund, no certificate.
                    fixture
                        .instant_reward("treasury", addr["a"], 50_000, 271)
                        .await;
                    fixture
                        .instant_reward("proposal_refund", addr["a"], 100_000_000_000, 271)
                        .await;
                }
                272 => {
                    // A certificate in the tip epoch: its boundary has not been processed yet.
                    let tx = fixture.tx_in_epoch(272).await;
                    fixture.mir(MirSource::Reserves, addr["t"], tx, 0, 10).await;
                }
                _ => {}
            }
        }
    }
}

fn mir_expected() -> BTreeMap<i64, MirTotals> {
    BTreeMap::from([
        (251, mir_epoch(MirPot::default(), unpaid(1, 2_000))),
        (252, mir_epoch(unpaid(1, 70), MirPot::default())),
        (253, mir_epoch(orphans(1), orphans(1))),
        (260, mir_epoch(unpaid(1, 130), MirPot::default())),
    ])
}

pub(crate) async fn mir_rules(version: SchemaVersion) {
    let db = Cluster::shared().create_database("mir_rules").await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    MirScenario::default().build(&mut fixture, 249..=272).await;

    let direct = Direct::new(&db);
    let mut check = MirCheck::new(IntegritySettings::new(DAY));
    let found = direct.mir(&mut check).await;
    assert_eq!(check.epochs(), &mir_expected(), "{version}");
    assert_eq!(
        found.totals.reserves,
        MirPot {
            unpaid_payments: 2,
            unpaid_lovelace: 200,
            orphan_rewards: 1
        }
    );
    assert_eq!(
        found.totals.treasury,
        MirPot {
            unpaid_payments: 1,
            unpaid_lovelace: 2_000,
            orphan_rewards: 1
        }
    );
    assert!(found.coverage.full_run);
    assert_eq!(found.coverage.tip_epoch, 272);
    assert_eq!(Findings::Mir(found).integrity_faults(), Some(5));
}

// === pool_refunds ===

/// Every pool refund rule, one trap per retiring epoch (300 to 313, the tip); built in
/// pieces like [`MirScenario`].
#[derive(Default)]
struct RefundScenario {
    acct: BTreeMap<&'static str, i64>,
    pool: BTreeMap<&'static str, i64>,
}

impl RefundScenario {
    async fn build(&mut self, fixture: &mut Fixture, epochs: RangeInclusive<i64>) {
        let (acct, pool) = (&mut self.acct, &mut self.pool);
        for epoch in epochs {
            open_epoch(fixture, epoch, 6).await;
            match epoch {
                300 => {
                    for name in [
                        "a1", "a2", "a3", "a4", "a5", "a6old", "a6new", "a78", "a9", "a10",
                    ] {
                        acct.insert(name, registered_address(fixture, 300).await);
                    }
                    let tx = fixture.tx_in_epoch(300).await;
                    let accounts = [
                        ("p1", "a1"),
                        ("p2", "a2"),
                        ("p3", "a3"),
                        ("p4", "a4"),
                        ("p5", "a5"),
                        ("p6", "a6old"),
                        ("p7", "a78"),
                        ("p8", "a78"),
                        ("p9", "a9"),
                        ("p10", "a10"),
                    ];
                    for (index, (name, account)) in accounts.into_iter().enumerate() {
                        let id = fixture.pool().await;
                        pool.insert(name, id);
                        fixture
                            .pool_registration(id, tx, index as i32, acct[account])
                            .await;
                    }
                }
                301 => {
                    let tx = fixture.tx_in_epoch(301).await;
                    fixture.pool_retirement(pool["p1"], tx, 0, 303).await; // refunded: fine
                    fixture.pool_retirement(pool["p2"], tx, 1, 304).await; // missing
                    fixture.pool_retirement(pool["p3"], tx, 2, 305).await; // cancelled in 302
                    fixture.pool_retirement(pool["p4"], tx, 3, 306).await; // superseded in 302
                    fixture.pool_retirement(pool["p5"], tx, 4, 308).await; // re-registered in 309
                                                                           // p6 moves its rewards to a new account before retiring.
                    fixture
                        .pool_registration(pool["p6"], tx, 5, acct["a6new"])
                        .await;
                }
                302 => {
                    let tx = fixture.tx_in_epoch(302).await;
                    fixture
                        .pool_registration(pool["p3"], tx, 0, acct["a3"])
                        .await;
                    fixture.pool_retirement(pool["p4"], tx, 1, 307).await;
                    fixture.pool_retirement(pool["p6"], tx, 2, 310).await;
                    fixture.pool_retirement(pool["p7"], tx, 3, 311).await; // shares a78 with p8
                    fixture.pool_retirement(pool["p8"], tx, 4, 311).await;
                    fixture.pool_retirement(pool["p10"], tx, 5, 312).await; // account deregistered
                    fixture.pool_retirement(pool["p9"], tx, 6, 315).await; // not yet due
                }
                303 => {
                    fixture
                        .refund(acct["a1"], pool["p1"], 303, POOL_DEPOSIT)
                        .await
                }
                305 => {
                    let tx = fixture.tx_in_epoch(305).await;
                    fixture.stake_deregistration(acct["a10"], tx, 0).await;
                }
                307 => {
                    fixture
                        .refund(acct["a4"], pool["p4"], 307, POOL_DEPOSIT)
                        .await
                }
                309 => {
                    // Reaped at 308 and registered again afterwards: the retirement stood.
                    let tx = fixture.tx_in_epoch(309).await;
                    fixture
                        .pool_registration(pool["p5"], tx, 0, acct["a5"])
                        .await;
                }
                310 => {
                    fixture
                        .refund(acct["a6new"], pool["p6"], 310, POOL_DEPOSIT)
                        .await
                }
                311 => {
                    fixture
                        .refund(acct["a78"], pool["p7"], 311, POOL_DEPOSIT)
                        .await
                }
                _ => {}
            }
        }
    }
}

fn refunds_expected() -> BTreeMap<i64, RefundTotals> {
    BTreeMap::from([
        (304, missing(1)),
        (308, missing(1)),
        (311, missing(1)),
        (
            312,
            RefundTotals {
                unclaimed: 1,
                ..RefundTotals::default()
            },
        ),
    ])
}

pub(crate) async fn pool_refund_rules(version: SchemaVersion) {
    let db = Cluster::shared().create_database("refund_rules").await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    RefundScenario::default()
        .build(&mut fixture, 300..=313)
        .await;

    let direct = Direct::new(&db);
    let mut check = PoolRefundsCheck::new(IntegritySettings::new(DAY));
    let found = direct.refunds(&mut check).await;
    assert_eq!(check.epochs(), &refunds_expected(), "{version}");
    assert_eq!(
        found.totals,
        RefundTotals {
            missing: 3,
            missing_lovelace: 3 * POOL_DEPOSIT,
            unclaimed: 1
        }
    );
    // Unclaimed refunds are the ledger's rule, not a fault.
    assert_eq!(Findings::PoolRefunds(found).integrity_faults(), Some(3));
}

// === ada_pots ===

pub(crate) async fn ada_pots_broken_and_missing_epochs(version: SchemaVersion) {
    let db = Cluster::shared().create_database("ada_pots").await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    // Mainnet's Shelley era starts at 208; 210 is broken, 212 missing, the newest balances.
    for epoch in 208..=215 {
        fixture.epoch_param(epoch, 2).await;
        let mut pots = AdaPots::balanced();
        match epoch {
            210 => pots.fees += 1_234,
            212 => continue,
            _ => {}
        }
        fixture.ada_pots(epoch, pots).await;
    }
    let direct = Direct::new(&db);
    let mut check = AdaPotsCheck::new(IntegritySettings::new(DAY), None);
    let found = direct.ada_pots(&mut check).await;
    assert_eq!(
        (
            found.deviation_lovelace,
            found.inconsistent_epochs,
            found.missing_epochs
        ),
        (0, 1, 1)
    );
    assert_eq!((found.first_epoch, found.newest_epoch), (208, 215));
    assert_eq!(
        check.epochs()[&210].newest_sum,
        i128::from(MAX_SUPPLY) + 1_234
    );

    // A new epoch whose pots fall short: deviation is the newest epoch's, exactly.
    let mut short = AdaPots::balanced();
    short.utxo -= 7;
    fixture.ada_pots(216, short).await;
    let found = direct.ada_pots(&mut check).await;
    assert!(!found.coverage.full_run);
    assert_eq!(
        (
            found.deviation_lovelace,
            found.inconsistent_epochs,
            found.missing_epochs
        ),
        (-7, 2, 1)
    );
    assert_eq!(Findings::AdaPots(found).integrity_faults(), Some(4));

    // An epoch that reaches the tip without its row is missing too.
    fixture.block_in_epoch(217).await;
    let found = direct.ada_pots(&mut check).await;
    assert_eq!((found.newest_epoch, found.missing_epochs), (216, 2));

    // A network the exporter does not know starts where ada_pots starts.
    let other = Cluster::shared().create_database("ada_pots_other").await;
    let mut fixture = ledger_fixture_on(&other, version, IndexSet::NearTip, "sanchonet").await;
    for epoch in [5, 6, 8] {
        fixture.ada_pots(epoch, AdaPots::balanced()).await;
    }
    let found = Direct::new(&other)
        .ada_pots(&mut AdaPotsCheck::new(IntegritySettings::new(DAY), None))
        .await;
    assert_eq!(
        (
            found.first_epoch,
            found.missing_epochs,
            found.deviation_lovelace
        ),
        (5, 1, 0)
    );
}

// === epoch_stake ===

pub(crate) async fn epoch_stake_completeness(version: SchemaVersion) {
    let db = Cluster::shared().create_database("epoch_stake").await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    open_epoch(&mut fixture, 400, 9).await;
    let addr = fixture.stake_address().await;
    let pool = fixture.pool().await;
    fixture.epoch_stake(400, addr, pool, 1_000_000).await;
    let direct = Direct::new(&db);
    let mut check = EpochStakeCheck::new(IntegritySettings::new(DAY));
    let complete = |verdict: Verdict| match verdict {
        Verdict::Found(Findings::EpochStake(found)) => (found.epoch_no, found.complete),
        other => panic!("epoch_stake: {other:?}"),
    };
    // No progress row for the tip epoch yet, then one still in progress, then done.
    assert_eq!(complete(direct.run(&mut check).await), (400, false));
    fixture.epoch_stake_progress(400, false).await;
    fixture.epoch_stake_progress(401, false).await;
    assert_eq!(complete(direct.run(&mut check).await), (400, false));
    fixture.epoch_stake_progress(400, true).await;
    assert_eq!(complete(direct.run(&mut check).await), (400, true));
    // Releases before 13.2 have no epoch_stake_progress.
    fixture.execute("DROP TABLE epoch_stake_progress").await;
    match direct.run(&mut check).await {
        Verdict::NotApplicable(reason) => {
            assert!(reason.contains("epoch_stake_progress"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

// === block_tx_counts ===

/// A block in `epoch` holding `txs` transactions (the first `invalid` of them phase-2-invalid,
/// which db-sync counts too) whose `tx_count` says `recorded`; returns its id.
async fn block_with_txs(
    fixture: &mut Fixture,
    epoch: i64,
    txs: usize,
    invalid: usize,
    recorded: i64,
) -> i64 {
    let block = fixture.block_in_epoch(epoch).await;
    for n in 0..txs {
        let tx = fixture.insert_tx(block, 170_000).await;
        if n < invalid {
            fixture
                .execute(&format!(
                    "UPDATE tx SET valid_contract = false WHERE id = {tx}"
                ))
                .await;
        }
    }
    set_tx_count(fixture, block, recorded).await;
    block
}

async fn set_tx_count(fixture: &Fixture, block: i64, recorded: i64) {
    fixture
        .execute(&format!(
            "UPDATE block SET tx_count = {recorded} WHERE id = {block}"
        ))
        .await;
}

/// A Byron epoch boundary block (no block, slot or epoch-slot number, no transactions) whose
/// `tx_count` says `recorded`, then the epoch's first main block after it; returns the EBB.
async fn ebb(fixture: &mut Fixture, epoch: i64, recorded: i64) -> i64 {
    let row = fixture
        .client
        .query_one(
            "SELECT max(block_no)::int8, max(slot_no)::int8,                     extract(epoch FROM max(time))::int8 FROM block",
            &[],
        )
        .await
        .unwrap();
    let (block_no, slot_no, time_unix): (Option<i64>, Option<i64>, i64) =
        (row.get(0), row.get(1), row.get(2));
    let ebb = NewBlock {
        block_no: None,
        slot_no: None,
        epoch_no: Some(epoch),
        epoch_slot_no: None,
        time_unix: time_unix + 20,
        hash: fixture.next_hash(-5),
        proto_major: 0,
        proto_minor: 0,
        tx_count: recorded,
    };
    let id = fixture.insert_block(ebb).await;
    // The main block after it continues the numbering (extend would restart it after a
    // block without a number).
    let next = block_no.map_or(0, |b| b + 1);
    let main = NewBlock {
        block_no: Some(next),
        slot_no: Some(slot_no.unwrap_or(0) + 20),
        epoch_no: Some(epoch),
        epoch_slot_no: Some(0),
        time_unix: time_unix + 20,
        hash: fixture.next_hash(next),
        proto_major: 1,
        proto_minor: 0,
        tx_count: 0,
    };
    fixture.insert_block(main).await;
    id
}

/// One trap or fault per epoch (0 to 4, the tip); the genesis row is faulty (5 for its 6
/// transactions) until [`fix_genesis`].
async fn build_tx_counts(fixture: &mut Fixture, epochs: RangeInclusive<i64>) {
    for epoch in epochs {
        match epoch {
            0 => {
                let genesis: i64 = fixture
                    .client
                    .query_one("SELECT id FROM block WHERE epoch_no IS NULL", &[])
                    .await
                    .unwrap()
                    .get(0);
                for _ in 0..6 {
                    fixture.insert_tx(genesis, 0).await;
                }
                set_tx_count(fixture, genesis, 5).await; // fault
                ebb(fixture, 0, 0).await; // trap: an EBB with no transactions
                block_with_txs(fixture, 0, 2, 0, 2).await; // trap
            }
            1 => {
                ebb(fixture, 1, 1).await; // fault: EBBs count too
                block_with_txs(fixture, 1, 1, 0, 1).await;
            }
            2 => {
                block_with_txs(fixture, 2, 2, 1, 2).await; // trap: a valid and an invalid tx
                block_with_txs(fixture, 2, 3, 0, 2).await; // fault
                block_with_txs(fixture, 2, 0, 0, 1).await; // fault
            }
            3 => {
                for _ in 0..3 {
                    block_with_txs(fixture, 3, 0, 0, 0).await; // trap: empty blocks
                }
            }
            4 => {
                block_with_txs(fixture, 4, 1, 0, 1).await;
                block_with_txs(fixture, 4, 1, 0, 0).await; // fault, the tip block
            }
            _ => unreachable!("epoch {epoch}"),
        }
    }
}

/// The genesis row made right: its 6 transactions, `tx_count` 6 (a trap then).
async fn fix_genesis(fixture: &Fixture) {
    fixture
        .execute("UPDATE block SET tx_count = 6 WHERE epoch_no IS NULL")
        .await;
}

fn tx_counts_expected() -> BTreeMap<i64, u64> {
    BTreeMap::from([(GENESIS, 1), (1, 1), (2, 2), (4, 1)])
}

/// A pass whose budget is spent by its first window walks the history one window per run,
/// newest first: each run's counts are exactly a full run's over the epochs covered so far,
/// the coverage says how far it got, and the last window brings the genesis rows.
pub(crate) async fn a_first_pass_resumes_over_several_runs(version: SchemaVersion) {
    let db = Cluster::shared().create_database("resumable_pass").await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    build_tx_counts(&mut fixture, 0..=4).await;
    for epoch in 5..=40 {
        fixture.extend_into_epoch(epoch, 1, 20).await;
    }
    let tip = fixture.tip().await.unwrap().0;
    fixture.insert_tx(tip, 170_000).await; // a fault in the tip epoch, found at once
    let direct = Direct::new(&db);
    let mut full = BlockTxCountsCheck::new(IntegritySettings::new(DAY));
    let everything = direct.tx_counts(&mut full).await;
    assert!(everything.coverage.full_run);
    assert_eq!(everything.coverage.ratio(), 1.0);
    let mut expected = tx_counts_expected();
    expected.insert(40, 1);
    assert_eq!(full.epochs(), &expected);

    let mut check =
        BlockTxCountsCheck::new(IntegritySettings::new(DAY).pass_budget(Duration::ZERO));
    let mut ratios = Vec::new();
    let mut runs = 0;
    loop {
        let found = direct.tx_counts(&mut check).await;
        runs += 1;
        let covered = found.coverage.covered_from.expect("a window was examined");
        let below_covered: BTreeMap<i64, u64> = expected
            .iter()
            .filter(|(epoch, _)| **epoch >= covered || (covered == 0 && **epoch == GENESIS))
            .map(|(epoch, n)| (*epoch, *n))
            .collect();
        assert_eq!(
            check.epochs(),
            &below_covered,
            "run {runs}, covered from {covered}"
        );
        assert_eq!(found.mismatches, below_covered.values().sum::<u64>());
        ratios.push(found.coverage.ratio());
        assert!(!found.coverage.full_run, "no run examines everything");
        if covered == 0 {
            break;
        }
        assert!(runs < 41, "the pass must end");
    }
    assert!(runs >= 2, "the first window does not reach epoch 0");
    assert_eq!(ratios[0], 4.0 / 41.0, "the first window: 4 epochs of 41");
    assert!(ratios.windows(2).all(|w| w[0] < w[1]), "{ratios:?}");
    assert_eq!(ratios.last(), Some(&1.0));
    assert_eq!(check.epochs(), full.epochs());
    // After the pass, runs are incremental again.
    let next = direct.tx_counts(&mut check).await;
    assert_eq!(next.coverage.from_epoch, 40, "the tip epoch only");
    assert_eq!(next.mismatches, everything.mismatches);
}

pub(crate) async fn block_tx_count_rules(version: SchemaVersion) {
    let db = Cluster::shared().create_database("tx_counts").await;
    // Stage-3 indexes suffice: the check applies during initial sync.
    let mut fixture = ledger_fixture(&db, version, IndexSet::InitialSync).await;
    build_tx_counts(&mut fixture, 0..=4).await;
    let direct = Direct::new(&db);
    let mut check = BlockTxCountsCheck::new(IntegritySettings::new(DAY));
    let found = direct.tx_counts(&mut check).await;
    assert!(found.coverage.full_run);
    assert_eq!(check.epochs(), &tx_counts_expected());
    assert_eq!(found.mismatches, 5);

    fix_genesis(&fixture).await;
    let mut fresh = BlockTxCountsCheck::new(IntegritySettings::new(DAY));
    let found = direct.tx_counts(&mut fresh).await;
    let mut expected = tx_counts_expected();
    expected.remove(&GENESIS);
    assert_eq!(fresh.epochs(), &expected);
    assert_eq!(found.mismatches, 4);

    // Without the index that counts a block's transactions it would scan tx: not applicable.
    fixture.execute("DROP INDEX idx_tx_block_id").await;
    match direct.run(&mut fresh).await {
        Verdict::NotApplicable(reason) => assert!(reason.contains("idx_tx_block_id"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

pub(crate) async fn block_tx_counts_incremental_and_rollback(version: SchemaVersion) {
    let db = Cluster::shared()
        .create_database("tx_counts_incremental")
        .await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    build_tx_counts(&mut fixture, 0..=2).await;
    let direct = Direct::new(&db);
    let mut check = BlockTxCountsCheck::new(IntegritySettings::new(DAY));
    assert_eq!(direct.tx_counts(&mut check).await.mismatches, 4);

    // New epochs arrive: the incremental run examines epochs 2 (the last run's tip epoch)
    // to 4 and keeps the genesis result of the first run.
    build_tx_counts(&mut fixture, 3..=4).await;
    let second = direct.tx_counts(&mut check).await;
    assert!(!second.coverage.full_run);
    assert_eq!(second.coverage.from_epoch, 2);
    assert_eq!(second.mismatches, 5);
    let mut fresh = BlockTxCountsCheck::new(IntegritySettings::new(DAY));
    assert_eq!(direct.tx_counts(&mut fresh).await.mismatches, 5);
    assert_eq!(check.epochs(), fresh.epochs());
    assert_eq!(check.epochs(), &tx_counts_expected());

    // A rollback replaces the faulty tip block (epoch 4 keeps its first block), the newest
    // block the last run saw: the tip epoch is re-examined whole and the fault is gone.
    fixture.rollback_and_replace(1).await;
    let after = direct.tx_counts(&mut check).await;
    assert!(!after.coverage.full_run);
    assert_eq!(after.mismatches, 4);
    let mut expected = tx_counts_expected();
    expected.remove(&4);
    assert_eq!(check.epochs(), &expected);

    // New blocks in the tip epoch, one with a transaction its tx_count does not record: the
    // next run reads only the blocks after the newest one it saw, and adds what it finds.
    let plans = PlanLog::default();
    let mut watched =
        BlockTxCountsCheck::new(IntegritySettings::new(DAY).explain_into(plans.clone()));
    assert_eq!(direct.tx_counts(&mut watched).await.mismatches, 4);
    block_with_txs(&mut fixture, 4, 2, 0, 2).await; // trap
    block_with_txs(&mut fixture, 4, 2, 1, 1).await; // fault
    let since_before = plans.plans().len();
    let found = direct.tx_counts(&mut watched).await;
    assert_eq!(found.mismatches, 5);
    assert_eq!(found.coverage.from_epoch, 4);
    let blockwise: Vec<String> = plans.plans()[since_before..]
        .iter()
        .filter(|plan| plan.sql.contains("b.id > $1"))
        .map(|plan| plan.plan.clone())
        .collect();
    assert_eq!(blockwise.len(), 1, "one query over the new blocks");
    assert!(blockwise[0].contains("block_pkey"), "{}", blockwise[0]);
    assert_eq!(direct.tx_counts(&mut check).await.mismatches, 5);
    let mut fresh = BlockTxCountsCheck::new(IntegritySettings::new(DAY));
    assert_eq!(direct.tx_counts(&mut fresh).await.mismatches, 5);
    assert_eq!(watched.epochs(), fresh.epochs());
    assert_eq!(check.epochs(), fresh.epochs());
}

// === pool_owners ===

pub(crate) async fn pool_owner_rules(version: SchemaVersion) {
    let db = Cluster::shared().create_database("pool_owners").await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    let (p1, p2, p3, p4) = (
        fixture.pool().await,
        fixture.pool().await,
        fixture.pool().await,
        fixture.pool().await,
    );
    // 208: traps. p1's single owner is its reward account; p2 has two owners.
    let reward = registered_address(&mut fixture, 208).await;
    let (o1, o2) = (fixture.stake_address().await, fixture.stake_address().await);
    let tx = fixture.tx_in_epoch(208).await;
    fixture.pool_registration(p1, tx, 0, reward).await;
    fixture.pool_owner(p1, tx, 0, reward).await;
    fixture.pool_registration(p2, tx, 1, o1).await;
    fixture.pool_owner(p2, tx, 1, o1).await;
    fixture.pool_owner(p2, tx, 1, o2).await;
    // 209: p1 updated, its owner deregistered in the same tx (trap); p3 registered without
    // owners (fault).
    let tx = fixture.tx_in_epoch(209).await;
    fixture.stake_deregistration(reward, tx, 0).await;
    fixture.pool_registration(p1, tx, 1, reward).await;
    fixture.pool_owner(p1, tx, 1, reward).await;
    fixture.pool_registration(p3, tx, 2, o1).await;
    // 210: two owner-less updates of the same pool count twice (certificates, not pools).
    let tx = fixture.tx_in_epoch(210).await;
    fixture.pool_registration(p2, tx, 0, o1).await;
    fixture.pool_registration(p2, tx, 1, o1).await;
    fixture.block_in_epoch(211).await;
    // 212, the tip epoch: an owner-less registration in the tip block.
    fixture.block_in_epoch(212).await;
    let tx = fixture.tx_in_epoch(212).await;
    fixture.pool_registration(p4, tx, 0, o2).await;

    let direct = Direct::new(&db);
    let mut check = PoolOwnersCheck::new(IntegritySettings::new(DAY));
    let found = direct.owners(&mut check).await;
    assert!(found.coverage.full_run);
    assert_eq!(
        check.epochs(),
        &BTreeMap::from([(209, 1), (210, 2), (212, 1)])
    );
    assert_eq!(found.updates_without_owner, 4);

    // A rollback replaces the tip block and its certificate (db-sync deletes certificates
    // with their transaction); the replacement block carries p4's registration with its
    // owner.
    fixture
        .execute(
            "DELETE FROM pool_update WHERE registered_tx_id IN                (SELECT id FROM tx WHERE block_id = (SELECT max(id) FROM block))",
        )
        .await;
    fixture.rollback_and_replace(1).await;
    let tip: i64 = fixture.tip().await.unwrap().0;
    let tx = fixture.insert_tx(tip, 170_000).await;
    fixture.pool_registration(p4, tx, 0, o2).await;
    fixture.pool_owner(p4, tx, 0, o2).await;
    let after = direct.owners(&mut check).await;
    assert!(!after.coverage.full_run);
    assert_eq!(after.updates_without_owner, 3);
    assert_eq!(check.epochs(), &BTreeMap::from([(209, 1), (210, 2)]));
    let mut fresh = PoolOwnersCheck::new(IntegritySettings::new(DAY));
    assert_eq!(direct.owners(&mut fresh).await.updates_without_owner, 3);
    assert_eq!(check.epochs(), fresh.epochs());

    // Without pool_owner_pool_update_id_idx (initial sync) the check still applies.
    fixture
        .execute("DROP INDEX pool_owner_pool_update_id_idx")
        .await;
    assert_eq!(direct.owners(&mut fresh).await.updates_without_owner, 3);
}

// === applicability ===

pub(crate) async fn ledger_disabled_is_not_applicable(version: SchemaVersion) {
    let db = Cluster::shared().create_database("no_ledger").await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    // Blocks, transactions and certificates, but none of the ledger's own tables.
    let addr = fixture.stake_address().await;
    let tx = fixture.tx_in_epoch(300).await;
    fixture.stake_registration(addr, tx, 0).await;
    fixture.mir(MirSource::Reserves, addr, tx, 1, 10).await;
    fixture.tx_in_epoch(301).await;

    let mut settings = config(&db.reader_url());
    settings.checks.integrity_interval = Duration::from_millis(300);
    let exporter = Exporter::start(settings).await;
    let mut body = String::new();
    for check in ["mir", "pool_refunds", "ada_pots", "epoch_stake"] {
        body = wait_for_value(
            &exporter,
            &format!("dbsync_check_applicable{{check=\"{check}\"}}"),
            0.0,
        )
        .await;
    }
    assert_eq!(must(&body, "dbsync_check_success{check=\"mir\"}"), 1.0);
    // Blocks, transactions and certificates are written with the ledger off too.
    for check in ["block_tx_counts", "pool_owners"] {
        body = wait_for_value(
            &exporter,
            &format!("dbsync_check_applicable{{check=\"{check}\"}}"),
            1.0,
        )
        .await;
    }
    assert_eq!(must(&body, "dbsync_block_tx_count_mismatches"), 2.0);
    assert_eq!(must(&body, "dbsync_pool_updates_without_owner"), 0.0);
    for family in [
        "dbsync_mir_",
        "dbsync_pool_refunds_",
        "dbsync_ada_pots_",
        "dbsync_epoch_stake_",
    ] {
        assert!(
            !body.contains(family),
            "{family} exported without ledger data:\n{body}"
        );
    }
    exporter.shutdown().await;
}

pub(crate) async fn initial_sync_is_not_applicable_until_near_tip(version: SchemaVersion) {
    let db = Cluster::shared().create_database("initial_sync").await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::InitialSync).await;
    MirScenario::default().build(&mut fixture, 249..=262).await;
    let direct = Direct::new(&db);
    let mut mir = MirCheck::new(IntegritySettings::new(DAY));
    let mut refunds = PoolRefundsCheck::new(IntegritySettings::new(DAY));
    for verdict in [direct.run(&mut mir).await, direct.run(&mut refunds).await] {
        match verdict {
            Verdict::NotApplicable(reason) => assert!(
                reason.contains("index") && reason.contains("near the tip"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
    }
    // The checks that need no stage-4 index run anyway.
    let pots = direct
        .ada_pots(&mut AdaPotsCheck::new(IntegritySettings::new(DAY), None))
        .await;
    assert_eq!(pots.inconsistent_epochs, 0);
    assert!(matches!(
        direct
            .run(&mut EpochStakeCheck::new(IntegritySettings::new(DAY)))
            .await,
        Verdict::Found(Findings::EpochStake(_))
    ));
    // db-sync reaches the tip and creates its indexes: the same check objects apply now.
    fixture.execute(&near_tip_ddl(version)).await;
    let found = direct.mir(&mut mir).await;
    assert!(found.coverage.full_run);
    assert_eq!(found.totals.reserves.unpaid_lovelace, 200);
    assert_eq!(
        direct.refunds(&mut refunds).await.totals,
        RefundTotals::default()
    );
}

// === incremental runs and rollbacks ===

pub(crate) async fn incremental_runs_equal_a_full_run(version: SchemaVersion) {
    let db = Cluster::shared().create_database("incremental").await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    let mut scenario = MirScenario::default();
    scenario.build(&mut fixture, 249..=252).await;
    let direct = Direct::new(&db);
    let mut mir = MirCheck::new(IntegritySettings::new(DAY));
    let first = direct.mir(&mut mir).await;
    assert!(first.coverage.full_run);
    // At tip 252 only the boundaries up to 251→252 have been processed.
    assert_eq!(
        mir.epochs(),
        &BTreeMap::from([(251, mir_epoch(MirPot::default(), unpaid(1, 2_000)))])
    );

    // The chain moves on and the scenario's later traps arrive in new epochs.
    scenario.build(&mut fixture, 253..=272).await;
    let second = direct.mir(&mut mir).await;
    assert!(!second.coverage.full_run);
    assert_eq!(
        second.coverage.from_epoch, 252,
        "the last run's tip epoch, and on"
    );
    let mut fresh = MirCheck::new(IntegritySettings::new(DAY));
    let full = direct.mir(&mut fresh).await;
    assert!(full.coverage.full_run);
    assert_eq!(mir.epochs(), fresh.epochs());
    assert_eq!(second.totals, full.totals);
    assert_eq!(mir.epochs(), &mir_expected());

    // Pool refunds, likewise: half the history, then the rest incrementally.
    let db = Cluster::shared()
        .create_database("incremental_refunds")
        .await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    let mut scenario = RefundScenario::default();
    scenario.build(&mut fixture, 300..=306).await;
    let direct = Direct::new(&db);
    let mut refunds = PoolRefundsCheck::new(IntegritySettings::new(Duration::from_secs(1)));
    direct.refunds(&mut refunds).await;
    assert_eq!(refunds.epochs(), &BTreeMap::from([(304, missing(1))]));
    scenario.build(&mut fixture, 307..=313).await;
    // An old epoch changes behind the check's back (the refund of 303 disappears); an
    // incremental run does not look there...
    fixture
        .execute("DELETE FROM reward WHERE type = 'refund' AND spendable_epoch = 303")
        .await;
    let second = direct.refunds(&mut refunds).await;
    assert!(!second.coverage.full_run);
    let mut expected = refunds_expected();
    assert_eq!(refunds.epochs(), &expected);
    // ...the periodic full re-check does.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = direct.refunds(&mut refunds).await;
    assert!(third.coverage.full_run);
    expected.insert(303, missing(1));
    assert_eq!(refunds.epochs(), &expected);
    let full = direct
        .refunds(&mut PoolRefundsCheck::new(IntegritySettings::new(DAY)))
        .await;
    assert_eq!(third.totals, full.totals);
}

pub(crate) async fn rollback_across_an_epoch_boundary_rechecks_everything(version: SchemaVersion) {
    let db = Cluster::shared()
        .create_database("integrity_rollback")
        .await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    MirScenario::default().build(&mut fixture, 249..=272).await;
    fixture.extend(3, 20).await; // epoch 272 now has several blocks
    let direct = Direct::new(&db);
    let mut mir = MirCheck::new(IntegritySettings::new(DAY));
    direct.mir(&mut mir).await;
    let quiet = direct.mir(&mut mir).await;
    assert!(!quiet.coverage.full_run, "nothing happened: incremental");

    // An old epoch changes (d1's instant reward of 252 disappears): invisible to an
    // incremental run...
    fixture
        .execute(&format!(
            "DELETE FROM {} WHERE spendable_epoch = 253",
            if version == SchemaVersion::V13_2 {
                "instant_reward"
            } else {
                "reward_rest"
            }
        ))
        .await;
    let incremental = direct.mir(&mut mir).await;
    assert!(!incremental.coverage.full_run);
    assert_eq!(incremental.totals.reserves.unpaid_payments, 2);

    // ...but a rollback that replaces every block of the tip epoch (same epoch number, new
    // blocks) is a rollback across the boundary: the whole history is examined again.
    let blocks_in_272: u32 = fixture
        .client
        .query_one("SELECT count(*)::int4 FROM block WHERE epoch_no = 272", &[])
        .await
        .unwrap()
        .get::<_, i32>(0) as u32;
    fixture.rollback_and_replace(blocks_in_272 + 1).await;
    let after = direct.mir(&mut mir).await;
    assert!(
        after.coverage.full_run,
        "the remembered boundary block is gone"
    );
    assert_eq!(after.totals.reserves.unpaid_payments, 3);
    assert_eq!(mir.epochs()[&252].reserves, unpaid(2, 100));

    // The tip epoch going down is one too.
    let quiet = direct.mir(&mut mir).await;
    assert!(!quiet.coverage.full_run);
    fixture.truncate(blocks_in_272).await;
    let after = direct.mir(&mut mir).await;
    assert!(after.coverage.full_run, "the tip epoch went down");
    assert_eq!(after.coverage.tip_epoch, 271);
}

// === the scrape ===

/// A big MIR payment that does not survive a trip through f64.
const BIG_LOVELACE: i64 = 12_345_678_901_234_567;

pub(crate) async fn every_integrity_metric_in_a_scrape(version: SchemaVersion) {
    let db = Cluster::shared().create_database("integrity_scrape").await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    let (mut reg, mut unreg, mut pools) = (0, 0, (0, 0));
    for epoch in 208..=212 {
        fixture.epoch_param(epoch, 4).await;
        let mut pots = AdaPots::balanced();
        match epoch {
            210 => {
                fixture.block_in_epoch(210).await; // no ada_pots row for 210
            }
            211 => {
                pots.treasury += 1;
                fixture.ada_pots(epoch, pots).await;
            }
            212 => {
                pots.utxo -= 7;
                fixture.ada_pots(epoch, pots).await;
            }
            _ => fixture.ada_pots(epoch, pots).await,
        }
        match epoch {
            208 => {
                reg = registered_address(&mut fixture, 208).await;
                unreg = fixture.stake_address().await;
                let (p1, p2) = (fixture.pool().await, fixture.pool().await);
                pools = (p1, p2);
                let tx = fixture.tx_in_epoch(208).await;
                fixture.pool_registration(p1, tx, 0, reg).await;
                fixture.pool_registration(p2, tx, 1, unreg).await;
                fixture.pool_retirement(p1, tx, 2, 211).await;
                fixture.pool_retirement(p2, tx, 3, 211).await;
            }
            209 => {
                let tx = fixture.tx_in_epoch(209).await;
                fixture
                    .mir(MirSource::Reserves, reg, tx, 0, BIG_LOVELACE)
                    .await;
                fixture.instant_reward("treasury", unreg, 5, 210).await;
            }
            212 => fixture.epoch_stake_progress(212, true).await,
            _ => {}
        }
    }
    let _ = pools;

    let mut settings = config(&db.reader_url());
    settings.checks.integrity_interval = Duration::from_millis(300);
    let exporter = Exporter::start(settings).await;
    for check in [
        "mir",
        "pool_refunds",
        "ada_pots",
        "epoch_stake",
        "block_tx_counts",
        "pool_owners",
    ] {
        wait_for_value(
            &exporter,
            &format!("dbsync_check_applicable{{check=\"{check}\"}}"),
            1.0,
        )
        .await;
    }
    let body = exporter.metrics().await;
    let expect = [
        ("dbsync_mir_unpaid_payments{pot=\"reserves\"}", "1"),
        ("dbsync_mir_unpaid_payments{pot=\"treasury\"}", "0"),
        (
            "dbsync_mir_unpaid_lovelace{pot=\"reserves\"}",
            "12345678901234567",
        ),
        ("dbsync_mir_unpaid_lovelace{pot=\"treasury\"}", "0"),
        ("dbsync_mir_orphan_rewards{pot=\"reserves\"}", "0"),
        ("dbsync_mir_orphan_rewards{pot=\"treasury\"}", "1"),
        ("dbsync_pool_refunds_missing", "1"),
        ("dbsync_pool_refunds_missing_lovelace", "500000000"),
        ("dbsync_pool_refunds_unclaimed", "1"),
        ("dbsync_ada_pots_deviation_lovelace", "-7"),
        ("dbsync_ada_pots_inconsistent_epochs", "2"),
        ("dbsync_ada_pots_missing_epochs", "1"),
        ("dbsync_epoch_stake_complete", "1"),
        // Every tx_in_epoch block holds one transaction its tx_count (0) does not record:
        // two in 208 and one in 209. The two pool registrations of 208 have no owner rows.
        ("dbsync_block_tx_count_mismatches", "3"),
        ("dbsync_pool_updates_without_owner", "2"),
        // A history this short is one window: every pass is complete after the first run.
        ("dbsync_integrity_coverage_ratio{check=\"mir\"}", "1.0"),
        (
            "dbsync_integrity_coverage_ratio{check=\"pool_refunds\"}",
            "1.0",
        ),
        ("dbsync_integrity_coverage_ratio{check=\"ada_pots\"}", "1.0"),
        (
            "dbsync_integrity_coverage_ratio{check=\"block_tx_counts\"}",
            "1.0",
        ),
        (
            "dbsync_integrity_coverage_ratio{check=\"pool_owners\"}",
            "1.0",
        ),
    ];
    for (series, text) in expect {
        // The exact text: integers, not floats (12345678901234567 is not a double).
        let line = format!("{series} {text}");
        assert!(
            body.lines().any(|l| l == line),
            "{line} missing in:\n{body}"
        );
        assert!(value(&body, series).is_some());
    }
    for check in [
        "mir",
        "pool_refunds",
        "ada_pots",
        "epoch_stake",
        "block_tx_counts",
        "pool_owners",
    ] {
        assert_eq!(
            must(&body, &format!("dbsync_check_success{{check=\"{check}\"}}")),
            1.0
        );
        assert_eq!(
            must(
                &body,
                &format!("dbsync_check_interval_seconds{{check=\"{check}\"}}")
            ),
            0.3
        );
    }
    assert!(
        body.contains("# HELP dbsync_mir_unpaid_payments MIR payments")
            && body.contains("refreshes it every 300ms"),
        "HELP texts say how fresh the values are:\n{body}"
    );
    assert!(body.contains("the whole history every 24h"), "{body}");
    exporter.shutdown().await;
}

// === query plans ===

/// A NearTip database with enough rows that the planner chooses as on mainnet: `block`,
/// `tx` and `reward` are large, certificates and pools small.
async fn big_fixture(db: &TestDatabase, version: SchemaVersion) -> Fixture {
    let start = NetworkParams::known("mainnet").unwrap().byron_start_unix;
    let mut fixture = Fixture::create(db, version, IndexSet::NearTip, "mainnet", start).await;
    let instant = if version == SchemaVersion::V13_2 {
        "instant_reward"
    } else {
        "reward_rest"
    };
    let (deposit_column, deposit_value) = if version == SchemaVersion::V13_2 {
        ("", "")
    } else {
        (", deposit", ", 500000000")
    };
    fixture
        .execute(&format!(
            "INSERT INTO slot_leader (hash, pool_hash_id, description) \
               VALUES (decode(repeat('52', 28), 'hex'), NULL, 'plans');
             -- 40 epochs of 1500 blocks, two transactions each.
             INSERT INTO block (hash, epoch_no, slot_no, epoch_slot_no, block_no, previous_id, \
                 slot_leader_id, size, time, tx_count, proto_major, proto_minor) \
               SELECT sha256(int8send(g)), 400 + (g - 1) / 1500, g * 20, ((g - 1) % 1500) * 20, g, \
                 NULLIF(g - 1, 0), (SELECT max(id) FROM slot_leader), 1000, \
                 to_timestamp(1600000000 + g * 20) AT TIME ZONE 'UTC', 2, 6, 0 \
               FROM generate_series(1, 60000) g;
             INSERT INTO tx (hash, block_id, block_index, out_sum, fee, deposit, size, \
                 valid_contract, script_size) \
               SELECT sha256(int8send(g) || '\\x01'::bytea), (g + 1) / 2, (g + 1) % 2, 0, 170000, \
                 0, 300, true, 0 FROM generate_series(1, 120000) g;
             INSERT INTO stake_address (hash_raw, view) \
               SELECT '\\xe1'::bytea || substring(sha256(int8send(g)) FROM 1 FOR 28), 'stake' || g \
               FROM generate_series(1, 20000) g;
             INSERT INTO stake_registration (addr_id, cert_index, epoch_no, tx_id) \
               SELECT g, 0, b.epoch_no, t.id FROM generate_series(1, 20000) g \
               JOIN tx t ON t.id = g JOIN block b ON b.id = t.block_id;
             INSERT INTO stake_deregistration (addr_id, cert_index, epoch_no, tx_id) \
               SELECT g, 0, b.epoch_no, t.id FROM generate_series(1, 2000) g \
               JOIN tx t ON t.id = 30000 + g JOIN block b ON b.id = t.block_id;
             -- 400 000 member rewards, unique per (addr, type, earned epoch, pool).
             INSERT INTO reward (addr_id, type, amount, spendable_epoch, pool_id) \
               SELECT 1 + g % 20000, 'member', 1000, 404 + g / 20000, 1 + g % 200 \
               FROM generate_series(0, 399999) g;
             INSERT INTO pool_hash (hash_raw, view) \
               SELECT substring(sha256(int8send(-g)) FROM 1 FOR 28), 'pool' || g \
               FROM generate_series(1, 200) g;
             INSERT INTO pool_update (hash_id, cert_index, vrf_key_hash, pledge, active_epoch_no, \
                 margin, fixed_cost, registered_tx_id, reward_addr_id{deposit_column}) \
               SELECT g, 0, sha256(int8send(g)), 0, 402, 0.01, 340000000, 100 + g, 2000 + g{deposit_value} \
               FROM generate_series(1, 200) g;
             INSERT INTO pool_update (hash_id, cert_index, vrf_key_hash, pledge, active_epoch_no, \
                 margin, fixed_cost, registered_tx_id, reward_addr_id) \
               SELECT g, 0, sha256(int8send(g)), 0, 420, 0.02, 340000000, 50000 + g, 2000 + g \
               FROM generate_series(1, 100) g;
             INSERT INTO pool_retire (hash_id, cert_index, announced_tx_id, retiring_epoch) \
               SELECT g, 0, 60000 + g, 425 + g % 10 FROM generate_series(1, 150) g;
             INSERT INTO reward (addr_id, type, amount, spendable_epoch, pool_id) \
               SELECT 2000 + g, 'refund', 500000000, 425 + g % 10, g FROM generate_series(1, 120) g;
             -- Every certificate has an owner but the first ten; one block's tx_count is off.
             INSERT INTO pool_owner (addr_id, pool_update_id) \
               SELECT 3000 + id, id FROM pool_update WHERE id > 10;
             UPDATE block SET tx_count = 3 WHERE id = 30000;
             -- MIR certificates across the history; 20 of them unpaid.
             INSERT INTO reserve (addr_id, cert_index, amount, tx_id) \
               SELECT 5000 + g, 0, 1000000, g * 380 FROM generate_series(1, 300) g;
             INSERT INTO treasury (addr_id, cert_index, amount, tx_id) \
               SELECT 8000 + g, 0, 1000000, g * 1000 + 1 FROM generate_series(1, 100) g;
             INSERT INTO {instant} (addr_id, type, amount, spendable_epoch) \
               SELECT r.addr_id, 'reserves', r.amount, b.epoch_no + 1 FROM reserve r \
               JOIN tx t ON t.id = r.tx_id JOIN block b ON b.id = t.block_id WHERE r.id <= 280;
             INSERT INTO {instant} (addr_id, type, amount, spendable_epoch) \
               SELECT r.addr_id, 'treasury', r.amount, b.epoch_no + 1 FROM treasury r \
               JOIN tx t ON t.id = r.tx_id JOIN block b ON b.id = t.block_id;"
        ))
        .await;
    for epoch in 400..=439 {
        fixture.epoch_param(epoch, 6).await;
        fixture.ada_pots(epoch, AdaPots::balanced()).await;
        fixture.epoch_stake_progress(epoch, true).await;
    }
    fixture.execute("ANALYZE").await;
    fixture
}

pub(crate) async fn no_sequential_scan_of_reward_tx_or_block(version: SchemaVersion) {
    let db = Cluster::shared().create_database("integrity_plans").await;
    let _fixture = big_fixture(&db, version).await;
    let direct = Direct::new(&db);
    let plans = PlanLog::default();
    let settings = IntegritySettings::new(DAY).explain_into(plans.clone());
    let mut mir = MirCheck::new(settings.clone());
    let mut refunds = PoolRefundsCheck::new(settings.clone());
    let mut pots = AdaPotsCheck::new(settings.clone(), None);
    let mut stake = EpochStakeCheck::new(settings.clone());
    let mut tx_counts = BlockTxCountsCheck::new(settings.clone());
    let mut owners = PoolOwnersCheck::new(settings);
    // A full run, then an incremental one: their epoch ranges, and so their plans, differ.
    for _ in 0..2 {
        assert_eq!(direct.tx_counts(&mut tx_counts).await.mismatches, 1);
        assert_eq!(direct.owners(&mut owners).await.updates_without_owner, 10);
        let found = direct.mir(&mut mir).await;
        assert_eq!(
            found.totals.reserves.unpaid_payments, 20,
            "the registration lookup ran"
        );
        assert_eq!(direct.refunds(&mut refunds).await.totals.missing, 30);
        direct.ada_pots(&mut pots).await;
        direct.run(&mut stake).await;
    }
    let recorded = plans.plans();
    assert!(recorded.len() >= 20, "{} plans", recorded.len());
    let mut report = String::new();
    for plan in &recorded {
        report.push_str(&format!("--- {}\n{}\n", plan.sql, plan.plan));
        for table in [
            "reward",
            "tx",
            "block",
            "stake_registration",
            "stake_deregistration",
        ] {
            assert!(
                !plan.plan.contains(&format!("Seq Scan on {table} ")),
                "{version}: sequential scan on {table}:\n{}\n{}",
                plan.sql,
                plan.plan
            );
        }
    }
    // The lookups go through the indexes the reference names.
    for index in [
        "block_pkey",
        "tx_pkey",
        "idx_block_epoch_no",
        "idx_stake_registration_addr_id",
        "idx_stake_deregistration_addr_id",
        "unique_reward",
        "idx_pool_update_hash_id",
        "idx_tx_block_id",
    ] {
        assert!(
            report.contains(index),
            "{version}: no plan uses {index}:\n{report}"
        );
    }
    eprintln!("=== integrity query plans on {version} ===\n{report}");
}

// === withdrawals (tests/it/integrity/withdrawals.rs: uses per_version!, Direct, big_fixture) ===
mod withdrawals;
// === block order, blocks in the future, the epoch table ===

use dbsync_exporter::checks::{
    BlockNumberGapsCheck, BlockTimeDisorderCheck, BlocksInFutureCheck, EpochRowFault,
    EpochTableCheck, EpochTableFindings,
};

per_version! {
    block_order_rules => super::block_order_rules;
    block_order_incremental_and_rollback => super::block_order_incremental_and_rollback;
    blocks_in_future_rules => super::blocks_in_future_rules;
    epoch_table_rules => super::epoch_table_rules;
    epoch_table_incremental_and_rollback => super::epoch_table_incremental_and_rollback;
    block_rule_metrics_in_a_scrape => super::block_rule_metrics_in_a_scrape;
    no_sequential_scan_in_block_rules => super::no_sequential_scan_in_block_rules;
}

impl Direct {
    async fn gaps(&self, check: &mut BlockNumberGapsCheck) -> u64 {
        match self.run(check).await {
            Verdict::Found(Findings::BlockNumberGaps(found)) => found.gaps,
            other => panic!("block_number_gaps: {other:?}"),
        }
    }

    async fn disorder(&self, check: &mut BlockTimeDisorderCheck) -> u64 {
        match self.run(check).await {
            Verdict::Found(Findings::BlockTimeDisorder(found)) => found.disordered,
            other => panic!("block_time_disorder: {other:?}"),
        }
    }

    async fn future(&self, check: &mut BlocksInFutureCheck) -> u64 {
        match self.run(check).await {
            Verdict::Found(Findings::BlocksInFuture(found)) => found.blocks,
            other => panic!("blocks_in_future: {other:?}"),
        }
    }

    async fn epoch_table(&self, check: &mut EpochTableCheck) -> EpochTableFindings {
        match self.run(check).await {
            Verdict::Found(Findings::EpochTable(found)) => found,
            other => panic!("epoch_table: {other:?}"),
        }
    }
}

/// The newest numbered block: `(id, block_no)`.
async fn tip_block(fixture: &Fixture) -> (i64, i64) {
    let (id, block_no, _) = fixture.tip().await.unwrap();
    (id, block_no)
}

/// Adds `delta` to the tip block's number: the blocks appended after it continue from there.
async fn renumber_tip(fixture: &Fixture, delta: i64) {
    let (id, block_no) = tip_block(fixture).await;
    fixture.set_block_no(id, Some(block_no + delta)).await;
}

/// A block's time as Unix seconds.
async fn block_time(fixture: &Fixture, id: i64) -> i64 {
    fixture
        .client
        .query_one(
            "SELECT extract(epoch FROM time)::int8 FROM block WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

/// One trap or fault of the block order per epoch (0 to 8, the tip). Blocks are 20 s apart.
async fn build_block_order(fixture: &mut Fixture, epochs: RangeInclusive<i64>) {
    for epoch in epochs {
        match epoch {
            // Traps: the genesis row, then an EBB with the time of the main block after it.
            0 | 1 => {
                ebb(fixture, epoch, 0).await;
                fixture.extend_into_epoch(epoch, 3, 20).await;
            }
            2 => {
                // Traps: a rollback (new, higher ids for the same numbers), then ids that jump
                // by ten (ids 1..n, then n+10..) with contiguous numbers.
                fixture.extend_into_epoch(2, 4, 20).await;
                fixture.rollback_and_replace(2).await;
                fixture
                    .execute("SELECT setval('block_id_seq', (SELECT max(id) FROM block) + 9)")
                    .await;
                fixture.extend_into_epoch(2, 3, 20).await;
            }
            3 => {
                // One lost block.
                fixture.extend_into_epoch(3, 3, 20).await;
                renumber_tip(fixture, 1).await;
                fixture.extend_into_epoch(3, 2, 20).await;
            }
            4 => {
                // Two lost blocks in a row, at the boundary: the pair's earlier block is in
                // epoch 3, so the predecessor comes from before the epoch's window.
                fixture.extend_into_epoch(4, 1, 20).await;
                renumber_tip(fixture, 2).await;
                fixture.extend_into_epoch(4, 2, 20).await;
            }
            5 => {
                // A repeated number: n, n, n+2 (two pairs); times still increase.
                let ids = fixture.extend_into_epoch(5, 3, 20).await;
                let (_, tip_no) = tip_block(fixture).await;
                fixture.set_block_no(ids[1], Some(tip_no - 2)).await;
                fixture.extend_into_epoch(5, 1, 20).await;
            }
            6 => {
                // A block at its predecessor's time.
                let ids = fixture.extend_into_epoch(6, 3, 20).await;
                let time = block_time(fixture, ids[0]).await;
                fixture.set_block_time(ids[1], time).await;
            }
            7 => {
                // A block earlier than its predecessor (the block after it is later again).
                let ids = fixture.extend_into_epoch(7, 3, 20).await;
                let time = block_time(fixture, ids[0]).await;
                fixture.set_block_time(ids[1], time - 5).await;
            }
            8 => {
                // The tip block lost a number.
                fixture.extend_into_epoch(8, 2, 20).await;
                fixture.extend_into_epoch(8, 1, 20).await;
                renumber_tip(fixture, 1).await;
            }
            _ => unreachable!("epoch {epoch}"),
        }
    }
}

fn gaps_expected() -> BTreeMap<i64, u64> {
    BTreeMap::from([(3, 1), (4, 1), (5, 2), (8, 1)])
}

fn disorder_expected() -> BTreeMap<i64, u64> {
    BTreeMap::from([(6, 1), (7, 1)])
}

pub(crate) async fn block_order_rules(version: SchemaVersion) {
    let db = Cluster::shared().create_database("block_order").await;
    // Stage-3 indexes suffice: the checks apply during initial sync.
    let mut fixture = ledger_fixture(&db, version, IndexSet::InitialSync).await;
    build_block_order(&mut fixture, 0..=8).await;
    let direct = Direct::new(&db);
    let mut gaps = BlockNumberGapsCheck::new(IntegritySettings::new(DAY));
    let mut disorder = BlockTimeDisorderCheck::new(IntegritySettings::new(DAY));
    assert_eq!(direct.gaps(&mut gaps).await, 5, "{version}");
    assert_eq!(gaps.epochs(), &gaps_expected(), "{version}");
    assert_eq!(direct.disorder(&mut disorder).await, 2, "{version}");
    assert_eq!(disorder.epochs(), &disorder_expected(), "{version}");

    // Without idx_block_block_no the pairs would be found by scanning block.
    fixture.execute("DROP INDEX idx_block_block_no").await;
    for reason in [
        direct.not_applicable(&mut gaps).await,
        direct.not_applicable(&mut disorder).await,
    ] {
        assert!(reason.contains("idx_block_block_no"), "{reason}");
    }
}

pub(crate) async fn block_order_incremental_and_rollback(version: SchemaVersion) {
    let db = Cluster::shared()
        .create_database("block_order_incremental")
        .await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    build_block_order(&mut fixture, 0..=5).await;
    let direct = Direct::new(&db);
    let mut gaps = BlockNumberGapsCheck::new(IntegritySettings::new(DAY));
    let mut disorder = BlockTimeDisorderCheck::new(IntegritySettings::new(DAY));
    assert_eq!(direct.gaps(&mut gaps).await, 4);
    assert_eq!(direct.disorder(&mut disorder).await, 0);

    // New epochs: the incremental runs examine epochs 4 to 8 and equal a full run.
    build_block_order(&mut fixture, 6..=8).await;
    assert_eq!(direct.gaps(&mut gaps).await, 5);
    assert_eq!(direct.disorder(&mut disorder).await, 2);
    let mut fresh_gaps = BlockNumberGapsCheck::new(IntegritySettings::new(DAY));
    let mut fresh_disorder = BlockTimeDisorderCheck::new(IntegritySettings::new(DAY));
    assert_eq!(direct.gaps(&mut fresh_gaps).await, 5);
    assert_eq!(direct.disorder(&mut fresh_disorder).await, 2);
    assert_eq!(gaps.epochs(), fresh_gaps.epochs());
    assert_eq!(disorder.epochs(), fresh_disorder.epochs());
    assert_eq!(gaps.epochs(), &gaps_expected());

    // A rollback of the faulty tip block, and db-sync writing the next number: the tip
    // epoch is re-examined incrementally and its gap is gone.
    fixture.truncate(1).await;
    fixture.extend_into_epoch(8, 1, 20).await;
    assert_eq!(direct.gaps(&mut gaps).await, 4);
    let mut expected = gaps_expected();
    expected.remove(&8);
    assert_eq!(gaps.epochs(), &expected);
    // A db-sync rollback replaces the top two blocks with new ids: nothing changes.
    fixture.rollback_and_replace(2).await;
    assert_eq!(direct.gaps(&mut gaps).await, 4);
    assert_eq!(direct.disorder(&mut disorder).await, 2);
    // The replacement tip repeats its predecessor's time: found in the re-examined epoch.
    let (tip, _) = tip_block(&fixture).await;
    let before: i64 = fixture
        .client
        .query_one(
            "SELECT extract(epoch FROM time)::int8 FROM block \
             WHERE block_no IS NOT NULL AND id < $1 ORDER BY id DESC LIMIT 1",
            &[&tip],
        )
        .await
        .unwrap()
        .get(0);
    fixture.set_block_time(tip, before).await;
    assert_eq!(direct.disorder(&mut disorder).await, 3);
    let mut fresh = BlockTimeDisorderCheck::new(IntegritySettings::new(DAY));
    assert_eq!(direct.disorder(&mut fresh).await, 3);
    assert_eq!(disorder.epochs(), fresh.epochs());
}

// === blocks_in_future ===

pub(crate) async fn blocks_in_future_rules(version: SchemaVersion) {
    let db = Cluster::shared().create_database("blocks_in_future").await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    fixture.extend_into_epoch(0, 3, 20).await;
    // Every time is relative to the database's clock: the test holds at any time of day.
    let now = fixture.db_now_unix().await;
    let hour_ago = fixture.extend_into_epoch(0, 1, 20).await[0];
    fixture.set_block_time(hour_ago, now - 3_600).await;
    let tip = fixture.extend_into_epoch(0, 1, 20).await[0];
    fixture.set_block_time(tip, now - 5).await; // trap: a tip seconds old
    let direct = Direct::new(&db);
    let mut check = BlocksInFutureCheck::new(IntegritySettings::new(DAY));
    assert_eq!(direct.future(&mut check).await, 0, "{version}");

    let skewed = fixture.extend_into_epoch(0, 1, 20).await[0];
    fixture.set_block_time(skewed, now + 30).await; // trap: within the tolerance
    assert_eq!(direct.future(&mut check).await, 0, "{version}");
    let ahead = fixture.extend_into_epoch(0, 1, 20).await[0];
    fixture.set_block_time(ahead, now + 3_600).await; // fault
    assert_eq!(direct.future(&mut check).await, 1, "{version}");

    // A database whose default TimeZone is far from UTC, either way: the same answer, where
    // the naive `time > now()` is wrong (0 on UTC+14, four blocks on UTC-7/-8).
    for (zone, naive) in [("Pacific/Kiritimati", 0), ("America/Los_Angeles", 4)] {
        fixture
            .execute(&format!(
                "ALTER DATABASE \"{}\" SET TimeZone = '{zone}'",
                db.name
            ))
            .await;
        // New sessions pick the setting up: a new pool, and a new plain connection.
        let direct = Direct::new(&db);
        let mut check = BlocksInFutureCheck::new(IntegritySettings::new(DAY));
        assert_eq!(direct.future(&mut check).await, 1, "{version} {zone}");
        let session = db.connect().await;
        let shown: String = session
            .query_one("SHOW TimeZone", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(shown, zone);
        let wrong: i64 = session
            .query_one("SELECT count(*) FROM block WHERE time > now()", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(wrong, naive, "{zone}: the trap is real");
    }

    // Before the stage-4 index the count would scan block.
    fixture.execute("DROP INDEX idx_block_time").await;
    let reason = direct.not_applicable(&mut check).await;
    assert!(reason.contains("idx_block_time"), "{reason}");
}

// === epoch_table ===

/// A block in `epoch` with transactions `(out_sum, fee, valid)`; returns its id.
async fn block_with_amounts(fixture: &mut Fixture, epoch: i64, txs: &[(i64, i64, bool)]) -> i64 {
    let block = fixture.block_in_epoch(epoch).await;
    for (out_sum, fee, valid) in txs {
        fixture.tx_with(block, *out_sum, *fee, *valid).await;
    }
    block
}

/// Corrupts one field of epoch `epoch`'s stored row.
async fn corrupt_epoch_row(fixture: &Fixture, epoch: i64, set: &str) {
    let table = fixture.epoch_table();
    fixture
        .execute(&format!("UPDATE {table} SET {set} WHERE no = {epoch}"))
        .await;
}

/// One trap or fault of the stored epoch rows per epoch (0 to 10, the tip). Each epoch's row
/// is written as db-sync writes it, at the first block of the next epoch, then corrupted.
async fn build_epoch_table(fixture: &mut Fixture, epochs: RangeInclusive<i64>) {
    for epoch in epochs {
        // The row of the previous epoch, written at this epoch's first block (epoch 9's is
        // missing: a fault).
        if epoch > 0 && epoch - 1 != 9 {
            fixture.write_epoch_row(epoch - 1).await;
        }
        match epoch {
            0 => {
                // Traps: genesis transactions belong to no epoch; an EBB; no transaction
                // in the epoch (stored 0/0/0).
                let genesis: i64 = fixture
                    .client
                    .query_one("SELECT id FROM block WHERE epoch_no IS NULL", &[])
                    .await
                    .unwrap()
                    .get(0);
                for _ in 0..3 {
                    fixture.tx_with(genesis, 1_000_000_000, 0, true).await;
                }
                ebb(fixture, 0, 0).await;
                fixture.extend_into_epoch(0, 2, 20).await;
            }
            1 => {
                // Trap: an EBB counts in blk_count.
                ebb(fixture, 1, 0).await;
                block_with_amounts(fixture, 1, &[(3_000_000, 170_000, true)]).await;
            }
            2 => {
                // Trap: two-transaction blocks, one invalid (its collateral is its fee, its
                // collateral return its out_sum; db-sync sums them like any other).
                block_with_amounts(
                    fixture,
                    2,
                    &[(5_000_000, 200_000, true), (1_000_000, 300_000, false)],
                )
                .await;
                block_with_amounts(
                    fixture,
                    2,
                    &[(7_000_000, 180_000, true), (2_000_000, 190_000, true)],
                )
                .await;
            }
            3..=9 => {
                block_with_amounts(fixture, epoch, &[(4_000_000, 170_000, true)]).await;
                block_with_amounts(fixture, epoch, &[]).await;
            }
            10 => {
                // The running epoch: up to 13.7.1 its row is rewritten as blocks arrive
                // (stale here by one block); from 13.7.2 it has none. Never compared.
                block_with_amounts(fixture, 10, &[(4_000_000, 170_000, true)]).await;
                if fixture.version != SchemaVersion::V13_7 {
                    fixture.write_epoch_row(10).await;
                }
                block_with_amounts(fixture, 10, &[(1_000_000, 170_000, true)]).await;
            }
            _ => unreachable!("epoch {epoch}"),
        }
        // Faults: each field wrong in its own epoch, once the epoch's row is written.
        let corruption = match epoch - 1 {
            3 => "out_sum = out_sum + 1",
            4 => "fees = fees + 1",
            5 => "tx_count = tx_count + 1",
            6 => "blk_count = blk_count - 1",
            7 => "start_time = start_time - interval '1 second'",
            8 => "end_time = end_time + interval '1 second'",
            _ => continue,
        };
        corrupt_epoch_row(fixture, epoch - 1, corruption).await;
    }
}

fn differs(field: &'static str) -> EpochRowFault {
    EpochRowFault::Differs(vec![field])
}

fn epoch_table_expected() -> BTreeMap<i64, EpochRowFault> {
    BTreeMap::from([
        (3, differs("out_sum")),
        (4, differs("fees")),
        (5, differs("tx_count")),
        (6, differs("blk_count")),
        (7, differs("start_time")),
        (8, differs("end_time")),
        (9, EpochRowFault::Missing),
    ])
}

pub(crate) async fn epoch_table_rules(version: SchemaVersion) {
    let db = Cluster::shared().create_database("epoch_table").await;
    // Stage-3 indexes suffice: the check applies during initial sync.
    let mut fixture = ledger_fixture(&db, version, IndexSet::InitialSync).await;
    build_epoch_table(&mut fixture, 0..=0).await;
    let direct = Direct::new(&db);
    let mut check = EpochTableCheck::new(IntegritySettings::new(DAY));
    // No stored row yet (13.7.2+ with epoch sync disabled looks the same): not applicable.
    let reason = direct.not_applicable(&mut check).await;
    assert!(reason.contains(fixture.epoch_table()), "{reason}");

    build_epoch_table(&mut fixture, 1..=10).await;
    let found = direct.epoch_table(&mut check).await;
    assert!(found.coverage.full_run);
    assert_eq!(check.epochs(), &epoch_table_expected(), "{version}");
    assert_eq!((found.mismatches, found.missing), (7, 1));

    // Two fields wrong in one epoch are one epoch, both fields named.
    corrupt_epoch_row(&fixture, 3, "tx_count = tx_count + 5").await;
    let mut fresh = EpochTableCheck::new(IntegritySettings::new(DAY));
    assert_eq!(direct.epoch_table(&mut fresh).await.mismatches, 7);
    assert_eq!(
        fresh.epochs()[&3],
        EpochRowFault::Differs(vec!["out_sum", "tx_count"])
    );

    fixture.execute("DROP INDEX idx_tx_block_id").await;
    let reason = direct.not_applicable(&mut fresh).await;
    assert!(reason.contains("idx_tx_block_id"), "{reason}");
}

pub(crate) async fn epoch_table_incremental_and_rollback(version: SchemaVersion) {
    let db = Cluster::shared()
        .create_database("epoch_table_incremental")
        .await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    build_epoch_table(&mut fixture, 0..=5).await;
    let direct = Direct::new(&db);
    let mut check = EpochTableCheck::new(IntegritySettings::new(DAY));
    // Epoch 5 is running: its (corrupt-to-be) row is not there yet, and it is not compared.
    assert_eq!(direct.epoch_table(&mut check).await.mismatches, 2);

    build_epoch_table(&mut fixture, 6..=10).await;
    let second = direct.epoch_table(&mut check).await;
    assert!(!second.coverage.full_run);
    assert_eq!(
        second.coverage.from_epoch, 5,
        "the last run's tip epoch, now finished"
    );
    let mut fresh = EpochTableCheck::new(IntegritySettings::new(DAY));
    assert_eq!(direct.epoch_table(&mut fresh).await.mismatches, 7);
    assert_eq!(check.epochs(), fresh.epochs());
    assert_eq!(check.epochs(), &epoch_table_expected());

    // A rollback inside the running epoch changes nothing.
    fixture.rollback_and_replace(1).await;
    let after = direct.epoch_table(&mut check).await;
    assert!(!after.coverage.full_run);
    assert_eq!(after.mismatches, 7);
    // A rollback to the end of epoch 9: the tip epoch goes down, everything is re-examined,
    // and epoch 9 (missing its row) is the running epoch again.
    fixture.truncate(2).await;
    let after = direct.epoch_table(&mut check).await;
    assert!(after.coverage.full_run);
    assert_eq!(after.coverage.tip_epoch, 9);
    let mut expected = epoch_table_expected();
    expected.remove(&9);
    assert_eq!(check.epochs(), &expected);
}

// === the scrape ===

pub(crate) async fn block_rule_metrics_in_a_scrape(version: SchemaVersion) {
    let db = Cluster::shared()
        .create_database("block_rules_scrape")
        .await;
    let mut fixture = ledger_fixture(&db, version, IndexSet::NearTip).await;
    build_block_order(&mut fixture, 0..=7).await;
    // The stored rows of epochs 0 to 6, epoch 2's wrong; epoch 7 is running.
    for epoch in 0..=6 {
        fixture.write_epoch_row(epoch).await;
    }
    corrupt_epoch_row(&fixture, 2, "fees = fees + 7").await;
    let now = fixture.db_now_unix().await;
    let ahead = fixture.extend_into_epoch(7, 2, 20).await;
    fixture.set_block_time(ahead[0], now + 7_200).await;
    fixture.set_block_time(ahead[1], now + 7_220).await;

    let mut settings = config(&db.reader_url());
    settings.checks.integrity_interval = Duration::from_millis(300);
    let exporter = Exporter::start(settings).await;
    let checks = [
        "block_number_gaps",
        "block_time_disorder",
        "blocks_in_future",
        "epoch_table",
    ];
    for check in checks {
        wait_for_value(
            &exporter,
            &format!("dbsync_check_applicable{{check=\"{check}\"}}"),
            1.0,
        )
        .await;
    }
    let body = exporter.metrics().await;
    for line in [
        "dbsync_block_number_gaps 4",
        "dbsync_block_time_disorder 2",
        "dbsync_blocks_in_future 2",
        "dbsync_epoch_table_mismatches 1",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "{line} missing in:\n{body}"
        );
    }
    for check in checks {
        assert_eq!(
            must(&body, &format!("dbsync_check_success{{check=\"{check}\"}}")),
            1.0
        );
    }
    assert!(
        body.contains("# HELP dbsync_blocks_in_future Blocks whose time"),
        "{body}"
    );
    exporter.shutdown().await;
}

// === query plans ===

pub(crate) async fn no_sequential_scan_in_block_rules(version: SchemaVersion) {
    let db = Cluster::shared().create_database("block_rule_plans").await;
    let fixture = big_fixture(&db, version).await;
    // Stored rows for the 39 finished epochs, as db-sync writes them; one of them wrong.
    let table = fixture.epoch_table();
    let id = if table == "epoch_finalized" {
        "b.epoch_no + 1, "
    } else {
        ""
    };
    let id_column = if id.is_empty() { "" } else { "id, " };
    fixture
        .execute(&format!(
            "INSERT INTO {table} ({id_column}out_sum, fees, tx_count, blk_count, no, start_time, \
                 end_time) \
             SELECT {id}coalesce(sum(t.out_sum), 0), coalesce(sum(t.fee), 0), count(t.id), \
                 count(DISTINCT b.id), b.epoch_no, min(b.time), max(b.time) \
             FROM block b LEFT JOIN tx t ON t.block_id = b.id \
             WHERE b.epoch_no < 439 GROUP BY b.epoch_no;
             UPDATE {table} SET fees = fees + 1 WHERE no = 420;
             ANALYZE"
        ))
        .await;
    let direct = Direct::new(&db);
    let plans = PlanLog::default();
    let settings = IntegritySettings::new(DAY).explain_into(plans.clone());
    let mut gaps = BlockNumberGapsCheck::new(settings.clone());
    let mut disorder = BlockTimeDisorderCheck::new(settings.clone());
    let mut future = BlocksInFutureCheck::new(settings.clone());
    let mut epochs = EpochTableCheck::new(settings);
    // A full run, then an incremental one: their epoch ranges, and so their plans, differ.
    for _ in 0..2 {
        assert_eq!(direct.gaps(&mut gaps).await, 0);
        assert_eq!(direct.disorder(&mut disorder).await, 0);
        assert_eq!(direct.future(&mut future).await, 0);
        assert_eq!(direct.epoch_table(&mut epochs).await.mismatches, 1);
    }
    let recorded = plans.plans();
    assert!(recorded.len() >= 8, "{} plans", recorded.len());
    let mut report = String::new();
    for plan in &recorded {
        report.push_str(&format!("--- {}\n{}\n", plan.sql, plan.plan));
        for table in ["tx", "block"] {
            assert!(
                !plan.plan.contains(&format!("Seq Scan on {table} ")),
                "{version}: sequential scan on {table}:\n{}\n{}",
                plan.sql,
                plan.plan
            );
        }
    }
    for index in [
        "idx_block_block_no",
        "idx_block_epoch_no",
        "idx_block_time",
        "idx_tx_block_id",
    ] {
        assert!(
            report.contains(index),
            "{version}: no plan uses {index}:\n{report}"
        );
    }
    eprintln!("=== block rule query plans on {version} ===\n{report}");
}
