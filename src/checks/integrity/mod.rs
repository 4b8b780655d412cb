//! The integrity checks (`mir`, `pool_refunds`, `ada_pots`, `epoch_stake`) and what they share.

pub mod ada_pots;
pub mod epoch_stake;
pub mod mir;
mod params;
pub mod pool_refunds;
mod settings;
mod sql;
mod state;

pub use ada_pots::{AdaPotsCheck, AdaPotsFindings};
pub use epoch_stake::{EpochStakeCheck, EpochStakeFindings};
pub use mir::{MirCheck, MirFindings, MirPot, MirTotals, Pot};
pub use pool_refunds::{PoolRefundFindings, PoolRefundsCheck, RefundTotals};
pub use settings::{IntegritySettings, PlanLog, QueryPlan};
pub use state::Coverage;
