-- Koios `grest` cache bookkeeping (koios-artifacts files/grest/rpc/db-scripts/basics.sql).
CREATE SCHEMA IF NOT EXISTS grest;
CREATE TABLE IF NOT EXISTS grest.control_table (
    key text PRIMARY KEY,
    last_value text NOT NULL,
    artifacts text
);
