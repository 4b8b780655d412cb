//! The transaction-level integrity rules (`tx_balance`, `tx_in_double_spends`, and the
//! supply drift derived from both) against real fixtures of db-sync 13.2, 13.3, 13.6 and
//! 13.7.2+, with `tx_in` and with the `consumed_by_tx_id` variant.
//!
//! Every trap and fault has its own epoch, so a failure names it. The derived drift is also
//! compared with the supply identity computed the slow way (the full UTxO anti-join), which
//! only a test can afford.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use dbsync_exporter::checks::integrity::tx_balance::TxBalanceEpoch;
use dbsync_exporter::checks::integrity::tx_in_double_spends::DoubleSpendEpoch;
use dbsync_exporter::checks::{
    DoubleSpendFindings, Findings, IntegritySettings, PlanLog, TxBalanceCheck, TxBalanceFindings,
    TxInDoubleSpendsCheck, Verdict,
};
use dbsync_fixture::{
    near_tip_ddl, Cluster, Fixture, IndexSet, NewBlock, SchemaVersion, TestDatabase, Transfer,
};

use crate::common::{config, must, wait_for_value, Exporter};
use crate::integrity::{ledger_fixture, open_epoch, Direct};

const DAY: Duration = Duration::from_secs(86_400);
const ADA: i64 = 1_000_000;
const FEE: i64 = 170_000;
/// Genesis outputs, one per genesis transaction: distinct values, so a sum names them.
const GENESIS_OUTPUTS: i64 = 40;

