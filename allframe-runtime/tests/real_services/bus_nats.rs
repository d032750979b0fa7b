//! Real-services suite: the NATS JetStream adapter against the server at
//! `nats://127.0.0.1:4222` (override with `NATS_URL`), started with `-js -sd
//! /var/lib/nats-server`. Run with `cargo test -p allframe-runtime --all-features --test real_services -- --ignored`.
//! A missing server fails these tests.
//!
//! The bus conformance suite (`bus_support::conformance`) runs here with the NATS fixture;
//! the tests below it are NATS's own. Every test uses a fresh architecture name, so its stream
//! (`ALLFRAME_<architecture>`), topics and consumer groups are its own. The fault test stops and restarts the server: it
//! takes the file's lock for writing, the other tests take it for reading.
#![cfg(feature = "nats")]

use std::process::Command;
use std::sync::LazyLock;
use std::time::Duration;

use crate::bus_support::conformance::{self, OnBroker, SharedBroker};
use crate::bus_support::{
    architecture, assert_quiet, message, n_of, next_within, subscribe,
    two_members_keep_order_per_aggregate,
};
use allframe_runtime::messaging::{
    BusSubscription as _, Delivery, EventBus, NatsBus, NatsBusOptions, OutboundMessage,
    Subscription, bus_partition, nats_consumer_name,
};
use tokio::sync::RwLock;

/// Held for reading by ordinary tests, for writing by the test that restarts the server.
pub(crate) static BROKER: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

pub(crate) fn url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

async fn connect() -> EventBus {
    match EventBus::connect(Some(&url()), &std::env::temp_dir()).await {
        Ok(bus) => bus,
        Err(error) => panic!(
            "NATS JetStream must run at {} for the real-services suite \
             (nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server): {error}",
            url()
        ),
    }
}

/// A bus whose groups let `max_in_flight` messages per topic out at once (members compete).
async fn connect_with_in_flight(max_in_flight: u32) -> EventBus {
    let options = NatsBusOptions {
        max_in_flight,
        ..NatsBusOptions::default()
    };
    EventBus::Nats(
        NatsBus::connect_with(&url(), options)
            .await
            .expect("NATS JetStream at 127.0.0.1:4222"),
    )
}

async fn next(subscription: &mut Subscription) -> Delivery {
    next_within(subscription, Duration::from_secs(20)).await
}

/// The broker the tests of this file share.
struct Nats;

impl SharedBroker for Nats {
    type Outage = Restart;
    const NAME: &'static str = "nats";

    fn lock() -> &'static RwLock<()> {
        &BROKER
    }

    async fn connect() -> EventBus {
        connect().await
    }

    async fn connect_with_deliveries_in_flight() -> EventBus {
        connect_with_in_flight(16).await
    }

    fn stop() -> Restart {
        Restart::stop()
    }

    /// The per-instance subscribers' ephemeral consumers still on the architecture's stream.
    async fn per_instance_leftovers(
        bus: &EventBus,
        group: &str,
        _topic: &str,
    ) -> Option<Vec<String>> {
        use futures_util::TryStreamExt as _;

        let EventBus::Nats(nats) = bus else {
            return None;
        };
        let architecture = group.split('.').next().expect("architecture");
        let stream = nats
            .jetstream()
            .get_stream(format!("ALLFRAME_{architecture}"))
            .await
            .expect("the architecture's stream");
        let names: Vec<String> = stream
            .consumer_names()
            .try_collect()
            .await
            .expect("consumer names");
        let prefix = format!("{}_instance~", group.replace('.', "_"));
        Some(
            names
                .into_iter()
                .filter(|name| name.starts_with(&prefix))
                .collect(),
        )
    }
}

crate::conformance_tests!(
    fixture = OnBroker::<Nats>::shared().await,
    ignore = "real-services: NATS JetStream at 127.0.0.1:4222"
);

#[tokio::test]
#[ignore = "real-services: NATS JetStream at 127.0.0.1:4222; stops and restarts it"]
async fn server_restart_while_publishing_loses_nothing() {
    conformance::restart_while_publishing(&mut OnBroker::<Nats>::exclusive().await).await;
}

