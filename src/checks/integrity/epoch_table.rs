//! `epoch_table`: finished epochs whose stored aggregate row is missing or differs from what
//! their blocks and transactions say (db-sync's `scripts/validate-epoch-table.sql`, 13.6's
//! `Validate/EpochTable.hs` and the 13.7.1 repair migration, which compares all six fields).
//!
//! The stored row is the `epoch` **table** up to 13.7.1 and `epoch_finalized` from 13.7.2,
//! where `epoch` became a view whose live half recomputes any epoch missing from
//! `epoch_finalized` (reading it would hide a missing row and scan block ⋈ tx). Compared:
//! `out_sum` and `fees` (sums over every transaction, phase-2-invalid ones included: db-sync
//! stores an invalid transaction's collateral as its fee and its collateral return as its
//! output), `tx_count`, `blk_count` (every block, Byron EBBs included; a Byron epoch without
//! transactions stores 0/0/0), `start_time` and `end_time` (the first and last block time).
//! The genesis block and its transactions belong to no epoch and no row.
//!
//! Only epochs before the tip's are compared: up to 13.7.1 db-sync writes epoch N's final row
//! at the first block of N+1 and rewrites the running epoch's row as it goes (stale by a few
//! blocks), and from 13.7.2 the running epoch has no finalized row at all. Rows written by
//! 13.7.0.0–13.7.0.4 before the 13.7.1 repair can be wrong (db-sync #2118): those are real
//! findings. Without any stored row (13.7.2+ with epoch sync disabled, or before the first
//! boundary) the check is not applicable.
//!
//! Partial results are by epoch. An incremental run re-examines the newest epoch that was
//! finished at the last run and every later one, so the epoch that has just finished is
//! compared on the first run after its row was written; a rollback across a boundary (where
//! 13.7.2+ deletes the surviving epoch's finalized row) triggers a full run.
//!
//! Cost: one row per finished epoch from `generate_series`; each reads its blocks through
//! `idx_block_epoch_no`, its transactions as one range of `tx_pkey` found through
//! `idx_tx_block_id` (see [`epochs_sql`]; a lateral per epoch, so the planner cannot hash a
//! sequential scan of `tx` for a big epoch), and its stored row through `unique_epoch` /
//! `unique_epoch_finalized`. All are stage-2/3 indexes: the check applies during initial sync.
//! A full pass reads every `tx` row once (db-sync's own 13.7.2 backfill warns it takes several
//! minutes on mainnet); later runs read one or two epochs.

use std::collections::BTreeMap;

use super::incremental::{Examined, Incremental, IntegrityCheck, Prerequisites};
use super::sql::Reader;
use super::state::{Coverage, Scope};
use crate::checks::{CheckError, CheckName, Findings, Verdict};

/// The `epoch_table` check's findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochTableFindings {
    /// Finished epochs whose stored row is missing or differs in any field.
    pub mismatches: u64,
    /// Of those, the epochs without a stored row.
    pub missing: u64,
    /// What the run covered.
    pub coverage: Coverage,
}

/// What is wrong with one finished epoch's stored row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EpochRowFault {
    /// There is none.
    Missing,
    /// These fields differ from the recomputation (in [`FIELDS`] order).
    Differs(Vec<&'static str>),
}

/// The compared fields, in the order of the SQL's flag columns.
pub const FIELDS: [&str; 6] = [
    "out_sum",
    "fees",
    "tx_count",
    "blk_count",
    "start_time",
    "end_time",
];

/// Per finished epoch with blocks in `[$1, min($2, $3 − 1)]` (`$3`: the tip epoch): whether
/// the stored row is missing, then one flag per field of [`FIELDS`] that differs.
///
/// The epoch's blocks come through `idx_block_epoch_no`; its transactions are one range of
/// `tx_pkey`, from the first transaction at or after its first block to the last at or
/// before its last (two probes of `idx_tx_block_id`): db-sync writes blocks and transactions
/// in chain order and a rollback deletes only the newest, so an epoch's blocks and their
/// transactions are each one id range (an epoch without transactions gives an empty one).
/// The block-id bounds on `tx` keep the count to the epoch's blocks whatever the ids say.
/// Measured on the mainnet-scale benchmark database: 262 ms for ten 65 k-transaction
/// epochs, against 669 ms with one `idx_tx_block_id` probe per block.
fn epochs_sql(table: &str) -> String {
    format!(
        "SELECT e.no, s.no IS NULL, \
                t.out_sum IS DISTINCT FROM s.out_sum, t.fees IS DISTINCT FROM s.fees, \
                t.tx_count IS DISTINCT FROM s.tx_count, \
                c.blk_count IS DISTINCT FROM s.blk_count, \
                c.start_time IS DISTINCT FROM s.start_time, \
                c.end_time IS DISTINCT FROM s.end_time \
         FROM generate_series($1::bigint, least($2::bigint, $3::bigint - 1)) AS e(no) \
         CROSS JOIN LATERAL ( \
           SELECT count(*) AS blk_count, min(b.time) AS start_time, max(b.time) AS end_time, \
                  min(b.id) AS first_id, max(b.id) AS last_id \
           FROM block b WHERE b.epoch_no = e.no) c \
         CROSS JOIN LATERAL ( \
           SELECT (SELECT t.id FROM tx t WHERE t.block_id >= c.first_id \
                   ORDER BY t.block_id, t.id LIMIT 1) AS lo, \
                  (SELECT t.id FROM tx t WHERE t.block_id <= c.last_id \
                   ORDER BY t.block_id DESC, t.id DESC LIMIT 1) AS hi) r \
         CROSS JOIN LATERAL ( \
           SELECT count(*) AS tx_count, coalesce(sum(tx.out_sum), 0) AS out_sum, \
                  coalesce(sum(tx.fee), 0) AS fees \
           FROM tx WHERE tx.id >= r.lo AND tx.id <= r.hi \
             AND tx.block_id >= c.first_id AND tx.block_id <= c.last_id) t \
         LEFT JOIN {table} s ON s.no = e.no \
         WHERE c.blk_count > 0"
    )
}

