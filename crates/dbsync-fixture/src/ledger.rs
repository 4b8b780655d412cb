//! Ledger data for fixtures: stake addresses and their certificates, MIR certificates and
//! instant rewards, pools and their registrations and retirements, rewards, `ada_pots`,
//! `epoch_param` and stake distributions.
//!
//! The differences between releases are handled here, so that a test scenario runs unchanged
//! on every [`SchemaVersion`]: instant rewards go to `instant_reward` (13.2) or `reward_rest`
//! (13.3+), `ada_pots` has one `deposits` column (13.2) or three (13.3+), and the 13.3+
//! `deposit` columns of `stake_registration` and `pool_update` are filled the way db-sync
//! fills them.
//!
//! Certificates live in transactions, and a transaction in a block of a given epoch: build the
//! chain in order with [`Fixture::tx_in_epoch`] (each call appends a block to the chain), then
//! attach certificates to the returned transaction id.

use crate::fixture::Fixture;
use crate::schema::SchemaVersion;

/// The Shelley genesis `maxLovelaceSupply` of the public networks.
pub const MAX_SUPPLY: i64 = 45_000_000_000_000_000;

/// The pot a MIR certificate pays from (`reserve` or `treasury` table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MirSource {
    /// A `reserve` row; paid as a `reserves` instant reward.
    Reserves,
    /// A `treasury` row; paid as a `treasury` instant reward.
    Treasury,
}

impl MirSource {
    /// The `rewardtype` value of the instant reward that pays it.
    pub fn reward_type(self) -> &'static str {
        match self {
            MirSource::Reserves => "reserves",
            MirSource::Treasury => "treasury",
        }
    }
}

/// One `ada_pots` row, in the 13.3+ layout (13.2 stores the three deposits summed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdaPots {
    /// `treasury`.
    pub treasury: i64,
    /// `reserves`.
    pub reserves: i64,
    /// `rewards`.
    pub rewards: i64,
    /// `utxo`.
    pub utxo: i64,
    /// `deposits_stake` (stake key and pool deposits).
    pub deposits_stake: i64,
    /// `deposits_drep` (Conway).
    pub deposits_drep: i64,
    /// `deposits_proposal` (Conway).
    pub deposits_proposal: i64,
    /// `fees`.
    pub fees: i64,
}

impl AdaPots {
    /// Plausible pots that add up to exactly [`MAX_SUPPLY`].
    pub fn balanced() -> AdaPots {
        let mut pots = AdaPots {
            treasury: 1_500_000_000_000_000,
            reserves: 7_000_000_000_000_000,
            rewards: 600_000_000_000_000,
            utxo: 0,
            deposits_stake: 4_000_000_000_000,
            deposits_drep: 2_000_000_000,
            deposits_proposal: 100_000_000_000,
            fees: 30_000_000_000,
        };
        pots.utxo = MAX_SUPPLY - pots.sum();
        pots
    }

    /// The sum the supply invariant checks.
    pub fn sum(&self) -> i64 {
        self.treasury
            + self.reserves
            + self.rewards
            + self.utxo
            + self.deposits_stake
            + self.deposits_drep
            + self.deposits_proposal
            + self.fees
    }
}

