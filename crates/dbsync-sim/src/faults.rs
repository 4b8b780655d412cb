//! Faults `generate --faults` can plant, each exactly once in a documented, deterministic
//! place, and what the exporter's integrity checks (issue 3) should report for them.
//!
//! | fault | where | expected |
//! |---|---|---|
//! | `missing-mir` | newest pre-Conway MIR epoch N: the payout of the lowest credential that had exactly one certificate of that pot in N and was registered at N→N+1 is not written | `dbsync_mir_unpaid_payments{pot} 1`, `dbsync_mir_unpaid_lovelace{pot}` = its amount |
//! | `orphan-mir` | same epoch N: a `reserves` instant reward (1 ADA, spendable N+1) to the lowest registered credential with no certificate at all in N | `dbsync_mir_orphan_rewards{pot="reserves"} 1` |
//! | `missing-refund` | newest effective retirement epoch E whose refund went to a registered account: the refund of the lowest pool there whose account got no other refund in E is not written | `dbsync_pool_refunds_missing 1`, `dbsync_pool_refunds_missing_lovelace 500000000` |
//! | `broken-ada-pots` | `ada_pots` of the newest finished epoch (tip − 1): `utxo` + 1 ADA | `dbsync_ada_pots_inconsistent_epochs 1` (the tip epoch's row is intact, so the deviation stays 0) |
//! | `missing-ada-pots` | `ada_pots` of epoch tip − 2 is not written | `dbsync_ada_pots_missing_epochs 1` |
//! | `wrong-block-tx-count` | the first regular block of the newest finished epoch F = tip − 1: `tx_count` + 1 | `dbsync_block_tx_count_mismatches 1` |
//! | `owner-less-pool-update` | the newest `pool_update` before the tip epoch: its `pool_owner` rows are not written | `dbsync_pool_updates_without_owner 1` |
//! | `future-block` | the newest Byron EBB (on a network without EBBs: the genesis block): `time` = 2099-01-01. Not a main block, so block numbers and time order are untouched, and the epoch aggregates are computed after it (stored consistently); the tip stays fresh | `dbsync_blocks_in_future 1` |
//! | `block-number-gap` | every main block from epoch F on is numbered one higher (the number between F − 1's last block and F's first is skipped); one pair | `dbsync_block_number_gaps 1` |
//! | `block-time-disorder` | the second regular block of F gets the time of the first (equal times count); the next pair is still ordered | `dbsync_block_time_disorder 1` |
//! | `epoch-table-mismatch` | the stored aggregate of F (`epoch`, `epoch_finalized` on 13.7): `fees` + 1 | `dbsync_epoch_table_mismatches 1` |
//! | `tx-imbalance` | the first transaction of F: `fee` recorded 1 ADA higher than it paid (outputs unchanged) | `dbsync_tx_balance_mismatches 1`, `dbsync_supply_drift_lovelace -1000000` |
//! | `double-spend` | the second transaction of F spends genesis output 4 (7 ADA, already spent in epoch e0 + 1) again and its payment output absorbs the 7 ADA, so it balances | `dbsync_tx_in_double_spends 1`, `dbsync_supply_drift_lovelace -7000000` |
//! | `withdrawal-excess` | the withdrawal in F of the lowest stake address withdrawing there: + 1 lovelace (its transaction's payment output absorbs it, so it balances) | `dbsync_withdrawal_excess_accounts 1` |
//!
//! The drift is signed: `Σ (inputs + withdrawals − outputs − fee − deposit − donation) − Σ
//! value of double-spent outputs`, so with both `tx-imbalance` and `double-spend` planted it
//! is the sum, −8000000 ([`expectations`] adds the drift of each fault). No other two faults
//! touch the same series.
//!
//! The first five faults and the UTxO ones change the plan before it is written, so the rest
//! of the history stays consistent; the block, owner, withdrawal and epoch-table faults are
//! single-row edits made during the load ([`apply`], at the [`Stage`] that keeps everything
//! derived from them consistent: withdrawals before transactions absorb them, block times
//! before the epoch aggregates are computed, the epoch-table edit after).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::plan::ledger::{InstantKind, InstantReward, Pot};
use crate::plan::Plan;
use crate::{SimError, POOL_DEPOSIT};

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// A MIR payment owed to a registered credential is missing.
    MissingMir,
    /// An instant reward without a MIR certificate (pre-Conway).
    OrphanMir,
    /// An effective retirement's refund to a registered account is missing.
    MissingRefund,
    /// One `ada_pots` row does not sum to 45e15.
    BrokenAdaPots,
    /// One Shelley-era epoch has no `ada_pots` row.
    MissingAdaPots,
    /// A block whose `tx_count` differs from its transactions.
    WrongBlockTxCount,
    /// A pool certificate without `pool_owner` rows.
    OwnerLessPoolUpdate,
    /// A block far in the future.
    FutureBlock,
    /// A skipped block number.
    BlockNumberGap,
    /// A main block not later than its predecessor.
    BlockTimeDisorder,
    /// A finished epoch's stored aggregate differs from block/tx.
    EpochTableMismatch,
    /// A transaction that does not balance.
    TxImbalance,
    /// An output spent twice.
    DoubleSpend,
    /// A stake address that withdrew more than its spendable rewards.
    WithdrawalExcess,
}

