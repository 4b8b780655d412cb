//! `tx_in_double_spends`: outputs referenced by more than one `tx_in` row (db-tool's
//! TotalSupply, which finds them only as a supply difference).
//!
//! `unique_txin` was dropped in 13.1.1, so a crash and re-insert or a broken rollback can
//! spend one output twice. Each such output counts once, at its second spend (the `tx_in`
//! row with exactly one earlier row, by id, for the same output), in the epoch of the
//! spending transaction; a third spend does not count it again. The epoch also keeps the value
//! of every spend after the first (value × (spends − 1)), the `X` of the supply identity
//! (reference dbtool-parity §6.3): the supply drift is the `tx_balance` imbalance minus it.
//! A reference to an output that does not exist counts as a double spend too, with value 0
//! (it adds nothing to any transaction's inputs either).
//!
//! Traps: reference inputs and declared collateral of valid Plutus transactions
//! (`reference_tx_in`, `collateral_tx_in`) that point at outputs another transaction spends
//! are not spends and are never read; an invalid transaction's collateral is in `tx_in` and
//! spends its outputs once, like any input. Earlier rows of other epochs are read, so an
//! epoch's count depends only on rows up to its own (a rollback deletes newer rows only).
//!
//! Not applicable: before stage 4 (`idx_tx_in_tx_in_id`, `idx_tx_in_tx_out_id`), and in the
//! consumed variant (`tx_in` is empty and `consumed_by_tx_id` holds one spender, so a double
//! spend cannot be recorded, let alone seen), on the prune and bootstrap variants and with
//! `tx_out` disabled. The ledger is not needed.
//!
//! Cost: one query per epoch: the epoch's `tx_in` rows by `idx_tx_in_tx_in_id` over its
//! transaction id range, for each an index probe of `idx_tx_in_tx_out_id` for earlier spends,
//! and a `unique_txout` probe only for the double-spent ones (10–30 s per mainnet epoch).

use std::collections::BTreeMap;

use super::incremental::{total, Examined, Incremental, IntegrityCheck, Prerequisites};
use super::sql::Reader;
use super::state::{Coverage, Scope};
use super::utxo::{self, Inputs};
use crate::checks::{CheckError, CheckName, Findings, Verdict};

/// The `tx_in_double_spends` check's findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoubleSpendFindings {
    /// Outputs referenced by more than one `tx_in` row.
    pub double_spends: u64,
    /// Σ value × (spends − 1) of those outputs, in lovelace.
    pub double_spent_lovelace: i128,
    /// What the run covered.
    pub coverage: Coverage,
}

/// One epoch's partial result (kept only for epochs with a double spend).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DoubleSpendEpoch {
    /// Outputs whose second spend is in this epoch.
    pub outputs: u64,
    /// Value of every spend after the first in this epoch.
    pub lovelace: i128,
}

/// The double spends among the `tx_in` rows of transactions `$1 ..= $2` (one epoch). The
/// correlated subqueries are index probes by construction; `OFFSET 0` keeps the count of
/// earlier spends from being evaluated twice (filter and aggregate).
const DOUBLE_SPENDS_SQL: &str = "SELECT count(*) FILTER (WHERE s.earlier = 1), \
       coalesce(sum((SELECT o.value FROM tx_out o \
                     WHERE o.tx_id = s.tx_out_id AND o.index = s.tx_out_index)), 0)::text \
     FROM (SELECT i.tx_out_id, i.tx_out_index, \
             (SELECT count(*) FROM tx_in j \
              WHERE j.tx_out_id = i.tx_out_id AND j.tx_out_index = i.tx_out_index \
                AND j.id < i.id) AS earlier \
           FROM tx_in i WHERE i.tx_in_id >= $1::bigint AND i.tx_in_id <= $2::bigint \
           OFFSET 0) s \
     WHERE s.earlier > 0";

const TABLES: [&str; 4] = ["block", "tx", "tx_in", "tx_out"];
const INDEXES: [&str; 5] = [
    "idx_block_epoch_no",
    "idx_tx_block_id",
    "unique_txout",
    "idx_tx_in_tx_in_id",
    "idx_tx_in_tx_out_id",
];

/// Looks for outputs spent twice, epoch by epoch.
pub type TxInDoubleSpendsCheck = IntegrityCheck<TxInDoubleSpendsRule>;

/// The `tx_in_double_spends` rule; its partial results are double spends by epoch.
#[derive(Clone, Copy, Debug, Default)]
pub struct TxInDoubleSpendsRule;

impl Incremental for TxInDoubleSpendsRule {
    const NAME: CheckName = CheckName::TxInDoubleSpends;
    type Epoch = DoubleSpendEpoch;
    type Ready = ();
    type Seen = ();
    const BLOCKWISE: bool = true;

    fn add(&self, epoch: &mut DoubleSpendEpoch, later: DoubleSpendEpoch) {
        epoch.outputs += later.outputs;
        epoch.lovelace += later.lovelace;
    }

    async fn prerequisites(&self, db: &Reader<'_>) -> Result<Prerequisites<()>, CheckError> {
        if let Some(why_not) = db.missing_prerequisite(&TABLES, &[]) {
            return Ok(Prerequisites::Unmet(why_not));
        }
        match utxo::inputs(db).await? {
            Err(why_not) => Ok(Prerequisites::Unmet(why_not)),
            Ok(Inputs::ConsumedBy) => Ok(Prerequisites::Unmet(
                "db-sync records inputs as tx_out.consumed_by_tx_id (consumed variant): \
                 tx_in is empty and an output holds one spender, so a double spend \
                 cannot be seen"
                    .into(),
            )),
            Ok(Inputs::TxIn) => Ok(db.missing_prerequisite(&[], &INDEXES).into()),
        }
    }

    async fn examine(
        &self,
        db: &Reader<'_>,
        (): &(),
        scope: &Scope,
    ) -> Result<Examined<DoubleSpendEpoch>, CheckError> {
        // The genesis transactions have no inputs: `scope.genesis` adds nothing.
        let mut epochs = BTreeMap::new();
        for (epoch, first, last) in utxo::epoch_tx_ids(db, scope).await? {
            let rows = db.query(DOUBLE_SPENDS_SQL, &[&first, &last]).await?;
            let row = rows.first().ok_or_else(|| {
                CheckError::Data(format!("no double-spend row for epoch {epoch}"))
            })?;
            let outputs = utxo::count(row.try_get(0)?);
            let lovelace = utxo::lovelace(row.try_get(1)?)?;
            if outputs > 0 || lovelace != 0 {
                epochs.insert(epoch, DoubleSpendEpoch { outputs, lovelace });
            }
        }
        Ok(epochs.into())
    }

    fn finish(
        &self,
        epochs: &BTreeMap<i64, DoubleSpendEpoch>,
        (): (),
        coverage: Coverage,
    ) -> Verdict {
        let totals = total(epochs, |sum, epoch| {
            sum.outputs += epoch.outputs;
            sum.lovelace += epoch.lovelace;
        });
        Verdict::Found(Findings::TxInDoubleSpends(DoubleSpendFindings {
            double_spends: totals.outputs,
            double_spent_lovelace: totals.lovelace,
            coverage,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_output_counts_once_and_declarations_are_not_spends() {
        assert!(DOUBLE_SPENDS_SQL.contains("s.earlier = 1"));
        assert!(DOUBLE_SPENDS_SQL.contains("j.id < i.id"));
        for declared in ["collateral_tx_in", "reference_tx_in"] {
            assert!(!DOUBLE_SPENDS_SQL.contains(declared));
        }
    }
}