#[tokio::test]
#[ignore = "real-services: NATS JetStream at 127.0.0.1:4222"]
async fn members_of_one_group_take_turns_in_order() {
    let _shared = BROKER.read().await;
    let bus = connect().await;
    let arch = architecture();
    let topic = format!("{arch}.order-service.OrderPlaced");
    let group = format!("{arch}.billing");
    let log = two_members_keep_order_per_aggregate(&bus, &topic, &group, 300, 60).await;
    assert!(
        log.iter().any(|(member, _, _)| *member == 1),
        "the second member handled events"
    );
}

#[tokio::test]
#[ignore = "real-services: NATS JetStream at 127.0.0.1:4222"]
async fn one_in_flight_the_next_comes_after_the_ack_and_a_nack_brings_it_back_first() {
    let _shared = BROKER.read().await;
    let bus = connect().await;
    let arch = architecture();
    let topic = format!("{arch}.order-service.OrderPlaced");
    let mut subscription = subscribe(&bus, &format!("{arch}.billing"), &[&topic]).await;
    let batch: Vec<OutboundMessage> = (1..=3).map(|n| message(&topic, "o-1", n)).collect();
    bus.publish(&batch).await.expect("publish");
    let first = next(&mut subscription).await;
    assert_eq!(n_of(&first), 1);
    assert_quiet(&mut subscription, Duration::from_millis(500)).await;
    subscription.nack(&first).await.expect("nack");
    let mut order = Vec::new();
    for _ in 0..3 {
        let delivery = next(&mut subscription).await;
        order.push(n_of(&delivery));
        subscription.ack(&delivery).await.expect("ack");
    }
    assert_eq!(
        order,
        [1, 2, 3],
        "the nacked event first, then what followed it"
    );
    subscription.close().await.expect("close");
}

#[tokio::test]
#[ignore = "real-services: NATS JetStream at 127.0.0.1:4222"]
async fn a_group_declared_with_another_in_flight_limit_is_updated_in_place() {
    let _shared = BROKER.read().await;
    let arch = architecture();
    let topic = format!("{arch}.order-service.OrderPlaced");
    let group = format!("{arch}.billing");
    let competing = connect_with_in_flight(64).await;
    let subscription = subscribe(&competing, &group, &[&topic]).await;
    subscription.close().await.expect("close");
    let first = message(&topic, "o-1", 1);
    let partition = bus_partition(&first.envelope);
    competing.publish(&[first]).await.expect("publish");

    let bus = connect().await;
    let mut subscription = subscribe(&bus, &group, &[&topic]).await;
    let delivery = next(&mut subscription).await;
    assert_eq!(n_of(&delivery), 1, "the group kept its position");
    subscription.ack(&delivery).await.expect("ack");
    subscription.close().await.expect("close");

    let client = async_nats::connect(url()).await.expect("connect");
    let info = async_nats::jetstream::new(client)
        .get_stream(format!("ALLFRAME_{arch}"))
        .await
        .expect("stream")
        .consumer_info(nats_consumer_name(&group, &topic, partition))
        .await
        .expect("consumer info");
    assert_eq!(info.config.max_ack_pending, 1);
}

/// A consumer that waits out retries while holding a delivery asks for a longer `ack_wait`
/// than its longest wait; the group's consumers get it, and a later, different request updates
/// them in place.
#[tokio::test]
#[ignore = "real-services: NATS JetStream at 127.0.0.1:4222"]
async fn the_redelivery_wait_a_consumer_asks_for_is_the_groups_ack_wait() {
    use allframe_runtime::consumer::RetryPolicy;
    use allframe_runtime::messaging::SubscribeOptions;

    let _shared = BROKER.read().await;
    let arch = architecture();
    let topic = format!("{arch}.order-service.OrderPlaced");
    let group = format!("{arch}.billing");
    let bus = connect().await;
    let ack_wait = |partition: u32| {
        let (arch, group, topic) = (arch.clone(), group.clone(), topic.clone());
        async move {
            let client = async_nats::connect(url()).await.expect("connect");
            async_nats::jetstream::new(client)
                .get_stream(format!("ALLFRAME_{arch}"))
                .await
                .expect("stream")
                .consumer_info(nats_consumer_name(&group, &topic, partition))
                .await
                .expect("consumer info")
                .config
                .ack_wait
        }
    };
    let policy = RetryPolicy::DEFAULT;
    let wanted = policy.redelivery_after();
    assert!(
        wanted > policy.ceiling(),
        "longer than the longest retry wait"
    );
    let options = SubscribeOptions::new(group.as_str(), [topic.as_str()]);
    bus.subscribe(options.clone().redelivery_after(wanted))
        .await
        .expect("subscribe")
        .close()
        .await
        .expect("close");
    assert_eq!(ack_wait(0).await, wanted);
    assert_eq!(ack_wait(15).await, wanted);

    let longer = wanted * 2;
    bus.subscribe(options.redelivery_after(longer))
        .await
        .expect("subscribe")
        .close()
        .await
        .expect("close");
    assert_eq!(ack_wait(7).await, longer, "updated in place");
}

