//! Aggregates over the event store: the user's state decides what a command produces
//! ([`Aggregate::handle`]) and evolves by its events ([`Aggregate::apply`]); a
//! [`Repository`] loads it (latest snapshot of its schema, then the events after it), runs a
//! command against it at the version the caller expects, appends the events in the caller's
//! unit of work, and snapshots it every `snapshot_every` events.
//!
//! Stored events are read back through [`AggregateEvent::decode`] after
//! [`AggregateEvent::upcast`] has carried their payload from the schema version they were
//! written with up to today's, one version at a time.

use futures_util::TryStreamExt as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{EventStore, EventStoreError, ExpectedVersion, NewEvent, RecordedEvent, StreamId};
use crate::messaging::{UnitOfWork, UpcastError};

/// An aggregate's events: the user's type (typically an enum with one variant per event
/// type), stored by type name with the schema version of its payload.
///
/// An enum whose variants each hold one [`Event`](crate::messaging::Event) type derives it,
/// taking each variant's type name, schema version and upcasting from its `Event` impl. In a
/// service crate that is `#[derive(allframe::AggregateEvent)]`; `#[allframe(crate = …)]` names
/// the runtime crate when it is not `allframe`:
///
/// ```
/// use allframe_runtime::eventstore::AggregateEvent as _;
/// use allframe_runtime::messaging::Event;
///
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// pub struct AccountOpened { id: String }
/// impl Event for AccountOpened {
///     const TYPE: &'static str = "AccountOpened";
///     const VERSION: u32 = 1;
///     const AGGREGATE_TYPE: &'static str = "Account";
///     fn aggregate_id(&self) -> String { self.id.clone() }
/// }
///
/// #[derive(Debug, Clone, allframe_runtime::AggregateEvent)]
/// #[allframe(crate = allframe_runtime)]
/// pub enum AccountEvent {
///     Opened(AccountOpened),
/// }
///
/// let opened = AccountEvent::Opened(AccountOpened { id: "a".into() });
/// assert_eq!(opened.event_type(), "AccountOpened");
/// assert_eq!(AccountEvent::schema_version("AccountOpened"), Some(1));
/// ```
///
/// Two variants holding events of the same `Event::TYPE` fail the build (the second could
/// never be read back):
///
/// ```compile_fail,E0080
/// # use allframe_runtime::messaging::Event;
/// # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// # pub struct AccountOpened { id: String }
/// # impl Event for AccountOpened {
/// #     const TYPE: &'static str = "AccountOpened";
/// #     const VERSION: u32 = 1;
/// #     const AGGREGATE_TYPE: &'static str = "Account";
/// #     fn aggregate_id(&self) -> String { self.id.clone() }
/// # }
/// #[derive(Debug, Clone, allframe_runtime::AggregateEvent)]
/// #[allframe(crate = allframe_runtime)]
/// pub enum AccountEvent {
///     Opened(AccountOpened),
///     OpenedAgain(AccountOpened),
/// }
/// ```
pub trait AggregateEvent: Sized + Send + Sync + 'static {
    /// The stored type name of this event, e.g. `"OrderPlaced"`.
    fn event_type(&self) -> &'static str;

    /// Today's schema version of `event_type` (`None` for a type this code does not know).
    fn schema_version(event_type: &str) -> Option<u32>;

    /// This event's payload, at today's schema version.
    fn to_payload(&self) -> Result<Value, serde_json::Error>;

    /// The event of `event_type` from its payload at today's schema version.
    fn decode(event_type: &str, payload: Value) -> Result<Self, serde_json::Error>;

    /// The payload of `event_type` written at schema `from`, carried to `from + 1`. Events
    /// are upcast on read, one version at a time, up to today's; override this when you bump
    /// a version (the default refuses, naming the type and version). The derived impl calls
    /// the variant's [`Event::upcast`](crate::messaging::Event::upcast).
    fn upcast(event_type: &str, from: u32, payload: Value) -> Result<Value, UpcastError> {
        let _ = payload;
        Err(UpcastError::Missing {
            event_type: event_type.to_owned(),
            from,
        })
    }
}

