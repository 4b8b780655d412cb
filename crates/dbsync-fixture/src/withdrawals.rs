//! Withdrawals for fixtures: `withdrawal` rows, script stake addresses (the "withdraw zero"
//! trick) and phase-2-invalid transactions, which db-sync stores without any withdrawal row.
//!
//! The `withdrawal` table has the same shape in every supported release, so these calls need
//! no per-version branches.

use crate::fixture::Fixture;

impl Fixture {
    /// A `withdrawal` of `amount` lovelace from the reward account `addr_id` in transaction
    /// `tx_id` (no redeemer).
    pub async fn withdrawal(&self, addr_id: i64, tx_id: i64, amount: i64) {
        self.query(
            "INSERT INTO withdrawal (addr_id, amount, redeemer_id, tx_id) \
             VALUES ($1::int8, $2::int8, NULL, $3::int8)",
            &[&addr_id, &amount, &tx_id],
        )
        .await;
    }

    /// A new script `stake_address` row (its `script_hash` set); returns its id.
    pub async fn script_stake_address(&mut self) -> i64 {
        let hash = self.next_hash(-4);
        let mut raw = vec![0xf1_u8];
        raw.extend_from_slice(&hash[..28]);
        let view = format!(
            "stake_test17{}",
            hash[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let script = hash[4..32].to_vec();
        self.query(
            "INSERT INTO stake_address (hash_raw, view, script_hash) \
             VALUES ($1::bytea, $2::text, $3::bytea) RETURNING id",
            &[&raw, &view, &script],
        )
        .await[0]
            .get(0)
    }

    /// Appends a block in `epoch` holding one phase-2-invalid transaction (`valid_contract`
    /// false: db-sync writes its collateral, but no withdrawal or certificate); returns its id.
    pub async fn invalid_tx_in_epoch(&mut self, epoch: i64) -> i64 {
        let tx = self.tx_in_epoch(epoch).await;
        self.query(
            "UPDATE tx SET valid_contract = false WHERE id = $1::int8",
            &[&tx],
        )
        .await;
        tx
    }

    /// Deletes the withdrawals of the transactions in the top `depth` blocks, as db-sync's
    /// rollback does with a transaction's rows; call it before
    /// [`Fixture::rollback_and_replace`] or [`Fixture::truncate`] with the same depth.
    pub async fn roll_back_withdrawals(&self, depth: u32) {
        self.query(
            "DELETE FROM withdrawal WHERE tx_id IN ( \
               SELECT tx.id FROM tx JOIN block b ON b.id = tx.block_id \
               WHERE b.block_no > (SELECT max(block_no) FROM block) - $1::int8)",
            &[&i64::from(depth)],
        )
        .await;
    }
}
