-- Stage 4 index on `epoch`, only while `epoch` is a table (up to 13.7.1).
CREATE INDEX IF NOT EXISTS idx_epoch_no ON epoch USING btree (no);
