//! The history, decided in Rust before anything is written: where every block and
//! transaction goes ([`layout`]), what the ledger did ([`ledger`]) and where the ADA goes
//! ([`utxo`]). Large tables (block,
//! tx, epoch_stake, reward) are then expanded server-side from this compact description;
//! small ones (certificates, instant rewards, pots) are written row by row from it.

pub mod layout;
pub mod ledger;
pub mod utxo;

use dbsync_fixture::SchemaVersion;

use crate::network::Network;
use crate::rng::Rng;
use crate::scale::Sizes;
use crate::SimError;

pub use layout::{EpochBlocks, Layout, Segment};
pub use ledger::{Ledger, Pot, Pots};

/// A complete history plan.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The network.
    pub network: Network,
    /// Schema release (table names, columns).
    pub version: SchemaVersion,
    /// Blocks and transactions.
    pub layout: Layout,
    /// Certificates and what the ledger derived from them.
    pub ledger: Ledger,
    /// Inputs, outputs, deposits and the UTxO traps.
    pub utxo: utxo::Utxo,
    /// `slot_leader.id` of the first Byron delegate.
    pub leader_base: i64,
    /// Seed (also salts hashes).
    pub seed: u64,
    /// Unix time the history ends at.
    pub until_unix: i64,
}

/// What a plan depends on; the `first_*` ids come from the freshly initialised database.
pub struct PlanInput<'a> {
    /// The network.
    pub network: &'a Network,
    /// Schema release.
    pub version: SchemaVersion,
    /// Row-count knobs.
    pub sizes: Sizes,
    /// Seed.
    pub seed: u64,
    /// End of the history (unix seconds).
    pub until_unix: i64,
    /// First free `block.id`.
    pub first_block_id: i64,
    /// First free `tx.id`.
    pub first_tx_id: i64,
    /// First free `slot_leader.id`.
    pub leader_base: i64,
    /// `tx.id` of the genesis transactions (one per [`crate::GENESIS_OUTPUTS`] entry).
    pub genesis_txs: Vec<i64>,
}

impl Plan {
    /// Builds the plan.
    pub fn build(input: &PlanInput<'_>) -> Result<Plan, SimError> {
        let net = input.network;
        let p = &net.clock;
        let until_slot = p.slot_at(input.until_unix);
        let tip_epoch = p.epoch_of_slot(until_slot);
        if input.until_unix <= p.shelley_start_unix + 3 * p.epoch_slots {
            return Err(SimError::Invalid(format!(
                "--until-unix {} is too early: the history needs a few Shelley-era epochs \
                 (the {} Shelley era starts at {})",
                input.until_unix,
                net.name(),
                p.shelley_start_unix
            )));
        }
        let rng = Rng::new(input.seed);
        let ledger_input = ledger::LedgerInput {
            network: net,
            sizes: &input.sizes,
            tip_epoch,
            proposal_refunds: input.version != SchemaVersion::V13_2,
        };
        let mut ledger = ledger::draw(&ledger_input, &rng);
        // Slot leaders come from the randomly drawn pools, whose ids follow registration.
        let pools_before_epoch: Vec<i64> = (0..=tip_epoch)
            .map(|e| ledger.pool_first_epoch.partition_point(|first| *first < e) as i64)
            .collect();
        let layout = layout::layout(&layout::LayoutInput {
            network: net,
            target_blocks: input.sizes.blocks,
            until_unix: input.until_unix,
            first_block_id: input.first_block_id,
            first_tx_id: input.first_tx_id,
            first_block_no: 1,
            leader_base: input.leader_base,
            pools_before_epoch: &pools_before_epoch,
        });
        ledger::place(&mut ledger, &layout.epochs);
        ledger::replay(&mut ledger, &ledger_input, &layout.epochs, &rng);
        if input.genesis_txs.len() != crate::GENESIS_OUTPUTS.len() {
            return Err(SimError::Invalid(format!(
                "the genesis block holds {} transactions, not {} (run `dbsync-sim init` again)",
                input.genesis_txs.len(),
                crate::GENESIS_OUTPUTS.len()
            )));
        }
        // One more stake address that never registers and gets no reward: the zero
        // withdrawal trap's.
        ledger.stake_addresses += 1;
        let utxo = utxo::plan(&utxo::UtxoInput {
            network: net,
            layout: &layout,
            ledger: &ledger,
            donations: input.version != SchemaVersion::V13_2,
            genesis_txs: &input.genesis_txs,
            rewardless_addr: ledger.stake_addresses,
        });
        Ok(Plan {
            network: net.clone(),
            version: input.version,
            layout,
            ledger,
            utxo,
            leader_base: input.leader_base,
            seed: input.seed,
            until_unix: input.until_unix,
        })
    }

