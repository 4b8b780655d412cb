//! The one list of checks: every check the exporter runs, and on which cadence.
//!
//! Adding a check is its file, one line here, and its encoder in `metrics`. The scheduler
//! creates each registered check's store slot, so nothing else lists the checks.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::{
    AdaPotsCheck, BlockNumberGapsCheck, BlockTimeDisorderCheck, BlockTxCountsCheck,
    BlocksInFutureCheck, Cadence, Check, EpochStakeCheck, EpochTableCheck, GrestCheck, InfoCheck,
    IntegritySettings, MirCheck, PoolOwnersCheck, PoolRefundsCheck, RollbackCheck, SizeCheck,
    TipCheck, TxBalanceCheck, TxInDoubleSpendsCheck, WithdrawalsCheck,
};
use crate::config::Config;

/// Where checks are registered (the scheduler, or a test's stand-in).
pub trait Registry {
    /// Runs `check` on `cadence`.
    fn register<C: Check>(&mut self, check: C, cadence: Cadence);
}

/// Registers every check `config` asks for.
pub fn schedule(config: &Config, registry: &mut impl Registry) {
    let cadence = |interval| Cadence {
        interval,
        timeout: config.checks.check_timeout,
    };
    let tip = cadence(config.checks.tip_interval);
    let integrity = Cadence {
        interval: config.checks.integrity_interval,
        timeout: config.checks.integrity_timeout,
    };
    registry.register(TipCheck::new(config.chain_override.clone()), tip);
    registry.register(RollbackCheck::new(), tip);
    registry.register(InfoCheck, cadence(config.checks.info_interval));
    registry.register(GrestCheck, cadence(config.checks.grest_interval));
    registry.register(SizeCheck, cadence(config.checks.size_interval));
    // One gate for the integrity checks: they run one after another on one connection. A
    // run spends at most a quarter of its timeout on older windows of a pass, so the window
    // that overruns the budget still ends well before the timeout.
    let settings = IntegritySettings::new(config.checks.integrity_full_interval)
        .pass_budget(config.checks.integrity_timeout / 4)
        .gated(Arc::new(Semaphore::new(1)));
    registry.register(MirCheck::new(settings.clone()), integrity);
    registry.register(PoolRefundsCheck::new(settings.clone()), integrity);
    registry.register(
        AdaPotsCheck::new(settings.clone(), config.chain_override.clone()),
        integrity,
    );
    registry.register(BlockTxCountsCheck::new(settings.clone()), integrity);
    registry.register(PoolOwnersCheck::new(settings.clone()), integrity);
    registry.register(TxBalanceCheck::new(settings.clone()), integrity);
    registry.register(TxInDoubleSpendsCheck::new(settings.clone()), integrity);
    registry.register(WithdrawalsCheck::new(settings.clone()), integrity);
    registry.register(BlockNumberGapsCheck::new(settings.clone()), integrity);
    registry.register(BlockTimeDisorderCheck::new(settings.clone()), integrity);
    registry.register(BlocksInFutureCheck::new(settings.clone()), integrity);
    registry.register(EpochTableCheck::new(settings.clone()), integrity);
    registry.register(EpochStakeCheck::new(settings), integrity);
}
