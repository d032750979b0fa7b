//! Real-services suite: the RabbitMQ adapter against the broker at
//! `amqp://guest:guest@127.0.0.1:5672` (override with `AMQP_URL`). Run with
//! `cargo test -p allframe-runtime --all-features -- --ignored`. A missing broker fails these
//! tests.
//!
//! Every test uses a fresh architecture name, so its exchange, topics and group queues are its
//! own. The fault test stops and restarts the broker (`rabbitmqctl stop_app` / `start_app`): it
//! takes the file's lock for writing, the other tests take it for reading.
#![cfg(feature = "rabbitmq")]

mod bus_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use allframe_runtime::messaging::{
    BusError, BusSubscription as _, Delivery, EventBus, OutboundMessage, SubscribeOptions,
    Subscription, Uuid,
};
use bus_support::{
    TRACEPARENT, architecture, assert_quiet, message, n_of, next_within, subscribe,
    two_members_keep_order_per_aggregate,
};
use tokio::sync::RwLock;

/// Held for reading by ordinary tests, for writing by the test that restarts the server.
static BROKER: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

fn url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

async fn connect() -> EventBus {
    match EventBus::connect(Some(&url()), &std::env::temp_dir()).await {
        Ok(bus) => bus,
        Err(error) => panic!(
            "RabbitMQ must run at 127.0.0.1:5672 (guest/guest, or set AMQP_URL) for the \
             real-services suite: {error}"
        ),
    }
}

async fn next(subscription: &mut Subscription) -> Delivery {
    next_within(subscription, Duration::from_secs(20)).await
}

#[tokio::test]
#[ignore = "real-services: RabbitMQ at 127.0.0.1:5672"]
async fn round_trip_keeps_every_header_and_the_trace_context() {
    let _shared = BROKER.read().await;
    let bus = connect().await;
    assert_eq!(bus.name(), "rabbitmq");
    let arch = architecture();
    let topic = format!("{arch}.order-service.OrderPlaced");
    let group = format!("{arch}.billing");
    let mut subscription = subscribe(&bus, &group, &[&topic]).await;
    let sent = message(&topic, "o-1", 1);
    bus.publish(std::slice::from_ref(&sent))
        .await
        .expect("publish");
    let delivery = next(&mut subscription).await;
    assert_eq!(delivery.topic(), topic);
    assert_eq!(
        delivery.envelope(),
        &sent.envelope,
        "the envelope survives exactly"
    );
    assert_eq!(
        delivery.envelope().traceparent.as_deref(),
        Some(TRACEPARENT)
    );
    subscription.ack(&delivery).await.expect("ack");
    subscription.close().await.expect("close");

    // Acknowledged: the group does not see it again (its queue is empty).
    let mut again = subscribe(&bus, &group, &[&topic]).await;
    assert_quiet(&mut again, Duration::from_secs(2)).await;
    again.close().await.expect("close");
}

#[tokio::test]
#[ignore = "real-services: RabbitMQ at 127.0.0.1:5672"]
async fn two_groups_each_get_every_event() {
    let _shared = BROKER.read().await;
    let bus = connect().await;
    let arch = architecture();
    let topic = format!("{arch}.order-service.OrderPlaced");
    let mut billing = subscribe(&bus, &format!("{arch}.billing"), &[&topic]).await;
    let mut shipping = subscribe(&bus, &format!("{arch}.shipping"), &[&topic]).await;
    let batch: Vec<OutboundMessage> = (0..30).map(|n| message(&topic, "o-1", n)).collect();
    bus.publish(&batch).await.expect("publish");
    for subscription in [&mut billing, &mut shipping] {
        let mut seen = Vec::new();
        for _ in 0..30 {
            let delivery = next(subscription).await;
            seen.push(n_of(&delivery));
            subscription.ack(&delivery).await.expect("ack");
        }
        assert_eq!(seen, (0..30).collect::<Vec<_>>(), "every event, in order");
    }
}

