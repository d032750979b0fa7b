//! The outbox relay on SQLite: two relays at once keep per-aggregate order and publish every
//! row once; a relay killed mid-batch and restarted loses nothing; broker errors back off with
//! the retry policy and lose nothing; shutdown drains; commits wake the relay; pruning and
//! metrics.
#![cfg(feature = "sqlite")]

use std::time::Duration;

use crate::messaging_support::relay_scenarios::{self, fast};
use crate::messaging_support::*;
use allframe_runtime::CancellationToken;
use allframe_runtime::messaging::{OutboxSettings, outbox};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_at_once_publish_everything_once_in_order_per_aggregate() {
    let temp = tempfile::tempdir().expect("temp dir");
    // Two pools on one file: as two service processes sharing the embedded database.
    let db_a = sqlite_db(temp.path(), "ledger.db").await;
    let db_b = sqlite_db(temp.path(), "ledger.db").await;
    relay_scenarios::two_relays_publish_everything_once_in_order(&db_a, &db_b).await;
}

#[tokio::test]
async fn without_retention_published_rows_are_deleted_at_once() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "ledger.db").await;
    relay_scenarios::without_retention_published_rows_are_deleted(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_relay_runs_one_lane_in_order_per_aggregate() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "ledger.db").await;
    let most = relay_scenarios::lanes_publish_in_order(&db).await;
    assert_eq!(most, 1, "one batch at a time: one writer, one lane");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_batch_loses_nothing_when_restarted() {
    const ACCOUNTS: usize = 5;
    const ROUNDS: u64 = 10;
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "ledger.db").await;
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(&db, &bus);
    write_interleaved(&messaging, ACCOUNTS, ROUNDS).await;
    let total = ACCOUNTS * ROUNDS as usize;

    // The bus takes 5 messages of the first batch, then the relay is killed mid-publish.
    let settings = fast(OutboxSettings {
        lease_ms: 600,
        publish_timeout_ms: 300,
        ..OutboxSettings::DEFAULT
    });
    bus.set_fault(Fault::HangAfter(5));
    let relay = messaging.relay(settings);
    let first_id = relay.id().to_owned();
    // The claim happens after this instant, so its lease (600 ms) cannot expire before
    // `spawned + 600 ms`, however slowly the machine runs the rest.
    let spawned = Instant::now();
    let killed = tokio::spawn(relay.run(CancellationToken::new()));
    assert_eq!(bus.wait_for(5, Duration::from_secs(10)).await.len(), 5);
    killed.abort();
    assert!(killed.await.expect_err("aborted").is_cancelled());
    assert_eq!(
        unpublished(&db).await,
        i64::try_from(total).expect("small"),
        "nothing was marked: the batch was never confirmed"
    );

    // A restarted relay (another process: another id) takes over once the dead one's claim
    // expires, and publishes everything, the killed batch included.
    let started = Instant::now();
    let restarted = messaging.relay(settings);
    assert_ne!(restarted.id(), first_id);
    let published = loop {
        let n = restarted.drain().await.expect("drain");
        if n > 0 || started.elapsed() > Duration::from_secs(10) {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(published, total);
    assert!(
        spawned.elapsed() >= Duration::from_millis(600),
        "the dead relay's claim held until it expired"
    );
    let seen = bus.seen().await;
    assert_eq!(
        seen.len(),
        total + 5,
        "at least once: the 5 are published again"
    );
    assert_complete_and_ordered(&decode_all(&seen), ACCOUNTS, ROUNDS);
    assert_eq!(unpublished(&db).await, 0);
}

#[tokio::test]
async fn a_relay_restarted_with_its_id_resumes_its_claims_at_once() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "ledger.db").await;
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(&db, &bus);
    write_interleaved(&messaging, 3, 4).await;
    bus.set_fault(Fault::HangAfter(2));
    let relay = messaging.relay(OutboxSettings::DEFAULT).with_id("ledger-1");
    let killed = tokio::spawn(async move { relay.run_once().await });
    bus.wait_for(2, Duration::from_secs(10)).await;
    killed.abort();
    let _ = killed.await;

    let restarted = messaging.relay(OutboxSettings::DEFAULT).with_id("ledger-1");
    assert_eq!(
        restarted.drain().await.expect("drain"),
        12,
        "no wait for the lease"
    );
    assert_complete_and_ordered(&decode_all(&bus.seen().await), 3, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_errors_back_off_with_the_retry_policy_and_lose_nothing() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "ledger.db").await;
    relay_scenarios::broker_errors_back_off_and_lose_nothing(&db).await;
}

#[tokio::test]
async fn a_partly_confirmed_batch_marks_only_the_confirmed_rows() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "ledger.db").await;
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(&db, &bus);
    deposit(&messaging, "acct-0", 0, 10).await;
    bus.set_fault(Fault::FailAfter(3));
    let relay = messaging.relay(OutboxSettings::DEFAULT);
    assert!(relay.run_once().await.is_err());
    assert_eq!(unpublished(&db).await, 7, "the 3 confirmed rows are marked");
    assert_eq!(relay.drain().await.expect("drain"), 7);
    let seen = bus.seen().await;
    assert_eq!(
        seen.len(),
        10,
        "no duplicates: the confirmed prefix was not republished"
    );
    assert_complete_and_ordered(&decode_all(&seen), 1, 10);
}

