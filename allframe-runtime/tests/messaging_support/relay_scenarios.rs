//! Outbox relay scenarios that every database backend runs: the SQLite tests (two pools on
//! one file, as two processes) and the PostgreSQL real-services tests (two pools on a scratch
//! schema) call the same functions, so both engines meet one set of expectations.

use std::sync::atomic::Ordering;
use std::time::Duration;

use allframe_runtime::messaging::{OutboxSettings, RetrySettings};
use allframe_runtime::{CancellationToken, Database, sqlx};

use super::*;

/// Fast polling, so the scenarios take milliseconds per step.
pub fn fast(settings: OutboxSettings) -> OutboxSettings {
    OutboxSettings {
        polling_ms: 20,
        backlog_interval_ms: 50,
        ..settings
    }
}

/// Two relays on two pools of one database, while both pools write: every row is published
/// exactly once, each aggregate's events in order, and both relays do work.
pub async fn two_relays_publish_everything_once_in_order(db_a: &Database, db_b: &Database) {
    const ACCOUNTS: usize = 20;
    const ROUNDS: u64 = 25;
    let bus = RecordingBus::new();
    // A broker round trip per batch: neither relay can publish everything before the other's
    // first claim, even when the scheduler favours one of them on a loaded machine.
    bus.set_round_trip(Duration::from_millis(5));
    let messaging_a = outbox_messaging(db_a, &bus);
    let messaging_b = outbox_messaging(db_b, &bus);
    let settings = fast(OutboxSettings {
        batch_size: 16,
        partitions_per_claim: 2,
        ..OutboxSettings::DEFAULT
    });
    let token = CancellationToken::new();
    let relay_a = tokio::spawn(messaging_a.relay(settings).run(token.clone()));
    let relay_b = tokio::spawn(messaging_b.relay(settings).run(token.clone()));

    // Written while both relays run, from both "processes".
    let writer_a = {
        let messaging = messaging_a.clone();
        tokio::spawn(async move { write_interleaved(&messaging, ACCOUNTS / 2, ROUNDS).await })
    };
    for n in 0..ROUNDS {
        for account in ACCOUNTS / 2..ACCOUNTS {
            deposit(&messaging_b, &format!("acct-{account}"), n, 1).await;
        }
    }
    writer_a.await.expect("writer");

    let total = ACCOUNTS * ROUNDS as usize;
    let seen = bus.wait_for(total, Duration::from_secs(60)).await;
    token.cancel();
    relay_a.await.expect("relay a");
    relay_b.await.expect("relay b");

    assert_complete_and_ordered(&decode_all(&seen), ACCOUNTS, ROUNDS);
    assert_eq!(
        bus.seen().await.len(),
        total,
        "without crashes, exclusive claims publish every row exactly once"
    );
    let (a, b) = (
        messaging_a.metrics().published_total,
        messaging_b.metrics().published_total,
    );
    assert_eq!(a + b, total as u64);
    assert!(a > 0 && b > 0, "both relays did work: {a} + {b}");
    assert_eq!(unpublished(db_a).await, 0);
}

/// One relay's lanes, with a broker round trip per batch: every row is published exactly once,
/// each aggregate's events in order. Returns the most batches that were in flight at once
/// (on PostgreSQL several lanes overlap; SQLite runs one).
pub async fn lanes_publish_in_order(db: &Database) -> usize {
    const ACCOUNTS: usize = 40;
    const ROUNDS: u64 = 10;
    let bus = RecordingBus::new();
    bus.set_round_trip(Duration::from_millis(20));
    let messaging = outbox_messaging(db, &bus);
    write_interleaved(&messaging, ACCOUNTS, ROUNDS).await;
    let settings = fast(OutboxSettings {
        batch_size: 16,
        ..OutboxSettings::DEFAULT
    });
    assert!(settings.lanes > 1, "the default runs several lanes");
    let token = CancellationToken::new();
    let relay = tokio::spawn(messaging.relay(settings).run(token.clone()));
    let total = ACCOUNTS * ROUNDS as usize;
    let seen = bus.wait_for(total, Duration::from_secs(60)).await;
    token.cancel();
    relay.await.expect("relay");

    assert_complete_and_ordered(&decode_all(&seen), ACCOUNTS, ROUNDS);
    assert_eq!(bus.seen().await.len(), total, "every row exactly once");
    assert_eq!(unpublished(db).await, 0);
    bus.most_in_flight.load(Ordering::SeqCst)
}

