//! A small builder for chain fixtures: explicit blocks, db-sync-style rollbacks, epoch sync
//! times. It does no network arithmetic (slot ↔ time ↔ epoch); that belongs to the exporter.
//!
//! Every SQL parameter is cast explicitly (`$1::int8`): the columns are domain-typed, and a
//! parameter inferred as a domain would not match the plain Rust integer types.

use tokio_postgres::{Client, GenericClient};

use crate::cluster::TestDatabase;
use crate::schema::{ddl, IndexSet, SchemaVersion};

/// `schema_version.stage_three` after stage 4 ran (reference §2: a stage-4 file forces it).
const STAGE_THREE: i64 = 6;

/// A fixture database with the db-sync schema and a builder for its chain.
pub struct Fixture {
    /// Superuser client on the fixture database.
    pub client: Client,
    /// Schema the database was created with.
    pub version: SchemaVersion,
    /// The one `slot_leader` row every fixture block points at (created on first use).
    slot_leader_id: Option<i64>,
    /// Feeds [`Fixture::next_hash`], so every hash this fixture makes is distinct.
    hash_counter: u64,
}

/// One block row, with explicit values; `None` stores SQL NULL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBlock {
    /// `block.block_no` (NULL for the genesis row and Byron EBBs).
    pub block_no: Option<i64>,
    /// `block.slot_no`.
    pub slot_no: Option<i64>,
    /// `block.epoch_no`.
    pub epoch_no: Option<i64>,
    /// `block.epoch_slot_no`.
    pub epoch_slot_no: Option<i64>,
    /// `block.time` as Unix seconds (stored as UTC `timestamp without time zone`).
    pub time_unix: i64,
    /// `block.hash`; see [`Fixture::next_hash`] for distinct values.
    pub hash: [u8; 32],
    /// `block.proto_major`.
    pub proto_major: i32,
    /// `block.proto_minor`.
    pub proto_minor: i32,
    /// `block.tx_count` (no `tx` rows are created for it).
    pub tx_count: i64,
}

/// The columns of an existing block that [`Fixture::extend`] and rollbacks continue from.
#[derive(Clone, Debug)]
struct BlockRow {
    id: i64,
    block: NewBlock,
}

const BLOCK_COLUMNS: &str = "id, block_no::int8, slot_no::int8, epoch_no::int8, \
     epoch_slot_no::int8, extract(epoch FROM time)::int8, hash::bytea, proto_major::int4, \
     proto_minor::int4, tx_count";

impl BlockRow {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        let hash: Vec<u8> = row.get(6);
        Self {
            id: row.get(0),
            block: NewBlock {
                block_no: row.get(1),
                slot_no: row.get(2),
                epoch_no: row.get(3),
                epoch_slot_no: row.get(4),
                time_unix: row.get(5),
                hash: hash.try_into().unwrap_or([0; 32]),
                proto_major: row.get(7),
                proto_minor: row.get(8),
                tx_count: row.get(9),
            },
        }
    }
}

impl Fixture {
    /// Creates the schema (`ddl(version, indexes)`) in `db` and inserts `schema_version`
    /// (stage_one, stage_two, stage_three = 6) and `meta` (`start_time` = `start_unix` as a UTC
    /// timestamp, `version` as db-sync's Haskell `show` string).
    ///
    /// # Panics
    /// On any database error.
    pub async fn create(
        db: &TestDatabase,
        version: SchemaVersion,
        indexes: IndexSet,
        network_name: &str,
        start_unix: i64,
    ) -> Fixture {
        let client = db.connect().await;
        let fixture = Fixture {
            client,
            version,
            slot_leader_id: None,
            hash_counter: 0,
        };
        fixture.execute(&ddl(version, indexes)).await;
        fixture
            .query(
                "INSERT INTO schema_version (stage_one, stage_two, stage_three) \
                 VALUES ($1::int8, $2::int8, $3::int8)",
                &[&version.stage_one(), &version.stage_two(), &STAGE_THREE],
            )
            .await;
        let [a, b, c, d] = version.release();
        let meta_version =
            format!("Version {{versionBranch = [{a},{b},{c},{d}], versionTags = []}}");
        fixture
            .query(
                "INSERT INTO meta (start_time, network_name, version) \
                 VALUES (to_timestamp($1::int8) AT TIME ZONE 'UTC', $2::text, $3::text)",
                &[&start_unix, &network_name, &meta_version],
            )
            .await;
        fixture
    }

