//! The bus conformance suite: one set of scenarios every [`EventBus`] adapter must pass — round
//! trip, groups, order per aggregate, nack, per-instance subscribers, and a broker restart
//! while publishing. Each bus's
//! test file supplies a [`Fixture`] (how to connect, name topics and groups, stop and start
//! its broker) and declares the tests with [`conformance_tests!`]; a new adapter (SQS, Pub/Sub)
//! only plugs in here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use allframe_runtime::messaging::{
    BusSubscription as _, Delivery, EventBus, OutboundMessage, SubscribeOptions, Subscription, Uuid,
};

use super::{TRACEPARENT, assert_quiet, message, n_of, next_within, subscribe};

/// What a bus's test file provides to the scenarios.
pub trait Fixture: Send + Sync {
    /// The adapter's name, as [`EventBus::name`] gives it.
    fn name(&self) -> &'static str;

    /// A connected bus.
    fn bus(&self) -> impl Future<Output = EventBus> + Send;

    /// A bus that lets several deliveries of one group out at once (for the nack scenario;
    /// the same bus where that is the default).
    fn bus_with_deliveries_in_flight(&self) -> impl Future<Output = EventBus> + Send {
        self.bus()
    }

    /// A topic of this fixture's own named after `event` (`<architecture>.<service>.<event>`),
    /// with `partitions` partitions where the bus has them.
    fn topic(&self, event: &str, partitions: u32) -> String;

    /// A consumer group of this fixture's own named after `name`.
    fn group(&self, name: &str) -> String;

    /// How long a delivery may take to arrive.
    fn patience(&self) -> Duration {
        Duration::from_secs(20)
    }

    /// Whether the members of a group share a topic's partitions (every bus does).
    fn members_share_partitions(&self) -> bool {
        true
    }

    /// Whether, across a broker restart, the first delivery of each event still comes in
    /// publish order per aggregate (Kafka's idempotent producer keeps it; NATS and RabbitMQ
    /// may land a retried publish after a later one).
    fn ordered_across_restart(&self) -> bool {
        false
    }

    /// What the bus still holds of the per-instance subscribers of `group` on `topic` (their
    /// rows, queues or consumers, by name); `None` where the fixture cannot tell cheaply.
    fn per_instance_leftovers(
        &self,
        bus: &EventBus,
        group: &str,
        topic: &str,
    ) -> impl Future<Output = Option<Vec<String>>> + Send {
        let _ = (bus, group, topic);
        async { None }
    }
}

/// A fixture whose broker the restart scenario can stop and start (not an embedded bus).
pub trait Restartable: Fixture {
    /// Stops the broker; [`Restartable::start`] starts it again.
    fn stop(&mut self);

    /// Starts the broker [`Restartable::stop`] stopped.
    fn start(&mut self);
}

