//! The shared monitoring stack, tested against the real exporter: the Grafana dashboards in
//! `dashboards/`, the rules in `alerts/`, the Alertmanager config in
//! `docker/central/alertmanager/` and the push model's files in `docker/agent/`, with Debian's
//! real servers as child processes (Prometheus and its agent mode, VictoriaMetrics, vmauth,
//! vmalert, Alertmanager; `./scripts/test` installs them) and exporters that read throwaway
//! db-sync fixture databases.
//!
//! - [`dashboards`]: each dashboard parses, is importable, and reads only served metrics.
//! - [`end_to_end`]: the pull model. Prometheus scrapes two exporters and evaluates the
//!   rules; every dashboard query returns data, every rule evaluates cleanly, the stalled
//!   instance's alerts fire and the critical stale tip is delivered to Telegram, then resolved.
//! - [`push`]: the push model. Agents remote-write through vmauth into VictoriaMetrics,
//!   vmalert alerts through Alertmanager to Telegram; a killed agent is noticed.
//! - [`rules`]: both rule engines accept every file; thresholds match the health defaults.
//! - [`unavailable`]: the one allow-list of what the fixtures cannot produce, with reasons.
//! - [`web_security`]: Prometheus scraping `/metrics` over TLS with basic auth.

mod common;
mod dashboards;
mod delivery;
mod end_to_end;
mod file_sd;
mod process;
mod prometheus;
mod promql;
mod push;
mod queries;
mod rules;
mod unavailable;
mod web_security;
