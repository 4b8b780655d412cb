//! `pool_refunds`: pool deposit refunds of effective retirements.
//!
//! A retirement certificate with `retiring_epoch = E <= tip epoch` takes effect at the
//! (E−1)→E boundary unless, before epoch E, a later retirement certificate for the same pool
//! replaced it or a re-registration (`pool_update`) cancelled it ("later" by (tx_id,
//! cert_index), "before" by the epoch of the certificate's block). A pool that was reaped and
//! registered again afterwards was still retired. The deposit goes back to the reward account
//! of the pool's newest `pool_update` before the retirement: db-sync records it as a `reward`
//! row with `type = 'refund'`, `pool_id` = the pool and `earned_epoch = spendable_epoch = E`;
//! if that account is not registered at the boundary the deposit goes to the treasury and
//! db-sync records nothing (*unclaimed*, not a fault).
//!
//! Per retiring epoch the check counts *missing* refunds (effective retirement, registered
//! account, no refund row) with their deposits, and *unclaimed* ones.
//!
//! Cost: `pool_retire` is small and read by range of `retiring_epoch`; the competing
//! certificates come from `pool_retire`/`pool_update` by pool (`idx_pool_retire_hash_id`,
//! `idx_pool_update_hash_id`) with tx and block through primary keys; the refund is looked up
//! exactly by (addr_id, type, earned_epoch, pool_id) through `unique_reward` (or
//! `idx_reward_addr_id`), never by type. All of these are stage-4 indexes, so the check waits
//! for them.

use std::collections::BTreeMap;

use super::incremental::{total, Examined, Incremental, IntegrityCheck, Prerequisites};
use super::params::EpochParams;
use super::sql::{self, Reader};
use super::state::{Coverage, Scope};
use crate::checks::{CheckError, CheckName, Findings, Verdict};

/// One retiring epoch's partial result, or the totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefundTotals {
    /// Effective retirements whose registered reward account has no refund row.
    pub missing: u64,
    /// Deposits of those retirements.
    pub missing_lovelace: i64,
    /// Effective retirements whose reward account was not registered at the boundary: the
    /// deposit went to the treasury (informational).
    pub unclaimed: u64,
}

impl RefundTotals {
    fn add(&mut self, other: &RefundTotals) {
        self.missing += other.missing;
        self.missing_lovelace = self.missing_lovelace.saturating_add(other.missing_lovelace);
        self.unclaimed += other.unclaimed;
    }
}

/// The `pool_refunds` check's findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolRefundFindings {
    /// Totals over every examined retiring epoch.
    pub totals: RefundTotals,
    /// What the run covered.
    pub coverage: Coverage,
}

/// Effective retirements with retiring epoch in `[$1, $2]`, their reward account, its
/// registration at the boundary, whether the refund row exists, and (13.3+) the deposit the
/// pool paid. `deposit` is the expression for the latter. The account comes from a lateral
/// join, not a scalar subquery: the planner would repeat a scalar subquery for every later
/// reference to its column.
fn retirements_sql(deposit: &str) -> String {
    format!(
        "WITH candidate AS ( \
           SELECT pr.hash_id, pr.retiring_epoch::bigint AS epoch, pr.announced_tx_id AS tx_id, pr.cert_index \
           FROM pool_retire pr \
           WHERE pr.retiring_epoch >= $1::bigint AND pr.retiring_epoch <= $2::bigint), \
         effective AS ( \
           SELECT c.* FROM candidate c \
           WHERE NOT EXISTS ( \
               SELECT 1 FROM pool_retire later \
               JOIN tx ON tx.id = later.announced_tx_id JOIN block b ON b.id = tx.block_id \
               WHERE later.hash_id = c.hash_id \
                 AND (later.announced_tx_id, later.cert_index) > (c.tx_id, c.cert_index) \
                 AND b.epoch_no < c.epoch) \
             AND NOT EXISTS ( \
               SELECT 1 FROM pool_update pu \
               JOIN tx ON tx.id = pu.registered_tx_id JOIN block b ON b.id = tx.block_id \
               WHERE pu.hash_id = c.hash_id \
                 AND (pu.registered_tx_id, pu.cert_index) > (c.tx_id, c.cert_index) \
                 AND b.epoch_no < c.epoch)), \
         account AS ( \
           SELECT e.*, newest.reward_addr_id FROM effective e \
           LEFT JOIN LATERAL ( \
               SELECT pu.reward_addr_id FROM pool_update pu \
               WHERE pu.hash_id = e.hash_id \
                 AND (pu.registered_tx_id, pu.cert_index) < (e.tx_id, e.cert_index) \
               ORDER BY pu.registered_tx_id DESC, pu.cert_index DESC LIMIT 1) newest ON true) \
         SELECT a.epoch, a.hash_id, a.reward_addr_id, {deposit} AS deposit, \
                {registered} AS registered, \
                EXISTS (SELECT 1 FROM reward rw \
                        WHERE rw.addr_id = a.reward_addr_id AND rw.type = 'refund' \
                          AND rw.earned_epoch = a.epoch AND rw.pool_id = a.hash_id) AS refunded \
         FROM account a",
        registered = sql::registered_at("a.reward_addr_id", "a.epoch"),
    )
}

