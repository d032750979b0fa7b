//! Consumer scenarios of the conformance suite: the consumer runtime's dispatch loop on each
//! bus — aggregates handled in parallel and each in order, poison and exhausted messages parked
//! while the rest flow on, replay after a fix handling each once, and a shutdown mid-retry that
//! loses nothing. Every scenario ends by checking that the group acknowledged all it handled.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use allframe_runtime::channel::Notifications;
use allframe_runtime::consumer::dispatch::{self, DispatchSettings, Membership};
use allframe_runtime::consumer::{
    Consumer, ConsumerMetrics, HandleError, Handlers, Reason, Replayed, RetryPolicy, store,
};
use allframe_runtime::database::DatabaseTarget;
use allframe_runtime::messaging::{
    BusSubscription as _, Delivery, EventBus, OutboundMessage, RetrySettings, SubscribeOptions,
    UnitOfWork,
};
use allframe_runtime::{CancellationToken, Database, sqlx};
use futures_util::future::BoxFuture;

use super::conformance::Fixture;
use super::{message, n_of, next_within, subscribe};

/// The aggregate whose events fail while [`Warehouse::broken`] is set.
const BROKEN: &str = "o-broken";

/// Records each `OrderPlaced` in the `handled` table (unique per event, so a second
/// application fails), after a pause; tracks whether two of one aggregate ever overlapped.
#[derive(Clone, Default)]
struct Warehouse(Arc<State>, Member);

/// Which member of a group a [`Warehouse`] handle records for (the `member` column).
#[derive(Clone, Copy, Default)]
struct Member(i64);

#[derive(Default)]
struct State {
    pause: Duration,
    broken: AtomicBool,
    attempts: AtomicUsize,
    order: Mutex<Vec<(String, u32)>>,
    busy: Mutex<HashSet<String>>,
    overlapped: AtomicBool,
}

impl Warehouse {
    fn pausing(pause: Duration) -> Self {
        Self(
            Arc::new(State {
                pause,
                ..State::default()
            }),
            Member(0),
        )
    }

    /// The same warehouse, recording for `member`.
    fn for_member(&self, member: i64) -> Self {
        Self(Arc::clone(&self.0), Member(member))
    }

    fn enter(&self, aggregate: &str) {
        if !self
            .0
            .busy
            .lock()
            .expect("busy")
            .insert(aggregate.to_owned())
        {
            self.0.overlapped.store(true, Ordering::SeqCst);
        }
    }

    fn leave(&self, aggregate: &str) {
        self.0.busy.lock().expect("busy").remove(aggregate);
    }

    async fn record(&self, uow: &mut UnitOfWork, delivery: &Delivery) -> Result<(), HandleError> {
        tokio::time::sleep(self.0.pause).await;
        let aggregate = &delivery.envelope().aggregate_id;
        if aggregate == BROKEN && self.0.broken.load(Ordering::SeqCst) {
            return Err(HandleError::failed("the warehouse is closed"));
        }
        let n = n_of(delivery);
        sqlx::query("INSERT INTO handled (aggregate, n, member) VALUES ($1, $2, $3)")
            .bind(aggregate)
            .bind(i64::from(n))
            .bind(self.1.0)
            .execute(uow.conn())
            .await
            .map_err(HandleError::failed)?;
        self.0
            .order
            .lock()
            .expect("order")
            .push((aggregate.clone(), n));
        Ok(())
    }
}

impl Handlers for Warehouse {
    fn handle<'a>(
        &'a self,
        uow: &'a mut UnitOfWork,
        delivery: &'a Delivery,
        _notify: &'a mut Notifications,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            let envelope = delivery.envelope();
            if envelope.event_type != "OrderPlaced" {
                return Err(HandleError::UnknownEvent(envelope.event_type.clone()));
            }
            self.0.attempts.fetch_add(1, Ordering::SeqCst);
            self.enter(&envelope.aggregate_id);
            let recorded = self.record(uow, delivery).await;
            self.leave(&envelope.aggregate_id);
            recorded
        })
    }
}

/// The consumer's own database: a SQLite file with the `handled` table and the consumer's.
async fn database(dir: &tempfile::TempDir) -> Database {
    let path = dir.path().join("warehouse.db");
    let target = DatabaseTarget::parse(&format!("sqlite://{}?mode=rwc", path.display()))
        .expect("sqlite target");
    let db = Database::connect(&target).await.expect("sqlite connects");
    sqlx::query(
        "CREATE TABLE handled (seq INTEGER PRIMARY KEY AUTOINCREMENT, aggregate TEXT NOT NULL,
            n BIGINT NOT NULL, member BIGINT NOT NULL, UNIQUE (aggregate, n))",
    )
    .execute(db.pool())
    .await
    .expect("handled table");
    store::install(&db).await.expect("consumer tables");
    db
}