    /// Epoch of the tip.
    pub fn tip_epoch(&self) -> i64 {
        self.layout.tip_epoch
    }

    /// The instant-reward table of this release.
    pub fn instant_table(&self) -> &'static str {
        match self.version {
            SchemaVersion::V13_2 => "instant_reward",
            _ => "reward_rest",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scale::Scale;
    use std::collections::{BTreeMap, BTreeSet};

    fn plan(network: &str, version: SchemaVersion) -> Plan {
        Plan::build(&PlanInput {
            network: &Network::known(network).unwrap(),
            version,
            sizes: Scale::Small.sizes(),
            seed: 42,
            until_unix: 1_795_668_222,
            first_block_id: 2,
            first_tx_id: 7,
            leader_base: 2,
            genesis_txs: (1..=6).collect(),
        })
        .unwrap()
    }

    /// The MIR rule, computed independently from the rows the plan writes: every
    /// (pot, credential, epoch) owed to a registered credential has exactly the right payout.
    #[test]
    fn mir_payouts_follow_the_rule() {
        for network in ["mainnet", "preprod", "preview"] {
            let p = plan(network, SchemaVersion::V13_6);
            let l = &p.ledger;
            // (pot, credential, epoch) -> [(tx_id, cert_index, amount)]
            type Owed = BTreeMap<(Pot, i64, i64), Vec<(i64, i32, i64)>>;
            let mut owed = Owed::new();
            for m in &l.mir_rows {
                owed.entry((m.pot, m.addr, m.epoch)).or_default().push((
                    m.tx_id,
                    m.cert_index,
                    m.amount,
                ));
            }
            let mut paid = BTreeMap::new();
            for ir in l.instant_rewards.iter().filter(|r| !r.conway) {
                let ledger::InstantKind::Pot(pot) = ir.kind else {
                    panic!("MIR payouts are pot rewards")
                };
                assert!(paid
                    .insert((pot, ir.addr, ir.spendable_epoch - 1), ir.amount)
                    .is_none());
            }
            let registered_at = |addr: i64, epoch: i64| {
                let mut certs: Vec<(i64, i32, bool)> = l
                    .registrations
                    .iter()
                    .filter(|c| c.addr == addr && c.epoch <= epoch)
                    .map(|c| (c.tx_id, c.cert_index, true))
                    .chain(
                        l.deregistrations
                            .iter()
                            .filter(|c| c.addr == addr && c.epoch <= epoch)
                            .map(|c| (c.tx_id, c.cert_index, false)),
                    )
                    .collect();
                certs.sort();
                certs.last().is_some_and(|c| c.2)
            };
            assert!(!owed.is_empty(), "{network}: no MIR certificates");
            for ((pot, addr, epoch), mut certs) in owed {
                certs.sort();
                let want = if p.network.mir_sums_in(epoch) {
                    certs.iter().map(|c| c.2).sum()
                } else {
                    certs.last().unwrap().2
                };
                let got = paid.remove(&(pot, addr, epoch));
                if registered_at(addr, epoch) {
                    assert_eq!(got, Some(want), "{network} {pot:?} {addr} {epoch}");
                } else {
                    assert_eq!(got, None, "{network}: paid an unregistered credential");
                }
            }
            assert!(paid.is_empty(), "{network}: payouts without certificates");
        }
    }

    #[test]
    fn refunds_go_to_registered_accounts_once_per_retirement() {
        let p = plan("mainnet", SchemaVersion::V13_6);
        let l = &p.ledger;
        assert!(!l.refunds.is_empty());
        assert!(l.unclaimed_refunds > 0 || l.refunds.len() > 3);
        let keys: BTreeSet<_> = l.refunds.iter().map(|r| (r.pool, r.epoch)).collect();
        assert_eq!(keys.len(), l.refunds.len());
        for r in &l.refunds {
            assert!(r.epoch <= p.tip_epoch());
            assert!(l
                .pool_retires
                .iter()
                .any(|pr| pr.pool == r.pool && pr.retiring_epoch == r.epoch));
        }
    }

    #[test]
    fn pots_sum_to_the_supply_every_shelley_epoch() {
        for network in ["mainnet", "preprod", "preview"] {
            let p = plan(network, SchemaVersion::V13_2);
            let e0 = p.network.shelley_start_epoch();
            let epochs: Vec<i64> = p.ledger.pots.iter().map(|x| x.epoch).collect();
            assert_eq!(epochs, (e0..=p.tip_epoch()).collect::<Vec<_>>());
            for pots in &p.ledger.pots {
                assert_eq!(pots.total(), crate::MAX_LOVELACE_SUPPLY);
                assert!(pots.utxo > 0 && pots.treasury >= 0);
            }
        }
    }

    /// The UTxO plan, replayed transaction by transaction exactly as the load writes it:
    /// every input spends an existing output that nothing else spent, every output is
    /// non-negative, and every valid transaction balances (invalid ones: collateral in =
    /// fee + return). Withdrawals enter as arbitrary amounts, since the load derives them
    /// from the reward rows (their bound is tested against the database in tests/sim.rs).
    #[test]
    fn every_transaction_balances_and_no_output_is_spent_twice() {
        for (network, version) in [
            ("mainnet", SchemaVersion::V13_6),
            ("preview", SchemaVersion::V13_2),
            ("preprod", SchemaVersion::V13_7),
        ] {
            let p = plan(network, version);
            let u = &p.utxo;
            let mut unspent: BTreeMap<(i64, i32), i64> = u
                .genesis_txs
                .iter()
                .zip(crate::GENESIS_OUTPUTS)
                .map(|(t, v)| ((*t, 0), v))
                .collect();
            let wdr = |t: i64| (t % 7) * 1_000_000;
            let mut invalid = 0;
            let mut change = crate::GENESIS_RESERVOIR;
            for s in p.layout.segments.iter().filter(|s| s.txs() > 0) {
                for n in 0..s.txs() {
                    let t = s.first_tx_id + n;
                    let bi = n % s.txs_per_block;
                    // B(t) = B(t - 1) - DRAIN - extra(t), from the reservoir on.
                    change -= utxo::DRAIN + u.adjustments.get(&t).map_or(0, |a| a.extra);
                    if n % 5_000 == 0 {
                        assert_eq!(change, u.change_of(t));
                    }
                    let rows = u.rows_of(t, bi, wdr(t), wdr(t - 1), change);
                    let mut ins = 0;
                    for i in &rows.inputs {
                        ins += unspent.remove(i).unwrap_or_else(|| {
                            panic!("{network}: tx {t} spends {i:?} twice or before it exists")
                        });
                    }
                    let outs: i64 = rows.outputs.iter().map(|o| o.1).sum();
                    assert!(rows.outputs.iter().all(|o| o.1 >= 0), "{network}: tx {t}");
                    if rows.valid {
                        assert_eq!(
                            ins + wdr(t),
                            outs + rows.fee + rows.deposit.unwrap_or(0) + rows.donation,
                            "{network}: tx {t} balances"
                        );
                    } else {
                        invalid += 1;
                        assert_eq!(ins, outs + rows.fee, "{network}: invalid tx {t}");
                        assert_eq!(rows.deposit, Some(0));
                    }
                    for (index, value) in rows.outputs {
                        unspent.insert((t, index), value);
                    }
                }
            }
            assert!(invalid >= 2, "{network}: {invalid} invalid traps");
            // Declared collateral and reference inputs point at outputs another tx spent.
            for (t, o, i) in u.declared.collateral.iter().chain(&u.declared.reference) {
                assert!(
                    !unspent.contains_key(&(*o, *i)),
                    "{network}: {t} declares {o}#{i}"
                );
            }
        }
    }

    #[test]
    fn certificates_are_in_chain_order() {
        let p = plan("mainnet", SchemaVersion::V13_6);
        let keys: Vec<(i64, i32)> = p
            .ledger
            .events
            .iter()
            .map(|e| (e.tx_id, e.cert_index))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for e in &p.ledger.events {
            let b = &p.layout.epochs[e.epoch as usize];
            assert!(e.tx_id >= b.first_tx_id && e.tx_id < b.first_tx_id + b.txs);
        }
    }
}
