//! `block_number_gaps`: along the main blocks ordered by `(block_no, id)`, the consecutive
//! pairs whose numbers differ by anything but 1 (db-tool's BlockProperties "block numbers
//! contiguous", over the whole chain instead of a random window).
//!
//! Pairs, not missing numbers: one lost block is one pair, two lost blocks in a row are one
//! pair too, and a repeated number is two (`n−1, n−1, n+1`: the repeat, then the jump over
//! `n`). db-sync keeps numbers contiguous across rollbacks (it deletes the blocks from the
//! rollback height and writes their replacements with the same numbers), so only **ids**
//! jump; the order ties on `id` only to make repeated numbers deterministic, and the rule
//! never compares ids. Main blocks only: Byron EBBs and the genesis row have `block_no` NULL.
//!
//! Partial results are by the epoch of the **later** block of a pair. Its predecessor is
//! looked up across the whole chain, not only in that epoch: each epoch's window is the range
//! of block numbers its main blocks span (every main block with a number in that range, of
//! any epoch, takes part as a predecessor), plus the one main block just below the range. So
//! an epoch's result depends only on the database, never on the window a run examines, and
//! the sum over epochs is the count over the whole chain. A rollback only rewrites blocks of
//! the epochs an incremental run re-examines (or, across a boundary, triggers a full run).
//! One bound: a new block whose (corrupt) number falls inside an older epoch's range can
//! change that older epoch's pairs too (it may fill a gap there); its own pair is counted at
//! once, the older epoch's change at the next full re-check. Only an already wrong database
//! gets such a block.
//!
//! Cost: one row per epoch from `generate_series`; each finds its number range through
//! `idx_block_epoch_no` (`block_no + 0`, so the planner does not answer `min`/`max` by walking
//! `idx_block_block_no` and filtering on the epoch), reads the range in order through
//! `idx_block_block_no` and probes it once backwards for the predecessor. Both are stage-3
//! indexes: the check applies during initial sync. A corrupt huge number widens its epoch's
//! range; that costs time only on a database that is already wrong.
//!
//! [`block_time_disorder`](super::block_time_disorder) walks the same pairs.

use std::collections::BTreeMap;

use super::incremental::{total, Examined, Incremental, IntegrityCheck, Prerequisites};
use super::sql::Reader;
use super::state::{Coverage, Scope};
use crate::checks::{CheckError, CheckName, Findings, Verdict};

/// The `block_number_gaps` check's findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockNumberGapFindings {
    /// Consecutive main blocks whose numbers do not differ by exactly 1.
    pub gaps: u64,
    /// What the run covered.
    pub coverage: Coverage,
}

/// Per epoch in `[$1, $2]`, the pairs of consecutive main blocks (by `(block_no, id)`) whose
/// later block is in that epoch and whose columns make `offending` true. `offending` reads
/// `s.block_no`, `s.time` and their predecessor's `s.prev_no`, `s.prev_time`.
pub(super) fn consecutive_pairs_sql(offending: &str) -> String {
    format!(
        "SELECT e.no, x.pairs \
         FROM generate_series($1::bigint, $2::bigint) AS e(no) \
         CROSS JOIN LATERAL ( \
           SELECT min(b.block_no + 0) AS lo, max(b.block_no + 0) AS hi \
           FROM block b WHERE b.epoch_no = e.no) r \
         CROSS JOIN LATERAL ( \
           SELECT count(*) AS pairs FROM ( \
             SELECT w.epoch_no, w.block_no, w.time, \
                    lag(w.block_no) OVER o AS prev_no, lag(w.time) OVER o AS prev_time \
             FROM ( \
               (SELECT p.id, p.epoch_no, p.block_no, p.time FROM block p \
                WHERE p.block_no < r.lo ORDER BY p.block_no DESC, p.id DESC LIMIT 1) \
               UNION ALL \
               SELECT m.id, m.epoch_no, m.block_no, m.time FROM block m \
               WHERE m.block_no >= r.lo AND m.block_no <= r.hi) w \
             WINDOW o AS (ORDER BY w.block_no, w.id)) s \
           WHERE s.epoch_no = e.no AND s.prev_no IS NOT NULL AND ({offending})) x"
    )
}