#[tokio::test]
#[ignore = "real-services: RabbitMQ at 127.0.0.1:5672"]
async fn members_of_one_group_take_over_from_each_other_in_order() {
    let _shared = BROKER.read().await;
    let bus = connect().await;
    let arch = architecture();
    let topic = format!("{arch}.order-service.OrderPlaced");
    let group = format!("{arch}.billing");
    let log = two_members_keep_order_per_aggregate(&bus, &topic, &group, 300, 100).await;
    // A single active consumer: the second member got nothing until the first one left.
    let first_of_second = log
        .iter()
        .position(|(member, _, _)| *member == 1)
        .expect("the second member took over");
    assert_eq!(
        first_of_second, 100,
        "the first member handled 100 before leaving"
    );
    assert!(
        log[first_of_second..]
            .iter()
            .all(|(member, _, _)| *member == 1)
    );
}

#[tokio::test]
#[ignore = "real-services: RabbitMQ at 127.0.0.1:5672"]
async fn a_group_queue_declared_without_a_single_active_consumer_is_a_clear_conflict() {
    use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
    use lapin::types::{FieldTable, ShortString};

    let _shared = BROKER.read().await;
    let arch = architecture();
    let group = format!("{arch}.billing");
    let connection = lapin::Connection::connect(&url(), lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_declare(
            ShortString::from(group.as_str()),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("an old-style group queue");

    let bus = connect().await;
    let topic = format!("{arch}.order-service.OrderPlaced");
    let error = bus
        .subscribe(SubscribeOptions::new(group.as_str(), [topic.as_str()]))
        .await
        .expect_err("the queue's arguments cannot be changed");
    assert!(
        matches!(&error, BusError::Conflict { object, .. } if object.contains(&group)),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("x-single-active-consumer"), "{message}");
    assert!(
        message.contains(&format!("rabbitmqctl delete_queue {group}")),
        "{message}"
    );

    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_delete(
            ShortString::from(group.as_str()),
            QueueDeleteOptions::default(),
        )
        .await
        .expect("delete the queue");
    let subscription = subscribe(&bus, &group, &[&topic]).await;
    subscription.close().await.expect("close");
}

#[tokio::test]
#[ignore = "real-services: RabbitMQ at 127.0.0.1:5672"]
async fn order_per_aggregate_is_kept_across_topics_and_batches() {
    let _shared = BROKER.read().await;
    let bus = connect().await;
    let arch = architecture();
    let placed = format!("{arch}.order-service.OrderPlaced");
    let paid = format!("{arch}.order-service.OrderPaid");
    let mut subscription = subscribe(&bus, &format!("{arch}.billing"), &[&placed, &paid]).await;
    let mut expected: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
    let mut n = 0;
    for round in 0..10 {
        let batch: Vec<OutboundMessage> = (0..3)
            .flat_map(|aggregate| {
                let topic = if round % 2 == 0 { &placed } else { &paid };
                (0..4).map(move |_| (topic.clone(), format!("o-{aggregate}")))
            })
            .map(|(topic, aggregate)| {
                n += 1;
                expected
                    .entry((topic.clone(), aggregate.clone()))
                    .or_default()
                    .push(n);
                message(&topic, &aggregate, n)
            })
            .collect();
        bus.publish(&batch).await.expect("publish");
    }
    let mut got: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
    for _ in 0..n {
        let delivery = next(&mut subscription).await;
        got.entry((
            delivery.topic().to_owned(),
            delivery.envelope().aggregate_id.clone(),
        ))
        .or_default()
        .push(n_of(&delivery));
        subscription.ack(&delivery).await.expect("ack");
    }
    assert_eq!(got, expected, "per (topic, aggregate) publish order");
}

#[tokio::test]
#[ignore = "real-services: RabbitMQ at 127.0.0.1:5672"]
async fn nack_redelivers_the_event_and_what_followed_in_order() {
    let _shared = BROKER.read().await;
    let bus = connect().await;
    let arch = architecture();
    let topic = format!("{arch}.order-service.OrderPlaced");
    let group = format!("{arch}.billing");
    let mut subscription = subscribe(&bus, &group, &[&topic]).await;
    let batch: Vec<OutboundMessage> = (1..=4).map(|n| message(&topic, "o-1", n)).collect();
    bus.publish(&batch).await.expect("publish");
    let first = next(&mut subscription).await;
    assert_eq!(n_of(&first), 1);
    subscription.ack(&first).await.expect("ack");
    let second = next(&mut subscription).await;
    let third = next(&mut subscription).await;
    assert_eq!((n_of(&second), n_of(&third)), (2, 3));
    subscription.nack(&second).await.expect("nack");
    let mut order = Vec::new();
    for _ in 0..3 {
        let delivery = next(&mut subscription).await;
        order.push(n_of(&delivery));
        subscription.ack(&delivery).await.expect("ack");
    }
    assert_eq!(order, [2, 3, 4], "the nacked event, then what followed it");
    assert_quiet(&mut subscription, Duration::from_secs(1)).await;
    subscription.close().await.expect("close");
}

/// Restarts the broker application when dropped, so a failing test never leaves it stopped.
struct Restart;

impl Restart {
    fn stop() -> Self {
        let status = Command::new("rabbitmqctl")
            .arg("stop_app")
            .status()
            .expect("run rabbitmqctl");
        let restart = Self;
        assert!(status.success(), "rabbitmqctl stop_app failed: {status}");
        restart
    }
}

impl Drop for Restart {
    fn drop(&mut self) {
        let status = Command::new("rabbitmqctl").arg("start_app").status();
        if !matches!(status, Ok(status) if status.success()) {
            eprintln!("rabbitmqctl start_app failed: {status:?}");
        }
    }
}

#[tokio::test]
#[ignore = "real-services: RabbitMQ at 127.0.0.1:5672; stops and restarts it"]
async fn broker_restart_while_publishing_loses_nothing() {
    let _exclusive = BROKER.write().await;
    let bus = connect().await;
    let arch = architecture();
    let topic = format!("{arch}.order-service.OrderPlaced");
    let mut subscription = subscribe(&bus, &format!("{arch}.billing"), &[&topic]).await;
    let total = 10_000_u32;
    let messages: Vec<OutboundMessage> = (0..total)
        .map(|n| message(&topic, &format!("o-{}", n % 16), n))
        .collect();
    let expected: HashSet<Uuid> = messages.iter().map(|m| m.envelope.id).collect();

    let progress = Arc::new(AtomicUsize::new(0));
    let publisher = {
        let bus = bus.clone();
        let progress = Arc::clone(&progress);
        tokio::spawn(async move {
            let mut failures = 0_u32;
            for chunk in messages.chunks(100) {
                let mut rest = chunk;
                while !rest.is_empty() {
                    match bus.publish(rest).await {
                        Ok(()) => {
                            progress.fetch_add(rest.len(), Ordering::Relaxed);
                            rest = &[];
                        }
                        Err(error) => {
                            failures += 1;
                            progress.fetch_add(error.delivered, Ordering::Relaxed);
                            rest = &rest[error.delivered..];
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
            failures
        })
    };
    // Mid-stream: a fifth of the events are on the bus.
    while progress.load(Ordering::Relaxed) < total as usize / 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let outage = Restart::stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(outage);

    let mut seen: HashMap<Uuid, u32> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while !expected.iter().all(|id| seen.contains_key(id)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {total} events arrived",
            seen.len()
        );
        match tokio::time::timeout(Duration::from_secs(5), subscription.next()).await {
            Ok(Ok(delivery)) => {
                *seen.entry(delivery.envelope().id).or_default() += 1;
                // An ack lost in the outage only means a redelivery.
                let _ = subscription.ack(&delivery).await;
            }
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(_) => {}
        }
    }
    let failures = publisher.await.expect("publisher");
    eprintln!("publish failures retried during the outage: {failures}");
    assert_eq!(progress.load(Ordering::Relaxed), total as usize);
    assert!(seen.keys().all(|id| expected.contains(id)));
    subscription.close().await.expect("close");
}
