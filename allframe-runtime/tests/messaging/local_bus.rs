//! The local bus: a durable SQLite log shared through one file. Round trip with headers
//! intact, consumer groups with per-group offsets across two pools on one file (as two
//! processes), one active member per group and partition with take-over, members sharing a
//! topic's partitions, at-least-once redelivery, nack, `Latest` start, deduplication, a bus
//! file from before partitions, per-instance groups forgotten once their process died, and the
//! outbox relay feeding it.
#![cfg(feature = "sqlite")]

use std::path::Path;
use std::time::Duration;

use crate::messaging_support::*;
use allframe_runtime::CancellationToken;
use allframe_runtime::messaging::{
    BusError, BusSubscription, Delivery, EventBus, LocalBus, LocalBusOptions, Messaging,
    OutboundMessage, OutboxSettings, PublishPattern, StartFrom, SubscribeOptions, bus_partition,
    consumer_group, is_per_instance_group,
};

fn options() -> LocalBusOptions {
    LocalBusOptions {
        poll_interval: Duration::from_millis(20),
        lease: Duration::from_millis(400),
        ..LocalBusOptions::default()
    }
}

async fn open(path: &Path) -> LocalBus {
    LocalBus::open(path, options()).await.expect("bus opens")
}

async fn next_within(sub: &mut impl BusSubscription, ms: u64) -> Option<Delivery> {
    match tokio::time::timeout(Duration::from_millis(ms), sub.next()).await {
        Ok(delivery) => Some(delivery.expect("delivery")),
        Err(_) => None,
    }
}

/// The local bus in a temporary directory, for the conformance suite.
struct Local {
    _dir: tempfile::TempDir,
    bus: LocalBus,
    arch: String,
}

impl Local {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let bus = open(&dir.path().join("bus.db")).await;
        Self {
            _dir: dir,
            bus,
            arch: crate::bus_support::architecture(),
        }
    }
}

impl crate::bus_support::conformance::Fixture for Local {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn bus(&self) -> EventBus {
        EventBus::Local(self.bus.clone())
    }

    fn topic(&self, event: &str, _partitions: u32) -> String {
        format!("{}.order-service.{event}", self.arch)
    }

    fn group(&self, name: &str) -> String {
        format!("{}.{name}", self.arch)
    }

    async fn per_instance_leftovers(
        &self,
        _bus: &EventBus,
        group: &str,
        _topic: &str,
    ) -> Option<Vec<String>> {
        Some(per_instance_groups(&self.bus, group).await)
    }
}

/// The per-instance groups of `group` that have rows on `bus`.
async fn per_instance_groups(bus: &LocalBus, group: &str) -> Vec<String> {
    let prefix = format!("{group}.");
    bus.groups()
        .await
        .expect("groups")
        .into_iter()
        .filter(|name| name.starts_with(&prefix) && is_per_instance_group(name))
        .collect()
}

crate::conformance_tests!(fixture = Local::new().await);

fn n_of(delivery: &Delivery) -> u64 {
    delivery.decode::<Deposited>().expect("decodes").n
}

#[tokio::test]
async fn round_trip_keeps_the_envelope_and_acks_commit_the_group_offset() {
    let temp = tempfile::tempdir().expect("temp dir");
    let bus = open(&temp.path().join("bus.db")).await;
    let sent: Vec<OutboundMessage> = (0..3).map(|n| message("alice", n)).collect();
    bus.publish(&sent).await.expect("publish");
    assert_eq!(bus.len(TOPIC).await.expect("len"), 3);

    let mut sub = bus
        .subscribe(SubscribeOptions::new("bank.audit", [TOPIC]))
        .await
        .expect("subscribe");
    for expected in &sent {
        let delivery = next_within(&mut sub, 2_000).await.expect("delivered");
        assert_eq!(delivery.topic(), TOPIC);
        assert_eq!(
            delivery.envelope(),
            &expected.envelope,
            "every field survives"
        );
        sub.ack(&delivery).await.expect("ack");
    }
    let committed = bus
        .committed_offset("bank.audit", TOPIC, bus_partition(&sent[0].envelope))
        .await
        .expect("offset")
        .expect("group known");
    assert_eq!(
        committed, 4,
        "the next message the group will read is seq 4"
    );
    assert!(next_within(&mut sub, 100).await.is_none(), "nothing more");
    sub.close().await.expect("close");
}

