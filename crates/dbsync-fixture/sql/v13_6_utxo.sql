-- 13.6.0.1 (migration 2-0044): `tx_out.consumed_by_tx_id` always exists from here on and is
-- NULL unless the consumed variant is in use (`extra_migrations` says so), so its existence
-- means nothing.
ALTER TABLE tx_out ADD COLUMN IF NOT EXISTS consumed_by_tx_id bigint NULL;