#[tokio::test]
async fn shutdown_drains_the_outbox_and_gives_up_cleanly_when_the_bus_is_down() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "ledger.db").await;
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(&db, &bus);
    write_interleaved(&messaging, 3, 100).await;

    // Cancelled before its first round: it still publishes everything before returning.
    let token = CancellationToken::new();
    token.cancel();
    messaging
        .relay(OutboxSettings::with_polling_ms(60_000))
        .run(token.clone())
        .await;
    assert_eq!(bus.seen().await.len(), 300);
    assert_eq!(unpublished(&db).await, 0);

    // With the bus down, the drain stops at the first failure and the rows stay.
    write_interleaved(&messaging, 3, 2).await;
    bus.set_fault(Fault::FailCalls(1000));
    let started = Instant::now();
    messaging.relay(OutboxSettings::DEFAULT).run(token).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(unpublished(&db).await, 6, "kept for the next start");
}

#[tokio::test]
async fn a_commit_wakes_an_idle_relay_at_once() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "ledger.db").await;
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(&db, &bus);
    let token = CancellationToken::new();
    let relay = tokio::spawn(
        messaging
            .relay(OutboxSettings::with_polling_ms(60_000))
            .run(token.clone()),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let committed = Instant::now();
    deposit(&messaging, "acct-0", 0, 1).await;
    assert_eq!(bus.wait_for(1, Duration::from_secs(5)).await.len(), 1);
    assert!(
        committed.elapsed() < Duration::from_secs(2),
        "woken by the commit, not the 60 s poll"
    );
    token.cancel();
    relay.await.expect("relay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_commits_is_published_in_a_few_rounds_not_one_per_commit() {
    const COMMITS: u64 = 20;
    let Lingering {
        _temp,
        messaging,
        bus,
        token,
        relay,
        ..
    } = Lingering::start(400).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // One commit every 5 ms: without the linger, each one wakes a round of its own.
    for n in 0..COMMITS {
        deposit(&messaging, "acct-0", n, 1).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen = bus.wait_for(COMMITS as usize, Duration::from_secs(5)).await;
    assert_complete_and_ordered(&decode_all(&seen), 1, COMMITS);
    let rounds = bus.calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        rounds <= 4,
        "{COMMITS} commits took {rounds} rounds: rows committed during the linger share a round"
    );
    token.cancel();
    relay.await.expect("relay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_commits_stream_in_a_rounds_marks_are_written_by_the_next_claim() {
    let Lingering {
        _temp,
        db,
        messaging,
        bus,
        token,
        relay,
    } = Lingering::start(3_000).await;
    deposit(&messaging, "acct-0", 0, 3).await;
    bus.wait_for(3, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        unpublished(&db).await,
        3,
        "published, and left for the next round's claim to mark (one write per round)"
    );
    let marked = Instant::now() + Duration::from_secs(10);
    while unpublished(&db).await > 0 && Instant::now() < marked {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(unpublished(&db).await, 0, "the next claim marked them");

    // Stopped while lingering, the relay writes the marks it was carrying.
    deposit(&messaging, "acct-0", 3, 2).await;
    bus.wait_for(5, Duration::from_secs(5)).await;
    token.cancel();
    relay.await.expect("relay");
    assert_eq!(unpublished(&db).await, 0);
    let seen = bus.seen().await;
    assert_eq!(seen.len(), 5, "nothing published twice");
    assert_complete_and_ordered(&decode_all(&seen), 1, 5);
}

#[tokio::test]
async fn published_rows_are_pruned_on_schedule_and_pending_ones_never() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "ledger.db").await;
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(&db, &bus);
    deposit(&messaging, "acct-0", 0, 5).await;
    // Kept 1 s (with no retention they would be deleted as they are published).
    let settings = fast(OutboxSettings {
        retention_secs: 1,
        prune_interval_secs: 1,
        ..OutboxSettings::DEFAULT
    });
    let token = CancellationToken::new();
    let relay = tokio::spawn(messaging.relay(settings).run(token.clone()));
    bus.wait_for(5, Duration::from_secs(5)).await;
    assert_eq!(outbox_rows(&db).await, 5, "kept for the retention");
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    token.cancel();
    relay.await.expect("relay");
    assert_eq!(outbox_rows(&db).await, 0, "published rows pruned");
    assert_eq!(messaging.metrics().pruned_total, 5);

    // Pending rows are never pruned, however old.
    deposit(&messaging, "acct-0", 5, 2).await;
    assert_eq!(outbox::prune(&db, Duration::ZERO).await.expect("prune"), 0);
    assert_eq!(unpublished(&db).await, 2);
}

/// A relay running on a fresh SQLite file with a 60 s poll and the given linger.
struct Lingering {
    _temp: tempfile::TempDir,
    db: allframe_runtime::Database,
    messaging: allframe_runtime::messaging::Messaging,
    bus: RecordingBus,
    token: CancellationToken,
    relay: tokio::task::JoinHandle<()>,
}

impl Lingering {
    async fn start(linger_ms: u64) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let db = sqlite_db(temp.path(), "ledger.db").await;
        let bus = RecordingBus::new();
        let messaging = outbox_messaging(&db, &bus);
        let token = CancellationToken::new();
        let settings = OutboxSettings {
            polling_ms: 60_000,
            linger_ms,
            ..OutboxSettings::DEFAULT
        };
        let relay = tokio::spawn(messaging.relay(settings).run(token.clone()));
        Self {
            _temp: temp,
            db,
            messaging,
            bus,
            token,
            relay,
        }
    }
}
