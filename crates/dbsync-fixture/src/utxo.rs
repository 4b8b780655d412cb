//! UTxO data for fixtures: transactions with their accounting columns (fee, deposit,
//! treasury donation, `valid_contract`, `out_sum`), outputs, inputs (as `tx_in` rows or, in
//! the `consumed_by_tx_id` variant, as the spender's id on the output), withdrawals, and the
//! declarations of valid Plutus transactions (`collateral_tx_in`, `collateral_tx_out`,
//! `reference_tx_in`) that spend nothing.
//!
//! The differences between releases are handled here: 13.2 has no `tx.treasury_donation`
//! (a donation asked for there is an error), and only 13.6+ has `tx_out.consumed_by_tx_id`.

use crate::fixture::Fixture;
use crate::schema::SchemaVersion;

/// The `extra_migrations` token db-sync writes when the `consumed_by_tx_id` variant is on.
pub const CONSUMED_TOKEN: &str = "ConsumeTxOutPreviouslySet";

/// One transaction and what it spends and creates, for [`Fixture::transfer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Outputs spent, as `(tx id, output index)`.
    pub inputs: Vec<(i64, i16)>,
    /// Values of the outputs created, at indexes `first_output_index`, +1, …
    pub outputs: Vec<i64>,
    /// Index of the first output (an invalid Babbage transaction's collateral return sits at
    /// the number of its regular outputs).
    pub first_output_index: i16,
    /// Withdrawals, as `(stake address id, amount)`.
    pub withdrawals: Vec<(i64, i64)>,
    /// `tx.fee`.
    pub fee: i64,
    /// `tx.deposit` (NULL when `None`; negative for refunds).
    pub deposit: Option<i64>,
    /// `tx.treasury_donation` (13.3+; must be 0 on 13.2).
    pub treasury_donation: i64,
    /// `tx.valid_contract`.
    pub valid_contract: bool,
    /// `tx.out_sum`; `None` stores the sum of `outputs`, as db-sync does.
    pub out_sum: Option<i64>,
}

impl Default for Transfer {
    /// A valid transaction with no inputs, outputs, fee or deposit (deposit 0, not NULL).
    fn default() -> Transfer {
        Transfer {
            inputs: Vec::new(),
            outputs: Vec::new(),
            first_output_index: 0,
            withdrawals: Vec::new(),
            fee: 0,
            deposit: Some(0),
            treasury_donation: 0,
            valid_contract: true,
            out_sum: None,
        }
    }
}

impl Fixture {
    /// Inserts a transaction in `block_id` with the accounting columns of `transfer`, its
    /// outputs, inputs (`tx_in` rows, or `consumed_by_tx_id` when the variant is on) and
    /// withdrawals; returns its id. The block's `tx_count` is left alone.
    ///
    /// # Panics
    /// On a database error, or a donation asked for on 13.2.
    pub async fn transfer(&mut self, block_id: i64, transfer: &Transfer) -> i64 {
        let out_sum = transfer
            .out_sum
            .unwrap_or_else(|| transfer.outputs.iter().sum());
        let tx = self
            .accounted_tx(
                block_id,
                transfer.fee,
                transfer.deposit,
                transfer.treasury_donation,
                transfer.valid_contract,
                out_sum,
            )
            .await;
        for (n, value) in transfer.outputs.iter().enumerate() {
            let index = transfer.first_output_index + i16::try_from(n).unwrap_or(i16::MAX);
            self.tx_out(tx, index, *value).await;
        }
        let consumed = self.uses_consumed_by_tx_id().await;
        for (out_tx, index) in &transfer.inputs {
            if consumed {
                self.consume(*out_tx, *index, tx).await;
            } else {
                self.tx_in(tx, *out_tx, *index).await;
            }
        }
        for (addr, amount) in &transfer.withdrawals {
            self.withdrawal(*addr, tx, *amount).await;
        }
        tx
    }

    /// Inserts a `tx` row in `block_id` (next `block_index`) with these accounting columns;
    /// returns its id.
    ///
    /// # Panics
    /// On a database error, or a non-zero donation on 13.2 (no such column).
    pub async fn accounted_tx(
        &mut self,
        block_id: i64,
        fee: i64,
        deposit: Option<i64>,
        treasury_donation: i64,
        valid_contract: bool,
        out_sum: i64,
    ) -> i64 {
        let hash = self.next_hash(i64::MIN).to_vec();
        let rows = if self.version == SchemaVersion::V13_2 {
            assert_eq!(treasury_donation, 0, "13.2 has no tx.treasury_donation");
            self.query(
                "INSERT INTO tx (hash, block_id, block_index, out_sum, fee, deposit, size, \
                 valid_contract, script_size) \
                 SELECT $1::bytea, $2::int8, count(*), $3::int8, $4::int8, $5::int8, 300, \
                        $6::bool, 0 \
                 FROM tx WHERE block_id = $2::int8 RETURNING id",
                &[&hash, &block_id, &out_sum, &fee, &deposit, &valid_contract],
            )
            .await
        } else {
            self.query(
                "INSERT INTO tx (hash, block_id, block_index, out_sum, fee, deposit, size, \
                 valid_contract, script_size, treasury_donation) \
                 SELECT $1::bytea, $2::int8, count(*), $3::int8, $4::int8, $5::int8, 300, \
                        $6::bool, 0, $7::int8 \
                 FROM tx WHERE block_id = $2::int8 RETURNING id",
                &[
                    &hash,
                    &block_id,
                    &out_sum,
                    &fee,
                    &deposit,
                    &valid_contract,
                    &treasury_donation,
                ],
            )
            .await
        };
        rows[0].get(0)
    }

