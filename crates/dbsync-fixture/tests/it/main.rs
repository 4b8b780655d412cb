//! Integration tests against a real PostgreSQL (one binary, so one shared cluster per run).

mod cluster;
mod fixture;
mod schema;
