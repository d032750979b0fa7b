//! The unit of work: one database transaction for the handler's state change and its events.
//!
//! `cx.begin()` opens a transaction (on SQLite `BEGIN IMMEDIATE`, so the write lock is taken
//! up front and a read-then-write handler cannot fail half-way on a lock upgrade); the handler
//! runs its own SQL on [`UnitOfWork::conn`] and calls [`UnitOfWork::publish`], which only
//! serialises the event into an envelope in memory. [`UnitOfWork::commit`] then, for the
//! `outbox` pattern, inserts the outbox rows on the same transaction and commits: both or
//! neither. For `direct`, it commits and then publishes straight to the bus (no guarantee if
//! the process dies in between). For `transactional`, it opens a bus transaction, sends the
//! events into it, commits the database transaction, then commits the bus transaction; a
//! failed database commit aborts the bus transaction, so consumers see nothing. Dropping the
//! unit of work, or [`UnitOfWork::rollback`], rolls the transaction back and discards the
//! events: nothing is published. Whether opening and committing the database transaction
//! worked is recorded in the database's [`WriteHealth`](crate::database::WriteHealth), which readiness reads; the bus's
//! failures are not.

use std::sync::Arc;
use std::time::SystemTime;

use sqlx::{Any, AnyConnection, Transaction};
use tokio::sync::Notify;
use uuid::Uuid;

use super::bus::OutboundMessage;
use super::envelope::{Envelope, PayloadFormat, truncate_to_millis};
use super::event::{Event, EventContext, check_event};
use super::{Messaging, MessagingError, PublishPattern, outbox};
use crate::database::{Backend, Database, PendingWrite};

/// A database transaction plus the events to publish with it. See the module docs.
///
/// ```no_run
/// # use allframe_runtime::{Ctx, error::ApiError, sqlx};
/// # #[derive(serde::Serialize)] struct UserCreated { id: i64 }
/// # impl allframe_runtime::messaging::Event for UserCreated {
/// #     const TYPE: &'static str = "UserCreated"; const VERSION: u32 = 1;
/// #     const AGGREGATE_TYPE: &'static str = "User";
/// #     fn aggregate_id(&self) -> String { self.id.to_string() }
/// # }
/// async fn create_user(cx: Ctx) -> Result<(), ApiError> {
///     let mut uow = cx.begin().await?;
///     sqlx::query("INSERT INTO users (id) VALUES ($1)").bind(7_i64).execute(uow.conn()).await?;
///     uow.publish(UserCreated { id: 7 })?;
///     uow.commit().await?;
///     Ok(())
/// }
/// ```
pub struct UnitOfWork {
    tx: Transaction<'static, Any>,
    backend: Backend,
    writes: PendingWrite,
    publisher: Option<Messaging>,
    service: &'static str,
    context: EventContext,
    correlation_id: String,
    events: Vec<OutboundMessage>,
    /// Woken once the transaction has committed (e.g. the projection runner of an event
    /// store appended to).
    after_commit: Vec<Arc<Notify>>,
}

