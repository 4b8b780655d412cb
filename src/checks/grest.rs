//! `grest`: freshness of the Koios caches, read from `grest.control_table`.
//!
//! Koios instances keep their cache bookkeeping in a small key/value table (shared
//! reference §13). Keys ending in `_lbh` or `_block_height` hold block heights (their lag is
//! the tip minus the value, read in the same transaction), keys ending in `_last_updated`
//! hold UTC timestamps, `last_active_stake_validated_epoch` an epoch and `version` the Koios
//! release. Timestamps and numbers are parsed in SQL, guarded by patterns, so a value some
//! cron job wrote oddly is skipped rather than failing the check. Without the `grest`
//! schema the check does not apply.

use super::{Check, CheckError, CheckName, Context, Findings, Verdict};

/// The Koios cache bookkeeping at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Grest {
    /// `version` row (Koios release).
    pub version: Option<String>,
    /// Tip block number, read with the table.
    pub tip_block_no: i64,
    /// Tip epoch, read with the table.
    pub tip_epoch_no: i64,
    /// (key, tip − last block height) for block-height keys.
    pub lag_blocks: Vec<(String, i64)>,
    /// (key, unix seconds) for timestamp keys.
    pub last_updates: Vec<(String, f64)>,
    /// `last_active_stake_validated_epoch`.
    pub active_stake_epoch: Option<i64>,
}

/// Reads `grest.control_table`.
#[derive(Default)]
pub struct GrestCheck;

const CONTROL_SQL: &str = "SELECT key::text, last_value::text, \
     CASE WHEN last_value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}' \
          THEN extract(epoch FROM replace(left(last_value, 19), 'T', ' ')::timestamp)::float8 END, \
     CASE WHEN last_value ~ '^[0-9]{1,18}$' THEN last_value::bigint END \
     FROM grest.control_table";
const TIP_SQL: &str = "SELECT block_no::bigint, epoch_no::bigint FROM block \
     WHERE block_no IS NOT NULL ORDER BY id DESC LIMIT 1";

impl Check for GrestCheck {
    fn name(&self) -> CheckName {
        CheckName::Grest
    }

    async fn run(&mut self, ctx: Context<'_>) -> Result<Verdict, CheckError> {
        if !ctx.schema.has_grest {
            return Ok(Verdict::NotApplicable(
                "no grest.control_table (not a Koios instance)".into(),
            ));
        }
        let tip = ctx
            .tx
            .query_opt(&ctx.tx.prepare_cached(TIP_SQL).await?, &[])
            .await?
            .ok_or_else(|| CheckError::Data("the block table holds no blocks yet".into()))?;
        let (tip_block_no, tip_epoch_no): (i64, i64) = (tip.get(0), tip.get(1));
        let mut grest = Grest {
            version: None,
            tip_block_no,
            tip_epoch_no,
            lag_blocks: Vec::new(),
            last_updates: Vec::new(),
            active_stake_epoch: None,
        };
        let rows = ctx
            .tx
            .query(&ctx.tx.prepare_cached(CONTROL_SQL).await?, &[])
            .await?;
        for row in rows {
            let key: String = row.get(0);
            let text: String = row.get(1);
            let timestamp: Option<f64> = row.get(2);
            let number: Option<i64> = row.get(3);
            match (key.as_str(), timestamp, number) {
                ("version", _, _) => grest.version = Some(text),
                ("last_active_stake_validated_epoch", _, Some(epoch)) => {
                    grest.active_stake_epoch = Some(epoch)
                }
                (k, _, Some(height)) if k.ends_with("_lbh") || k.ends_with("_block_height") => {
                    grest.lag_blocks.push((key, tip_block_no - height))
                }
                (k, Some(unix), _) if k.ends_with("_last_updated") => {
                    grest.last_updates.push((key, unix))
                }
                _ => {}
            }
        }
        grest.lag_blocks.sort();
        grest.last_updates.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Verdict::Found(Findings::Grest(grest)))
    }
}
