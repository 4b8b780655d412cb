//! The protocol parameters of each epoch that the integrity rules depend on.

use std::collections::BTreeMap;

use super::sql::Reader;
use crate::checks::CheckError;

/// Protocol major version from which several MIR certificates to one credential in one epoch
/// add up instead of the last replacing the others (Alonzo).
pub const ALONZO: i32 = 5;
/// Protocol major version of Conway: no MIR certificates any more, and enacted treasury
/// withdrawals appear as `treasury` instant rewards without a certificate.
pub const CONWAY: i32 = 9;

/// The protocol parameters the checks need, by epoch.
///
/// The protocol version comes from `epoch_param.protocol_major`, the version the ledger had
/// adopted for the epoch. `block.proto_major` is not used: it is the version the block
/// producer's software announces, which runs ahead of the ledger's around every hard fork,
/// exactly where the Alonzo and Conway rules switch. `epoch_param` is tiny (one row per epoch,
/// no index needed) and is empty only with the ledger disabled, when these checks do not
/// apply anyway.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochParams {
    by_epoch: BTreeMap<i64, EpochParam>,
}

/// One epoch's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochParam {
    /// The protocol major version the ledger had adopted for the epoch.
    pub protocol_major: i32,
    /// The pool deposit in lovelace.
    pub pool_deposit: i64,
}

const EPOCH_PARAM_SQL: &str = "SELECT epoch_no::bigint, protocol_major::int, pool_deposit::bigint \
     FROM epoch_param ORDER BY id";

impl EpochParams {
    /// Every epoch's row.
    pub(crate) async fn load(db: &Reader<'_>) -> Result<EpochParams, CheckError> {
        let by_epoch = db
            .query(EPOCH_PARAM_SQL, &[])
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    EpochParam {
                        protocol_major: row.try_get(1)?,
                        pool_deposit: row.try_get(2)?,
                    },
                ))
            })
            .collect::<Result<_, CheckError>>()?;
        Ok(EpochParams { by_epoch })
    }

    #[cfg(test)]
    pub(crate) fn from_iter(params: impl IntoIterator<Item = (i64, EpochParam)>) -> EpochParams {
        EpochParams {
            by_epoch: params.into_iter().collect(),
        }
    }

    /// Whether `epoch_param` has no row (the ledger is disabled).
    pub(crate) fn is_empty(&self) -> bool {
        self.by_epoch.is_empty()
    }

    /// The parameters of `epoch`. An epoch without a row (which a ledger-enabled db-sync
    /// does not leave) takes the nearest earlier epoch's, or the earliest row's when there is
    /// none: protocol versions only go up, so this errs towards the older rules only before
    /// the first row.
    pub(crate) fn at(&self, epoch: i64) -> Option<EpochParam> {
        self.by_epoch
            .range(..=epoch)
            .next_back()
            .or_else(|| self.by_epoch.first_key_value())
            .map(|(_, param)| *param)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(protocol_major: i32) -> EpochParam {
        EpochParam {
            protocol_major,
            pool_deposit: 500_000_000,
        }
    }

    #[test]
    fn epoch_params_fall_back_to_the_nearest_earlier_epoch() {
        let params = EpochParams::from_iter([(210, param(2)), (290, param(5)), (507, param(9))]);
        assert_eq!(params.at(200).map(|p| p.protocol_major), Some(2));
        assert_eq!(params.at(289).map(|p| p.protocol_major), Some(2));
        assert_eq!(params.at(290).map(|p| p.protocol_major), Some(5));
        assert_eq!(params.at(600).map(|p| p.protocol_major), Some(9));
        assert_eq!(EpochParams::default().at(1), None);
    }
}
