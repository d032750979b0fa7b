//! The resilience series of a service's metrics registry.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::breaker::{BreakerMetrics, BreakerPolicy, CircuitBreaker};

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
}

impl ResilienceMetrics {
    /// Registers the families in `registry`.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "allframe_breaker_state",
            "State of each circuit breaker: 0 closed, 1 open, 2 half-open",
            self.breaker_state.clone(),
        );
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
        CircuitBreaker::build(target, policy, Some(metrics))
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
