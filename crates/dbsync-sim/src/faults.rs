//! Faults `generate --faults` can plant, each exactly once in a documented, deterministic
//! place, and what the exporter's integrity checks (issue 3) should report for them.
//!
//! | fault | where | expected |
//! |---|---|---|
//! | `missing-mir` | newest pre-Conway MIR epoch N: the payout of the lowest credential that had exactly one certificate of that pot in N and was registered at N→N+1 is not written | `dbsync_mir_unpaid_payments{pot} 1`, `dbsync_mir_unpaid_lovelace{pot}` = its amount |
//! | `orphan-mir` | same epoch N: a `reserves` instant reward (1 ADA, spendable N+1) to the lowest registered credential with no certificate at all in N | `dbsync_mir_orphan_rewards{pot="reserves"} 1` |
//! | `missing-refund` | newest effective retirement epoch E whose refund went to a registered account: the refund of the lowest pool there whose account got no other refund in E is not written | `dbsync_pool_refunds_missing 1`, `dbsync_pool_refunds_missing_lovelace 500000000` |
//! | `broken-ada-pots` | `ada_pots` of the newest finished epoch (tip − 1): `utxo` + 1 ADA | `dbsync_ada_pots_inconsistent_epochs 1` (the tip epoch's row is intact, so the deviation stays 0) |
//! | `missing-ada-pots` | `ada_pots` of epoch tip − 2 is not written | `dbsync_ada_pots_missing_epochs 1` |
//!
//! Faults change the plan before it is written, so the rest of the history stays consistent.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::plan::ledger::{InstantKind, InstantReward, Pot};
use crate::plan::Plan;
use crate::{SimError, POOL_DEPOSIT};

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// A MIR payment owed to a registered credential is missing.
    MissingMir,
    /// An instant reward without a MIR certificate (pre-Conway).
    OrphanMir,
    /// An effective retirement's refund to a registered account is missing.
    MissingRefund,
    /// One `ada_pots` row does not sum to 45e15.
    BrokenAdaPots,
    /// One Shelley-era epoch has no `ada_pots` row.
    MissingAdaPots,
}

impl Fault {
    /// Every fault, in planting order.
    pub const ALL: [Fault; 5] = [
        Fault::MissingMir,
        Fault::OrphanMir,
        Fault::MissingRefund,
        Fault::BrokenAdaPots,
        Fault::MissingAdaPots,
    ];

    /// The `--faults` name.
    pub fn name(self) -> &'static str {
        match self {
            Fault::MissingMir => "missing-mir",
            Fault::OrphanMir => "orphan-mir",
            Fault::MissingRefund => "missing-refund",
            Fault::BrokenAdaPots => "broken-ada-pots",
            Fault::MissingAdaPots => "missing-ada-pots",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of faults (`--faults a,b,c` or `all`; empty = none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultSet(pub BTreeSet<Fault>);

impl FaultSet {
    /// No faults.
    pub fn none() -> FaultSet {
        FaultSet::default()
    }

    /// Every fault.
    pub fn all() -> FaultSet {
        FaultSet(Fault::ALL.into_iter().collect())
    }

    /// Whether `fault` is in the set.
    pub fn contains(&self, fault: Fault) -> bool {
        self.0.contains(&fault)
    }
}

impl FromStr for FaultSet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = BTreeSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                return Ok(FaultSet::all());
            }
            let fault = Fault::ALL
                .into_iter()
                .find(|f| f.name() == part)
                .ok_or_else(|| {
                    format!(
                        "unknown fault `{part}` (known: {}, or all)",
                        Fault::ALL.map(Fault::name).join(", ")
                    )
                })?;
            set.insert(fault);
        }
        Ok(FaultSet(set))
    }
}

/// A metric series and the value the exporter should export for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// Name plus exact label text, e.g. `dbsync_mir_unpaid_payments{pot="reserves"}`.
    pub series: String,
    /// The value.
    pub value: i64,
}

/// A planted fault: what, where, and what the exporter should say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlantedFault {
    /// The fault.
    pub fault: Fault,
    /// Where it is, in words.
    pub place: String,
    /// Series that change because of it, with their expected values.
    pub expect: Vec<Expectation>,
}

