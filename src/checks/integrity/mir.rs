//! `mir`: MIR certificates against the instant rewards db-sync recorded for them.
//!
//! A MIR certificate in epoch N that pays stake credentials from the reserves (`reserve` rows)
//! or the treasury (`treasury` rows) is paid at the N→N+1 boundary, to the credentials
//! registered at that boundary, as one instant reward per (credential, pot) with
//! `spendable_epoch = N+1` (`reward_rest` from 13.3, `instant_reward` in 13.2). Before Alonzo
//! (protocol major < 5) a later certificate to the same credential and pot in the same epoch
//! replaces the earlier one; from Alonzo on they add up. Only boundaries already processed
//! count (N < tip epoch).
//!
//! Per (pot, cert epoch) the check counts *unpaid* payments (owed to a registered credential,
//! no instant reward) with their amount, and *orphan* rewards (an instant reward of type
//! reserves/treasury without a certificate of that pot for that credential in the previous
//! epoch), the latter only before Conway: from Conway on, enacted treasury withdrawals are
//! `treasury` instant rewards without any certificate, and `proposal_refund` rows are never MIR.
//!
//! Cost: `reserve`/`treasury` (tens of thousands of rows on mainnet) are read with their
//! `tx` and `block` through primary keys; the instant-reward table is read by range of
//! `spendable_epoch` (it has no index in vanilla db-sync, but is small); only payments that
//! have no reward are looked up in `stake_registration`/`stake_deregistration`, through their
//! `addr_id` indexes (stage 4, so the check waits for them).

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::types::ToSql;

use super::incremental::{total, Examined, Incremental, IntegrityCheck, Prerequisites};
use super::params::{EpochParams, ALONZO, CONWAY};
use super::sql::{self, Reader};
use super::state::{Coverage, Scope};
use crate::checks::{CheckError, CheckName, Findings, Verdict};
use crate::db::InstantRewardTable;

/// A MIR source pot; the `pot` label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pot {
    /// `reserve` certificates, `reserves` instant rewards.
    Reserves,
    /// `treasury` certificates, `treasury` instant rewards.
    Treasury,
}

impl Pot {
    /// Both pots, in exposition order.
    pub const ALL: [Pot; 2] = [Pot::Reserves, Pot::Treasury];

    /// The label value (also the `rewardtype` value).
    pub fn as_str(self) -> &'static str {
        match self {
            Pot::Reserves => "reserves",
            Pot::Treasury => "treasury",
        }
    }

    fn parse(text: &str) -> Result<Pot, CheckError> {
        match text {
            "reserves" => Ok(Pot::Reserves),
            "treasury" => Ok(Pot::Treasury),
            other => Err(CheckError::Data(format!("unexpected MIR pot {other}"))),
        }
    }
}

/// What the check found for one pot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirPot {
    /// (credential, epoch) payments owed to a registered credential without an instant reward.
    pub unpaid_payments: u64,
    /// Lovelace owed for those payments.
    pub unpaid_lovelace: i64,
    /// Instant rewards without a certificate (epochs before Conway only).
    pub orphan_rewards: u64,
}

impl MirPot {
    fn add(&mut self, other: &MirPot) {
        self.unpaid_payments += other.unpaid_payments;
        self.unpaid_lovelace = self.unpaid_lovelace.saturating_add(other.unpaid_lovelace);
        self.orphan_rewards += other.orphan_rewards;
    }
}

/// Both pots: one epoch's partial result, or the totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirTotals {
    /// Paid from the reserves.
    pub reserves: MirPot,
    /// Paid from the treasury.
    pub treasury: MirPot,
}

impl MirTotals {
    /// One pot.
    pub fn pot(&self, pot: Pot) -> &MirPot {
        match pot {
            Pot::Reserves => &self.reserves,
            Pot::Treasury => &self.treasury,
        }
    }

    fn pot_mut(&mut self, pot: Pot) -> &mut MirPot {
        match pot {
            Pot::Reserves => &mut self.reserves,
            Pot::Treasury => &mut self.treasury,
        }
    }

    fn add(&mut self, other: &MirTotals) {
        self.reserves.add(&other.reserves);
        self.treasury.add(&other.treasury);
    }
}

/// The `mir` check's findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirFindings {
    /// Totals over every examined epoch.
    pub totals: MirTotals,
    /// What the run covered.
    pub coverage: Coverage,
}

/// What a credential is owed for one pot from the certificates of one epoch, fed in
/// certificate order (by tx, then position in the tx): before Alonzo the last certificate
/// replaces the earlier ones; from Alonzo on the amounts (signed deltas) add up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Owed {
    sum: i64,
    last: i64,
}