/// What makes a pair a gap: the numbers do not step by one.
const GAP: &str = "s.block_no - s.prev_no <> 1";

pub(super) const TABLES: [&str; 1] = ["block"];
pub(super) const INDEXES: [&str; 2] = ["idx_block_block_no", "idx_block_epoch_no"];

/// Counts the breaks in the block numbering, epoch by epoch.
pub type BlockNumberGapsCheck = IntegrityCheck<BlockNumberGapsRule>;

/// The `block_number_gaps` rule; its partial results are gaps by epoch of the later block.
#[derive(Clone, Debug)]
pub struct BlockNumberGapsRule {
    sql: String,
}

impl Default for BlockNumberGapsRule {
    fn default() -> BlockNumberGapsRule {
        BlockNumberGapsRule {
            sql: consecutive_pairs_sql(GAP),
        }
    }
}

impl Incremental for BlockNumberGapsRule {
    const NAME: CheckName = CheckName::BlockNumberGaps;
    type Epoch = u64;
    type Ready = ();
    type Seen = ();

    async fn prerequisites(&self, db: &Reader<'_>) -> Result<Prerequisites<()>, CheckError> {
        // Blocks are written with the ledger off too.
        Ok(db.missing_prerequisite(&TABLES, &INDEXES).into())
    }

    async fn examine(
        &self,
        db: &Reader<'_>,
        (): &(),
        scope: &Scope,
    ) -> Result<Examined<u64>, CheckError> {
        // Nothing belongs to no epoch here: the genesis rows have no block number.
        Ok(db.epoch_counts(&self.sql, &scope.bounds()).await?.into())
    }

    fn finish(&self, epochs: &BTreeMap<i64, u64>, (): (), coverage: Coverage) -> Verdict {
        Verdict::Found(Findings::BlockNumberGaps(BlockNumberGapFindings {
            gaps: total(epochs, |sum, epoch| *sum += epoch),
            coverage,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule as a list computation, to pin down what a "pair" is.
    fn gaps(blocks: &[(i64, i64)]) -> usize {
        let mut ordered = blocks.to_vec();
        ordered.sort();
        ordered.windows(2).filter(|w| w[1].0 - w[0].0 != 1).count()
    }

    #[test]
    fn id_gaps_are_not_number_gaps() {
        // Ids 1..10 then 20..25 (a rollback's gap), numbers contiguous: nothing to report.
        let blocks: Vec<(i64, i64)> = (1..=10)
            .chain(20..=25)
            .enumerate()
            .map(|(n, id)| (n as i64 + 1, id))
            .collect();
        assert_eq!(gaps(&blocks), 0);
        // The SQL orders by number (ties by id) and never compares ids.
        let sql = consecutive_pairs_sql(GAP);
        assert!(sql.contains("ORDER BY w.block_no, w.id"), "{sql}");
        assert!(!GAP.contains("id"));
    }

    #[test]
    fn pairs_not_missing_numbers() {
        let numbered = |numbers: &[i64]| {
            gaps(
                &numbers
                    .iter()
                    .enumerate()
                    .map(|(id, n)| (*n, id as i64))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(numbered(&[1, 2, 4, 5]), 1, "one lost block");
        assert_eq!(numbered(&[1, 2, 5, 6]), 1, "two lost in a row");
        assert_eq!(numbered(&[1, 2, 2, 4]), 2, "a repeated number");
    }

    #[test]
    fn the_window_finds_predecessors_below_the_epoch() {
        let sql = consecutive_pairs_sql(GAP);
        assert!(sql.contains("p.block_no < r.lo ORDER BY p.block_no DESC, p.id DESC LIMIT 1"));
        assert!(
            sql.contains("s.epoch_no = e.no"),
            "only pairs ending in the epoch"
        );
        assert!(
            sql.contains("block_no + 0"),
            "min/max must not walk idx_block_block_no"
        );
    }
}
