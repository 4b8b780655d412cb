//! The [`Incremental`] trait every per-epoch integrity rule implements, and the one
//! [`IntegrityCheck`] that runs any of them as a [`Check`]: prerequisites (unmet: not
//! applicable, and the state is forgotten) → begin (the tip, rollbacks, whether a pass over
//! the history starts; not applicable while the database holds no block) → for each window
//! of epochs the run examines: examine, commit → finish.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::settings::IntegritySettings;
use super::sql::{self, Reader};
use super::state::{Coverage, EpochState, Scope};
use crate::checks::{Check, CheckError, CheckName, Context, Verdict};

/// An integrity rule that is examined epoch by epoch; [`IntegrityCheck`] runs it.
///
/// A rule keeps nothing between runs: the check keeps its partial results, one per epoch, so
/// that a run re-examines only the newest epochs and still sums exactly what a full run would.
pub trait Incremental: Send + Sync + 'static {
    /// The check's name (the `check` label).
    const NAME: CheckName;
    /// One epoch's partial result.
    type Epoch: Send + Sync + 'static;
    /// What checking the prerequisites read that the examination needs (`()` for most rules).
    type Ready: Send;
    /// What the examination read, besides the epochs, that the summary needs (`()` for most
    /// rules).
    type Seen: Send;

    /// Whether the rule examines block by block: given [`Scope::after_block`], it examines
    /// only the window's blocks after that one, and what it finds adds to the epoch's earlier
    /// partial result ([`Incremental::add`]). An incremental run of such a rule then reads
    /// only the blocks written since the last run, not the whole tip epoch (on mainnet a few
    /// dozen blocks instead of up to 21 600 and their transactions).
    const BLOCKWISE: bool = false;

    /// Adds the partial result of an epoch's later blocks to that of its earlier blocks;
    /// called only for [`Incremental::BLOCKWISE`] rules.
    fn add(&self, epoch: &mut Self::Epoch, later: Self::Epoch) {
        let _ = (epoch, later);
    }

    /// Whether the rule can run on this database (tables, indexes, ledger data), with the
    /// reason when it cannot.
    fn prerequisites(
        &self,
        db: &Reader<'_>,
    ) -> impl Future<Output = Result<Prerequisites<Self::Ready>, CheckError>> + Send;

    /// Examines the epochs `scope.from ..= scope.to` (`scope.bounds()`), and the rows that
    /// belong to no epoch (the genesis block and its transactions, kept under [`GENESIS`](super::GENESIS))
    /// when `scope.genesis`. A run may call it more than once, for disjoint windows.
    fn examine(
        &self,
        db: &Reader<'_>,
        ready: &Self::Ready,
        scope: &Scope,
    ) -> impl Future<Output = Result<Examined<Self::Epoch, Self::Seen>, CheckError>> + Send;

    /// The verdict over the partial results of every epoch examined so far.
    fn finish(
        &self,
        epochs: &BTreeMap<i64, Self::Epoch>,
        seen: Self::Seen,
        coverage: Coverage,
    ) -> Verdict;
}

/// Whether a rule can run on this database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prerequisites<T> {
    /// It can, with what checking its prerequisites read.
    Met(T),
    /// It cannot, for this reason (logged once; its series are absent).
    Unmet(String),
}

impl From<Option<String>> for Prerequisites<()> {
    /// The rule cannot run for `why_not`, if there is one.
    fn from(why_not: Option<String>) -> Prerequisites<()> {
        why_not.map_or(Prerequisites::Met(()), Prerequisites::Unmet)
    }
}

/// What one run of [`Incremental::examine`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Examined<E, S = ()> {
    /// The partial result of every examined epoch that has something to report. An epoch left
    /// out has nothing (an earlier result for it is dropped).
    pub epochs: BTreeMap<i64, E>,
    /// What else the summary needs.
    pub seen: S,
}

