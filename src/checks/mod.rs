//! The checks: what each one asks the database, and the typed findings it returns.
//!
//! A check is a small state machine owned by its own scheduler task (so it can remember the
//! previous run without locks). Each run gets a read-only transaction with server-side
//! timeouts and returns a [`Verdict`]: findings to publish, or the reason the check does not
//! apply to this database. One file per check; the integrity checks (`mir`, `pool_refunds`,
//! `ada_pots`, `epoch_stake`) and what they share live in [`integrity`].

pub mod grest;
pub mod info;
pub mod integrity;
pub mod rollback;
mod schedule;
pub mod size;
pub mod tip;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Transaction;
use tokio::sync::Semaphore;

pub use crate::db::CheckError;
use crate::db::Schema;

pub use grest::{Grest, GrestCheck};
pub use info::{Info, InfoCheck};
pub use integrity::{
    AdaPotsCheck, AdaPotsFindings, BlockNumberGapFindings, BlockNumberGapsCheck,
    BlockTimeDisorderCheck, BlockTimeDisorderFindings, BlockTxCountFindings, BlockTxCountsCheck,
    BlocksInFutureCheck, BlocksInFutureFindings, Coverage, DoubleSpendFindings, EpochRowFault,
    EpochStakeCheck, EpochStakeFindings, EpochTableCheck, EpochTableFindings, IntegritySettings,
    MirCheck, MirFindings, MirPot, MirTotals, PlanLog, PoolOwnerFindings, PoolOwnersCheck,
    PoolRefundFindings, PoolRefundsCheck, Pot, QueryPlan, RefundTotals, TxBalanceCheck,
    TxBalanceFindings, TxInDoubleSpendsCheck, WithdrawalFindings, WithdrawalsCheck,
};
pub use rollback::{RollbackCheck, RollbackStats};
pub use schedule::{schedule, Registry};
pub use size::{DatabaseSize, SizeCheck};
pub use tip::{Tip, TipCheck};

/// Every check the exporter knows; the value of the `check` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckName {
    /// Newest block.
    Tip,
    /// Rollback detection.
    Rollback,
    /// Schema, network, epoch sync time.
    Info,
    /// Koios cache freshness (`grest.control_table`).
    Grest,
    /// MIR certificates vs instant rewards.
    Mir,
    /// Pool deposit refunds of effective retirements.
    PoolRefunds,
    /// The ada_pots supply invariant.
    AdaPots,
    /// Completeness of the tip epoch's stake distribution.
    EpochStake,
    /// Blocks' `tx_count` vs their `tx` rows.
    BlockTxCounts,
    /// Pool certificates without owners.
    PoolOwners,
    /// Transactions that do not balance.
    TxBalance,
    /// Outputs spent by more than one `tx_in` row.
    TxInDoubleSpends,
    /// Withdrawals beyond the rewards spendable by then.
    Withdrawals,
    /// Breaks in the numbering of consecutive main blocks.
    BlockNumberGaps,
    /// Main blocks not strictly later than their predecessor.
    BlockTimeDisorder,
    /// Blocks whose time is after now.
    BlocksInFuture,
    /// Stored epoch rows vs their blocks and transactions.
    EpochTable,
    /// Database and schema sizes, sessions by state.
    Size,
}

