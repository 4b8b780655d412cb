//! What the integrity checks (`mir`, `pool_refunds`, `ada_pots`, `epoch_stake`) share: the
//! per-epoch incremental state, the rollback detection that voids it, the "registered at a
//! boundary" rule, the epoch parameters, and a query helper that can record query plans.
//!
//! On a mainnet-sized database the whole history is examined once; later runs re-examine only
//! the epochs that can have changed since the last run (from the newest completed epoch at
//! that time up to the tip epoch). Each check keeps one partial result per epoch, so the
//! totals of an incremental run are exactly those a full run would produce. The whole history
//! is examined again every `--integrity.full-interval`, after a rollback across an epoch
//! boundary (the tip epoch went down, or the first block of the last examined tip epoch is
//! gone or replaced), and when the schema changed under the exporter (an upgrade).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use deadpool_postgres::Transaction;
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::checks::CheckError;
use crate::db::Schema;

/// Protocol major version from which several MIR certificates to one credential in one epoch
/// add up instead of the last replacing the others (Alonzo).
pub const ALONZO: i32 = 5;
/// Protocol major version of Conway: no MIR certificates any more, and enacted treasury
/// withdrawals appear as `treasury` instant rewards without a certificate.
pub const CONWAY: i32 = 9;

/// Settings shared by the integrity checks.
#[derive(Clone, Debug)]
pub struct IntegritySettings {
    /// How often the whole history is examined again (`--integrity.full-interval`).
    pub full_interval: Duration,
    /// Integrity checks holding the same gate run one at a time, and take a connection only
    /// once they hold it, so that a long full run never starves the tip check of connections.
    pub gate: Option<Arc<Semaphore>>,
    /// When set, every query is also `EXPLAIN`ed and its plan recorded (tests).
    pub plans: Option<PlanLog>,
}

impl IntegritySettings {
    /// Settings with `full_interval`, no gate and no plan log.
    pub fn new(full_interval: Duration) -> IntegritySettings {
        IntegritySettings {
            full_interval,
            gate: None,
            plans: None,
        }
    }

    /// Runs the check under `gate`.
    pub fn gated(mut self, gate: Arc<Semaphore>) -> IntegritySettings {
        self.gate = Some(gate);
        self
    }

    /// Records the plan of every query in `plans`.
    pub fn explain_into(mut self, plans: PlanLog) -> IntegritySettings {
        self.plans = Some(plans);
        self
    }
}

/// The plans of the queries a check ran, as `EXPLAIN` printed them with the real parameters.
#[derive(Clone, Debug, Default)]
pub struct PlanLog(Arc<Mutex<Vec<QueryPlan>>>);

/// One query and its plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryPlan {
    /// The SQL text.
    pub sql: String,
    /// `EXPLAIN` output, one plan line per line.
    pub plan: String,
}

impl PlanLog {
    /// Everything recorded so far.
    pub fn plans(&self) -> Vec<QueryPlan> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn push(&self, plan: QueryPlan) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(plan);
    }
}

/// Runs one query. Not prepared-and-cached on purpose: these run every few minutes, and an
/// unnamed statement is planned with the actual parameters every time, which is also exactly
/// what `EXPLAIN` shows.
pub(crate) async fn query(
    tx: &Transaction<'_>,
    plans: Option<&PlanLog>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, CheckError> {
    record_plan(tx, plans, sql, params).await?;
    Ok(tx.query(sql, params).await?)
}

/// Like [`query`], but hands the rows to `each` as they arrive instead of collecting them:
/// a whole-history run over tens of thousands of rows then costs no more memory than one row.
pub(crate) async fn query_each(
    tx: &Transaction<'_>,
    plans: Option<&PlanLog>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    mut each: impl FnMut(Row) -> Result<(), CheckError>,
) -> Result<(), CheckError> {
    record_plan(tx, plans, sql, params).await?;
    let rows = tx.query_raw(sql, params.iter().copied()).await?;
    let mut rows = std::pin::pin!(rows);
    while let Some(row) = rows.next().await {
        each(row?)?;
    }
    Ok(())
}

/// Records the plan of `sql` with these parameters, when plans are being recorded.
async fn record_plan(
    tx: &Transaction<'_>,
    plans: Option<&PlanLog>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(), CheckError> {
    if let Some(log) = plans {
        let plan = tx
            .query(&format!("EXPLAIN {sql}"), params)
            .await?
            .iter()
            .map(|row| row.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n");
        log.push(QueryPlan {
            sql: sql.to_owned(),
            plan,
        });
    }
    Ok(())
}

/// Which epochs the last run covered, published with the findings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// Tip epoch at the run.
    pub tip_epoch: i64,
    /// Whether the run examined the whole history.
    pub full_run: bool,
    /// First epoch the run (re-)examined; older epochs came from earlier runs.
    pub from_epoch: i64,
    /// How often the whole history is examined again.
    pub full_interval: Duration,
}

/// The first block of an epoch, remembered to notice a rollback across that boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Mark {
    epoch: i64,
    block_id: i64,
    hash: Vec<u8>,
}

/// What one run examines.
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    /// The tip's epoch.
    pub tip_epoch: i64,
    /// First epoch to (re-)examine (0 on a full run).
    pub from: i64,
    /// Whether the whole history is examined.
    pub full: bool,
    started: Instant,
    mark: Mark,
    stage_two: i64,
}

