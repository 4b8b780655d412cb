//! The per-epoch incremental state of an integrity check: its partial results, the pass over
//! the history it is making, and the rollback detection that voids them.
//!
//! The whole history is examined in a *pass*: window by window from the tip epoch down to
//! epoch 0 (and the genesis rows), newest first so the metric is meaningful soon. A run keeps
//! examining older windows for its budget (a quarter of `--integrity.timeout`), and a pass
//! over a mainnet-sized history may span several runs, resuming where it stopped; windows
//! grow while they are quick and shrink when one is slow or fails. Between passes, runs
//! re-examine only the epochs that can have changed since the last run (from the last run's
//! tip epoch up to the tip epoch). Each check keeps one partial result per
//! epoch, so the totals of an incremental run are exactly those a full run would produce.
//!
//! A new pass starts every `--integrity.full-interval`, after a rollback across an epoch
//! boundary (the tip epoch went down, or the first block of the last examined tip epoch is
//! gone or replaced) — both keep the known results while the pass replaces them — and when
//! the schema changed under the exporter (an upgrade), which forgets them.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_postgres::types::ToSql;

use super::sql::Reader;
use crate::checks::CheckError;

/// How far the examination of the history got, published with the findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// Tip epoch at the run.
    pub tip_epoch: i64,
    /// Whether the run examined the whole history (a pass that began and ended in it).
    pub full_run: bool,
    /// Lowest epoch the run (re-)examined; older epochs came from earlier runs.
    pub from_epoch: i64,
    /// Lowest epoch from which on every epoch up to the tip has been examined (by this pass or
    /// an earlier, complete one); `None` before the first window. 0 once a first pass is done.
    pub covered_from: Option<i64>,
    /// How often the whole history is examined again.
    pub full_interval: Duration,
}

impl Coverage {
    /// The share of the epochs up to the tip (0..=1) whose results are known: what
    /// `dbsync_integrity_coverage_ratio` says while a first pass is under way.
    pub fn ratio(&self) -> f64 {
        match self.covered_from {
            None => 0.0,
            Some(from) if self.tip_epoch < 0 => f64::from(u8::from(from <= 0)),
            // Epoch counts are far below 2^52: exact as f64.
            Some(from) => {
                let epochs = (self.tip_epoch + 1) as f64;
                ((self.tip_epoch - from.max(0) + 1).max(0) as f64 / epochs).clamp(0.0, 1.0)
            }
        }
    }
}

/// The first block of an epoch, remembered to notice a rollback across that boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Mark {
    epoch: i64,
    block_id: i64,
    hash: Vec<u8>,
}

/// A block remembered by id and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    block_id: i64,
    hash: Vec<u8>,
}

/// The key under which a rule keeps the partial result of the rows that belong to no epoch
/// (the genesis block and its transactions): before every epoch.
pub const GENESIS: i64 = -1;

/// One window of epochs a run examines.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Only blocks with a greater id, for a rule that examines block by block
    /// ([`Incremental::BLOCKWISE`](super::Incremental::BLOCKWISE)): the window's earlier
    /// blocks were examined by the last run, and what the rule finds now adds to that.
    pub after_block: Option<i64>,
}

impl Scope {
    /// [`Scope::after_block`] as an SQL bound: blocks with an id above it (-1: all blocks).
    pub fn after_block_id(&self) -> i64 {
        self.after_block.unwrap_or(-1)
    }

    /// The parameters of a rule's SQL: `$1` is the first epoch to examine, `$2` the last.
    pub fn bounds(&self) -> [&(dyn ToSql + Sync); 2] {
        [&self.from, &self.to]
    }

    /// Whether the window reaches the tip epoch.
    fn reaches_tip(&self) -> bool {
        self.to >= self.tip_epoch
    }
}

/// A pass over the history, from the tip down to epoch 0, window by window, possibly over
/// several runs.
#[derive(Clone, Copy, Debug)]
struct Pass {
    /// Epochs from here up are done; the next window ends just below.
    below: i64,
    started: Instant,
}

