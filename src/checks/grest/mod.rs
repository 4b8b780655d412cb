//! `grest`: freshness of the Koios caches, read from `grest.control_table`.
//!
//! Koios instances keep their cache bookkeeping in a small key/value table (shared
//! reference §13). Keys ending in `_lbh` or `_block_height` hold block heights (their lag is
//! the tip minus the value, read in the same transaction), keys ending in `_last_updated`
//! hold UTC timestamps in the writer's `DateStyle` ([`timestamp`]),
//! `last_active_stake_validated_epoch` an epoch and `version` the Koios release. Values are
//! parsed here, not in SQL, so one oddly written row can neither fail the check nor vanish:
//! a value that is not what its key promises is kept as unreadable, and the health policy
//! says so. Other keys are not Koios routing inputs and are left alone. Without the `grest`
//! schema the check does not apply.

pub mod timestamp;

use super::{Check, CheckError, CheckName, Context, Findings, Verdict};
use timestamp::{parse_utc, FieldOrder};

/// The key holding the epoch of the active stake cache.
pub const ACTIVE_STAKE_KEY: &str = "last_active_stake_validated_epoch";
/// The key holding the last block the stake distribution cache accounted.
pub const STAKE_DISTRIBUTION_KEY: &str = "stake_distribution_lbh";
/// The key holding the pool history cache's last update.
pub const POOL_HISTORY_KEY: &str = "pool_history_cache_last_updated";

/// Longest part of an unreadable value that is kept (for `/health` and logs).
const SHOWN_VALUE_CHARS: usize = 40;

/// The Koios cache bookkeeping at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Grest {
    /// `version` row (Koios release).
    pub version: Option<String>,
    /// Tip block number, read with the table.
    pub tip_block_no: i64,
    /// Tip epoch, read with the table.
    pub tip_epoch_no: i64,
    /// (key, tip − last block height) for block-height keys, by key.
    pub lag_blocks: Vec<(String, i64)>,
    /// (key, unix seconds) for timestamp keys, by key.
    pub last_updates: Vec<(String, f64)>,
    /// `last_active_stake_validated_epoch`, when readable.
    pub active_stake_epoch: Option<i64>,
    /// (key, value as written, shortened) for keys whose value is not the number or
    /// timestamp the key promises, by key.
    pub unreadable: Vec<(String, String)>,
}

impl Grest {
    /// Lag in blocks of a block-height key.
    pub fn lag(&self, key: &str) -> Option<i64> {
        find(&self.lag_blocks, key)
    }

    /// Last update (unix seconds) of a timestamp key.
    pub fn last_update(&self, key: &str) -> Option<f64> {
        find(&self.last_updates, key)
    }

    /// The value of a key that could not be read, as written.
    pub fn unreadable(&self, key: &str) -> Option<&str> {
        self.unreadable
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.as_str())
    }
}

fn find<T: Copy>(pairs: &[(String, T)], key: &str) -> Option<T> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, value)| *value)
}

/// Reads `grest.control_table`.
#[derive(Default)]
pub struct GrestCheck;

const CONTROL_SQL: &str = "SELECT key::text, last_value::text FROM grest.control_table";
/// The tip, and the session's `DateStyle` for reading day-or-month-first timestamps.
const TIP_SQL: &str = "SELECT block_no::bigint, epoch_no::bigint, current_setting('DateStyle') \
     FROM block WHERE block_no IS NOT NULL ORDER BY id DESC LIMIT 1";

/// What a key's value should be.
enum Kind {
    Version,
    ActiveStakeEpoch,
    BlockHeight,
    Timestamp,
}

fn kind(key: &str) -> Option<Kind> {
    match key {
        "version" => Some(Kind::Version),
        ACTIVE_STAKE_KEY => Some(Kind::ActiveStakeEpoch),
        _ if key.ends_with("_lbh") || key.ends_with("_block_height") => Some(Kind::BlockHeight),
        _ if key.ends_with("_last_updated") => Some(Kind::Timestamp),
        _ => None,
    }
}

fn number(text: &str) -> Option<i64> {
    let text = text.trim();
    (!text.is_empty() && text.len() <= 18 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

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
        let (tip_block_no, tip_epoch_no): (i64, i64) = (tip.try_get(0)?, tip.try_get(1)?);
        let order = FieldOrder::of_datestyle(tip.try_get(2)?);
        let mut grest = Grest {
            version: None,
            tip_block_no,
            tip_epoch_no,
            lag_blocks: Vec::new(),
            last_updates: Vec::new(),
            active_stake_epoch: None,
            unreadable: Vec::new(),
        };
        let rows = ctx
            .tx
            .query(&ctx.tx.prepare_cached(CONTROL_SQL).await?, &[])
            .await?;
        for row in rows {
            let key: String = row.try_get(0)?;
            let text: Option<String> = row.try_get(1)?;
            let text = text.unwrap_or_default();
            let Some(kind) = kind(&key) else { continue };
            let read = match kind {
                Kind::Version => {
                    grest.version = Some(text.clone());
                    true
                }
                Kind::ActiveStakeEpoch => number(&text)
                    .map(|epoch| grest.active_stake_epoch = Some(epoch))
                    .is_some(),
                Kind::BlockHeight => number(&text)
                    .map(|height| grest.lag_blocks.push((key.clone(), tip_block_no - height)))
                    .is_some(),
                Kind::Timestamp => parse_utc(&text, order)
                    .map(|unix| grest.last_updates.push((key.clone(), unix)))
                    .is_some(),
            };
            if !read {
                grest
                    .unreadable
                    .push((key, text.chars().take(SHOWN_VALUE_CHARS).collect()));
            }
        }
        grest.lag_blocks.sort();
        grest.last_updates.sort_by(|a, b| a.0.cmp(&b.0));
        grest.unreadable.sort();
        Ok(Verdict::Found(Findings::Grest(grest)))
    }
}
