//! Integration tests: the exporter against a real, throwaway PostgreSQL.

mod common;
mod core_metrics;
mod http_surface;
mod resilience;