#[tokio::test]
async fn consumer_groups_on_two_pools_of_one_file_each_see_everything() {
    let temp = tempfile::tempdir().expect("temp dir");
    let path = temp.path().join("bus.db");
    // Two pools on one file, as a producer process and a consumer process.
    let producer = open(&path).await;
    let consumer = open(&path).await;
    let mut audit = consumer
        .subscribe(SubscribeOptions::new("bank.audit", [TOPIC]))
        .await
        .expect("subscribe");
    let mut mailer = consumer
        .subscribe(SubscribeOptions::new("bank.mailer", [TOPIC]))
        .await
        .expect("subscribe");

    for n in 0..5 {
        producer
            .publish(&[message("bob", n)])
            .await
            .expect("publish");
    }
    for sub in [&mut audit, &mut mailer] {
        let mut got = Vec::new();
        while let Some(delivery) = next_within(sub, 1_000).await {
            got.push(n_of(&delivery));
            sub.ack(&delivery).await.expect("ack");
            if got.len() == 5 {
                break;
            }
        }
        assert_eq!(
            got,
            vec![0, 1, 2, 3, 4],
            "each group sees every message in order"
        );
    }
    let partition = bus_partition(&message("bob", 0).envelope);
    assert_eq!(
        producer
            .committed_offset("bank.audit", TOPIC, partition)
            .await
            .expect("offset"),
        producer
            .committed_offset("bank.mailer", TOPIC, partition)
            .await
            .expect("offset"),
    );
}

#[tokio::test]
async fn one_member_per_group_owns_a_partition_and_another_takes_over_on_close() {
    let temp = tempfile::tempdir().expect("temp dir");
    let path = temp.path().join("bus.db");
    let bus_a = open(&path).await;
    let bus_b = open(&path).await;
    let group = consumer_group("bank", "notification-service");
    bus_a
        .publish(&(0..10).map(|n| message("carol", n)).collect::<Vec<_>>())
        .await
        .expect("publish");

    let mut first = bus_a
        .subscribe(SubscribeOptions::new(group.clone(), [TOPIC]))
        .await
        .expect("subscribe");
    let mut second = bus_b
        .subscribe(SubscribeOptions::new(group.clone(), [TOPIC]))
        .await
        .expect("subscribe");
    for expected in 0..4 {
        let delivery = next_within(&mut first, 1_000).await.expect("owner reads");
        assert_eq!(n_of(&delivery), expected);
        first.ack(&delivery).await.expect("ack");
    }
    assert_eq!(first.owned_topics(), vec![TOPIC]);
    assert!(
        next_within(&mut second, 200).await.is_none(),
        "the other member stands by while the owner holds the topic"
    );

    // The owner reads #4 but leaves without acking it: the next owner starts there.
    let unacked = next_within(&mut first, 1_000).await.expect("owner reads");
    assert_eq!(n_of(&unacked), 4);
    first.close().await.expect("close");
    let mut got = Vec::new();
    while got.len() < 6 {
        let delivery = next_within(&mut second, 2_000).await.expect("take-over");
        got.push(n_of(&delivery));
        second.ack(&delivery).await.expect("ack");
    }
    assert_eq!(
        got,
        vec![4, 5, 6, 7, 8, 9],
        "at least once: #4 is redelivered"
    );
}

#[tokio::test]
async fn a_stalled_member_is_replaced_when_its_lease_expires() {
    let temp = tempfile::tempdir().expect("temp dir");
    let path = temp.path().join("bus.db");
    let bus = open(&path).await;
    bus.publish(&[message("dave", 0), message("dave", 1)])
        .await
        .expect("publish");
    let mut stalled = bus
        .subscribe(SubscribeOptions::new("bank.g", [TOPIC]))
        .await
        .expect("subscribe");
    let read = next_within(&mut stalled, 1_000).await.expect("read");
    assert_eq!(n_of(&read), 0);
    // The member now hangs (no ack, no renewal) as a crashed or frozen process would.

    let other = open(&path).await;
    let mut survivor = other
        .subscribe(SubscribeOptions::new("bank.g", [TOPIC]))
        .await
        .expect("subscribe");
    let started = std::time::Instant::now();
    let redelivered = next_within(&mut survivor, 3_000)
        .await
        .expect("after the lease");
    assert_eq!(n_of(&redelivered), 0, "the unacked message comes again");
    assert!(started.elapsed() >= Duration::from_millis(200));
    survivor.ack(&redelivered).await.expect("ack");

    // The stalled member wakes up: its ack is refused, it no longer owns the topic.
    let error = stalled.ack(&read).await.expect_err("not the owner");
    assert!(matches!(error, BusError::LeaseLost { .. }), "{error}");
    assert!(
        next_within(&mut stalled, 150).await.is_none(),
        "it stands by while the survivor holds the topic"
    );
    let next = next_within(&mut survivor, 1_000).await.expect("next");
    assert_eq!(n_of(&next), 1);
}

