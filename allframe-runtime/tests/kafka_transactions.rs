//! Pattern `transactional` on Kafka, against librdkafka's in-process mock cluster, which speaks
//! the Kafka protocol's transactions (InitProducerId, AddPartitionsToTxn, EndTxn). tansu 0.6,
//! the real-services broker, does not implement EndTxn, so these run here, in the default
//! suite, with no external service: a committed unit of work reaches a `read_committed`
//! consumer whole, and a service launched with `pattern = "transactional"` publishes through
//! it. Not covered: the mock reports no aborted transactions in its fetch responses, so that a
//! consumer skips an aborted unit of work's events cannot be shown here (the local bus test in
//! `messaging_transactional.rs` shows the abort path; on Kafka it needs a real broker).
#![cfg(all(feature = "kafka", feature = "sqlite"))]

mod messaging_support;

use std::time::Duration;

use allframe_runtime::__private::{
    EmbeddedMigration, Environment, Launcher, LogFormat, ServiceSettings,
};
use allframe_runtime::messaging::{
    BusSubscription as _, EventBus, Messaging, PublishPattern, SubscribeOptions, Subscription,
};
use allframe_runtime::{BoxError, Ctx, RestApi, Router, Service, sqlx};
use messaging_support::{Deposited, TOPIC, config, sqlite_db};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

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

    async fn bus(&self) -> EventBus {
        EventBus::connect(Some(&self.url()), &std::env::temp_dir())
            .await
            .expect("connect to the mock cluster")
    }
}

fn fresh(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple())
}

fn event(account: &str, n: u64) -> Deposited {
    Deposited {
        account: account.into(),
        n,
    }
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
        .with_transactions(&fresh("bank.ledger-service."))
        .await
        .expect("transactional producer");
    Messaging::new(db, bus, config(PublishPattern::Transactional))
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
            uow.publish(event("alice", round * 3 + n)).expect("publish");
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

static SETTINGS: ServiceSettings = ServiceSettings {
    architecture: "bank",
    name: "ledger-service",
    archetype: "stateless",
    rest_port: 8080,
    grpc_port: None,
    logging: LogFormat::Plain,
    declared_database: "postgres",
    shutdown_timeout_secs: 5,
    deferred: &[],
};

static MIGRATIONS: [EmbeddedMigration; 1] = [EmbeddedMigration {
    version: 1,
    description: "create accounts",
    sql: "CREATE TABLE accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL);",
}];

struct Ledger;

impl Service for Ledger {
    async fn init(_cx: &Ctx) -> Result<Self, BoxError> {
        Ok(Ledger)
    }
}

impl RestApi for Ledger {
    fn routes() -> Router<Self> {
        Router::new()
    }
}

#[tokio::test]
async fn the_launcher_publishes_transactionally_on_kafka() {
    let broker = Broker::start();
    broker.create_topic(TOPIC, 1);
    let temp = tempfile::tempdir().expect("temp dir");
    let running = Launcher::<Ledger>::new(&SETTINGS)
        .migrations(&MIGRATIONS)
        .transactional_publish()
        .env(Environment::from_pairs([
            (
                "ALLFRAME_DATA_DIR".to_owned(),
                temp.path().to_string_lossy().into_owned(),
            ),
            ("PORT".to_owned(), "0".to_owned()),
            ("ALLFRAME_BIND_ADDR".to_owned(), "127.0.0.1".to_owned()),
            ("EVENT_BUS_URL".to_owned(), broker.url()),
        ]))
        .start()
        .await
        .expect("starts");
    assert_eq!(running.ctx().bus().expect("bus").name(), "kafka");
    let mut uow = running.ctx().begin().await.expect("begin");
    uow.publish(event("carol", 7)).expect("publish");
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
