-- Stage 3 addition of 13.3+.
CREATE INDEX IF NOT EXISTS idx_pool_update_registered_tx_id ON pool_update USING btree (registered_tx_id);