impl CheckName {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Tip => "tip",
            CheckName::Rollback => "rollback",
            CheckName::Info => "info",
            CheckName::Grest => "grest",
            CheckName::Mir => "mir",
            CheckName::PoolRefunds => "pool_refunds",
            CheckName::AdaPots => "ada_pots",
            CheckName::EpochStake => "epoch_stake",
            CheckName::BlockTxCounts => "block_tx_counts",
            CheckName::PoolOwners => "pool_owners",
            CheckName::TxBalance => "tx_balance",
            CheckName::TxInDoubleSpends => "tx_in_double_spends",
            CheckName::Withdrawals => "withdrawals",
            CheckName::BlockNumberGaps => "block_number_gaps",
            CheckName::BlockTimeDisorder => "block_time_disorder",
            CheckName::BlocksInFuture => "blocks_in_future",
            CheckName::EpochTable => "epoch_table",
            CheckName::Size => "size",
        }
    }
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a check found, by check. Typed, so that the metrics encoder, the health policy and
/// `/tip` each read exactly the fields they need.
#[derive(Clone, Debug, PartialEq)]
pub enum Findings {
    /// From [`TipCheck`].
    Tip(Tip),
    /// From [`RollbackCheck`].
    Rollback(RollbackStats),
    /// From [`InfoCheck`].
    Info(Info),
    /// From [`GrestCheck`].
    Grest(Grest),
    /// From [`MirCheck`].
    Mir(MirFindings),
    /// From [`PoolRefundsCheck`].
    PoolRefunds(PoolRefundFindings),
    /// From [`AdaPotsCheck`].
    AdaPots(AdaPotsFindings),
    /// From [`EpochStakeCheck`].
    EpochStake(EpochStakeFindings),
    /// From [`BlockTxCountsCheck`].
    BlockTxCounts(BlockTxCountFindings),
    /// From [`PoolOwnersCheck`].
    PoolOwners(PoolOwnerFindings),
    /// From [`TxBalanceCheck`].
    TxBalance(TxBalanceFindings),
    /// From [`TxInDoubleSpendsCheck`].
    TxInDoubleSpends(DoubleSpendFindings),
    /// From [`WithdrawalsCheck`].
    Withdrawals(WithdrawalFindings),
    /// From [`BlockNumberGapsCheck`].
    BlockNumberGaps(BlockNumberGapFindings),
    /// From [`BlockTimeDisorderCheck`].
    BlockTimeDisorder(BlockTimeDisorderFindings),
    /// From [`BlocksInFutureCheck`].
    BlocksInFuture(BlocksInFutureFindings),
    /// From [`EpochTableCheck`].
    EpochTable(EpochTableFindings),
    /// From [`SizeCheck`].
    Size(DatabaseSize),
}

impl Findings {
    /// How far an incremental integrity check's examination of the history got (`None` for
    /// the other checks).
    pub fn coverage(&self) -> Option<&Coverage> {
        match self {
            Findings::Mir(mir) => Some(&mir.coverage),
            Findings::PoolRefunds(refunds) => Some(&refunds.coverage),
            Findings::AdaPots(pots) => Some(&pots.coverage),
            Findings::BlockTxCounts(blocks) => Some(&blocks.coverage),
            Findings::PoolOwners(owners) => Some(&owners.coverage),
            Findings::TxBalance(balance) => Some(&balance.coverage),
            Findings::TxInDoubleSpends(spends) => Some(&spends.coverage),
            Findings::Withdrawals(found) => Some(&found.coverage),
            Findings::BlockNumberGaps(blocks) => Some(&blocks.coverage),
            Findings::BlockTimeDisorder(blocks) => Some(&blocks.coverage),
            Findings::EpochTable(epochs) => Some(&epochs.coverage),
            // Reads everything afresh on every run: nothing to cover.
            Findings::BlocksInFuture(_)
            | Findings::EpochStake(_)
            | Findings::Tip(_)
            | Findings::Rollback(_)
            | Findings::Info(_)
            | Findings::Grest(_)
            | Findings::Size(_) => None,
        }
    }

