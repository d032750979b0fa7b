//! What the bus benches share: a backlog of events, a handler that waits, and the environment
//! defaults.

use std::time::{Duration, Instant, SystemTime};

use allframe_runtime::channel::Notifications;
use allframe_runtime::consumer::{ConsumerMetrics, HandleError, Handlers};
use allframe_runtime::messaging::{Delivery, Envelope, OutboundMessage, PayloadFormat, UnitOfWork};
use futures_util::future::BoxFuture;
use uuid::Uuid;

/// A benchmark's failure, printed by its `main`.
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// `var`, else `default`.
pub fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// `events` `Ticked` envelopes of 64 aggregates, published by `source`, bound for a fresh
/// topic of a fresh architecture named after `prefix`.
pub fn backlog(prefix: &str, source: &str, events: u64) -> Vec<OutboundMessage> {
    let architecture = format!("{prefix}{}", Uuid::now_v7().simple());
    let topic = format!("{architecture}.{source}.Ticked");
    (0..events)
        .map(|n| OutboundMessage {
            topic: topic.clone(),
            envelope: Envelope {
                id: Uuid::now_v7(),
                event_type: "Ticked".into(),
                schema_version: 1,
                aggregate_type: "Clock".into(),
                aggregate_id: format!("clock-{}", n % 64),
                occurred_at: SystemTime::now(),
                source: source.into(),
                correlation_id: Uuid::now_v7().to_string(),
                causation_id: None,
                traceparent: None,
                tracestate: None,
                tenant_id: None,
                format: PayloadFormat::Json,
                payload: format!(r#"{{"n":{n}}}"#).into_bytes(),
            },
        })
        .collect()
}

/// A handler that waits its pause (I/O-bound, as real handlers are) and succeeds.
pub struct Waits(pub Duration);

impl Handlers for Waits {
    fn handle<'a>(
        &'a self,
        _uow: &'a mut UnitOfWork,
        _delivery: &'a Delivery,
        _notify: &'a mut Notifications,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            if !self.0.is_zero() {
                tokio::time::sleep(self.0).await;
            }
            Ok(())
        })
    }
}

/// Waits until `metrics` counted `events` `Ticked` events handled (600 s at most).
pub async fn handled(metrics: &ConsumerMetrics, events: u64) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while metrics.messages("Ticked", "handled") < events {
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {events} events handled in 600 s",
                metrics.messages("Ticked", "handled")
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}