impl Scope {
    /// How the run is described in the findings.
    pub fn coverage(&self, full_interval: Duration) -> Coverage {
        Coverage {
            tip_epoch: self.tip_epoch,
            full_run: self.full,
            from_epoch: self.from,
            full_interval,
        }
    }
}

/// A check's partial results, one per epoch, and what it needs to know to continue.
#[derive(Debug)]
pub(crate) struct EpochState<T> {
    full_interval: Duration,
    last_full: Option<Instant>,
    /// The first block of the tip epoch at the last run.
    mark: Option<Mark>,
    stage_two: Option<i64>,
    results: BTreeMap<i64, T>,
}

/// The newest block's epoch, through the primary key (as the tip check reads it).
const TIP_EPOCH_SQL: &str = "SELECT epoch_no::bigint FROM block \
     WHERE block_no IS NOT NULL ORDER BY id DESC LIMIT 1";
/// Whether a remembered block is still there, through the primary key.
const BLOCK_HASH_SQL: &str = "SELECT hash FROM block WHERE id = $1::bigint";
/// The first block of an epoch. `idx_block_epoch_no` finds the epoch's blocks (at most an
/// epoch's worth, 21 600 on mainnet); `id + 0` keeps the planner from walking `block_pkey` in
/// id order and filtering on the epoch, which for a recent epoch would read the whole table.
const EPOCH_FIRST_BLOCK_SQL: &str = "SELECT id, hash FROM block \
     WHERE epoch_no = $1::bigint ORDER BY id + 0 LIMIT 1";

impl<T> EpochState<T> {
    pub fn new(full_interval: Duration) -> EpochState<T> {
        EpochState {
            full_interval,
            last_full: None,
            mark: None,
            stage_two: None,
            results: BTreeMap::new(),
        }
    }

    /// Forgets everything: the next run examines the whole history.
    pub fn reset(&mut self) {
        self.last_full = None;
        self.mark = None;
        self.stage_two = None;
        self.results.clear();
    }

