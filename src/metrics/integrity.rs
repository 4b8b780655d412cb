//! The integrity families: MIR payouts, pool deposit refunds, the `ada_pots` supply
//! invariant, stake snapshot completeness, blocks' transaction counts and pool owners.
//!
//! Every family is written only while its check applies and has findings, so a database where
//! a check cannot run shows `dbsync_check_applicable{check} 0` and none of its series. Values
//! are integers end to end (lovelace is summed in SQL `numeric` and decoded exactly) and are
//! written as i64 gauges, which the text format prints without rounding.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use crate::checks::{CheckName, Findings, Pot};

use super::{gauge, gauges, human, noted_gauges, Scrape};

pub(super) fn encode(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    encode_mir(encoder, scrape)?;
    encode_pool_refunds(encoder, scrape)?;
    encode_ada_pots(encoder, scrape)?;
    encode_epoch_stake(encoder, scrape)?;
    encode_block_tx_counts(encoder, scrape)?;
    encode_pool_owners(encoder, scrape)?;
    encode_tx_rules(encoder, scrape)?;
    encode_withdrawals(encoder, scrape)?;
    encode_block_order(encoder, scrape)?;
    encode_blocks_in_future(encoder, scrape)?;
    encode_epoch_table(encoder, scrape)?;
    encode_coverage(encoder, scrape)
}

/// How far each incremental check's pass over the history got: below 1 only while a first
/// pass over a long history is spread over several runs.
fn encode_coverage(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    let series: Vec<_> = scrape
        .checks
        .iter()
        .filter_map(|check| {
            let coverage = check.state.findings.as_deref()?.coverage()?;
            Some(([("check", check.name.as_str())], coverage.ratio()))
        })
        .collect();
    if series.is_empty() {
        return Ok(());
    }
    gauges(
        encoder,
        "dbsync_integrity_coverage_ratio",
        "Share of the epochs up to the tip (0-1) an integrity check has examined: its first pass over a long history is spread over several runs, newest epochs first, and its counts cover only this share until it reaches 1.",
        series,
    )
}

