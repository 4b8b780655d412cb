//! The per-epoch incremental state of an integrity check, and the rollback detection that
//! voids it.
//!
//! On a mainnet-sized database the whole history is examined once; later runs re-examine only
//! the epochs that can have changed since the last run (from the newest completed epoch at
//! that time up to the tip epoch). Each check keeps one partial result per epoch, so the
//! totals of an incremental run are exactly those a full run would produce. The whole history
//! is examined again every `--integrity.full-interval`, after a rollback across an epoch
//! boundary (the tip epoch went down, or the first block of the last examined tip epoch is
//! gone or replaced), and when the schema changed under the exporter (an upgrade).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_postgres::types::ToSql;

use super::sql::Reader;
use crate::checks::CheckError;

/// Which epochs the last run covered, published with the findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// Tip epoch at the run.
    pub tip_epoch: i64,
    /// Whether the run examined the whole history.
    pub full_run: bool,
    /// First epoch the run (re-)examined; older epochs came from earlier runs.
    pub from_epoch: i64,
    /// How often the whole history is examined again.
    pub full_interval: Duration,
}

/// The first block of an epoch, remembered to notice a rollback across that boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Mark {
    epoch: i64,
    block_id: i64,
    hash: Vec<u8>,
}

/// The key under which a rule keeps the partial result of the rows that belong to no epoch
/// (the genesis block and its transactions): before every epoch.
pub const GENESIS: i64 = -1;

/// What one window of a run examines.
#[derive(Clone, Debug)]
pub struct Scope {
    /// The tip's epoch.
    pub tip_epoch: i64,
    /// First epoch to (re-)examine.
    pub from: i64,
    /// Last epoch to examine (inclusive; the tip epoch, or lower for a window of a pass over
    /// the history).
    pub to: i64,
    /// Whether the rows that belong to no epoch (the genesis block and its transactions) are
    /// examined too: in the window that reaches epoch 0.
    pub genesis: bool,
    /// Whether the whole history is examined.
    pub full: bool,
    started: Instant,
    mark: Mark,
    stage_two: i64,
}

impl Scope {
    /// The parameters of a rule's SQL: `$1` is the first epoch to examine, `$2` the last.
    pub fn bounds(&self) -> [&(dyn ToSql + Sync); 2] {
        [&self.from, &self.to]
    }

    /// How the run is described in the findings.
    pub fn coverage(&self, full_interval: Duration) -> Coverage {
        Coverage {
            tip_epoch: self.tip_epoch,
            full_run: self.full,
            from_epoch: self.from,
            full_interval,
        }
    }
}

/// A check's partial results, one per epoch, and what it needs to know to continue.
#[derive(Debug)]
pub(crate) struct EpochState<T> {
    full_interval: Duration,
    last_full: Option<Instant>,
    /// The first block of the tip epoch at the last run.
    mark: Option<Mark>,
    stage_two: Option<i64>,
    results: BTreeMap<i64, T>,
}

/// Whether a remembered block is still there, through the primary key.
const BLOCK_HASH_SQL: &str = "SELECT hash FROM block WHERE id = $1::bigint";
/// The first block of an epoch. `idx_block_epoch_no` finds the epoch's blocks (at most an
/// epoch's worth, 21 600 on mainnet); `id + 0` keeps the planner from walking `block_pkey` in
/// id order and filtering on the epoch, which for a recent epoch would read the whole table.
const EPOCH_FIRST_BLOCK_SQL: &str = "SELECT id, hash FROM block \
     WHERE epoch_no = $1::bigint ORDER BY id + 0 LIMIT 1";

impl<T> EpochState<T> {
    pub fn new(full_interval: Duration) -> EpochState<T> {
        EpochState {
            full_interval,
            last_full: None,
            mark: None,
            stage_two: None,
            results: BTreeMap::new(),
        }
    }

    /// Forgets everything: the next run examines the whole history.
    pub fn reset(&mut self) {
        self.last_full = None;
        self.mark = None;
        self.stage_two = None;
        self.results.clear();
    }

