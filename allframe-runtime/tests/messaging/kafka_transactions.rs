//! Pattern `transactional` on Kafka, against librdkafka's in-process mock cluster, which speaks
//! the Kafka protocol's transactions (InitProducerId, AddPartitionsToTxn, EndTxn). tansu 0.6,
//! the real-services broker, does not implement EndTxn, so these run here, in the default
//! suite, with no external service: a committed unit of work reaches a `read_committed`
//! consumer whole, and a service launched with `pattern = "transactional"` publishes through
//! it. The pool of transactional producers holds several transactions at once, a fenced
//! producer is replaced, and a commit that times out is retried. Not covered: the mock reports no aborted transactions in its fetch responses, so that a
//! consumer skips an aborted unit of work's events cannot be shown here (the local bus test in
//! `messaging/transactional.rs` shows the abort path; on Kafka it needs a real broker).
#![cfg(all(feature = "kafka", feature = "sqlite"))]

use std::time::Duration;

use crate::bus_support::{message, n_of, next_within};
use crate::kafka_proxy::KafkaProxy;
use crate::messaging_support::launch_env::test_env;
use crate::messaging_support::ledger::{Ledger, MIGRATIONS, SETTINGS};
use crate::messaging_support::{
    Deposited, TOPIC, create_deferred_transfers, deposited, insert_orphan_transfer, messaging_on,
    sqlite_db,
};
use allframe_runtime::__private::Launcher;
use allframe_runtime::messaging::MessagingError;
use allframe_runtime::messaging::{
    BusSubscription as _, EventBus, Messaging, PublishPattern, SubscribeOptions, Subscription,
};
use allframe_runtime::messaging::{KafkaBus, KafkaBusOptions};
use allframe_runtime::sqlx;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

/// A one-broker librdkafka mock cluster on a loopback port, dropped with the test.
struct Broker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl Broker {
    fn start() -> Self {
        Self {
            cluster: MockCluster::new(1).expect("librdkafka mock cluster"),
        }
    }

    fn create_topic(&self, name: &str, partitions: i32) {
        self.cluster
            .create_topic(name, partitions, 1)
            .expect("create topic");
    }

    fn url(&self) -> String {
        format!("kafka://{}", self.cluster.bootstrap_servers())
    }

    /// A bus with `producers` transactional producers and `options`.
    async fn transactional_bus(&self, producers: usize, options: KafkaBusOptions) -> EventBus {
        transactional_bus_at(&self.url(), producers, options).await
    }

    fn addr(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    async fn bus(&self) -> EventBus {
        EventBus::connect(Some(&self.url()), &std::env::temp_dir())
            .await
            .expect("connect to the mock cluster")
    }
}

/// A bus on the cluster at `url` with `producers` transactional producers and `options`.
async fn transactional_bus_at(url: &str, producers: usize, options: KafkaBusOptions) -> EventBus {
    {
        let bus = KafkaBus::connect_with(url, options)
            .await
            .expect("connect to the mock cluster")
            .with_transactions(&fresh("bank.ledger-service."), producers)
            .await
            .expect("transactional producers");
        EventBus::Kafka(bus)
    }
}

fn fresh(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple())
}

async fn next_n(subscription: &mut Subscription) -> u64 {
    let delivery = tokio::time::timeout(Duration::from_secs(30), subscription.next())
        .await
        .expect("a delivery within 30 s")
        .expect("next");
    subscription.ack(&delivery).await.expect("ack");
    delivery.decode::<Deposited>().expect("decodes").n
}

/// Nothing more arrives within `wait`.
async fn assert_quiet(subscription: &mut Subscription, wait: Duration) {
    if let Ok(delivery) = tokio::time::timeout(wait, subscription.next()).await {
        let delivery = delivery.expect("next");
        panic!(
            "unexpected delivery: n = {}",
            delivery.decode::<Deposited>().expect("decodes").n
        );
    }
}

async fn transactional_messaging(broker: &Broker, dir: &std::path::Path) -> Messaging {
    let db = sqlite_db(dir, "uow.db").await;
    let bus = broker
        .bus()
        .await
        .with_transactions(&fresh("bank.ledger-service."), 1)
        .await
        .expect("transactional producer");
    messaging_on(&db, bus, PublishPattern::Transactional)
}