    /// Decides what this run examines; `None` when the database holds no block yet.
    /// Changes nothing: a failed run leaves the state as it was.
    pub async fn scope(
        &self,
        tx: &Transaction<'_>,
        plans: Option<&PlanLog>,
        schema: &Schema,
    ) -> Result<Option<Scope>, CheckError> {
        let started = Instant::now();
        let Some(tip_epoch) = tip_epoch(tx, plans).await? else {
            return Ok(None);
        };
        let mark_intact = match &self.mark {
            Some(mark) => query(tx, plans, BLOCK_HASH_SQL, &[&mark.block_id])
                .await?
                .first()
                .is_some_and(|row| row.get::<_, Vec<u8>>(0) == mark.hash),
            None => false,
        };
        let full_because = match (&self.mark, self.last_full) {
            (None, _) | (_, None) => Some("first run"),
            _ if self.stage_two != Some(schema.stage_two) => Some("the schema changed"),
            (Some(mark), _) if tip_epoch < mark.epoch => Some("rollback: the tip epoch went down"),
            _ if !mark_intact => Some("rollback across an epoch boundary"),
            (_, Some(last)) if started.duration_since(last) >= self.full_interval => {
                Some("periodic full re-check")
            }
            _ => None,
        };
        if let Some(reason) = full_because {
            if reason.starts_with("rollback") {
                tracing::info!(reason, tip_epoch, "examining the whole history again");
            } else {
                tracing::debug!(reason, tip_epoch, "examining the whole history");
            }
        }
        let mark = match &self.mark {
            Some(mark) if mark_intact && mark.epoch == tip_epoch => mark.clone(),
            _ => {
                let rows = query(tx, plans, EPOCH_FIRST_BLOCK_SQL, &[&tip_epoch]).await?;
                let row = rows.first().ok_or_else(|| {
                    CheckError::Data(format!("epoch {tip_epoch} of the tip has no block"))
                })?;
                Mark {
                    epoch: tip_epoch,
                    block_id: row.get(0),
                    hash: row.get(1),
                }
            }
        };
        let from = match (&self.mark, full_because) {
            // The newest epoch that was complete at the last run, and everything after it.
            (Some(last), None) => (last.epoch - 1).max(0),
            _ => 0,
        };
        Ok(Some(Scope {
            tip_epoch,
            from,
            full: full_because.is_some(),
            started,
            mark,
            stage_two: schema.stage_two,
        }))
    }

    /// Stores the results of a successful run: all of them after a full run, otherwise those
    /// from `scope.from` on (every epoch the run examined, including those that now have no
    /// entry because nothing was found).
    pub fn commit(&mut self, scope: Scope, fresh: BTreeMap<i64, T>) {
        if scope.full {
            self.results = fresh;
            self.last_full = Some(scope.started);
        } else {
            drop(self.results.split_off(&scope.from));
            self.results.extend(fresh);
        }
        self.mark = Some(scope.mark);
        self.stage_two = Some(scope.stage_two);
    }

    /// The partial results by epoch.
    pub fn results(&self) -> &BTreeMap<i64, T> {
        &self.results
    }

    /// How often the whole history is examined again.
    pub fn full_interval(&self) -> Duration {
        self.full_interval
    }
}

/// The tip's epoch; `None` while the database holds no numbered block.
pub(crate) async fn tip_epoch(
    tx: &Transaction<'_>,
    plans: Option<&PlanLog>,
) -> Result<Option<i64>, CheckError> {
    Ok(query(tx, plans, TIP_EPOCH_SQL, &[])
        .await?
        .first()
        .and_then(|row| row.get::<_, Option<i64>>(0)))
}

/// SQL that is true when the stake address `addr` was registered at the boundary into epoch
/// `boundary`: its newest registration or deregistration certificate from an earlier epoch,
/// ordered by (tx_id, cert_index), is a registration. Both lookups go through
/// `idx_stake_registration_addr_id` / `idx_stake_deregistration_addr_id`.
pub(crate) fn registered_at(addr: &str, boundary: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM (\
           SELECT sr.tx_id, sr.cert_index, true AS registered FROM stake_registration sr \
            WHERE sr.addr_id = {addr} AND sr.epoch_no < {boundary} \
           UNION ALL \
           SELECT sd.tx_id, sd.cert_index, false FROM stake_deregistration sd \
            WHERE sd.addr_id = {addr} AND sd.epoch_no < {boundary} \
           ORDER BY 1 DESC, 2 DESC LIMIT 1) newest WHERE newest.registered)"
    )
}

/// The indexes every "registered at a boundary" lookup needs (stage 4).
pub(crate) const REGISTRATION_INDEXES: [&str; 2] = [
    "idx_stake_registration_addr_id",
    "idx_stake_deregistration_addr_id",
];

/// Why a check that needs `tables` and `indexes` cannot run, if it cannot.
pub(crate) fn missing_prerequisite(
    schema: &Schema,
    tables: &[&str],
    indexes: &[&str],
) -> Option<String> {
    if let Some(table) = tables.iter().find(|table| !schema.has_table(table)) {
        return Some(format!(
            "table {table} does not exist in this db-sync release"
        ));
    }
    schema.missing_index(indexes).map(|index| {
        format!(
            "index {index} is missing: db-sync creates it once it is near the tip, \
             and without it this check would scan a large table"
        )
    })
}

