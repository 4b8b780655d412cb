//! Where the ADA goes: `tx_in`, `tx_out`, `tx.fee`, `tx.deposit`, `tx.out_sum` and
//! `tx.treasury_donation` for every generated transaction, described compactly enough that
//! the load expands it server-side (`load::write_txs`) and that every transaction balances:
//! `inputs + withdrawals = outputs + fee + deposit (+ donation of a valid tx)`.
//!
//! # The chain of change
//! Every generated transaction `t` spends the *change* output (index 0) of the transaction
//! before it — the newest unspent output — and the first one spends the genesis reservoir
//! ([`crate::GENESIS_RESERVOIR`]). Its own change is
//!
//! `B(t) = B(t − 1) − DRAIN − extra(t)`, with `B(first − 1) = reservoir`,
//!
//! where `extra(t)` is the part of the transaction's costs paid from the change: its positive
//! deposit and its donation (for the phase-2-invalid traps a number that makes their collateral
//! return the next change, see [`Invalid`]). Output 1 (the payment) takes the rest:
//!
//! `out1(t) = DRAIN − fee + withdrawals + refund (−deposit when negative) + extra input value
//!            (+ out1(t − 1) when t is the second transaction of its block, which spends it)`.
//!
//! So `B` is a prefix sum that only the sparse `extra` terms make irregular: the load gets,
//! per chunk of transactions, `B` before the chunk (computed here) and adds a window sum over
//! the chunk's few non-zero extras. Everything irregular is in [`Utxo::adjustments`], a few
//! hundred thousand entries at mainnet scale (one per certificate transaction), loaded into a
//! keyed staging table the bulk statement joins.
//!
//! Withdrawals are not decided here: they are derived in SQL from the reward rows actually
//! written (see `load::write_withdrawals`), which keeps them within the spendable rewards even
//! when a fault removes a reward, and enter `out1` through the same staging table.
//!
//! Every output is spent at most once: change by the next transaction, payments of the first
//! transaction of a block by the second, genesis outputs 1–4 by the traps below; the rest stays
//! unspent (the UTxO).

use std::collections::BTreeMap;

use crate::network::Network;

use super::layout::{EpochBlocks, Layout};
use super::ledger::Ledger;

/// What each generated transaction moves from its change to its payment output (10 ADA):
/// larger than any fee, so a payment output is never negative.
pub const DRAIN: i64 = 10_000_000;
/// Base fee; the transaction at block index `i` pays `FEE_BASE + FEE_STEP · i`.
pub const FEE_BASE: i64 = 170_000;
/// See [`FEE_BASE`].
pub const FEE_STEP: i64 = 1_000;
/// Donation of the valid Conway donation traps (2 ADA).
pub const DONATION: i64 = 2_000_000;
/// The unapplied donation of the invalid Conway trap (5 ADA).
pub const INVALID_DONATION: i64 = 5_000_000;
/// Collateral taken by the Babbage and Conway invalid traps (`totalCollateral`, 1.5 ADA).
pub const COLLATERAL_FEE: i64 = 1_500_000;

/// Fee of a generic transaction at block index `bi`.
pub fn fee_at(bi: i64) -> i64 {
    FEE_BASE + FEE_STEP * bi
}

/// A phase-2-invalid transaction (`valid_contract = false`): db-sync stores its collateral
/// inputs in `tx_in`, its collateral return in `tx_out` (at index 2, after the two regular
/// outputs the body declared), the collateral taken as `fee`, deposit 0, no withdrawals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// `(tx_id, index)` of the collateral inputs.
    pub collateral: Vec<(i64, i32)>,
    /// Value of the collateral return (None: Alonzo, no return).
    pub collateral_return: Option<i64>,
    /// `tx.fee`: the collateral taken.
    pub fee: i64,
    /// `tx.treasury_donation` from the body, not applied (13.3+ only).
    pub donation: i64,
    /// `tx.out_sum`: the return, or 0.
    pub out_sum: i64,
}

/// Everything irregular about one transaction (absent = a plain transaction).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxAdj {
    /// `tx.deposit` (signed: deregistrations make it negative).
    pub deposit: i64,
    /// Write `tx.deposit` as NULL (the transaction balances with deposit 0).
    pub deposit_null: bool,
    /// `tx.treasury_donation` of a valid transaction.
    pub donation: i64,
    /// Added to the recorded fee only (the `tx-imbalance` fault).
    pub fee_delta: i64,
    /// The change input, when it is not `(t − 1, 0)`.
    pub change_from: Option<(i64, i32)>,
    /// One more input `(tx_id, index, value)` whose value goes to the payment output.
    pub extra_input: Option<(i64, i32, i64)>,
    /// A phase-2-invalid transaction, written apart from the bulk.
    pub invalid: Option<Invalid>,
    /// What the change pays beyond [`DRAIN`] (see the module doc).
    pub extra: i64,
}

