//! The db-sync-compatible DDL, one definition per fact.
//!
//! The SQL lives in `sql/` and mirrors how db-sync itself evolves: the 13.2 tables, then small
//! per-release delta files (`v13_3.sql`, `v13_7.sql`), then the stage-3 and stage-4 indexes.
//! [`ddl`] stitches the pieces together for one [`SchemaVersion`] and [`IndexSet`].

use std::fmt;
use std::str::FromStr;

const STAGE1_TYPES: &str = include_str!("../sql/stage1_types.sql");
const STAGE2_BASE: &str = include_str!("../sql/stage2_base.sql");
const V13_3_DELTA: &str = include_str!("../sql/v13_3.sql");
const V13_7_DELTA: &str = include_str!("../sql/v13_7.sql");
const STAGE3: &str = include_str!("../sql/stage3.sql");
const STAGE3_V13_3: &str = include_str!("../sql/stage3_v13_3.sql");
const STAGE4: &str = include_str!("../sql/stage4.sql");
const STAGE4_EPOCH_TABLE: &str = include_str!("../sql/stage4_epoch_table.sql");
const GREST: &str = include_str!("../sql/grest.sql");
const STAGE2_UTXO: &str = include_str!("../sql/stage2_utxo.sql");
const V13_6_UTXO: &str = include_str!("../sql/v13_6_utxo.sql");
const STAGE4_UTXO: &str = include_str!("../sql/stage4_utxo.sql");

/// A db-sync release line whose schema differs in ways the exporter cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchemaVersion {
    /// 13.2.0.x: `instant_reward`, single `ada_pots.deposits`, no `proposal_refund`.
    V13_2,
    /// 13.3.0.0: `reward_rest`, split `ada_pots.deposits_*` (13.4 and 13.5 look the same).
    V13_3,
    /// 13.6.0.x: same tables as 13.3, higher stage numbers.
    V13_6,
    /// 13.7.2+: `epoch` is a view over `epoch_finalized` and a live aggregate.
    V13_7,
}

impl SchemaVersion {
    /// Every version, oldest first, for tests that cover them all.
    pub const ALL: [SchemaVersion; 4] = [Self::V13_2, Self::V13_3, Self::V13_6, Self::V13_7];

    /// `schema_version.stage_two` as shipped by the release (reference §2).
    pub fn stage_two(self) -> i64 {
        match self {
            Self::V13_2 => 33,
            Self::V13_3 => 41,
            Self::V13_6 => 44,
            Self::V13_7 => 50,
        }
    }

    /// `schema_version.stage_one` as shipped by the release (reference §2).
    pub fn stage_one(self) -> i64 {
        match self {
            Self::V13_2 => 11,
            Self::V13_3 => 14,
            Self::V13_6 | Self::V13_7 => 15,
        }
    }

    /// Short human label, e.g. `"13.6"`.
    pub fn label(self) -> &'static str {
        match self {
            Self::V13_2 => "13.2",
            Self::V13_3 => "13.3",
            Self::V13_6 => "13.6",
            Self::V13_7 => "13.7",
        }
    }

    /// A representative full release number, used for `meta.version`.
    pub(crate) fn release(self) -> [u32; 4] {
        match self {
            Self::V13_2 => [13, 2, 0, 2],
            Self::V13_3 => [13, 3, 0, 0],
            Self::V13_6 => [13, 6, 0, 5],
            Self::V13_7 => [13, 7, 2, 1],
        }
    }

    /// Whether `reward_rest`, `ada_pots.deposits_*` and the deposit columns exist.
    fn has_13_3_changes(self) -> bool {
        self != Self::V13_2
    }

    /// Whether `epoch` is still a table (it becomes a view in 13.7.2).
    fn epoch_is_table(self) -> bool {
        self != Self::V13_7
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Error returned when a string names no supported [`SchemaVersion`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseSchemaVersionError(String);

impl fmt::Display for ParseSchemaVersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unsupported db-sync schema version {:?} (expected 13.2, 13.3, 13.6 or 13.7.2+)",
            self.0
        )
    }
}

impl std::error::Error for ParseSchemaVersionError {}

impl FromStr for SchemaVersion {
    type Err = ParseSchemaVersionError;

