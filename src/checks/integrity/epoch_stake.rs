//! `epoch_stake`: whether the tip epoch's stake distribution is complete.
//!
//! Since 13.2 db-sync writes an epoch's `epoch_stake` rows incrementally during the previous
//! epoch and marks the distribution done in `epoch_stake_progress` (unique on `epoch_no`, a
//! few hundred rows). Until the tip epoch's row says `completed`, per-epoch stake queries
//! (Koios' active stake, pool history) return partial answers. Releases without the table do
//! not apply; nor does a database without ledger data (`ada_pots` empty), where
//! `epoch_stake` stays empty by design.
//!
//! Not an [`Incremental`](super::Incremental) rule: its answer is one row of the tip epoch,
//! which no older epoch can change, so there is nothing to remember between runs, and the
//! incremental state's boundary lookups would only add queries.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::settings::IntegritySettings;
use super::sql::{self, Reader};
use crate::checks::{Check, CheckError, CheckName, Context, Findings, Verdict};

/// The `epoch_stake` check's findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochStakeFindings {
    /// The tip epoch.
    pub epoch_no: i64,
    /// Whether `epoch_stake_progress` marks its distribution completed.
    pub complete: bool,
}

/// Reads the tip epoch's `epoch_stake_progress` row.
pub struct EpochStakeCheck {
    settings: IntegritySettings,
}

impl EpochStakeCheck {
    /// A new check.
    pub fn new(settings: IntegritySettings) -> EpochStakeCheck {
        EpochStakeCheck { settings }
    }
}

const PROGRESS_SQL: &str = "SELECT completed FROM epoch_stake_progress \
     WHERE epoch_no = $1::bigint ORDER BY id DESC LIMIT 1";

impl Check for EpochStakeCheck {
    fn name(&self) -> CheckName {
        CheckName::EpochStake
    }

    fn gate(&self) -> Option<Arc<Semaphore>> {
        self.settings.gate.clone()
    }

    async fn run(&mut self, ctx: Context<'_>) -> Result<Verdict, CheckError> {
        let db = Reader::of(&ctx, &self.settings);
        let why_not = db.missing_prerequisite(&["epoch_stake_progress", "ada_pots"], &[]);
        if let Some(reason) = db.or_ledger_missing(why_not).await? {
            return Ok(Verdict::NotApplicable(reason));
        }
        let Some(epoch_no) = db.tip_epoch().await? else {
            return Ok(Verdict::NotApplicable(sql::NO_BLOCK.into()));
        };
        let complete = match db.query(PROGRESS_SQL, &[&epoch_no]).await?.first() {
            Some(row) => row.try_get::<_, bool>(0)?,
            None => false,
        };
        Ok(Verdict::Found(Findings::EpochStake(EpochStakeFindings {
            epoch_no,
            complete,
        })))
    }
}
