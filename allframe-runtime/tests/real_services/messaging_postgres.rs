//! Real-services tests of the unit of work and the outbox relay on PostgreSQL at
//! 127.0.0.1:5432 (trust auth, database `test`; `ALLFRAME_TEST_POSTGRES_URL` overrides).
//!
//! Run with `cargo test -p allframe-runtime --all-features --test real_services -- --ignored`. A missing
//! PostgreSQL fails these tests. Each test works in a fresh schema (through the connection's
//! `search_path`), dropped at the end.
#![cfg(all(feature = "postgres", feature = "testing"))]

use std::time::Duration;

use crate::messaging_support::relay_scenarios::{self, fast};
use crate::messaging_support::*;
use allframe_runtime::messaging::{Messaging, OutboxSettings};
use allframe_runtime::testing::PgSchema;
use allframe_runtime::{CancellationToken, Database, sqlx};
use tokio::time::Instant;

/// A schema of its own for one test.
struct Scratch(PgSchema);

impl Scratch {
    async fn new(tag: &str) -> Self {
        Self(PgSchema::create(&format!("msg_{tag}")).await)
    }

    /// A new pool on the scratch schema with the test tables and the outbox.
    async fn db(&self) -> Database {
        let db = self.0.connect().await;
        prepare(&db).await;
        db
    }

    async fn drop(self) {
        self.0.remove().await;
    }
}