/// Declared (not spent) inputs of valid Plutus transactions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Declared {
    /// `collateral_tx_in`: `(tx_in_id, tx_out_id, tx_out_index)`.
    pub collateral: Vec<(i64, i64, i32)>,
    /// `reference_tx_in`: same shape.
    pub reference: Vec<(i64, i64, i32)>,
    /// `collateral_tx_out`: `(tx_id, index, value)` (declared collateral returns).
    pub collateral_out: Vec<(i64, i32, i64)>,
}

/// The UTxO side of a plan.
#[derive(Clone, Debug, Default)]
pub struct Utxo {
    /// `tx.id` of the genesis transactions, one per [`crate::GENESIS_OUTPUTS`] entry.
    pub genesis_txs: Vec<i64>,
    /// First generated `tx.id`.
    pub first_tx: i64,
    /// Irregular transactions by id.
    pub adjustments: BTreeMap<i64, TxAdj>,
    /// Declared collateral and reference inputs.
    pub declared: Declared,
    /// `(stake_address.id, tx_id)` of the zero withdrawal trap (an address without rewards).
    pub zero_withdrawal: Option<(i64, i64)>,
    /// Where the traps are, in words (for the docs and tests).
    pub traps: Vec<String>,
}

impl Utxo {
    /// The change `B(t)` of transaction `t` (`t = first − 1`: the reservoir).
    pub fn change_of(&self, t: i64) -> i64 {
        let extras: i64 = self
            .adjustments
            .range(self.first_tx..=t)
            .map(|(_, a)| a.extra)
            .sum();
        crate::GENESIS_RESERVOIR - DRAIN * (t - self.first_tx + 1) - extras
    }

    /// The change before each of `firsts` (ascending tx ids): `B(first − 1)`, in one pass.
    pub fn change_before(&self, firsts: &[i64]) -> Vec<i64> {
        let mut out = Vec::with_capacity(firsts.len());
        let mut extras = 0;
        let mut it = self.adjustments.range(self.first_tx..).peekable();
        for &f in firsts {
            while let Some((id, a)) = it.peek() {
                if **id >= f {
                    break;
                }
                extras += a.extra;
                it.next();
            }
            out.push(crate::GENESIS_RESERVOIR - DRAIN * (f - self.first_tx) - extras);
        }
        out
    }

    /// Entry for `t`, created empty.
    pub fn adj(&mut self, t: i64) -> &mut TxAdj {
        self.adjustments.entry(t).or_default()
    }

    /// Recomputes `extra` of every generic adjustment (after deposits or donations change).
    fn settle_extras(&mut self) {
        for a in self.adjustments.values_mut() {
            if a.invalid.is_none() {
                a.extra = a.deposit.max(0) + a.donation;
            }
        }
    }
}

/// What the UTxO plan depends on.
pub struct UtxoInput<'a> {
    /// The network (era epochs).
    pub network: &'a Network,
    /// Blocks and transactions.
    pub layout: &'a Layout,
    /// Certificates (deposits, and transactions the traps must avoid).
    pub ledger: &'a Ledger,
    /// Whether `tx.treasury_donation` exists (13.3+).
    pub donations: bool,
    /// `tx.id` of the genesis transactions.
    pub genesis_txs: &'a [i64],
    /// A stake address id without any reward (the zero withdrawal trap).
    pub rewardless_addr: i64,
}