impl Fault {
    /// Every fault, in planting order.
    pub const ALL: [Fault; 14] = [
        Fault::MissingMir,
        Fault::OrphanMir,
        Fault::MissingRefund,
        Fault::BrokenAdaPots,
        Fault::MissingAdaPots,
        Fault::WrongBlockTxCount,
        Fault::OwnerLessPoolUpdate,
        Fault::FutureBlock,
        Fault::BlockNumberGap,
        Fault::BlockTimeDisorder,
        Fault::EpochTableMismatch,
        Fault::TxImbalance,
        Fault::DoubleSpend,
        Fault::WithdrawalExcess,
    ];

    /// The `--faults` name.
    pub fn name(self) -> &'static str {
        match self {
            Fault::MissingMir => "missing-mir",
            Fault::OrphanMir => "orphan-mir",
            Fault::MissingRefund => "missing-refund",
            Fault::BrokenAdaPots => "broken-ada-pots",
            Fault::MissingAdaPots => "missing-ada-pots",
            Fault::WrongBlockTxCount => "wrong-block-tx-count",
            Fault::OwnerLessPoolUpdate => "owner-less-pool-update",
            Fault::FutureBlock => "future-block",
            Fault::BlockNumberGap => "block-number-gap",
            Fault::BlockTimeDisorder => "block-time-disorder",
            Fault::EpochTableMismatch => "epoch-table-mismatch",
            Fault::TxImbalance => "tx-imbalance",
            Fault::DoubleSpend => "double-spend",
            Fault::WithdrawalExcess => "withdrawal-excess",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of faults (`--faults a,b,c` or `all`; empty = none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultSet(pub BTreeSet<Fault>);

impl FaultSet {
    /// No faults.
    pub fn none() -> FaultSet {
        FaultSet::default()
    }

    /// Every fault.
    pub fn all() -> FaultSet {
        FaultSet(Fault::ALL.into_iter().collect())
    }

    /// Whether `fault` is in the set.
    pub fn contains(&self, fault: Fault) -> bool {
        self.0.contains(&fault)
    }
}

impl FromStr for FaultSet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = BTreeSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                return Ok(FaultSet::all());
            }
            let fault = Fault::ALL
                .into_iter()
                .find(|f| f.name() == part)
                .ok_or_else(|| {
                    format!(
                        "unknown fault `{part}` (known: {}, or all)",
                        Fault::ALL.map(Fault::name).join(", ")
                    )
                })?;
            set.insert(fault);
        }
        Ok(FaultSet(set))
    }
}

/// A metric series and the value the exporter should export for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// Name plus exact label text, e.g. `dbsync_mir_unpaid_payments{pot="reserves"}`.
    pub series: String,
    /// The value.
    pub value: i64,
}

