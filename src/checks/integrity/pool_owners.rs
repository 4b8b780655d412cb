//! `pool_owners`: pool registration and update certificates (`pool_update` rows) without any
//! `pool_owner` row (db-tool's PoolOwner).
//!
//! db-sync writes one `pool_owner` row per owner of every certificate, in the same
//! transaction as the certificate, so a certificate without owners is a lost write (issue
//! #251 of db-sync). Counted per certificate, as db-tool does, although it prints "pools".
//! Partial results are by the epoch of the certificate's block; a rollback deletes
//! certificates and owners together, and the replaced epochs are re-examined (a rollback
//! across a boundary triggers a full run). A `pool_update` whose transaction is gone (a
//! rollback in progress elsewhere, seen in one snapshot) joins no block and is not counted.
//!
//! The ledger's owner set may legitimately be empty; if mainnet holds such certificates the
//! gauge has a floor, which is why the alert fires on an increase, not on a non-zero value.
//!
//! Cost: both tables are small (tens of thousands of rows on mainnet), so `pool_update` may
//! be read whole; its transaction and block come through the primary keys, never by a scan of
//! `tx` or `block`. `pool_owner_pool_update_id_idx` (stage 4) serves the owner lookup but is
//! not needed: without it the planner hashes the small `pool_owner`, so the check applies
//! during initial sync too.

use std::collections::BTreeMap;

use super::incremental::{total, Examined, Incremental, IntegrityCheck, Prerequisites};
use super::sql::Reader;
use super::state::{Coverage, Scope};
use crate::checks::{CheckError, CheckName, Findings, Verdict};

/// The `pool_owners` check's findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolOwnerFindings {
    /// `pool_update` rows without a `pool_owner` row.
    pub updates_without_owner: u64,
    /// What the run covered.
    pub coverage: Coverage,
}

/// Certificates without owners, per epoch of their block in `[$1, $2]`.
const OWNERLESS_SQL: &str = "SELECT b.epoch_no::bigint, count(*) \
     FROM pool_update pu \
     JOIN tx ON tx.id = pu.registered_tx_id \
     JOIN block b ON b.id = tx.block_id \
     WHERE b.epoch_no >= $1::bigint AND b.epoch_no <= $2::bigint \
       AND NOT EXISTS (SELECT 1 FROM pool_owner po WHERE po.pool_update_id = pu.id) \
     GROUP BY b.epoch_no";

const TABLES: [&str; 4] = ["pool_update", "pool_owner", "tx", "block"];

/// Looks for pool certificates without owners, epoch by epoch.
pub type PoolOwnersCheck = IntegrityCheck<PoolOwnersRule>;

/// The `pool_owners` rule; its partial results are owner-less certificates by epoch.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolOwnersRule;

impl Incremental for PoolOwnersRule {
    const NAME: CheckName = CheckName::PoolOwners;
    type Epoch = u64;
    type Ready = ();
    type Seen = ();

    async fn prerequisites(&self, db: &Reader<'_>) -> Result<Prerequisites<()>, CheckError> {
        // Certificates and owners are written with the ledger off too; no index is required.
        Ok(db.missing_prerequisite(&TABLES, &[]).into())
    }

    async fn examine(
        &self,
        db: &Reader<'_>,
        (): &(),
        scope: &Scope,
    ) -> Result<Examined<u64>, CheckError> {
        Ok(db
            .epoch_counts(OWNERLESS_SQL, &scope.bounds())
            .await?
            .into())
    }

    fn finish(&self, epochs: &BTreeMap<i64, u64>, (): (), coverage: Coverage) -> Verdict {
        Verdict::Found(Findings::PoolOwners(PoolOwnerFindings {
            updates_without_owner: total(epochs, |sum, epoch| *sum += epoch),
            coverage,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_counts_certificates_not_pools() {
        assert!(OWNERLESS_SQL.contains("count(*)"));
        assert!(!OWNERLESS_SQL.contains("DISTINCT"));
        assert!(OWNERLESS_SQL.contains("po.pool_update_id = pu.id"));
    }
}