/// An event-sourced aggregate: the user's state type.
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Its type name, the type of its streams, e.g. `"Order"`.
    const TYPE: &'static str;
    /// The schema version of its serialised state: snapshots written with another are
    /// ignored (the state is rebuilt by replay). Bump it when the state's shape changes.
    const SNAPSHOT_VERSION: u32 = 1;

    /// Its events.
    type Event: AggregateEvent;
    /// What it is asked to do.
    type Command: Send;
    /// Why it refuses a command.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The events `command` produces on this state of aggregate `id` (none: nothing
    /// changes), or why not. `id` is the aggregate's stream id, for events that carry it.
    fn handle(&self, id: &str, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// The state after `event`.
    fn apply(&mut self, event: &Self::Event);
}

/// An aggregate as loaded: its state and version (0: no event yet).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// Its id.
    pub id: String,
    /// Its state.
    pub state: A,
    /// Its version: the number of its events.
    pub version: u64,
}

/// Why a command did not take effect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError<E: std::error::Error + 'static> {
    /// The aggregate refused it.
    #[error(transparent)]
    Refused(E),
    /// The aggregate is not at the version the caller expected (or another writer appended
    /// first); nothing was written.
    #[error("aggregate {stream} is at version {actual}, the command expected version {expected}")]
    Conflict {
        /// The aggregate's stream.
        stream: StreamId,
        /// What the caller expected.
        expected: u64,
        /// Its version.
        actual: u64,
    },
    /// The store failed, or a stored event could not be read.
    #[error(transparent)]
    Store(#[from] EventStoreError),
}

/// Loads aggregates of type `A` and runs commands against them.
#[derive(Debug, Clone)]
pub struct Repository<A> {
    store: EventStore,
    snapshot_every: u64,
    _aggregate: std::marker::PhantomData<fn() -> A>,
}

impl<A: Aggregate> Repository<A> {
    /// Aggregates of type `A` in `store`, snapshotted every `snapshot_every` events (0: never).
    pub fn new(store: EventStore, snapshot_every: u64) -> Self {
        Self {
            store,
            snapshot_every,
            _aggregate: std::marker::PhantomData,
        }
    }

    /// The stream of aggregate `id`.
    pub fn stream(id: &str) -> StreamId {
        StreamId::new(A::TYPE, id)
    }

    /// Aggregate `id`: its latest snapshot of [`Aggregate::SNAPSHOT_VERSION`] and the events
    /// after it (all of them without one).
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, EventStoreError> {
        let stream = Self::stream(id);
        let (mut state, version) = match self
            .store
            .load_snapshot(&stream, A::SNAPSHOT_VERSION)
            .await?
        {
            Some(snapshot) => match serde_json::from_value::<A>(snapshot.state) {
                Ok(state) => (state, snapshot.version),
                // A state this code cannot read (it changed without a new schema version):
                // rebuilt by replay, never misread.
                Err(_) => (A::default(), 0),
            },
            None => (A::default(), 0),
        };
        let version = self.replay(id, &mut state, version).await?;
        Ok(Loaded {
            id: id.to_owned(),
            state,
            version,
        })
    }

    /// Aggregate `id` rebuilt from all its events, ignoring snapshots.
    pub async fn replay_all(&self, id: &str) -> Result<Loaded<A>, EventStoreError> {
        let mut state = A::default();
        let version = self.replay(id, &mut state, 0).await?;
        Ok(Loaded {
            id: id.to_owned(),
            state,
            version,
        })
    }

