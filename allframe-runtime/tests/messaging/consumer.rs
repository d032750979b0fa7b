//! Handling one delivery in a consumer: once in its effects (the inbox), retries counted in the
//! database and then a dead letter, poison parked at once, newer schemas retried, panics as
//! failures, and replays of dead letters that are neither swallowed by the inbox nor lost.
#![cfg(feature = "sqlite")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use allframe_runtime::channel::Notifications;
use allframe_runtime::consumer::{
    Consumer, DeadLetter, HandleError, Handlers, Outcome, Reason, Replayed, RetryPolicy, store,
};
use allframe_runtime::messaging::{Delivery, DeliveryTag, Envelope, RetrySettings, UnitOfWork};
use allframe_runtime::{Database, Event, sqlx};
use futures_util::future::BoxFuture;

use crate::messaging_support::*;

/// How the test handler behaves.
const WORKS: u32 = 0;
const FAILS: u32 = 1;
const PANICS: u32 = 2;

/// Credits the account of each `Deposited` it handles, then does what `mode` says (and fails
/// for accounts named `closed-…`).
#[derive(Clone, Default)]
struct Ledger {
    mode: Arc<AtomicU32>,
}

impl Handlers for Ledger {
    fn handle<'a>(
        &'a self,
        uow: &'a mut UnitOfWork,
        delivery: &'a Delivery,
        _notify: &'a mut Notifications,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            if delivery.envelope().event_type != Deposited::TYPE {
                return Err(HandleError::UnknownEvent(
                    delivery.envelope().event_type.clone(),
                ));
            }
            let event: Deposited = delivery.decode()?;
            sqlx::query(
                "INSERT INTO accounts (id, balance) VALUES ($1, 1)
                 ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + 1",
            )
            .bind(&event.account)
            .execute(uow.conn())
            .await
            .map_err(HandleError::failed)?;
            if event.account.starts_with("closed-") {
                return Err(HandleError::failed("the account is closed"));
            }
            match self.mode.load(Ordering::SeqCst) {
                FAILS => Err(HandleError::failed("the ledger is closed")),
                PANICS => panic!("the ledger caught fire"),
                _ => Ok(()),
            }
        })
    }
}

fn delivery(account: &str, n: u64) -> Delivery {
    let message = message(account, n);
    Delivery::new(message.topic, message.envelope, DeliveryTag::new(1))
}

/// A delivery of `acct-0` with another type, schema version or payload.
fn delivery_with(event_type: &str, schema_version: u32, payload: Vec<u8>) -> Delivery {
    let mut message = message("acct-0", 0);
    message.envelope.event_type = event_type.into();
    message.envelope.schema_version = schema_version;
    message.envelope.payload = payload;
    Delivery::new(message.topic, message.envelope, DeliveryTag::new(1))
}

const GROUP: &str = "bank.ledger-service";

async fn consumer(db: &Database, ledger: &Ledger, max_retries: u32) -> Consumer<Ledger> {
    store::install(db).await.expect("consumer tables");
    let policy = RetryPolicy {
        max_retries,
        intervals: RetrySettings {
            initial_interval_ms: 10,
            max_interval_ms: 50,
            ..RetrySettings::DEFAULT
        },
        ..RetryPolicy::DEFAULT
    };
    Consumer::new(
        db.clone(),
        None,
        "ledger-service",
        GROUP,
        ledger.clone(),
        policy,
    )
}

async fn setup(max_retries: u32) -> (tempfile::TempDir, Database, Ledger, Consumer<Ledger>) {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "ledger.db").await;
    let ledger = Ledger::default();
    let consumer = consumer(&db, &ledger, max_retries).await;
    (temp, db, ledger, consumer)
}

/// The consumer's dead letters, oldest first.
async fn parked(db: &Database) -> Vec<DeadLetter> {
    store::dead_letters(db, GROUP).await.expect("list")
}

fn is_retry(outcome: &Outcome, failures: u32) -> bool {
    matches!(outcome, Outcome::Retry { failures: f, after } if *f == failures && *after <= Duration::from_millis(50))
}

