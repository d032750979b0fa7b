//! The `consumer` archetype's runtime: handling one event exactly once in its effects,
//! retrying failures with backoff, and parking what cannot be handled as a dead letter.
//!
//! [`Consumer::handle`] is the whole life of one delivery:
//!
//! 1. a unit of work opens on the service's database (or a savepoint in the transaction of a
//!    group of deliveries, [`Consumer::handle_group`]: one commit for many events), its events
//!    caused by the delivery (correlation, causation, trace context and tenant carried on);
//! 2. the inbox row (consumer group, event id) is written first: if it exists, the event was
//!    handled before and this delivery is a duplicate — nothing runs;
//! 3. the user's handler ([`Handlers`]) runs in that unit of work; its state changes, the events
//!    it publishes (outbox), the notifications it sends ([`crate::channel`]'s outbox) and the
//!    inbox row commit together;
//! 4. a handler that fails or panics rolls everything it did back, and the failure is counted
//!    in the database, in the same transaction (so that a restart mid-retry, or a bus that does not count deliveries, goes on
//!    counting). After `max_retries` retries (`max_retries + 1` attempts) the message becomes a
//!    dead letter, a row in [`store::DEAD_LETTER_TABLE`] with the error, the attempt count, the
//!    first and last failure times, and the original headers and bytes; before that the caller
//!    is told to try again after the policy's backoff;
//! 5. a message no handler can read (an unknown event type, a payload that does not decode) is
//!    a dead letter at once: retrying cannot help. One with a *newer* schema version than the
//!    consumer knows is retried later without counting (a rolling deploy will bring the code
//!    that reads it), never dead-lettered.
//!
//! With `dlq = false` handler failures are retried forever (capped backoff); unreadable
//! messages are parked all the same. [`Consumer::replay`] hands a dead letter back to this
//! consumer only: handled, it leaves the table in the same transaction; failing again, it stays
//! with its count and error updated — never lost, never swallowed by the inbox.

mod admin;
pub mod dispatch;
mod host;
pub mod metrics;
pub mod partitions;
mod policy;
pub mod store;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use tokio::sync::Notify;
use tracing::Instrument as _;

pub(crate) use admin::{DeadLetterDesk, router as dead_letter_router};
#[cfg(any(feature = "cache", feature = "testing"))]
pub(crate) use host::ConsumerBus;
pub(crate) use host::opened;
pub use host::{Consume, ConsumedEvent, ConsumerSettings, Payload};
pub(crate) use host::{ConsumerComponent, ConsumerHost};
pub use metrics::ConsumerMetrics;
pub use policy::{ATTEMPT_ALLOWANCE, Backoff, RetryPolicy};
pub use store::{DeadLetter, Reason};

use crate::BoxError;
use crate::channel::Notifications;
use crate::database::{Backend, Database};
use crate::messaging::envelope::unix_millis;
use crate::messaging::{
    Delivery, DeliveryTag, Envelope, EnvelopeError, EventContext, Messaging, MessagingError,
    UnitOfWork,
};

/// How long a group of deliveries ([`Consumer::handle_group`]) may hold its transaction before
/// the rest of the group waits for the next one: on SQLite the transaction holds the file's
/// write lock.
pub const GROUP_BUDGET: Duration = Duration::from_millis(50);

/// The most deliveries one group handles on PostgreSQL: each attempt is a subtransaction that
/// writes, and past 64 of them in one transaction PostgreSQL's per-backend cache of
/// subtransaction ids overflows, which slows every session's snapshots until it commits. 32
/// leaves room for savepoints of the handlers' own.
pub const POSTGRES_GROUP_LIMIT: usize = 32;

/// The aggregate of a delivery (type and id; an event without an aggregate id is one of its
/// own): the unit of order.
pub(crate) fn aggregate_key(delivery: &Delivery) -> String {
    let envelope = delivery.envelope();
    if envelope.aggregate_id.is_empty() {
        format!("\u{1f}{}", envelope.id)
    } else {
        format!("{}\u{1f}{}", envelope.aggregate_type, envelope.aggregate_id)
    }
}

