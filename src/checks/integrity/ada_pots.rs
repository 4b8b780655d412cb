//! `ada_pots`: the supply invariant.
//!
//! Every `ada_pots` row is the ledger's pots at an epoch boundary, and treasury + reserves +
//! rewards + utxo + deposits + fees must equal the maximum supply, 45 000 000 000 000 000
//! lovelace on every public network (deposits are `deposits_stake + deposits_drep +
//! deposits_proposal` from 13.3, a single `deposits` column before). The check reports the
//! newest epoch's deviation, the epochs whose sum differs, and the Shelley-era epochs up to
//! the tip epoch without a row (mainnet from 208, preprod from 4, preview from 0; for another
//! network the `--chain.shelley-start-epoch` override, else the first epoch in `ada_pots`).
//!
//! The sum is computed in SQL `numeric` and read as text: exact, never through a float.
//! `ada_pots` has one row per epoch (a few hundred) and no index; it is read by range of
//! `epoch_no` like the other integrity checks' tables. Since 13.7.0 db-sync derives `utxo` as
//! the remainder, so rows written by 13.7+ balance by construction; rows written earlier keep
//! the meaningful invariant, and a missing row means a boundary db-sync skipped.

use std::collections::BTreeMap;

use super::incremental::{Examined, Incremental, IntegrityCheck, Prerequisites};
use super::settings::IntegritySettings;
use super::sql::Reader;
use super::state::{Coverage, Scope};
use crate::chain::NetworkParams;
use crate::checks::{CheckError, CheckName, Findings, Verdict};

/// Shelley genesis `maxLovelaceSupply` of mainnet, preprod and preview.
pub const MAX_LOVELACE_SUPPLY: i128 = 45_000_000_000_000_000;

/// One epoch's rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochPots {
    /// Rows for the epoch (1 normally).
    pub rows: u32,
    /// Rows whose sum differs from the maximum supply.
    pub inconsistent_rows: u32,
    /// Sum of the newest row (highest id).
    pub newest_sum: i128,
    newest_id: i64,
}

/// The `ada_pots` check's findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdaPotsFindings {
    /// Newest epoch's sum minus the maximum supply (0 when it balances).
    pub deviation_lovelace: i128,
    /// The newest epoch with a row.
    pub newest_epoch: i64,
    /// Epochs whose sum differs from the maximum supply.
    pub inconsistent_epochs: u64,
    /// Shelley-era epochs up to the tip epoch without a row.
    pub missing_epochs: u64,
    /// First epoch expected to have a row.
    pub first_epoch: i64,
    /// What the run covered.
    pub coverage: Coverage,
}

fn rows_sql(deposits: &str) -> String {
    format!(
        "SELECT epoch_no::bigint, id, \
                (treasury + reserves + rewards + utxo + {deposits} + fees)::text \
         FROM ada_pots WHERE epoch_no >= $1::bigint AND epoch_no <= $2::bigint"
    )
}

const SPLIT_DEPOSITS: &str = "deposits_stake + deposits_drep + deposits_proposal";
const FIRST_EPOCH_SQL: &str = "SELECT min(epoch_no)::bigint FROM ada_pots";

/// Summarises per-epoch rows into the findings' counts; pure, so it is tested in-module.
pub(crate) fn summarise(
    results: &BTreeMap<i64, EpochPots>,
    first_epoch: i64,
    tip_epoch: i64,
) -> (Option<(i64, i128)>, u64, u64) {
    let newest = results
        .last_key_value()
        .map(|(epoch, pots)| (*epoch, pots.newest_sum - MAX_LOVELACE_SUPPLY));
    let inconsistent = results
        .values()
        .filter(|pots| pots.inconsistent_rows > 0)
        .count() as u64;
    let missing = (first_epoch..=tip_epoch)
        .filter(|epoch| !results.contains_key(epoch))
        .count() as u64;
    (newest, inconsistent, missing)
}

/// Checks the supply invariant, epoch by epoch.
pub type AdaPotsCheck = IntegrityCheck<AdaPotsRule>;

impl AdaPotsCheck {
    /// A check that has examined nothing yet; `chain_override` (the `--chain.*` flags) says
    /// where Shelley starts on networks the exporter does not know.
    pub fn new(settings: IntegritySettings, chain_override: Option<NetworkParams>) -> AdaPotsCheck {
        IntegrityCheck::of(AdaPotsRule { chain_override }, settings)
    }
}

