//! Shared by the messaging tests: an event type, a recording bus with fault injection, and
//! helpers that open databases, write events and check per-aggregate order.
#![allow(dead_code)]

pub mod counts;
pub mod eventstore;
#[path = "../launch_env/mod.rs"]
pub mod launch_env;
pub mod ledger;
pub mod projections;
pub mod relay_scenarios;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use allframe_runtime::Database;
use allframe_runtime::database::DatabaseTarget;
use allframe_runtime::messaging::{
    BusAdapter, BusError, BusSubscription, Delivery, Envelope, Event, EventBus, Messaging,
    MessagingConfig, OutboundMessage, PayloadFormat, PublishError, PublishPattern,
    SubscribeOptions, UnitOfWork, Uuid, outbox,
};
use allframe_runtime::sqlx;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// `Deposited` number `n` of `account` as the relay hands it to a bus: a trace context, a
/// tenant, and an `occurred_at` of whole milliseconds (as envelopes carry).
pub fn message(account: &str, n: u64) -> OutboundMessage {
    let millis = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + n);
    OutboundMessage {
        topic: TOPIC.to_owned(),
        envelope: Envelope {
            id: Uuid::now_v7(),
            event_type: "Deposited".into(),
            schema_version: 1,
            aggregate_type: "Account".into(),
            aggregate_id: account.into(),
            occurred_at: millis,
            source: "ledger-service".into(),
            correlation_id: format!("corr-{n}"),
            causation_id: None,
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            tracestate: None,
            tenant_id: Some("acme".into()),
            format: PayloadFormat::Json,
            payload: serde_json::to_vec(&Deposited {
                account: account.into(),
                n,
            })
            .expect("json"),
        },
    }
}

/// A test event: `n` counts up per aggregate `account`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deposited {
    pub account: String,
    pub n: u64,
}

impl Event for Deposited {
    const TYPE: &'static str = "Deposited";
    const VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "Account";
    fn aggregate_id(&self) -> String {
        self.account.clone()
    }
}

pub const TOPIC: &str = "bank.ledger-service.Deposited";

/// `Deposited` number `n` of `account`.
pub fn deposited(account: &str, n: u64) -> Deposited {
    Deposited {
        account: account.into(),
        n,
    }
}

pub fn config(pattern: PublishPattern) -> MessagingConfig {
    MessagingConfig {
        architecture: "bank",
        service: "ledger-service",
        pattern,
        tenant_header: None,
    }
}

/// Opens (creating) the SQLite file `name` in `dir`, with an `accounts` table and the outbox.
pub async fn sqlite_db(dir: &std::path::Path, name: &str) -> Database {
    let path = dir.join(name);
    let target = DatabaseTarget::parse(&format!("sqlite://{}?mode=rwc", path.display()))
        .expect("sqlite target");
    let db = Database::connect(&target).await.expect("sqlite connects");
    prepare(&db).await;
    db
}

/// Creates the test table and the outbox tables.
pub async fn prepare(db: &Database) {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL)",
    )
    .execute(db.pool())
    .await
    .expect("accounts table");
    outbox::install(db).await.expect("outbox tables");
}

/// The balance of `account`, `None` when it has no row.
pub async fn balance(db: &Database, account: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT balance FROM accounts WHERE id = $1")
        .bind(account)
        .fetch_optional(db.pool())
        .await
        .expect("balance")
}

/// Inserts `account` with `balance` in the unit of work, publishing nothing.
pub async fn open_account(uow: &mut UnitOfWork, account: &str, balance: i64) {
    sqlx::query("INSERT INTO accounts (id, balance) VALUES ($1, $2)")
        .bind(account)
        .bind(balance)
        .execute(uow.conn())
        .await
        .expect("insert");
}

/// Adds a `transfers` table whose foreign key to `accounts` is checked only at COMMIT, so
/// that [`insert_orphan_transfer`] makes a unit of work's commit fail after its events were
/// handed to the bus.
pub async fn create_deferred_transfers(db: &Database) {
    sqlx::query(
        "CREATE TABLE transfers (id INTEGER PRIMARY KEY,
            account TEXT NOT NULL REFERENCES accounts (id) DEFERRABLE INITIALLY DEFERRED)",
    )
    .execute(db.pool())
    .await
    .expect("transfers table");
}

