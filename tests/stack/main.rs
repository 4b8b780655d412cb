//! The shared monitoring stack, tested against the real exporter: the Grafana dashboards in
//! `dashboards/` and the Prometheus rules in `alerts/`, with a real Prometheus server
//! (`/usr/bin/prometheus`, `promtool`; `./scripts/test` installs them) scraping exporters that
//! read throwaway db-sync fixture databases.
//!
//! - [`dashboards`]: each dashboard parses, is importable, and reads only served metrics.
//! - [`end_to_end`]: Prometheus scrapes two exporters and evaluates the rules; every dashboard
//!   query returns data, every rule evaluates cleanly, the stale-tip alert goes pending.
//! - [`unavailable`]: the one allow-list of what the fixtures cannot produce, with reasons.
//! - [`web_security`]: Prometheus scraping `/metrics` over TLS with basic auth.

mod common;
mod dashboards;
mod end_to_end;
mod file_sd;
mod prometheus;
mod promql;
mod rules;
mod unavailable;
mod web_security;