/// A planted fault: what, where, and what the exporter should say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlantedFault {
    /// The fault.
    pub fault: Fault,
    /// Where it is, in words.
    pub place: String,
    /// Series that change because of it, with their expected values.
    pub expect: Vec<Expectation>,
}

impl fmt::Display for PlantedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let expect: Vec<String> = self
            .expect
            .iter()
            .map(|e| format!("{} {}", e.series, e.value))
            .collect();
        write!(
            f,
            "planted {}: {} -> expect {}",
            self.fault,
            self.place,
            expect.join(", ")
        )
    }
}

fn expect(series: impl Into<String>, value: i64) -> Expectation {
    Expectation {
        series: series.into(),
        value,
    }
}

fn pot_series(name: &str, pot: Pot) -> String {
    format!("{name}{{pot=\"{}\"}}", pot.as_str())
}

/// Plants `faults` into `plan`; returns one entry per fault in [`Fault::ALL`] order.
pub fn plant(plan: &mut Plan, faults: &FaultSet) -> Result<Vec<PlantedFault>, SimError> {
    let mut planted = Vec::new();
    let tip = plan.tip_epoch();
    let e0 = plan.network.shelley_start_epoch();
    let newest_mir_epoch = plan.ledger.mir_rows.iter().map(|m| m.epoch).max();
    let cannot = |fault: Fault, why: &str| {
        SimError::Invalid(format!("cannot plant {fault} in this history: {why}"))
    };

    if faults.contains(Fault::MissingMir) {
        let fault = Fault::MissingMir;
        let epoch = newest_mir_epoch.ok_or_else(|| cannot(fault, "no MIR certificates"))?;
        let l = &plan.ledger;
        let single = |pot: Pot, addr: i64| {
            l.mir_rows
                .iter()
                .filter(|m| m.epoch == epoch && m.pot == pot && m.addr == addr)
                .count()
                == 1
        };
        let victim = l
            .instant_rewards
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.conway && r.spendable_epoch == epoch + 1)
            .filter_map(|(i, r)| match r.kind {
                InstantKind::Pot(pot) if single(pot, r.addr) => Some((r.addr, i, pot, r.amount)),
                _ => None,
            })
            .min()
            .ok_or_else(|| {
                cannot(
                    fault,
                    "no single-certificate payout in the newest MIR epoch",
                )
            })?;
        let (addr, index, pot, amount) = victim;
        plan.ledger.instant_rewards.remove(index);
        planted.push(PlantedFault {
            fault,
            place: format!(
                "no {} instant reward for stake_address.id {addr} (MIR of {amount} lovelace \
                 in epoch {epoch}, owed at {epoch}->{})",
                pot.as_str(),
                epoch + 1
            ),
            expect: vec![
                expect(pot_series("dbsync_mir_unpaid_payments", pot), 1),
                expect(pot_series("dbsync_mir_unpaid_lovelace", pot), amount),
            ],
        });
    }

    if faults.contains(Fault::OrphanMir) {
        let fault = Fault::OrphanMir;
        let epoch = newest_mir_epoch.ok_or_else(|| cannot(fault, "no MIR certificates"))?;
        let l = &plan.ledger;
        let named: BTreeSet<i64> = l
            .mir_rows
            .iter()
            .filter(|m| m.epoch == epoch)
            .map(|m| m.addr)
            .collect();
        let rewarded: BTreeSet<i64> = l
            .instant_rewards
            .iter()
            .filter(|r| r.spendable_epoch == epoch + 1)
            .map(|r| r.addr)
            .collect();
        let addr = l
            .registrations
            .iter()
            .filter(|c| c.epoch <= epoch)
            .map(|c| c.addr)
            .filter(|a| !named.contains(a) && !rewarded.contains(a))
            .min()
            .ok_or_else(|| cannot(fault, "no registered credential without a certificate"))?;
        plan.ledger.instant_rewards.push(InstantReward {
            addr,
            kind: InstantKind::Pot(Pot::Reserves),
            amount: 1_000_000,
            spendable_epoch: epoch + 1,
            conway: false,
        });
        planted.push(PlantedFault {
            fault,
            place: format!(
                "a reserves instant reward of 1000000 lovelace to stake_address.id {addr}, \
                 spendable in epoch {}, with no MIR certificate in epoch {epoch}",
                epoch + 1
            ),
            expect: vec![expect(
                pot_series("dbsync_mir_orphan_rewards", Pot::Reserves),
                1,
            )],
        });
    }

    if faults.contains(Fault::MissingRefund) {
        let fault = Fault::MissingRefund;
        let l = &plan.ledger;
        let epoch = l
            .refunds
            .iter()
            .map(|r| r.epoch)
            .max()
            .ok_or_else(|| cannot(fault, "no refunded retirement"))?;
        let (index, refund) = l
            .refunds
            .iter()
            .enumerate()
            .filter(|(_, r)| r.epoch == epoch)
            .filter(|(_, r)| {
                l.refunds
                    .iter()
                    .filter(|o| o.epoch == epoch && o.addr == r.addr)
                    .count()
                    == 1
            })
            .min_by_key(|(_, r)| r.pool)
            .map(|(i, r)| (i, *r))
            .ok_or_else(|| cannot(fault, "no refund with an unshared account"))?;
        plan.ledger.refunds.remove(index);
        planted.push(PlantedFault {
            fault,
            place: format!(
                "no refund for pool_hash.id {} retired at epoch {epoch} (reward account \
                 stake_address.id {}, registered)",
                refund.pool, refund.addr
            ),
            expect: vec![
                expect("dbsync_pool_refunds_missing", 1),
                expect("dbsync_pool_refunds_missing_lovelace", POOL_DEPOSIT),
            ],
        });
    }

    if faults.contains(Fault::BrokenAdaPots) {
        let fault = Fault::BrokenAdaPots;
        let epoch = tip - 1;
        if epoch < e0 {
            return Err(cannot(fault, "no finished Shelley-era epoch"));
        }
        let row = plan
            .ledger
            .pots
            .iter_mut()
            .find(|p| p.epoch == epoch)
            .ok_or_else(|| cannot(fault, "no ada_pots row for tip - 1"))?;
        row.utxo += 1_000_000;
        planted.push(PlantedFault {
            fault,
            place: format!("ada_pots of epoch {epoch}: utxo + 1000000 lovelace (sum 45e15 + 1e6)"),
            expect: vec![expect("dbsync_ada_pots_inconsistent_epochs", 1)],
        });
    }

    if faults.contains(Fault::MissingAdaPots) {
        let fault = Fault::MissingAdaPots;
        let epoch = tip - 2;
        if epoch < e0 {
            return Err(cannot(fault, "fewer than three Shelley-era epochs"));
        }
        plan.ledger.pots.retain(|p| p.epoch != epoch);
        planted.push(PlantedFault {
            fault,
            place: format!("no ada_pots row for epoch {epoch}"),
            expect: vec![expect("dbsync_ada_pots_missing_epochs", 1)],
        });
    }
    plant_chain(plan, faults, &mut planted)?;
    Ok(planted)
}