/// Plans deposits, traps and declarations.
pub fn plan(input: &UtxoInput<'_>) -> Utxo {
    let layout = input.layout;
    let l = input.ledger;
    let net = input.network;
    let tip = layout.tip_epoch;
    let first_tx = layout
        .epochs
        .iter()
        .find(|e| e.txs > 0)
        .map_or(layout.segments[0].first_tx_id, |e| e.first_tx_id);
    let mut u = Utxo {
        genesis_txs: input.genesis_txs.to_vec(),
        first_tx,
        ..Utxo::default()
    };
    let g = |i: usize| input.genesis_txs[i];

    // Deposits from the certificates (db-sync's signed `tx.deposit`).
    for c in &l.registrations {
        u.adj(c.tx_id).deposit += crate::KEY_DEPOSIT;
    }
    for c in &l.deregistrations {
        u.adj(c.tx_id).deposit -= crate::KEY_DEPOSIT;
    }
    for p in &l.pool_updates {
        if p.deposit.is_some() {
            u.adj(p.tx_id).deposit += crate::POOL_DEPOSIT;
        }
    }
    // The first transaction spends the reservoir.
    u.adj(first_tx).change_from = Some((g(0), 0));

    let certified: std::collections::BTreeSet<i64> = l.events.iter().map(|e| e.tx_id).collect();
    let epochs = &layout.epochs;
    // A finished epoch from `from` on (never the newest two, where faults go) whose last
    // transaction carries no certificate: where an invalid trap goes.
    let quiet_epoch = |from: i64| -> Option<&EpochBlocks> {
        (from.max(0)..tip - 2)
            .map(|e| &epochs[e as usize])
            .find(|e| e.txs >= 3 && !certified.contains(&(e.first_tx_id + e.txs - 1)))
    };
    let e0 = net.shelley_start_epoch();

    // Genesis output 4 is spent by the first transaction of the second Shelley epoch (the
    // `double-spend` fault spends it again).
    let spender = epochs[(e0 + 1) as usize].first_tx_id;
    u.adj(spender).extra_input = Some((g(4), 0, crate::DOUBLE_SPENT_VALUE));
    u.traps.push(format!(
        "tx {spender} (epoch {}) spends genesis output 4 as a second input",
        e0 + 1
    ));

    // A NULL deposit on a certificate-free transaction of epoch e0 + 3 (it balances with 0).
    if let Some(e) = epochs.get((e0 + 3) as usize) {
        if let Some(t) = (e.first_tx_id..e.first_tx_id + e.txs).find(|t| !certified.contains(t)) {
            u.adj(t).deposit_null = true;
            u.traps
                .push(format!("tx {t} (epoch {}) has a NULL deposit", e0 + 3));
        }
    }

    // A zero withdrawal from an address without rewards (first transaction of epoch e0 + 4).
    if let Some(e) = epochs.get((e0 + 4) as usize) {
        u.zero_withdrawal = Some((input.rewardless_addr, e.first_tx_id));
        u.traps.push(format!(
            "tx {} (epoch {}) withdraws 0 from stake_address.id {}",
            e.first_tx_id,
            e0 + 4,
            input.rewardless_addr
        ));
    }

    // Valid Conway transactions with a donation (13.3+): the first transaction of three
    // Conway epochs.
    let conway = net.conway_start_epoch();
    if input.donations {
        for e in (conway..tip - 2).take(3) {
            let t = epochs[e as usize].first_tx_id;
            u.adj(t).donation = DONATION;
            u.traps
                .push(format!("tx {t} (epoch {e}) donates {DONATION}"));
        }
    }
    u.settle_extras();

    // Phase-2-invalid traps, at the last transaction of an epoch (its block also holds valid
    // transactions; withdrawals are never placed there).
    let mut invalid_at: Vec<(i64, &str)> = Vec::new();
    if let Some(alonzo) = net.first_epoch_with_major(5) {
        if let Some(e) = quiet_epoch(alonzo + 1) {
            invalid_at.push((e.epoch, "alonzo"));
        }
    }
    if let Some(babbage) = net.first_epoch_with_major(7) {
        if let Some(e) = quiet_epoch(babbage + 1) {
            invalid_at.push((e.epoch, "babbage"));
        }
    }
    if let Some(e) = quiet_epoch(conway + 1) {
        if invalid_at.iter().all(|(x, _)| *x != e.epoch) {
            invalid_at.push((e.epoch, "conway"));
        }
    }
    invalid_at.sort();
    invalid_at.dedup_by_key(|x| x.0);
    for (epoch, era) in invalid_at {
        let e = &epochs[epoch as usize];
        let t = e.first_tx_id + e.txs - 1;
        let before = u.change_of(t - 1);
        let invalid = match era {
            // Alonzo: no collateral return; the change passes through untouched (the next
            // transaction spends t − 1's change), so this one's extra cancels the drain.
            "alonzo" => {
                let a = u.adj(t);
                a.invalid = Some(Invalid {
                    collateral: vec![(g(3), 0)],
                    collateral_return: None,
                    fee: crate::GENESIS_OUTPUTS[3],
                    donation: 0,
                    out_sum: 0,
                });
                a.extra = -DRAIN;
                u.adj(t + 1).change_from = Some((t - 1, 0));
                format!("tx {t} (epoch {epoch}): Alonzo invalid, collateral genesis output 3, no return")
            }
            _ => {
                let donation = if era == "conway" && input.donations {
                    INVALID_DONATION
                } else {
                    0
                };
                let second = if era == "conway" { 2 } else { 1 };
                let ret = before + crate::GENESIS_OUTPUTS[second] - COLLATERAL_FEE;
                let a = u.adj(t);
                a.invalid = Some(Invalid {
                    collateral: vec![(t - 1, 0), (g(second), 0)],
                    collateral_return: Some(ret),
                    fee: COLLATERAL_FEE,
                    donation,
                    out_sum: ret,
                });
                // The return is the next change: B(t) = B(t − 1) − DRAIN − extra.
                a.extra = before - ret - DRAIN;
                u.adj(t + 1).change_from = Some((t, 2));
                format!(
                    "tx {t} (epoch {epoch}): {era} invalid, collateral change of tx {} and \
                     genesis output {second}, return at index 2{}",
                    t - 1,
                    if donation > 0 {
                        ", unapplied donation"
                    } else {
                        ""
                    }
                )
            }
        };
        u.traps.push(invalid);
    }

    // Declared collateral (Alonzo on) and reference inputs (Babbage on) of valid Plutus
    // transactions: the third transaction of the epoch declares outputs of the first, which
    // the second spends.
    let alonzo = net.first_epoch_with_major(5).unwrap_or(i64::MAX);
    let babbage = net.first_epoch_with_major(7).unwrap_or(i64::MAX);
    for e in epochs.iter().filter(|e| e.epoch >= alonzo && e.txs >= 3) {
        let t = e.first_tx_id + 2;
        u.declared.collateral.push((t, t - 2, 0));
        if e.epoch >= babbage {
            u.declared.reference.push((t, t - 2, 1));
            u.declared.collateral_out.push((t, 2, 5_000_000));
        }
    }
    u
}

