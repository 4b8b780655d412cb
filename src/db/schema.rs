//! The schema probe: which db-sync release wrote this database, for which network, and which
//! tables and indexes it has.
//!
//! Checks consult the probe instead of assuming a version: table names moved between
//! releases (`reward` → `instant_reward` → `reward_rest`), `epoch` became a view in 13.7.2,
//! and db-sync only creates most secondary indexes once it is near the tip.

use std::collections::BTreeSet;

use tokio_postgres::Client;

use super::CheckError;

/// Where instant rewards (MIR payouts, treasury withdrawals) live in this release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstantRewardTable {
    /// `reward_rest` (13.3+).
    RewardRest,
    /// `instant_reward` (13.2).
    InstantReward,
    /// `reward` rows of type reserves/treasury (before 13.2).
    Reward,
}

impl InstantRewardTable {
    /// The table's name.
    pub fn table(self) -> &'static str {
        match self {
            InstantRewardTable::RewardRest => "reward_rest",
            InstantRewardTable::InstantReward => "instant_reward",
            InstantRewardTable::Reward => "reward",
        }
    }
}

/// What the probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    /// `schema_version.stage_one`.
    pub stage_one: i64,
    /// `schema_version.stage_two`: the number that identifies a release.
    pub stage_two: i64,
    /// `schema_version.stage_three` (not meaningful; exported for completeness).
    pub stage_three: i64,
    /// db-sync release derived from `stage_two`.
    pub release: &'static str,
    /// `meta.network_name`, once db-sync has written it.
    pub network: Option<String>,
    /// Where instant rewards live.
    pub instant_rewards: InstantRewardTable,
    /// `epoch` is a view (13.7.2+): never poll it, it aggregates on read.
    pub epoch_is_view: bool,
    /// Tables and views in `public`.
    pub tables: BTreeSet<String>,
    /// Indexes in `public` (unique constraints included).
    pub indexes: BTreeSet<String>,
    /// `grest.control_table` exists (a Koios instance).
    pub has_grest: bool,
}

impl Schema {
    /// Reads `schema_version`, `meta` and the catalog. A database without `schema_version`
    /// is reported as not db-sync.
    pub async fn probe(client: &Client) -> Result<Schema, CheckError> {
        let row = client
            .query_one(
                "SELECT to_regclass('public.schema_version') IS NOT NULL, \
                        to_regclass('grest.control_table') IS NOT NULL",
                &[],
            )
            .await?;
        if !row.try_get::<_, bool>(0)? {
            return Err(CheckError::NotDbSync("no schema_version table".into()));
        }
        let has_grest: bool = row.try_get(1)?;

        let versions = client
            .query(
                "SELECT stage_one::bigint, stage_two::bigint, stage_three::bigint \
                 FROM schema_version ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await?;
        let version = versions
            .first()
            .ok_or_else(|| CheckError::NotDbSync("schema_version is empty".into()))?;
        let (stage_one, stage_two, stage_three): (i64, i64, i64) = (
            version.try_get(0)?,
            version.try_get(1)?,
            version.try_get(2)?,
        );

        let network = if has_table(client, "meta").await? {
            texts(
                client,
                "SELECT network_name::text FROM meta ORDER BY id LIMIT 1",
            )
            .await?
            .into_iter()
            .next()
        } else {
            None
        };

        let mut tables = BTreeSet::new();
        let mut epoch_is_view = false;
        for row in client
            .query(
                "SELECT c.relname::text, c.relkind::text FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')",
                &[],
            )
            .await?
        {
            let name: String = row.try_get(0)?;
            let kind: String = row.try_get(1)?;
            if name == "epoch" && kind == "v" {
                epoch_is_view = true;
            }
            tables.insert(name);
        }
        if !tables.contains("block") {
            return Err(CheckError::NotDbSync("no block table".into()));
        }
        let indexes = texts(
            client,
            "SELECT indexname::text FROM pg_catalog.pg_indexes WHERE schemaname = 'public'",
        )
        .await?
        .into_iter()
        .collect();

        let instant_rewards = if tables.contains("reward_rest") {
            InstantRewardTable::RewardRest
        } else if tables.contains("instant_reward") {
            InstantRewardTable::InstantReward
        } else {
            InstantRewardTable::Reward
        };

        Ok(Schema {
            stage_one,
            stage_two,
            stage_three,
            release: release_for_stage_two(stage_two),
            network,
            instant_rewards,
            epoch_is_view,
            tables,
            indexes,
            has_grest,
        })
    }

    /// `stage_one.stage_two.stage_three`, the `schema` label of `dbsync_info`.
    pub fn stages(&self) -> String {
        format!("{}.{}.{}", self.stage_one, self.stage_two, self.stage_three)
    }

    /// Whether the table or view exists.
    pub fn has_table(&self, name: &str) -> bool {
        self.tables.contains(name)
    }

    /// Whether the index (or unique constraint) exists.
    pub fn has_index(&self, name: &str) -> bool {
        self.indexes.contains(name)
    }

    /// The first of `names` that is missing, if any.
    pub fn missing_index<'a>(&self, names: &[&'a str]) -> Option<&'a str> {
        names.iter().copied().find(|name| !self.has_index(name))
    }
}

/// The first column of every row of `sql`, as text.
async fn texts(client: &Client, sql: &str) -> Result<Vec<String>, CheckError> {
    client
        .query(sql, &[])
        .await?
        .iter()
        .map(|row| Ok(row.try_get::<_, String>(0)?))
        .collect()
}

async fn has_table(client: &Client, name: &str) -> Result<bool, CheckError> {
    let row = client
        .query_one(
            "SELECT to_regclass('public.' || $1::text) IS NOT NULL",
            &[&name],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// The db-sync release that ships a given `schema_version.stage_two` (shared reference §2).
/// Only comparable from 12.0 on; earlier releases numbered stages differently.
pub fn release_for_stage_two(stage_two: i64) -> &'static str {
    match stage_two {
        5 => "12.0",
        19 => "13.0",
        25 => "13.1",
        33 => "13.2.0",
        41 => "13.3.0",
        42 => "13.4",
        43 => "13.5",
        44 => "13.6.0",
        45..=47 => "13.7.0",
        48 => "13.7.1",
        49 | 50 => "13.7.2",
        s if s > 50 => "13.7.2+",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_two_maps_to_releases() {
        assert_eq!(release_for_stage_two(33), "13.2.0");
        assert_eq!(release_for_stage_two(41), "13.3.0");
        assert_eq!(release_for_stage_two(44), "13.6.0");
        assert_eq!(release_for_stage_two(46), "13.7.0");
        assert_eq!(release_for_stage_two(50), "13.7.2");
        assert_eq!(release_for_stage_two(51), "13.7.2+");
        assert_eq!(release_for_stage_two(21), "unknown");
    }
}