#[tokio::test]
async fn a_committed_unit_of_work_reaches_a_read_committed_consumer_whole() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, 1);
    let temp = tempfile::tempdir().expect("temp dir");
    let messaging = transactional_messaging(&broker, temp.path()).await;

    for round in 0..2 {
        let mut uow = messaging.begin().await.expect("begin");
        sqlx::query(
            "INSERT INTO accounts (id, balance) VALUES ('alice', 1)
             ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + 1",
        )
        .execute(uow.conn())
        .await
        .expect("upsert");
        for n in 0..3 {
            uow.publish(deposited("alice", round * 3 + n))
                .expect("publish");
        }
        uow.commit().await.expect("commit");
    }

    let reader = broker.bus().await;
    let mut subscription = reader
        .subscribe(SubscribeOptions::new(fresh("audit"), [TOPIC]))
        .await
        .expect("subscribe");
    for n in 0..6 {
        assert_eq!(next_n(&mut subscription).await, n);
    }
    assert_quiet(&mut subscription, Duration::from_secs(2)).await;
    subscription.close().await.expect("close");
}

#[tokio::test]
async fn the_launcher_publishes_transactionally_on_kafka() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, 1);
    let temp = tempfile::tempdir().expect("temp dir");
    let running = Launcher::<Ledger>::new(&SETTINGS)
        .migrations(&MIGRATIONS)
        .transactional_publish()
        .env(test_env(temp.path(), &[("EVENT_BUS_URL", &broker.url())]))
        .start()
        .await
        .expect("starts");
    assert_eq!(running.ctx().bus().expect("bus").name(), "kafka");
    let mut uow = running.ctx().begin().await.expect("begin");
    uow.publish(deposited("carol", 7)).expect("publish");
    uow.commit().await.expect("commit");

    let reader: EventBus = broker.bus().await;
    let mut subscription = reader
        .subscribe(SubscribeOptions::new(fresh("audit"), [TOPIC]))
        .await
        .expect("subscribe");
    assert_eq!(next_n(&mut subscription).await, 7);
    subscription.close().await.expect("close");
    let report = running.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
}

/// The `n`s of the next `count` deliveries on a fresh group of `topic`, in delivery order.
async fn read_ns(broker: &Broker, topic: &str, count: usize) -> Vec<u32> {
    let reader = broker.bus().await;
    let mut subscription = crate::bus_support::subscribe(&reader, &fresh("audit"), &[topic]).await;
    let mut ns = Vec::with_capacity(count);
    for _ in 0..count {
        let delivery = next_within(&mut subscription, Duration::from_secs(30)).await;
        subscription.ack(&delivery).await.expect("ack");
        ns.push(n_of(&delivery));
    }
    crate::bus_support::assert_quiet(&mut subscription, Duration::from_secs(2)).await;
    subscription.close().await.expect("close");
    ns
}

#[tokio::test]
async fn units_of_work_hold_as_many_kafka_transactions_at_once_as_there_are_producers() {
    let broker = Broker::start();
    let topic = fresh("orders.");
    broker.create_topic(&topic, 1);
    let bus = broker
        .transactional_bus(2, KafkaBusOptions::default())
        .await;

    let mut first = bus.begin_transaction().await.expect("first transaction");
    let mut second = tokio::time::timeout(Duration::from_secs(10), bus.begin_transaction())
        .await
        .expect("a second producer takes the second transaction at once")
        .expect("second transaction");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), bus.begin_transaction())
            .await
            .is_err(),
        "a third transaction must wait while both producers are taken"
    );
    first
        .send(&[message(&topic, "order-1", 1)])
        .await
        .expect("send into the first");
    second
        .send(&[message(&topic, "order-2", 2)])
        .await
        .expect("send into the second");
    second.commit().await.expect("commit the second");
    let mut third = tokio::time::timeout(Duration::from_secs(10), bus.begin_transaction())
        .await
        .expect("the freed producer takes the waiting transaction")
        .expect("third transaction");
    third
        .send(&[message(&topic, "order-3", 3)])
        .await
        .expect("send into the third");
    third.commit().await.expect("commit the third");
    first.commit().await.expect("commit the first");

    let mut ns = read_ns(&broker, &topic, 3).await;
    ns.sort_unstable();
    assert_eq!(ns, [1, 2, 3]);
}