/// One generated transaction as written, for tests: `(inputs, outputs, fee, deposit,
/// donation, valid)` with inputs as `(tx_id, index)`; `withdrawals` adds to the payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxRows {
    /// Spent `(tx_id, index)`.
    pub inputs: Vec<(i64, i32)>,
    /// `(index, value)`.
    pub outputs: Vec<(i32, i64)>,
    /// `tx.fee`.
    pub fee: i64,
    /// `tx.deposit` (None = NULL).
    pub deposit: Option<i64>,
    /// `tx.treasury_donation`.
    pub donation: i64,
    /// `valid_contract`.
    pub valid: bool,
}

impl Utxo {
    /// The rows of transaction `t` at block index `bi`, exactly as `load::write_txs`
    /// computes them, with the withdrawals (lovelace) of the transaction and of its
    /// predecessor and its change `B(t)` ([`Utxo::change_of`], passed in so that a caller
    /// walking the chain can keep it as a running value). Mirrors the SQL so that the plan's
    /// invariants can be tested in Rust.
    pub fn rows_of(&self, t: i64, bi: i64, wdr: i64, wdr_prev: i64, change: i64) -> TxRows {
        let none = TxAdj::default();
        let a = self.adjustments.get(&t).unwrap_or(&none);
        if let Some(inv) = &a.invalid {
            return TxRows {
                inputs: inv.collateral.clone(),
                outputs: inv
                    .collateral_return
                    .map(|v| vec![(2, v)])
                    .unwrap_or_default(),
                fee: inv.fee,
                deposit: Some(0),
                donation: inv.donation,
                valid: false,
            };
        }
        let own = |a: &TxAdj, bi: i64, wdr: i64| {
            DRAIN - fee_at(bi) + wdr + (-a.deposit).max(0) + a.extra_input.map_or(0, |x| x.2)
        };
        let mut out1 = own(a, bi, wdr);
        let mut inputs = vec![a.change_from.unwrap_or((t - 1, 0))];
        if bi == 1 {
            let p = self.adjustments.get(&(t - 1)).unwrap_or(&none);
            out1 += own(p, 0, wdr_prev);
            inputs.push((t - 1, 1));
        }
        if let Some((x, i, _)) = a.extra_input {
            inputs.push((x, i));
        }
        TxRows {
            inputs,
            outputs: vec![(0, change), (1, out1)],
            fee: fee_at(bi) + a.fee_delta,
            deposit: (!a.deposit_null).then_some(a.deposit),
            donation: a.donation,
            valid: true,
        }
    }
}