/// The `ada_pots` rule; its partial results are by epoch (epochs without a row are absent).
#[derive(Clone, Debug)]
pub struct AdaPotsRule {
    /// Where Shelley starts on a network the exporter does not know (`--chain.*`).
    chain_override: Option<NetworkParams>,
}

impl Incremental for AdaPotsRule {
    const NAME: CheckName = CheckName::AdaPots;
    type Epoch = EpochPots;
    type Ready = ();
    /// The first epoch expected to have a row.
    type Seen = i64;

    async fn prerequisites(&self, db: &Reader<'_>) -> Result<Prerequisites<()>, CheckError> {
        let why_not = db.missing_prerequisite(&["ada_pots"], &[]);
        Ok(db.or_ledger_missing(why_not).await?.into())
    }

    async fn examine(
        &self,
        db: &Reader<'_>,
        (): &(),
        scope: &Scope,
    ) -> Result<Examined<EpochPots, i64>, CheckError> {
        let deposits = if db.has_column("ada_pots", "deposits_stake").await? {
            SPLIT_DEPOSITS
        } else {
            "deposits"
        };
        let known = self
            .chain_override
            .clone()
            .or_else(|| db.schema.network.as_deref().and_then(NetworkParams::known));
        let first_epoch = match known {
            Some(params) => params.shelley_start_epoch,
            None => db
                .query_value::<Option<i64>>(FIRST_EPOCH_SQL, &[])
                .await?
                .unwrap_or(scope.tip_epoch),
        };

        let mut fresh: BTreeMap<i64, EpochPots> = BTreeMap::new();
        for row in db.query(&rows_sql(deposits), &scope.bounds()).await? {
            let epoch: i64 = row.try_get(0)?;
            let id: i64 = row.try_get(1)?;
            let text: &str = row.try_get(2)?;
            let sum: i128 = text
                .parse()
                .map_err(|_| CheckError::Data(format!("ada_pots sum {text} is not an integer")))?;
            let pots = fresh.entry(epoch).or_default();
            pots.rows += 1;
            if sum != MAX_LOVELACE_SUPPLY {
                pots.inconsistent_rows += 1;
            }
            if pots.rows == 1 || id > pots.newest_id {
                pots.newest_id = id;
                pots.newest_sum = sum;
            }
        }

        Ok(Examined {
            epochs: fresh,
            seen: first_epoch,
        })
    }

    fn finish(
        &self,
        epochs: &BTreeMap<i64, EpochPots>,
        first_epoch: i64,
        coverage: Coverage,
    ) -> Verdict {
        let (newest, inconsistent_epochs, missing_epochs) =
            // While a first pass is under way, only the epochs it reached can be missing.
            summarise(
                epochs,
                first_epoch.max(coverage.covered_from.unwrap_or(coverage.tip_epoch)),
                coverage.tip_epoch,
            );
        let Some((newest_epoch, deviation_lovelace)) = newest else {
            return Verdict::NotApplicable("ada_pots has no row up to the tip epoch".into());
        };
        Verdict::Found(Findings::AdaPots(AdaPotsFindings {
            deviation_lovelace,
            newest_epoch,
            inconsistent_epochs,
            missing_epochs,
            first_epoch,
            coverage,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pots(sum: i128) -> EpochPots {
        EpochPots {
            rows: 1,
            inconsistent_rows: u32::from(sum != MAX_LOVELACE_SUPPLY),
            newest_sum: sum,
            newest_id: 0,
        }
    }

    #[test]
    fn summary_counts_broken_and_missing_epochs() {
        let results = BTreeMap::from([
            (208, pots(MAX_LOVELACE_SUPPLY)),
            (209, pots(MAX_LOVELACE_SUPPLY - 7)),
            (211, pots(MAX_LOVELACE_SUPPLY + 3)),
        ]);
        // 210 and 212 (the tip epoch) have no row.
        assert_eq!(summarise(&results, 208, 212), (Some((211, 3)), 2, 2));
        assert_eq!(summarise(&BTreeMap::new(), 0, 2), (None, 0, 3));
    }
}
