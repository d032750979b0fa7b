//! The resilience series of a service's metrics registry.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::breaker::{BreakerMetrics, BreakerPolicy, CircuitBreaker, WeakBreaker};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    policy: &'static str,
    target: String,
}

/// `allframe_breaker_state{target}` and `allframe_resilience_rejections_total{policy, target}`.
/// Cheap to clone: clones share the series.
#[derive(Debug, Clone, Default)]
pub struct ResilienceMetrics {
    breaker_state: Family<TargetLabels, Gauge>,
    rejections: Family<RejectionLabels, Counter>,
    /// The breakers built here, read again at each scrape: an open circuit whose timeout
    /// passed reads as half-open although no call has moved it yet.
    breakers: Arc<Mutex<Vec<WeakBreaker>>>,
}

/// `allframe_breaker_state`, each breaker's gauge refreshed from its state when scraped.
#[derive(Debug)]
struct BreakerStates(ResilienceMetrics);

impl Collector for BreakerStates {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let metrics = &self.0;
        let mut breakers = metrics
            .breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        breakers.retain(WeakBreaker::refresh);
        drop(breakers);
        metrics.breaker_state.encode(encoder.encode_descriptor(
            "allframe_breaker_state",
            "State of each circuit breaker: 0 closed, 1 open, 2 half-open",
            None,
            metrics.breaker_state.metric_type(),
        )?)
    }
}

impl ResilienceMetrics {
    /// Registers the families in `registry`.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(BreakerStates(self.clone())));
        registry.register(
            "allframe_resilience_rejections",
            "Calls and requests refused by a resilience policy (circuit_breaker, bulkhead, rate_limit), by target",
            self.rejections.clone(),
        );
    }

    /// A circuit breaker for `target` whose state and refusals are exported.
    pub fn breaker(&self, target: impl Into<Arc<str>>, policy: BreakerPolicy) -> CircuitBreaker {
        let target = target.into();
        let metrics = BreakerMetrics {
            state: self
                .breaker_state
                .get_or_create(&TargetLabels {
                    target: target.to_string(),
                })
                .clone(),
            rejected: self.rejections("circuit_breaker", &target),
        };
        let breaker = CircuitBreaker::build(target, policy, Some(metrics));
        self.breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(breaker.downgrade());
        breaker
    }

    /// The counter of refusals by `policy` for `target`.
    pub fn rejections(&self, policy: &'static str, target: &str) -> Counter {
        self.rejections
            .get_or_create(&RejectionLabels {
                policy,
                target: target.to_owned(),
            })
            .clone()
    }
}