    /// Accepts a release prefix: `13.2`, `13.3`, `13.6`, `13.7` and longer forms such as
    /// `13.6.0.5` or `13.7.2.1`. 13.7.0 and 13.7.1 are rejected because `epoch` was still a
    /// table there, which [`SchemaVersion::V13_7`] does not model.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseSchemaVersionError(s.to_owned());
        let parts = s
            .trim()
            .split('.')
            .map(|p| p.parse::<u32>().map_err(|_| err()))
            .collect::<Result<Vec<_>, _>>()?;
        match parts.as_slice() {
            [13, 2, ..] => Ok(Self::V13_2),
            [13, 3, ..] => Ok(Self::V13_3),
            [13, 6, ..] => Ok(Self::V13_6),
            [13, 7] => Ok(Self::V13_7),
            [13, 7, patch, ..] if *patch >= 2 => Ok(Self::V13_7),
            _ => Err(err()),
        }
    }
}

/// Which indexes exist: db-sync creates most secondary indexes only near the tip (reference §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexSet {
    /// Only what stages 1–3 create: primary keys, stage-2 unique keys, stage-3 indexes.
    InitialSync,
    /// Additionally every stage-4 index and the run-time constraints `unique_reward` and
    /// `unique_epoch_stake`.
    NearTip,
}

/// Full DDL text for `version` (domains, enums, tables, generated columns, views, indexes).
pub fn ddl(version: SchemaVersion, indexes: IndexSet) -> String {
    let mut parts = vec![STAGE1_TYPES, STAGE2_BASE];
    if version.has_13_3_changes() {
        parts.push(V13_3_DELTA);
    }
    if !version.epoch_is_table() {
        parts.push(V13_7_DELTA);
    }
    // UTxO and withdrawal tables (and 13.6's `consumed_by_tx_id`).
    parts.push(STAGE2_UTXO);
    if matches!(version, SchemaVersion::V13_6 | SchemaVersion::V13_7) {
        parts.push(V13_6_UTXO);
    }
    parts.push(STAGE3);
    if version.has_13_3_changes() {
        parts.push(STAGE3_V13_3);
    }
    let mut sql = parts.join("\n");
    if indexes == IndexSet::NearTip {
        sql.push('\n');
        sql.push_str(&near_tip_ddl(version));
    }
    sql
}

/// Just the stage-4 indexes and run-time constraints, to turn an [`IndexSet::InitialSync`]
/// database into an [`IndexSet::NearTip`] one. Idempotent.
pub fn near_tip_ddl(version: SchemaVersion) -> String {
    let mut sql = String::from(STAGE4);
    if version.epoch_is_table() {
        sql.push('\n');
        sql.push_str(STAGE4_EPOCH_TABLE);
    }
    sql.push('\n');
    sql.push_str(STAGE4_UTXO);
    sql
}

/// Koios `grest` schema: `grest.control_table (key text PK, last_value text NOT NULL,
/// artifacts text)`. Idempotent.
pub fn grest_ddl() -> &'static str {
    GREST
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_prefixes() {
        let ok = [
            ("13.2", SchemaVersion::V13_2),
            ("13.2.0.2", SchemaVersion::V13_2),
            ("13.3", SchemaVersion::V13_3),
            ("13.3.0.0", SchemaVersion::V13_3),
            ("13.6", SchemaVersion::V13_6),
            ("13.6.0.5", SchemaVersion::V13_6),
            ("13.7", SchemaVersion::V13_7),
            ("13.7.2", SchemaVersion::V13_7),
            ("13.7.2.1", SchemaVersion::V13_7),
        ];
        for (text, want) in ok {
            assert_eq!(text.parse::<SchemaVersion>(), Ok(want), "{text}");
        }
        for bad in [
            "", "13", "13.1", "13.4", "13.5", "13.7.0", "13.7.1.0", "12.0", "x",
        ] {
            assert!(bad.parse::<SchemaVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_round_trip() {
        for v in SchemaVersion::ALL {
            assert_eq!(v.label().parse::<SchemaVersion>(), Ok(v));
            assert_eq!(v.to_string(), v.label());
        }
    }

    #[test]
    fn near_tip_is_a_superset() {
        for v in SchemaVersion::ALL {
            let initial = ddl(v, IndexSet::InitialSync);
            let near = ddl(v, IndexSet::NearTip);
            assert!(near.starts_with(&initial));
            assert!(!initial.contains("idx_reward_addr_id"));
            assert!(near.contains("idx_reward_addr_id"));
            assert_eq!(near.contains("idx_epoch_no "), v != SchemaVersion::V13_7);
        }
    }
}
