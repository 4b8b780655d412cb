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
pub mod process;
mod routing;
mod size;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
    MetricEncoder,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

pub use negotiate::{negotiate, Format};
pub use process::{ProcessSource, ProcessStats, SelfProcess};

use crate::db::{PoolStatus, PoolStatusSource};
use crate::health::HealthPolicy;
use crate::store::Store;

/// Content type of an OpenMetrics response (the crate defines no constant for it).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of a classic text-format response.
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `/metrics` body, rendered from the store at most once per second per format.
///
/// Scrapes read a cached rendering while nothing changed: the same store contents (every
/// check result and peer update bumps the store's generation), the same pool occupancy and
/// the same wall-clock second. Values derived from the clock (tip age, expected slot, lag)
/// are therefore at most one second old, and a hundred scrapers cost one encoding per
/// second instead of a hundred.
pub struct Exposition {
    registry: Registry,
    store: Arc<Store>,
    pool: Arc<dyn PoolStatusSource>,
    /// One slot per [`Format`].
    cache: [Mutex<Option<Rendered>>; 2],
}

/// A rendering and what it was rendered from.
struct Rendered {
    key: RenderKey,
    body: Bytes,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct RenderKey {
    generation: u64,
    second: i64,
    pool: PoolStatus,
}

impl Exposition {
    /// An exposition of `store` (and its clock), the occupancy `pool` reports, the
    /// `process` readings, and the health state under `policy`. Nothing here touches a
    /// database.
    pub fn new(
        store: Arc<Store>,
        pool: Arc<dyn PoolStatusSource>,
        process: Arc<dyn ProcessSource>,
        policy: Arc<HealthPolicy>,
    ) -> Exposition {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ExporterCollector {
            store: store.clone(),
            pool: pool.clone(),
            process,
            policy,
        }));
        Exposition {
            registry,
            store,
            pool,
            cache: Default::default(),
        }
    }

    /// The body in `format`, from the cache when nothing changed this second.
    pub fn render(&self, format: Format) -> Result<Bytes, fmt::Error> {
        let key = RenderKey {
            generation: self.store.generation(),
            second: self.store.now_unix().floor() as i64,
            pool: self.pool.pool_status(),
        };
        let slot = &self.cache[format as usize];
        if let Some(rendered) = lock(slot).as_ref().filter(|rendered| rendered.key == key) {
            return Ok(rendered.body.clone());
        }
        let body = Bytes::from(encode(&self.registry, format)?);
        *lock(slot) = Some(Rendered {
            key,
            body: body.clone(),
        });
        Ok(body)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Encodes `registry` in `format`.
fn encode(registry: &Registry, format: Format) -> Result<String, fmt::Error> {
    let mut body = String::with_capacity(16 * 1024);
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut body, registry)?,
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut body, registry)?,
    }
    Ok(body)
}

/// Reads the store at scrape time.
struct ExporterCollector {
    store: Arc<Store>,
    pool: Arc<dyn PoolStatusSource>,
    process: Arc<dyn ProcessSource>,
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
            now: self.store.now_unix(),
            checks: self.store.snapshot(),
            peers: self.store.peers(),
        };
        core::encode(&mut encoder, &scrape, &self.pool.pool_status())?;
        integrity::encode(&mut encoder, &scrape)?;
        routing::encode(&mut encoder, &scrape, &self.policy)?;
        size::encode(&mut encoder, &scrape)?;
        process::encode(&mut encoder, self.process.as_ref())
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

/// Writes unlabelled gauges whose HELP texts end in the same `note` (how fresh they are).
pub(crate) fn noted_gauges(
    encoder: &mut DescriptorEncoder,
    note: &str,
    list: &[(&str, &str, i64)],
) -> fmt::Result {
    for (name, help, value) in list {
        gauge(encoder, name, &format!("{help} {note}"), *value)?;
    }
    Ok(())
}

/// Writes one gauge family with a series per label set.
pub(crate) fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    family(
        encoder,
        name,
        help,
        MetricType::Gauge,
        series,
        |value, metric| ConstGauge::new(value).encode(metric),
    )
}

/// Writes one family of `kind`, encoding each series' value with `encode`.
pub(crate) fn family<L: EncodeLabelSet, V>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    series: impl IntoIterator<Item = (L, V)>,
    encode: impl Fn(V, MetricEncoder) -> fmt::Result,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in series {
        encode(value, metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// No labels: the label set of a family with a single series.
pub(crate) const NO_LABELS: [(&str, &str); 0] = [];

/// Encodes a counter's value (for [`family`] with [`MetricType::Counter`]: `name` without
/// `_total`, the encoder appends it).
pub(crate) fn counter_value<V: EncodeCounterValue>(value: V, metric: MetricEncoder) -> fmt::Result {
    ConstCounter::new(value).encode(metric)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::checks::{Cadence, CheckName, Findings, RollbackStats, Verdict};
    use crate::clock::Clock;
    use crate::config::HealthConfig;

    #[tokio::test]
    async fn renders_once_until_the_store_changes() {
        let cadence = Cadence {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
        };
        let store = Arc::new(Store::new(
            Clock::pinned(1_800_000_000.0),
            [(CheckName::Rollback, cadence)],
        ));
        let pool = Arc::new(PoolStatus {
            idle: 1,
            active: 0,
            max: 3,
        });
        let policy = Arc::new(HealthPolicy::new(&HealthConfig::default()));
        let exposition = Exposition::new(store.clone(), pool, Arc::new(SelfProcess), policy);

        let record = |total| {
            let stats = RollbackStats {
                total,
                last_depth: 1,
            };
            store.record(
                CheckName::Rollback,
                Ok(Verdict::Found(Findings::Rollback(stats))),
                Duration::ZERO,
            );
        };
        record(1);
        // Two renders in the same second share one encoding (the clock is pinned).
        let first = exposition.render(Format::Text).unwrap();
        let again = exposition.render(Format::Text).unwrap();
        assert_eq!(
            first.as_ptr(),
            again.as_ptr(),
            "a second render in the same second is served from the cache"
        );
        let first = exposition.render(Format::Text).unwrap();
        assert!(std::str::from_utf8(&first)
            .unwrap()
            .contains("dbsync_rollbacks_total 1\n"));
        record(2);
        let changed = exposition.render(Format::Text).unwrap();
        assert!(std::str::from_utf8(&changed)
            .unwrap()
            .contains("dbsync_rollbacks_total 2\n"));
        let open = exposition.render(Format::OpenMetrics).unwrap();
        assert!(std::str::from_utf8(&open).unwrap().ends_with("# EOF\n"));
    }
}
