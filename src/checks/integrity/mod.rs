//! The integrity checks: rules about the ledger data db-sync wrote, examined epoch by epoch.
//!
//! Each rule is one file that states only the rule: what it needs from the database, the SQL
//! that examines a range of epochs and how its rows become one partial result per epoch, and
//! how the partial results of every epoch sum into its findings (the [`Incremental`] trait).
//! [`IntegrityCheck`] runs every rule the same way: prerequisites (unmet: not applicable, and
//! the state is forgotten) → scope (which epochs this run examines, or not applicable while
//! the database holds no block) → examine → commit the fresh epochs → finish.
//!
//! - `incremental`: that trait and that check.
//! - `settings`: [`IntegritySettings`], the gate that runs the checks one at a time, and the
//!   plan log.
//! - `state`: the per-epoch results a check keeps between runs, the [`Scope`] of a run and the
//!   rollback detection that voids them.
//! - `sql`: the query helpers and the SQL the rules share.
//! - `params`: the protocol parameters by epoch.
//! - [`mir`], [`pool_refunds`], [`ada_pots`], [`block_tx_counts`], [`pool_owners`]: the
//!   incremental rules of the first wave and db-tool's BlockTxs and PoolOwner.
//! - [`tx_balance`] and [`tx_in_double_spends`]: the transaction-level rules (and, derived
//!   from them, the supply drift), sharing `utxo` (the `tx_out` variant, each epoch's
//!   transaction ids). [`withdrawals`]: withdrawals against the rewards spendable by then.
//! - [`block_number_gaps`], [`block_time_disorder`], [`epoch_table`]: incremental rules about
//!   blocks and the stored epoch rows.
//! - [`blocks_in_future`] compares with the clock, so it is a plain
//!   [`Check`](crate::checks::Check) that probes one index on every run; so is
//!   [`epoch_stake`], which reads one row of the tip epoch.

pub mod ada_pots;
pub mod block_number_gaps;
pub mod block_time_disorder;
pub mod block_tx_counts;
pub mod blocks_in_future;
pub mod epoch_stake;
pub mod epoch_table;
mod incremental;
pub mod mir;
mod params;
pub mod pool_owners;
pub mod pool_refunds;
mod settings;
mod sql;
mod state;
pub mod tx_balance;
pub mod tx_in_double_spends;
mod utxo;
pub mod withdrawals;

pub use ada_pots::{AdaPotsCheck, AdaPotsFindings};
pub use block_number_gaps::{BlockNumberGapFindings, BlockNumberGapsCheck};
pub use block_time_disorder::{BlockTimeDisorderCheck, BlockTimeDisorderFindings};
pub use block_tx_counts::{BlockTxCountFindings, BlockTxCountsCheck};
pub use blocks_in_future::{BlocksInFutureCheck, BlocksInFutureFindings};
pub use epoch_stake::{EpochStakeCheck, EpochStakeFindings};
pub use epoch_table::{EpochRowFault, EpochTableCheck, EpochTableFindings};
pub use incremental::{Examined, Incremental, IntegrityCheck, Prerequisites};
pub use mir::{MirCheck, MirFindings, MirPot, MirTotals, Pot};
pub use pool_owners::{PoolOwnerFindings, PoolOwnersCheck};
pub use pool_refunds::{PoolRefundFindings, PoolRefundsCheck, RefundTotals};
pub use settings::{IntegritySettings, PlanLog, QueryPlan};
pub use sql::Reader;
pub use state::{Coverage, Scope, GENESIS};
pub use tx_balance::{TxBalanceCheck, TxBalanceFindings};
pub use tx_in_double_spends::{DoubleSpendFindings, TxInDoubleSpendsCheck};
pub use withdrawals::{WithdrawalFindings, WithdrawalsCheck};
