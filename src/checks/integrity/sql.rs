//! The SQL every integrity check shares: the [`Reader`] that runs queries (and records their
//! plans), the tip epoch, the prerequisites a check may lack, and the "registered at a
//! boundary" rule.

use std::collections::BTreeMap;

use deadpool_postgres::Transaction;
use futures_util::StreamExt;
use tokio_postgres::types::{FromSqlOwned, ToSql};
use tokio_postgres::Row;

use super::settings::{IntegritySettings, PlanLog, QueryPlan};
use crate::checks::{CheckError, Context};
use crate::db::Schema;

/// What an integrity check reads the database through during one run: the run's read-only
/// transaction, the probed schema, and the plan log when plans are being recorded.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    /// The run's read-only transaction.
    pub tx: &'a Transaction<'a>,
    /// The probed schema.
    pub schema: &'a Schema,
    /// Where query plans are recorded (tests).
    pub plans: Option<&'a PlanLog>,
}

impl<'a> Reader<'a> {
    /// A run's reader: its transaction and schema, and the plan log of `settings`.
    pub(crate) fn of(ctx: &Context<'a>, settings: &'a IntegritySettings) -> Reader<'a> {
        Reader {
            tx: ctx.tx,
            schema: ctx.schema,
            plans: settings.plans.as_ref(),
        }
    }

    /// Runs one query. Not prepared-and-cached on purpose: these run every few minutes, and
    /// an unnamed statement is planned with the actual parameters every time, which is also
    /// exactly what `EXPLAIN` shows.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, CheckError> {
        self.record_plan(sql, params).await?;
        Ok(self.tx.query(sql, params).await?)
    }

    /// The first column of the one row `sql` returns (an aggregate, an `EXISTS`).
    pub async fn query_value<T: FromSqlOwned>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<T, CheckError> {
        match self.query(sql, params).await?.first() {
            Some(row) => Ok(row.try_get(0)?),
            None => Err(CheckError::Data(format!("no row from {sql}"))),
        }
    }

    /// `(epoch, count)` rows as a map of the non-zero counts (the partial results of a rule
    /// that counts offending items per epoch).
    pub async fn epoch_counts(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<BTreeMap<i64, u64>, CheckError> {
        let mut counts = BTreeMap::new();
        self.query_each(sql, params, |row| {
            let count: i64 = row.try_get(1)?;
            if count > 0 {
                counts.insert(row.try_get(0)?, count.unsigned_abs());
            }
            Ok(())
        })
        .await?;
        Ok(counts)
    }

    /// Like [`Reader::query`], but hands the rows to `each` as they arrive instead of
    /// collecting them: a whole-history run over tens of thousands of rows then costs no more
    /// memory than one row.
    pub async fn query_each(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        mut each: impl FnMut(Row) -> Result<(), CheckError>,
    ) -> Result<(), CheckError> {
        self.record_plan(sql, params).await?;
        let rows = self.tx.query_raw(sql, params.iter().copied()).await?;
        let mut rows = std::pin::pin!(rows);
        while let Some(row) = rows.next().await {
            each(row?)?;
        }
        Ok(())
    }

    /// Records the plan of `sql` with these parameters, when plans are being recorded.
    async fn record_plan(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<(), CheckError> {
        if let Some(log) = self.plans {
            let plan = self
                .tx
                .query(&format!("EXPLAIN {sql}"), params)
                .await?
                .iter()
                .map(|row| row.try_get::<_, String>(0))
                .collect::<Result<Vec<_>, _>>()?
                .join("\n");
            log.push(QueryPlan {
                sql: sql.to_owned(),
                plan,
            });
        }
        Ok(())
    }

    /// The tip's epoch; `None` while the database holds no numbered block.
    pub async fn tip_epoch(&self) -> Result<Option<i64>, CheckError> {
        match self.query(TIP_EPOCH_SQL, &[]).await?.first() {
            Some(row) => Ok(row.try_get(0)?),
            None => Ok(None),
        }
    }

    /// The newest block of all (EBBs included): its id and hash, through the primary key;
    /// `None` while the database holds no block.
    pub async fn newest_block(&self) -> Result<Option<(i64, Vec<u8>)>, CheckError> {
        match self.query(NEWEST_BLOCK_SQL, &[]).await?.first() {
            Some(row) => Ok(Some((row.try_get(0)?, row.try_get(1)?))),
            None => Ok(None),
        }
    }

    /// Why a check that needs `tables` and `indexes` cannot run, if it cannot.
    pub fn missing_prerequisite(&self, tables: &[&str], indexes: &[&str]) -> Option<String> {
        let schema = self.schema;
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

    /// `why_not`, or else why the ledger data is absent: every rule reads ledger data, and
    /// the schema is asked first because that costs no query.
    pub async fn or_ledger_missing(
        &self,
        why_not: Option<String>,
    ) -> Result<Option<String>, CheckError> {
        match why_not {
            Some(reason) => Ok(Some(reason)),
            None => self.ledger_missing().await,
        }
    }

    /// Why ledger-derived checks cannot run, if the ledger data is absent.
    async fn ledger_missing(&self) -> Result<Option<String>, CheckError> {
        let present: bool = self.query_value(LEDGER_SQL, &[]).await?;
        Ok((!present).then(|| {
            "ada_pots is empty: db-sync runs with the ledger disabled (or has not reached Shelley)"
                .to_owned()
        }))
    }

    /// Whether `table.column` exists (columns moved between releases).
    pub async fn has_column(&self, table: &str, column: &str) -> Result<bool, CheckError> {
        self.query_value(HAS_COLUMN_SQL, &[&table, &column]).await
    }
}

/// The newest block's epoch, through the primary key (as the tip check reads it).
const TIP_EPOCH_SQL: &str = "SELECT epoch_no::bigint FROM block \
     WHERE block_no IS NOT NULL ORDER BY id DESC LIMIT 1";
/// The newest block of all, through the primary key.
const NEWEST_BLOCK_SQL: &str = "SELECT id, hash FROM block ORDER BY id DESC LIMIT 1";
/// Why a check does not apply while [`Reader::tip_epoch`] finds no block.
pub(crate) const NO_BLOCK: &str = "the database holds no block yet";

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

/// The ledger writes `ada_pots` at every Shelley-era boundary; with `ledger: disable` it stays
/// empty, and so do `reward`, `epoch_stake` and `epoch_param`. A small table.
const LEDGER_SQL: &str = "SELECT EXISTS (SELECT 1 FROM ada_pots)";

/// Whether a column exists, by table and column name.
const HAS_COLUMN_SQL: &str = "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute \
     WHERE attrelid = to_regclass('public.' || $1::text) AND attname = $2::text \
       AND attnum > 0 AND NOT attisdropped)";