#[tokio::test]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn unit_of_work_commits_together_and_rolls_back_completely() {
    let scratch = Scratch::new("uow").await;
    let db = scratch.db().await;
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(&db, &bus);

    deposit(&messaging, "alice", 0, 2).await;
    assert_eq!(outbox_rows(&db).await, 2);

    let mut uow = messaging.begin().await.expect("begin");
    sqlx::query("INSERT INTO accounts (id, balance) VALUES ('bob', 5)")
        .execute(uow.conn())
        .await
        .expect("insert");
    uow.publish(Deposited {
        account: "bob".into(),
        n: 0,
    })
    .expect("publish");
    uow.rollback().await.expect("rollback");
    {
        let mut uow = messaging.begin().await.expect("begin");
        sqlx::query("INSERT INTO accounts (id, balance) VALUES ('bob', 6)")
            .execute(uow.conn())
            .await
            .expect("insert");
        uow.publish(Deposited {
            account: "bob".into(),
            n: 1,
        })
        .expect("publish");
    } // dropped
    let mut uow = messaging.begin().await.expect("begin");
    uow.publish(Deposited {
        account: "bob".into(),
        n: 2,
    })
    .expect("publish");
    assert!(
        sqlx::query("INSERT INTO missing_table VALUES (1)")
            .execute(uow.conn())
            .await
            .is_err()
    );
    assert!(
        uow.commit().await.is_err(),
        "an aborted transaction cannot commit"
    );

    let bob: Option<i64> = sqlx::query_scalar("SELECT balance FROM accounts WHERE id = 'bob'")
        .fetch_optional(db.pool())
        .await
        .expect("select");
    assert_eq!(bob, None);
    assert_eq!(
        outbox_rows(&db).await,
        2,
        "only the committed unit of work's rows"
    );
    assert_eq!(
        messaging
            .relay(OutboxSettings::DEFAULT)
            .drain()
            .await
            .expect("drain"),
        2
    );
    assert_complete_and_ordered(&decode_all(&bus.seen().await), 1, 2);
    db.close().await;
    scratch.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn two_relays_with_skip_locked_publish_everything_once_in_order() {
    let scratch = Scratch::new("two").await;
    let (db_a, db_b) = (scratch.db().await, scratch.db().await);
    relay_scenarios::two_relays_publish_everything_once_in_order(&db_a, &db_b).await;
    db_a.close().await;
    db_b.close().await;
    scratch.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn a_relay_stuck_on_its_batch_does_not_block_the_other_and_a_killed_one_loses_nothing() {
    const ACCOUNTS: usize = 16;
    const ROUNDS: u64 = 5;
    let scratch = Scratch::new("skip").await;
    let db_a = scratch.db().await;
    let db_b = scratch.db().await;
    let stuck_bus = RecordingBus::new();
    let good_bus = RecordingBus::new();
    let messaging_a = outbox_messaging(&db_a, &stuck_bus);
    let messaging_b = outbox_messaging(&db_b, &good_bus);
    write_interleaved(&messaging_a, ACCOUNTS, ROUNDS).await;
    let total = ACCOUNTS * ROUNDS as usize;

    // Relay A claims (locks) a few partitions and hangs after publishing 2 of its rows.
    stuck_bus.set_fault(Fault::HangAfter(2));
    let settings = OutboxSettings {
        partitions_per_claim: 3,
        batch_size: 1000,
        ..OutboxSettings::DEFAULT
    };
    let relay_a = messaging_a.relay(settings);
    let stuck = tokio::spawn(async move { relay_a.run_once().await });
    assert_eq!(
        stuck_bus.wait_for(2, Duration::from_secs(10)).await.len(),
        2
    );

    // Relay B skips A's locked partitions and publishes everything else at once.
    let relay_b = messaging_b.relay(settings);
    let published_by_b = tokio::time::timeout(Duration::from_secs(10), relay_b.drain())
        .await
        .expect("B is not blocked by A's locks")
        .expect("drain");
    let held_by_a = usize::try_from(unpublished(&db_a).await).expect("count");
    assert!(
        held_by_a > 0 && published_by_b > 0,
        "{held_by_a} / {published_by_b}"
    );
    assert_eq!(published_by_b + held_by_a, total);

    // A is killed mid-batch: its connection goes, and with it the locks; nothing is lost.
    stuck.abort();
    let _ = stuck.await;
    db_a.close().await;
    let started = Instant::now();
    let mut rest = 0;
    while rest < held_by_a && started.elapsed() < Duration::from_secs(10) {
        rest += relay_b.drain().await.expect("drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rest, held_by_a, "B publishes A's rows after A died");
    let mut seen = stuck_bus.seen().await;
    seen.extend(good_bus.seen().await);
    assert_complete_and_ordered(&decode_all(&seen), ACCOUNTS, ROUNDS);
    assert_eq!(unpublished(&db_b).await, 0);
    db_b.close().await;
    scratch.drop().await;
}

#[tokio::test]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn listen_notify_wakes_the_relay_for_commits_of_other_processes() {
    let scratch = Scratch::new("notify").await;
    let relay_db = scratch.db().await;
    let writer_db = scratch.db().await;
    let bus = RecordingBus::new();
    // Separate handles: the writer's commit cannot wake the relay in-process.
    let relay_side = outbox_messaging(&relay_db, &bus);
    let writer_side: Messaging = outbox_messaging(&writer_db, &RecordingBus::new());

    // Control: a relay that does not listen sleeps through a commit of another process.
    let token = CancellationToken::new();
    let deaf = tokio::spawn(
        relay_side
            .relay(OutboxSettings::with_polling_ms(60_000))
            .run(token.clone()),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    deposit(&writer_side, "acct-0", 0, 1).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        bus.seen().await.is_empty(),
        "no in-process wake-up crosses handles"
    );
    token.cancel();
    deaf.await.expect("relay");
    assert_eq!(bus.seen().await.len(), 1, "its shutdown drain published it");

    let token = CancellationToken::new();
    let relay = tokio::spawn(
        relay_side
            .relay(OutboxSettings::with_polling_ms(60_000))
            .listen(scratch.0.url().to_owned())
            .run(token.clone()),
    );
    tokio::time::sleep(Duration::from_millis(500)).await; // LISTEN is set up

    for n in 1..4 {
        let committed = Instant::now();
        deposit(&writer_side, "acct-0", n, 1).await;
        let expected = usize::try_from(n + 1).expect("small");
        let seen = bus.wait_for(expected, Duration::from_secs(10)).await;
        assert_eq!(seen.len(), expected);
        assert!(
            committed.elapsed() < Duration::from_secs(3),
            "woken by NOTIFY, not by the 60 s poll ({:?})",
            committed.elapsed()
        );
    }
    token.cancel();
    relay.await.expect("relay");
    relay_db.close().await;
    writer_db.close().await;
    scratch.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn ten_thousand_events_written_while_relays_run_are_all_published() {
    const WRITERS: usize = 4;
    const ACCOUNTS_PER_WRITER: usize = 25;
    const UNITS_PER_WRITER: u64 = 250;
    const EVENTS_PER_UNIT: u64 = 10;
    let scratch = Scratch::new("tenk").await;
    let db_a = scratch.db().await;
    let db_b = scratch.db().await;
    let bus = RecordingBus::new();
    let messaging_a = outbox_messaging(&db_a, &bus);
    let messaging_b = outbox_messaging(&db_b, &bus);
    let token = CancellationToken::new();
    let settings = fast(OutboxSettings::DEFAULT);
    let relays = [
        tokio::spawn(messaging_a.relay(settings).run(token.clone())),
        tokio::spawn(messaging_b.relay(settings).run(token.clone())),
    ];

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let messaging = if writer % 2 == 0 {
            messaging_a.clone()
        } else {
            messaging_b.clone()
        };
        writers.push(tokio::spawn(async move {
            // Each writer owns its accounts, so per-account order is well defined.
            let per_account = UNITS_PER_WRITER / ACCOUNTS_PER_WRITER as u64;
            for round in 0..per_account {
                for account in 0..ACCOUNTS_PER_WRITER {
                    let name = format!("w{writer}-acct-{account}");
                    deposit(&messaging, &name, round * EVENTS_PER_UNIT, EVENTS_PER_UNIT).await;
                }
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let total = WRITERS * UNITS_PER_WRITER as usize * EVENTS_PER_UNIT as usize;
    assert_eq!(total, 10_000);
    let seen = bus.wait_for(total, Duration::from_secs(120)).await;
    token.cancel();
    for relay in relays {
        relay.await.expect("relay");
    }
    let rounds = UNITS_PER_WRITER / ACCOUNTS_PER_WRITER as u64 * EVENTS_PER_UNIT;
    assert_complete_and_ordered(&decode_all(&seen), WRITERS * ACCOUNTS_PER_WRITER, rounds);
    assert_eq!(
        bus.seen().await.len(),
        total,
        "nothing lost, nothing doubled"
    );
    assert_eq!(unpublished(&db_a).await, 0);
    db_a.close().await;
    db_b.close().await;
    scratch.drop().await;
}

#[tokio::test]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn without_retention_published_rows_are_deleted_on_postgres() {
    let scratch = Scratch::new("noretention").await;
    let db = scratch.db().await;
    relay_scenarios::without_retention_published_rows_are_deleted(&db).await;
    db.close().await;
    scratch.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn a_relays_lanes_publish_batches_at_once_in_order_on_postgres() {
    let scratch = Scratch::new("lanes").await;
    let db = scratch.db().await;
    let most = relay_scenarios::lanes_publish_in_order(&db).await;
    assert!(
        most >= 2,
        "batches were published one at a time ({most} at most)"
    );
    db.close().await;
    scratch.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn broker_errors_back_off_and_lose_nothing_on_postgres() {
    let scratch = Scratch::new("errors").await;
    let db = scratch.db().await;
    relay_scenarios::broker_errors_back_off_and_lose_nothing(&db).await;
    db.close().await;
    scratch.drop().await;
}

/// Handles everything at once.
struct Accepts;

impl allframe_runtime::consumer::Handlers for Accepts {
    fn handle<'a>(
        &'a self,
        _uow: &'a mut allframe_runtime::messaging::UnitOfWork,
        _delivery: &'a allframe_runtime::messaging::Delivery,
        _notify: &'a mut allframe_runtime::channel::Notifications,
    ) -> futures_util::future::BoxFuture<'a, Result<(), allframe_runtime::consumer::HandleError>>
    {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn a_consumer_group_on_postgres_stays_within_the_subtransaction_cache() {
    use allframe_runtime::consumer::{Consumer, Outcome, POSTGRES_GROUP_LIMIT, RetryPolicy, store};
    use allframe_runtime::messaging::{Delivery, DeliveryTag};
    let scratch = Scratch::new("group").await;
    let db = scratch.db().await;
    store::install(&db).await.expect("consumer tables");
    let consumer = Consumer::new(
        db.clone(),
        None,
        "ledger-service",
        "bank.ledger-service",
        Accepts,
        RetryPolicy::DEFAULT,
    );
    let deliveries: Vec<Delivery> = (0..40)
        .map(|n| {
            let message = message(&format!("acct-{n}"), n);
            Delivery::new(message.topic, message.envelope, DeliveryTag::new(n + 1))
        })
        .collect();
    let outcomes = consumer.handle_group(&deliveries).await.expect("group");
    let (attempted, left) = outcomes.split_at(POSTGRES_GROUP_LIMIT);
    assert!(
        attempted.iter().all(|o| *o == Some(Outcome::Handled)),
        "{outcomes:?}"
    );
    assert!(left.iter().all(Option::is_none), "{outcomes:?}");
    db.close().await;
    scratch.drop().await;
}