/// Restarts the server when dropped, so a failing test never leaves it stopped.
struct Restart;

impl Restart {
    fn stop() -> Self {
        let status = Command::new("start-stop-daemon")
            // Waits until the server has exited (TERM, then KILL after 30 s), so the outage
            // has begun when this returns and the restart finds no server still stopping.
            .args([
                "--stop",
                "--retry",
                "TERM/30/KILL/5",
                "--exec",
                "/usr/sbin/nats-server",
            ])
            .status()
            .expect("run start-stop-daemon");
        assert!(status.success(), "stopping nats-server failed: {status}");
        Self
    }
}

impl Drop for Restart {
    fn drop(&mut self) {
        let status = Command::new("start-stop-daemon")
            .args([
                "--start",
                "--oknodo",
                "--background",
                "--exec",
                "/usr/sbin/nats-server",
                "--",
                "-a",
                "127.0.0.1",
                "-p",
                "4222",
                "-js",
                "-sd",
                "/var/lib/nats-server",
                "-l",
                "/var/log/nats-server.log",
            ])
            .status();
        if !matches!(status, Ok(status) if status.success()) {
            eprintln!("restarting nats-server failed: {status:?}");
        }
    }
}

/// A `producer` on NATS, started in-process with `allframe::testing` as its binary would run:
/// what it accepts reaches a consumer group in order; with the server down, a `direct` publish
/// is a 503 that releases the idempotency key, and the same request succeeds once it is back.
#[cfg(feature = "testing")]
mod producer_on_nats {
    use std::sync::LazyLock;

    use allframe_runtime::__private::{
        IdempotencySettings, IdempotencyStorage, Launch, Launcher, ServiceSettings,
    };
    use allframe_runtime::axum::http::Method;
    use allframe_runtime::testing::TestService;
    use allframe_runtime::{BoxError, Ctx, RestApi, Router, Service};
    use serde_json::{Value, json};

    use super::{BROKER, Restart, url};
    use crate::producer_support::{Report, Reported, position_ingest};

    /// A fresh architecture per run: its own stream and topics.
    static SETTINGS: LazyLock<ServiceSettings> =
        LazyLock::new(|| position_ingest(super::architecture().leak(), 5));

    struct PositionIngest;

    impl Service for PositionIngest {
        async fn init(_: &Ctx) -> Result<Self, BoxError> {
            Ok(Self)
        }
    }

    impl RestApi for PositionIngest {
        fn routes() -> Router<Self> {
            allframe_runtime::producer::routes::<Self, Report>("/position-reports")
        }
    }