    /// Decides what this run examines; `None` when the database holds no block yet.
    /// Changes nothing: a failed run leaves the state as it was.
    pub async fn scope(&self, db: &Reader<'_>) -> Result<Option<Scope>, CheckError> {
        let started = Instant::now();
        let Some(tip_epoch) = db.tip_epoch().await? else {
            return Ok(None);
        };
        let mark_intact = match &self.mark {
            Some(mark) => match db.query(BLOCK_HASH_SQL, &[&mark.block_id]).await?.first() {
                Some(row) => row.try_get::<_, Vec<u8>>(0)? == mark.hash,
                None => false,
            },
            None => false,
        };
        let full_because = match (&self.mark, self.last_full) {
            (None, _) | (_, None) => Some("first run"),
            _ if self.stage_two != Some(db.schema.stage_two) => Some("the schema changed"),
            (Some(mark), _) if tip_epoch < mark.epoch => Some("rollback: the tip epoch went down"),
            _ if !mark_intact => Some("rollback across an epoch boundary"),
            (_, Some(last)) if started.duration_since(last) >= self.full_interval => {
                Some("periodic full re-check")
            }
            _ => None,
        };
        if let Some(reason) = full_because {
            if reason.starts_with("rollback") {
                tracing::info!(reason, tip_epoch, "examining the whole history again");
            } else {
                tracing::debug!(reason, tip_epoch, "examining the whole history");
            }
        }
        let mark = match &self.mark {
            Some(mark) if mark_intact && mark.epoch == tip_epoch => mark.clone(),
            _ => {
                let rows = db.query(EPOCH_FIRST_BLOCK_SQL, &[&tip_epoch]).await?;
                let row = rows.first().ok_or_else(|| {
                    CheckError::Data(format!("epoch {tip_epoch} of the tip has no block"))
                })?;
                Mark {
                    epoch: tip_epoch,
                    block_id: row.try_get(0)?,
                    hash: row.try_get(1)?,
                }
            }
        };
        let from = match (&self.mark, full_because) {
            // The newest epoch that was complete at the last run, and everything after it.
            (Some(last), None) => (last.epoch - 1).max(0),
            _ => 0,
        };
        Ok(Some(Scope {
            tip_epoch,
            from,
            to: tip_epoch,
            genesis: full_because.is_some(),
            full: full_because.is_some(),
            started,
            mark,
            stage_two: db.schema.stage_two,
        }))
    }

    /// Stores the results of a successful run: all of them after a full run, otherwise those
    /// from `scope.from` on (every epoch the run examined, including those that now have no
    /// entry because nothing was found).
    pub fn commit(&mut self, scope: Scope, fresh: BTreeMap<i64, T>) {
        if scope.full {
            self.results = fresh;
            self.last_full = Some(scope.started);
        } else {
            drop(self.results.split_off(&scope.from));
            self.results.extend(fresh);
        }
        self.mark = Some(scope.mark);
        self.stage_two = Some(scope.stage_two);
    }

    /// The partial results by epoch.
    pub fn results(&self) -> &BTreeMap<i64, T> {
        &self.results
    }

    /// How often the whole history is examined again.
    pub fn full_interval(&self) -> Duration {
        self.full_interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(from: i64, full: bool) -> Scope {
        Scope {
            tip_epoch: 10,
            from,
            to: 10,
            genesis: full,
            full,
            started: Instant::now(),
            mark: Mark {
                epoch: 10,
                block_id: 1,
                hash: vec![1],
            },
            stage_two: 44,
        }
    }

    #[test]
    fn an_incremental_commit_replaces_only_the_examined_epochs() {
        let mut state = EpochState::new(Duration::from_secs(60));
        state.commit(
            scope(0, true),
            BTreeMap::from([(3, 'a'), (5, 'b'), (8, 'c')]),
        );
        // Epoch 8 had a finding before and has none now: it must disappear, not linger.
        state.commit(scope(5, false), BTreeMap::from([(5, 'B'), (9, 'd')]));
        assert_eq!(
            state.results(),
            &BTreeMap::from([(3, 'a'), (5, 'B'), (9, 'd')])
        );
        state.commit(scope(0, true), BTreeMap::from([(1, 'z')]));
        assert_eq!(state.results(), &BTreeMap::from([(1, 'z')]));
    }
}