#[tokio::test]
async fn nack_redelivers_and_latest_skips_history_and_ids_are_stored_once() {
    let temp = tempfile::tempdir().expect("temp dir");
    let bus = open(&temp.path().join("bus.db")).await;
    let twice = message("erin", 0);
    bus.publish(&[twice.clone(), message("erin", 1)])
        .await
        .expect("publish");
    bus.publish(std::slice::from_ref(&twice))
        .await
        .expect("republish");
    assert_eq!(
        bus.len(TOPIC).await.expect("len"),
        2,
        "a republished id is stored once"
    );

    let mut sub = bus
        .subscribe(SubscribeOptions::new("bank.retrying", [TOPIC]))
        .await
        .expect("subscribe");
    let first = next_within(&mut sub, 1_000).await.expect("first");
    sub.nack(&first).await.expect("nack");
    let again = next_within(&mut sub, 1_000).await.expect("again");
    assert_eq!(again, first, "nacked: delivered again");
    sub.ack(&again).await.expect("ack");
    assert_eq!(n_of(&next_within(&mut sub, 1_000).await.expect("next")), 1);

    let mut late = bus
        .subscribe(SubscribeOptions::new("bank.late", [TOPIC]).start(StartFrom::Latest))
        .await
        .expect("subscribe");
    assert!(
        next_within(&mut late, 150).await.is_none(),
        "history skipped"
    );
    bus.publish(&[message("erin", 2)]).await.expect("publish");
    assert_eq!(n_of(&next_within(&mut late, 1_000).await.expect("new")), 2);
}

#[tokio::test]
async fn latest_starts_where_the_topic_was_at_subscribe_not_at_the_first_read() {
    let temp = tempfile::tempdir().expect("temp dir");
    let bus = open(&temp.path().join("bus.db")).await;
    bus.publish(&[message("gina", 0)]).await.expect("history");
    let mut sub = bus
        .subscribe(SubscribeOptions::new("bank.fresh", [TOPIC]).start(StartFrom::Latest))
        .await
        .expect("subscribe");
    // Published after `subscribe` returned, before the member first reads.
    bus.publish(&[message("gina", 1)]).await.expect("publish");
    let first = next_within(&mut sub, 1_000)
        .await
        .expect("the event after subscribe");
    assert_eq!(n_of(&first), 1);
}

#[tokio::test]
async fn a_batch_larger_than_one_insert_is_stored_whole_and_in_order() {
    const BATCH: u64 = 600;
    let temp = tempfile::tempdir().expect("temp dir");
    let bus = open(&temp.path().join("bus.db")).await;
    let mut batch: Vec<OutboundMessage> = (0..BATCH).map(|n| message("frank", n)).collect();
    // The relay may hand the bus a row twice; the copy must not shift what follows it.
    batch.insert(300, batch[299].clone());
    bus.publish(&batch).await.expect("publish");
    assert_eq!(bus.len(TOPIC).await.expect("len"), BATCH);

    let mut sub = bus
        .subscribe(SubscribeOptions::new("bank.bulk", [TOPIC]))
        .await
        .expect("subscribe");
    for n in 0..BATCH {
        let delivery = next_within(&mut sub, 1_000).await.expect("delivery");
        assert_eq!(n_of(&delivery), n, "publish order kept across statements");
        sub.ack(&delivery).await.expect("ack");
    }
}

