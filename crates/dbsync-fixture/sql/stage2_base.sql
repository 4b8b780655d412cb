-- Stage 2 (db-sync `schema/migration-2-*.sql`): tables in their 13.2.0.x shape (stage_two 33).
-- Later versions are expressed as deltas (v13_3.sql, v13_7.sql), the way db-sync migrates.
-- No foreign keys: db-sync dropped them all in 13.1.

CREATE TABLE schema_version (
    id bigserial PRIMARY KEY,
    stage_one bigint NOT NULL,
    stage_two bigint NOT NULL,
    stage_three bigint NOT NULL
);

CREATE TABLE meta (
    id bigserial PRIMARY KEY,
    start_time timestamp NOT NULL,
    network_name varchar NOT NULL,
    version varchar NOT NULL,
    CONSTRAINT unique_meta UNIQUE (start_time)
);

CREATE TABLE slot_leader (
    id bigserial PRIMARY KEY,
    hash hash28type NOT NULL,
    pool_hash_id bigint NULL,
    description varchar NOT NULL,
    CONSTRAINT unique_slot_leader UNIQUE (hash)
);

CREATE TABLE block (
    id bigserial PRIMARY KEY,
    hash hash32type NOT NULL,
    epoch_no word31type NULL,
    slot_no word63type NULL,
    epoch_slot_no word31type NULL,
    block_no word31type NULL,
    previous_id bigint NULL,
    slot_leader_id bigint NOT NULL,
    size word31type NOT NULL,
    time timestamp NOT NULL,
    tx_count bigint NOT NULL,
    proto_major word31type NOT NULL,
    proto_minor word31type NOT NULL,
    vrf_key varchar NULL,
    op_cert hash32type NULL,
    op_cert_counter word63type NULL,
    CONSTRAINT unique_block UNIQUE (hash)
);

CREATE TABLE tx (
    id bigserial PRIMARY KEY,
    hash hash32type NOT NULL,
    block_id bigint NOT NULL,
    block_index word31type NOT NULL,
    out_sum lovelace NOT NULL,
    fee lovelace NOT NULL,
    deposit bigint NULL,
    size word31type NOT NULL,
    invalid_before word64type NULL,
    invalid_hereafter word64type NULL,
    valid_contract boolean NOT NULL,
    script_size word31type NOT NULL,
    CONSTRAINT unique_tx UNIQUE (hash)
);

CREATE TABLE epoch (
    id bigserial PRIMARY KEY,
    out_sum word128type NOT NULL,
    fees lovelace NOT NULL,
    tx_count word31type NOT NULL,
    blk_count word31type NOT NULL,
    no word31type NOT NULL,
    start_time timestamp NOT NULL,
    end_time timestamp NOT NULL,
    CONSTRAINT unique_epoch UNIQUE (no)
);

CREATE TABLE epoch_sync_time (
    id bigserial PRIMARY KEY,
    no bigint NOT NULL,
    seconds word63type NOT NULL,
    state syncstatetype NOT NULL,
    CONSTRAINT unique_epoch_sync_time UNIQUE (no)
);

CREATE TABLE ada_pots (
    id bigserial PRIMARY KEY,
    slot_no word63type NOT NULL,
    epoch_no word31type NOT NULL,
    treasury lovelace NOT NULL,
    reserves lovelace NOT NULL,
    rewards lovelace NOT NULL,
    utxo lovelace NOT NULL,
    deposits lovelace NOT NULL,
    fees lovelace NOT NULL,
    block_id bigint NOT NULL
);

CREATE TABLE reserve (
    id bigserial PRIMARY KEY,
    addr_id bigint NOT NULL,
    cert_index integer NOT NULL,
    amount int65type NOT NULL,
    tx_id bigint NOT NULL
);

CREATE TABLE treasury (
    id bigserial PRIMARY KEY,
    addr_id bigint NOT NULL,
    cert_index integer NOT NULL,
    amount int65type NOT NULL,
    tx_id bigint NOT NULL
);

CREATE TABLE pot_transfer (
    id bigserial PRIMARY KEY,
    cert_index integer NOT NULL,
    treasury int65type NOT NULL,
    reserves int65type NOT NULL,
    tx_id bigint NOT NULL
);

-- 13.2: no id, pool_id NOT NULL, earned_epoch generated; unique_reward is added at run time
-- near the tip (stage4.sql).
CREATE TABLE reward (
    addr_id bigint NOT NULL,
    type rewardtype NOT NULL,
    amount lovelace NOT NULL,
    spendable_epoch bigint NOT NULL,
    pool_id bigint NOT NULL,
    earned_epoch bigint NOT NULL GENERATED ALWAYS AS (
        CASE WHEN type = 'refund' THEN spendable_epoch
             ELSE CASE WHEN spendable_epoch >= 2 THEN spendable_epoch - 2 ELSE 0 END
        END) STORED
);