    /// Applies the events of `id` after `after` to `state`; the version reached.
    async fn replay(&self, id: &str, state: &mut A, after: u64) -> Result<u64, EventStoreError> {
        let mut events = self.store.read_stream(&Self::stream(id), after);
        let mut version = after;
        while let Some(recorded) = events.try_next().await? {
            state.apply(&decode::<A::Event>(&recorded)?);
            version = recorded.version;
        }
        Ok(version)
    }

    /// Runs `command` against aggregate `id` in `uow`: when `expected` is given and the
    /// aggregate is at another version, or another writer appends first, nothing is written
    /// and the error says the current version. The events are appended (and published through
    /// the outbox) only if `uow` commits; a snapshot is saved with them when the aggregate
    /// passes a multiple of `snapshot_every`.
    pub async fn execute(
        &self,
        uow: &mut UnitOfWork,
        id: &str,
        expected: Option<u64>,
        command: A::Command,
    ) -> Result<Loaded<A>, CommandError<A::Error>> {
        let Loaded {
            mut state, version, ..
        } = self.load(id).await?;
        let stream = Self::stream(id);
        if let Some(expected) = expected.filter(|&expected| expected != version) {
            return Err(CommandError::Conflict {
                stream,
                expected,
                actual: version,
            });
        }
        let events = state.handle(id, command).map_err(CommandError::Refused)?;
        let new: Vec<NewEvent> = events.iter().map(encode).collect::<Result<_, _>>()?;
        let at = if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exactly(version)
        };
        let reached = match self.store.append(uow, &stream, at, &new).await {
            Ok(reached) => reached,
            Err(EventStoreError::Conflict { actual, .. }) => {
                return Err(CommandError::Conflict {
                    stream,
                    expected: expected.unwrap_or(version),
                    actual,
                });
            }
            Err(other) => return Err(other.into()),
        };
        for event in &events {
            state.apply(event);
        }
        let every = self.snapshot_every;
        if every > 0 && reached / every > version / every {
            let snapshot =
                serde_json::to_value(&state).map_err(|source| EventStoreError::Payload {
                    event_type: format!("{} snapshot", A::TYPE),
                    source,
                })?;
            self.store
                .save_snapshot(uow, &stream, reached, A::SNAPSHOT_VERSION, &snapshot)
                .await?;
        }
        Ok(Loaded {
            id: id.to_owned(),
            state,
            version: reached,
        })
    }
}

/// `event` as the store keeps it.
fn encode<E: AggregateEvent>(event: &E) -> Result<NewEvent, EventStoreError> {
    let event_type = event.event_type();
    let schema_version = E::schema_version(event_type)
        .ok_or_else(|| EventStoreError::Corrupt(format!("`{event_type}` has no schema version")))?;
    let payload = event
        .to_payload()
        .map_err(|source| EventStoreError::Payload {
            event_type: event_type.to_owned(),
            source,
        })?;
    Ok(NewEvent {
        event_type: event_type.to_owned(),
        schema_version,
        payload,
    })
}

/// A stored event read by today's code: upcast from its schema version, then decoded.
pub fn decode<E: AggregateEvent>(recorded: &RecordedEvent) -> Result<E, EventStoreError> {
    let event_type = recorded.event_type.as_str();
    let current = E::schema_version(event_type).ok_or_else(|| {
        EventStoreError::Corrupt(format!(
            "event {} of {}/{} has the type `{event_type}`, which this code does not know",
            recorded.version, recorded.aggregate_type, recorded.aggregate_id
        ))
    })?;
    if recorded.schema_version > current {
        return Err(EventStoreError::Corrupt(format!(
            "`{event_type}` was written at schema version {}, newer than this code's {current}",
            recorded.schema_version
        )));
    }
    let mut payload = recorded.payload.clone();
    for from in recorded.schema_version..current {
        payload = E::upcast(event_type, from, payload).map_err(EventStoreError::Upcast)?;
    }
    E::decode(event_type, payload).map_err(|source| EventStoreError::Payload {
        event_type: event_type.to_owned(),
        source,
    })
}