/// Declares one `#[tokio::test]` per scenario but the restart (whose fixture stops the broker
/// and so needs more than the others: each bus file declares it, calling
/// [`restart_while_publishing`]), each building its fixture with `$fixture` (an async
/// expression; it may hold a guard, e.g. a lock shared with the test that stops the broker).
/// `ignore = "…"` marks them as real-services tests.
#[macro_export]
macro_rules! conformance_tests {
    (fixture = $fixture:expr $(, ignore = $reason:literal)? $(,)?) => {
        mod conformance_suite {
            #[allow(unused_imports)]
            use super::*;
            use $crate::bus_support::conformance as scenario;

            #[tokio::test]
            $(#[ignore = $reason])?
            async fn round_trip_keeps_every_header_and_the_trace_context() {
                scenario::round_trip(&$fixture).await;
            }

            #[tokio::test]
            $(#[ignore = $reason])?
            async fn two_groups_each_get_every_event_in_order_per_aggregate() {
                scenario::two_groups(&$fixture).await;
            }

            #[tokio::test]
            $(#[ignore = $reason])?
            async fn order_per_aggregate_is_kept_across_topics_and_batches() {
                scenario::order_across_topics_and_batches(&$fixture).await;
            }

            #[tokio::test]
            $(#[ignore = $reason])?
            async fn nack_redelivers_the_event_and_what_followed_in_order() {
                scenario::nack_redelivers_in_order(&$fixture).await;
            }

            #[tokio::test]
            $(#[ignore = $reason])?
            async fn one_ack_covers_every_earlier_delivery_of_its_partition() {
                scenario::ack_is_cumulative_per_partition(&$fixture).await;
            }

            #[tokio::test]
            $(#[ignore = $reason])?
            async fn the_lag_counts_what_the_group_has_not_handled() {
                scenario::lag_counts_what_the_group_has_not_handled(&$fixture).await;
            }

            #[tokio::test]
            $(#[ignore = $reason])?
            async fn per_instance_subscribers_each_get_what_follows_and_are_forgotten() {
                scenario::per_instance_subscribers(&$fixture).await;
            }

            #[cfg(feature = "sqlite")]
            #[tokio::test]
            $(#[ignore = $reason])?
            async fn consumer_handles_aggregates_in_parallel_each_in_order() {
                $crate::bus_support::consuming::parallel_per_aggregate_in_order(&$fixture).await;
            }

            #[cfg(feature = "sqlite")]
            #[tokio::test]
            $(#[ignore = $reason])?
            async fn consumer_parks_poison_and_exhausted_events_and_replays_once() {
                $crate::bus_support::consuming::poison_and_failures_parked_then_replayed_once(&$fixture)
                    .await;
            }

            #[cfg(feature = "sqlite")]
            #[tokio::test]
            $(#[ignore = $reason])?
            async fn consumer_stopped_mid_retry_loses_nothing() {
                $crate::bus_support::consuming::shutdown_mid_retry_loses_nothing(&$fixture).await;
            }

            #[cfg(feature = "sqlite")]
            #[tokio::test]
            $(#[ignore = $reason])?
            async fn three_consumer_members_share_the_work_in_order() {
                $crate::bus_support::consuming::three_members_share_the_work_in_order(&$fixture)
                    .await;
            }

        }
    };
}

async fn next(fixture: &impl Fixture, subscription: &mut Subscription) -> Delivery {
    next_within(subscription, fixture.patience()).await
}

/// One event with every header and a trace context arrives exactly as sent; once acknowledged,
/// the group does not see it again.
pub async fn round_trip(fixture: &impl Fixture) {
    let bus = fixture.bus().await;
    assert_eq!(bus.name(), fixture.name());
    let topic = fixture.topic("OrderPlaced", 1);
    let group = fixture.group("billing");
    let mut subscription = subscribe(&bus, &group, &[&topic]).await;
    let sent = message(&topic, "o-1", 1);
    bus.publish(std::slice::from_ref(&sent))
        .await
        .expect("publish");
    let delivery = next(fixture, &mut subscription).await;
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

    let mut again = subscribe(&bus, &group, &[&topic]).await;
    assert_quiet(&mut again, Duration::from_secs(2)).await;
    again.close().await.expect("close");
}

/// Two groups each get all 60 events of five aggregates, each aggregate's in publish order.
pub async fn two_groups(fixture: &impl Fixture) {
    let bus = fixture.bus().await;
    let topic = fixture.topic("OrderPlaced", 3);
    let mut groups = Vec::new();
    for name in ["billing", "shipping"] {
        groups.push(subscribe(&bus, &fixture.group(name), &[&topic]).await);
    }
    let batch: Vec<OutboundMessage> = (0..60)
        .map(|n| message(&topic, &format!("o-{}", n % 5), n))
        .collect();
    bus.publish(&batch).await.expect("publish");
    for mut subscription in groups {
        let mut per_aggregate: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for _ in 0..60 {
            let delivery = next(fixture, &mut subscription).await;
            per_aggregate
                .entry(delivery.envelope().aggregate_id.clone())
                .or_default()
                .push(n_of(&delivery));
            subscription.ack(&delivery).await.expect("ack");
        }
        for (aggregate, ns) in &per_aggregate {
            let expected: Vec<u32> = (0..60)
                .filter(|n| format!("o-{}", n % 5) == *aggregate)
                .collect();
            assert_eq!(ns, &expected, "events of {aggregate}, in order");
        }
        subscription.close().await.expect("close");
    }
}

/// Ten batches alternating between two topics, three aggregates each: every (topic, aggregate)
/// pair arrives in publish order.
pub async fn order_across_topics_and_batches(fixture: &impl Fixture) {
    let bus = fixture.bus().await;
    let placed = fixture.topic("OrderPlaced", 1);
    let paid = fixture.topic("OrderPaid", 1);
    let mut subscription = subscribe(&bus, &fixture.group("billing"), &[&placed, &paid]).await;
    let mut expected: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
    let mut n = 0;
    for round in 0..10 {
        let topic = if round % 2 == 0 { &placed } else { &paid };
        let mut batch = Vec::new();
        for aggregate in 0..3 {
            for _ in 0..4 {
                n += 1;
                let aggregate = format!("o-{aggregate}");
                expected
                    .entry((topic.clone(), aggregate.clone()))
                    .or_default()
                    .push(n);
                batch.push(message(topic, &aggregate, n));
            }
        }
        bus.publish(&batch).await.expect("publish");
    }
    let mut got: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
    for _ in 0..n {
        let delivery = next(fixture, &mut subscription).await;
        got.entry((
            delivery.topic().to_owned(),
            delivery.envelope().aggregate_id.clone(),
        ))
        .or_default()
        .push(n_of(&delivery));
        subscription.ack(&delivery).await.expect("ack");
    }
    assert_eq!(got, expected, "per (topic, aggregate) publish order");
    subscription.close().await.expect("close");
}

/// With events 2 and 3 delivered, a nack of 2 brings back 2, then 3 and 4, in order.
pub async fn nack_redelivers_in_order(fixture: &impl Fixture) {
    let bus = fixture.bus_with_deliveries_in_flight().await;
    let topic = fixture.topic("OrderPlaced", 1);
    let mut subscription = subscribe(&bus, &fixture.group("billing"), &[&topic]).await;
    let batch: Vec<OutboundMessage> = (1..=4).map(|n| message(&topic, "o-1", n)).collect();
    bus.publish(&batch).await.expect("publish");
    let first = next(fixture, &mut subscription).await;
    assert_eq!(n_of(&first), 1);
    subscription.ack(&first).await.expect("ack");
    let second = next(fixture, &mut subscription).await;
    let third = next(fixture, &mut subscription).await;
    assert_eq!((n_of(&second), n_of(&third)), (2, 3));
    subscription.nack(&second).await.expect("nack");
    let mut order = Vec::new();
    for _ in 0..3 {
        let delivery = next(fixture, &mut subscription).await;
        order.push(n_of(&delivery));
        subscription.ack(&delivery).await.expect("ack");
    }
    assert_eq!(order, [2, 3, 4], "the nacked event, then what followed it");
    assert_quiet(&mut subscription, Duration::from_secs(1)).await;
    subscription.close().await.expect("close");
}

/// Six events of six aggregates (spread over three partitions where the bus has them) are
/// delivered; acknowledging only the last one covers every earlier delivery of its partition
/// and nothing else: the group's next member gets the other partitions' events again, then a
/// new event, and none of the acknowledged ones. (A consumer handling aggregates in parallel
/// acknowledges, per partition, the longest handled prefix at once.)
pub async fn ack_is_cumulative_per_partition(fixture: &impl Fixture) {
    let bus = fixture.bus_with_deliveries_in_flight().await;
    let topic = fixture.topic("OrderPlaced", 3);
    let group = fixture.group("billing");
    let mut subscription = subscribe(&bus, &group, &[&topic]).await;
    let batch: Vec<OutboundMessage> = (1..=6)
        .map(|n| message(&topic, &format!("o-{n}"), n))
        .collect();
    bus.publish(&batch).await.expect("publish");
    let mut delivered = Vec::new();
    for _ in 0..6 {
        delivered.push(next(fixture, &mut subscription).await);
    }
    let last = delivered.last().expect("six deliveries").clone();
    subscription.ack(&last).await.expect("ack");
    subscription.close().await.expect("close");
    let mut expected: HashSet<u32> = delivered
        .iter()
        .filter(|delivery| delivery.partition() != last.partition())
        .map(n_of)
        .collect();
    expected.insert(7);

    let mut again = subscribe(&bus, &group, &[&topic]).await;
    let marker = message(&topic, "o-1", 7);
    bus.publish(std::slice::from_ref(&marker))
        .await
        .expect("publish");
    let mut seen = HashSet::new();
    while seen != expected {
        let delivery = next(fixture, &mut again).await;
        let n = n_of(&delivery);
        assert!(
            expected.contains(&n),
            "event {n} of partition {} came back though it was acknowledged",
            delivery.partition()
        );
        seen.insert(n);
        again.ack(&delivery).await.expect("ack");
    }
    assert_quiet(&mut again, Duration::from_secs(1)).await;
    again.close().await.expect("close");
}

/// The lag the bus reports for a group counts the events it has not handled: five published
/// while no member runs, none once they are acknowledged.
pub async fn lag_counts_what_the_group_has_not_handled(fixture: &impl Fixture) {
    let bus = fixture.bus().await;
    let topic = fixture.topic("OrderPlaced", 3);
    let group = fixture.group("billing");
    let topics = [topic.clone()];
    subscribe(&bus, &group, &[&topic])
        .await
        .close()
        .await
        .expect("close");
    // One publish per event: tansu (the Kafka-compatible broker of these tests) reports high
    // watermarks at record-batch boundaries, where Kafka reports the offset after the last
    // record; with one record per batch the two agree.
    for n in 1..=5 {
        bus.publish(&[message(&topic, &format!("o-{n}"), n)])
            .await
            .expect("publish");
    }
    let lag_becomes = |expected: u64| {
        let (bus, group, topics) = (&bus, &group, &topics);
        async move {
            let deadline = tokio::time::Instant::now() + fixture.patience();
            loop {
                let lag = bus.lag(group, topics).await.expect("lag");
                if lag == Some(expected) {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the lag stays {lag:?}, not {expected}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    lag_becomes(5).await;
    let mut subscription = subscribe(&bus, &group, &[&topic]).await;
    for _ in 0..5 {
        let delivery = next(fixture, &mut subscription).await;
        subscription.ack(&delivery).await.expect("ack");
    }
    subscription.close().await.expect("close");
    lag_becomes(0).await;
}

/// Per-instance subscribers ([`SubscribeOptions::per_instance`]) are groups of their own. A
/// member of an ordinary group subscribes, event 1 is published, then two per-instance
/// subscribers with the same group name subscribe, and events 2–8 are published (2 and 3 of
/// one aggregate, the others of six more, spread over the partitions). Each per-instance
/// subscriber gets 2 and 3 in that order and every one of 2–8, never 1; a nack brings an event
/// back as for a group; the ordinary member, unaffected, gets 1–8. Once they closed, the bus
/// holds nothing of them (where the fixture can tell).
pub async fn per_instance_subscribers(fixture: &impl Fixture) {
    let bus = fixture.bus().await;
    let topic = fixture.topic("CacheStale", 3);
    let group = fixture.group("cache");
    let mut ordinary = subscribe(&bus, &group, &[&topic]).await;
    bus.publish(&[message(&topic, "o-1", 1)])
        .await
        .expect("publish");
    let mut instances = Vec::new();
    for _ in 0..2 {
        let options = SubscribeOptions::new(group.as_str(), [topic.as_str()]).per_instance();
        instances.push(
            bus.subscribe(options)
                .await
                .expect("subscribe per instance"),
        );
    }
    let mut batch = vec![message(&topic, "o-2", 2), message(&topic, "o-2", 3)];
    batch.extend((4..=8).map(|n| message(&topic, &format!("o-{n}"), n)));
    bus.publish(&batch).await.expect("publish");

    let everything_after: HashSet<u32> = (2..=8).collect();
    for (index, instance) in instances.iter_mut().enumerate() {
        let mut order = Vec::new();
        let mut nacked = false;
        while order.iter().copied().collect::<HashSet<u32>>() != everything_after {
            let delivery = next(fixture, instance).await;
            let n = n_of(&delivery);
            assert_ne!(
                n, 1,
                "instance {index} got an event published before it subscribed"
            );
            if n == 2 && !nacked {
                // Back again, before 3.
                instance.nack(&delivery).await.expect("nack");
                nacked = true;
                continue;
            }
            order.push(n);
            instance.ack(&delivery).await.expect("ack");
        }
        let aggregate: Vec<u32> = order.iter().copied().filter(|n| *n <= 3).collect();
        assert_eq!(
            aggregate,
            [2, 3],
            "instance {index}: one aggregate's events in order"
        );
        assert_eq!(order.len(), 7, "instance {index}, each once: {order:?}");
    }
    for instance in &mut instances {
        assert_quiet(instance, Duration::from_secs(1)).await;
    }

    let mut seen = HashSet::new();
    while seen.len() < 8 {
        let delivery = next(fixture, &mut ordinary).await;
        seen.insert(n_of(&delivery));
        ordinary.ack(&delivery).await.expect("ack");
    }
    assert_eq!(
        seen,
        (1..=8).collect(),
        "the ordinary group gets everything"
    );
    ordinary.close().await.expect("close");

    if let Some(held) = fixture.per_instance_leftovers(&bus, &group, &topic).await {
        assert!(
            !held.is_empty(),
            "the open per-instance subscribers are seen"
        );
    }
    for instance in instances {
        instance.close().await.expect("close per instance");
    }
    let deadline = tokio::time::Instant::now() + fixture.patience();
    loop {
        match fixture.per_instance_leftovers(&bus, &group, &topic).await {
            None => break,
            Some(left) if left.is_empty() => break,
            Some(left) => assert!(
                tokio::time::Instant::now() < deadline,
                "the bus still holds the closed per-instance subscribers: {left:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// 10,000 events of 16 aggregates, published in chunks of 100 (a failed publish retried from
/// the first unconfirmed event) while one member consumes; the broker stops for two seconds
/// when a fifth is out. Every event arrives (at least once), and on a bus that keeps it, each
/// aggregate's first deliveries come in publish order.
pub async fn restart_while_publishing(fixture: &mut impl Restartable) {
    let bus = fixture.bus().await;
    let topic = fixture.topic("OrderPlaced", 3);
    let mut subscription = subscribe(&bus, &fixture.group("billing"), &[&topic]).await;
    let total = 10_000_u32;
    let messages: Vec<OutboundMessage> = (0..total)
        .map(|n| message(&topic, &format!("o-{}", n % 16), n))
        .collect();
    let expected: HashSet<Uuid> = messages.iter().map(|m| m.envelope.id).collect();

    let progress = Arc::new(AtomicUsize::new(0));
    // The publisher stays at most `WINDOW` events ahead of the member, as an application
    // consuming at the rate it produces would (a member thousands of records behind can stall
    // on tansu's SQLite fetches: the broker's limit, not what this test is about).
    const WINDOW: usize = 1_000;
    let consumed = Arc::new(AtomicUsize::new(0));
    // Past the first chunk the publisher waits for the member's first delivery, so the outage
    // comes while both publishing and consuming are under way.
    let live = Arc::new(tokio::sync::Notify::new());
    let publisher = {
        let bus = bus.clone();
        let (progress, consumed, live) = (progress.clone(), consumed.clone(), live.clone());
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
        let published = progress.load(Ordering::Relaxed);
        if outage_at.is_none() && !seen.is_empty() && published >= total as usize / 5 {
            outage_at = Some(published);
            fixture.stop();
            tokio::time::sleep(Duration::from_secs(2)).await;
            fixture.start();
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
                // An acknowledgement lost in the outage only means a redelivery.
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
        assert_eq!(ns.len(), total as usize / 16, "events of {aggregate}");
        if fixture.ordered_across_restart() {
            assert!(
                ns.windows(2).all(|pair| pair[0] < pair[1]),
                "order of aggregate {aggregate}"
            );
        }
    }
    let _ = subscription.close().await;
}

/// A broker on this machine that the tests of one file share (NATS, RabbitMQ): how to connect
/// and how to stop it. Ordinary tests hold its lock for reading, the restart test for writing.
pub trait SharedBroker: Send + Sync + 'static {
    /// Restarts the broker when dropped, so a failing test never leaves it stopped.
    type Outage: Send + Sync;

    /// The adapter's name.
    const NAME: &'static str;

    /// The lock of this file's tests.
    fn lock() -> &'static tokio::sync::RwLock<()>;

    /// A connected bus.
    fn connect() -> impl Future<Output = EventBus> + Send;

    /// A bus that lets several deliveries of one group out at once.
    fn connect_with_deliveries_in_flight() -> impl Future<Output = EventBus> + Send {
        Self::connect()
    }

    /// Stops the broker until the returned value is dropped.
    fn stop() -> Self::Outage;

    /// See [`Fixture::per_instance_leftovers`].
    fn per_instance_leftovers(
        bus: &EventBus,
        group: &str,
        topic: &str,
    ) -> impl Future<Output = Option<Vec<String>>> + Send {
        let _ = (bus, group, topic);
        async { None }
    }
}

/// A fresh architecture on a [`SharedBroker`] (its own topics and groups), holding the
/// broker's lock: shared for the ordinary scenarios, exclusive for the restart.
pub struct OnBroker<B: SharedBroker> {
    arch: String,
    _shared: Option<tokio::sync::RwLockReadGuard<'static, ()>>,
    _exclusive: Option<tokio::sync::RwLockWriteGuard<'static, ()>>,
    outage: Option<B::Outage>,
}

impl<B: SharedBroker> OnBroker<B> {
    /// For a scenario that leaves the broker running.
    pub async fn shared() -> Self {
        Self {
            arch: super::architecture(),
            _shared: Some(B::lock().read().await),
            _exclusive: None,
            outage: None,
        }
    }

    /// For the restart scenario.
    pub async fn exclusive() -> Self {
        Self {
            arch: super::architecture(),
            _shared: None,
            _exclusive: Some(B::lock().write().await),
            outage: None,
        }
    }
}

impl<B: SharedBroker> Fixture for OnBroker<B> {
    fn name(&self) -> &'static str {
        B::NAME
    }

    fn bus(&self) -> impl Future<Output = EventBus> + Send {
        B::connect()
    }

    fn bus_with_deliveries_in_flight(&self) -> impl Future<Output = EventBus> + Send {
        B::connect_with_deliveries_in_flight()
    }

    fn topic(&self, event: &str, _partitions: u32) -> String {
        format!("{}.order-service.{event}", self.arch)
    }

    fn group(&self, name: &str) -> String {
        format!("{}.{name}", self.arch)
    }

    fn per_instance_leftovers(
        &self,
        bus: &EventBus,
        group: &str,
        topic: &str,
    ) -> impl Future<Output = Option<Vec<String>>> + Send {
        B::per_instance_leftovers(bus, group, topic)
    }
}

impl<B: SharedBroker> Restartable for OnBroker<B> {
    fn stop(&mut self) {
        self.outage = Some(B::stop());
    }

    fn start(&mut self) {
        self.outage = None;
    }
}