    /// Inserts the artificial genesis row (block_no, epoch_no, slot_no all NULL).
    pub async fn genesis_block(&mut self, time_unix: i64) -> i64 {
        let hash = self.next_hash(-1);
        self.insert_block(NewBlock {
            block_no: None,
            slot_no: None,
            epoch_no: None,
            epoch_slot_no: None,
            time_unix,
            hash,
            proto_major: 0,
            proto_minor: 0,
            tx_count: 0,
        })
        .await
    }

    /// Inserts one block after the newest row (`previous_id` = newest id); returns its id.
    pub async fn insert_block(&mut self, block: NewBlock) -> i64 {
        let slot_leader_id = self.slot_leader_id().await;
        insert_block_row(&self.client, slot_leader_id, &block).await
    }

    /// Appends `n` blocks after the tip in the tip's epoch: block_no + 1, slot_no and
    /// epoch_slot_no + `slot_step`, time + `slot_step` seconds. Returns the new ids.
    ///
    /// # Panics
    /// If the database has no block yet (start with [`Fixture::genesis_block`]).
    pub async fn extend(&mut self, n: u32, slot_step: i64) -> Vec<i64> {
        let epoch = self.newest_block().await.and_then(|t| t.block.epoch_no);
        self.extend_into_epoch(epoch.unwrap_or(0), n, slot_step)
            .await
    }

    /// Like [`Fixture::extend`], but the blocks belong to `epoch_no`; when that differs from
    /// the tip's epoch, `epoch_slot_no` restarts at 0 (an epoch boundary).
    pub async fn extend_into_epoch(&mut self, epoch_no: i64, n: u32, slot_step: i64) -> Vec<i64> {
        let mut ids = Vec::with_capacity(n as usize);
        let mut tip = self.newest_block().await.map(|t| t.block);
        for _ in 0..n {
            let block = match &tip {
                Some(prev) => {
                    let same_epoch = prev.epoch_no == Some(epoch_no);
                    let block_no = prev.block_no.map_or(0, |b| b + 1);
                    NewBlock {
                        block_no: Some(block_no),
                        slot_no: Some(prev.slot_no.map_or(0, |s| s + slot_step)),
                        epoch_no: Some(epoch_no),
                        epoch_slot_no: Some(match prev.epoch_slot_no {
                            Some(s) if same_epoch => s + slot_step,
                            _ => 0,
                        }),
                        // The block after genesis shares its time (slot 0 starts at genesis).
                        time_unix: prev.time_unix
                            + if prev.slot_no.is_some() { slot_step } else { 0 },
                        hash: self.next_hash(block_no),
                        proto_major: prev.proto_major,
                        proto_minor: prev.proto_minor,
                        tx_count: 0,
                    }
                }
                None => panic!("extend needs a tip: insert a genesis or first block first"),
            };
            ids.push(self.insert_block(block.clone()).await);
            tip = Some(block);
        }
        ids
    }

    /// Inserts a `tx` row in `block_id` (next `block_index`, zero out_sum, deposit 0); returns
    /// its id. The block's `tx_count` is left alone.
    pub async fn insert_tx(&mut self, block_id: i64, fee: i64) -> i64 {
        let hash = self.next_hash(i64::MIN).to_vec();
        let rows = self
            .query(
                "INSERT INTO tx (hash, block_id, block_index, out_sum, fee, deposit, size, \
                 valid_contract, script_size) \
                 SELECT $1::bytea, $2::int8, count(*), 0, $3::int8, 0, 200, true, 0 \
                 FROM tx WHERE block_id = $2::int8 RETURNING id",
                &[&hash, &block_id, &fee],
            )
            .await;
        rows[0].get(0)
    }