-- Renamed to reward_rest (and its unique key dropped) in 13.3, see v13_3.sql.
CREATE TABLE instant_reward (
    addr_id bigint NOT NULL,
    type rewardtype NOT NULL,
    amount lovelace NOT NULL,
    spendable_epoch bigint NOT NULL,
    earned_epoch bigint NOT NULL GENERATED ALWAYS AS (
        CASE WHEN spendable_epoch >= 1 THEN spendable_epoch - 1 ELSE 0 END) STORED,
    CONSTRAINT unique_instant_reward UNIQUE (addr_id, earned_epoch, type)
);

-- withdrawal (db-sync 13.x): one row per reward-account withdrawal of a valid tx; invalid
-- (phase-2-failed) txs have none. unique_withdrawal was dropped in 13.1.1 (2-0021).
CREATE TABLE withdrawal (
    id bigserial PRIMARY KEY,
    addr_id bigint NOT NULL,
    amount lovelace NOT NULL,
    redeemer_id bigint NULL,
    tx_id bigint NOT NULL
);

CREATE TABLE pool_hash (
    id bigserial PRIMARY KEY,
    hash_raw hash28type NOT NULL,
    view varchar NOT NULL,
    CONSTRAINT unique_pool_hash UNIQUE (hash_raw)
);

CREATE TABLE pool_update (
    id bigserial PRIMARY KEY,
    hash_id bigint NOT NULL,
    cert_index integer NOT NULL,
    vrf_key_hash hash32type NOT NULL,
    pledge lovelace NOT NULL,
    active_epoch_no bigint NOT NULL,
    meta_id bigint NULL,
    margin double precision NOT NULL,
    fixed_cost lovelace NOT NULL,
    registered_tx_id bigint NOT NULL,
    reward_addr_id bigint NOT NULL
);

-- One row per owner of every pool_update certificate (unique_pool_owner dropped in 13.1.1).
CREATE TABLE pool_owner (
    id bigserial PRIMARY KEY,
    addr_id bigint NOT NULL,
    pool_update_id bigint NOT NULL
);

CREATE TABLE pool_retire (
    id bigserial PRIMARY KEY,
    hash_id bigint NOT NULL,
    cert_index integer NOT NULL,
    announced_tx_id bigint NOT NULL,
    retiring_epoch word31type NOT NULL
);

CREATE TABLE stake_address (
    id bigserial PRIMARY KEY,
    hash_raw addr29type NOT NULL,
    view varchar NOT NULL,
    script_hash hash28type NULL,
    CONSTRAINT unique_stake_address UNIQUE (hash_raw)
);

CREATE TABLE stake_registration (
    id bigserial PRIMARY KEY,
    addr_id bigint NOT NULL,
    cert_index integer NOT NULL,
    epoch_no word31type NOT NULL,
    tx_id bigint NOT NULL
);

CREATE TABLE stake_deregistration (
    id bigserial PRIMARY KEY,
    addr_id bigint NOT NULL,
    cert_index integer NOT NULL,
    epoch_no word31type NOT NULL,
    tx_id bigint NOT NULL,
    redeemer_id bigint NULL
);

-- unique_epoch_stake is added at run time near the tip (stage4.sql).
CREATE TABLE epoch_stake (
    id bigserial PRIMARY KEY,
    addr_id bigint NOT NULL,
    pool_id bigint NOT NULL,
    amount lovelace NOT NULL,
    epoch_no word31type NOT NULL
);

CREATE TABLE epoch_stake_progress (
    id bigserial PRIMARY KEY,
    epoch_no word31type NOT NULL,
    completed boolean NOT NULL,
    CONSTRAINT unique_epoch_stake_progress UNIQUE (epoch_no)
);

-- The key columns of db-sync's epoch_param; the Conway governance columns are nullable
-- because they are NULL before Conway.
CREATE TABLE epoch_param (
    id bigserial PRIMARY KEY,
    epoch_no word31type NOT NULL,
    min_fee_a word31type NOT NULL,
    min_fee_b word31type NOT NULL,
    max_block_size word31type NOT NULL,
    max_tx_size word31type NOT NULL,
    max_bh_size word31type NOT NULL,
    key_deposit lovelace NOT NULL,
    pool_deposit lovelace NOT NULL,
    max_epoch word31type NOT NULL,
    optimal_pool_count word31type NOT NULL,
    influence double precision NOT NULL,
    monetary_expand_rate double precision NOT NULL,
    treasury_growth_rate double precision NOT NULL,
    decentralisation double precision NOT NULL,
    protocol_major word31type NOT NULL,
    protocol_minor word31type NOT NULL,
    min_utxo_value lovelace NOT NULL,
    min_pool_cost lovelace NOT NULL,
    nonce hash32type NULL,
    coins_per_utxo_size lovelace NULL,
    block_id bigint NOT NULL,
    gov_action_lifetime word64type NULL,
    gov_action_deposit word64type NULL,
    drep_deposit word64type NULL,
    drep_activity word64type NULL
);