impl Owed {
    /// Adds the next certificate's amount.
    pub fn add(&mut self, amount: i64) {
        self.sum = self.sum.saturating_add(amount);
        self.last = amount;
    }

    /// The amount owed under `protocol_major`'s rule.
    pub fn under(self, protocol_major: i32) -> i64 {
        if protocol_major < ALONZO {
            self.last
        } else {
            self.sum
        }
    }
}

/// Certificates whose block is in cert epochs `[$1, $2]`, with tx and block through their
/// primary keys, grouped by (pot, credential, epoch) and in certificate order within a group,
/// so the rows can be folded as they stream in. Amounts are `int65type` (numeric); every real
/// one fits a bigint, and the cast fails loudly rather than rounding if one did not.
const CERTS_SQL: &str = "\
    SELECT 'reserves'::text, r.addr_id, b.epoch_no::bigint, r.tx_id, r.cert_index, r.amount::bigint \
    FROM reserve r JOIN tx ON tx.id = r.tx_id JOIN block b ON b.id = tx.block_id \
    WHERE b.epoch_no >= $1::bigint AND b.epoch_no <= $2::bigint \
    UNION ALL \
    SELECT 'treasury'::text, t.addr_id, b.epoch_no::bigint, t.tx_id, t.cert_index, t.amount::bigint \
    FROM treasury t JOIN tx ON tx.id = t.tx_id JOIN block b ON b.id = tx.block_id \
    WHERE b.epoch_no >= $1::bigint AND b.epoch_no <= $2::bigint \
    ORDER BY 1, 2, 3, 4, 5";

/// Instant rewards of the MIR types spendable in `($1, $2 + 1]` (paid for the certificate
/// epochs `[$1, $2]`), counted per (pot, credential,
/// spendable epoch): 13.3+ allows several rows per key.
fn rewards_sql(table: InstantRewardTable) -> String {
    format!(
        "SELECT type::text, addr_id, spendable_epoch::bigint, count(*) FROM {} \
         WHERE type IN ('reserves', 'treasury') AND spendable_epoch > $1::bigint AND spendable_epoch <= $2::bigint + 1 \
         GROUP BY 1, 2, 3",
        table.table()
    )
}

/// Which of the given (credential, boundary epoch) pairs were registered at that boundary;
/// returns their 1-based positions.
fn registered_sql() -> String {
    format!(
        "SELECT c.i FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS c(addr_id, boundary, i) \
         WHERE {}",
        sql::registered_at("c.addr_id", "c.boundary")
    )
}

const TABLES: [&str; 6] = [
    "reserve",
    "treasury",
    "stake_registration",
    "stake_deregistration",
    "epoch_param",
    "ada_pots",
];

/// Compares MIR certificates with instant rewards, epoch by epoch.
pub type MirCheck = IntegrityCheck<MirRule>;

/// The `mir` rule; its partial results are by certificate epoch.
#[derive(Clone, Copy, Debug, Default)]
pub struct MirRule;

impl Incremental for MirRule {
    const NAME: CheckName = CheckName::Mir;
    type Epoch = MirTotals;
    /// The rule for several certificates to one credential depends on the protocol version.
    type Ready = EpochParams;
    type Seen = ();

    async fn prerequisites(
        &self,
        db: &Reader<'_>,
    ) -> Result<Prerequisites<EpochParams>, CheckError> {
        let why_not = if db.schema.instant_rewards == InstantRewardTable::Reward {
            Some(
                "db-sync before 13.2 keeps instant rewards in reward, which cannot be \
                 searched by type without a scan"
                    .to_owned(),
            )
        } else {
            db.missing_prerequisite(&TABLES, &sql::REGISTRATION_INDEXES)
        };
        if let Some(reason) = db.or_ledger_missing(why_not).await? {
            return Ok(Prerequisites::Unmet(reason));
        }
        let params = EpochParams::load(db).await?;
        if params.is_empty() {
            return Ok(Prerequisites::Unmet(
                "epoch_param is empty: db-sync runs with the ledger disabled".into(),
            ));
        }
        Ok(Prerequisites::Met(params))
    }

