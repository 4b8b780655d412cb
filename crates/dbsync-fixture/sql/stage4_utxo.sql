-- Stage-4 indexes of the UTxO and withdrawal tables (db-sync `migration-4-0002`, `-0003`,
-- `-0005`): created only near the tip. Idempotent.
CREATE INDEX IF NOT EXISTS idx_tx_in_tx_in_id ON tx_in USING btree (tx_in_id);
CREATE INDEX IF NOT EXISTS idx_tx_in_tx_out_id ON tx_in USING btree (tx_out_id);
CREATE INDEX IF NOT EXISTS idx_tx_out_tx_id ON tx_out USING btree (tx_id);
CREATE INDEX IF NOT EXISTS idx_tx_out_stake_address_id ON tx_out USING btree (stake_address_id);
CREATE INDEX IF NOT EXISTS idx_withdrawal_tx_id ON withdrawal USING btree (tx_id);
CREATE INDEX IF NOT EXISTS idx_withdrawal_addr_id ON withdrawal USING btree (addr_id);
CREATE INDEX IF NOT EXISTS idx_collateral_tx_in_tx_out_id ON collateral_tx_in USING btree (tx_out_id);
CREATE INDEX IF NOT EXISTS reference_tx_in_tx_out_id_idx ON reference_tx_in USING btree (tx_out_id);
