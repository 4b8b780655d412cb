//! `rollback`: notices when blocks the exporter saw are gone or replaced.
//!
//! db-sync deletes and re-inserts in one transaction, so a 1–2 block fork often leaves the
//! tip height unchanged: only the hashes tell. The check remembers the newest
//! [`WINDOW`] (height → hash) pairs and, each run, re-reads that height range through
//! `idx_block_block_no`. A height that vanished or changed hash is a rollback; its depth is
//! the number of remembered blocks lost, from the old tip down to the lowest changed height.
//! A rollback deeper than the window is reported with the window's depth (a lower bound).

use std::collections::BTreeMap;

use super::{Check, CheckError, CheckName, Context, Findings, Verdict};

/// How many recent blocks are remembered.
pub const WINDOW: i64 = 50;

/// Rollbacks seen since the exporter started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RollbackStats {
    /// Rollbacks detected.
    pub total: u64,
    /// Depth in blocks of the most recent one (0 before the first).
    pub last_depth: u64,
}

/// Detects rollbacks between runs.
#[derive(Default)]
pub struct RollbackCheck {
    window: BTreeMap<i64, Vec<u8>>,
    stats: RollbackStats,
}

impl RollbackCheck {
    /// A check with an empty memory.
    pub fn new() -> RollbackCheck {
        RollbackCheck::default()
    }
}

const NEWEST_SQL: &str = "SELECT block_no::bigint, hash FROM block \
     WHERE block_no IS NOT NULL ORDER BY id DESC LIMIT 50";
const RANGE_SQL: &str = "SELECT block_no::bigint, hash FROM block \
     WHERE block_no BETWEEN $1::bigint AND $2::bigint";

impl Check for RollbackCheck {
    fn name(&self) -> CheckName {
        CheckName::Rollback
    }

    async fn run(&mut self, ctx: Context<'_>) -> Result<Verdict, CheckError> {
        if let (Some((&low, _)), Some((&high, _))) =
            (self.window.first_key_value(), self.window.last_key_value())
        {
            let statement = ctx.tx.prepare_cached(RANGE_SQL).await?;
            let current: BTreeMap<i64, Vec<u8>> = ctx
                .tx
                .query(&statement, &[&low, &high])
                .await?
                .into_iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<_, tokio_postgres::Error>>()?;
            let lowest_changed = self
                .window
                .iter()
                .find(|(height, hash)| current.get(*height) != Some(*hash))
                .map(|(height, _)| *height);
            if let Some(lowest) = lowest_changed {
                let depth = (high - lowest + 1) as u64;
                self.stats.total += 1;
                self.stats.last_depth = depth;
                tracing::warn!(
                    depth,
                    from_height = lowest,
                    old_tip = high,
                    "rollback detected"
                );
            }
        }
        let statement = ctx.tx.prepare_cached(NEWEST_SQL).await?;
        self.window = ctx
            .tx
            .query(&statement, &[])
            .await?
            .into_iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, tokio_postgres::Error>>()?;
        Ok(Verdict::Found(Findings::Rollback(self.stats.clone())))
    }
}
