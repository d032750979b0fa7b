//! The event store of an `event-sourced` service, in the service's own database (SQLite by
//! default, PostgreSQL with `DATABASE_URL`), so an append shares its unit of work with the
//! outbox and whatever else the command writes.
//!
//! - **Streams.** Each aggregate instance (`aggregate_type`, `aggregate_id`) is a stream whose
//!   events are numbered 1, 2, 3 … (its *version*). An append names the version it expects
//!   ([`ExpectedVersion`]); one that finds another fails with [`EventStoreError::Conflict`] and
//!   writes nothing.
//! - **One global order, the commit order.** Every event also gets a *position* across all
//!   streams. Positions are handed out under a lock held until the appending transaction ends
//!   (a row lock on PostgreSQL, the write lock on SQLite), so a transaction cannot take a
//!   position below one already committed: a reader that has seen position *n* has seen every
//!   event below it, and a projection reading by position never skips a late commit.
//!   (A PostgreSQL sequence would not give this: values are taken in one order and committed
//!   in another.) The price is that appends commit one at a time.
//! - **Out through the outbox only.** When the service declares messaging, each appended event
//!   is put in the unit of work's outbox too, under the same id: it reaches the bus only once
//!   it is durable, and never when the append rolls back.
//! - **Streaming reads.** [`EventStore::read_stream`] and [`EventStore::read_all`] read pages
//!   of [`PAGE`] events, so a long stream is never held in memory whole.
//! - **Snapshots.** [`EventStore::save_snapshot`] keeps the latest state of a stream with the
//!   schema version of its type; [`EventStore::load_snapshot`] ignores a snapshot of another
//!   schema (it is rebuilt by replay, never misread).
//! - **Aggregates.** [`Repository`] loads an [`Aggregate`] from its latest snapshot and the
//!   events after it, upcasting old events ([`AggregateEvent::upcast`]), runs a command at the
//!   version the caller expects and snapshots every `snapshot_every` events.
//! - **Projections.** [`Projections`] keeps read models up to date from every event, in commit
//!   order, each from a checkpoint moved in the transaction that changes it, and rebuilds one
//!   beside the current version, switching once the new one has caught up.

mod admin;
mod aggregate;
mod append;
mod component;
mod http;
mod projection;
mod read;
mod schema;
mod snapshot;

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Notify;

pub use crate::messaging::UpcastError;
pub use aggregate::{Aggregate, AggregateEvent, CommandError, Loaded, Repository, decode};
pub use component::EventSourcedSettings;
pub(crate) use component::{EventSourcedComponent, EventSourcedHost};
pub use http::{aggregate_routes, read_model};
pub use projection::{
    Projection, ProjectionError, ProjectionStatus, Projections, ReadModel, declared,
};
pub use read::EventStream;

use crate::database::Database;
use crate::messaging::MessagingError;

/// How many events a read fetches per query.
pub const PAGE: i64 = 500;

/// One aggregate instance: the stream of its events.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamId {
    /// Its type, e.g. `"Order"`.
    pub aggregate_type: String,
    /// Its id, e.g. the order's.
    pub aggregate_id: String,
}

impl StreamId {
    /// The stream of aggregate `aggregate_id` of type `aggregate_type`.
    pub fn new(aggregate_type: impl Into<String>, aggregate_id: impl Into<String>) -> Self {
        Self {
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.aggregate_type, self.aggregate_id)
    }
}

/// The version an append expects its stream at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Whatever it is: the append never conflicts.
    Any,
    /// The stream has no event yet.
    NoStream,
    /// The stream's last event is this version.
    Exactly(u64),
}

impl ExpectedVersion {
    /// Whether a stream at `actual` (0: no event) is what this expects.
    pub fn admits(self, actual: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual == 0,
            Self::Exactly(version) => actual == version,
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exactly(version) => write!(f, "version {version}"),
        }
    }
}

/// An event to append: its type, the schema version of its payload, and the payload.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Its type name, e.g. `"OrderPlaced"` (1 to 128 characters of `[A-Za-z0-9_-]`: it is
    /// part of a topic name when published).
    pub event_type: String,
    /// The schema version of `payload`, from 1.
    pub schema_version: u32,
    /// The payload.
    pub payload: Value,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecordedEvent {
    /// Its place in the order of all events (commit order; gaps are possible).
    pub position: i64,
    /// Its stream.
    pub aggregate_type: String,
    /// Its stream.
    pub aggregate_id: String,
    /// Its place in its stream, from 1.
    pub version: u64,
    /// Its id, also the id of its envelope on the bus.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// The schema version its payload was written with.
    pub schema_version: u32,
    /// Its payload.
    pub payload: Value,
    /// The correlation id of the unit of work that appended it.
    pub correlation_id: String,
    /// When it was appended, in Unix milliseconds.
    pub recorded_at: i64,
}

/// The latest saved state of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The version of the last event it includes.
    pub version: u64,
    /// The state.
    pub state: Value,
}

/// Why the event store did not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventStoreError {
    /// The stream is not at the version the append expected; nothing was written.
    #[error("stream {stream} is at version {actual}, the append expected {expected}")]
    Conflict {
        /// The stream.
        stream: StreamId,
        /// What the append expected.
        expected: ExpectedVersion,
        /// Its version.
        actual: u64,
    },
    /// A type name that cannot be stored and published.
    #[error("`{0}` is not a valid event or aggregate type: 1 to 128 characters of [A-Za-z0-9_-]")]
    InvalidName(String),
    /// A payload that does not serialise, or a stored one that does not parse.
    #[error("the payload of `{event_type}` is not valid JSON for it: {source}")]
    Payload {
        /// The event type.
        event_type: String,
        /// What serde said.
        source: serde_json::Error,
    },
    /// A stored event this code cannot carry to today's schema.
    #[error(transparent)]
    Upcast(#[from] UpcastError),
    /// A stored value out of range (a negative version or schema version), or an event type
    /// or schema version this code does not know.
    #[error("stored event data is corrupt: {0}")]
    Corrupt(String),
    /// The unit of work could not take the events.
    #[error(transparent)]
    Messaging(#[from] MessagingError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The event store of one service database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventStore {
    db: Database,
    /// Woken when an append has committed: the projection runner of this process catches up
    /// at once rather than at its next idle tick.
    appended: Arc<Notify>,
}

impl EventStore {
    /// The store in `db`, its tables created when missing (idempotent, safe when several
    /// instances start at once).
    pub async fn open(db: &Database) -> Result<Self, EventStoreError> {
        schema::install(db).await?;
        Ok(Self {
            db: db.clone(),
            appended: Arc::new(Notify::new()),
        })
    }

    /// Woken each time an append to this store commits (in this process).
    pub(crate) fn appended(&self) -> Arc<Notify> {
        Arc::clone(&self.appended)
    }

    /// The database it lives in.
    pub fn database(&self) -> &Database {
        &self.db
    }
}