impl fmt::Display for PlantedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let expect: Vec<String> = self
            .expect
            .iter()
            .map(|e| format!("{} {}", e.series, e.value))
            .collect();
        write!(
            f,
            "planted {}: {} -> expect {}",
            self.fault,
            self.place,
            expect.join(", ")
        )
    }
}

fn expect(series: impl Into<String>, value: i64) -> Expectation {
    Expectation {
        series: series.into(),
        value,
    }
}

fn pot_series(name: &str, pot: Pot) -> String {
    format!("{name}{{pot=\"{}\"}}", pot.as_str())
}

/// Plants `faults` into `plan`; returns one entry per fault in [`Fault::ALL`] order.
pub fn plant(plan: &mut Plan, faults: &FaultSet) -> Result<Vec<PlantedFault>, SimError> {
    let mut planted = Vec::new();
    let tip = plan.tip_epoch();
    let e0 = plan.network.shelley_start_epoch();
    let newest_mir_epoch = plan.ledger.mir_rows.iter().map(|m| m.epoch).max();
    let cannot = |fault: Fault, why: &str| {
        SimError::Invalid(format!("cannot plant {fault} in this history: {why}"))
    };

    if faults.contains(Fault::MissingMir) {
        let fault = Fault::MissingMir;
        let epoch = newest_mir_epoch.ok_or_else(|| cannot(fault, "no MIR certificates"))?;
        let l = &plan.ledger;
        let single = |pot: Pot, addr: i64| {
            l.mir_rows
                .iter()
                .filter(|m| m.epoch == epoch && m.pot == pot && m.addr == addr)
                .count()
                == 1
        };
        let victim = l
            .instant_rewards
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.conway && r.spendable_epoch == epoch + 1)
            .filter_map(|(i, r)| match r.kind {
                InstantKind::Pot(pot) if single(pot, r.addr) => Some((r.addr, i, pot, r.amount)),
                _ => None,
            })
            .min()
            .ok_or_else(|| {
                cannot(
                    fault,
                    "no single-certificate payout in the newest MIR epoch",
                )
            })?;
        let (addr, index, pot, amount) = victim;
        plan.ledger.instant_rewards.remove(index);
        planted.push(PlantedFault {
            fault,
            place: format!(
                "no {} instant reward for stake_address.id {addr} (MIR of {amount} lovelace \
                 in epoch {epoch}, owed at {epoch}->{})",
                pot.as_str(),
                epoch + 1
            ),
            expect: vec![
                expect(pot_series("dbsync_mir_unpaid_payments", pot), 1),
                expect(pot_series("dbsync_mir_unpaid_lovelace", pot), amount),
            ],
        });
    }

    if faults.contains(Fault::OrphanMir) {
        let fault = Fault::OrphanMir;
        let epoch = newest_mir_epoch.ok_or_else(|| cannot(fault, "no MIR certificates"))?;
        let l = &plan.ledger;
        let named: BTreeSet<i64> = l
            .mir_rows
            .iter()
            .filter(|m| m.epoch == epoch)
            .map(|m| m.addr)
            .collect();
        let rewarded: BTreeSet<i64> = l
            .instant_rewards
            .iter()
            .filter(|r| r.spendable_epoch == epoch + 1)
            .map(|r| r.addr)
            .collect();
        let addr = l
            .registrations
            .iter()
            .filter(|c| c.epoch <= epoch)
            .map(|c| c.addr)
            .filter(|a| !named.contains(a) && !rewarded.contains(a))
            .min()
            .ok_or_else(|| cannot(fault, "no registered credential without a certificate"))?;
        plan.ledger.instant_rewards.push(InstantReward {
            addr,
            kind: InstantKind::Pot(Pot::Reserves),
            amount: 1_000_000,
            spendable_epoch: epoch + 1,
            conway: false,
        });
        planted.push(PlantedFault {
            fault,
            place: format!(
                "a reserves instant reward of 1000000 lovelace to stake_address.id {addr}, \
                 spendable in epoch {}, with no MIR certificate in epoch {epoch}",
                epoch + 1
            ),
            expect: vec![expect(
                pot_series("dbsync_mir_orphan_rewards", Pot::Reserves),
                1,
            )],
        });
    }

    if faults.contains(Fault::MissingRefund) {
        let fault = Fault::MissingRefund;
        let l = &plan.ledger;
        let epoch = l
            .refunds
            .iter()
            .map(|r| r.epoch)
            .max()
            .ok_or_else(|| cannot(fault, "no refunded retirement"))?;
        let (index, refund) = l
            .refunds
            .iter()
            .enumerate()
            .filter(|(_, r)| r.epoch == epoch)
            .filter(|(_, r)| {
                l.refunds
                    .iter()
                    .filter(|o| o.epoch == epoch && o.addr == r.addr)
                    .count()
                    == 1
            })
            .min_by_key(|(_, r)| r.pool)
            .map(|(i, r)| (i, *r))
            .ok_or_else(|| cannot(fault, "no refund with an unshared account"))?;
        plan.ledger.refunds.remove(index);
        planted.push(PlantedFault {
            fault,
            place: format!(
                "no refund for pool_hash.id {} retired at epoch {epoch} (reward account \
                 stake_address.id {}, registered)",
                refund.pool, refund.addr
            ),
            expect: vec![
                expect("dbsync_pool_refunds_missing", 1),
                expect("dbsync_pool_refunds_missing_lovelace", POOL_DEPOSIT),
            ],
        });
    }

    if faults.contains(Fault::BrokenAdaPots) {
        let fault = Fault::BrokenAdaPots;
        let epoch = tip - 1;
        if epoch < e0 {
            return Err(cannot(fault, "no finished Shelley-era epoch"));
        }
        let row = plan
            .ledger
            .pots
            .iter_mut()
            .find(|p| p.epoch == epoch)
            .ok_or_else(|| cannot(fault, "no ada_pots row for tip - 1"))?;
        row.utxo += 1_000_000;
        planted.push(PlantedFault {
            fault,
            place: format!("ada_pots of epoch {epoch}: utxo + 1000000 lovelace (sum 45e15 + 1e6)"),
            expect: vec![expect("dbsync_ada_pots_inconsistent_epochs", 1)],
        });
    }

    if faults.contains(Fault::MissingAdaPots) {
        let fault = Fault::MissingAdaPots;
        let epoch = tip - 2;
        if epoch < e0 {
            return Err(cannot(fault, "fewer than three Shelley-era epochs"));
        }
        plan.ledger.pots.retain(|p| p.epoch != epoch);
        planted.push(PlantedFault {
            fault,
            place: format!("no ada_pots row for epoch {epoch}"),
            expect: vec![expect("dbsync_ada_pots_missing_epochs", 1)],
        });
    }
    Ok(planted)
}

