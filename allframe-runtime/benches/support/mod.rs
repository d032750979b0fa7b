//! What the bus benches share: a backlog of events and the environment defaults.

use std::time::SystemTime;

use allframe_runtime::messaging::{Envelope, OutboundMessage, PayloadFormat};
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
