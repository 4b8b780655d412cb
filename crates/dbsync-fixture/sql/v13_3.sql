-- Deltas of 13.3.0.0 (stage_two 41) over 13.2; 13.4 to 13.6 change none of these tables.
ALTER TYPE rewardtype ADD VALUE 'proposal_refund';

-- instant_reward becomes reward_rest and loses its unique key, so several proposal refunds
-- per address and epoch fit (cardano-db-sync#1702).
ALTER TABLE instant_reward RENAME TO reward_rest;
ALTER TABLE reward_rest DROP CONSTRAINT unique_instant_reward;

ALTER TABLE ada_pots RENAME COLUMN deposits TO deposits_stake;
ALTER TABLE ada_pots ADD COLUMN deposits_drep lovelace NOT NULL DEFAULT 0;
ALTER TABLE ada_pots ADD COLUMN deposits_proposal lovelace NOT NULL DEFAULT 0;
ALTER TABLE ada_pots ALTER COLUMN deposits_drep DROP DEFAULT;
ALTER TABLE ada_pots ALTER COLUMN deposits_proposal DROP DEFAULT;

ALTER TABLE tx ADD COLUMN treasury_donation lovelace NOT NULL DEFAULT 0;
ALTER TABLE pool_update ADD COLUMN deposit lovelace NULL;
ALTER TABLE stake_registration ADD COLUMN deposit lovelace NULL;