    impl Launch for PositionIngest {
        fn launcher() -> Launcher<Self> {
            Launcher::new(&SETTINGS)
                .direct_publish()
                .idempotency(IdempotencySettings {
                    key_header: "Idempotency-Key",
                    ttl_hours: 1,
                    storage: IdempotencyStorage::Sqlite,
                })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "real-services: NATS JetStream at 127.0.0.1:4222; stops and restarts it"]
    async fn a_producer_publishes_to_nats_and_a_503_while_it_is_down_is_retryable() {
        let _exclusive = BROKER.write().await;
        let service = TestService::start_with::<PositionIngest>(&[("EVENT_BUS_URL", &url())]).await;
        assert_eq!(service.ctx().bus().expect("a bus").name(), "nats");
        let mut published = service.events("PositionReported").await;

        let one = service
            .post("/position-reports", &json!({"vessel": "v-1", "lat": 1.0}))
            .await;
        assert_eq!(one.status, 202, "{}", one.text());
        let batch = json!([{"vessel": "v-1", "lat": 2.0}, {"vessel": "v-2", "lat": 3.0}]);
        let many = service.post("/position-reports/batch", &batch).await;
        assert_eq!(many.status, 202, "{}", many.text());
        let mut ids = vec![one.json::<Value>()["event_id"].clone()];
        ids.extend(
            many.json::<Value>()["event_ids"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        // v-1's events in order; v-2's is on another partition, so it may come between them.
        let mut seen = Vec::new();
        for _ in 0..3 {
            let envelope = published.next().await;
            let payload: Reported = serde_json::from_slice(&envelope.payload).expect("payload");
            seen.push((json!(envelope.id.hyphenated().to_string()), payload.lat));
        }
        let of_v1: Vec<f64> = seen
            .iter()
            .map(|(_, lat)| *lat)
            .filter(|lat| *lat < 2.5)
            .collect();
        assert_eq!(of_v1, [1.0, 2.0], "one vessel's reports in order");
        seen.sort_by(|a, b| a.1.total_cmp(&b.1));
        let expected: Vec<(Value, f64)> = ids.iter().cloned().zip([1.0, 2.0, 3.0]).collect();
        assert_eq!(seen, expected);

        let keyed = || {
            service
                .request(Method::POST, "/position-reports")
                .header("Idempotency-Key", "report-after-outage")
                .json(&json!({"vessel": "v-3", "lat": 4.0}))
        };
        let outage = Restart::stop();
        let down = service.send(keyed()).await;
        drop(outage);
        assert_eq!(down.status, 503, "{}", down.text());
        assert_eq!(down.header("retry-after"), Some("1"));

        // Back up: the released key runs the request again (not a replayed 503).
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let retried = loop {
            let reply = service.send(keyed()).await;
            if reply.status != 503 || tokio::time::Instant::now() > deadline {
                break reply;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        };
        assert_eq!(retried.status, 202, "{}", retried.text());
        assert!(retried.header("idempotent-replayed").is_none());
        let retried_id = retried.json::<Value>()["event_id"].clone();
        // The publish that timed out in the outage may still arrive: a `direct` retry is at
        // least once. The retry's own event does arrive.
        loop {
            let envelope = published.next().await;
            if json!(envelope.id.hyphenated().to_string()) == retried_id {
                break;
            }
        }
        service.stop().await;
    }
}

#[tokio::test]
#[ignore = "real-services: NATS JetStream at 127.0.0.1:4222"]
async fn per_instance_consumers_are_ephemeral_new_only_and_expire_when_inactive() {
    use allframe_runtime::messaging::SubscribeOptions;
    use async_nats::jetstream::consumer::DeliverPolicy;
    use futures_util::TryStreamExt as _;

    let _shared = BROKER.read().await;
    let bus = connect().await;
    let arch = architecture();
    let topic = format!("{arch}.order-service.CacheStale");
    let group = format!("{arch}.cache");
    let subscription = bus
        .subscribe(SubscribeOptions::new(group.as_str(), [topic.as_str()]).per_instance())
        .await
        .expect("subscribe per instance");
    let EventBus::Nats(nats) = &bus else {
        panic!("a NATS bus");
    };
    let stream = nats
        .jetstream()
        .get_stream(format!("ALLFRAME_{arch}"))
        .await
        .expect("stream");
    let consumers: Vec<_> = stream.consumers().try_collect().await.expect("consumers");
    assert_eq!(
        consumers.len(),
        16,
        "one per partition, none of the group's"
    );
    for info in &consumers {
        assert!(info.name.contains("_instance~"), "{}", info.name);
        assert_eq!(info.config.durable_name, None, "{}", info.name);
        assert_eq!(info.config.deliver_policy, DeliverPolicy::New);
        assert_eq!(info.config.inactive_threshold, Duration::from_secs(60));
    }
    subscription.close().await.expect("close");
    let left: Vec<String> = stream
        .consumer_names()
        .try_collect()
        .await
        .expect("consumer names");
    assert!(left.is_empty(), "deleted on close: {left:?}");
}