/// Counts and lovelace as exact i64 gauge values (saturating; no real value comes close).
fn int(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// "Cached: …" sentence of the HELP texts: how often the check refreshes the value.
fn cached(scrape: &Scrape, name: CheckName, full_interval: std::time::Duration) -> String {
    let every = scrape
        .checks
        .iter()
        .find(|check| check.name == name)
        .map_or_else(|| "?".into(), |check| human(check.cadence.interval));
    format!(
        "Cached: the {name} check refreshes it every {every} (new epochs only; the whole history every {}, and after a rollback across an epoch boundary).",
        human(full_interval)
    )
}

fn encode_mir(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    let Some(Findings::Mir(mir)) = scrape.findings(CheckName::Mir) else {
        return Ok(());
    };
    let cached = cached(scrape, CheckName::Mir, mir.coverage.full_interval);
    let per_pot = |value: fn(&crate::checks::MirPot) -> i64| {
        Pot::ALL
            .iter()
            .map(move |pot| ([("pot", pot.as_str())], value(mir.totals.pot(*pot))))
    };
    gauges(
        encoder,
        "dbsync_mir_unpaid_payments",
        &format!("MIR payments (credential, epoch) owed to a credential registered at the epoch boundary that have no instant reward, by source pot. {cached}"),
        per_pot(|found| int(found.unpaid_payments)),
    )?;
    gauges(
        encoder,
        "dbsync_mir_unpaid_lovelace",
        &format!("Lovelace owed by the unpaid MIR payments, by source pot. {cached}"),
        per_pot(|found| found.unpaid_lovelace),
    )?;
    gauges(
        encoder,
        "dbsync_mir_orphan_rewards",
        &format!("Instant rewards of type reserves/treasury without a MIR certificate for that credential in the previous epoch (epochs before Conway only), by pot. {cached}"),
        per_pot(|found| int(found.orphan_rewards)),
    )
}

fn encode_pool_refunds(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    let Some(Findings::PoolRefunds(refunds)) = scrape.findings(CheckName::PoolRefunds) else {
        return Ok(());
    };
    let cached = cached(
        scrape,
        CheckName::PoolRefunds,
        refunds.coverage.full_interval,
    );
    let totals = &refunds.totals;
    noted_gauges(
        encoder,
        &cached,
        &[
            (
                "dbsync_pool_refunds_missing",
                "Effective pool retirements whose reward account was registered at the boundary but has no refund reward row.",
                int(totals.missing),
            ),
            (
                "dbsync_pool_refunds_missing_lovelace",
                "Pool deposits of the missing refunds, in lovelace.",
                totals.missing_lovelace,
            ),
            (
                "dbsync_pool_refunds_unclaimed",
                "Effective pool retirements whose reward account was not registered at the boundary: the deposit went to the treasury (informational, not a fault).",
                int(totals.unclaimed),
            ),
        ],
    )
}

fn encode_ada_pots(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    let Some(Findings::AdaPots(pots)) = scrape.findings(CheckName::AdaPots) else {
        return Ok(());
    };
    let cached = cached(scrape, CheckName::AdaPots, pots.coverage.full_interval);
    let deviation =
        i64::try_from(pots.deviation_lovelace).unwrap_or(if pots.deviation_lovelace < 0 {
            i64::MIN
        } else {
            i64::MAX
        });
    noted_gauges(
        encoder,
        &cached,
        &[
            (
                "dbsync_ada_pots_deviation_lovelace",
                "Sum of the newest ada_pots row (treasury + reserves + rewards + utxo + deposits + fees) minus the 45e15 lovelace maximum supply; 0 when it balances.",
                deviation,
            ),
            (
                "dbsync_ada_pots_inconsistent_epochs",
                "Epochs whose ada_pots sum differs from the 45e15 lovelace maximum supply.",
                int(pots.inconsistent_epochs),
            ),
            (
                "dbsync_ada_pots_missing_epochs",
                "Shelley-era epochs up to the tip epoch without an ada_pots row.",
                int(pots.missing_epochs),
            ),
        ],
    )
}

fn encode_epoch_stake(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    let Some(Findings::EpochStake(stake)) = scrape.findings(CheckName::EpochStake) else {
        return Ok(());
    };
    let every = scrape
        .checks
        .iter()
        .find(|check| check.name == CheckName::EpochStake)
        .map_or_else(|| "?".into(), |check| human(check.cadence.interval));
    gauge(
        encoder,
        "dbsync_epoch_stake_complete",
        &format!("1 when epoch_stake_progress marks the tip epoch's stake distribution completed, else 0. Cached: the epoch_stake check refreshes it every {every}."),
        i64::from(stake.complete),
    )
}

fn encode_block_tx_counts(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    let Some(Findings::BlockTxCounts(blocks)) = scrape.findings(CheckName::BlockTxCounts) else {
        return Ok(());
    };
    let cached = cached(
        scrape,
        CheckName::BlockTxCounts,
        blocks.coverage.full_interval,
    );
    noted_gauges(
        encoder,
        &cached,
        &[(
            "dbsync_block_tx_count_mismatches",
            "Blocks (the genesis row and Byron EBBs included) whose tx_count differs from the number of their tx rows.",
            int(blocks.mismatches),
        )],
    )
}

fn encode_pool_owners(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    let Some(Findings::PoolOwners(owners)) = scrape.findings(CheckName::PoolOwners) else {
        return Ok(());
    };
    let cached = cached(scrape, CheckName::PoolOwners, owners.coverage.full_interval);
    noted_gauges(
        encoder,
        &cached,
        &[(
            "dbsync_pool_updates_without_owner",
            "Pool registration and update certificates (pool_update rows) without any pool_owner row.",
            int(owners.updates_without_owner),
        )],
    )
}

/// An exact signed lovelace value as an i64 gauge (saturating).
fn signed(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

/// The supply drift, derived from the two transaction-level checks by the identity of
/// dbtool-parity §6.3: genesis − (UTxO + fees + deposits + donations − withdrawals) = Σ
/// per-tx imbalance − Σ value of double-spent outputs. Known only while `tx_balance` has
/// findings and the double spends are known too: found by `tx_in_double_spends`, or 0 by
/// construction in the consumed variant (one spender per output). `None` otherwise (before
/// stage 4's `idx_tx_in_tx_out_id`, or before the double-spend check's first run).
fn supply_drift(scrape: &Scrape) -> Option<i128> {
    let Some(Findings::TxBalance(balance)) = scrape.findings(CheckName::TxBalance) else {
        return None;
    };
    let double_spent = match scrape.findings(CheckName::TxInDoubleSpends) {
        Some(Findings::TxInDoubleSpends(spends)) => spends.double_spent_lovelace,
        _ if balance.consumed_variant => 0,
        _ => return None,
    };
    Some(balance.imbalance_lovelace - double_spent)
}

fn encode_tx_rules(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    if let Some(Findings::TxBalance(balance)) = scrape.findings(CheckName::TxBalance) {
        let cached = cached(scrape, CheckName::TxBalance, balance.coverage.full_interval);
        noted_gauges(
            encoder,
            &cached,
            &[(
                "dbsync_tx_balance_mismatches",
                "Non-genesis transactions with a recorded deposit whose inputs + withdrawals differ from outputs + fee + deposit (+ treasury donation if the scripts passed), or whose out_sum differs from the sum of their outputs.",
                int(balance.mismatches),
            )],
        )?;
        if let Some(drift) = supply_drift(scrape) {
            noted_gauges(
                encoder,
                &format!("Derived from the tx_balance and tx_in_double_spends checks. {cached}"),
                &[(
                    "dbsync_supply_drift_lovelace",
                    "Genesis supply minus (UTxO + fees + deposits + treasury donations - withdrawals), signed, in lovelace: the sum of the per-transaction imbalances minus the value of double-spent outputs.",
                    signed(drift),
                )],
            )?;
        }
    }
    let Some(Findings::TxInDoubleSpends(spends)) = scrape.findings(CheckName::TxInDoubleSpends)
    else {
        return Ok(());
    };
    let cached = cached(
        scrape,
        CheckName::TxInDoubleSpends,
        spends.coverage.full_interval,
    );
    noted_gauges(
        encoder,
        &cached,
        &[(
            "dbsync_tx_in_double_spends",
            "Outputs referenced by more than one tx_in row.",
            int(spends.double_spends),
        )],
    )
}

fn encode_withdrawals(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    let Some(Findings::Withdrawals(found)) = scrape.findings(CheckName::Withdrawals) else {
        return Ok(());
    };
    let cached = cached(scrape, CheckName::Withdrawals, found.coverage.full_interval);
    noted_gauges(
        encoder,
        &cached,
        &[(
            "dbsync_withdrawal_excess_accounts",
            "Stake addresses whose withdrawals up to some epoch exceed the rewards spendable to them by that epoch (reward plus instant rewards: MIR, treasury withdrawals, refunds).",
            int(found.excess_accounts),
        )],
    )
}

fn encode_block_order(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    if let Some(Findings::BlockNumberGaps(blocks)) = scrape.findings(CheckName::BlockNumberGaps) {
        let cached = cached(
            scrape,
            CheckName::BlockNumberGaps,
            blocks.coverage.full_interval,
        );
        noted_gauges(
            encoder,
            &cached,
            &[(
                "dbsync_block_number_gaps",
                "Consecutive main blocks (ordered by block_no, then id; EBBs and the genesis row left out) whose block numbers do not differ by exactly 1.",
                int(blocks.gaps),
            )],
        )?;
    }
    let Some(Findings::BlockTimeDisorder(blocks)) = scrape.findings(CheckName::BlockTimeDisorder)
    else {
        return Ok(());
    };
    let cached = cached(
        scrape,
        CheckName::BlockTimeDisorder,
        blocks.coverage.full_interval,
    );
    noted_gauges(
        encoder,
        &cached,
        &[(
            "dbsync_block_time_disorder",
            "Main blocks (ordered by block_no, then id) whose time is not strictly later than their predecessor's.",
            int(blocks.disordered),
        )],
    )
}

fn encode_blocks_in_future(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    let Some(Findings::BlocksInFuture(future)) = scrape.findings(CheckName::BlocksInFuture) else {
        return Ok(());
    };
    let every = scrape
        .checks
        .iter()
        .find(|check| check.name == CheckName::BlocksInFuture)
        .map_or_else(|| "?".into(), |check| human(check.cadence.interval));
    gauge(
        encoder,
        "dbsync_blocks_in_future",
        &format!("Blocks whose time is more than 60 s after the database server's clock (both UTC). Usually a clock behind, not bad data. Cached: the blocks_in_future check refreshes it every {every}."),
        int(future.blocks),
    )
}

fn encode_epoch_table(encoder: &mut DescriptorEncoder, scrape: &Scrape) -> fmt::Result {
    let Some(Findings::EpochTable(epochs)) = scrape.findings(CheckName::EpochTable) else {
        return Ok(());
    };
    let cached = cached(scrape, CheckName::EpochTable, epochs.coverage.full_interval);
    noted_gauges(
        encoder,
        &cached,
        &[(
            "dbsync_epoch_table_mismatches",
            "Finished epochs whose stored row (epoch table up to 13.7.1, epoch_finalized from 13.7.2) is missing or differs from their blocks and transactions in out_sum, fees, tx_count, blk_count, start_time or end_time.",
            int(epochs.mismatches),
        )],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_saturate_instead_of_wrapping() {
        assert_eq!(int(5_u64), 5);
        assert_eq!(int(u64::MAX), i64::MAX);
        assert_eq!(int(-45_000_000_000_000_000_i128), -45_000_000_000_000_000);
        assert_eq!(int(i128::MAX), i64::MAX);
    }
}