/// Runs each scenario once per schema shape and input variant, as its own test.
macro_rules! per_variant {
    ($($name:ident => $scenario:path;)*) => {$(
        mod $name {
            use dbsync_fixture::SchemaVersion;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v13_2() { $scenario(SchemaVersion::V13_2, false).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v13_3() { $scenario(SchemaVersion::V13_3, false).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v13_6() { $scenario(SchemaVersion::V13_6, false).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v13_7() { $scenario(SchemaVersion::V13_7, false).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v13_6_consumed() { $scenario(SchemaVersion::V13_6, true).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn v13_7_consumed() { $scenario(SchemaVersion::V13_7, true).await }
        }
    )*};
}

per_variant! {
    tx_rules_traps_and_faults => super::tx_rules_traps_and_faults;
    tx_rules_incremental_and_rollback => super::tx_rules_incremental_and_rollback;
    tx_rules_applicability => super::tx_rules_applicability;
    tx_rules_no_sequential_scan => super::tx_rules_no_sequential_scan;
}

// === the chain ===

/// A fixture whose genesis blocks hold [`GENESIS_OUTPUTS`] funding outputs, and a cursor over
/// them.
struct Chain {
    fixture: Fixture,
    consumed: bool,
    genesis: Vec<(i64, i64)>,
    next: usize,
}

impl Chain {
    /// The Byron genesis block with 38 distribution transactions, then a Shelley genesis
    /// block (previous_id set, epoch_no NULL) with 2 more; epoch 0 starts with the ledger's
    /// `ada_pots`. Nothing after genesis is in the chain yet.
    async fn new(
        db: &TestDatabase,
        version: SchemaVersion,
        indexes: IndexSet,
        consumed: bool,
    ) -> Chain {
        let mut fixture = ledger_fixture(db, version, indexes).await;
        let byron: i64 = fixture
            .client
            .query_one("SELECT id FROM block WHERE previous_id IS NULL", &[])
            .await
            .unwrap()
            .get(0);
        let mut genesis = Vec::new();
        for k in 0..GENESIS_OUTPUTS {
            if k == GENESIS_OUTPUTS - 2 {
                let hash = fixture.next_hash(-2);
                fixture
                    .insert_block(NewBlock {
                        block_no: None,
                        slot_no: None,
                        epoch_no: None,
                        epoch_slot_no: None,
                        time_unix: 1_506_203_091,
                        hash,
                        proto_major: 0,
                        proto_minor: 0,
                        tx_count: 2,
                    })
                    .await;
            }
            let block: i64 = if k < GENESIS_OUTPUTS - 2 {
                byron
            } else {
                fixture
                    .client
                    .query_one("SELECT max(id) FROM block", &[])
                    .await
                    .unwrap()
                    .get(0)
            };
            let value = 1_000_000 * ADA + k;
            let tx = fixture
                .accounted_tx(block, 0, Some(0), 0, true, value)
                .await;
            fixture.tx_out(tx, 0, value).await;
            genesis.push((tx, value));
        }
        if consumed {
            fixture.use_consumed_by_tx_id().await;
        }
        open_epoch(&mut fixture, 0, 1).await;
        Chain {
            fixture,
            consumed,
            genesis,
            next: 0,
        }
    }

    /// The next unspent genesis output: `((tx, index), value)`.
    fn fund(&mut self) -> ((i64, i16), i64) {
        let (tx, value) = self.genesis[self.next];
        self.next += 1;
        ((tx, 0), value)
    }

    /// A donation, or 0 on 13.2 (no such column).
    fn donation(&self, lovelace: i64) -> i64 {
        if self.fixture.version == SchemaVersion::V13_2 {
            0
        } else {
            lovelace
        }
    }

    /// Appends a block in `epoch` holding `transfers`; returns their ids.
    async fn block(&mut self, epoch: i64, transfers: &[Transfer]) -> Vec<i64> {
        let block = self.fixture.block_in_epoch(epoch).await;
        let mut ids = Vec::new();
        for transfer in transfers {
            ids.push(self.fixture.transfer(block, transfer).await);
        }
        ids
    }

    /// A balanced valid transaction spending one fresh genesis output into one output.
    fn plain(&mut self) -> Transfer {
        let (input, value) = self.fund();
        Transfer {
            inputs: vec![input],
            outputs: vec![value - FEE],
            fee: FEE,
            ..Transfer::default()
        }
    }

    /// A stake address for withdrawals.
    async fn address(&mut self) -> i64 {
        self.fixture.stake_address().await
    }
}

/// The value of the genesis output `k` (see [`Chain::new`]).
fn genesis_value(k: i64) -> i64 {
    1_000_000 * ADA + k
}

/// The traps (epochs 0–13) and faults (14–18, 18 the tip). Genesis outputs are used in
/// order, so the double-spent values of 17 and 18 are known (see [`expected_spends`]).
async fn build(chain: &mut Chain, epochs: RangeInclusive<i64>) {
    for epoch in epochs {
        match epoch {
            // Byron: no deposit, no withdrawal, the fee burnt.
            0 => {
                let t = chain.plain();
                chain.block(0, &[t]).await;
            }
            // Two inputs, two outputs.
            1 => {
                let ((a, va), (b, vb)) = (chain.fund(), chain.fund());
                let t = Transfer {
                    inputs: vec![a, b],
                    outputs: vec![va, vb - FEE],
                    fee: FEE,
                    ..Transfer::default()
                };
                chain.block(1, &[t]).await;
            }
            // A 2-ADA key deposit; 3: a 500-ADA pool deposit; 4: a 500-ADA DRep and a
            // 100 000-ADA proposal deposit.
            2..=4 => {
                let deposits: &[i64] = match epoch {
                    2 => &[2 * ADA],
                    3 => &[500 * ADA],
                    _ => &[500 * ADA, 100_000 * ADA],
                };
                let mut transfers = Vec::new();
                for deposit in deposits {
                    let (input, value) = chain.fund();
                    transfers.push(Transfer {
                        inputs: vec![input],
                        outputs: vec![value - FEE - deposit],
                        fee: FEE,
                        deposit: Some(*deposit),
                        ..Transfer::default()
                    });
                }
                chain.block(epoch, &transfers).await;
            }
            // A refund: a negative deposit.
            5 => {
                let (input, value) = chain.fund();
                let t = Transfer {
                    inputs: vec![input],
                    outputs: vec![value - FEE + 2 * ADA],
                    fee: FEE,
                    deposit: Some(-2 * ADA),
                    ..Transfer::default()
                };
                chain.block(5, &[t]).await;
            }
            // A transaction with 20 withdrawals, and one with a zero withdrawal.
            6 => {
                let mut withdrawals = Vec::new();
                for n in 1..=20 {
                    withdrawals.push((chain.address().await, n * 1_000));
                }
                let (input, value) = chain.fund();
                let many = Transfer {
                    inputs: vec![input],
                    outputs: vec![value - FEE + 210_000],
                    withdrawals,
                    fee: FEE,
                    ..Transfer::default()
                };
                let mut zero = chain.plain();
                zero.withdrawals = vec![(chain.address().await, 0)];
                chain.block(6, &[many, zero]).await;
            }
            // A valid transaction's treasury donation.
            7 => {
                let donation = chain.donation(5 * ADA);
                let (input, value) = chain.fund();
                let t = Transfer {
                    inputs: vec![input],
                    outputs: vec![value - FEE - donation],
                    fee: FEE,
                    treasury_donation: donation,
                    ..Transfer::default()
                };
                chain.block(7, &[t]).await;
            }
            // Phase-2-invalid, Alonzo: the collateral input in tx_in, no return, the whole
            // collateral taken as the fee, deposit 0.
            8 => {
                let (input, value) = chain.fund();
                let t = Transfer {
                    inputs: vec![input],
                    fee: value,
                    valid_contract: false,
                    ..Transfer::default()
                };
                chain.block(8, &[t]).await;
            }
            // Phase-2-invalid, Babbage: two collateral inputs, the return at index 2 (after
            // the two regular outputs db-sync does not store).
            9 => {
                let ((a, va), (b, vb)) = (chain.fund(), chain.fund());
                let taken = 3 * ADA;
                let t = Transfer {
                    inputs: vec![a, b],
                    outputs: vec![va + vb - taken],
                    first_output_index: 2,
                    fee: taken,
                    valid_contract: false,
                    ..Transfer::default()
                };
                chain.block(9, &[t]).await;
            }
            // Phase-2-invalid, Conway: the body's 5-ADA donation is stored, not applied.
            10 => {
                let donation = chain.donation(5 * ADA);
                let (input, value) = chain.fund();
                let t = Transfer {
                    inputs: vec![input],
                    outputs: vec![value - 2 * ADA],
                    fee: 2 * ADA,
                    treasury_donation: donation,
                    valid_contract: false,
                    ..Transfer::default()
                };
                chain.block(10, &[t]).await;
            }
            // An invalid and a valid transaction in one block.
            11 => {
                let valid = chain.plain();
                let (input, value) = chain.fund();
                let invalid = Transfer {
                    inputs: vec![input],
                    outputs: vec![value - ADA],
                    fee: ADA,
                    valid_contract: false,
                    ..Transfer::default()
                };
                chain.block(11, &[valid, invalid]).await;
            }
            // A valid Plutus transaction declaring as collateral and as reference input an
            // output that another transaction of the block spends, and a collateral return.
            12 => {
                let (spent, value) = chain.fund();
                let spender = Transfer {
                    inputs: vec![spent],
                    outputs: vec![value - FEE],
                    fee: FEE,
                    ..Transfer::default()
                };
                let plutus = chain.plain();
                let ids = chain.block(12, &[spender, plutus]).await;
                let fixture = &chain.fixture;
                fixture.collateral_tx_in(ids[1], spent.0, spent.1).await;
                fixture.collateral_tx_out(ids[1], 1, value - 4 * ADA).await;
                fixture.reference_tx_in(ids[1], spent.0, spent.1).await;
            }
            // A NULL deposit (an unresolved input): unverifiable, skipped, although 2 ADA are
            // missing from its outputs.
            13 => {
                let (input, value) = chain.fund();
                let t = Transfer {
                    inputs: vec![input],
                    outputs: vec![value - FEE - 2 * ADA],
                    fee: FEE,
                    deposit: None,
                    ..Transfer::default()
                };
                chain.block(13, &[t]).await;
            }
            // Fault: the outputs exceed the inputs by 1 lovelace.
            14 => {
                let mut t = chain.plain();
                t.outputs[0] += 1;
                let ok = chain.plain();
                chain.block(14, &[ok, t]).await;
            }
            // Fault: out_sum is not the sum of the outputs (the balance holds).
            15 => {
                let mut t = chain.plain();
                t.out_sum = Some(t.outputs[0] + 1_000);
                chain.block(15, &[t]).await;
            }
            // Fault: a dangling input (output 7 of a genesis tx does not exist) whose 3 ADA
            // the outputs count. The consumed variant cannot record one: there the 3 ADA are
            // simply missing from the inputs.
            16 => {
                let (input, value) = chain.fund();
                let mut inputs = vec![input];
                if !chain.consumed {
                    inputs.push((input.0, 7));
                }
                let t = Transfer {
                    inputs,
                    outputs: vec![value - FEE + 3 * ADA],
                    fee: FEE,
                    ..Transfer::default()
                };
                chain.block(16, &[t]).await;
            }
            // Fault: an output spent by two transactions, the second balanced too (its
            // outputs absorb the value). Not recordable in the consumed variant.
            17 => {
                let (input, value) = chain.fund();
                let first = Transfer {
                    inputs: vec![input],
                    outputs: vec![value - FEE],
                    fee: FEE,
                    ..Transfer::default()
                };
                chain.block(17, std::slice::from_ref(&first)).await;
                if !chain.consumed {
                    chain.block(17, &[first]).await;
                }
            }
            // Fault: three double spends, one of them a triple spend (counted once, its value
            // twice), in the tip epoch.
            18 => {
                let outputs = [chain.fund(), chain.fund(), chain.fund()];
                let spend = |(input, value): ((i64, i16), i64)| Transfer {
                    inputs: vec![input],
                    outputs: vec![value - FEE],
                    fee: FEE,
                    ..Transfer::default()
                };
                let firsts: Vec<Transfer> = outputs.iter().map(|o| spend(*o)).collect();
                chain.block(18, &firsts).await;
                if !chain.consumed {
                    let again: Vec<Transfer> = outputs.iter().map(|o| spend(*o)).collect();
                    chain.block(18, &again).await;
                    chain.block(18, &[spend(outputs[0])]).await;
                }
            }
            _ => unreachable!("epoch {epoch}"),
        }
    }
}

/// Genesis outputs used before epoch 17: 1+2+1+1+2+1+2+1+1+2+1+2+2+1+2+1+1 = 24.
const FIRST_DOUBLE_SPENT: i64 = 24;

fn expected_balance() -> BTreeMap<i64, TxBalanceEpoch> {
    BTreeMap::from([
        (
            14,
            TxBalanceEpoch {
                mismatches: 1,
                imbalance: -1,
            },
        ),
        (
            15,
            TxBalanceEpoch {
                mismatches: 1,
                imbalance: 0,
            },
        ),
        (
            16,
            TxBalanceEpoch {
                mismatches: 1,
                imbalance: -3 * i128::from(ADA),
            },
        ),
    ])
}

fn expected_spends() -> BTreeMap<i64, DoubleSpendEpoch> {
    let g = |k| i128::from(genesis_value(k));
    let k = FIRST_DOUBLE_SPENT;
    BTreeMap::from([
        (
            17,
            DoubleSpendEpoch {
                outputs: 1,
                lovelace: g(k),
            },
        ),
        (
            18,
            DoubleSpendEpoch {
                outputs: 3,
                lovelace: 2 * g(k + 1) + g(k + 2) + g(k + 3),
            },
        ),
    ])
}

impl Direct {
    async fn balance(&self, check: &mut TxBalanceCheck) -> TxBalanceFindings {
        match self.run(check).await {
            Verdict::Found(Findings::TxBalance(found)) => found,
            other => panic!("tx_balance: {other:?}"),
        }
    }

    async fn spends(&self, check: &mut TxInDoubleSpendsCheck) -> DoubleSpendFindings {
        match self.run(check).await {
            Verdict::Found(Findings::TxInDoubleSpends(found)) => found,
            other => panic!("tx_in_double_spends: {other:?}"),
        }
    }
}

/// The supply identity the slow way: genesis − (UTxO + fees + deposits + donations of valid
/// transactions − withdrawals), with the UTxO from the anti-join the checks never run.
async fn slow_drift(fixture: &Fixture, consumed: bool) -> i128 {
    let unspent = if consumed {
        "o.consumed_by_tx_id IS NULL"
    } else {
        "NOT EXISTS (SELECT 1 FROM tx_in i WHERE i.tx_out_id = o.tx_id AND i.tx_out_index = o.index)"
    };
    let donations = if fixture.version == SchemaVersion::V13_2 {
        "0"
    } else {
        "(SELECT coalesce(sum(treasury_donation), 0) FROM tx WHERE valid_contract)"
    };
    let sql = format!(
        "SELECT ((SELECT coalesce(sum(o.value), 0) FROM tx_out o JOIN tx ON tx.id = o.tx_id \
                  JOIN block b ON b.id = tx.block_id WHERE b.epoch_no IS NULL) \
               - (SELECT coalesce(sum(o.value), 0) FROM tx_out o WHERE {unspent}) \
               - (SELECT coalesce(sum(fee), 0) FROM tx) \
               - (SELECT coalesce(sum(deposit), 0) FROM tx) \
               - {donations} \
               + (SELECT coalesce(sum(amount), 0) FROM withdrawal))::text"
    );
    let text: String = fixture.client.query_one(&sql, &[]).await.unwrap().get(0);
    text.parse().unwrap()
}

// === scenarios ===

pub(crate) async fn tx_rules_traps_and_faults(version: SchemaVersion, consumed: bool) {
    let db = Cluster::shared().create_database("tx_rules").await;
    let mut chain = Chain::new(&db, version, IndexSet::NearTip, consumed).await;
    build(&mut chain, 0..=18).await;
    let direct = Direct::new(&db);

    let mut balance = TxBalanceCheck::new(IntegritySettings::new(DAY));
    let found = direct.balance(&mut balance).await;
    assert!(found.coverage.full_run);
    assert_eq!(
        balance.epochs(),
        &expected_balance(),
        "{version} consumed={consumed}"
    );
    assert_eq!(found.mismatches, 3);
    assert_eq!(found.imbalance_lovelace, -3 * i128::from(ADA) - 1);
    assert_eq!(found.consumed_variant, consumed);

    let mut spends = TxInDoubleSpendsCheck::new(IntegritySettings::new(DAY));
    let double_spent = if consumed {
        let reason = direct.not_applicable(&mut spends).await;
        assert!(reason.contains("consumed"), "{reason}");
        0
    } else {
        let found = direct.spends(&mut spends).await;
        assert_eq!(spends.epochs(), &expected_spends(), "{version}");
        assert_eq!(found.double_spends, 4);
        found.double_spent_lovelace
    };

    // The derived drift is the supply identity: compare with the slow way, less the 2 ADA the
    // NULL-deposit transaction of epoch 13 holds back (the slow way counts it as missing; the
    // rule does not verify it).
    let drift = found.imbalance_lovelace - double_spent;
    let slow = slow_drift(&chain.fixture, consumed).await;
    assert_eq!(
        drift,
        slow - 2 * i128::from(ADA),
        "{version} consumed={consumed}"
    );
    let expected_drift = -3 * i128::from(ADA)
        - 1
        - expected_spends()
            .values()
            .map(|e| if consumed { 0 } else { e.lovelace })
            .sum::<i128>();
    assert_eq!(drift, expected_drift);
}

pub(crate) async fn tx_rules_incremental_and_rollback(version: SchemaVersion, consumed: bool) {
    let db = Cluster::shared()
        .create_database("tx_rules_incremental")
        .await;
    let mut chain = Chain::new(&db, version, IndexSet::NearTip, consumed).await;
    build(&mut chain, 0..=15).await;
    let direct = Direct::new(&db);
    let mut balance = TxBalanceCheck::new(IntegritySettings::new(DAY));
    let mut spends = TxInDoubleSpendsCheck::new(IntegritySettings::new(DAY));
    assert_eq!(direct.balance(&mut balance).await.mismatches, 2);
    if !consumed {
        assert_eq!(direct.spends(&mut spends).await.double_spends, 0);
    }

    // New epochs: the incremental runs re-examine 15 (the last run's tip epoch) and later,
    // and equal a full run.
    build(&mut chain, 16..=18).await;
    let second = direct.balance(&mut balance).await;
    assert!(!second.coverage.full_run);
    assert_eq!(second.coverage.from_epoch, 15);
    assert_eq!(balance.epochs(), &expected_balance());
    let mut fresh = TxBalanceCheck::new(IntegritySettings::new(DAY));
    let full = direct.balance(&mut fresh).await;
    assert!(full.coverage.full_run);
    assert_eq!(
        (full.mismatches, full.imbalance_lovelace),
        (second.mismatches, second.imbalance_lovelace)
    );
    assert_eq!(balance.epochs(), fresh.epochs());
    if !consumed {
        let found = direct.spends(&mut spends).await;
        assert!(!found.coverage.full_run);
        assert_eq!(spends.epochs(), &expected_spends());
        let mut fresh = TxInDoubleSpendsCheck::new(IntegritySettings::new(DAY));
        direct.spends(&mut fresh).await;
        assert_eq!(spends.epochs(), fresh.epochs());
    }

    // A fault in a new tip block of epoch 18, then a rollback that replaces that block (and
    // deletes its transaction, outputs and inputs) with one holding a balanced transaction:
    // the tip epoch is re-examined incrementally and the fault is gone.
    let mut bad = chain.plain();
    bad.outputs[0] += 5;
    chain.block(18, &[bad]).await;
    assert_eq!(direct.balance(&mut balance).await.mismatches, 4);
    chain.fixture.rollback_and_replace(1).await;
    let tip = chain.fixture.tip().await.unwrap().0;
    let good = chain.plain();
    chain.fixture.transfer(tip, &good).await;
    let after = direct.balance(&mut balance).await;
    assert!(!after.coverage.full_run);
    assert_eq!(after.mismatches, 3);
    assert_eq!(balance.epochs(), &expected_balance());
    if !consumed {
        assert_eq!(direct.spends(&mut spends).await.double_spends, 4);
        assert_eq!(spends.epochs(), &expected_spends());
    }
}

pub(crate) async fn tx_rules_applicability(version: SchemaVersion, consumed: bool) {
    let db = Cluster::shared()
        .create_database("tx_rules_applicable")
        .await;
    let mut chain = Chain::new(&db, version, IndexSet::InitialSync, consumed).await;
    build(&mut chain, 0..=1).await;
    let direct = Direct::new(&db);
    let mut balance = TxBalanceCheck::new(IntegritySettings::new(DAY));
    let mut spends = TxInDoubleSpendsCheck::new(IntegritySettings::new(DAY));
    // Initial sync: the stage-4 indexes are missing.
    let reason = direct.not_applicable(&mut balance).await;
    let wanted = if consumed {
        "idx_withdrawal_tx_id"
    } else {
        "idx_tx_in_tx_in_id"
    };
    assert!(reason.contains(wanted), "{reason}");
    let reason = direct.not_applicable(&mut spends).await;
    assert!(
        reason.contains(if consumed {
            "consumed"
        } else {
            "idx_tx_in_tx_in_id"
        }),
        "{reason}"
    );
    chain.fixture.execute(&near_tip_ddl(version)).await;
    assert_eq!(direct.balance(&mut balance).await.mismatches, 0);
    if !consumed {
        assert_eq!(direct.spends(&mut spends).await.double_spends, 0);
        // Only the consumed variant's token counts, not the column 13.6 always has.
        if version.has_consumed_by_column() {
            chain
                .fixture
                .execute("CREATE INDEX idx_tx_out_consumed_by_tx_id ON tx_out (consumed_by_tx_id)")
                .await;
            assert_eq!(direct.spends(&mut spends).await.double_spends, 0);
            assert!(!direct.balance(&mut balance).await.consumed_variant);
        }
    } else {
        // The consumed index is what the variant's balance needs.
        chain
            .fixture
            .execute("DROP INDEX idx_tx_out_consumed_by_tx_id")
            .await;
        let reason = direct.not_applicable(&mut balance).await;
        assert!(reason.contains("idx_tx_out_consumed_by_tx_id"), "{reason}");
        chain
            .fixture
            .execute("CREATE INDEX idx_tx_out_consumed_by_tx_id ON tx_out (consumed_by_tx_id)")
            .await;
    }

    // The ledger disabled: the deposit is derived from the balance (tautology), but double
    // spends are still visible.
    chain.fixture.execute("DELETE FROM ada_pots").await;
    let reason = direct.not_applicable(&mut balance).await;
    assert!(reason.contains("ada_pots"), "{reason}");
    if !consumed {
        assert_eq!(direct.spends(&mut spends).await.double_spends, 0);
    }
    open_epoch(&mut chain.fixture, 1, 1).await;
    assert_eq!(direct.balance(&mut balance).await.mismatches, 0);

    // Prune and bootstrap variants: neither rule applies.
    for token in ["PruneTxOutFlagPreviouslySet", "BootstrapStarted"] {
        chain
            .fixture
            .execute(&format!(
                "INSERT INTO extra_migrations (token) VALUES ('{token}')"
            ))
            .await;
        let reason = direct.not_applicable(&mut balance).await;
        assert!(reason.contains("variant"), "{reason}");
        let reason = direct.not_applicable(&mut spends).await;
        assert!(reason.contains("variant"), "{reason}");
        chain
            .fixture
            .execute("DELETE FROM extra_migrations WHERE token <> 'ConsumeTxOutPreviouslySet'")
            .await;
    }

    // tx_out disabled: transactions without outputs.
    chain
        .fixture
        .execute("DELETE FROM tx_out; DELETE FROM tx_in")
        .await;
    let reason = direct.not_applicable(&mut balance).await;
    assert!(reason.contains("tx_out disabled"), "{reason}");
}

/// A NearTip database with mainnet-like proportions: 40 epochs of 1500 blocks, two
/// transactions per block, each spending the previous transaction's output (the first ones
/// spend genesis outputs), every tenth with a withdrawal.
async fn big_chain(db: &TestDatabase, version: SchemaVersion, consumed: bool) -> Fixture {
    let chain = Chain::new(db, version, IndexSet::NearTip, consumed).await;
    let fixture = chain.fixture;
    let spend = if consumed {
        "UPDATE tx_out o SET consumed_by_tx_id = o.tx_id + 1 \
           WHERE o.tx_id > (SELECT max(id) FROM tx) - 120000 AND o.tx_id < (SELECT max(id) FROM tx);"
    } else {
        "INSERT INTO tx_in (tx_in_id, tx_out_id, tx_out_index) \
           SELECT id + 1, id, 0 FROM tx WHERE id > (SELECT max(id) FROM tx) - 120000 \
             AND id < (SELECT max(id) FROM tx);"
    };
    fixture
        .execute(&format!(
            "INSERT INTO block (hash, epoch_no, slot_no, epoch_slot_no, block_no, previous_id, \
                 slot_leader_id, size, time, tx_count, proto_major, proto_minor) \
               SELECT sha256(int8send(g)), 400 + (g - 1) / 1500, g * 20, ((g - 1) % 1500) * 20, \
                 1000 + g, (SELECT max(id) FROM block) + g - 1, (SELECT max(id) FROM slot_leader), \
                 1000, to_timestamp(1600000000 + g * 20) AT TIME ZONE 'UTC', 2, 6, 0 \
               FROM generate_series(1, 60000) g;
             INSERT INTO tx (hash, block_id, block_index, out_sum, fee, deposit, size, \
                 valid_contract, script_size) \
               SELECT sha256(int8send(g) || '\\x01'::bytea), \
                 (SELECT max(id) FROM block) - 60000 + (g + 1) / 2, (g + 1) % 2, 1000000000, 0, \
                 0, 300, true, 0 FROM generate_series(1, 120000) g;
             INSERT INTO tx_out (tx_id, index, address, address_has_script, value) \
               SELECT id, 0, 'addr', false, 1000000000 FROM tx \
               WHERE id > (SELECT max(id) FROM tx) - 120000;
             {spend}
             INSERT INTO withdrawal (addr_id, amount, tx_id) \
               SELECT 1, 0, id FROM tx WHERE id % 10 = 0 AND id > (SELECT max(id) FROM tx) - 120000;
             ANALYZE;"
        ))
        .await;
    fixture
}

pub(crate) async fn tx_rules_no_sequential_scan(version: SchemaVersion, consumed: bool) {
    let db = Cluster::shared().create_database("tx_rules_plans").await;
    let _fixture = big_chain(&db, version, consumed).await;
    let direct = Direct::new(&db);
    let plans = PlanLog::default();
    let settings = IntegritySettings::new(DAY).explain_into(plans.clone());
    let mut balance = TxBalanceCheck::new(settings.clone());
    let mut spends = TxInDoubleSpendsCheck::new(settings);
    // A full run, then an incremental one. The first transaction of the chain has no input
    // (its predecessor is a genesis transaction): one mismatch.
    for _ in 0..2 {
        assert_eq!(direct.balance(&mut balance).await.mismatches, 1);
        if !consumed {
            assert_eq!(direct.spends(&mut spends).await.double_spends, 0);
        }
    }
    let recorded = plans.plans();
    assert!(recorded.len() >= 40, "{} plans", recorded.len());
    let mut report = String::new();
    for plan in &recorded {
        report.push_str(&format!("--- {}\n{}\n", plan.sql, plan.plan));
        for table in ["tx", "tx_in", "tx_out", "withdrawal", "block"] {
            assert!(
                !plan.plan.contains(&format!("Seq Scan on {table} ")),
                "{version}: sequential scan on {table}:\n{}\n{}",
                plan.sql,
                plan.plan
            );
        }
    }
    assert!(
        report.contains("unique_txout") || report.contains("idx_tx_out_tx_id"),
        "{version}: no plan reads outputs by transaction:\n{report}"
    );
    let mut indexes = vec![
        "tx_pkey",
        "block_pkey",
        "idx_block_epoch_no",
        "idx_tx_block_id",
        "idx_withdrawal_tx_id",
    ];
    if consumed {
        indexes.push("idx_tx_out_consumed_by_tx_id");
    } else {
        indexes.extend(["idx_tx_in_tx_in_id", "idx_tx_in_tx_out_id"]);
    }
    for index in indexes {
        assert!(
            report.contains(index),
            "{version}: no plan uses {index}:\n{report}"
        );
    }
    eprintln!("=== tx rule plans on {version} consumed={consumed} ===\n{report}");
}

// === the scrape ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_rule_metrics_in_a_scrape() {
    let db = Cluster::shared().create_database("tx_rules_scrape").await;
    let mut chain = Chain::new(&db, SchemaVersion::V13_7, IndexSet::NearTip, false).await;
    build(&mut chain, 0..=18).await;
    let mut settings = config(&db.reader_url());
    settings.checks.integrity_interval = Duration::from_millis(300);
    let exporter = Exporter::start(settings).await;
    for check in ["tx_balance", "tx_in_double_spends"] {
        wait_for_value(
            &exporter,
            &format!("dbsync_check_applicable{{check=\"{check}\"}}"),
            1.0,
        )
        .await;
    }
    let body = exporter.metrics().await;
    let drift =
        -3 * i128::from(ADA) - 1 - expected_spends().values().map(|e| e.lovelace).sum::<i128>();
    for line in [
        "dbsync_tx_balance_mismatches 3".to_owned(),
        "dbsync_tx_in_double_spends 4".to_owned(),
        format!("dbsync_supply_drift_lovelace {drift}"),
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "{line} missing in:\n{body}"
        );
    }
    for check in ["tx_balance", "tx_in_double_spends"] {
        assert_eq!(
            must(&body, &format!("dbsync_check_success{{check=\"{check}\"}}")),
            1.0
        );
    }
    assert!(
        body.contains("Derived from the tx_balance and tx_in_double_spends checks"),
        "{body}"
    );
    exporter.shutdown().await;
}