    /// The newest block that has a block number: `(id, block_no, hash)`. `None` when only the
    /// genesis row (or nothing) exists.
    pub async fn tip(&self) -> Option<(i64, i64, Vec<u8>)> {
        self.client
            .query_opt(
                "SELECT id, block_no::int8, hash::bytea FROM block \
                 WHERE block_no IS NOT NULL ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("reading tip: {e}"))
            .map(|row| (row.get(0), row.get(1), row.get(2)))
    }

    /// db-sync-style rollback: in one transaction, deletes every block with
    /// `block_no > tip - depth` (and their `tx` rows) and inserts `depth` replacements with the
    /// same numbers, slots and times but new hashes and new, higher ids. Returns the tip
    /// block_no, which is unchanged, as readers of db-sync see it.
    pub async fn rollback_and_replace(&mut self, depth: u32) -> i64 {
        let slot_leader_id = self.slot_leader_id().await;
        let (tip_no, doomed) = self.doomed_blocks(depth).await;
        let replacements: Vec<NewBlock> = doomed
            .iter()
            .map(|row| {
                let block_no = row.block.block_no.unwrap_or_default();
                NewBlock {
                    hash: self.next_hash(block_no),
                    ..row.block.clone()
                }
            })
            .collect();
        let tx = self
            .client
            .transaction()
            .await
            .unwrap_or_else(|e| panic!("BEGIN: {e}"));
        delete_blocks(&tx, &doomed).await;
        for block in &replacements {
            insert_block_row(&tx, slot_leader_id, block).await;
        }
        tx.commit()
            .await
            .unwrap_or_else(|e| panic!("COMMIT rollback: {e}"));
        tip_no
    }

    /// Deletes the top `depth` blocks without replacement: the tip goes backwards.
    pub async fn truncate(&mut self, depth: u32) {
        let (_, doomed) = self.doomed_blocks(depth).await;
        delete_blocks(&self.client, &doomed).await;
    }

    /// Inserts an `epoch_sync_time` row; `state` is `"lagging"` or `"following"`.
    pub async fn epoch_sync_time(&self, epoch_no: i64, seconds: i64, state: &str) {
        self.query(
            "INSERT INTO epoch_sync_time (no, seconds, state) \
             VALUES ($1::int8, $2::int8, $3::text::syncstatetype)",
            &[&epoch_no, &seconds, &state],
        )
        .await;
    }

    /// Runs `sql` with `batch_execute`.
    ///
    /// # Panics
    /// With the SQL error and the statement text.
    pub async fn execute(&self, sql: &str) {
        if let Err(e) = self.client.batch_execute(sql).await {
            panic!("{}\nin SQL:\n{sql}", describe(&e));
        }
    }

    /// A deterministic block hash, distinct from every other hash this fixture made.
    pub fn next_hash(&mut self, block_no: i64) -> [u8; 32] {
        self.hash_counter += 1;
        derive_hash(self.hash_counter, block_no)
    }

    /// Runs one parameterised statement, panicking with the error and statement.
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Vec<tokio_postgres::Row> {
        self.client
            .query(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{}\nin SQL:\n{sql}", describe(&e)))
    }

    /// The id of the fixture's slot leader, inserting it on first use.
    pub(crate) async fn slot_leader_id(&mut self) -> i64 {
        if let Some(id) = self.slot_leader_id {
            return id;
        }
        let rows = self
            .query(
                "INSERT INTO slot_leader (hash, pool_hash_id, description) \
                 VALUES ($1::bytea, NULL, 'dbsync-fixture slot leader') RETURNING id",
                &[&vec![0x51_u8; 28]],
            )
            .await;
        let id = rows[0].get(0);
        self.slot_leader_id = Some(id);
        id
    }

    /// The newest block row by id (the way db-sync and the exporter find the tip).
    async fn newest_block(&self) -> Option<BlockRow> {
        self.client
            .query_opt(
                &format!("SELECT {BLOCK_COLUMNS} FROM block ORDER BY id DESC LIMIT 1"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("reading newest block: {e}"))
            .map(|row| BlockRow::from_row(&row))
    }

    /// The tip block_no and the blocks above `tip - depth`, oldest first.
    async fn doomed_blocks(&self, depth: u32) -> (i64, Vec<BlockRow>) {
        let tip_no = self
            .tip()
            .await
            .map(|(_, block_no, _)| block_no)
            .unwrap_or_else(|| panic!("rollback needs numbered blocks"));
        let rows = self
            .query(
                &format!(
                    "SELECT {BLOCK_COLUMNS} FROM block WHERE block_no > $1::int8 \
                     ORDER BY block_no, id"
                ),
                &[&(tip_no - i64::from(depth))],
            )
            .await;
        (tip_no, rows.iter().map(BlockRow::from_row).collect())
    }
}

/// Inserts one block with `previous_id` = the newest existing id.
async fn insert_block_row(client: &impl GenericClient, slot_leader_id: i64, b: &NewBlock) -> i64 {
    const SQL: &str = "INSERT INTO block (hash, epoch_no, slot_no, epoch_slot_no, block_no, \
         previous_id, slot_leader_id, size, time, tx_count, proto_major, proto_minor) \
         VALUES ($1::bytea, $2::int8, $3::int8, $4::int8, $5::int8, \
                 (SELECT max(id) FROM block), $6::int8, 0, \
                 to_timestamp($7::int8) AT TIME ZONE 'UTC', $8::int8, $9::int4, $10::int4) \
         RETURNING id";
    let hash = b.hash.to_vec();
    client
        .query_one(
            SQL,
            &[
                &hash,
                &b.epoch_no,
                &b.slot_no,
                &b.epoch_slot_no,
                &b.block_no,
                &slot_leader_id,
                &b.time_unix,
                &b.tx_count,
                &b.proto_major,
                &b.proto_minor,
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("inserting block {b:?}: {}", describe(&e)))
        .get(0)
}

/// Deletes `blocks`, their `tx` rows and the UTxO rows of those transactions, and marks
/// the outputs they consumed unspent again, as db-sync's rollback does.
async fn delete_blocks(client: &impl GenericClient, blocks: &[BlockRow]) {
    let ids: Vec<i64> = blocks.iter().map(|b| b.id).collect();
    let consumed_column: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'tx_out'::regclass \
               AND attname = 'consumed_by_tx_id' AND NOT attisdropped)",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("probing tx_out: {}", describe(&e)))
        .get(0);
    if consumed_column {
        let sql = "UPDATE tx_out SET consumed_by_tx_id = NULL WHERE consumed_by_tx_id IN \
             (SELECT id FROM tx WHERE block_id = ANY($1::int8[]))";
        client
            .execute(sql, &[&ids])
            .await
            .unwrap_or_else(|e| panic!("{}\nin SQL:\n{sql}", describe(&e)));
    }
    for sql in [
        "DELETE FROM tx_in WHERE tx_in_id IN (SELECT id FROM tx WHERE block_id = ANY($1::int8[]))",
        "DELETE FROM collateral_tx_in WHERE tx_in_id IN \
           (SELECT id FROM tx WHERE block_id = ANY($1::int8[]))",
        "DELETE FROM reference_tx_in WHERE tx_in_id IN \
           (SELECT id FROM tx WHERE block_id = ANY($1::int8[]))",
        "DELETE FROM tx_out WHERE tx_id IN (SELECT id FROM tx WHERE block_id = ANY($1::int8[]))",
        "DELETE FROM collateral_tx_out WHERE tx_id IN \
           (SELECT id FROM tx WHERE block_id = ANY($1::int8[]))",
        "DELETE FROM withdrawal WHERE tx_id IN (SELECT id FROM tx WHERE block_id = ANY($1::int8[]))",
        "DELETE FROM tx WHERE block_id = ANY($1::int8[])",
        "DELETE FROM block WHERE id = ANY($1::int8[])",
    ] {
        client
            .execute(sql, &[&ids])
            .await
            .unwrap_or_else(|e| panic!("{}\nin SQL:\n{sql}", describe(&e)));
    }
}

/// splitmix64-style bytes after a counter prefix: distinct per counter, stable across runs.
fn derive_hash(counter: u64, block_no: i64) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&counter.to_be_bytes());
    hash[8..16].copy_from_slice(&block_no.to_be_bytes());
    let mut x = counter ^ 0x9E37_79B9_7F4A_7C15;
    for chunk in hash[16..].chunks_mut(8) {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_be_bytes());
    }
    hash
}

/// The server's message, detail and hint: tokio-postgres' `Display` alone says "db error".
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("\nDETAIL: {detail}"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("\nHINT: {hint}"));
            }
            text
        }
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_distinct_and_stable() {
        let a = derive_hash(1, 10);
        assert_eq!(a, derive_hash(1, 10));
        assert_ne!(a, derive_hash(2, 10));
        assert_ne!(a, derive_hash(1, 11));
    }
}