/// The user's handlers as the consumer calls them: the macro implements this for a service,
/// decoding each delivery into the event type its topic carries and calling the method the
/// file's `events` name.
pub trait Handlers: Send + Sync + 'static {
    /// Handles `delivery` inside `uow`; what it sends through a channel goes in `notify`.
    fn handle<'a>(
        &'a self,
        uow: &'a mut UnitOfWork,
        delivery: &'a Delivery,
        notify: &'a mut Notifications,
    ) -> BoxFuture<'a, Result<(), HandleError>>;
}

/// Why a delivery was not handled.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The payload could not be read as the event its type names (or the envelope is newer
    /// than this consumer's type: then it is retried later, not parked).
    #[error(transparent)]
    Decode(#[from] EnvelopeError),
    /// No handler of this consumer takes this event type.
    #[error("this consumer has no handler for `{0}` events")]
    UnknownEvent(String),
    /// The handler failed.
    #[error("{0}")]
    Failed(BoxError),
}

impl HandleError {
    /// A handler's own failure.
    pub fn failed(error: impl Into<BoxError>) -> Self {
        Self::Failed(error.into())
    }
}

/// What became of one delivery. Every outcome but [`Outcome::Retry`] means the delivery may be
/// acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled: its effects and its inbox row are committed.
    Handled,
    /// Handled before (the inbox has it): nothing ran.
    Duplicate,
    /// Not handled; hand it to the consumer again after `after`. `failures` counts the failed
    /// attempts so far (0 when the attempt did not count: a newer schema version).
    Retry {
        /// How long to wait.
        after: Duration,
        /// Failed attempts so far.
        failures: u32,
    },
    /// Parked in the dead letter table.
    DeadLettered(Reason),
}

/// What a replay of a dead letter did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// Handled; the dead letter is gone.
    Handled,
    /// The event had been handled meanwhile (the inbox has it); the dead letter is gone.
    Duplicate,
    /// It failed again and stays in the table, with its count and error updated.
    FailedAgain(String),
    /// No dead letter of this consumer has that id.
    NotFound,
}

