//! Integration tests: the exporter against a real, throwaway PostgreSQL.

mod abuse;
mod common;
mod core_metrics;
mod haproxy;
mod http_surface;
mod integrity;
mod koios;
mod lying_peers;
mod package;
mod pg_tls;
mod reader_role;
mod resilience;
mod routing;
mod size;
mod tip_failures;
mod tx_rules;