async fn handled(db: &Database) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM handled")
        .fetch_one(db.pool())
        .await
        .expect("count")
}

/// A consumer of `group` retrying `max_retries` times, 20 ms apart, counting into `metrics`.
fn consumer(
    db: &Database,
    group: &str,
    warehouse: &Warehouse,
    max_retries: u32,
    metrics: &ConsumerMetrics,
) -> Arc<Consumer<Warehouse>> {
    let policy = RetryPolicy {
        max_retries,
        intervals: RetrySettings {
            initial_interval_ms: 20,
            max_interval_ms: 20,
            ..RetrySettings::DEFAULT
        },
        ..RetryPolicy::DEFAULT
    };
    Arc::new(
        Consumer::new(
            db.clone(),
            None,
            "warehouse-service",
            group,
            warehouse.clone(),
            policy,
        )
        .observed_by(metrics.clone(), &["OrderPlaced"]),
    )
}

/// A running dispatch loop.
struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts `consumer` on `topic` with `concurrency` handlers; returns once it joined.
    async fn start(
        consumer: &Arc<Consumer<Warehouse>>,
        bus: &EventBus,
        topic: &str,
        concurrency: usize,
    ) -> Self {
        Self::start_with(consumer, bus, topic, DispatchSettings::new(concurrency)).await
    }

    /// [`Running::start`] with `settings`.
    async fn start_with(
        consumer: &Arc<Consumer<Warehouse>>,
        bus: &EventBus,
        topic: &str,
        settings: DispatchSettings,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let membership = Membership::default();
        let options = SubscribeOptions::new(consumer.group(), [topic]);
        let task = tokio::spawn(dispatch::run(
            Arc::clone(consumer),
            bus.clone(),
            options,
            settings,
            membership.clone(),
            shutdown.clone(),
        ));
        wait_until("the consumer joins its group", || async {
            membership.is_joined()
        })
        .await;
        Self { shutdown, task }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the consumer stops")
            .expect("the consumer task");
    }
}

async fn wait_until<F, Fut>(what: &str, done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_up_to(Duration::from_secs(60), what, done).await;
}

