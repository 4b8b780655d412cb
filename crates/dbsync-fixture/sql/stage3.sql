-- Stage 3 (db-sync `schema/migration-3-*.sql`): indexes created on every start, so present
-- even during initial sync.
CREATE INDEX IF NOT EXISTS idx_block_slot_no ON block USING btree (slot_no);
CREATE INDEX IF NOT EXISTS idx_block_block_no ON block USING btree (block_no);
CREATE INDEX IF NOT EXISTS idx_block_epoch_no ON block USING btree (epoch_no);
CREATE INDEX IF NOT EXISTS idx_block_previous_id ON block USING btree (previous_id);
CREATE INDEX IF NOT EXISTS idx_tx_block_id ON tx USING btree (block_id);
CREATE INDEX IF NOT EXISTS idx_reward_spendable_epoch ON reward USING btree (spendable_epoch);
CREATE INDEX IF NOT EXISTS idx_epoch_stake_epoch_no ON epoch_stake USING btree (epoch_no);