/// What a run decided at its start, and how far it got.
#[derive(Debug)]
pub(crate) struct Run {
    tip_epoch: i64,
    started: Instant,
    mark: Mark,
    /// The newest block in this run's snapshot.
    newest: Seen,
    /// Examine the newest epochs only after this block (the last run's newest block, still
    /// there; block-wise rules only).
    after_block: Option<i64>,
    stage_two: i64,
    /// First epoch of the newest epochs to re-examine first (an incremental run), until done.
    newest_from: Option<i64>,
    /// Windows of the pass examined so far.
    pass_windows: u32,
    examined_from: i64,
    full_run: bool,
}

/// Why a run starts a pass over the whole history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Restart {
    /// Nothing known is trusted any more: results and coverage are forgotten.
    Forget(&'static str),
    /// The known results stay (they are still the best knowledge) while a new pass replaces
    /// them, newest first.
    Recheck(&'static str),
}

/// A check's partial results, one per epoch, and what it needs to know to continue.
#[derive(Debug)]
pub(crate) struct EpochState<T> {
    full_interval: Duration,
    /// How long a run keeps examining older windows of a pass after its first window.
    budget: Duration,
    /// The first block of the tip epoch at the last run.
    mark: Option<Mark>,
    /// The newest block at the last run that examined the tip epoch.
    newest: Option<Seen>,
    stage_two: Option<i64>,
    results: BTreeMap<i64, T>,
    pass: Option<Pass>,
    /// When the last complete pass began.
    last_full: Option<Instant>,
    covered_from: Option<i64>,
    /// Epochs per window of a pass: doubled while windows are quick, halved when one is slow
    /// or fails (a statement timeout), so a big history is walked in steps the database bears.
    window: i64,
}

/// Epochs in the first window of a pass.
const FIRST_WINDOW: i64 = 4;
/// The largest window: more than any network's history, so a small database is one window.
const MAX_WINDOW: i64 = 4096;

/// Whether a remembered block is still there, through the primary key.
const BLOCK_HASH_SQL: &str = "SELECT hash FROM block WHERE id = $1::bigint";
/// The first block of an epoch. `idx_block_epoch_no` finds the epoch's blocks (at most an
/// epoch's worth, 21 600 on mainnet); `id + 0` keeps the planner from walking `block_pkey` in
/// id order and filtering on the epoch, which for a recent epoch would read the whole table.
const EPOCH_FIRST_BLOCK_SQL: &str = "SELECT id, hash FROM block \
     WHERE epoch_no = $1::bigint ORDER BY id + 0 LIMIT 1";

/// Whether the block `block_id` is still there with this hash, through the primary key.
async fn still_there(db: &Reader<'_>, block_id: i64, hash: &[u8]) -> Result<bool, CheckError> {
    Ok(
        match db.query(BLOCK_HASH_SQL, &[&block_id]).await?.first() {
            Some(row) => row.try_get::<_, Vec<u8>>(0)? == hash,
            None => false,
        },
    )
}

impl<T> EpochState<T> {
    /// A state that knows nothing; runs keep examining a pass's older windows for `budget`.
    pub fn new(full_interval: Duration, budget: Duration) -> EpochState<T> {
        EpochState {
            full_interval,
            budget,
            mark: None,
            newest: None,
            stage_two: None,
            results: BTreeMap::new(),
            pass: None,
            last_full: None,
            covered_from: None,
            window: FIRST_WINDOW,
        }
    }

    /// Forgets everything: the next run starts a pass over the whole history.
    pub fn reset(&mut self) {
        self.mark = None;
        self.newest = None;
        self.stage_two = None;
        self.results.clear();
        self.pass = None;
        self.last_full = None;
        self.covered_from = None;
        self.window = FIRST_WINDOW;
    }

    /// Starts a run: reads the tip, notices rollbacks and schema changes, and starts a pass
    /// over the history when one is due. `None` while the database holds no block yet. A
    /// `blockwise` rule's incremental run examines only the blocks after the last run's
    /// newest one, if that is still there.
    pub async fn begin(
        &mut self,
        db: &Reader<'_>,
        blockwise: bool,
    ) -> Result<Option<Run>, CheckError> {
        let started = Instant::now();
        let (Some(tip_epoch), Some((newest_id, newest_hash))) =
            (db.tip_epoch().await?, db.newest_block().await?)
        else {
            return Ok(None);
        };
        let mark_intact = match &self.mark {
            Some(mark) => still_there(db, mark.block_id, &mark.hash).await?,
            None => false,
        };
        let restart = match &self.mark {
            None => Some(Restart::Forget("first run")),
            Some(_) if self.stage_two != Some(db.schema.stage_two) => {
                Some(Restart::Forget("the schema changed"))
            }
            Some(mark) if tip_epoch < mark.epoch => {
                Some(Restart::Recheck("rollback: the tip epoch went down"))
            }
            Some(_) if !mark_intact => Some(Restart::Recheck("rollback across an epoch boundary")),
            Some(_)
                if self.pass.is_none()
                    && self
                        .last_full
                        .is_none_or(|last| started.duration_since(last) >= self.full_interval) =>
            {
                Some(Restart::Recheck("periodic full re-check"))
            }
            Some(_) => None,
        };
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
        let after_block = match (&self.newest, restart) {
            (Some(seen), None)
                if blockwise && still_there(db, seen.block_id, &seen.hash).await? =>
            {
                Some(seen.block_id)
            }
            _ => None,
        };
        let newest_from = match restart {
            // The last run's tip epoch, and everything after it: the epochs before were
            // complete then, and a rollback into them would have removed the first block of
            // that tip epoch (a restart above). Data a rule reads for epoch E that db-sync
            // writes later (the boundary into E + 1) arrives with a block of a newer epoch,
            // and then E is examined again here.
            None => self.mark.as_ref().map(|last| last.epoch),
            Some(restart) => {
                let (Restart::Forget(reason) | Restart::Recheck(reason)) = restart;
                if reason.starts_with("rollback") {
                    tracing::info!(reason, tip_epoch, "examining the whole history again");
                } else {
                    tracing::debug!(reason, tip_epoch, "examining the whole history");
                }
                if let Restart::Forget(_) = restart {
                    self.reset();
                }
                self.pass = Some(Pass {
                    below: tip_epoch + 1,
                    started,
                });
                None
            }
        };
        Ok(Some(Run {
            tip_epoch,
            started,
            mark,
            newest: Seen {
                block_id: newest_id,
                hash: newest_hash,
            },
            after_block,
            stage_two: db.schema.stage_two,
            newest_from,
            pass_windows: 0,
            examined_from: tip_epoch,
            full_run: false,
        }))
    }

    /// The next window this run examines: first the newest epochs (an incremental run), then
    /// older windows of a pass in progress while the run's budget lasts (one always: every
    /// run moves the pass on). `None` when the run is done.
    pub fn next_window(&self, run: &Run) -> Option<Scope> {
        if let Some(from) = run.newest_from {
            return Some(Scope {
                tip_epoch: run.tip_epoch,
                from,
                to: run.tip_epoch,
                genesis: false,
                after_block: run.after_block,
            });
        }
        let pass = self.pass?;
        if pass.below <= 0 || (run.pass_windows > 0 && run.started.elapsed() >= self.budget) {
            return None;
        }
        let from = (pass.below - self.window).max(0);
        Some(Scope {
            tip_epoch: run.tip_epoch,
            from,
            to: pass.below - 1,
            genesis: from == 0,
            after_block: None,
        })
    }

    /// Stores the results of one examined window, and moves the pass on; `took` is how long
    /// the examination took. They replace everything known about the window's epochs
    /// (including epochs that now have no entry because nothing was found) — or, when the
    /// window held only the blocks after the last run's newest one, are `add`ed to it.
    pub fn commit(
        &mut self,
        run: &mut Run,
        window: &Scope,
        fresh: BTreeMap<i64, T>,
        took: Duration,
        add: impl Fn(&mut T, T),
    ) {
        if window.after_block.is_some() {
            for (epoch, later) in fresh {
                match self.results.entry(epoch) {
                    Entry::Occupied(mut known) => add(known.get_mut(), later),
                    Entry::Vacant(slot) => {
                        slot.insert(later);
                    }
                }
            }
        } else {
            let first = if window.genesis { GENESIS } else { window.from };
            // A window that reaches the tip also drops what a rollback removed above it.
            let last = if window.reaches_tip() {
                i64::MAX
            } else {
                window.to
            };
            self.results
                .retain(|epoch, _| !(first..=last).contains(epoch));
            self.results.extend(fresh);
        }
        if window.reaches_tip() {
            self.mark = Some(run.mark.clone());
            self.newest = Some(run.newest.clone());
            self.stage_two = Some(run.stage_two);
        }
        run.examined_from = run.examined_from.min(window.from);
        if run.newest_from.take().is_some() {
            return;
        }
        run.pass_windows += 1;
        self.adapt(took);
        let Some(pass) = self.pass.as_mut() else {
            return;
        };
        pass.below = window.from;
        let started = pass.started;
        self.covered_from = Some(
            self.covered_from
                .map_or(window.from, |c| c.min(window.from)),
        );
        if window.from == 0 {
            run.full_run = started == run.started;
            self.last_full = Some(started);
            self.pass = None;
        }
    }

    /// A window failed (most likely a statement timeout): the next pass window is smaller.
    pub fn failed(&mut self, run: &Run) {
        if run.newest_from.is_none() {
            self.window = (self.window / 2).max(1);
        }
    }

    /// Doubles the pass window after a quick one, halves it after a slow one.
    fn adapt(&mut self, took: Duration) {
        if took < self.budget / 4 {
            self.window = (self.window * 2).min(MAX_WINDOW);
        } else if took > self.budget / 2 {
            self.window = (self.window / 2).max(1);
        }
    }

    /// How far the examination got, after `run`.
    pub fn coverage(&self, run: &Run) -> Coverage {
        Coverage {
            tip_epoch: run.tip_epoch,
            full_run: run.full_run,
            from_epoch: run.examined_from,
            covered_from: self.covered_from,
            full_interval: self.full_interval,
        }
    }

    /// The partial results by epoch.
    pub fn results(&self) -> &BTreeMap<i64, T> {
        &self.results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tip_epoch: i64, newest_from: Option<i64>) -> Run {
        Run {
            tip_epoch,
            started: Instant::now(),
            mark: Mark {
                epoch: tip_epoch,
                block_id: 1,
                hash: vec![1],
            },
            newest: Seen {
                block_id: 9,
                hash: vec![9],
            },
            after_block: None,
            stage_two: 44,
            newest_from,
            pass_windows: 0,
            examined_from: tip_epoch,
            full_run: false,
        }
    }

    fn start_pass(state: &mut EpochState<char>, tip_epoch: i64) -> Run {
        let started = Instant::now();
        state.pass = Some(Pass {
            below: tip_epoch + 1,
            started,
        });
        let mut run = run(tip_epoch, None);
        run.started = started;
        run
    }

    fn add(known: &mut char, later: char) {
        *known = later.max(*known);
    }

    /// Examines every window the run asks for, with results from `found` (by epoch).
    fn examine_all(
        state: &mut EpochState<char>,
        run: &mut Run,
        found: &BTreeMap<i64, char>,
    ) -> Vec<(i64, i64)> {
        let mut windows = Vec::new();
        while let Some(window) = state.next_window(run) {
            let first = if window.genesis { GENESIS } else { window.from };
            let fresh = found
                .range(first..=window.to)
                .map(|(k, v)| (*k, *v))
                .collect();
            windows.push((window.from, window.to));
            state.commit(run, &window, fresh, Duration::ZERO, add);
        }
        windows
    }

    #[test]
    fn a_pass_walks_from_the_tip_down_in_growing_windows_and_covers_genesis() {
        let mut state = EpochState::new(Duration::from_secs(60), Duration::from_secs(30));
        let found = BTreeMap::from([(GENESIS, 'g'), (3, 'a'), (40, 'b')]);
        let mut run = start_pass(&mut state, 40);
        let windows = examine_all(&mut state, &mut run, &found);
        assert_eq!(windows, [(37, 40), (29, 36), (13, 28), (0, 12)]);
        assert_eq!(state.results(), &found);
        let coverage = state.coverage(&run);
        assert!(coverage.full_run);
        assert_eq!((coverage.from_epoch, coverage.covered_from), (0, Some(0)));
        assert_eq!(coverage.ratio(), 1.0);
        assert!(state.pass.is_none());
    }

    #[test]
    fn a_pass_without_budget_resumes_over_several_runs_and_says_how_far_it_got() {
        let mut state = EpochState::new(Duration::from_secs(60), Duration::ZERO);
        let found = BTreeMap::from([(GENESIS, 'g'), (5, 'a'), (19, 'b')]);
        let mut first = start_pass(&mut state, 19);
        assert_eq!(examine_all(&mut state, &mut first, &found), [(16, 19)]);
        let coverage = state.coverage(&first);
        assert!(!coverage.full_run);
        assert_eq!(coverage.covered_from, Some(16));
        assert_eq!(coverage.ratio(), 0.2);
        // Each later run re-examines the newest epochs first, then one older window.
        let mut second = run(20, Some(18));
        assert_eq!(
            examine_all(&mut state, &mut second, &found),
            [(18, 20), (12, 15)]
        );
        assert_eq!(state.coverage(&second).covered_from, Some(12));
        let mut windows = Vec::new();
        let mut last = None;
        while state.pass.is_some() {
            let mut later = run(20, Some(19));
            windows.extend(examine_all(&mut state, &mut later, &found));
            last = Some(later);
        }
        assert_eq!(
            windows,
            [(19, 20), (8, 11), (19, 20), (4, 7), (19, 20), (0, 3)]
        );
        let coverage = state.coverage(&last.unwrap());
        assert!(!coverage.full_run, "the pass began in an earlier run");
        assert_eq!(coverage.ratio(), 1.0);
        assert_eq!(state.results(), &found);
    }

    #[test]
    fn a_window_replaces_only_its_epochs_and_the_newest_drops_what_a_rollback_removed() {
        let mut state = EpochState::new(Duration::from_secs(60), Duration::from_secs(30));
        state.results = BTreeMap::from([(GENESIS, 'g'), (3, 'a'), (5, 'b'), (8, 'c'), (12, 'x')]);
        let mut newest = run(10, Some(5));
        let window = state.next_window(&newest).unwrap();
        assert_eq!((window.from, window.to, window.genesis), (5, 10, false));
        // Epoch 8 had a finding and has none now: it must disappear, not linger; 12 is above
        // the tip after a rollback.
        state.commit(
            &mut newest,
            &window,
            BTreeMap::from([(5, 'B'), (9, 'd')]),
            Duration::ZERO,
            add,
        );
        assert_eq!(
            state.results(),
            &BTreeMap::from([(GENESIS, 'g'), (3, 'a'), (5, 'B'), (9, 'd')])
        );
        assert!(state.next_window(&newest).is_none(), "no pass in progress");
    }

    #[test]
    fn slow_or_failed_windows_shrink_and_quick_ones_grow() {
        let mut state: EpochState<char> =
            EpochState::new(Duration::from_secs(60), Duration::from_secs(40));
        state.adapt(Duration::from_secs(1));
        assert_eq!(state.window, 8);
        state.adapt(Duration::from_secs(15));
        assert_eq!(
            state.window, 8,
            "between a quarter and half the budget: kept"
        );
        state.adapt(Duration::from_secs(25));
        assert_eq!(state.window, 4);
        let run = start_pass(&mut state, 10);
        for _ in 0..5 {
            state.failed(&run);
        }
        assert_eq!(state.window, 1, "never below one epoch");
    }

    #[test]
    fn coverage_ratio_is_the_share_of_epochs_known() {
        let coverage = |tip_epoch, covered_from| Coverage {
            tip_epoch,
            full_run: false,
            from_epoch: 0,
            covered_from,
            full_interval: Duration::ZERO,
        };
        assert_eq!(coverage(9, None).ratio(), 0.0);
        assert_eq!(coverage(9, Some(5)).ratio(), 0.5);
        assert_eq!(coverage(9, Some(0)).ratio(), 1.0);
        assert_eq!(coverage(0, Some(0)).ratio(), 1.0);
    }
}