/// The newest finished epoch, where most chain faults go.
fn fault_epoch(plan: &Plan) -> i64 {
    plan.tip_epoch() - 1
}

/// The EBB the `future-block` fault moves (None: the genesis block).
fn future_block(plan: &Plan) -> Option<i64> {
    plan.layout
        .segments
        .iter()
        .rev()
        .find(|s| s.ebb)
        .map(|s| s.first_id)
}

/// Plants the faults of the integrity rules of issue 15 (see the module table).
fn plant_chain(
    plan: &mut Plan,
    faults: &FaultSet,
    planted: &mut Vec<PlantedFault>,
) -> Result<(), SimError> {
    let f = fault_epoch(plan);
    let e0 = plan.network.shelley_start_epoch();
    if f < e0 + 6 && Fault::ALL[5..].iter().any(|x| faults.contains(*x)) {
        return Err(SimError::Invalid(
            "cannot plant the chain faults in this history: fewer than eight Shelley-era epochs"
                .into(),
        ));
    }
    let eb = plan.layout.epochs[f as usize];
    if faults.contains(Fault::WrongBlockTxCount) {
        planted.push(PlantedFault {
            fault: Fault::WrongBlockTxCount,
            place: format!(
                "block.id {} (first block of epoch {f}): tx_count one more than its transactions",
                eb.first_block_id
            ),
            expect: vec![expect("dbsync_block_tx_count_mismatches", 1)],
        });
    }
    if faults.contains(Fault::OwnerLessPoolUpdate) {
        let tip_first = plan.layout.epochs[plan.tip_epoch() as usize].first_tx_id;
        let u = plan
            .ledger
            .pool_updates
            .iter()
            .filter(|u| u.tx_id < tip_first)
            .max_by_key(|u| (u.tx_id, u.cert_index))
            .ok_or_else(|| {
                SimError::Invalid("cannot plant owner-less-pool-update: no pool certificate".into())
            })?;
        planted.push(PlantedFault {
            fault: Fault::OwnerLessPoolUpdate,
            place: format!(
                "the pool_update of pool_hash.id {} in tx {} (epoch {}): no pool_owner rows",
                u.pool, u.tx_id, u.epoch
            ),
            expect: vec![expect("dbsync_pool_updates_without_owner", 1)],
        });
    }
    if faults.contains(Fault::FutureBlock) {
        let place = match future_block(plan) {
            Some(id) => format!("the EBB block.id {id}: time 2099-01-01 00:00:00"),
            None => "the genesis block: time 2099-01-01 00:00:00".to_owned(),
        };
        planted.push(PlantedFault {
            fault: Fault::FutureBlock,
            place,
            expect: vec![expect("dbsync_blocks_in_future", 1)],
        });
    }
    if faults.contains(Fault::BlockNumberGap) {
        let mut first = None;
        for s in plan.layout.segments.iter_mut().filter(|s| s.epoch >= f) {
            first.get_or_insert(s.first_block_no);
            s.first_block_no += 1;
        }
        planted.push(PlantedFault {
            fault: Fault::BlockNumberGap,
            place: format!(
                "block_no {} skipped: epoch {f} starts at {}",
                first.unwrap_or_default(),
                first.unwrap_or_default() + 1
            ),
            expect: vec![expect("dbsync_block_number_gaps", 1)],
        });
    }
    if faults.contains(Fault::BlockTimeDisorder) {
        planted.push(PlantedFault {
            fault: Fault::BlockTimeDisorder,
            place: format!(
                "block.id {} (second block of epoch {f}) has the time of block.id {}",
                eb.first_block_id + 1,
                eb.first_block_id
            ),
            expect: vec![expect("dbsync_block_time_disorder", 1)],
        });
    }
    if faults.contains(Fault::EpochTableMismatch) {
        planted.push(PlantedFault {
            fault: Fault::EpochTableMismatch,
            place: format!("the stored aggregate of epoch {f}: fees + 1"),
            expect: vec![expect("dbsync_epoch_table_mismatches", 1)],
        });
    }
    if faults.contains(Fault::TxImbalance) {
        let t = eb.first_tx_id;
        plan.utxo.adj(t).fee_delta += 1_000_000;
        planted.push(PlantedFault {
            fault: Fault::TxImbalance,
            place: format!("tx {t} (first of epoch {f}): fee recorded 1000000 higher than paid"),
            expect: vec![
                expect("dbsync_tx_balance_mismatches", 1),
                expect(DRIFT, -1_000_000),
            ],
        });
    }
    if faults.contains(Fault::DoubleSpend) {
        let t = eb.first_tx_id + 1;
        let g4 = plan.utxo.genesis_txs[4];
        plan.utxo.adj(t).extra_input = Some((g4, 0, crate::DOUBLE_SPENT_VALUE));
        planted.push(PlantedFault {
            fault: Fault::DoubleSpend,
            place: format!(
                "tx {t} (second of epoch {f}) spends genesis output 4 (tx {g4}, {} lovelace) a \
                 second time; its payment output absorbs the value",
                crate::DOUBLE_SPENT_VALUE
            ),
            expect: vec![
                expect("dbsync_tx_in_double_spends", 1),
                expect(DRIFT, -crate::DOUBLE_SPENT_VALUE),
            ],
        });
    }
    if faults.contains(Fault::WithdrawalExcess) {
        planted.push(PlantedFault {
            fault: Fault::WithdrawalExcess,
            place: format!(
                "the withdrawal in epoch {f} of the lowest stake address withdrawing there: + 1 lovelace"
            ),
            expect: vec![expect("dbsync_withdrawal_excess_accounts", 1)],
        });
    }
    Ok(())
}

