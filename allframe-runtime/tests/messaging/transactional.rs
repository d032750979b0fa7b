//! Pattern `transactional` on the local bus: a unit of work's events are sent into a bus
//! transaction committed after the database commit, so they become visible only then, all
//! together; a unit of work rolled back, dropped, or whose database commit fails publishes
//! nothing. The launcher refuses the pattern on buses without transactions (NATS, RabbitMQ),
//! and a custom bus fails the commit with nothing changed.
#![cfg(feature = "sqlite")]

use std::path::Path;

use crate::messaging_support::launch_env::test_env;
use crate::messaging_support::ledger::{Ledger, MIGRATIONS, SETTINGS};
use crate::messaging_support::*;
use allframe_runtime::__private::{Launcher, RunningService};
use allframe_runtime::Database;
use allframe_runtime::error::RuntimeError;
use allframe_runtime::messaging::{
    BusError, EventBus, EventContext, LocalBus, LocalBusOptions, Messaging, MessagingError,
    PublishPattern,
};

async fn local_bus(dir: &Path) -> LocalBus {
    LocalBus::open(&dir.join("bus.db"), LocalBusOptions::default())
        .await
        .expect("local bus")
}

async fn on_the_bus(bus: &LocalBus) -> u64 {
    bus.len(TOPIC).await.expect("len")
}

/// A SQLite database and a local bus in `dir`, and a messaging handle publishing to that bus
/// with the `transactional` pattern.
async fn transactional_on_the_local_bus(dir: &Path) -> (Database, LocalBus, Messaging) {
    let db = sqlite_db(dir, "uow.db").await;
    let bus = local_bus(dir).await;
    let messaging = messaging_on(
        &db,
        EventBus::Local(bus.clone()),
        PublishPattern::Transactional,
    );
    (db, bus, messaging)
}

#[tokio::test]
async fn events_become_visible_together_and_only_after_the_commit() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (db, bus, messaging) = transactional_on_the_local_bus(temp.path()).await;

    let mut uow = messaging.begin().await.expect("begin");
    open_account(&mut uow, "alice", 3).await;
    for n in 0..3 {
        uow.publish(deposited("alice", n)).expect("publish");
    }
    assert_eq!(on_the_bus(&bus).await, 0, "nothing before the commit");
    uow.commit().await.expect("commit");
    assert_eq!(balance(&db, "alice").await, Some(3));
    assert_eq!(on_the_bus(&bus).await, 3, "all three after the commit");
    assert_eq!(outbox_rows(&db).await, 0, "no outbox involved");

    let mut sub = bus
        .subscribe(allframe_runtime::messaging::SubscribeOptions::new(
            "bank.audit-service",
            [TOPIC],
        ))
        .await
        .expect("subscribe");
    for n in 0..3 {
        let delivery = sub.next().await.expect("delivery");
        assert_eq!(delivery.decode::<Deposited>().expect("decodes").n, n);
        sub.ack(&delivery).await.expect("ack");
    }
    db.close().await;
}

#[tokio::test]
async fn a_failed_database_commit_rollback_or_drop_publishes_nothing() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (db, bus, messaging) = transactional_on_the_local_bus(temp.path()).await;
    create_deferred_transfers(&db).await;

    let mut uow = messaging.begin().await.expect("begin");
    insert_orphan_transfer(&mut uow).await;
    uow.publish(deposited("nobody", 0)).expect("publish");
    uow.publish(deposited("nobody", 1)).expect("publish");
    let error = uow
        .commit()
        .await
        .expect_err("the foreign key fails the commit");
    assert!(matches!(error, MessagingError::Database(_)), "{error}");
    assert_eq!(on_the_bus(&bus).await, 0, "the bus transaction was aborted");

    let mut uow = messaging.begin().await.expect("begin");
    uow.publish(deposited("carol", 0)).expect("publish");
    uow.rollback().await.expect("rollback");
    let mut uow = messaging.begin().await.expect("begin");
    uow.publish(deposited("carol", 1)).expect("publish");
    drop(uow);
    assert_eq!(
        on_the_bus(&bus).await,
        0,
        "rollback and drop publish nothing"
    );

    deposit(&messaging, "carol", 7, 1).await;
    assert_eq!(on_the_bus(&bus).await, 1, "a later unit of work commits");
    db.close().await;
}