/// The database failed around a handler: nothing was decided about the delivery.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// A statement of the consumer's own (inbox, attempts, dead letters) failed.
    #[error("consumer: {0}")]
    Database(#[from] sqlx::Error),
    /// The handler's unit of work could not begin, commit or roll back.
    #[error("consumer: {0}")]
    UnitOfWork(#[from] MessagingError),
}

/// One consumer group of a service: its database, handlers and retry policy.
pub struct Consumer<H> {
    db: Database,
    messaging: Option<Messaging>,
    service: &'static str,
    group: String,
    handlers: H,
    policy: RetryPolicy,
    observer: Option<Observer>,
    /// Woken when a handled event enqueued notifications (the channel sender's).
    sender: Option<Arc<Notify>>,
    /// Woken after every commit of handled deliveries (a saga orchestrator's, whose replies
    /// make sagas due).
    committed: Option<Arc<Notify>>,
    /// On SQLite, one attempt writes at a time: the file has one writer, and handlers
    /// queueing here wait their turn instead of retrying against the busy lock.
    sqlite_turn: Option<tokio::sync::Mutex<()>>,
}

/// Where a consumer counts what it decides.
struct Observer {
    metrics: ConsumerMetrics,
    /// The event types the consumer handles: the only `event` label values besides
    /// [`metrics::UNKNOWN_EVENT`].
    events: Vec<&'static str>,
}

impl<H: Handlers> Consumer<H> {
    /// A consumer of `group` for `service`. `messaging` is the service's own publishing (for
    /// events its handlers publish), `None` when it declares none.
    pub fn new(
        db: Database,
        messaging: Option<Messaging>,
        service: &'static str,
        group: impl Into<String>,
        handlers: H,
        policy: RetryPolicy,
    ) -> Self {
        Self {
            messaging,
            service,
            group: group.into(),
            handlers,
            policy,
            observer: None,
            sender: None,
            committed: None,
            sqlite_turn: (db.backend() == Backend::Sqlite).then(|| tokio::sync::Mutex::new(())),
            db,
        }
    }

    /// Counts each decided delivery of `events` (the types the consumer handles; others are
    /// counted as `unknown`) in `metrics`, and keeps its dead letter gauge current.
    #[must_use]
    pub fn observed_by(mut self, metrics: ConsumerMetrics, events: &[&'static str]) -> Self {
        self.observer = Some(Observer {
            metrics,
            events: events.to_vec(),
        });
        self
    }

    /// Wakes `sender` whenever a handler's notifications commit (the channel sender's
    /// waker), so that they go out at once rather than at its next poll.
    #[must_use]
    pub fn waking(mut self, sender: Arc<Notify>) -> Self {
        self.sender = Some(sender);
        self
    }

    /// Wakes `waiter` after every commit of this consumer's transaction, once what the
    /// handlers wrote is visible to others.
    #[must_use]
    pub fn waking_after_commit(mut self, waiter: Arc<Notify>) -> Self {
        self.committed = Some(waiter);
        self
    }

    /// Sets the dead letter gauge from the table (a no-op without [`Self::observed_by`]).
    pub async fn count_dead_letters(&self) -> Result<(), ConsumerError> {
        if let Some(observer) = &self.observer {
            let count = store::count_dead_letters(&self.db, &self.group).await?;
            observer.metrics.set_dead_letters(count);
        }
        Ok(())
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The database it records handled events, attempts and dead letters in.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The most deliveries [`Self::handle_group`] attempts in one group on this database
    /// ([`POSTGRES_GROUP_LIMIT`] on PostgreSQL, no limit on SQLite).
    pub fn group_limit(&self) -> usize {
        match self.db.backend() {
            Backend::Postgres => POSTGRES_GROUP_LIMIT,
            Backend::Sqlite => usize::MAX,
        }
    }

    /// Handles one delivery (see the module docs). An `Err` is the database failing around
    /// the handler: nothing was decided, hand the delivery in again later.
    pub async fn handle(&self, delivery: &Delivery) -> Result<Outcome, ConsumerError> {
        let outcomes = self.handle_group(std::slice::from_ref(delivery)).await?;
        Ok(outcomes
            .into_iter()
            .next()
            .flatten()
            .expect("the first delivery of a group is always attempted"))
    }

    /// Handles `deliveries` one after another in one transaction, each attempt in a savepoint
    /// of its own (rolled back alone when its handler fails): the group commits once, so the
    /// database syncs once for all of them. The outcome of each delivery, in order; `None` for
    /// one not attempted — because an earlier delivery of its aggregate in the group is to be
    /// retried (its turn comes after that one), or because the group had held the
    /// transaction for [`GROUP_BUDGET`] or reached [`Self::group_limit`] (the first delivery
    /// is always attempted). An `Err` is
    /// the database failing around the handlers: nothing of the group was decided.
    pub async fn handle_group(
        &self,
        deliveries: &[Delivery],
    ) -> Result<Vec<Option<Outcome>>, ConsumerError> {
        let started = Instant::now();
        let mut decided: Vec<Option<(Outcome, Instant)>> = Vec::with_capacity(deliveries.len());
        let mut notified = false;
        {
            let _turn = self.turn().await;
            let mut uow = self.begin().await?;
            // Failures counted before the group (its own failures belong to events it
            // does not handle again).
            let attempts_exist = store::attempts_exist(uow.conn(), &self.group).await?;
            let mut waiting: Vec<String> = Vec::new();
            let mut attempted = 0;
            for delivery in deliveries {
                let aggregate = aggregate_key(delivery);
                let over_budget = attempted > 0
                    && (started.elapsed() >= GROUP_BUDGET || attempted >= self.group_limit());
                if over_budget || waiting.contains(&aggregate) {
                    decided.push(None);
                    continue;
                }
                let attempt_started = Instant::now();
                let (outcome, sends) = self
                    .decide(&mut uow, delivery, attempts_exist)
                    .instrument(self.span(delivery))
                    .await?;
                attempted += 1;
                if matches!(outcome, Outcome::Retry { .. }) {
                    waiting.push(aggregate);
                }
                notified |= sends;
                decided.push(Some((outcome, attempt_started)));
            }
            self.commit(uow).await?;
        }
        if let (Some(sender), true) = (&self.sender, notified) {
            sender.notify_one();
        }
        let mut dead_lettered = false;
        let outcomes = deliveries
            .iter()
            .zip(decided)
            .map(|(delivery, decided)| {
                let (outcome, attempt_started) = decided?;
                dead_lettered |= matches!(outcome, Outcome::DeadLettered(_));
                if let Some(observer) = &self.observer {
                    let event_type = delivery.envelope().event_type.as_str();
                    let event = observer
                        .events
                        .iter()
                        .find(|known| **known == event_type)
                        .copied()
                        .unwrap_or(metrics::UNKNOWN_EVENT);
                    observer
                        .metrics
                        .observe(event, &outcome, attempt_started.elapsed());
                }
                Some(outcome)
            })
            .collect();
        if dead_lettered {
            self.count_dead_letters().await?;
        }
        Ok(outcomes)
    }

    /// Opens the consumer's transaction (each attempt sets the context its events carry).
    async fn begin(&self) -> Result<UnitOfWork, MessagingError> {
        UnitOfWork::begin(
            &self.db,
            self.messaging.clone(),
            self.service,
            EventContext::default(),
        )
        .await
    }

    /// Commits the consumer's transaction and counts it.
    async fn commit(&self, uow: UnitOfWork) -> Result<(), ConsumerError> {
        match uow.commit().await {
            Ok(()) => {}
            // `direct`: the state and the inbox rows committed; only the handlers' own events
            // did not reach the bus (the pattern has no outbox to retry them).
            Err(error @ MessagingError::DirectPublish { .. }) => {
                tracing::error!(group = %self.group, error = %error,
                    "consumer: handled, but the events the handlers published were lost");
            }
            Err(error) => return Err(error.into()),
        }
        if let Some(observer) = &self.observer {
            observer.metrics.observe_commit();
        }
        if let Some(waiter) = &self.committed {
            waiter.notify_one();
        }
        Ok(())
    }

    /// The span of one delivery's attempt: a child of the publisher's span when the envelope
    /// carries its trace context.
    fn span(&self, delivery: &Delivery) -> tracing::Span {
        let envelope = delivery.envelope();
        let span = tracing::info_span!(
            "consume",
            otel.name = %format_args!("process {}", delivery.topic()),
            otel.kind = "consumer",
            messaging.destination.name = %delivery.topic(),
            messaging.consumer.group.name = %self.group,
            messaging.message.id = %envelope.id,
            event_type = %envelope.event_type,
        );
        if let Some(traceparent) = &envelope.traceparent {
            crate::telemetry::adopt_message_parent(
                &span,
                traceparent,
                envelope.tracestate.as_deref(),
            );
        }
        span
    }

    /// Waits for this attempt's turn to write (SQLite only; see `sqlite_turn`).
    async fn turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.sqlite_turn {
            Some(turn) => Some(turn.lock().await),
            None => None,
        }
    }

    /// What becomes of `delivery`, decided in `uow` (a step of [`Self::handle_group`]), and
    /// whether its handler sent notifications.
    async fn decide(
        &self,
        uow: &mut UnitOfWork,
        delivery: &Delivery,
        attempts_exist: bool,
    ) -> Result<(Outcome, bool), ConsumerError> {
        let event_id = delivery.envelope().id.hyphenated().to_string();
        if let Some(unreadable) = delivery.unreadable() {
            // Not an envelope: no handler can take it, and its id may be made up.
            let now = unix_millis(SystemTime::now());
            let error = unreadable.error.to_string();
            tracing::error!(group = %self.group, event_id, error = %error,
                "consumer: a message that is not an event envelope parked as a dead letter");
            let mut letter = self.letter(delivery, &event_id, Reason::Poison, error, 1, now, now);
            letter.headers.clone_from(&unreadable.headers);
            letter.event_type =
                Some(delivery.envelope().event_type.clone()).filter(|t| !t.is_empty());
            store::dead_letter(uow.conn(), &letter).await?;
            return Ok((Outcome::DeadLettered(Reason::Poison), false));
        }
        let failure = match self
            .attempt(uow, delivery, &event_id, None, attempts_exist)
            .await?
        {
            Attempt::Handled { notified } => return Ok((Outcome::Handled, notified)),
            Attempt::Duplicate => return Ok((Outcome::Duplicate, false)),
            Attempt::Failed(failure) => failure,
        };
        let now = unix_millis(SystemTime::now());
        let outcome = match failure {
            Failure::Newer(error) => {
                tracing::warn!(group = %self.group, event_id, error = %error,
                    "consumer: event newer than this consumer knows; retrying later");
                Outcome::Retry {
                    after: self.policy.ceiling(),
                    failures: 0,
                }
            }
            Failure::Poison(error) => {
                tracing::error!(group = %self.group, event_id, error = %error,
                    "consumer: unreadable message parked as a dead letter");
                let letter = self.letter(delivery, &event_id, Reason::Poison, error, 1, now, now);
                store::dead_letter(uow.conn(), &letter).await?;
                Outcome::DeadLettered(Reason::Poison)
            }
            Failure::Handler(error) => {
                let attempts =
                    store::record_failure(uow.conn(), &self.group, &event_id, &error).await?;
                if self.policy.dlq && attempts.failures > self.policy.max_retries {
                    tracing::error!(group = %self.group, event_id, attempts = attempts.failures, error = %error,
                        "consumer: retries exhausted; parked as a dead letter");
                    let letter = self.letter(
                        delivery,
                        &event_id,
                        Reason::Handler,
                        error,
                        attempts.failures,
                        attempts.first_failed_at,
                        attempts.last_failed_at,
                    );
                    store::dead_letter(uow.conn(), &letter).await?;
                    Outcome::DeadLettered(Reason::Handler)
                } else {
                    let after = self.policy.delay(attempts.failures);
                    tracing::warn!(group = %self.group, event_id, attempts = attempts.failures,
                        retry_in_ms = after.as_millis() as u64, error = %error, "consumer: handler failed; retrying");
                    Outcome::Retry {
                        after,
                        failures: attempts.failures,
                    }
                }
            }
        };
        Ok((outcome, false))
    }

    /// Hands dead letter `id` back to this consumer once (see the module docs).
    pub async fn replay(&self, id: i64) -> Result<Replayed, ConsumerError> {
        let replayed = {
            let _turn = self.turn().await;
            self.replay_once(id).await?
        };
        self.count_dead_letters().await?;
        Ok(replayed)
    }

    /// The body of [`Self::replay`], in one transaction.
    async fn replay_once(&self, id: i64) -> Result<Replayed, ConsumerError> {
        let Some(letter) = store::dead_letter_by_id(&self.db, &self.group, id).await? else {
            return Ok(Replayed::NotFound);
        };
        let now = unix_millis(SystemTime::now());
        let mut uow = self.begin().await?;
        let (replayed, notified) =
            match Envelope::from_headers_json(&letter.headers, letter.payload.clone()) {
                Err(error) => (Replayed::FailedAgain(error.to_string()), false),
                Ok(envelope) => {
                    let delivery =
                        Delivery::new(letter.topic.clone(), envelope, DeliveryTag::new(0));
                    match self
                        .attempt(&mut uow, &delivery, &letter.event_id, Some(id), true)
                        .await?
                    {
                        Attempt::Handled { notified } => (Replayed::Handled, notified),
                        Attempt::Duplicate => {
                            store::remove_dead_letter(uow.conn(), &self.group, id).await?;
                            (Replayed::Duplicate, false)
                        }
                        Attempt::Failed(failure) => {
                            (Replayed::FailedAgain(failure.into_message()), false)
                        }
                    }
                }
            };
        if let Replayed::FailedAgain(failure) = &replayed {
            let again = DeadLetter {
                error: failure.clone(),
                attempts: 1,
                last_failed_at: now,
                ..letter
            };
            store::dead_letter(uow.conn(), &again).await?;
        }
        self.commit(uow).await?;
        if let (Some(sender), true) = (&self.sender, notified) {
            sender.notify_one();
        }
        Ok(replayed)
    }

    /// One attempt in a savepoint of `uow`, its events caused by the delivery: handled, its
    /// state, events, notifications and inbox row stay in `uow`; otherwise everything it did is
    /// rolled back to the savepoint. `replaying` removes that dead letter when the handler
    /// succeeds; `attempts_exist` says whether the group has failures on record (when it has
    /// none, a handled event has no count to forget).
    async fn attempt(
        &self,
        uow: &mut UnitOfWork,
        delivery: &Delivery,
        event_id: &str,
        replaying: Option<i64>,
        attempts_exist: bool,
    ) -> Result<Attempt, ConsumerError> {
        let savepoint = uow.savepoint().await?;
        if !store::mark_handled(uow.conn(), &self.group, event_id).await? {
            uow.roll_back_to(savepoint).await?;
            return Ok(Attempt::Duplicate);
        }
        uow.set_context(EventContext::caused_by(delivery.envelope()));
        let mut notify = Notifications::new();
        let outcome = AssertUnwindSafe(self.handlers.handle(uow, delivery, &mut notify))
            .catch_unwind()
            .await;
        let failure = match outcome {
            Ok(Ok(())) => {
                if attempts_exist {
                    store::clear_attempts(uow.conn(), &self.group, event_id).await?;
                }
                crate::channel::outbox::enqueue(uow.conn(), event_id, &notify).await?;
                if let Some(id) = replaying {
                    store::remove_dead_letter(uow.conn(), &self.group, id).await?;
                }
                uow.release(savepoint).await?;
                return Ok(Attempt::Handled {
                    notified: !notify.is_empty(),
                });
            }
            Ok(Err(HandleError::Decode(error @ EnvelopeError::NewerSchema { .. }))) => {
                Failure::Newer(error.to_string())
            }
            Ok(Err(error @ (HandleError::Decode(_) | HandleError::UnknownEvent(_)))) => {
                Failure::Poison(error.to_string())
            }
            Ok(Err(HandleError::Failed(error))) => Failure::Handler(error.to_string()),
            Err(panic) => {
                Failure::Handler(format!("the handler panicked: {}", panic_text(&*panic)))
            }
        };
        uow.roll_back_to(savepoint).await?;
        Ok(Attempt::Failed(failure))
    }

    #[allow(clippy::too_many_arguments)]
    fn letter(
        &self,
        delivery: &Delivery,
        event_id: &str,
        reason: Reason,
        error: String,
        attempts: u32,
        first_failed_at: i64,
        last_failed_at: i64,
    ) -> DeadLetter {
        let envelope = delivery.envelope();
        DeadLetter {
            id: 0,
            group: self.group.clone(),
            event_id: event_id.to_owned(),
            topic: delivery.topic().to_owned(),
            event_type: Some(envelope.event_type.clone()),
            reason,
            error,
            attempts,
            first_failed_at,
            last_failed_at,
            headers: envelope.headers_json(),
            payload: envelope.payload.clone(),
        }
    }
}

enum Attempt {
    Handled {
        /// The handler sent notifications.
        notified: bool,
    },
    Duplicate,
    Failed(Failure),
}

enum Failure {
    /// The envelope's schema is newer than the handler's type.
    Newer(String),
    /// Unreadable: no retry can help.
    Poison(String),
    /// The handler failed or panicked.
    Handler(String),
}

impl Failure {
    fn into_message(self) -> String {
        match self {
            Self::Newer(message) | Self::Poison(message) | Self::Handler(message) => message,
        }
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        String::from("(no message)")
    }
}
