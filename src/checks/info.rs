//! `info`: which db-sync release wrote the database, for which network, and how long the
//! last epoch boundary took (`epoch_sync_time`, newest row through its primary key).

use super::{Check, CheckError, CheckName, Context, Findings, Verdict};

/// Static facts about the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    /// `meta.network_name` ("unknown" until db-sync writes it).
    pub network: String,
    /// db-sync release derived from `schema_version.stage_two`.
    pub release: &'static str,
    /// `stage_one.stage_two.stage_three`.
    pub stages: String,
    /// The newest `epoch_sync_time` row.
    pub last_epoch_sync: Option<EpochSync>,
    /// Whether this session to the server is encrypted (`pg_stat_ssl`, as the server sees it).
    pub tls: Option<bool>,
}

/// One `epoch_sync_time` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochSync {
    /// The epoch that finished.
    pub epoch_no: i64,
    /// Wall-clock seconds db-sync spent on it.
    pub seconds: i64,
}

/// Reports the schema probe and the last epoch sync.
#[derive(Default)]
pub struct InfoCheck;

/// The server's view of this very session: encrypted or not.
const TLS_SQL: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
const EPOCH_SYNC_SQL: &str =
    "SELECT no::bigint, seconds::bigint FROM epoch_sync_time ORDER BY id DESC LIMIT 1";

impl Check for InfoCheck {
    fn name(&self) -> CheckName {
        CheckName::Info
    }

    fn needs_fresh_schema(&self) -> bool {
        true
    }

    async fn run(&mut self, ctx: Context<'_>) -> Result<Verdict, CheckError> {
        let last_epoch_sync = if ctx.schema.has_table("epoch_sync_time") {
            let statement = ctx.tx.prepare_cached(EPOCH_SYNC_SQL).await?;
            match ctx.tx.query_opt(&statement, &[]).await? {
                Some(row) => Some(EpochSync {
                    epoch_no: row.try_get(0)?,
                    seconds: row.try_get(1)?,
                }),
                None => None,
            }
        } else {
            None
        };
        let statement = ctx.tx.prepare_cached(TLS_SQL).await?;
        let tls = match ctx.tx.query_opt(&statement, &[]).await? {
            Some(row) => row.try_get(0)?,
            None => None,
        };
        Ok(Verdict::Found(Findings::Info(Info {
            network: ctx
                .schema
                .network
                .clone()
                .unwrap_or_else(|| "unknown".into()),
            release: ctx.schema.release,
            stages: ctx.schema.stages(),
            last_epoch_sync,
            tls,
        })))
    }
}