/// The supply drift series: the one series several faults add to.
const DRIFT: &str = "dbsync_supply_drift_lovelace";

/// When during the load a fault's single-row edit is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// After the withdrawals are written, before transactions absorb them.
    Withdrawals,
    /// After blocks and transactions, before the epoch aggregates.
    Chain,
    /// After the epoch aggregates.
    EpochRows,
}

/// Makes the edits of the planted faults that belong to `stage`.
pub async fn apply(
    client: &tokio_postgres::Client,
    plan: &Plan,
    planted: &[PlantedFault],
    stage: Stage,
) -> Result<(), SimError> {
    use crate::error::Context as _;
    let f = fault_epoch(plan);
    let eb = plan.layout.epochs[f as usize];
    for p in planted {
        let (sql, params): (String, Vec<i64>) = match (p.fault, stage) {
            (Fault::WithdrawalExcess, Stage::Withdrawals) => (
                "UPDATE withdrawal SET amount = amount + 1 WHERE id = (SELECT id FROM withdrawal \
                 WHERE tx_id >= $1 AND tx_id < $2 AND amount > 0 ORDER BY addr_id, id LIMIT 1)"
                    .into(),
                vec![eb.first_tx_id, eb.first_tx_id + eb.txs],
            ),
            (Fault::WrongBlockTxCount, Stage::Chain) => (
                "UPDATE block SET tx_count = tx_count + 1 WHERE id = $1".into(),
                vec![eb.first_block_id],
            ),
            (Fault::OwnerLessPoolUpdate, Stage::Chain) => (
                "DELETE FROM pool_owner WHERE pool_update_id = (SELECT id FROM pool_update \
                 WHERE registered_tx_id < $1 ORDER BY registered_tx_id DESC, cert_index DESC LIMIT 1)"
                    .into(),
                vec![plan.layout.epochs[plan.tip_epoch() as usize].first_tx_id],
            ),
            (Fault::FutureBlock, Stage::Chain) => match future_block(plan) {
                Some(id) => (
                    "UPDATE block SET time = timestamp '2099-01-01' WHERE id = $1".into(),
                    vec![id],
                ),
                None => (
                    "UPDATE block SET time = timestamp '2099-01-01' WHERE previous_id IS NULL"
                        .into(),
                    vec![],
                ),
            },
            (Fault::BlockTimeDisorder, Stage::Chain) => (
                "UPDATE block SET time = (SELECT time FROM block WHERE id = $1::int8 - 1) WHERE id = $1::int8"
                    .into(),
                vec![eb.first_block_id + 1],
            ),
            (Fault::EpochTableMismatch, Stage::EpochRows) => (
                format!(
                    "UPDATE {} SET fees = fees + 1 WHERE no = $1::int8",
                    if plan.version == dbsync_fixture::SchemaVersion::V13_7 {
                        "epoch_finalized"
                    } else {
                        "epoch"
                    }
                ),
                vec![f],
            ),
            _ => continue,
        };
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let n = client
            .execute(sql.as_str(), &refs)
            .await
            .context("planting a fault")?;
        if n != 1 {
            return Err(SimError::Invalid(format!(
                "cannot plant {} in this history: it changed {n} rows",
                p.fault
            )));
        }
    }
    Ok(())
}