/// 13.3+: the deposit of the pool's newest update before the retirement that carries one
/// (re-registrations carry NULL).
const DEPOSIT_SQL: &str = "(SELECT pu.deposit::bigint FROM pool_update pu \
     WHERE pu.hash_id = a.hash_id AND pu.deposit IS NOT NULL \
       AND (pu.registered_tx_id, pu.cert_index) < (a.tx_id, a.cert_index) \
     ORDER BY pu.registered_tx_id DESC, pu.cert_index DESC LIMIT 1)";

const TABLES: [&str; 7] = [
    "pool_retire",
    "pool_update",
    "reward",
    "stake_registration",
    "stake_deregistration",
    "epoch_param",
    "ada_pots",
];

const POOL_INDEXES: [&str; 2] = ["idx_pool_retire_hash_id", "idx_pool_update_hash_id"];

/// Compares effective pool retirements with refund rewards, epoch by epoch.
pub type PoolRefundsCheck = IntegrityCheck<PoolRefundsRule>;

/// The `pool_refunds` rule; its partial results are by retiring epoch.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolRefundsRule;

impl Incremental for PoolRefundsRule {
    const NAME: CheckName = CheckName::PoolRefunds;
    type Epoch = RefundTotals;
    type Ready = ();
    type Seen = ();

    async fn prerequisites(&self, db: &Reader<'_>) -> Result<Prerequisites<()>, CheckError> {
        let indexes: Vec<&str> = sql::REGISTRATION_INDEXES
            .into_iter()
            .chain(POOL_INDEXES)
            .collect();
        let mut why_not = db.missing_prerequisite(&TABLES, &indexes);
        if why_not.is_none()
            && !db.schema.has_index("unique_reward")
            && !db.schema.has_index("idx_reward_addr_id")
        {
            why_not = Some(
                "neither unique_reward nor idx_reward_addr_id exists: db-sync creates them \
                 once it is near the tip, and without them refunds could only be found by \
                 scanning reward"
                    .to_owned(),
            );
        }
        Ok(db.or_ledger_missing(why_not).await?.into())
    }

    async fn examine(
        &self,
        db: &Reader<'_>,
        (): &(),
        scope: &Scope,
    ) -> Result<Examined<RefundTotals>, CheckError> {
        let params = EpochParams::load(db).await?;
        let deposit = if db.has_column("pool_update", "deposit").await? {
            DEPOSIT_SQL
        } else {
            "NULL::bigint"
        };

        let mut fresh: BTreeMap<i64, RefundTotals> = BTreeMap::new();
        for row in db.query(&retirements_sql(deposit), &scope.bounds()).await? {
            let epoch: i64 = row.try_get(0)?;
            let pool_id: i64 = row.try_get(1)?;
            // A retirement without any registration before it cannot have passed the ledger;
            // there is no account to check.
            if row.try_get::<_, Option<i64>>(2)?.is_none() {
                tracing::debug!(pool_id, epoch, "retirement without a prior pool_update");
                continue;
            }
            let (registered, refunded): (bool, bool) = (row.try_get(4)?, row.try_get(5)?);
            if refunded {
                continue;
            }
            let totals = fresh.entry(epoch).or_default();
            if registered {
                // Shelley to Babbage refunded the pool deposit parameter in force at the reap
                // (that of epoch E−1); 13.3+ records what the pool actually paid.
                let deposit = row
                    .try_get::<_, Option<i64>>(3)?
                    .or_else(|| params.at(epoch - 1).map(|param| param.pool_deposit));
                totals.missing += 1;
                totals.missing_lovelace =
                    totals.missing_lovelace.saturating_add(deposit.unwrap_or(0));
            } else {
                totals.unclaimed += 1;
            }
        }

        Ok(fresh.into())
    }

    fn finish(&self, epochs: &BTreeMap<i64, RefundTotals>, (): (), coverage: Coverage) -> Verdict {
        Verdict::Found(Findings::PoolRefunds(PoolRefundFindings {
            totals: total(epochs, RefundTotals::add),
            coverage,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up() {
        let mut totals = RefundTotals::default();
        let epoch = RefundTotals {
            missing: 1,
            missing_lovelace: 500_000_000,
            unclaimed: 2,
        };
        totals.add(&epoch);
        totals.add(&epoch);
        assert_eq!(
            totals,
            RefundTotals {
                missing: 2,
                missing_lovelace: 1_000_000_000,
                unclaimed: 4
            }
        );
    }

    #[test]
    fn the_query_compares_certificates_by_position_and_epoch() {
        let sql = retirements_sql("NULL::bigint");
        assert!(sql.contains("(later.announced_tx_id, later.cert_index) > (c.tx_id, c.cert_index)"));
        assert!(sql.contains("(pu.registered_tx_id, pu.cert_index) > (c.tx_id, c.cert_index)"));
        assert!(sql.contains("sr.epoch_no < a.epoch"));
    }
}