/// Inserts a transfer to an account that does not exist: accepted now, refused at COMMIT.
pub async fn insert_orphan_transfer(uow: &mut UnitOfWork) {
    sqlx::query("INSERT INTO transfers (id, account) VALUES (1, 'nobody')")
        .execute(uow.conn())
        .await
        .expect("deferred: accepted until commit");
}

/// One unit of work per call: adds to the account's balance and publishes `Deposited`s
/// numbered `from..from + count`.
pub async fn deposit(messaging: &Messaging, account: &str, from: u64, count: u64) {
    let mut uow = messaging.begin().await.expect("begin");
    sqlx::query(
        "INSERT INTO accounts (id, balance) VALUES ($1, $2)
         ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + $2",
    )
    .bind(account)
    .bind(i64::try_from(count).expect("small"))
    .execute(uow.conn())
    .await
    .expect("state change");
    for n in from..from + count {
        uow.publish(Deposited {
            account: account.to_owned(),
            n,
        })
        .expect("publish");
    }
    uow.commit().await.expect("commit");
}

/// Writes `rounds` events to each of `accounts` aggregates, interleaved, one unit of work
/// per (round, account).
pub async fn write_interleaved(messaging: &Messaging, accounts: usize, rounds: u64) {
    for n in 0..rounds {
        for account in 0..accounts {
            deposit(messaging, &format!("acct-{account}"), n, 1).await;
        }
    }
}

/// Rows the relay has yet to publish (on SQLite its watermarks say so, not `published_at`).
pub async fn unpublished(db: &Database) -> i64 {
    let backlog = outbox::backlog(db).await.expect("backlog");
    i64::try_from(backlog.pending).expect("count")
}

pub async fn outbox_rows(db: &Database) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM allframe_outbox")
        .fetch_one(db.pool())
        .await
        .expect("count")
}

/// Decodes what a bus saw, in order.
pub fn decode_all(messages: &[OutboundMessage]) -> Vec<Deposited> {
    messages
        .iter()
        .map(|m| m.envelope.decode::<Deposited>().expect("decodes"))
        .collect()
}

/// Checks that every (account, n) in `expected` was seen, and that per account the first
/// sightings come in increasing `n` (redeliveries after a crash may repeat earlier ones).
pub fn assert_complete_and_ordered(seen: &[Deposited], accounts: usize, rounds: u64) {
    let mut first_seen: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut unique: HashSet<(&str, u64)> = HashSet::new();
    for event in seen {
        if unique.insert((event.account.as_str(), event.n)) {
            first_seen
                .entry(event.account.as_str())
                .or_default()
                .push(event.n);
        }
    }
    assert_eq!(
        unique.len(),
        accounts * usize::try_from(rounds).expect("small"),
        "every event is published at least once"
    );
    for (account, ns) in &first_seen {
        let expected: Vec<u64> = (0..rounds).collect();
        assert_eq!(ns, &expected, "events of {account} are in order");
    }
}

/// What a [`RecordingBus`] does with the next publish calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Accept everything.
    None,
    /// Fail the next `calls` publishes outright.
    FailCalls(usize),
    /// Accept `after` messages of the next call, then fail it.
    FailAfter(usize),
    /// Accept `after` messages of the next call, then never answer.
    HangAfter(usize),
}

/// An in-memory bus that records what it was asked to publish, with fault injection.
#[derive(Clone)]
pub struct RecordingBus {
    pub seen: Arc<Mutex<Vec<OutboundMessage>>>,
    fault: Arc<std::sync::Mutex<Fault>>,
    pub calls: Arc<AtomicUsize>,
    pub failures: Arc<AtomicUsize>,
    pub failure_times: Arc<std::sync::Mutex<Vec<tokio::time::Instant>>>,
    /// How long every publish takes, like a broker's round trip (none by default).
    round_trip: Arc<std::sync::Mutex<Duration>>,
    /// Publishes under way now, and the most there ever were at once.
    in_flight: Arc<AtomicUsize>,
    pub most_in_flight: Arc<AtomicUsize>,
}