impl Fixture {
    /// Appends one block in `epoch` to the chain and returns its id.
    ///
    /// # Panics
    /// If the chain is already past `epoch` (ledger fixtures are built in chain order), or has
    /// no block at all (start with [`Fixture::genesis_block`]).
    pub async fn block_in_epoch(&mut self, epoch: i64) -> i64 {
        let tip_epoch: Option<i64> = self
            .query(
                "SELECT epoch_no::int8 FROM block ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await
            .first()
            .and_then(|row| row.get(0));
        if let Some(tip) = tip_epoch {
            assert!(
                tip <= epoch,
                "the chain is at epoch {tip}; build ledger fixtures in chain order (asked for {epoch})"
            );
        }
        self.extend_into_epoch(epoch, 1, 20).await[0]
    }

    /// Appends a block in `epoch` holding one transaction; returns the transaction's id.
    pub async fn tx_in_epoch(&mut self, epoch: i64) -> i64 {
        let block = self.block_in_epoch(epoch).await;
        self.insert_tx(block, 170_000).await
    }

    /// A new `stake_address` row; returns its id.
    pub async fn stake_address(&mut self) -> i64 {
        let hash = self.next_hash(-2);
        let mut raw = vec![0xe1_u8];
        raw.extend_from_slice(&hash[..28]);
        let view = format!("stake_test1{}", hex(&hash[..8]));
        self.query(
            "INSERT INTO stake_address (hash_raw, view, script_hash) \
             VALUES ($1::bytea, $2::text, NULL) RETURNING id",
            &[&raw, &view],
        )
        .await[0]
            .get(0)
    }

    /// A stake registration certificate at position `cert_index` of transaction `tx_id`
    /// (13.3+: with the 2 ADA key deposit db-sync records).
    pub async fn stake_registration(&self, addr_id: i64, tx_id: i64, cert_index: i32) {
        let deposit = if self.version == SchemaVersion::V13_2 {
            ""
        } else {
            ", deposit"
        };
        let value = if deposit.is_empty() { "" } else { ", 2000000" };
        self.query(
            &format!(
                "INSERT INTO stake_registration (addr_id, cert_index, epoch_no, tx_id{deposit}) \
                 SELECT $1::int8, $2::int4, b.epoch_no, tx.id{value} \
                 FROM tx JOIN block b ON b.id = tx.block_id WHERE tx.id = $3::int8"
            ),
            &[&addr_id, &cert_index, &tx_id],
        )
        .await;
    }

    /// A stake deregistration certificate at position `cert_index` of transaction `tx_id`.
    pub async fn stake_deregistration(&self, addr_id: i64, tx_id: i64, cert_index: i32) {
        self.query(
            "INSERT INTO stake_deregistration (addr_id, cert_index, epoch_no, tx_id, redeemer_id) \
             SELECT $1::int8, $2::int4, b.epoch_no, tx.id, NULL \
             FROM tx JOIN block b ON b.id = tx.block_id WHERE tx.id = $3::int8",
            &[&addr_id, &cert_index, &tx_id],
        )
        .await;
    }

    /// A MIR certificate paying `amount` lovelace (a signed delta from Alonzo on) to `addr_id`
    /// from `source`, at position `cert_index` of transaction `tx_id`.
    pub async fn mir(
        &self,
        source: MirSource,
        addr_id: i64,
        tx_id: i64,
        cert_index: i32,
        amount: i64,
    ) {
        let table = match source {
            MirSource::Reserves => "reserve",
            MirSource::Treasury => "treasury",
        };
        self.query(
            &format!(
                "INSERT INTO {table} (addr_id, cert_index, amount, tx_id) \
                 VALUES ($1::int8, $2::int4, $3::int8, $4::int8)"
            ),
            &[&addr_id, &cert_index, &amount, &tx_id],
        )
        .await;
    }

    /// An instant reward (`reserves`, `treasury` or `proposal_refund`) spendable in
    /// `spendable_epoch`: `instant_reward` in 13.2, `reward_rest` from 13.3. 13.2 had no
    /// `proposal_refund` type and recorded no proposal refunds, so there the call stores
    /// nothing.
    pub async fn instant_reward(
        &self,
        reward_type: &str,
        addr_id: i64,
        amount: i64,
        spendable_epoch: i64,
    ) {
        let table = match self.version {
            SchemaVersion::V13_2 if reward_type == "proposal_refund" => return,
            SchemaVersion::V13_2 => "instant_reward",
            _ => "reward_rest",
        };
        self.query(
            &format!(
                "INSERT INTO {table} (addr_id, type, amount, spendable_epoch) \
                 VALUES ($1::int8, $2::text::rewardtype, $3::int8, $4::int8)"
            ),
            &[&addr_id, &reward_type, &amount, &spendable_epoch],
        )
        .await;
    }

    /// A new `pool_hash` row; returns its id.
    pub async fn pool(&mut self) -> i64 {
        let hash = self.next_hash(-3);
        let raw = hash[..28].to_vec();
        let view = format!("pool1{}", hex(&hash[..8]));
        self.query(
            "INSERT INTO pool_hash (hash_raw, view) VALUES ($1::bytea, $2::text) RETURNING id",
            &[&raw, &view],
        )
        .await[0]
            .get(0)
    }

    /// A pool registration (or re-registration: any `pool_update`) certificate for `pool_id`
    /// with reward account `reward_addr_id`, at position `cert_index` of `tx_id`. 13.3+
    /// records the 500 ADA deposit on a pool's first registration and NULL on later ones.
    pub async fn pool_registration(
        &self,
        pool_id: i64,
        tx_id: i64,
        cert_index: i32,
        reward_addr_id: i64,
    ) {
        let (column, value) = if self.version == SchemaVersion::V13_2 {
            ("", "")
        } else {
            (
                ", deposit",
                ", CASE WHEN EXISTS (SELECT 1 FROM pool_update p WHERE p.hash_id = $1::int8) \
                   THEN NULL ELSE 500000000 END",
            )
        };
        let vrf = vec![0x76_u8; 32];
        self.query(
            &format!(
                "INSERT INTO pool_update (hash_id, cert_index, vrf_key_hash, pledge, \
                 active_epoch_no, meta_id, margin, fixed_cost, registered_tx_id, \
                 reward_addr_id{column}) \
                 SELECT $1::int8, $2::int4, $3::bytea, 1000000000, b.epoch_no + 2, NULL, \
                        0.01, 340000000, tx.id, $4::int8{value} \
                 FROM tx JOIN block b ON b.id = tx.block_id WHERE tx.id = $5::int8"
            ),
            &[&pool_id, &cert_index, &vrf, &reward_addr_id, &tx_id],
        )
        .await;
    }

    /// An owner `addr_id` of the `pool_update` certificate of `pool_id` at position
    /// `cert_index` of `tx_id` (db-sync writes one row per owner of every certificate).
    pub async fn pool_owner(&self, pool_id: i64, tx_id: i64, cert_index: i32, addr_id: i64) {
        self.query(
            "INSERT INTO pool_owner (addr_id, pool_update_id) \
             SELECT $1::int8, pu.id FROM pool_update pu \
             WHERE pu.hash_id = $2::int8 AND pu.registered_tx_id = $3::int8 \
               AND pu.cert_index = $4::int4",
            &[&addr_id, &pool_id, &tx_id, &cert_index],
        )
        .await;
    }

    /// A pool retirement certificate for `pool_id` naming `retiring_epoch`, at position
    /// `cert_index` of `tx_id`.
    pub async fn pool_retirement(
        &self,
        pool_id: i64,
        tx_id: i64,
        cert_index: i32,
        retiring_epoch: i64,
    ) {
        self.query(
            "INSERT INTO pool_retire (hash_id, cert_index, announced_tx_id, retiring_epoch) \
             VALUES ($1::int8, $2::int4, $3::int8, $4::int8)",
            &[&pool_id, &cert_index, &tx_id, &retiring_epoch],
        )
        .await;
    }

    /// A `reward` row (`leader`, `member` or `refund`) from pool `pool_id`. `earned_epoch` is
    /// generated by the schema: `spendable_epoch` for refunds, two epochs earlier otherwise.
    pub async fn reward(
        &self,
        reward_type: &str,
        addr_id: i64,
        amount: i64,
        spendable_epoch: i64,
        pool_id: i64,
    ) {
        self.query(
            "INSERT INTO reward (addr_id, type, amount, spendable_epoch, pool_id) \
             VALUES ($1::int8, $2::text::rewardtype, $3::int8, $4::int8, $5::int8)",
            &[&addr_id, &reward_type, &amount, &spendable_epoch, &pool_id],
        )
        .await;
    }

    /// The pool deposit refund db-sync writes for a retirement effective in `epoch`.
    pub async fn refund(&self, addr_id: i64, pool_id: i64, epoch: i64, amount: i64) {
        self.reward("refund", addr_id, amount, epoch, pool_id).await;
    }

    /// The `ada_pots` row of `epoch`, pointing at the epoch's first block (appended if the
    /// epoch has none yet). 13.2 stores the three deposits summed in `deposits`.
    pub async fn ada_pots(&mut self, epoch: i64, pots: AdaPots) {
        let (block_id, slot_no) = self.first_block_of(epoch).await;
        let (columns, deposits) = if self.version == SchemaVersion::V13_2 {
            ("deposits", "$6::int8 + $7::int8 + $8::int8")
        } else {
            (
                "deposits_stake, deposits_drep, deposits_proposal",
                "$6::int8, $7::int8, $8::int8",
            )
        };
        self.query(
            &format!(
                "INSERT INTO ada_pots (slot_no, epoch_no, treasury, reserves, rewards, utxo, \
                 {columns}, fees, block_id) \
                 VALUES ($1::int8, $2::int8, $3::int8, $4::int8, $5::int8, $9::int8, \
                 {deposits}, $10::int8, $11::int8)"
            ),
            &[
                &slot_no,
                &epoch,
                &pots.treasury,
                &pots.reserves,
                &pots.rewards,
                &pots.deposits_stake,
                &pots.deposits_drep,
                &pots.deposits_proposal,
                &pots.utxo,
                &pots.fees,
                &block_id,
            ],
        )
        .await;
    }

    /// The `epoch_param` row of `epoch` with `protocol_major` (mainnet-like values otherwise:
    /// 2 ADA key deposit, 500 ADA pool deposit, eMax 18), pointing at the epoch's first block
    /// (appended if the epoch has none yet).
    pub async fn epoch_param(&mut self, epoch: i64, protocol_major: i32) {
        let (block_id, _) = self.first_block_of(epoch).await;
        self.query(
            "INSERT INTO epoch_param (epoch_no, min_fee_a, min_fee_b, max_block_size, \
             max_tx_size, max_bh_size, key_deposit, pool_deposit, max_epoch, \
             optimal_pool_count, influence, monetary_expand_rate, treasury_growth_rate, \
             decentralisation, protocol_major, protocol_minor, min_utxo_value, min_pool_cost, \
             nonce, coins_per_utxo_size, block_id) \
             VALUES ($1::int8, 44, 155381, 90112, 16384, 1100, 2000000, 500000000, 18, 500, \
             0.3, 0.003, 0.2, 0, $2::int4, 0, 0, 170000000, NULL, 4310, $3::int8)",
            &[&epoch, &protocol_major, &block_id],
        )
        .await;
    }

    /// One `epoch_stake` row.
    pub async fn epoch_stake(&self, epoch: i64, addr_id: i64, pool_id: i64, amount: i64) {
        self.query(
            "INSERT INTO epoch_stake (addr_id, pool_id, amount, epoch_no) \
             VALUES ($1::int8, $2::int8, $3::int8, $4::int8)",
            &[&addr_id, &pool_id, &amount, &epoch],
        )
        .await;
    }

    /// Sets the `epoch_stake_progress` row of `epoch`.
    pub async fn epoch_stake_progress(&self, epoch: i64, completed: bool) {
        self.query(
            "INSERT INTO epoch_stake_progress (epoch_no, completed) VALUES ($1::int8, $2::bool) \
             ON CONFLICT (epoch_no) DO UPDATE SET completed = EXCLUDED.completed",
            &[&epoch, &completed],
        )
        .await;
    }

    /// The id and slot of the first block of `epoch`, appending one if there is none.
    async fn first_block_of(&mut self, epoch: i64) -> (i64, i64) {
        let existing = self
            .query(
                "SELECT id, slot_no::int8 FROM block WHERE epoch_no = $1::int8 \
                 ORDER BY id LIMIT 1",
                &[&epoch],
            )
            .await;
        if let Some(row) = existing.first() {
            return (row.get(0), row.get::<_, Option<i64>>(1).unwrap_or(0));
        }
        let id = self.block_in_epoch(epoch).await;
        let slot: Option<i64> = self
            .query(
                "SELECT slot_no::int8 FROM block WHERE id = $1::int8",
                &[&id],
            )
            .await[0]
            .get(0);
        (id, slot.unwrap_or(0))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_pots_add_up_to_the_supply() {
        assert_eq!(AdaPots::balanced().sum(), MAX_SUPPLY);
        assert!(AdaPots::balanced().utxo > 0);
    }
}