/// With no retention, each published row is deleted as soon as the bus confirmed it: the
/// outbox is empty after a drain, and everything was published once, in order.
pub async fn without_retention_published_rows_are_deleted(db: &Database) {
    const ACCOUNTS: usize = 6;
    const ROUNDS: u64 = 5;
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(db, &bus);
    write_interleaved(&messaging, ACCOUNTS, ROUNDS).await;
    let settings = OutboxSettings {
        retention_secs: 0,
        batch_size: 8,
        ..OutboxSettings::DEFAULT
    };
    let published = messaging.relay(settings).drain().await.expect("drain");
    assert_eq!(published, ACCOUNTS * ROUNDS as usize);
    assert_complete_and_ordered(&decode_all(&bus.seen().await), ACCOUNTS, ROUNDS);
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM allframe_outbox")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(left, 0, "published rows are gone at once");
}

/// A broker that refuses four calls: the relay backs off per the retry policy (the gaps
/// between attempts at least as long as it says), the backlog gauges show the lag meanwhile,
/// and in the end nothing is lost, skipped or doubled, in order, with each attempt recorded.
pub async fn broker_errors_back_off_and_lose_nothing(db: &Database) {
    const ACCOUNTS: usize = 4;
    const ROUNDS: u64 = 10;
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(db, &bus);
    write_interleaved(&messaging, ACCOUNTS, ROUNDS).await;
    let total = ACCOUNTS * ROUNDS as usize;

    bus.set_fault(Fault::FailCalls(4));
    let retry = RetrySettings {
        max_attempts: 3,
        initial_interval_ms: 50,
        max_interval_ms: 400,
        multiplier: 2.0,
    };
    let settings = fast(OutboxSettings {
        batch_size: 8,
        retry,
        // One lane: the failures and the gaps between them are that lane's backoff.
        lanes: 1,
        ..OutboxSettings::DEFAULT
    });
    let token = CancellationToken::new();
    let relay = tokio::spawn(messaging.relay(settings).run(token.clone()));

    // While the broker refuses (four calls, at least 280 ms of backoff between the first and
    // the first success), the backlog gauges show the lag: wait for a failure and for the
    // gauges' first refresh (a new connection, slow on a loaded machine).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let now = messaging.metrics();
        if now.publish_failures_total > 0 && now.pending > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let during = messaging.metrics();
    assert!(during.publish_failures_total >= 1, "{during:?}");
    assert_eq!(during.pending, total as u64, "{during:?}");
    assert!(during.oldest_pending_age_ms > 0, "{during:?}");

    let seen = bus.wait_for(total, Duration::from_secs(20)).await;
    token.cancel();
    relay.await.expect("relay");

    assert_eq!(bus.failures.load(Ordering::SeqCst), 4);
    let times = bus.failure_times.lock().expect("lock").clone();
    for (i, pair) in times.windows(2).enumerate() {
        let expected = retry
            .delay(u32::try_from(i + 1).expect("small"))
            .mul_f64(0.8);
        let gap = pair[1] - pair[0];
        assert!(
            gap >= expected,
            "retry {i}: waited {gap:?}, policy says ≥ {expected:?}"
        );
    }
    assert_eq!(
        seen.len(),
        total,
        "nothing lost, nothing skipped, nothing doubled"
    );
    assert_complete_and_ordered(&decode_all(&seen), ACCOUNTS, ROUNDS);
    let after = messaging.metrics();
    assert_eq!(after.publish_failures_total, 4);
    assert_eq!(after.consecutive_failures, 0);
    assert_eq!(after.published_total, total as u64);

    let attempts: i64 = sqlx::query_scalar("SELECT MAX(attempts) FROM allframe_outbox")
        .fetch_one(db.pool())
        .await
        .expect("attempts");
    assert_eq!(
        attempts, 4,
        "the row at the head of the batch records each attempt"
    );
}