#[tokio::test]
async fn a_group_rolls_back_only_the_attempt_that_failed() {
    let (_temp, db, _ledger, consumer) = setup(3).await;
    let first = delivery("acct-0", 0);
    let group = [
        first.clone(),
        delivery("closed-1", 0),
        // Same aggregate as a delivery to retry: waits for it.
        delivery("closed-1", 1),
        delivery("acct-0", 1),
        first,
    ];
    let outcomes = consumer.handle_group(&group).await.expect("group");
    assert_eq!(outcomes[0], Some(Outcome::Handled));
    assert!(
        outcomes[1].as_ref().is_some_and(|o| is_retry(o, 1)),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2], None);
    assert_eq!(outcomes[3], Some(Outcome::Handled));
    assert_eq!(outcomes[4], Some(Outcome::Duplicate));
    assert_eq!(balance(&db, "acct-0").await, Some(2));
    assert_eq!(
        balance(&db, "closed-1").await,
        None,
        "its credit rolled back"
    );
    // Its failure was counted in the group's transaction.
    let again = consumer.handle(&group[1]).await.expect("again");
    assert!(is_retry(&again, 2), "{again:?}");
}

#[tokio::test]
async fn a_handled_event_forgets_its_failures() {
    let (_temp, db, ledger, consumer) = setup(3).await;
    let message = delivery("acct-0", 0);
    ledger.mode.store(FAILS, Ordering::SeqCst);
    assert!(is_retry(&consumer.handle(&message).await.expect("1st"), 1));
    ledger.mode.store(WORKS, Ordering::SeqCst);
    let handled = consumer.handle(&message).await.expect("2nd");
    assert_eq!(handled, Outcome::Handled);
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM allframe_consumer_attempts")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(left, 0, "no failure count left behind");
}

#[tokio::test]
async fn a_redelivered_event_is_handled_once_in_its_effects() {
    let (_temp, db, _ledger, consumer) = setup(3).await;
    let message = delivery("acct-0", 0);
    assert_eq!(
        consumer.handle(&message).await.expect("handle"),
        Outcome::Handled
    );
    assert_eq!(
        consumer.handle(&message).await.expect("handle"),
        Outcome::Duplicate
    );
    assert_eq!(balance(&db, "acct-0").await, Some(1));
}

#[tokio::test]
async fn failures_are_retried_max_retries_times_then_dead_lettered_with_the_original() {
    let (_temp, db, ledger, consumer) = setup(2).await;
    ledger.mode.store(FAILS, Ordering::SeqCst);
    let message = delivery("acct-0", 0);
    // Not dead-lettered on the first failure: attempts = max_retries + 1.
    assert!(is_retry(&consumer.handle(&message).await.expect("1st"), 1));
    assert!(is_retry(&consumer.handle(&message).await.expect("2nd"), 2));
    assert_eq!(
        consumer.handle(&message).await.expect("3rd"),
        Outcome::DeadLettered(Reason::Handler)
    );
    assert_eq!(
        balance(&db, "acct-0").await,
        None,
        "each attempt rolled back"
    );

    let letters = parked(&db).await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.attempts, 3);
    assert_eq!(letter.reason, Reason::Handler);
    assert_eq!(letter.error, "the ledger is closed");
    assert_eq!(letter.event_id, message.envelope().id.to_string());
    assert!(letter.first_failed_at <= letter.last_failed_at);
    let original = Envelope::from_headers_json(&letter.headers, letter.payload.clone())
        .expect("the original headers and bytes");
    assert_eq!(&original, message.envelope());
}

#[tokio::test]
async fn the_attempt_count_survives_a_restart_mid_retry() {
    let (_temp, db, ledger, consumer) = setup(2).await;
    ledger.mode.store(FAILS, Ordering::SeqCst);
    let message = delivery("acct-0", 0);
    assert!(is_retry(&consumer.handle(&message).await.expect("1st"), 1));
    drop(consumer);
    // Another process, same database: the count goes on; nothing is lost.
    let restarted = self::consumer(&db, &ledger, 2).await;
    assert!(is_retry(&restarted.handle(&message).await.expect("2nd"), 2));
    ledger.mode.store(WORKS, Ordering::SeqCst);
    assert_eq!(
        restarted.handle(&message).await.expect("3rd"),
        Outcome::Handled
    );
    assert_eq!(balance(&db, "acct-0").await, Some(1));
    assert!(parked(&db).await.is_empty());
}

