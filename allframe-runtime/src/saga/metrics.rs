//! The saga series of a service's metrics registry, rendered only once a saga orchestrator
//! takes them (other services do not show an always-zero stuck gauge).

use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::SagaStatus;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FinishedLabels {
    saga: String,
    outcome: &'static str,
}

/// `allframe_sagas_finished_total{saga, outcome}` (completed, compensated, stuck) and
/// `allframe_sagas_stuck` (the sagas stuck now, across instances: read from the store). Cheap
/// to clone: clones share the series.
#[derive(Debug, Clone, Default)]
pub struct SagaMetrics {
    finished: Family<FinishedLabels, Counter>,
    stuck: Gauge,
}

impl SagaMetrics {
    /// Counts a saga reaching `status`.
    pub(crate) fn finished(&self, saga: &str, status: SagaStatus) {
        self.finished
            .get_or_create(&FinishedLabels {
                saga: saga.to_owned(),
                outcome: status.as_str(),
            })
            .inc();
    }

    /// One more (or fewer) saga stuck, until the next count from the store.
    pub(crate) fn stuck_changed(&self, delta: i64) {
        self.stuck.inc_by(delta);
    }

    /// The number of stuck sagas, as counted in the store.
    pub(crate) fn set_stuck(&self, stuck: i64) {
        self.stuck.set(stuck);
    }
}

/// The saga series of one service's registry, empty until an orchestrator [`Self::get`]s them.
#[derive(Debug, Clone, Default)]
pub(crate) struct SagaMetricsSlot(Arc<OnceLock<SagaMetrics>>);

impl SagaMetricsSlot {
    /// The series, created (and from then on rendered) on first use.
    pub(crate) fn get(&self) -> SagaMetrics {
        self.0.get_or_init(SagaMetrics::default).clone()
    }
}

impl Collector for SagaMetricsSlot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(metrics) = self.0.get() else {
            return Ok(());
        };
        metrics.finished.encode(encoder.encode_descriptor(
            "allframe_sagas_finished",
            "Sagas that completed, were compensated or got stuck, by saga and outcome",
            None,
            metrics.finished.metric_type(),
        )?)?;
        metrics.stuck.encode(encoder.encode_descriptor(
            "allframe_sagas_stuck",
            "Sagas whose compensation failed past its retries, waiting for an operator's retry",
            None,
            metrics.stuck.metric_type(),
        )?)
    }
}