#[tokio::test]
async fn event_bus_urls_pick_the_local_file() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let bus = EventBus::connect(None, &data_dir).await.expect("default");
    assert_eq!(bus.name(), "local");
    assert!(
        data_dir.join("bus.db").is_file(),
        "<data dir>/bus.db is created"
    );
    EventBus::connect(Some("local:"), &data_dir)
        .await
        .expect("explicit default");
    let elsewhere = temp.path().join("elsewhere.db");
    let url = format!("sqlite://{}", elsewhere.display());
    EventBus::connect(Some(&url), &data_dir)
        .await
        .expect("sqlite URL");
    assert!(elsewhere.is_file());
    let error = EventBus::connect(Some("sqlite::memory:"), &data_dir)
        .await
        .expect_err("memory");
    assert!(matches!(error, BusError::InvalidUrl { .. }), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_relay_feeds_the_local_bus_end_to_end() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "ledger.db").await;
    let bus_path = temp.path().join("bus.db");
    let producer_bus = EventBus::Local(open(&bus_path).await);
    let messaging = Messaging::new(db.clone(), producer_bus, config(PublishPattern::Outbox));
    let token = CancellationToken::new();
    let relay = tokio::spawn(
        messaging
            .relay(OutboxSettings::with_polling_ms(20))
            .run(token.clone()),
    );
    write_interleaved(&messaging, 3, 20).await;

    // A consumer in "another process".
    let consumer = open(&bus_path).await;
    let mut sub = consumer
        .subscribe(SubscribeOptions::new("bank.reports", [TOPIC]))
        .await
        .expect("subscribe");
    let mut seen = Vec::new();
    while seen.len() < 60 {
        let delivery = next_within(&mut sub, 5_000).await.expect("delivered");
        seen.push(delivery.decode::<Deposited>().expect("decodes"));
        sub.ack(&delivery).await.expect("ack");
    }
    assert_complete_and_ordered(&seen, 3, 20);
    token.cancel();
    relay.await.expect("relay");
    assert_eq!(unpublished(&db).await, 0);
}

/// Aggregates whose events land in two different partitions.
fn two_partitions() -> (String, String) {
    let first = "acct-0".to_owned();
    let partition = bus_partition(&message(&first, 0).envelope);
    let second = (1..)
        .map(|n| format!("acct-{n}"))
        .find(|a| bus_partition(&message(a, 0).envelope) != partition)
        .expect("another partition");
    (first, second)
}

#[tokio::test]
async fn members_on_different_partitions_share_a_topic_at_once() {
    let temp = tempfile::tempdir().expect("temp dir");
    let bus = open(&temp.path().join("bus.db")).await;
    let (a, b) = two_partitions();
    let (pa, pb) = (
        bus_partition(&message(&a, 0).envelope),
        bus_partition(&message(&b, 0).envelope),
    );
    let batch: Vec<OutboundMessage> = (0..3)
        .flat_map(|n| [message(&a, n), message(&b, n)])
        .collect();
    bus.publish(&batch).await.expect("publish");

    let group = "bank.shared";
    let mut on_a = bus
        .subscribe(SubscribeOptions::new(group, [TOPIC]).partitions([pa]))
        .await
        .expect("subscribe");
    let mut on_b = bus
        .subscribe(SubscribeOptions::new(group, [TOPIC]).partitions([pb]))
        .await
        .expect("subscribe");
    for (sub, account, partition) in [(&mut on_a, &a, pa), (&mut on_b, &b, pb)] {
        for n in 0..3 {
            let delivery = next_within(sub, 1_000)
                .await
                .expect("its partition's events");
            let event: Deposited = delivery.decode().expect("decodes");
            assert_eq!((&event.account, event.n), (account, n));
            assert_eq!(delivery.partition(), partition);
            sub.ack(&delivery).await.expect("ack");
        }
        assert!(
            next_within(sub, 100).await.is_none(),
            "nothing of the other partition"
        );
    }
    assert_eq!(on_a.owned_partitions(TOPIC), [pa]);
    assert_eq!(bus.lag(group, &[TOPIC.to_owned()]).await.expect("lag"), 0);
}

