-- The UTxO and withdrawal tables of db-sync (stage 2, `schema/migration-2-*.sql`), as far as
-- the integrity rules and the simulator use them: outputs, inputs, withdrawals, declared
-- collateral and reference inputs, declared collateral returns, and `extra_migrations`
-- (which tx_out variant is in use). `IF NOT EXISTS` so that another copy of the same tables
-- in the base file wins without an error. `unique_txin`/`unique_withdrawal` were dropped in
-- 13.1.1 (migration 2-0021): duplicates are possible and are what the double-spend rule finds.
CREATE TABLE IF NOT EXISTS tx_out (
    id bigserial PRIMARY KEY,
    tx_id bigint NOT NULL,
    index txindex NOT NULL,
    address varchar NOT NULL,
    address_has_script boolean NOT NULL,
    payment_cred hash28type NULL,
    stake_address_id bigint NULL,
    value lovelace NOT NULL,
    data_hash hash32type NULL,
    inline_datum_id bigint NULL,
    reference_script_id bigint NULL,
    CONSTRAINT unique_txout UNIQUE (tx_id, index)
);

CREATE TABLE IF NOT EXISTS tx_in (
    id bigserial PRIMARY KEY,
    tx_in_id bigint NOT NULL,
    tx_out_id bigint NOT NULL,
    tx_out_index txindex NOT NULL,
    redeemer_id bigint NULL
);

CREATE TABLE IF NOT EXISTS collateral_tx_in (
    id bigserial PRIMARY KEY,
    tx_in_id bigint NOT NULL,
    tx_out_id bigint NOT NULL,
    tx_out_index txindex NOT NULL
);

CREATE TABLE IF NOT EXISTS reference_tx_in (
    id bigserial PRIMARY KEY,
    tx_in_id bigint NOT NULL,
    tx_out_id bigint NOT NULL,
    tx_out_index txindex NOT NULL
);

CREATE TABLE IF NOT EXISTS collateral_tx_out (
    id bigserial PRIMARY KEY,
    tx_id bigint NOT NULL,
    index txindex NOT NULL,
    address varchar NOT NULL,
    address_has_script boolean NOT NULL,
    payment_cred hash28type NULL,
    stake_address_id bigint NULL,
    value lovelace NOT NULL,
    data_hash hash32type NULL,
    multi_assets_descr varchar NOT NULL,
    inline_datum_id bigint NULL,
    reference_script_id bigint NULL
);

CREATE TABLE IF NOT EXISTS withdrawal (
    id bigserial PRIMARY KEY,
    addr_id bigint NOT NULL,
    amount lovelace NOT NULL,
    redeemer_id bigint NULL,
    tx_id bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS extra_migrations (
    id bigserial PRIMARY KEY,
    token varchar NOT NULL,
    description varchar NULL
);