impl<E> From<BTreeMap<i64, E>> for Examined<E> {
    /// The partial results of a rule whose summary needs nothing else.
    fn from(epochs: BTreeMap<i64, E>) -> Examined<E> {
        Examined { epochs, seen: () }
    }
}

/// Runs an [`Incremental`] rule as a [`Check`], keeping its per-epoch results between runs.
pub struct IntegrityCheck<R: Incremental> {
    rule: R,
    settings: IntegritySettings,
    state: EpochState<R::Epoch>,
}

impl<R: Incremental> IntegrityCheck<R> {
    /// A check of `rule` that has examined nothing yet.
    pub(super) fn of(rule: R, settings: IntegritySettings) -> IntegrityCheck<R> {
        IntegrityCheck {
            state: EpochState::new(settings.full_interval, settings.pass_budget),
            rule,
            settings,
        }
    }

    /// Partial results by epoch (epochs with nothing to report are absent).
    pub fn epochs(&self) -> &BTreeMap<i64, R::Epoch> {
        self.state.results()
    }
}

impl<R: Incremental + Default> IntegrityCheck<R> {
    /// A check that has examined nothing yet, of a rule without settings of its own.
    pub fn new(settings: IntegritySettings) -> IntegrityCheck<R> {
        IntegrityCheck::of(R::default(), settings)
    }
}

impl<R: Incremental> Check for IntegrityCheck<R> {
    fn name(&self) -> CheckName {
        R::NAME
    }

    fn gate(&self) -> Option<Arc<Semaphore>> {
        self.settings.gate.clone()
    }

    async fn run(&mut self, ctx: Context<'_>) -> Result<Verdict, CheckError> {
        let IntegrityCheck {
            rule,
            settings,
            state,
        } = self;
        let db = Reader::of(&ctx, settings);
        let ready = match rule.prerequisites(&db).await? {
            Prerequisites::Met(ready) => ready,
            Prerequisites::Unmet(reason) => {
                state.reset();
                return Ok(Verdict::NotApplicable(reason));
            }
        };
        let Some(mut run) = state.begin(&db, R::BLOCKWISE).await? else {
            state.reset();
            return Ok(Verdict::NotApplicable(sql::NO_BLOCK.into()));
        };
        let mut seen = None;
        while let Some(window) = state.next_window(&run) {
            let began = Instant::now();
            match rule.examine(&db, &ready, &window).await {
                Ok(Examined { epochs, seen: now }) => {
                    state.commit(
                        &mut run,
                        &window,
                        epochs,
                        began.elapsed(),
                        |epoch, later| {
                            rule.add(epoch, later);
                        },
                    );
                    seen = Some(now);
                }
                Err(error) => {
                    // The windows examined before stay committed: they came from the same
                    // snapshot. The pass goes on next run, in a smaller window.
                    state.failed(&run);
                    return Err(error);
                }
            }
        }
        let seen = seen.ok_or_else(|| CheckError::Data("a run examined no window".into()))?;
        Ok(rule.finish(state.results(), seen, state.coverage(&run)))
    }
}

/// The totals over every epoch, for rules whose partial results add up.
pub(super) fn total<T: Default>(epochs: &BTreeMap<i64, T>, add: fn(&mut T, &T)) -> T {
    let mut totals = T::default();
    for epoch in epochs.values() {
        add(&mut totals, epoch);
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_an_unmet_prerequisite() {
        assert_eq!(Prerequisites::from(None), Prerequisites::Met(()));
        assert_eq!(
            Prerequisites::from(Some("no table".to_owned())),
            Prerequisites::Unmet("no table".into())
        );
    }

    #[test]
    fn totals_add_every_epoch() {
        let epochs = BTreeMap::from([(3, 1_u64), (5, 2), (9, 4)]);
        assert_eq!(total(&epochs, |sum, epoch| *sum += epoch), 7);
        assert_eq!(
            total(&BTreeMap::new(), |sum: &mut u64, epoch| *sum += epoch),
            0
        );
    }
}