impl std::fmt::Debug for UnitOfWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitOfWork")
            .field("backend", &self.backend)
            .field("service", &self.service)
            .field("correlation_id", &self.correlation_id)
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl UnitOfWork {
    /// Opens the transaction. `publisher` is `None` when the service has no messaging.
    pub(crate) async fn begin(
        db: &Database,
        publisher: Option<Messaging>,
        service: &'static str,
        context: EventContext,
    ) -> Result<Self, MessagingError> {
        let tx = db
            .begin_write()
            .await
            .inspect_err(|error| db.writes().record_failure(error))?;
        let correlation_id = context
            .correlation_id
            .clone()
            .unwrap_or_else(|| Uuid::now_v7().hyphenated().to_string());
        Ok(Self {
            tx,
            backend: db.backend(),
            writes: db.writes().pending(),
            publisher,
            service,
            context,
            correlation_id,
            events: Vec::new(),
            after_commit: Vec::new(),
        })
    }

    /// The transaction's connection: run the handler's queries on it,
    /// `sqlx::query(..).execute(uow.conn())`.
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// The context the events are stamped with.
    pub fn context(&self) -> &EventContext {
        &self.context
    }

    /// The correlation id every event of this unit of work carries.
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// Replaces the context (correlation, causation, trace, tenant) for events published
    /// from now on.
    pub fn set_context(&mut self, context: EventContext) {
        if let Some(correlation_id) = &context.correlation_id {
            self.correlation_id.clone_from(correlation_id);
        }
        self.context = context;
    }

    /// Adds an event, published only if the unit of work commits. Returns the envelope id.
    ///
    /// Serialisation happens here, so a payload that cannot be serialised fails at the call
    /// rather than at commit. Fails with [`MessagingError::NotConfigured`] when the service
    /// declares no messaging.
    pub fn publish<E: Event>(&mut self, event: E) -> Result<Uuid, MessagingError> {
        let Some(publisher) = &self.publisher else {
            return Err(MessagingError::NotConfigured {
                service: self.service,
            });
        };
        let message = outbound(publisher, &self.context, &self.correlation_id, &event)?;
        let id = message.envelope.id;
        self.events.push(message);
        Ok(id)
    }

    /// Adds an event stored by the event store in this unit of work, published only if it
    /// commits; `false` (and nothing to publish) when the service declares no messaging.
    pub(crate) fn publish_stored(&mut self, what: EventParts<'_>) -> bool {
        let Some(publisher) = &self.publisher else {
            return false;
        };
        let topic = publisher.topic(what.event_type);
        let source = publisher.config().service;
        let envelope = envelope_of(source, &self.context, &self.correlation_id, what);
        self.events.push(OutboundMessage { topic, envelope });
        true
    }

    /// The events published into this unit of work so far.
    pub fn events(&self) -> &[OutboundMessage] {
        &self.events
    }

    /// Marks a point to roll back to: the transaction's state (an SQL `SAVEPOINT`) and the
    /// events published so far. One at a time: release it or roll back to it before the next.
    pub(crate) async fn savepoint(&mut self) -> Result<Savepoint, sqlx::Error> {
        sqlx::query("SAVEPOINT allframe_attempt")
            .execute(&mut *self.tx)
            .await?;
        Ok(Savepoint {
            events: self.events.len(),
        })
    }

    /// Keeps what was done since `savepoint` (released: a savepoint left open would make the
    /// next one nest inside it, which SQLite pays for on every write).
    pub(crate) async fn release(&mut self, _savepoint: Savepoint) -> Result<(), sqlx::Error> {
        sqlx::query("RELEASE SAVEPOINT allframe_attempt")
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Undoes what was done since `savepoint`: the statements, and the events published.
    pub(crate) async fn roll_back_to(&mut self, savepoint: Savepoint) -> Result<(), sqlx::Error> {
        sqlx::query("ROLLBACK TO SAVEPOINT allframe_attempt")
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("RELEASE SAVEPOINT allframe_attempt")
            .execute(&mut *self.tx)
            .await?;
        self.events.truncate(savepoint.events);
        Ok(())
    }

    /// Wakes `notify` once this unit of work has committed (never when it rolls back).
    pub(crate) fn wake_on_commit(&mut self, notify: &Arc<Notify>) {
        if !self.after_commit.iter().any(|n| Arc::ptr_eq(n, notify)) {
            self.after_commit.push(Arc::clone(notify));
        }
    }

    /// Commits the state change and the events together (see the module docs for `direct`).
    pub async fn commit(mut self) -> Result<(), MessagingError> {
        let after_commit = std::mem::take(&mut self.after_commit);
        let result = self.commit_all().await;
        if result.is_ok() {
            for notify in after_commit {
                notify.notify_waiters();
            }
        }
        result
    }

    async fn commit_all(self) -> Result<(), MessagingError> {
        let Self {
            mut tx,
            backend,
            writes,
            publisher,
            events,
            ..
        } = self;
        let Some(publisher) = publisher.filter(|_| !events.is_empty()) else {
            commit_recorded(tx, writes).await?;
            return Ok(());
        };
        match publisher.config().pattern {
            PublishPattern::Outbox => {
                for message in &events {
                    outbox::insert(&mut tx, message).await?;
                }
                if backend == Backend::Postgres {
                    outbox::notify(&mut tx).await?;
                }
                commit_recorded(tx, writes).await?;
                publisher.wake().notify_waiters();
                Ok(())
            }
            PublishPattern::Direct => {
                commit_recorded(tx, writes).await?;
                publisher.bus().publish(&events).await.map_err(|source| {
                    MessagingError::DirectPublish {
                        events: events.len(),
                        source,
                    }
                })
            }
            PublishPattern::Transactional => {
                // Bus transaction first: if it cannot be opened or filled, `tx` is dropped
                // and rolled back, and nothing happened.
                let mut bus_tx = publisher.bus().begin_transaction().await?;
                if let Err(error) = bus_tx.send(&events).await {
                    abort_logged(bus_tx).await;
                    return Err(error.into());
                }
                if let Err(error) = commit_recorded(tx, writes).await {
                    abort_logged(bus_tx).await;
                    return Err(error.into());
                }
                bus_tx
                    .commit()
                    .await
                    .map_err(|source| MessagingError::TransactionalCommit {
                        events: events.len(),
                        source,
                    })
            }
        }
    }

    /// Rolls back: neither the state change nor the events happen.
    ///
    /// (Pattern `transactional` opens its bus transaction only in [`UnitOfWork::commit`], so
    /// there is none to abort here.)
    pub async fn rollback(self) -> Result<(), MessagingError> {
        self.writes.rolled_back();
        self.tx.rollback().await?;
        Ok(())
    }
}

/// A point of a [`UnitOfWork`] to roll back to ([`UnitOfWork::savepoint`]).
#[derive(Debug)]
#[must_use = "release the savepoint or roll back to it"]
pub(crate) struct Savepoint {
    /// How many events were published before it.
    events: usize,
}

/// Commits `tx`, recording in `writes` whether it worked.
async fn commit_recorded(
    tx: Transaction<'static, Any>,
    writes: PendingWrite,
) -> Result<(), sqlx::Error> {
    let result = tx.commit().await;
    writes.committed(&result);
    result
}

/// Aborts a bus transaction whose database transaction did not commit; a failure is logged
/// (the bus discards an unfinished transaction when its timeout expires).
async fn abort_logged(transaction: super::BusTransaction) {
    if let Err(error) = transaction.abort().await {
        tracing::warn!(%error, "aborting the bus transaction failed");
    }
}

/// `event` in its envelope, addressed to its topic: serialised here (so a payload that cannot
/// be serialised fails at the call), carrying `context` and `correlation_id`, and the current
/// span's trace context when span export is on.
pub(crate) fn outbound<E: Event>(
    publisher: &Messaging,
    context: &EventContext,
    correlation_id: &str,
    event: &E,
) -> Result<OutboundMessage, MessagingError> {
    Ok(OutboundMessage {
        topic: publisher.topic(E::TYPE),
        envelope: envelope(publisher.config().service, context, correlation_id, event)?,
    })
}

/// `event` in its envelope as the service `source` publishes it (see [`outbound`]).
pub(crate) fn envelope<E: Event>(
    source: &str,
    context: &EventContext,
    correlation_id: &str,
    event: &E,
) -> Result<Envelope, MessagingError> {
    const { check_event::<E>() };
    let payload = serde_json::to_vec(event).map_err(|source| MessagingError::Serialize {
        event_type: E::TYPE,
        source,
    })?;
    let what = EventParts {
        id: Uuid::now_v7(),
        event_type: E::TYPE,
        schema_version: E::VERSION,
        aggregate_type: E::AGGREGATE_TYPE,
        aggregate_id: event.aggregate_id(),
        payload,
    };
    Ok(envelope_of(source, context, correlation_id, what))
}

/// What an envelope says about its event, the rest coming from where it is published.
pub(crate) struct EventParts<'a> {
    pub(crate) id: Uuid,
    pub(crate) event_type: &'a str,
    pub(crate) schema_version: u32,
    pub(crate) aggregate_type: &'a str,
    pub(crate) aggregate_id: String,
    pub(crate) payload: Vec<u8>,
}

/// The envelope of `what` as the service `source` publishes it, carrying `context` and
/// `correlation_id`.
pub(crate) fn envelope_of(
    source: &str,
    context: &EventContext,
    correlation_id: &str,
    what: EventParts<'_>,
) -> Envelope {
    // With span export on, the span publishing the event (the request's) is the parent its
    // consumers continue; otherwise the trace context the request or message brought.
    let (traceparent, tracestate) = match crate::telemetry::current_trace_context() {
        Some((traceparent, tracestate)) => (Some(traceparent), tracestate),
        None => (context.traceparent.clone(), context.tracestate.clone()),
    };
    Envelope {
        id: what.id,
        event_type: what.event_type.to_owned(),
        schema_version: what.schema_version,
        aggregate_type: what.aggregate_type.to_owned(),
        aggregate_id: what.aggregate_id,
        occurred_at: truncate_to_millis(SystemTime::now()),
        source: source.to_owned(),
        correlation_id: correlation_id.to_owned(),
        causation_id: context.causation_id.clone(),
        traceparent,
        tracestate,
        tenant_id: context.tenant_id.clone(),
        format: PayloadFormat::Json,
        payload: what.payload,
    }
}
