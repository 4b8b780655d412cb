-- Stage 4 (db-sync `schema/migration-4-*.sql`): created once, when db-sync first gets within
-- 30 minutes of the tip. Idempotent, so it can be applied to any InitialSync database.
CREATE INDEX IF NOT EXISTS idx_block_time ON block USING btree (time);
CREATE INDEX IF NOT EXISTS idx_block_slot_leader_id ON block USING btree (slot_leader_id);
CREATE INDEX IF NOT EXISTS idx_slot_leader_pool_hash_id ON slot_leader USING btree (pool_hash_id);
CREATE INDEX IF NOT EXISTS idx_epoch_param_block_id ON epoch_param USING btree (block_id);
CREATE INDEX IF NOT EXISTS idx_reward_addr_id ON reward USING btree (addr_id);
CREATE INDEX IF NOT EXISTS idx_reward_pool_id ON reward USING btree (pool_id);
CREATE INDEX IF NOT EXISTS idx_reward_earned_epoch ON reward USING btree (earned_epoch);
CREATE INDEX IF NOT EXISTS idx_reserve_addr_id ON reserve USING btree (addr_id);
CREATE INDEX IF NOT EXISTS idx_reserve_tx_id ON reserve USING btree (tx_id);
CREATE INDEX IF NOT EXISTS idx_treasury_addr_id ON treasury USING btree (addr_id);
CREATE INDEX IF NOT EXISTS idx_treasury_tx_id ON treasury USING btree (tx_id);
CREATE INDEX IF NOT EXISTS idx_pool_retire_hash_id ON pool_retire USING btree (hash_id);
CREATE INDEX IF NOT EXISTS idx_pool_retire_announced_tx_id ON pool_retire USING btree (announced_tx_id);
CREATE INDEX IF NOT EXISTS idx_pool_update_hash_id ON pool_update USING btree (hash_id);
CREATE INDEX IF NOT EXISTS idx_pool_update_active_epoch_no ON pool_update USING btree (active_epoch_no);
CREATE INDEX IF NOT EXISTS idx_pool_update_meta_id ON pool_update USING btree (meta_id);
CREATE INDEX IF NOT EXISTS idx_pool_update_reward_addr ON pool_update USING btree (reward_addr_id);
CREATE INDEX IF NOT EXISTS idx_pool_update_registered_tx_id ON pool_update USING btree (registered_tx_id);
CREATE INDEX IF NOT EXISTS pool_owner_pool_update_id_idx ON pool_owner USING btree (pool_update_id);
CREATE INDEX IF NOT EXISTS idx_stake_address_view ON stake_address USING hash (view);
CREATE INDEX IF NOT EXISTS idx_stake_registration_addr_id ON stake_registration USING btree (addr_id);
CREATE INDEX IF NOT EXISTS idx_stake_registration_tx_id ON stake_registration USING btree (tx_id);
CREATE INDEX IF NOT EXISTS idx_stake_deregistration_addr_id ON stake_deregistration USING btree (addr_id);
CREATE INDEX IF NOT EXISTS idx_stake_deregistration_tx_id ON stake_deregistration USING btree (tx_id);
CREATE INDEX IF NOT EXISTS idx_stake_deregistration_redeemer_id ON stake_deregistration USING btree (redeemer_id);
CREATE INDEX IF NOT EXISTS idx_epoch_stake_addr_id ON epoch_stake USING btree (addr_id);
CREATE INDEX IF NOT EXISTS idx_epoch_stake_pool_id ON epoch_stake USING btree (pool_id);
CREATE INDEX IF NOT EXISTS idx_withdrawal_addr_id ON withdrawal USING btree (addr_id);
CREATE INDEX IF NOT EXISTS idx_withdrawal_redeemer_id ON withdrawal USING btree (redeemer_id);
CREATE INDEX IF NOT EXISTS idx_withdrawal_tx_id ON withdrawal USING btree (tx_id);

-- Run-time constraints db-sync adds from Haskell near the tip (Util/Constraint.hs); it checks
-- for them first, and so do we, to stay idempotent.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'unique_reward') THEN
        ALTER TABLE reward
            ADD CONSTRAINT unique_reward UNIQUE (addr_id, type, earned_epoch, pool_id);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'unique_epoch_stake') THEN
        ALTER TABLE epoch_stake
            ADD CONSTRAINT unique_epoch_stake UNIQUE (epoch_no, addr_id, pool_id);
    END IF;
END
$$;