/// Whether the table holds any stored row.
fn any_row_sql(table: &str) -> String {
    format!("SELECT EXISTS (SELECT 1 FROM {table})")
}

const INDEXES: [&str; 2] = ["idx_block_epoch_no", "idx_tx_block_id"];

/// Compares the stored epoch rows with their blocks and transactions, epoch by epoch.
pub type EpochTableCheck = IntegrityCheck<EpochTableRule>;

/// The `epoch_table` rule; its partial results are the faulty finished epochs.
#[derive(Clone, Copy, Debug, Default)]
pub struct EpochTableRule;

/// The table the stored rows are read from, found by the prerequisites.
#[derive(Clone, Copy, Debug)]
pub struct StoredRows {
    table: &'static str,
}

impl Incremental for EpochTableRule {
    const NAME: CheckName = CheckName::EpochTable;
    type Epoch = EpochRowFault;
    type Ready = StoredRows;
    type Seen = ();

    async fn prerequisites(
        &self,
        db: &Reader<'_>,
    ) -> Result<Prerequisites<StoredRows>, CheckError> {
        // 13.7.2+ has `epoch_finalized` and a view named `epoch`, which must not be read.
        let table = if db.schema.has_table("epoch_finalized") {
            "epoch_finalized"
        } else {
            "epoch"
        };
        if let Some(reason) = db.missing_prerequisite(&["block", "tx", table], &INDEXES) {
            return Ok(Prerequisites::Unmet(reason));
        }
        if !db.query_value::<bool>(&any_row_sql(table), &[]).await? {
            return Ok(Prerequisites::Unmet(format!(
                "{table} holds no epoch row: db-sync runs with epoch sync disabled \
                 (13.7.2+), or has not finished an epoch yet"
            )));
        }
        Ok(Prerequisites::Met(StoredRows { table }))
    }

    async fn examine(
        &self,
        db: &Reader<'_>,
        ready: &StoredRows,
        scope: &Scope,
    ) -> Result<Examined<EpochRowFault>, CheckError> {
        let mut faults = BTreeMap::new();
        db.query_each(
            &epochs_sql(ready.table),
            &[&scope.from, &scope.to, &scope.tip_epoch],
            |row| {
                let epoch: i64 = row.try_get(0)?;
                if row.try_get::<_, bool>(1)? {
                    faults.insert(epoch, EpochRowFault::Missing);
                    return Ok(());
                }
                let mut differs = Vec::new();
                for (n, field) in FIELDS.iter().enumerate() {
                    if row.try_get::<_, bool>(n + 2)? {
                        differs.push(*field);
                    }
                }
                if !differs.is_empty() {
                    faults.insert(epoch, EpochRowFault::Differs(differs));
                }
                Ok(())
            },
        )
        .await?;
        Ok(faults.into())
    }

    fn finish(&self, epochs: &BTreeMap<i64, EpochRowFault>, (): (), coverage: Coverage) -> Verdict {
        let missing = epochs
            .values()
            .filter(|fault| **fault == EpochRowFault::Missing)
            .count();
        Verdict::Found(Findings::EpochTable(EpochTableFindings {
            mismatches: epochs.len() as u64,
            missing: missing as u64,
            coverage,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_epoch_and_the_view_are_never_read() {
        let sql = epochs_sql("epoch_finalized");
        assert!(sql.contains("least($2::bigint, $3::bigint - 1)"), "{sql}");
        assert!(sql.contains("LEFT JOIN epoch_finalized s"), "{sql}");
        // Every field is compared, NULL-safe.
        assert_eq!(sql.matches("IS DISTINCT FROM").count(), FIELDS.len());
    }
}