/// Counts a publish as under way until dropped (also when the publish is cancelled).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl RecordingBus {
    pub fn new() -> Self {
        Self {
            seen: Arc::default(),
            fault: Arc::new(std::sync::Mutex::new(Fault::None)),
            calls: Arc::default(),
            failures: Arc::default(),
            failure_times: Arc::default(),
            round_trip: Arc::default(),
            in_flight: Arc::default(),
            most_in_flight: Arc::default(),
        }
    }

    /// Makes every publish take `round_trip`, as a real broker's acknowledgement does.
    pub fn set_round_trip(&self, round_trip: Duration) {
        *self.round_trip.lock().expect("lock") = round_trip;
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock().expect("lock") = fault;
    }

    pub async fn seen(&self) -> Vec<OutboundMessage> {
        self.seen.lock().await.clone()
    }

    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<OutboundMessage> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let seen = self.seen().await;
            if seen.len() >= count || tokio::time::Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn refused() -> BusError {
        BusError::Adapter {
            bus: "recording",
            source: "injected broker failure".into(),
        }
    }
}

impl BusAdapter for RecordingBus {
    type Subscription = NoSubscription;

    fn name(&self) -> &'static str {
        "recording"
    }

    async fn publish(&self, messages: &[OutboundMessage]) -> Result<(), PublishError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _in_flight = InFlight(Arc::clone(&self.in_flight));
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let round_trip = *self.round_trip.lock().expect("lock");
        if !round_trip.is_zero() {
            tokio::time::sleep(round_trip).await;
        }
        let fault = {
            let mut fault = self.fault.lock().expect("lock");
            let now = *fault;
            if let Fault::FailCalls(n) = now {
                *fault = if n > 1 {
                    Fault::FailCalls(n - 1)
                } else {
                    Fault::None
                };
            } else if now != Fault::None {
                *fault = Fault::None;
            }
            now
        };
        let fail = |delivered| {
            self.failures.fetch_add(1, Ordering::SeqCst);
            self.failure_times
                .lock()
                .expect("lock")
                .push(tokio::time::Instant::now());
            PublishError {
                delivered,
                source: Self::refused(),
            }
        };
        match fault {
            Fault::None => {
                self.seen.lock().await.extend_from_slice(messages);
                Ok(())
            }
            Fault::FailCalls(_) => Err(fail(0)),
            Fault::FailAfter(after) => {
                let after = after.min(messages.len());
                self.seen.lock().await.extend_from_slice(&messages[..after]);
                Err(fail(after))
            }
            Fault::HangAfter(after) => {
                let after = after.min(messages.len());
                self.seen.lock().await.extend_from_slice(&messages[..after]);
                std::future::pending::<()>().await;
                Ok(())
            }
        }
    }

    async fn subscribe(&self, _options: SubscribeOptions) -> Result<NoSubscription, BusError> {
        Err(BusError::Adapter {
            bus: "recording",
            source: "the recording bus only records publishes".into(),
        })
    }
}

/// The recording bus has no subscriptions: this type has no values.
pub enum NoSubscription {}

impl BusSubscription for NoSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        match *self {}
    }
    async fn ack(&mut self, _delivery: &Delivery) -> Result<(), BusError> {
        match *self {}
    }
    async fn nack(&mut self, _delivery: &Delivery) -> Result<(), BusError> {
        match *self {}
    }
    async fn close(self) -> Result<(), BusError> {
        match self {}
    }
}

/// A messaging handle on `db` publishing to `bus` with `pattern`.
pub fn messaging_on(db: &Database, bus: EventBus, pattern: PublishPattern) -> Messaging {
    Messaging::new(db.clone(), bus, config(pattern))
}

/// A messaging handle on `db` publishing to `bus`, outbox pattern.
pub fn outbox_messaging(db: &Database, bus: &RecordingBus) -> Messaging {
    messaging_on(db, EventBus::custom(bus.clone()), PublishPattern::Outbox)
}
