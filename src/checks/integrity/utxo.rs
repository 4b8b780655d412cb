//! What the transaction-level rules (`tx_balance`, `tx_in_double_spends`) share: which
//! `tx_out` variant db-sync runs with, and the transaction ids of each epoch.
//!
//! db-sync records its `tx_out` variant in `extra_migrations` (`token` = the Haskell `show` of
//! its `ExtraMigration`): with `ConsumeTxOutPreviouslySet` an input is the spender's id on the
//! output (`tx_out.consumed_by_tx_id`) and `tx_in` stays empty; with
//! `PruneTxOutFlagPreviouslySet` consumed outputs are deleted (the inputs of all but the
//! newest transactions point at nothing); with `BootstrapStarted` the UTxO is inserted only at
//! the tip and `tx.fee` stays 0. The `consumed_by_tx_id` column exists on every 13.6+ database
//! and says nothing. With `tx_out` disabled, `tx_out` is empty although `tx` is not.
//!
//! Transaction ids are contiguous per epoch: db-sync inserts blocks and their transactions in
//! chain order, and a rollback deletes the newest rows (their replacements get new, higher
//! ids), so the ids of an epoch's blocks, and of their transactions, form one range.

use super::sql::Reader;
use super::state::Scope;
use crate::checks::CheckError;

/// How inputs are recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inputs {
    /// As `tx_in` rows (db-sync's default).
    TxIn,
    /// As `tx_out.consumed_by_tx_id` (the consumed variant; `tx_in` is empty).
    ConsumedBy,
}

/// The `extra_migrations` tokens (a handful of rows), when the table exists (13.2+).
const TOKENS_SQL: &str = "SELECT token::text FROM extra_migrations";
/// `tx_out` disabled: transactions but no outputs. One row of each primary key (an `EXISTS`
/// without a condition is planned as a sequential scan that stops at its first row; the key
/// says the same without a scan).
const TX_OUT_DISABLED_SQL: &str = "SELECT (SELECT id FROM tx ORDER BY id LIMIT 1) IS NOT NULL \
       AND (SELECT id FROM tx_out ORDER BY id LIMIT 1) IS NULL";

/// How this database records inputs, or why its UTxO data cannot be verified.
pub(super) async fn inputs(db: &Reader<'_>) -> Result<Result<Inputs, String>, CheckError> {
    let mut tokens = Vec::new();
    if db.schema.has_table("extra_migrations") {
        db.query_each(TOKENS_SQL, &[], |row| {
            tokens.push(row.try_get::<_, String>(0)?);
            Ok(())
        })
        .await?;
    }
    let has = |token: &str| tokens.iter().any(|t| t == token);
    if has("PruneTxOutFlagPreviouslySet") {
        return Ok(Err(
            "db-sync prunes consumed outputs (tx_out prune variant): the \
                       inputs of older transactions point at deleted outputs"
                .into(),
        ));
    }
    if has("BootstrapStarted") {
        return Ok(Err(
            "db-sync was bootstrapped (tx_out bootstrap variant): the UTxO \
                       was inserted at the tip and the fees of earlier transactions are 0"
                .into(),
        ));
    }
    let disabled: bool = db.query_value(TX_OUT_DISABLED_SQL, &[]).await?;
    if disabled {
        return Ok(Err(
            "tx_out is empty although tx is not: db-sync runs with tx_out disabled".into(),
        ));
    }
    Ok(Ok(if has("ConsumeTxOutPreviouslySet") {
        Inputs::ConsumedBy
    } else {
        Inputs::TxIn
    }))
}

/// The first and last transaction id of every epoch in `[$1, $2]` that has transactions in
/// blocks after block `$3` (-1: in any block).
/// The epoch's first and last block come from `idx_block_epoch_no` (`id + 0` keeps the
/// planner from walking `block_pkey` in id order, filtering on the epoch), then the lowest
/// and highest block of that range that holds transactions from one descent of
/// `idx_tx_block_id` each, and that block's lowest or highest transaction id: a few dozen
/// index probes per epoch instead of reading its transactions.
const EPOCH_TX_IDS_SQL: &str = "SELECT e.no, r.lo, r.hi \
     FROM generate_series($1::bigint, $2::bigint) AS e(no) \
     CROSS JOIN LATERAL (SELECT min(b.id + 0) AS first, max(b.id + 0) AS last \
                         FROM block b WHERE b.epoch_no = e.no AND b.id > $3::bigint) bl \
     CROSS JOIN LATERAL (SELECT \
         (SELECT min(tx.id) FROM tx WHERE tx.block_id = \
            (SELECT min(t.block_id) FROM tx t WHERE t.block_id BETWEEN bl.first AND bl.last)) AS lo, \
         (SELECT max(tx.id) FROM tx WHERE tx.block_id = \
            (SELECT max(t.block_id) FROM tx t WHERE t.block_id BETWEEN bl.first AND bl.last)) AS hi) r \
     WHERE r.lo IS NOT NULL";

/// One epoch's transactions: `epoch`, first id, last id.
pub(super) type EpochTxIds = (i64, i64, i64);

/// The transaction id range of every epoch of the window that has transactions (at most one
/// row per epoch of the window: a few hundred on mainnet); of its blocks after
/// [`Scope::after_block`], if set.
pub(super) async fn epoch_tx_ids(
    db: &Reader<'_>,
    scope: &Scope,
) -> Result<Vec<EpochTxIds>, CheckError> {
    let mut ranges = Vec::new();
    let after = scope.after_block_id();
    db.query_each(EPOCH_TX_IDS_SQL, &[&scope.from, &scope.to, &after], |row| {
        ranges.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
        Ok(())
    })
    .await?;
    Ok(ranges)
}

/// A lovelace sum SQL returned as `numeric::text`, exactly.
pub(super) fn lovelace(text: &str) -> Result<i128, CheckError> {
    text.parse()
        .map_err(|_| CheckError::Data(format!("not an integer lovelace sum: {text:?}")))
}

/// One epoch's count, as the u64 the findings hold.
pub(super) fn count(value: i64) -> u64 {
    value.unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_read_exactly() {
        assert_eq!(lovelace("-1").unwrap(), -1);
        assert_eq!(
            lovelace("45000000000000000000").unwrap(),
            45_000_000_000_000_000_000
        );
        assert!(lovelace("1.5").is_err());
    }

    #[test]
    fn the_window_is_found_through_the_block_ids_not_the_block_numbers() {
        assert!(EPOCH_TX_IDS_SQL.contains("b.id + 0"));
        assert!(!EPOCH_TX_IDS_SQL.contains("block_no"));
    }
}
