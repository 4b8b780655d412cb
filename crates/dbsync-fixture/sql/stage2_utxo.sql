-- Stage 2: the UTxO tables in their 13.2.0.x shape (key columns; db-sync's full tables also
-- hold datum, script and multi-asset references the exporter never reads). No foreign keys
-- and no unique key on tx_in: db-sync dropped `unique_txin` and `unique_col_txin` in 13.1.1,
-- so an output can be referenced twice (a double spend).

CREATE TABLE tx_out (
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

CREATE TABLE tx_in (
    id bigserial PRIMARY KEY,
    tx_in_id bigint NOT NULL,
    tx_out_id bigint NOT NULL,
    tx_out_index txindex NOT NULL,
    redeemer_id bigint NULL
);

-- Declared collateral, collateral return and reference inputs of *valid* Plutus
-- transactions (db-sync writes them only in the valid branch; an invalid transaction's
-- collateral is in tx_in and its return in tx_out).
CREATE TABLE collateral_tx_in (
    id bigserial PRIMARY KEY,
    tx_in_id bigint NOT NULL,
    tx_out_id bigint NOT NULL,
    tx_out_index txindex NOT NULL
);

CREATE TABLE collateral_tx_out (
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

CREATE TABLE reference_tx_in (
    id bigserial PRIMARY KEY,
    tx_in_id bigint NOT NULL,
    tx_out_id bigint NOT NULL,
    tx_out_index txindex NOT NULL
);

-- withdrawal: in stage2_base.sql.

-- The tx_out variants in use (`token` is the Haskell `show` of db-sync's ExtraMigration:
-- ConsumeTxOutPreviouslySet, PruneTxOutFlagPreviouslySet, BootstrapStarted, ...).
CREATE TABLE extra_migrations (
    id bigserial PRIMARY KEY,
    token varchar NOT NULL,
    description varchar NULL
);