/// The ledger writes `ada_pots` at every Shelley-era boundary; with `ledger: disable` it stays
/// empty, and so do `reward`, `epoch_stake` and `epoch_param`. A small table.
const LEDGER_SQL: &str = "SELECT EXISTS (SELECT 1 FROM ada_pots)";

/// Why ledger-derived checks cannot run, if the ledger data is absent.
pub(crate) async fn ledger_missing(
    tx: &Transaction<'_>,
    plans: Option<&PlanLog>,
) -> Result<Option<String>, CheckError> {
    let present: bool = query(tx, plans, LEDGER_SQL, &[]).await?[0].get(0);
    Ok((!present).then(|| {
        "ada_pots is empty: db-sync runs with the ledger disabled (or has not reached Shelley)"
            .to_owned()
    }))
}

/// Whether `table.column` exists (columns moved between releases).
pub(crate) async fn has_column(
    tx: &Transaction<'_>,
    plans: Option<&PlanLog>,
    table: &str,
    column: &str,
) -> Result<bool, CheckError> {
    const SQL: &str = "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute \
         WHERE attrelid = to_regclass('public.' || $1::text) AND attname = $2::text \
           AND attnum > 0 AND NOT attisdropped)";
    Ok(query(tx, plans, SQL, &[&table, &column]).await?[0].get(0))
}

/// The protocol parameters the checks need, by epoch.
///
/// The protocol version comes from `epoch_param.protocol_major`, the version the ledger had
/// adopted for the epoch. `block.proto_major` is not used: it is the version the block
/// producer's software announces, which runs ahead of the ledger's around every hard fork,
/// exactly where the Alonzo and Conway rules switch. `epoch_param` is tiny (one row per epoch,
/// no index needed) and is empty only with the ledger disabled, when these checks do not
/// apply anyway.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EpochParams {
    by_epoch: BTreeMap<i64, EpochParam>,
}

/// One epoch's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EpochParam {
    pub protocol_major: i32,
    pub pool_deposit: i64,
}

const EPOCH_PARAM_SQL: &str = "SELECT epoch_no::bigint, protocol_major::int, pool_deposit::bigint \
     FROM epoch_param ORDER BY id";

impl EpochParams {
    pub async fn load(
        tx: &Transaction<'_>,
        plans: Option<&PlanLog>,
    ) -> Result<EpochParams, CheckError> {
        let by_epoch = query(tx, plans, EPOCH_PARAM_SQL, &[])
            .await?
            .iter()
            .map(|row| {
                (
                    row.get(0),
                    EpochParam {
                        protocol_major: row.get(1),
                        pool_deposit: row.get(2),
                    },
                )
            })
            .collect();
        Ok(EpochParams { by_epoch })
    }

    #[cfg(test)]
    pub fn from_iter(params: impl IntoIterator<Item = (i64, EpochParam)>) -> EpochParams {
        EpochParams {
            by_epoch: params.into_iter().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_epoch.is_empty()
    }

    /// The parameters of `epoch`. An epoch without a row (which a ledger-enabled db-sync
    /// does not leave) takes the nearest earlier epoch's, or the earliest row's when there is
    /// none: protocol versions only go up, so this errs towards the older rules only before
    /// the first row.
    pub fn at(&self, epoch: i64) -> Option<EpochParam> {
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

    fn scope(from: i64, full: bool) -> Scope {
        Scope {
            tip_epoch: 10,
            from,
            full,
            started: Instant::now(),
            mark: Mark {
                epoch: 10,
                block_id: 1,
                hash: vec![1],
            },
            stage_two: 44,
        }
    }

    #[test]
    fn an_incremental_commit_replaces_only_the_examined_epochs() {
        let mut state = EpochState::new(Duration::from_secs(60));
        state.commit(
            scope(0, true),
            BTreeMap::from([(3, 'a'), (5, 'b'), (8, 'c')]),
        );
        // Epoch 8 had a finding before and has none now: it must disappear, not linger.
        state.commit(scope(5, false), BTreeMap::from([(5, 'B'), (9, 'd')]));
        assert_eq!(
            state.results(),
            &BTreeMap::from([(3, 'a'), (5, 'B'), (9, 'd')])
        );
        state.commit(scope(0, true), BTreeMap::from([(1, 'z')]));
        assert_eq!(state.results(), &BTreeMap::from([(1, 'z')]));
    }
}
