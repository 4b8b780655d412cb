//! `block_time_disorder`: main blocks that are not strictly later than their predecessor
//! along the order of [`block_number_gaps`](super::block_number_gaps), `(block_no, id)`
//! (db-tool's BlockProperties "timestamps are ordered", done as meant: db-tool's test,
//! `nubOrd ts == ts`, only finds repeated times, ordered or not).
//!
//! Equal times count: every slot is later than the one before (Byron 20 s, Shelley on 1 s),
//! so two blocks at one time are as wrong as a block that goes back in time. Counted per pair
//! (a block with an earlier time than its predecessor is one; the block after it, later again,
//! is fine). Byron EBBs are left out, like the genesis row, because they are not main blocks
//! (`block_no` NULL): an EBB carries its epoch's first slot time, the same as the epoch's
//! first main block, so ordering with EBBs would count every Byron boundary.
//!
//! Partial results, windows and cost are those of `block_number_gaps` (the same pairs, the
//! same stage-3 indexes); only the offending condition differs.

use std::collections::BTreeMap;

use super::block_number_gaps::{consecutive_pairs_sql, INDEXES, TABLES};
use super::incremental::{total, Examined, Incremental, IntegrityCheck, Prerequisites};
use super::sql::Reader;
use super::state::{Coverage, Scope};
use crate::checks::{CheckError, CheckName, Findings, Verdict};

/// The `block_time_disorder` check's findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTimeDisorderFindings {
    /// Main blocks whose time is not strictly after their predecessor's.
    pub disordered: u64,
    /// What the run covered.
    pub coverage: Coverage,
}

/// What makes a pair disordered: the later block is not strictly later.
const NOT_LATER: &str = "s.time <= s.prev_time";

/// Counts the main blocks that do not move time forward, epoch by epoch.
pub type BlockTimeDisorderCheck = IntegrityCheck<BlockTimeDisorderRule>;

/// The `block_time_disorder` rule; its partial results are disordered blocks by epoch.
#[derive(Clone, Debug)]
pub struct BlockTimeDisorderRule {
    sql: String,
}

impl Default for BlockTimeDisorderRule {
    fn default() -> BlockTimeDisorderRule {
        BlockTimeDisorderRule {
            sql: consecutive_pairs_sql(NOT_LATER),
        }
    }
}

impl Incremental for BlockTimeDisorderRule {
    const NAME: CheckName = CheckName::BlockTimeDisorder;
    type Epoch = u64;
    type Ready = ();
    type Seen = ();

    async fn prerequisites(&self, db: &Reader<'_>) -> Result<Prerequisites<()>, CheckError> {
        Ok(db.missing_prerequisite(&TABLES, &INDEXES).into())
    }

    async fn examine(
        &self,
        db: &Reader<'_>,
        (): &(),
        scope: &Scope,
    ) -> Result<Examined<u64>, CheckError> {
        Ok(db.epoch_counts(&self.sql, &scope.bounds()).await?.into())
    }

    fn finish(&self, epochs: &BTreeMap<i64, u64>, (): (), coverage: Coverage) -> Verdict {
        Verdict::Found(Findings::BlockTimeDisorder(BlockTimeDisorderFindings {
            disordered: total(epochs, |sum, epoch| *sum += epoch),
            coverage,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_times_count_and_the_order_is_by_number() {
        // `<=`, not `<`: db-tool's duplicate test made equal times the only fault it saw.
        assert!(NOT_LATER.contains("<="));
        let sql = consecutive_pairs_sql(NOT_LATER);
        assert!(sql.contains("ORDER BY w.block_no, w.id"), "{sql}");
    }
}