    async fn examine(
        &self,
        db: &Reader<'_>,
        params: &EpochParams,
        scope: &Scope,
    ) -> Result<Examined<MirTotals>, CheckError> {
        let table = db.schema.instant_rewards;
        // Results are by certificate epoch, and only boundaries already processed count: the
        // tip epoch's certificates are paid at the next boundary.
        let last = scope.to.min(scope.tip_epoch - 1);
        if last < scope.from {
            return Ok(BTreeMap::new().into());
        }
        let bounds: [&(dyn ToSql + Sync); 2] = [&scope.from, &last];
        // Instant rewards per (pot, credential, spendable epoch): how many, and whether a
        // certificate accounts for them.
        let mut rewards: HashMap<(Pot, i64, i64), (i64, bool)> = HashMap::new();
        for row in db.query(&rewards_sql(table), &bounds).await? {
            rewards.insert(
                (
                    Pot::parse(row.try_get(0)?)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                ),
                (row.try_get(3)?, false),
            );
        }

        // Certificates stream in grouped by (pot, credential, cert epoch); each finished
        // group is a payment. Payments owed but not found are the candidates: only those
        // need the registration lookup.
        let mut candidates: Vec<(Pot, i64, i64, i64)> = Vec::new();
        let mut settle = |(pot, addr_id, epoch): (Pot, i64, i64), owed: Owed| {
            let amount = owed.under(params.at(epoch).map_or(0, |p| p.protocol_major));
            match rewards.get_mut(&(pot, addr_id, epoch + 1)) {
                Some((_, certified)) => *certified = true,
                // A credential whose deltas cancel out (Alonzo+) is owed nothing.
                None if amount > 0 => candidates.push((pot, addr_id, epoch, amount)),
                None => {}
            }
        };
        let mut group: Option<((Pot, i64, i64), Owed)> = None;
        db.query_each(CERTS_SQL, &bounds, |row| {
            let key = (
                Pot::parse(row.try_get(0)?)?,
                row.try_get(1)?,
                row.try_get(2)?,
            );
            let amount: i64 = row.try_get(5)?;
            match &mut group {
                Some((current, owed)) if *current == key => owed.add(amount),
                _ => {
                    if let Some((done, owed)) = group.take() {
                        settle(done, owed);
                    }
                    let mut owed = Owed::default();
                    owed.add(amount);
                    group = Some((key, owed));
                }
            }
            Ok(())
        })
        .await?;
        if let Some((done, owed)) = group {
            settle(done, owed);
        }

        let mut fresh: BTreeMap<i64, MirTotals> = BTreeMap::new();
        if !candidates.is_empty() {
            let addrs: Vec<i64> = candidates.iter().map(|c| c.1).collect();
            let boundaries: Vec<i64> = candidates.iter().map(|c| c.2 + 1).collect();
            for row in db.query(&registered_sql(), &[&addrs, &boundaries]).await? {
                let position: i64 = row.try_get(0)?;
                let (pot, _, epoch, amount) = usize::try_from(position - 1)
                    .ok()
                    .and_then(|i| candidates.get(i))
                    .ok_or_else(|| CheckError::Data("unnest returned a bad position".into()))?;
                let entry = fresh.entry(*epoch).or_default().pot_mut(*pot);
                entry.unpaid_payments += 1;
                entry.unpaid_lovelace = entry.unpaid_lovelace.saturating_add(*amount);
            }
        }
        for ((pot, _, spendable), (count, certified)) in rewards {
            let epoch = spendable - 1;
            let before_conway = params.at(epoch).is_some_and(|p| p.protocol_major < CONWAY);
            if before_conway && !certified {
                fresh.entry(epoch).or_default().pot_mut(pot).orphan_rewards +=
                    u64::try_from(count).unwrap_or(0);
            }
        }

        Ok(fresh.into())
    }

    fn finish(&self, epochs: &BTreeMap<i64, MirTotals>, (): (), coverage: Coverage) -> Verdict {
        Verdict::Found(Findings::Mir(MirFindings {
            totals: total(epochs, MirTotals::add),
            coverage,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owed(amounts: &[i64]) -> Owed {
        let mut owed = Owed::default();
        for amount in amounts {
            owed.add(*amount);
        }
        owed
    }

    #[test]
    fn before_alonzo_the_last_certificate_replaces_the_earlier_ones() {
        assert_eq!(owed(&[100, 30, 40]).under(4), 40);
        assert_eq!(owed(&[100, 10]).under(2), 10);
    }

    #[test]
    fn from_alonzo_certificates_add_up_including_negative_deltas() {
        assert_eq!(owed(&[100, 30]).under(ALONZO), 130);
        assert_eq!(owed(&[100, -100]).under(6), 0);
    }

    #[test]
    fn totals_add_per_pot() {
        let mut totals = MirTotals::default();
        let epoch = MirTotals {
            reserves: MirPot {
                unpaid_payments: 1,
                unpaid_lovelace: 5,
                orphan_rewards: 2,
            },
            treasury: MirPot {
                unpaid_payments: 0,
                unpaid_lovelace: 0,
                orphan_rewards: 1,
            },
        };
        totals.add(&epoch);
        totals.add(&epoch);
        assert_eq!(totals.pot(Pot::Reserves).unpaid_lovelace, 10);
        assert_eq!(totals.pot(Pot::Reserves).orphan_rewards, 4);
        assert_eq!(totals.pot(Pot::Treasury).orphan_rewards, 2);
    }
}
