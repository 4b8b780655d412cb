//! `tip`: the newest block, read through the primary key.
//!
//! `ORDER BY id DESC LIMIT 1` walks `block_pkey` backwards and stops at the first row;
//! `max(block_no)` or `max(time)` would need indexes that db-sync only creates near the tip.
//! The block time is a `timestamp without time zone` holding UTC, so it is turned into unix
//! seconds with `extract(epoch FROM time)`, which ignores the session's time zone.

use crate::chain::NetworkParams;

use super::{Check, CheckError, CheckName, Context, Findings, Verdict};

/// The tip as last read.
#[derive(Clone, Debug, PartialEq)]
pub struct Tip {
    /// `block.id` (grows faster than `block_no` when rows are replaced by rollbacks).
    pub id: i64,
    /// Block height.
    pub block_no: i64,
    /// Absolute slot.
    pub slot_no: i64,
    /// Epoch.
    pub epoch_no: i64,
    /// Block hash, hex.
    pub hash: String,
    /// Start of the block's slot, unix seconds.
    pub time_unix: i64,
    /// `meta.network_name`.
    pub network: Option<String>,
    /// Genesis constants for slot arithmetic: the command-line override, else the known
    /// network's; `None` for an unknown network without override.
    pub params: Option<NetworkParams>,
}

impl Tip {
    /// Seconds between the tip's slot time and `now`.
    pub fn age_seconds(&self, now_unix: f64) -> f64 {
        now_unix - self.time_unix as f64
    }
}

/// Reads the newest block.
pub struct TipCheck {
    chain_override: Option<NetworkParams>,
}

impl TipCheck {
    /// A tip check; `chain_override` replaces the network's genesis constants.
    pub fn new(chain_override: Option<NetworkParams>) -> TipCheck {
        TipCheck { chain_override }
    }
}

/// EBBs and the genesis row have no block number; the tip is the newest real block.
const TIP_SQL: &str = "SELECT id, block_no::bigint, slot_no::bigint, epoch_no::bigint, \
     encode(hash, 'hex'), extract(epoch FROM time)::bigint \
     FROM block WHERE block_no IS NOT NULL ORDER BY id DESC LIMIT 1";

impl Check for TipCheck {
    fn name(&self) -> CheckName {
        CheckName::Tip
    }

    async fn run(&mut self, ctx: Context<'_>) -> Result<Verdict, CheckError> {
        let statement = ctx.tx.prepare_cached(TIP_SQL).await?;
        let row = ctx
            .tx
            .query_opt(&statement, &[])
            .await?
            .ok_or_else(|| CheckError::Data("the block table holds no blocks yet".into()))?;
        let missing = |column: &str| CheckError::Data(format!("tip block has no {column}"));
        let network = ctx.schema.network.clone();
        let params = self
            .chain_override
            .clone()
            .or_else(|| network.as_deref().and_then(NetworkParams::known));
        Ok(Verdict::Found(Findings::Tip(Tip {
            id: row.try_get(0)?,
            block_no: row
                .try_get::<_, Option<i64>>(1)?
                .ok_or_else(|| missing("block_no"))?,
            slot_no: row
                .try_get::<_, Option<i64>>(2)?
                .ok_or_else(|| missing("slot_no"))?,
            epoch_no: row
                .try_get::<_, Option<i64>>(3)?
                .ok_or_else(|| missing("epoch_no"))?,
            hash: row.try_get(4)?,
            time_unix: row.try_get(5)?,
            network,
            params,
        })))
    }
}
