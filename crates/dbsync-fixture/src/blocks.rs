//! Block-level faults and the stored epoch aggregates, for the block-order, future-block and
//! epoch-table integrity rules: change one block's number or time, add transactions with
//! amounts, read the database's clock, and write an epoch's stored row the way db-sync does.
//!
//! The stored row lives in the `epoch` table up to 13.7.1 and in `epoch_finalized` from
//! 13.7.2 (where `epoch` is a view that recomputes); [`Fixture::epoch_table`] names it, so a
//! scenario runs unchanged on every [`SchemaVersion`].

use crate::fixture::Fixture;
use crate::schema::SchemaVersion;

impl Fixture {
    /// Sets `block.block_no` of one block (`None` stores NULL, as for EBBs).
    pub async fn set_block_no(&self, block_id: i64, block_no: Option<i64>) {
        self.query(
            "UPDATE block SET block_no = $2::int8 WHERE id = $1::int8",
            &[&block_id, &block_no],
        )
        .await;
    }

    /// Sets `block.time` of one block, as Unix seconds (stored as UTC without a zone).
    pub async fn set_block_time(&self, block_id: i64, time_unix: i64) {
        self.query(
            "UPDATE block SET time = to_timestamp($2::int8) AT TIME ZONE 'UTC' \
             WHERE id = $1::int8",
            &[&block_id, &time_unix],
        )
        .await;
    }

    /// The database server's clock, as Unix seconds: tests that depend on "now" build their
    /// times from it, so they hold at any time of day and whatever the session's TimeZone.
    pub async fn db_now_unix(&self) -> i64 {
        self.query("SELECT extract(epoch FROM now())::int8", &[])
            .await[0]
            .get(0)
    }

    /// Inserts a `tx` row in `block_id` with these amounts (next `block_index`, deposit 0);
    /// `valid` false makes it a phase-2-invalid transaction. Returns its id. The block's
    /// `tx_count` is left alone.
    pub async fn tx_with(&mut self, block_id: i64, out_sum: i64, fee: i64, valid: bool) -> i64 {
        let hash = self.next_hash(i64::MIN).to_vec();
        self.query(
            "INSERT INTO tx (hash, block_id, block_index, out_sum, fee, deposit, size, \
             valid_contract, script_size) \
             SELECT $1::bytea, $2::int8, count(*), $3::int8, $4::int8, 0, 200, $5::bool, 0 \
             FROM tx WHERE block_id = $2::int8 RETURNING id",
            &[&hash, &block_id, &out_sum, &fee, &valid],
        )
        .await[0]
            .get(0)
    }

    /// The table that stores the epoch aggregates: `epoch` up to 13.7.1, `epoch_finalized`
    /// from 13.7.2 (never the `epoch` view there, which recomputes).
    pub fn epoch_table(&self) -> &'static str {
        if self.version == SchemaVersion::V13_7 {
            "epoch_finalized"
        } else {
            "epoch"
        }
    }

    /// Writes (or rewrites) the stored row of `epoch` from its blocks and their transactions,
    /// as db-sync does: every block of the epoch counts (EBBs included), every transaction
    /// (phase-2-invalid ones included), sums of `out_sum` and `fee`, the first and last block
    /// time. 13.7.2+ gives the row `id = no + 1`. Does nothing for an epoch without blocks.
    pub async fn write_epoch_row(&self, epoch: i64) {
        let table = self.epoch_table();
        let id = if table == "epoch_finalized" {
            "c.no + 1,"
        } else {
            ""
        };
        let id_column = if id.is_empty() { "" } else { "id," };
        self.query(
            &format!(
                "INSERT INTO {table} ({id_column} out_sum, fees, tx_count, blk_count, no, \
                     start_time, end_time) \
                 SELECT {id} c.out_sum, c.fees, c.tx_count, c.blk_count, c.no, c.start_time, \
                     c.end_time \
                 FROM (SELECT $1::int8 AS no, coalesce(sum(tx.out_sum), 0) AS out_sum, \
                           coalesce(sum(tx.fee), 0) AS fees, count(tx.id) AS tx_count, \
                           count(DISTINCT b.id) AS blk_count, min(b.time) AS start_time, \
                           max(b.time) AS end_time \
                       FROM block b LEFT JOIN tx ON tx.block_id = b.id \
                       WHERE b.epoch_no = $1::int8) c \
                 WHERE c.blk_count > 0 \
                 ON CONFLICT (no) DO UPDATE SET out_sum = excluded.out_sum, \
                     fees = excluded.fees, tx_count = excluded.tx_count, \
                     blk_count = excluded.blk_count, start_time = excluded.start_time, \
                     end_time = excluded.end_time"
            ),
            &[&epoch],
        )
        .await;
    }
}
