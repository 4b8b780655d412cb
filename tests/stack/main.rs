//! The shared monitoring stack, tested against the real exporter: the Grafana dashboards in
//! `dashboards/` and the Prometheus rules in `alerts/`, with a real Prometheus server
//! (`/usr/bin/prometheus`, `promtool`; `./scripts/test` installs them) scraping exporters that
//! read throwaway db-sync fixture databases.
//!
//! - [`dashboards`]: each dashboard parses, is importable, and reads only served metrics.
//! - [`end_to_end`]: Prometheus scrapes two exporters and evaluates the rules; every dashboard
//!   query returns data, every rule evaluates cleanly, the stale-tip alert goes pending.
//! - [`unavailable`]: the one allow-list of what the fixtures cannot produce, with reasons.

mod common;
mod dashboards;
mod delivery;
mod end_to_end;
mod process;
mod prometheus;
mod promql;
mod push;
mod queries;
mod rules;
mod unavailable;
