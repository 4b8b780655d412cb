-- Deltas of 13.6.0.1 (migration-2-0044) over 13.3: the column of the consumed_by_tx_id
-- variant, always present and NULL unless that variant is in use (extra_migrations says).
ALTER TABLE tx_out ADD COLUMN IF NOT EXISTS consumed_by_tx_id bigint NULL;
