//! Real-services suite: the Kafka adapter against a Kafka-compatible broker (tansu) that each
//! test starts on a free loopback port, with in-memory storage (the fault test: SQLite in a
//! temporary directory, so a restart keeps the data). The binary comes from `TANSU_BIN`,
//! default `/root/.cache/allframe/tansu/bin/tansu`, built with the `dynostore,libsql`
//! features; a missing binary fails the tests with the command that builds it. Run with
//! `cargo test -p allframe-runtime --all-features -- --ignored`.
//!
//! Every test has its own broker, topics and fresh group ids.
#![cfg(feature = "kafka")]

mod bus_support;
mod kafka_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use allframe_runtime::messaging::{
    BusSubscription as _, Delivery, OutboundMessage, Subscription, Uuid,
};
use bus_support::{message, n_of, next_within, subscribe};
use kafka_support::{Broker, fresh};

async fn next(subscription: &mut Subscription) -> Delivery {
    next_within(subscription, Duration::from_secs(30)).await
}

#[tokio::test]
#[ignore = "real-services: Kafka-compatible broker (tansu) started by the test"]
async fn round_trip_keeps_every_header_and_the_trace_context() {
    let broker = Broker::start();
    let topic = fresh("shop.order-service.OrderPlaced");
    broker.create_topic(&topic, 1);
    let bus = broker.bus().await;
    assert_eq!(bus.name(), "kafka");
    let sent = message(&topic, "o-1", 1);
    bus.publish(std::slice::from_ref(&sent))
        .await
        .expect("publish");
    let mut subscription = subscribe(&bus, &fresh("g"), &[&topic]).await;
    let delivery = next(&mut subscription).await;
    assert_eq!(delivery.topic(), topic);
    assert_eq!(
        delivery.envelope(),
        &sent.envelope,
        "the envelope survives exactly"
    );
    subscription.ack(&delivery).await.expect("ack");
    subscription.close().await.expect("close");
}

#[tokio::test]
#[ignore = "real-services: Kafka-compatible broker (tansu) started by the test"]
async fn two_groups_each_get_every_event_and_order_per_aggregate_holds() {
    let broker = Broker::start();
    let topic = fresh("shop.order-service.OrderPlaced");
    broker.create_topic(&topic, 3);
    let bus = broker.bus().await;
    let batch: Vec<OutboundMessage> = (0..60)
        .map(|n| message(&topic, &format!("o-{}", n % 5), n))
        .collect();
    bus.publish(&batch).await.expect("publish");
    for group in [fresh("billing"), fresh("shipping")] {
        let mut subscription = subscribe(&bus, &group, &[&topic]).await;
        let mut per_aggregate: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for _ in 0..60 {
            let delivery = next(&mut subscription).await;
            per_aggregate
                .entry(delivery.envelope().aggregate_id.clone())
                .or_default()
                .push(n_of(&delivery));
            subscription.ack(&delivery).await.expect("ack");
        }
        for (aggregate, ns) in &per_aggregate {
            let mut sorted = ns.clone();
            sorted.sort_unstable();
            assert_eq!(ns, &sorted, "order of aggregate {aggregate}");
            assert_eq!(ns.len(), 12);
        }
        subscription.close().await.expect("close");
    }
}

#[tokio::test]
#[ignore = "real-services: Kafka-compatible broker (tansu) started by the test"]
async fn kafka_nack_redelivers_the_event_and_what_followed_in_order() {
    let broker = Broker::start();
    let topic = fresh("shop.order-service.OrderPlaced");
    broker.create_topic(&topic, 1);
    let bus = broker.bus().await;
    let batch: Vec<OutboundMessage> = (1..=4).map(|n| message(&topic, "o-1", n)).collect();
    bus.publish(&batch).await.expect("publish");
    let mut subscription = subscribe(&bus, &fresh("g"), &[&topic]).await;
    let first = next(&mut subscription).await;
    subscription.ack(&first).await.expect("ack");
    let second = next(&mut subscription).await;
    let third = next(&mut subscription).await;
    assert_eq!((n_of(&first), n_of(&second), n_of(&third)), (1, 2, 3));
    subscription.nack(&second).await.expect("nack");
    let mut order = Vec::new();
    for _ in 0..3 {
        let delivery = next(&mut subscription).await;
        order.push(n_of(&delivery));
        subscription.ack(&delivery).await.expect("ack");
    }
    assert_eq!(order, [2, 3, 4]);
    subscription.close().await.expect("close");
}