#[tokio::test]
async fn a_bus_without_transactions_fails_the_commit_and_changes_nothing() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "uow.db").await;
    let bus = RecordingBus::new();
    let messaging = messaging_on(
        &db,
        EventBus::custom(bus.clone()),
        PublishPattern::Transactional,
    );
    let mut uow = messaging.begin().await.expect("begin");
    open_account(&mut uow, "dan", 1).await;
    uow.publish(deposited("dan", 0)).expect("publish");
    let error = uow.commit().await.expect_err("no transactions");
    assert!(
        matches!(
            error,
            MessagingError::Bus(BusError::TransactionsUnsupported { .. })
        ),
        "{error}"
    );
    assert_eq!(balance(&db, "dan").await, None, "the state rolled back");
    assert!(bus.seen().await.is_empty());
    db.close().await;
}

#[tokio::test]
async fn emit_uses_the_bus_transaction_alone() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (db, bus, messaging) = transactional_on_the_local_bus(temp.path()).await;
    // A writer holds the database's write lock: emitting must not wait for it.
    let writer = messaging.begin().await.expect("begin");
    let events = vec![deposited("erin", 0), deposited("erin", 1)];
    let emitted = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        messaging.emit(EventContext::default(), events),
    )
    .await
    .expect("emit does not take the database's write lock")
    .expect("emitted");
    assert_eq!(emitted.len(), 2);
    assert_eq!(on_the_bus(&bus).await, 2);
    writer.rollback().await.expect("rollback");

    let refusing = messaging_on(
        &db,
        EventBus::custom(RecordingBus::new()),
        PublishPattern::Transactional,
    );
    let error = refusing
        .emit(EventContext::default(), vec![deposited("erin", 2)])
        .await
        .expect_err("no bus transactions");
    assert!(
        matches!(error, MessagingError::Unpublished { events: 1, .. }),
        "{error}"
    );
    assert_eq!(outbox_rows(&db).await, 0, "nothing stored");
    db.close().await;
}

async fn start(dir: &Path, bus_url: Option<&str>) -> Result<RunningService, RuntimeError> {
    let extra: Vec<(&str, &str)> = bus_url
        .map(|url| ("EVENT_BUS_URL", url))
        .into_iter()
        .collect();
    Launcher::<Ledger>::new(&SETTINGS)
        .migrations(&MIGRATIONS)
        .transactional_publish()
        .env(test_env(dir, &extra))
        .start()
        .await
}

#[tokio::test]
async fn the_launcher_refuses_transactional_on_nats_and_rabbitmq() {
    for (url, bus) in [
        ("nats://127.0.0.1:4222", "nats"),
        ("amqp://guest:hunter2@127.0.0.1:5672/%2f", "rabbitmq"),
        ("amqps://127.0.0.1:5671", "rabbitmq"),
    ] {
        let temp = tempfile::tempdir().expect("temp dir");
        let error = start(temp.path(), Some(url)).await.expect_err(url);
        let RuntimeError::Component {
            name: "messaging",
            source,
        } = &error
        else {
            panic!("unexpected error: {error}");
        };
        let messaging = source
            .downcast_ref::<MessagingError>()
            .expect("a typed messaging error");
        assert!(
            matches!(
                messaging,
                MessagingError::Bus(BusError::TransactionsUnsupported { bus: b }) if *b == bus
            ),
            "{messaging}"
        );
        let message = error.to_string();
        for needle in ["`transactional`", "EVENT_BUS_URL", bus, "`outbox`"] {
            assert!(message.contains(needle), "{needle} in: {message}");
        }
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[tokio::test]
async fn the_launcher_runs_transactional_on_the_local_bus() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), None).await.expect("starts");
    let cx = running.ctx().clone();
    let mut uow = cx.begin().await.expect("begin");
    open_account(&mut uow, "erin", 2).await;
    uow.publish(deposited("erin", 0)).expect("publish");
    uow.publish(deposited("erin", 1)).expect("publish");
    uow.commit().await.expect("commit");
    let bus = local_bus(temp.path()).await;
    assert_eq!(on_the_bus(&bus).await, 2);
    let report = running.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
}
