//! `blocks_in_future`: blocks whose time is more than 60 s after now (db-tool's
//! BlockProperties "block times in the past").
//!
//! `block.time` is UTC in a `timestamp without time zone`. Comparing it with `now()` (a
//! `timestamptz`) would first read the column in the session's TimeZone, so on a database
//! whose default TimeZone is America/Los_Angeles every block of the last 7–8 hours would
//! count, and on Pacific/Kiritimati (UTC+14) nothing would; the check compares with
//! `now() AT TIME ZONE 'UTC'`, a zone-less UTC value, so the TimeZone does not matter. The
//! 60 s tolerate ordinary clock skew; a tip only seconds old is not in the future.
//!
//! "Now" is the database server's clock (`now()`, the start of the run's transaction). A
//! future block on a healthy chain usually means that clock (or the host's in general) is
//! behind, not that db-sync wrote a bad block: block times follow from slot numbers.
//!
//! Not an [`Incremental`](super::Incremental) rule: the answer changes as the clock advances
//! (a block stops being in the future without any row changing), so per-epoch results would
//! go stale, and re-evaluating remembered blocks would need state that a range probe makes
//! unnecessary. The one query counts the blocks after the cut-off through `idx_block_time`:
//! on a healthy database it reads no row at all, so every run is exact and costs one index
//! probe. That index is created only near the tip (stage 4); before it exists the count would
//! scan `block`, so the check is not applicable until then (during initial sync the blocks
//! are history anyway).

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::settings::IntegritySettings;
use super::sql::Reader;
use crate::checks::{Check, CheckError, CheckName, Context, Findings, Verdict};

/// The `blocks_in_future` check's findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlocksInFutureFindings {
    /// Blocks whose time is more than [`TOLERANCE_SECONDS`] after the database's clock.
    pub blocks: u64,
}

/// How far after now a block's time may be before it counts (clock skew).
pub const TOLERANCE_SECONDS: i64 = 60;

/// Blocks after now + `$1` seconds, both sides UTC without a zone: a range of
/// `idx_block_time`.
const FUTURE_SQL: &str = "SELECT count(*) FROM block \
     WHERE time > (now() AT TIME ZONE 'UTC') + make_interval(secs => $1::bigint)";

const TABLES: [&str; 1] = ["block"];
const INDEXES: [&str; 1] = ["idx_block_time"];

/// Counts the blocks in the future on every run.
pub struct BlocksInFutureCheck {
    settings: IntegritySettings,
}

impl BlocksInFutureCheck {
    /// A new check.
    pub fn new(settings: IntegritySettings) -> BlocksInFutureCheck {
        BlocksInFutureCheck { settings }
    }
}

impl Check for BlocksInFutureCheck {
    fn name(&self) -> CheckName {
        CheckName::BlocksInFuture
    }

    fn gate(&self) -> Option<Arc<Semaphore>> {
        self.settings.gate.clone()
    }

    async fn run(&mut self, ctx: Context<'_>) -> Result<Verdict, CheckError> {
        let db = Reader::of(&ctx, &self.settings);
        if let Some(reason) = db.missing_prerequisite(&TABLES, &INDEXES) {
            return Ok(Verdict::NotApplicable(reason));
        }
        let blocks: i64 = db.query_value(FUTURE_SQL, &[&TOLERANCE_SECONDS]).await?;
        Ok(Verdict::Found(Findings::BlocksInFuture(
            BlocksInFutureFindings {
                blocks: blocks.unsigned_abs(),
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_off_is_utc_without_a_zone() {
        assert!(FUTURE_SQL.contains("now() AT TIME ZONE 'UTC'"));
        assert!(!FUTURE_SQL.contains("time > now()"));
    }
}
