//! Real-services suite: the RabbitMQ adapter against the broker at
//! `amqp://guest:guest@127.0.0.1:5672` (override with `AMQP_URL`). Run with
//! `cargo test -p allframe-runtime --all-features --test real_services -- --ignored`. A missing broker fails these
//! tests.
//!
//! The bus conformance suite (`bus_support::conformance`) runs here with the RabbitMQ fixture;
//! the tests below it are RabbitMQ's own. Every test uses a fresh architecture name, so its
//! exchange, topics and group queues are its own. The fault test stops and restarts the broker (`rabbitmqctl stop_app` / `start_app`): it
//! takes the file's lock for writing, the other tests take it for reading.
#![cfg(feature = "rabbitmq")]

use std::process::Command;
use std::sync::LazyLock;

use crate::bus_support::conformance::{self, OnBroker, SharedBroker};
use crate::bus_support::{architecture, subscribe, two_members_keep_order_per_aggregate};
use allframe_runtime::messaging::{
    BusError, BusSubscription as _, EventBus, SubscribeOptions, is_per_instance_group,
    rabbit_queue_name,
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

/// The broker the tests of this file share.
struct Rabbit;

impl SharedBroker for Rabbit {
    type Outage = Restart;
    const NAME: &'static str = "rabbitmq";

    fn lock() -> &'static RwLock<()> {
        &BROKER
    }

    async fn connect() -> EventBus {
        connect().await
    }

    fn stop() -> Restart {
        Restart::stop()
    }

    /// The per-instance subscribers' queues the broker still has (`rabbitmqctl list_queues`).
    async fn per_instance_leftovers(
        _bus: &EventBus,
        group: &str,
        _topic: &str,
    ) -> Option<Vec<String>> {
        let output = tokio::process::Command::new("rabbitmqctl")
            .args(["-q", "list_queues", "name", "--no-table-headers"])
            .output()
            .await
            .expect("run rabbitmqctl");
        assert!(
            output.status.success(),
            "rabbitmqctl list_queues: {output:?}"
        );
        let prefix = format!("{group}.");
        Some(
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(str::trim)
                .filter(|name| name.starts_with(&prefix) && is_per_instance_group(name))
                .map(str::to_owned)
                .collect(),
        )
    }
}

crate::conformance_tests!(
    fixture = OnBroker::<Rabbit>::shared().await,
    ignore = "real-services: RabbitMQ at 127.0.0.1:5672"
);

#[tokio::test]
#[ignore = "real-services: RabbitMQ at 127.0.0.1:5672; stops and restarts it"]
async fn broker_restart_while_publishing_loses_nothing() {
    conformance::restart_while_publishing(&mut OnBroker::<Rabbit>::exclusive().await).await;
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
    let queue = rabbit_queue_name(&group, 0);
    let connection = lapin::Connection::connect(&url(), lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_declare(
            ShortString::from(queue.as_str()),
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
        matches!(&error, BusError::Conflict { object, .. } if object.contains(&queue)),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("x-single-active-consumer"), "{message}");
    assert!(
        message.contains(&format!("rabbitmqctl delete_queue {queue}")),
        "{message}"
    );

    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_delete(
            ShortString::from(queue.as_str()),
            QueueDeleteOptions::default(),
        )
        .await
        .expect("delete the queue");
    let subscription = subscribe(&bus, &group, &[&topic]).await;
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
#[ignore = "real-services: RabbitMQ at 127.0.0.1:5672"]
async fn a_per_instance_subscriber_declares_none_of_the_group_queues() {
    use lapin::options::QueueDeclareOptions;
    use lapin::types::{FieldTable, ShortString};

    let _shared = BROKER.read().await;
    let arch = architecture();
    let group = format!("{arch}.cache");
    let topic = format!("{arch}.order-service.OrderPlaced");
    let bus = connect().await;
    let subscription = bus
        .subscribe(SubscribeOptions::new(group.as_str(), [topic.as_str()]).per_instance())
        .await
        .expect("subscribe per instance");
    let connection = lapin::Connection::connect(&url(), lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    for partition in [0, 15] {
        let channel = connection.create_channel().await.expect("channel");
        let queue = rabbit_queue_name(&group, partition);
        let found = channel
            .queue_declare(
                ShortString::from(queue.as_str()),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        assert!(found.is_err(), "the group's queue `{queue}` was declared");
    }
    subscription.close().await.expect("close");
}
