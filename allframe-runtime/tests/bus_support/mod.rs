//! Shared by the real-services bus tests (NATS, RabbitMQ, Kafka): the envelopes they publish,
//! numbered per aggregate, and subscription helpers with a deadline.
#![allow(dead_code)]

pub mod conformance;
#[cfg(feature = "sqlite")]
pub mod consuming;

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

/// Who handled which event: (member index, aggregate id, n), in handling order.
pub type HandlingLog = Vec<(usize, String, u32)>;

/// Two members of `group` on `topic` handle `total` events of 5 aggregates (`n` counts up
/// over all of them); each records an event, pauses 0–2 ms, then acknowledges it. Member 0
/// leaves after handling `leave_after` events, so the other takes over mid-stream. Checks
/// that every event was handled and that, in handling order, each aggregate's events come in
/// publish order (a redelivery may repeat the last one); returns the log for bus-specific
/// checks.
pub async fn two_members_keep_order_per_aggregate(
    bus: &EventBus,
    topic: &str,
    group: &str,
    total: u32,
    leave_after: usize,
) -> HandlingLog {
    use std::sync::{Arc, Mutex};

    let log: Arc<Mutex<HandlingLog>> = Arc::default();
    let mut members = Vec::new();
    for member in 0..2 {
        let mut subscription = subscribe(bus, group, &[topic]).await;
        let log = Arc::clone(&log);
        members.push(tokio::spawn(async move {
            let mut handled = 0;
            loop {
                if log.lock().expect("log").len() >= total as usize {
                    break;
                }
                let Ok(delivery) =
                    tokio::time::timeout(Duration::from_millis(500), subscription.next()).await
                else {
                    continue;
                };
                let delivery = delivery.expect("next");
                let n = n_of(&delivery);
                let aggregate = delivery.envelope().aggregate_id.clone();
                log.lock().expect("log").push((member, aggregate, n));
                tokio::time::sleep(Duration::from_millis(u64::from(n % 3))).await;
                subscription.ack(&delivery).await.expect("ack");
                handled += 1;
                if member == 0 && handled == leave_after {
                    break;
                }
            }
            subscription.close().await.expect("close");
        }));
    }
    let mut n = 0;
    while n < total {
        let batch: Vec<OutboundMessage> = (n..(n + 50).min(total))
            .map(|n| message(topic, &format!("agg-{}", n % 5), n))
            .collect();
        bus.publish(&batch).await.expect("publish");
        n += 50;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    for member in members {
        tokio::time::timeout_at(deadline, member)
            .await
            .expect("every event handled within 120 s")
            .expect("member task");
    }
    let log = log.lock().expect("log").clone();
    let handled: std::collections::BTreeSet<u32> = log.iter().map(|(_, _, n)| *n).collect();
    assert_eq!(handled.len(), total as usize, "every event handled");
    for aggregate in 0..5 {
        let name = format!("agg-{aggregate}");
        let mut seen: Vec<u32> = log
            .iter()
            .filter(|(_, a, _)| *a == name)
            .map(|(_, _, n)| *n)
            .collect();
        assert!(
            seen.windows(2).all(|pair| pair[0] <= pair[1]),
            "{name} handled out of order: {seen:?}"
        );
        seen.dedup();
        let expected: Vec<u32> = (0..total).filter(|n| n % 5 == aggregate).collect();
        assert_eq!(seen, expected, "{name}");
    }
    log
}