#[tokio::test]
async fn unreadable_messages_are_parked_at_once_and_newer_schemas_wait() {
    let (_temp, db, _ledger, consumer) = setup(5).await;
    let garbage = delivery_with(Deposited::TYPE, 1, b"{not json".to_vec());
    assert_eq!(
        consumer.handle(&garbage).await.expect("poison"),
        Outcome::DeadLettered(Reason::Poison)
    );
    let unknown = delivery_with("Withdrawn", 1, b"{}".to_vec());
    assert_eq!(
        consumer.handle(&unknown).await.expect("poison"),
        Outcome::DeadLettered(Reason::Poison)
    );
    let letters = parked(&db).await;
    assert_eq!(letters.len(), 2);
    assert!(
        letters
            .iter()
            .all(|l| l.attempts == 1 && l.reason == Reason::Poison)
    );
    assert!(
        letters[1].error.contains("Withdrawn"),
        "{}",
        letters[1].error
    );

    // A rolling deploy: the producer is ahead. Retried (not counted), never parked.
    let payload = serde_json::to_vec(&deposited("acct-0", 0)).expect("json");
    let newer = delivery_with(Deposited::TYPE, 2, payload);
    for _ in 0..8 {
        let outcome = consumer.handle(&newer).await.expect("newer");
        assert!(
            matches!(outcome, Outcome::Retry { failures: 0, .. }),
            "{outcome:?}"
        );
    }
    assert_eq!(parked(&db).await.len(), 2);
}

#[tokio::test]
async fn a_panicking_handler_is_a_failed_attempt_not_a_dead_consumer() {
    let (_temp, db, ledger, consumer) = setup(0).await;
    ledger.mode.store(PANICS, Ordering::SeqCst);
    let message = delivery("acct-0", 0);
    assert_eq!(
        consumer.handle(&message).await.expect("handled the panic"),
        Outcome::DeadLettered(Reason::Handler)
    );
    let letters = parked(&db).await;
    assert!(
        letters[0].error.contains("the ledger caught fire"),
        "{}",
        letters[0].error
    );
    ledger.mode.store(WORKS, Ordering::SeqCst);
    assert_eq!(
        consumer.handle(&delivery("acct-1", 0)).await.expect("next"),
        Outcome::Handled
    );
}

#[tokio::test]
async fn a_replayed_dead_letter_is_handled_once_and_not_swallowed_by_the_inbox() {
    let (_temp, db, ledger, consumer) = setup(0).await;
    ledger.mode.store(FAILS, Ordering::SeqCst);
    let message = delivery("acct-0", 0);
    assert_eq!(
        consumer.handle(&message).await.expect("parked"),
        Outcome::DeadLettered(Reason::Handler)
    );
    let id = parked(&db).await[0].id;

    // Still failing: it stays, its count and error updated.
    assert!(matches!(
        consumer.replay(id).await.expect("replay"),
        Replayed::FailedAgain(error) if error == "the ledger is closed"
    ));
    let letters = parked(&db).await;
    assert_eq!((letters.len(), letters[0].attempts), (1, 2));

    // Fixed: handled once, gone from the table; the bus redelivering it is a duplicate.
    ledger.mode.store(WORKS, Ordering::SeqCst);
    assert_eq!(
        consumer.replay(id).await.expect("replay"),
        Replayed::Handled
    );
    assert_eq!(balance(&db, "acct-0").await, Some(1));
    assert!(parked(&db).await.is_empty());
    assert_eq!(
        consumer.replay(id).await.expect("replay"),
        Replayed::NotFound
    );
    assert_eq!(
        consumer.handle(&message).await.expect("redelivered"),
        Outcome::Duplicate
    );
    assert_eq!(balance(&db, "acct-0").await, Some(1));
}