#[tokio::test]
async fn a_fenced_producer_is_replaced_for_the_next_transaction() {
    let broker = Broker::start();
    let topic = fresh("orders.");
    broker.create_topic(&topic, 1);
    let bus = broker
        .transactional_bus(1, KafkaBusOptions::default())
        .await;

    broker.cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
    );
    let mut fenced = bus.begin_transaction().await.expect("begin");
    fenced
        .send(&[message(&topic, "order-1", 1)])
        .await
        .expect("send");
    let error = fenced
        .commit()
        .await
        .expect_err("the cluster fenced the producer at commit");
    assert!(
        error.to_string().to_lowercase().contains("fenced"),
        "{error}"
    );

    // The only producer was fenced: without a replacement, every later transaction fails.
    let mut next = bus
        .begin_transaction()
        .await
        .expect("a new producer begins");
    next.send(&[message(&topic, "order-2", 2)])
        .await
        .expect("send");
    next.commit().await.expect("the new producer commits");

    // The mock hands out aborted records too (see the module docs), so the fenced
    // transaction's event comes first; what matters is the replacement's committed one.
    let ns = read_ns(&broker, &topic, 2).await;
    assert_eq!(ns, [1, 2]);
}

#[tokio::test]
async fn a_commit_that_times_out_is_retried_until_it_completes() {
    let broker = Broker::start();
    let topic = fresh("orders.");
    broker.create_topic(&topic, 1);
    let options = KafkaBusOptions {
        delivery_timeout: Duration::from_secs(1),
        ..KafkaBusOptions::default()
    };
    let bus = broker.transactional_bus(1, options).await;

    let mut transaction = bus.begin_transaction().await.expect("begin");
    transaction
        .send(&[message(&topic, "order-1", 1)])
        .await
        .expect("send");
    // Every answer now takes longer than one commit attempt may wait, but less than three.
    broker
        .cluster
        .broker_round_trip_time(1, Duration::from_millis(1500))
        .expect("slow the broker down");
    transaction
        .commit()
        .await
        .expect("the timed-out commit is retried and completes");
    broker
        .cluster
        .broker_round_trip_time(1, Duration::ZERO)
        .expect("restore the broker");

    assert_eq!(read_ns(&broker, &topic, 1).await, [1]);
}

#[tokio::test]
async fn a_failed_database_commit_aborts_the_kafka_transaction() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, 1);
    let proxy = KafkaProxy::start(&broker.addr()).await;
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "uow.db").await;
    create_deferred_transfers(&db).await;
    let bus = transactional_bus_at(&proxy.url(), 1, KafkaBusOptions::default()).await;
    let messaging = messaging_on(&db, bus.clone(), PublishPattern::Transactional);

    let mut uow = messaging.begin().await.expect("begin");
    uow.publish(deposited("alice", 1)).expect("publish");
    uow.commit().await.expect("the first unit of work commits");

    let mut uow = messaging.begin().await.expect("begin");
    insert_orphan_transfer(&mut uow).await;
    uow.publish(deposited("nobody", 2)).expect("publish");
    let error = uow
        .commit()
        .await
        .expect_err("the foreign key fails the database commit");
    assert!(matches!(error, MessagingError::Database(_)), "{error}");

    let mut uow = messaging.begin().await.expect("begin");
    uow.publish(deposited("alice", 3)).expect("publish");
    uow.commit().await.expect("a later unit of work commits");

    // A bus transaction aborted explicitly, and one dropped unfinished (aborted in the
    // background, so wait for its EndTxn).
    let mut aborted = bus.begin_transaction().await.expect("begin");
    aborted
        .send(&[message(TOPIC, "order-1", 4)])
        .await
        .expect("send");
    aborted.abort().await.expect("abort");
    let mut dropped = bus.begin_transaction().await.expect("begin");
    dropped
        .send(&[message(TOPIC, "order-1", 5)])
        .await
        .expect("send");
    drop(dropped);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while proxy.end_txns().len() < 5 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(
        proxy.end_txns(),
        [true, false, true, false, false],
        "EndTxn per transaction: commit, abort (failed database commit), commit, abort, abort \
         (dropped)"
    );
    db.close().await;
}