/// [`wait_until`] with another deadline: a group whose members change waits for the bus's
/// rebalances (Kafka's take seconds each, more on a busy machine).
async fn wait_up_to<F, Fut>(limit: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Everything the group was handed is acknowledged: its next member's first delivery is a
/// new event.
async fn assert_all_acknowledged(fixture: &impl Fixture, bus: &EventBus, topic: &str, group: &str) {
    let mut subscription = subscribe(bus, group, &[topic]).await;
    bus.publish(&[message(topic, "o-marker", 999)])
        .await
        .expect("publish");
    // The new member may first wait for the group to settle after its members left (a Kafka
    // rebalance, seconds each on a busy machine).
    let first = next_within(&mut subscription, fixture.patience() * 4).await;
    assert_eq!(n_of(&first), 999, "a handled event came back to the group");
    subscription.ack(&first).await.expect("ack");
    subscription.close().await.expect("close");
}

/// 4 aggregates × 10 events with 4 handlers: each aggregate's events in publish order, never
/// two of one aggregate at once, each event applied once. (How many run at once is not
/// asserted: on the SQLite database of this test, each handler's unit of work holds the write
/// lock, so handlers serialise there.)
pub async fn parallel_per_aggregate_in_order(fixture: &impl Fixture) {
    let bus = fixture.bus_with_deliveries_in_flight().await;
    let topic = fixture.topic("OrderPlaced", 3);
    let group = fixture.group("warehouse");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = database(&dir).await;
    let warehouse = Warehouse::pausing(Duration::from_millis(5));
    let consumer = consumer(&db, &group, &warehouse, 3, &ConsumerMetrics::default());
    let running = Running::start(&consumer, &bus, &topic, 4).await;
    let batch: Vec<OutboundMessage> = (1..=40)
        .map(|n| message(&topic, &format!("o-{}", n % 4), n))
        .collect();
    bus.publish(&batch).await.expect("publish");
    wait_until("40 events handled", || async { handled(&db).await == 40 }).await;
    running.stop().await;

    let mut per_aggregate: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (aggregate, n) in warehouse.0.order.lock().expect("order").iter() {
        per_aggregate.entry(aggregate.clone()).or_default().push(*n);
    }
    for (aggregate, ns) in &per_aggregate {
        let expected: Vec<u32> = (1..=40)
            .filter(|n| format!("o-{}", n % 4) == *aggregate)
            .collect();
        assert_eq!(ns, &expected, "events of {aggregate}, in publish order");
    }
    assert!(
        !warehouse.0.overlapped.load(Ordering::SeqCst),
        "two events of one aggregate ran at once"
    );
    assert_all_acknowledged(fixture, &bus, &topic, &group).await;
}

/// Poison (an event type no handler takes) is parked at once; an event whose handler keeps
/// failing is parked after `max_retries` retries; the others flow on meanwhile. Replayed after
/// the fix, the parked event is handled once, and a second replay finds nothing.
pub async fn poison_and_failures_parked_then_replayed_once(fixture: &impl Fixture) {
    let bus = fixture.bus_with_deliveries_in_flight().await;
    let topic = fixture.topic("OrderPlaced", 3);
    let group = fixture.group("warehouse");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = database(&dir).await;
    let warehouse = Warehouse::default();
    warehouse.0.broken.store(true, Ordering::SeqCst);
    let metrics = ConsumerMetrics::default();
    let consumer = consumer(&db, &group, &warehouse, 1, &metrics);
    let running = Running::start(&consumer, &bus, &topic, 4).await;
    let mut poison = message(&topic, "o-2", 2);
    poison.envelope.event_type = "OrderVanished".into();
    // Headers that are no envelope (an empty correlation id): parked, never a stuck consumer.
    let mut unreadable = message(&topic, "o-4", 6);
    unreadable.envelope.correlation_id = String::new();
    let batch = vec![
        message(&topic, "o-1", 1),
        poison,
        message(&topic, BROKEN, 3),
        unreadable,
        message(&topic, "o-1", 4),
        message(&topic, "o-3", 5),
    ];
    bus.publish(&batch).await.expect("publish");
    wait_until("three handled, three parked", || async {
        handled(&db).await == 3 && store::dead_letters(&db, &group).await.expect("list").len() == 3
    })
    .await;
    running.stop().await;

    let parked = store::dead_letters(&db, &group).await.expect("list");
    let poisoned = parked
        .iter()
        .find(|l| l.event_type.as_deref() == Some("OrderVanished"))
        .expect("the poison");
    assert_eq!(poisoned.reason, Reason::Poison);
    assert_eq!(poisoned.attempts, 1, "poison is not retried");
    let malformed = parked
        .iter()
        .find(|l| l.error.contains("ce-correlationid"))
        .expect("the message that is no envelope");
    assert_eq!((malformed.reason, malformed.attempts), (Reason::Poison, 1));
    assert!(
        malformed.headers.contains("\"ce-aggregateid\":\"o-4\""),
        "its headers as they came: {}",
        malformed.headers
    );
    let failed = parked
        .iter()
        .find(|l| l.reason == Reason::Handler)
        .expect("the failure");
    assert_eq!(failed.attempts, 2, "max_retries = 1: two attempts");
    assert!(
        failed.error.contains("the warehouse is closed"),
        "{}",
        failed.error
    );

    // Counted by event (a type the consumer does not handle as `unknown`) and outcome.
    assert_eq!(metrics.messages("OrderPlaced", "handled"), 3);
    assert_eq!(metrics.messages("OrderPlaced", "retried"), 1);
    assert!(metrics.messages("OrderPlaced", "dead_lettered") >= 1);
    assert!(metrics.messages("unknown", "dead_lettered") >= 1);
    assert_eq!(metrics.dead_letters(), 3);

    warehouse.0.broken.store(false, Ordering::SeqCst);
    assert_eq!(
        consumer.replay(failed.id).await.expect("replay"),
        Replayed::Handled
    );
    assert_eq!(metrics.dead_letters(), 2, "the gauge follows a replay");
    assert!(
        matches!(
            consumer.replay(malformed.id).await.expect("replay"),
            Replayed::FailedAgain(_)
        ),
        "a message that is no envelope stays parked"
    );
    assert_eq!(
        consumer.replay(failed.id).await.expect("replay"),
        Replayed::NotFound
    );
    assert_eq!(handled(&db).await, 4, "the replayed event applied once");
    assert_all_acknowledged(fixture, &bus, &topic, &group).await;
}

/// A consumer stopped while an event waits to be retried does not acknowledge it: the next
/// run handles it (a deployment restarting mid-retry loses nothing).
pub async fn shutdown_mid_retry_loses_nothing(fixture: &impl Fixture) {
    let bus = fixture.bus().await;
    let topic = fixture.topic("OrderPlaced", 1);
    let group = fixture.group("warehouse");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = database(&dir).await;
    let warehouse = Warehouse::default();
    warehouse.0.broken.store(true, Ordering::SeqCst);
    let consumer = consumer(&db, &group, &warehouse, 100, &ConsumerMetrics::default());
    let running = Running::start(&consumer, &bus, &topic, 1).await;
    bus.publish(&[message(&topic, BROKEN, 1)])
        .await
        .expect("publish");
    wait_until("a failed attempt", || async {
        warehouse.0.attempts.load(Ordering::SeqCst) >= 2
    })
    .await;
    running.stop().await;
    assert_eq!(handled(&db).await, 0);

    warehouse.0.broken.store(false, Ordering::SeqCst);
    let running = Running::start(&consumer, &bus, &topic, 1).await;
    wait_until("the event handled after the restart", || async {
        handled(&db).await == 1
    })
    .await;
    running.stop().await;
    assert!(
        store::dead_letters(&db, &group)
            .await
            .expect("list")
            .is_empty()
    );
    assert_all_acknowledged(fixture, &bus, &topic, &group).await;
}

/// Three members of one group share 32 aggregates' events and keep each aggregate's order
/// while the group changes under them: the first works alone, two join mid-stream (a
/// rebalance), the first leaves mid-stream (another). Every event is applied once, each
/// aggregate's events are committed in publish order (the recorded sequence), and where the
/// bus shares partitions among members, more than one member did the work.
pub async fn three_members_share_the_work_in_order(fixture: &impl Fixture) {
    const AGGREGATES: u32 = 32;
    const ROUNDS: u32 = 12;
    let bus = fixture.bus().await;
    let topic = fixture.topic("OrderPlaced", 3);
    let group = fixture.group("warehouse");
    let dir = tempfile::tempdir().expect("temp dir");
    let db = database(&dir).await;
    let warehouse = Warehouse::pausing(Duration::from_millis(2));
    let mut settings = DispatchSettings::new(2);
    settings.leases.lease = Duration::from_secs(2);
    settings.leases.renew_every = Duration::from_millis(200);
    let metrics = ConsumerMetrics::default();
    let member = |index: i64| consumer(&db, &group, &warehouse.for_member(index), 3, &metrics);
    // One publish per event: tansu (the Kafka-compatible broker of these tests) serves a fetch
    // from the first record batch at or after the fetch offset, so a member taking over a
    // partition from an offset inside a batch would never see the rest of that batch (Kafka
    // serves the batch and the client skips to the offset). One record per batch avoids that.
    let publish_round = |r: u32| {
        let (bus, topic) = (&bus, &topic);
        async move {
            for a in 0..AGGREGATES {
                let event = message(topic, &format!("o-{a}"), r * AGGREGATES + a + 1);
                bus.publish(&[event]).await.expect("publish");
            }
        }
    };
    let first = Running::start_with(&member(0), &bus, &topic, settings).await;
    publish_round(0).await;
    let second = Running::start_with(&member(1), &bus, &topic, settings).await;
    let third = Running::start_with(&member(2), &bus, &topic, settings).await;
    for r in 1..ROUNDS / 2 {
        publish_round(r).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    first.stop().await;
    for r in ROUNDS / 2..ROUNDS {
        publish_round(r).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let total = i64::from(AGGREGATES * ROUNDS);
    wait_up_to(Duration::from_secs(240), "every event handled", || async {
        handled(&db).await == total
    })
    .await;
    second.stop().await;
    third.stop().await;

    let rows: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT aggregate, n, member FROM handled ORDER BY seq")
            .fetch_all(db.pool())
            .await
            .expect("rows");
    let mut per_aggregate: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut per_member: BTreeMap<i64, usize> = BTreeMap::new();
    for (aggregate, n, member) in rows {
        per_aggregate.entry(aggregate).or_default().push(n);
        *per_member.entry(member).or_default() += 1;
    }
    for (aggregate, ns) in &per_aggregate {
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        assert_eq!(
            ns, &sorted,
            "events of {aggregate} committed in publish order"
        );
        assert_eq!(ns.len(), ROUNDS as usize, "every event of {aggregate} once");
    }
    if fixture.members_share_partitions() {
        assert!(
            per_member.len() >= 2,
            "the work was shared: events per member {per_member:?}"
        );
    }
    assert!(
        !warehouse.0.overlapped.load(Ordering::SeqCst),
        "two events of one aggregate ran at once"
    );
    // Everything handled was acknowledged: the group's lag on the bus is 0. (Not a new member
    // and a marker, as the other scenarios: after three members came and went, tansu's group
    // coordinator can take minutes to let a new member in.)
    let topics = [topic.clone()];
    wait_up_to(fixture.patience(), "the group's lag reaches 0", || async {
        bus.lag(&group, &topics).await.expect("lag") == Some(0)
    })
    .await;
}