#[tokio::test]
async fn a_bus_file_from_before_partitions_gets_each_message_its_partition() {
    let temp = tempfile::tempdir().expect("temp dir");
    let path = temp.path().join("bus.db");
    let (a, b) = two_partitions();
    let old = [message(&a, 0), message(&b, 0), message(&a, 1)];
    {
        // The schema of the earlier version, with three messages and a group's offset.
        let pool = allframe_runtime::sqlx::SqlitePool::connect(&format!(
            "sqlite://{}?mode=rwc",
            path.display()
        ))
        .await
        .expect("file");
        for statement in [
            "CREATE TABLE bus_messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,
                message_id TEXT NOT NULL, headers TEXT NOT NULL, payload BLOB NOT NULL,
                published_at INTEGER NOT NULL, UNIQUE (topic, message_id))",
            "CREATE TABLE bus_offsets (group_name TEXT NOT NULL, topic TEXT NOT NULL,
                next_seq INTEGER NOT NULL, owner TEXT, lease_until INTEGER NOT NULL,
                epoch INTEGER NOT NULL, PRIMARY KEY (group_name, topic))",
        ] {
            allframe_runtime::sqlx::query(statement)
                .execute(&pool)
                .await
                .expect("old schema");
        }
        allframe_runtime::sqlx::query(
            "INSERT INTO bus_offsets VALUES ('bank.old', $1, 2, NULL, 0, 1)",
        )
        .bind(TOPIC)
        .execute(&pool)
        .await
        .expect("old offset");
        for message in &old {
            allframe_runtime::sqlx::query(
                "INSERT INTO bus_messages (topic, message_id, headers, payload, published_at)
                 VALUES ($1, $2, $3, $4, 0)",
            )
            .bind(&message.topic)
            .bind(message.envelope.id.hyphenated().to_string())
            .bind(message.envelope.headers_json())
            .bind(&message.envelope.payload)
            .execute(&pool)
            .await
            .expect("old message");
        }
        pool.close().await;
    }

    let bus = open(&path).await;
    let pb = bus_partition(&old[1].envelope);
    // The old group had handled seq 1 (`a` #0): it goes on from its old offset in every
    // partition, so `b` #0 (seq 2) and `a` #1 (seq 3) come, each in its own partition.
    let mut sub = bus
        .subscribe(SubscribeOptions::new("bank.old", [TOPIC]))
        .await
        .expect("subscribe");
    let mut got = Vec::new();
    for _ in 0..2 {
        let delivery = next_within(&mut sub, 1_000).await.expect("delivery");
        let event: Deposited = delivery.decode().expect("decodes");
        got.push((event.account, event.n, delivery.partition()));
        sub.ack(&delivery).await.expect("ack");
    }
    assert_eq!(
        got,
        [(b, 0, pb), (a.clone(), 1, bus_partition(&old[0].envelope))]
    );
    assert!(next_within(&mut sub, 100).await.is_none());
}

#[tokio::test]
async fn a_per_instance_group_whose_process_died_is_forgotten_once_its_leases_lapsed() {
    let temp = tempfile::tempdir().expect("temp dir");
    let bus = open(&temp.path().join("bus.db")).await;
    bus.publish(&[message("alice", 0)]).await.expect("publish");
    let mut ordinary = bus
        .subscribe(SubscribeOptions::new("bank.cache", [TOPIC]))
        .await
        .expect("subscribe");
    let delivery = next_within(&mut ordinary, 2_000).await.expect("delivered");
    ordinary.ack(&delivery).await.expect("ack");
    ordinary.close().await.expect("close");
    let mut instance = bus
        .subscribe(SubscribeOptions::new("bank.cache", [TOPIC]).per_instance())
        .await
        .expect("subscribe per instance");
    assert!(
        next_within(&mut instance, 200).await.is_none(),
        "nothing from before it subscribed"
    );
    let groups = per_instance_groups(&bus, "bank.cache").await;
    assert_eq!(groups.len(), 1, "the instance took its leases: {groups:?}");
    // The process dies: the subscription is never closed.
    drop(instance);

    let forgotten = bus
        .forget_dead_per_instance_groups(Duration::from_secs(3600))
        .await
        .expect("forget");
    assert_eq!(forgotten, 0, "its leases lapsed only now");
    tokio::time::sleep(options().lease + Duration::from_millis(100)).await;
    let forgotten = bus
        .forget_dead_per_instance_groups(Duration::ZERO)
        .await
        .expect("forget");
    assert_eq!(forgotten, 1);
    assert_eq!(
        bus.groups().await.expect("groups"),
        ["bank.cache"],
        "the ordinary group, its leases lapsed too, keeps its offsets"
    );
    assert_eq!(
        bus.committed_offset("bank.cache", TOPIC, bus_partition(delivery.envelope()))
            .await
            .expect("offset"),
        Some(2)
    );
}
