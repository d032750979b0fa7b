//! Outbox relay metrics: counters and gauges shared by the relays of one process.
//!
//! The relays update them; handlers read them through `Ctx::outbox_metrics()`; the relay logs
//! them periodically; the service's `/metrics` endpoint (`crate::metrics`) exposes them to
//! Prometheus. Lag is the age of the oldest unpublished row; throughput is
//! the `published_total` counter over time. Plain atomics: no registry, no I/O.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live metrics of the outbox relays of one service process.
#[derive(Debug, Default)]
pub struct OutboxMetrics {
    published: AtomicU64,
    batches: AtomicU64,
    publish_failures: AtomicU64,
    pruned: AtomicU64,
    pending: AtomicU64,
    oldest_pending_age_ms: AtomicU64,
    last_latency_ms: AtomicU64,
    consecutive_failures: AtomicU64,
}

/// A copy of [`OutboxMetrics`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxMetricsSnapshot {
    /// Rows published since start (a counter: its rate is the throughput).
    pub published_total: u64,
    /// Batches published since start.
    pub batches_total: u64,
    /// Failed publish attempts since start.
    pub publish_failures_total: u64,
    /// Published rows pruned since start.
    pub pruned_total: u64,
    /// Unpublished rows at the last backlog check (a gauge).
    pub pending: u64,
    /// Age of the oldest unpublished row at the last backlog check, in ms: the relay's lag.
    pub oldest_pending_age_ms: u64,
    /// Time from commit to publish of the oldest row of the last batch, in ms.
    pub last_latency_ms: u64,
    /// Failed attempts since the last success (0 while the bus is healthy).
    pub consecutive_failures: u64,
}

impl OutboxMetrics {
    /// Reads every value.
    pub fn snapshot(&self) -> OutboxMetricsSnapshot {
        let get = |value: &AtomicU64| value.load(Ordering::Relaxed);
        OutboxMetricsSnapshot {
            published_total: get(&self.published),
            batches_total: get(&self.batches),
            publish_failures_total: get(&self.publish_failures),
            pruned_total: get(&self.pruned),
            pending: get(&self.pending),
            oldest_pending_age_ms: get(&self.oldest_pending_age_ms),
            last_latency_ms: get(&self.last_latency_ms),
            consecutive_failures: get(&self.consecutive_failures),
        }
    }

    pub(crate) fn record_published(&self, rows: u64, latency_ms: u64) {
        self.published.fetch_add(rows, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.last_latency_ms.store(latency_ms, Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    pub(crate) fn record_failure(&self) -> u64 {
        self.publish_failures.fetch_add(1, Ordering::Relaxed);
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn record_pruned(&self, rows: u64) {
        self.pruned.fetch_add(rows, Ordering::Relaxed);
    }

    pub(crate) fn record_backlog(&self, pending: u64, oldest_age_ms: u64) {
        self.pending.store(pending, Ordering::Relaxed);
        self.oldest_pending_age_ms
            .store(oldest_age_ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_accumulate_and_render() {
        let metrics = OutboxMetrics::default();
        metrics.record_published(10, 5);
        metrics.record_published(5, 7);
        assert_eq!(metrics.record_failure(), 1);
        assert_eq!(metrics.record_failure(), 2);
        metrics.record_backlog(3, 1500);
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.published_total, 15);
        assert_eq!(snapshot.batches_total, 2);
        assert_eq!(snapshot.consecutive_failures, 2);
        assert_eq!(snapshot.oldest_pending_age_ms, 1500);
    }
}
