//! A cache's counters ([`CacheStats`]) and their Prometheus rendering ([`CacheCollector`]).
//!
//! Plain atomics updated on the hot path; the collector reads them at scrape time, so a
//! cache costs nothing for metrics nobody scrapes. Every series carries a `cache` label (the
//! namespace).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The live counters of one cache.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) loads: AtomicU64,
    pub(super) load_failures: AtomicU64,
    pub(super) evictions: AtomicU64,
    pub(super) engine_errors: AtomicU64,
    pub(super) pending_writes: AtomicU64,
    pub(super) flushed_writes: AtomicU64,
    pub(super) flush_failures: AtomicU64,
}

impl Counters {
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Lowers the pending-writes gauge by `n`, never below zero (another process may have
    /// stored rows this one counted).
    pub(super) fn flushed(&self, n: u64) {
        let _ = self
            .pending_writes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |pending| {
                Some(pending.saturating_sub(n))
            });
        Self::add(&self.flushed_writes, n);
    }

    pub(super) fn snapshot(&self) -> CacheStats {
        let get = |value: &AtomicU64| value.load(Ordering::Relaxed);
        CacheStats {
            hits: get(&self.hits),
            misses: get(&self.misses),
            loads: get(&self.loads),
            load_failures: get(&self.load_failures),
            evictions: get(&self.evictions),
            engine_errors: get(&self.engine_errors),
            pending_writes: get(&self.pending_writes),
            flushed_writes: get(&self.flushed_writes),
            flush_failures: get(&self.flush_failures),
        }
    }
}

/// A copy of a cache's counters at one moment ([`super::Cache::stats`]). Counts are since the
/// cache was opened, for this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// `get`s answered from the engine.
    pub hits: u64,
    /// `get`s the engine could not answer (each caller counts, even those that awaited
    /// another caller's load).
    pub misses: u64,
    /// Loads from the source (one per key however many callers missed at once).
    pub loads: u64,
    /// Loads that failed.
    pub load_failures: u64,
    /// Cached entries removed by `evict`, `evict_all` and cache-aside `put`s.
    pub evictions: u64,
    /// Engine failures (Redis down): a `get` then loads from the source instead.
    pub engine_errors: u64,
    /// Write-behind writes recorded and not yet stored (a gauge; counted from the table at
    /// open, then by this process's puts and flushes).
    pub pending_writes: u64,
    /// Write-behind rows stored through the source and deleted.
    pub flushed_writes: u64,
    /// Write-behind batches the source refused (their rows stay pending).
    pub flush_failures: u64,
}

/// Renders a cache's counters for Prometheus: register it in a `prometheus_client` registry
/// ([`super::Cache::register_metrics`]). Series: `allframe_cache_hits_total`, `…_misses_total`,
/// `…_loads_total`, `…_load_failures_total`, `…_evictions_total`, `…_engine_errors_total`,
/// `…_flushed_writes_total`, `…_flush_failures_total`, and the gauge
/// `allframe_cache_pending_writes`, each labelled `cache="<namespace>"`.
#[derive(Debug, Clone)]
pub struct CacheCollector {
    namespace: Cow<'static, str>,
    counters: Arc<Counters>,
}

impl CacheCollector {
    pub(super) fn new(namespace: Cow<'static, str>, counters: Arc<Counters>) -> Self {
        Self {
            namespace,
            counters,
        }
    }
}

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats = self.counters.snapshot();
        let labels = [("cache", self.namespace.as_ref())];
        let counters = [
            (
                "allframe_cache_hits",
                "Cache gets answered from the engine",
                stats.hits,
            ),
            (
                "allframe_cache_misses",
                "Cache gets the engine could not answer",
                stats.misses,
            ),
            (
                "allframe_cache_loads",
                "Loads from the cache source",
                stats.loads,
            ),
            (
                "allframe_cache_load_failures",
                "Failed loads from the cache source",
                stats.load_failures,
            ),
            (
                "allframe_cache_evictions",
                "Cached entries evicted",
                stats.evictions,
            ),
            (
                "allframe_cache_engine_errors",
                "Cache engine failures",
                stats.engine_errors,
            ),
            (
                "allframe_cache_flushed_writes",
                "Write-behind writes stored through the source",
                stats.flushed_writes,
            ),
            (
                "allframe_cache_flush_failures",
                "Write-behind batches the source refused",
                stats.flush_failures,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let mut family = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(family.encode_family(&labels)?)?;
        }
        let gauge = ConstGauge::new(i64::try_from(stats.pending_writes).unwrap_or(i64::MAX));
        let mut family = encoder.encode_descriptor(
            "allframe_cache_pending_writes",
            "Write-behind writes recorded and not yet stored",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(family.encode_family(&labels)?)
    }
}

/// The cache series of one service's registry, empty until a cache service's cache is
/// observed ([`crate::metrics::Metrics::observe_cache`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct CacheMetricsSlot(Arc<std::sync::OnceLock<CacheCollector>>);

impl CacheMetricsSlot {
    /// Renders `collector` from now on; a second cache is ignored (a service has one).
    pub(crate) fn set(&self, collector: CacheCollector) {
        if self.0.set(collector).is_err() {
            tracing::warn!("a second cache's metrics are not exported: a service has one cache");
        }
    }
}

impl Collector for CacheMetricsSlot {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        match self.0.get() {
            Some(collector) => collector.encode(encoder),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn counters_render_with_the_cache_label() {
        let counters = Arc::new(Counters::default());
        Counters::add(&counters.hits, 3);
        Counters::add(&counters.pending_writes, 2);
        counters.flushed(5);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(CacheCollector::new(
            Cow::Borrowed("product-cache"),
            counters.clone(),
        )));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("render");
        assert!(
            text.contains(r#"allframe_cache_hits_total{cache="product-cache"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"allframe_cache_pending_writes{cache="product-cache"} 0"#),
            "the gauge never goes below zero: {text}"
        );
        assert_eq!(counters.snapshot().flushed_writes, 5);
    }
}