#[tokio::test]
#[ignore = "real-services: Kafka-compatible broker (tansu) started by the test"]
async fn members_of_one_group_share_the_partitions() {
    let broker = Broker::start();
    let topic = fresh("shop.order-service.OrderPlaced");
    broker.create_topic(&topic, 4);
    let bus = broker.bus().await;
    let group = fresh("billing");
    let total = 200_u32;
    let mut members = Vec::new();
    for _ in 0..2 {
        let mut subscription = subscribe(&bus, &group, &[&topic]).await;
        members.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Ok(Ok(delivery)) =
                tokio::time::timeout(Duration::from_secs(10), subscription.next()).await
            {
                seen.push(n_of(&delivery));
                subscription.ack(&delivery).await.expect("ack");
            }
            subscription.close().await.expect("close");
            seen
        }));
    }
    // Let both members join before the events arrive.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let batch: Vec<OutboundMessage> = (0..total)
        .map(|n| message(&topic, &format!("o-{}", n % 16), n))
        .collect();
    bus.publish(&batch).await.expect("publish");
    let mut all = Vec::new();
    let mut per_member = Vec::new();
    for member in members {
        let seen = member.await.expect("member");
        per_member.push(seen.len());
        all.extend(seen);
    }
    let unique: HashSet<u32> = all.iter().copied().collect();
    assert_eq!(
        unique.len(),
        total as usize,
        "every event handled: {per_member:?}"
    );
    assert!(
        per_member.iter().all(|count| *count > 0),
        "both members worked: {per_member:?}"
    );
}

/// The broker is killed while a member consumes and a fifth of the events are written, and
/// restarted on the same port and storage; the publisher retries what failed, the member
/// carries on. Every event must arrive, with order per aggregate kept.
///
/// Known tansu 0.6 limitation (not the adapter's): a `sqlite://` fetch with a large backlog
/// (thousands of header-heavy records; tansu limits a fetch by key and value bytes only)
/// can stall a consumer, so a member that falls far behind may stop receiving.
#[tokio::test]
#[ignore = "real-services: Kafka-compatible broker (tansu) started by the test"]
async fn broker_restart_while_publishing_loses_nothing() {
    let mut broker = Broker::start_durable();
    let topic = fresh("shop.order-service.OrderPlaced");
    broker.create_topic(&topic, 3);
    let bus = broker.bus().await;
    let mut subscription = subscribe(&bus, &fresh("billing"), &[&topic]).await;
    let total = 10_000_u32;
    let messages: Vec<OutboundMessage> = (0..total)
        .map(|n| message(&topic, &format!("o-{}", n % 16), n))
        .collect();
    let expected: HashSet<Uuid> = messages.iter().map(|m| m.envelope.id).collect();

    let progress = Arc::new(AtomicUsize::new(0));
    // What the member has received: the publisher stays at most `WINDOW` events ahead of it, as
    // an application consuming at the rate it produces would. A member thousands of records
    // behind can stall on tansu 0.6's sqlite fetches (see above), which is the broker's limit,
    // not what this test is about.
    const WINDOW: usize = 1_000;
    let consumed = Arc::new(AtomicUsize::new(0));
    // Set once the member has its first delivery: past the first chunk, the publisher waits
    // for it, so the outage comes while both publish and consumption are under way.
    let live = Arc::new(tokio::sync::Notify::new());
    let publisher = {
        let bus = bus.clone();
        let progress = Arc::clone(&progress);
        let consumed = Arc::clone(&consumed);
        let live = Arc::clone(&live);
        tokio::spawn(async move {
            let mut failures = 0_u32;
            for (i, chunk) in messages.chunks(100).enumerate() {
                if i == 1 {
                    live.notified().await;
                }
                while progress.load(Ordering::Relaxed) > consumed.load(Ordering::Relaxed) + WINDOW {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
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
    // First sightings per aggregate, to check their order; every sighting, to count repeats.
    let mut first_seen: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut seen: HashMap<Uuid, u32> = HashMap::new();
    let mut outage_at = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while seen.len() < expected.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {total} events arrived (outage at {outage_at:?} published, {} published)",
            seen.len(),
            progress.load(Ordering::Relaxed)
        );
        // Mid-stream: the member consumes and a fifth of the events are on the bus.
        let published = progress.load(Ordering::Relaxed);
        if outage_at.is_none() && !seen.is_empty() && published >= total as usize / 5 {
            outage_at = Some(published);
            broker.kill();
            // The outage lasts a while: publishes, fetches and commits meet a closed port.
            tokio::time::sleep(Duration::from_secs(2)).await;
            broker.restart();
        }
        match tokio::time::timeout(Duration::from_secs(5), subscription.next()).await {
            Ok(Ok(delivery)) => {
                if seen.is_empty() {
                    live.notify_one();
                }
                let id = delivery.envelope().id;
                assert!(expected.contains(&id), "an event this test did not publish");
                let count = seen.entry(id).or_default();
                *count += 1;
                if *count == 1 {
                    consumed.fetch_add(1, Ordering::Relaxed);
                    first_seen
                        .entry(delivery.envelope().aggregate_id.clone())
                        .or_default()
                        .push(n_of(&delivery));
                }
                // An ack lost in the outage only means a redelivery.
                let _ = subscription.ack(&delivery).await;
            }
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(_) => {}
        }
    }
    assert!(outage_at.is_some(), "the broker was restarted mid-stream");
    let failures = publisher.await.expect("publisher");
    let repeats: u32 = seen.values().map(|count| count - 1).sum();
    eprintln!(
        "outage after {outage_at:?} events; publish failures retried: {failures}; \
         redeliveries: {repeats}"
    );
    assert_eq!(progress.load(Ordering::Relaxed), total as usize);
    for (aggregate, ns) in &first_seen {
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        assert_eq!(ns, &sorted, "order of aggregate {aggregate}");
        assert_eq!(ns.len(), total as usize / 16, "events of {aggregate}");
    }
    subscription.close().await.expect("close");
}
