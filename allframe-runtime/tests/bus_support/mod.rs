//! Shared by the real-services bus tests (NATS, RabbitMQ, Kafka): the envelopes they publish,
//! numbered per aggregate, and subscription helpers with a deadline.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use allframe_runtime::messaging::{
    BusSubscription as _, Delivery, Envelope, EventBus, OutboundMessage, PayloadFormat,
    SubscribeOptions, Subscription, Uuid,
};

/// The trace context every test envelope carries.
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A fresh architecture name: its own stream / exchange, topics and groups.
pub fn architecture() -> String {
    format!("t{}", Uuid::now_v7().simple())
}

/// An `OrderPlaced` envelope of `aggregate_id` with payload `{"n": n}` and every header set.
pub fn envelope(aggregate_id: &str, n: u32) -> Envelope {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    Envelope {
        id: Uuid::now_v7(),
        event_type: "OrderPlaced".into(),
        schema_version: 2,
        aggregate_type: "Order".into(),
        aggregate_id: aggregate_id.into(),
        occurred_at: UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).expect("ms")),
        source: "order-service".into(),
        correlation_id: format!("corr-{n}"),
        causation_id: Some(format!("cause-{n}")),
        traceparent: Some(TRACEPARENT.into()),
        tracestate: Some("congo=t61rcWkgMzE".into()),
        tenant_id: Some("acme".into()),
        format: PayloadFormat::Json,
        payload: format!(r#"{{"n":{n}}}"#).into_bytes(),
    }
}

/// [`envelope`] bound for `topic`.
pub fn message(topic: &str, aggregate_id: &str, n: u32) -> OutboundMessage {
    OutboundMessage {
        topic: topic.to_owned(),
        envelope: envelope(aggregate_id, n),
    }
}

/// The `n` of a delivered test envelope.
pub fn n_of(delivery: &Delivery) -> u32 {
    let value: serde_json::Value =
        serde_json::from_slice(&delivery.envelope().payload).expect("json");
    u32::try_from(value["n"].as_u64().expect("n")).expect("u32")
}

/// Joins `group` on `topics`.
pub async fn subscribe(bus: &EventBus, group: &str, topics: &[&str]) -> Subscription {
    bus.subscribe(SubscribeOptions::new(group, topics.iter().copied()))
        .await
        .expect("subscribe")
}

/// The next delivery, which must come within `within`.
pub async fn next_within(subscription: &mut Subscription, within: Duration) -> Delivery {
    tokio::time::timeout(within, subscription.next())
        .await
        .unwrap_or_else(|_| panic!("a delivery within {} s", within.as_secs()))
        .expect("next")
}

/// Nothing arrives within `wait`.
pub async fn assert_quiet(subscription: &mut Subscription, wait: Duration) {
    if let Ok(result) = tokio::time::timeout(wait, subscription.next()).await {
        panic!("unexpected delivery: {:?}", result.map(|d| n_of(&d)));
    }
}