    /// Inserts output `index` of `tx_id` worth `value` lovelace; returns its id.
    pub async fn tx_out(&self, tx_id: i64, index: i16, value: i64) -> i64 {
        let rows = self
            .query(
                "INSERT INTO tx_out (tx_id, index, address, address_has_script, value) \
                 VALUES ($1::int8, $2::int2, 'addr_test_fixture', false, $3::int8) RETURNING id",
                &[&tx_id, &index, &value],
            )
            .await;
        rows[0].get(0)
    }

    /// Inserts a `tx_in` row: transaction `tx_in_id` spends output `tx_out_index` of
    /// `tx_out_id` (nothing checks that the output exists: a dangling input is allowed).
    pub async fn tx_in(&self, tx_in_id: i64, tx_out_id: i64, tx_out_index: i16) {
        self.query(
            "INSERT INTO tx_in (tx_in_id, tx_out_id, tx_out_index) \
             VALUES ($1::int8, $2::int8, $3::int2)",
            &[&tx_in_id, &tx_out_id, &tx_out_index],
        )
        .await;
    }

    /// The `consumed_by_tx_id` variant's form of an input: output `index` of `tx_id` is
    /// marked consumed by `by_tx`.
    ///
    /// # Panics
    /// If the output does not exist (the variant cannot record a dangling input).
    pub async fn consume(&self, tx_id: i64, index: i16, by_tx: i64) {
        let rows = self
            .query(
                "UPDATE tx_out SET consumed_by_tx_id = $3::int8 \
                 WHERE tx_id = $1::int8 AND index = $2::int2 RETURNING id",
                &[&tx_id, &index, &by_tx],
            )
            .await;
        assert_eq!(rows.len(), 1, "no output {tx_id}#{index} to consume");
    }

    /// Declares output `tx_out_index` of `tx_out_id` as collateral of the valid Plutus
    /// transaction `tx_in_id` (not spent).
    pub async fn collateral_tx_in(&self, tx_in_id: i64, tx_out_id: i64, tx_out_index: i16) {
        self.query(
            "INSERT INTO collateral_tx_in (tx_in_id, tx_out_id, tx_out_index) \
             VALUES ($1::int8, $2::int8, $3::int2)",
            &[&tx_in_id, &tx_out_id, &tx_out_index],
        )
        .await;
    }

    /// Declares the collateral return of the valid Plutus transaction `tx_id` (not created).
    pub async fn collateral_tx_out(&self, tx_id: i64, index: i16, value: i64) {
        self.query(
            "INSERT INTO collateral_tx_out (tx_id, index, address, address_has_script, value, \
               multi_assets_descr) \
             VALUES ($1::int8, $2::int2, 'addr_test_fixture', false, $3::int8, '')",
            &[&tx_id, &index, &value],
        )
        .await;
    }

    /// Records output `tx_out_index` of `tx_out_id` as a reference input of `tx_in_id` (read,
    /// not spent).
    pub async fn reference_tx_in(&self, tx_in_id: i64, tx_out_id: i64, tx_out_index: i16) {
        self.query(
            "INSERT INTO reference_tx_in (tx_in_id, tx_out_id, tx_out_index) \
             VALUES ($1::int8, $2::int8, $3::int2)",
            &[&tx_in_id, &tx_out_id, &tx_out_index],
        )
        .await;
    }

    /// Turns the `consumed_by_tx_id` variant on, as db-sync's migration does: the
    /// `extra_migrations` token and `idx_tx_out_consumed_by_tx_id`. From then on
    /// [`Fixture::transfer`] records inputs on the outputs instead of in `tx_in`.
    ///
    /// # Panics
    /// Before 13.6 (no such column).
    pub async fn use_consumed_by_tx_id(&self) {
        assert!(
            self.version.has_consumed_by_column(),
            "{} has no tx_out.consumed_by_tx_id",
            self.version
        );
        self.execute(&format!(
            "INSERT INTO extra_migrations (token, description) VALUES ('{CONSUMED_TOKEN}', NULL);
             CREATE INDEX IF NOT EXISTS idx_tx_out_consumed_by_tx_id \
               ON tx_out USING btree (consumed_by_tx_id);"
        ))
        .await;
    }

    /// Whether the `consumed_by_tx_id` variant is on (its `extra_migrations` token).
    pub async fn uses_consumed_by_tx_id(&self) -> bool {
        self.query(
            "SELECT EXISTS (SELECT 1 FROM extra_migrations WHERE token = $1::text)",
            &[&CONSUMED_TOKEN],
        )
        .await[0]
            .get(0)
    }
}