    /// Integrity faults these findings report (`None` for checks that are not integrity
    /// checks); the health policy marks the instance down on them when asked to.
    pub fn integrity_faults(&self) -> Option<u64> {
        // Counted: unpaid MIR payments, orphan instant rewards, missing pool refunds,
        // inconsistent or missing ada_pots epochs, 1 for a non-zero deviation of the newest
        // epoch, blocks with a wrong tx_count, unbalanced transactions, double-spent outputs,
        // accounts that withdrew too much, block number gaps, disordered block times and
        // mismatched stored epoch rows. Not counted: unclaimed refunds (the ledger's rule, not
        // an error), an incomplete stake distribution (normal early in an epoch), pool
        // certificates without owners (the ledger allows an empty owner set, so mainnet may
        // have a legitimate floor; the alert fires on an increase instead) and blocks in the
        // future (usually a clock behind, see below).
        match self {
            Findings::Mir(mir) => Some(
                Pot::ALL
                    .iter()
                    .map(|pot| {
                        let found = mir.totals.pot(*pot);
                        found.unpaid_payments + found.orphan_rewards
                    })
                    .sum(),
            ),
            Findings::PoolRefunds(refunds) => Some(refunds.totals.missing),
            Findings::AdaPots(pots) => Some(
                pots.inconsistent_epochs
                    + pots.missing_epochs
                    + u64::from(pots.deviation_lovelace != 0),
            ),
            Findings::EpochStake(_) => Some(0),
            Findings::BlockTxCounts(blocks) => Some(blocks.mismatches),
            Findings::PoolOwners(_) => Some(0),
            // Unbalanced transactions and double-spent outputs are lost or duplicated rows.
            Findings::TxBalance(txs) => Some(txs.mismatches),
            Findings::TxInDoubleSpends(spends) => Some(spends.double_spends),
            // Accounts that withdrew more than was spendable to them.
            Findings::Withdrawals(found) => Some(found.excess_accounts),
            Findings::BlockNumberGaps(blocks) => Some(blocks.gaps),
            Findings::BlockTimeDisorder(blocks) => Some(blocks.disordered),
            // A block in the future usually means a clock behind, not bad data, and it cures
            // itself as time passes: alerted on, but not an integrity fault.
            Findings::BlocksInFuture(_) => Some(0),
            Findings::EpochTable(epochs) => Some(epochs.mismatches),
            Findings::Tip(_)
            | Findings::Rollback(_)
            | Findings::Info(_)
            | Findings::Grest(_)
            | Findings::Size(_) => None,
        }
    }
}

/// The result of one successful run.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Publish these findings.
    Found(Findings),
    /// The check cannot apply to this database (with the reason, logged once).
    NotApplicable(String),
}

/// How a run ended; the `outcome` label of `dbsync_check_runs_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The check ran to the end (applicable or not).
    Success,
    /// The database refused, broke or is unreachable.
    Error,
    /// The server cancelled the query at the check's timeout (or the client gave up).
    Timeout,
}

impl Outcome {
    /// All outcomes, in exposition order.
    pub const ALL: [Outcome; 3] = [Outcome::Success, Outcome::Error, Outcome::Timeout];

    /// How a run with this result ended.
    pub fn of(result: &Result<Verdict, CheckError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(CheckError::Timeout(_)) => Outcome::Timeout,
            Err(_) => Outcome::Error,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
        }
    }
}

/// What a run may use.
pub struct Context<'a> {
    /// A read-only transaction with this check's timeouts set.
    pub tx: &'a Transaction<'a>,
    /// The probed schema.
    pub schema: &'a Schema,
}

/// A background check.
pub trait Check: Send + 'static {
    /// Its name (the `check` label).
    fn name(&self) -> CheckName;

    /// Whether the schema must be probed afresh before each run (the info check reports it).
    fn needs_fresh_schema(&self) -> bool {
        false
    }

    /// Checks that return the same gate run one at a time, and take a connection only once
    /// they hold it: long integrity runs then occupy at most one pooled connection, and the
    /// tip check never waits behind them.
    fn gate(&self) -> Option<Arc<Semaphore>> {
        None
    }

    /// One run.
    fn run(&mut self, ctx: Context<'_>)
        -> impl Future<Output = Result<Verdict, CheckError>> + Send;
}

/// Settings the scheduler applies to one check.
#[derive(Clone, Copy, Debug)]
pub struct Cadence {
    /// Time between the starts of two runs.
    pub interval: Duration,
    /// Longest run; enforced by the server (`statement_timeout`) and, as a backstop, the client.
    pub timeout: Duration,
}
