//! Encoding the store for Prometheus.
//!
//! One [`Collector`] reads a snapshot of the [`Store`] at scrape time and writes every
//! family with `ConstGauge`/`ConstCounter`: scrapes cost no database I/O, and a series whose
//! source vanished (a check that stopped applying) vanishes with it. Values derived from the
//! wall clock (tip age, expected slot, lag) are computed here, so they stay exact between
//! two tip checks. The response format follows the scraper's `Accept` header.

mod core;
mod integrity;
mod negotiate;
mod routing;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

pub use negotiate::{negotiate, Format};

use crate::db::Database;
use crate::health::HealthPolicy;
use crate::scheduler::unix_now;
use crate::store::Store;

/// Content type of an OpenMetrics response (the crate defines no constant for it).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of a classic text-format response.
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Builds the frozen registry that `/metrics` encodes.
pub fn registry(store: Arc<Store>, db: Arc<Database>, policy: Arc<HealthPolicy>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ExporterCollector { store, db, policy }));
    registry
}

/// Encodes `registry` in `format`.
pub fn encode(registry: &Registry, format: Format) -> Result<String, fmt::Error> {
    let mut body = String::with_capacity(8 * 1024);
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut body, registry)?,
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut body, registry)?,
    }
    Ok(body)
}

/// Reads the store at scrape time.
struct ExporterCollector {
    store: Arc<Store>,
    db: Arc<Database>,
    policy: Arc<HealthPolicy>,
}

impl fmt::Debug for ExporterCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExporterCollector").finish_non_exhaustive()
    }
}

impl Collector for ExporterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let scrape = Scrape {
            now: unix_now(),
            checks: self.store.snapshot(),
            peers: self.store.peers(),
        };
        core::encode(&mut encoder, &scrape, &self.db.status())?;
        integrity::encode(&mut encoder, &scrape)?;
        routing::encode(&mut encoder, &scrape, &self.policy)
    }
}

/// What one scrape sees: the wall clock and a consistent snapshot of the checks.
pub(crate) struct Scrape {
    pub now: f64,
    pub checks: Vec<crate::store::CheckSnapshot>,
    pub peers: Arc<Vec<crate::store::PeerStatus>>,
}

impl Scrape {
    pub fn findings(&self, name: crate::checks::CheckName) -> Option<&crate::checks::Findings> {
        self.checks
            .iter()
            .find(|check| check.name == name)
            .and_then(|check| check.state.findings.as_deref())
    }
}

/// Writes one unlabelled gauge.
pub(crate) fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue,
) -> fmt::Result {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

/// Writes one gauge family with a series per label set.
pub(crate) fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes one unlabelled counter (`name` without `_total`; the encoder appends it).
pub(crate) fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> fmt::Result {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(metric)
}

/// Writes one counter family (`name` without `_total`; the encoder appends it).
pub(crate) fn counters<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        ConstCounter::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// `5s`, `10m`, `1h`: how HELP texts state a refresh interval.
pub(crate) fn human(duration: Duration) -> String {
    let millis = duration.as_millis();
    match millis {
        m if m % 3_600_000 == 0 => format!("{}h", m / 3_600_000),
        m if m % 60_000 == 0 => format!("{}m", m / 60_000),
        m if m % 1000 == 0 => format!("{}s", m / 1000),
        m => format!("{m}ms"),
    }
}