/// Every integrity series the exporter should export for a generated database, with its
/// expected value: zero everywhere, except the informational unclaimed-refund count and what
/// the planted faults change.
pub fn expectations(plan: &Plan, planted: &[PlantedFault]) -> Vec<Expectation> {
    let mut all = Vec::new();
    for pot in [Pot::Reserves, Pot::Treasury] {
        all.push(expect(pot_series("dbsync_mir_unpaid_payments", pot), 0));
        all.push(expect(pot_series("dbsync_mir_unpaid_lovelace", pot), 0));
        all.push(expect(pot_series("dbsync_mir_orphan_rewards", pot), 0));
    }
    all.push(expect("dbsync_pool_refunds_missing", 0));
    all.push(expect("dbsync_pool_refunds_missing_lovelace", 0));
    all.push(expect(
        "dbsync_pool_refunds_unclaimed",
        plan.ledger.unclaimed_refunds,
    ));
    all.push(expect("dbsync_ada_pots_inconsistent_epochs", 0));
    all.push(expect("dbsync_ada_pots_missing_epochs", 0));
    all.push(expect("dbsync_ada_pots_deviation_lovelace", 0));
    all.push(expect("dbsync_epoch_stake_complete", 1));
    for p in planted {
        for e in &p.expect {
            match all.iter_mut().find(|a| a.series == e.series) {
                Some(a) => a.value = e.value,
                None => all.push(e.clone()),
            }
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        let set: FaultSet = "missing-mir, broken-ada-pots".parse().unwrap();
        assert_eq!(set.0.len(), 2);
        assert!(set.contains(Fault::MissingMir));
        assert_eq!("all".parse::<FaultSet>().unwrap(), FaultSet::all());
        assert_eq!("".parse::<FaultSet>().unwrap(), FaultSet::none());
        assert!("missing-everything".parse::<FaultSet>().is_err());
    }
}