/// Every integrity series the exporter should export for a generated database, with its
/// expected value: zero everywhere, except the informational unclaimed-refund count and what
/// the planted faults change.
pub fn expectations(plan: &Plan, planted: &[PlantedFault]) -> Vec<Expectation> {
    let mut all = Vec::new();
    for pot in [Pot::Reserves, Pot::Treasury] {
        all.push(expect(pot_series("dbsync_mir_unpaid_payments", pot), 0));
        all.push(expect(pot_series("dbsync_mir_unpaid_lovelace", pot), 0));
        all.push(expect(pot_series("dbsync_mir_orphan_rewards", pot), 0));
    }
    all.push(expect("dbsync_pool_refunds_missing", 0));
    all.push(expect("dbsync_pool_refunds_missing_lovelace", 0));
    all.push(expect(
        "dbsync_pool_refunds_unclaimed",
        plan.ledger.unclaimed_refunds,
    ));
    all.push(expect("dbsync_ada_pots_inconsistent_epochs", 0));
    all.push(expect("dbsync_ada_pots_missing_epochs", 0));
    all.push(expect("dbsync_ada_pots_deviation_lovelace", 0));
    all.push(expect("dbsync_epoch_stake_complete", 1));
    for series in [
        "dbsync_block_tx_count_mismatches",
        "dbsync_pool_updates_without_owner",
        "dbsync_blocks_in_future",
        "dbsync_block_number_gaps",
        "dbsync_block_time_disorder",
        "dbsync_epoch_table_mismatches",
        "dbsync_tx_balance_mismatches",
        "dbsync_tx_in_double_spends",
        DRIFT,
        "dbsync_withdrawal_excess_accounts",
    ] {
        all.push(expect(series, 0));
    }
    for p in planted {
        for e in &p.expect {
            match all.iter_mut().find(|a| a.series == e.series) {
                // The drift is the signed sum of every fault's contribution.
                Some(a) if a.series == DRIFT => a.value += e.value,
                Some(a) => a.value = e.value,
                None => all.push(e.clone()),
            }
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        let set: FaultSet = "missing-mir, broken-ada-pots".parse().unwrap();
        assert_eq!(set.0.len(), 2);
        assert!(set.contains(Fault::MissingMir));
        assert_eq!("all".parse::<FaultSet>().unwrap(), FaultSet::all());
        assert_eq!("".parse::<FaultSet>().unwrap(), FaultSet::none());
        assert!("missing-everything".parse::<FaultSet>().is_err());
        assert_eq!(
            "future-block,double-spend"
                .parse::<FaultSet>()
                .unwrap()
                .0
                .len(),
            2
        );
    }

    fn plan() -> Plan {
        Plan::build(&crate::plan::PlanInput {
            network: &crate::Network::known("mainnet").unwrap(),
            version: dbsync_fixture::SchemaVersion::V13_6,
            sizes: crate::Scale::Small.sizes(),
            seed: 42,
            until_unix: 1_795_668_222,
            first_block_id: 2,
            first_tx_id: 7,
            leader_base: 2,
            genesis_txs: (1..=6).collect(),
        })
        .unwrap()
    }

    /// Every fault moves only its own series; the drift of `tx-imbalance` and
    /// `double-spend` adds up.
    #[test]
    fn expectations_combine() {
        let clean = expectations(&plan(), &[]);
        let mut p = plan();
        let planted = plant(&mut p, &FaultSet::all()).unwrap();
        assert_eq!(planted.len(), Fault::ALL.len());
        let all = expectations(&p, &planted);
        assert_eq!(clean.len(), all.len());
        let changed: Vec<&Expectation> = all.iter().filter(|e| !clean.contains(e)).collect();
        let value = |s: &str| all.iter().find(|e| e.series == s).unwrap().value;
        assert_eq!(value(DRIFT), -1_000_000 - crate::DOUBLE_SPENT_VALUE);
        // Seven series of the first five faults (MIR and refunds with their amounts), one
        // per new fault, and the drift shared by two of them.
        assert_eq!(changed.len(), 7 + 9 + 1, "{changed:#?}");
        for p in &planted {
            for e in &p.expect {
                if e.series != DRIFT {
                    assert_eq!(value(&e.series), e.value, "{}", p.fault);
                }
            }
        }
    }
}
