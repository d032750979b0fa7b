//! Reliable messaging: typed domain events, the unit of work, the transactional outbox and its
//! relay, the event bus abstraction and the embedded local bus.
//!
//! - [`Event`]: the trait a user's serde type implements to be published.
//! - [`Envelope`]: what travels on a bus, with its documented header mapping.
//! - [`UnitOfWork`]: `cx.begin()` → queries on `uow.conn()` → `uow.publish(event)?` →
//!   `uow.commit()`: state and events in one transaction.
//! - [`outbox`] and [`Relay`]: the table the events are written to and the background task
//!   that publishes them, at least once and in order per aggregate.
//! - [`EventBus`]: the bus the service publishes to and consumes from, chosen by
//!   `EVENT_BUS_URL`; [`LocalBus`] is the embedded default.
//!
//! [`Messaging`] ties a service's database, bus and identity together; the messaging
//! component builds it at start-up when the service declares `[services.messaging]` and puts it
//! in the [`crate::Ctx`] (`cx.messaging()`, `cx.begin()`). See
//! `docs/messaging.md` for the guarantees and the reasons behind each choice.

use std::fmt;
use std::sync::Arc;

use tokio::sync::Notify;

mod bus;
mod component;
mod emit;
pub mod envelope;
mod event;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "kafka")]
mod kafka_transaction;
#[cfg(feature = "sqlite")]
mod local;
mod metrics;
#[cfg(feature = "nats")]
mod nats;
pub mod outbox;
#[cfg(feature = "rabbitmq")]
mod rabbitmq;
mod relay;
mod topic;
mod transaction;
mod unit_of_work;

pub use bus::{
    ACCEPTED_BUS_SCHEMES, BusAdapter, BusError, BusSubscription, CustomBus, DEFAULT_BUS_FILE,
    Delivery, DeliveryTag, DynSubscription, EVENT_BUS_URL, EventBus, OutboundMessage,
    PartitionSharing, PublishError, StartFrom, SubscribeOptions, Subscription, Unreadable,
};
pub(crate) use component::{MessagingComponent, MessagingPlan};
pub use envelope::{Envelope, EnvelopeError, PayloadFormat};
pub use event::{Event, EventContext, MAX_NAME_LEN, UpcastError, is_valid_name};
#[cfg(feature = "kafka")]
pub use kafka::{KafkaBus, KafkaBusOptions, KafkaSubscription};
#[cfg(feature = "kafka")]
pub use kafka_transaction::KafkaTransaction;
#[cfg(feature = "sqlite")]
pub use local::{LocalBus, LocalBusOptions, LocalSubscription};
pub use metrics::{OutboxMetrics, OutboxMetricsSnapshot};
#[cfg(feature = "nats")]
pub use nats::{NatsBus, NatsBusOptions, NatsSubscription, consumer_name as nats_consumer_name};
#[cfg(feature = "rabbitmq")]
pub use rabbitmq::{
    RabbitBus, RabbitBusOptions, RabbitSubscription, queue_name as rabbit_queue_name,
};
pub use relay::{OutboxSettings, Relay, RelayError, RetrySettings};
pub use topic::{
    BUS_PARTITIONS, bus_partition, consumer_group, is_per_instance_group, partition_subject,
    split_partition_subject, topic_name,
};
pub use transaction::BusTransaction;
pub(crate) use unit_of_work::EventParts;
pub use unit_of_work::UnitOfWork;
#[cfg(feature = "testing")]
pub(crate) use unit_of_work::envelope;
pub use uuid::Uuid;

use crate::database::Database;
use crate::env::Environment;
use crate::error::ApiError;

/// How a service publishes (`[services.messaging] pattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishPattern {
    /// Events are written to the outbox in the unit of work's transaction and published by
    /// the relay: at least once, in order per aggregate.
    Outbox,
    /// Events are published right after the commit, without an outbox: lost if the process
    /// or the bus fails in between (for consumers that tolerate gaps).
    Direct,
    /// Events are sent into a bus transaction (Kafka, or the local bus) opened before the
    /// database commit and committed after it; aborted when the database commit fails.
    Transactional,
}

impl PublishPattern {
    /// The name used in `architecture.toml`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Outbox => "outbox",
            Self::Direct => "direct",
            Self::Transactional => "transactional",
        }
    }
}

/// Who publishes and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessagingConfig {
    /// `[architecture] name`: the first part of topic names.
    pub architecture: &'static str,
    /// The service name: the producer in envelopes and the second part of topic names.
    pub service: &'static str,
    /// The publishing pattern.
    pub pattern: PublishPattern,
    /// The request header carrying the tenant id when tenancy is on.
    pub tenant_header: Option<&'static str>,
}

/// Errors of the unit of work and of messaging start-up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessagingError {
    /// The transaction failed (begin, a statement, the outbox insert, commit).
    #[error("unit of work: {0}")]
    Database(#[from] sqlx::Error),
    /// An event could not be serialised.
    #[error("cannot serialise a `{event_type}` event: {source}")]
    Serialize {
        /// The event type.
        event_type: &'static str,
        /// The serde failure.
        #[source]
        source: serde_json::Error,
    },
    /// An event was published by a service that declares no messaging.
    #[error(
        "service `{service}` published an event but declares no messaging: add \
         `[services.messaging]` (pattern = \"outbox\") to its entry in architecture.toml"
    )]
    NotConfigured {
        /// The service.
        service: &'static str,
    },
    /// `direct` pattern: the state committed, but publishing afterwards failed.
    #[error(
        "the transaction committed, but publishing its {events} event(s) directly failed (pattern `direct` has no outbox): {source}"
    )]
    DirectPublish {
        /// How many events the unit of work held.
        events: usize,
        /// The bus failure.
        #[source]
        source: PublishError,
    },
    /// [`Messaging::emit`] with pattern `direct`: the bus refused the events. No state was
    /// stored with them, so retrying is safe.
    #[error("publishing {events} event(s) to the bus failed: {source}")]
    Unpublished {
        /// How many events were to be published.
        events: usize,
        /// The bus failure.
        #[source]
        source: PublishError,
    },
    /// `transactional` pattern: the state committed, but committing the bus transaction that
    /// held its events failed afterwards (they may or may not be visible, see
    /// `docs/messaging.md`).
    #[error(
        "the transaction committed, but committing the bus transaction of its {events} event(s) failed (pattern `transactional`): {source}"
    )]
    TransactionalCommit {
        /// How many events the unit of work held.
        events: usize,
        /// The bus failure.
        #[source]
        source: BusError,
    },
    /// The event bus could not be opened.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The outbox tables could not be created.
    #[error("cannot create the outbox tables: {0}")]
    Install(#[source] sqlx::Error),
    /// A messaging environment variable holds a value that cannot be used.
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    InvalidEnv {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
}

/// Pattern `transactional` on Kafka: how many units of work of one service instance can hold a
/// Kafka transaction at once (one transactional producer each), 1 to 64; default
/// [`DEFAULT_TRANSACTIONAL_PRODUCERS`].
pub const ALLFRAME_KAFKA_TRANSACTIONAL_PRODUCERS: &str =
    allframe_env::ALLFRAME_KAFKA_TRANSACTIONAL_PRODUCERS.name;

/// How many transactional producers a service instance keeps when
/// [`ALLFRAME_KAFKA_TRANSACTIONAL_PRODUCERS`] is unset.
pub const DEFAULT_TRANSACTIONAL_PRODUCERS: usize = 4;

/// The transactional producer count `env` asks for, or the default.
pub(crate) fn transactional_producers(env: &Environment) -> Result<usize, MessagingError> {
    let Some(value) = env.get_non_empty(ALLFRAME_KAFKA_TRANSACTIONAL_PRODUCERS) else {
        return Ok(DEFAULT_TRANSACTIONAL_PRODUCERS);
    };
    allframe_env::ALLFRAME_KAFKA_TRANSACTIONAL_PRODUCERS
        .count(&value)
        .map(|count| count as usize)
        .map_err(|invalid| MessagingError::InvalidEnv {
            var: invalid.var,
            value: invalid.value,
            reason: invalid.reason,
        })
}

impl From<MessagingError> for ApiError {
    /// A logged 500: the details stay in the log.
    fn from(error: MessagingError) -> Self {
        ApiError::internal(&error)
    }
}

/// A service's messaging: database, bus, identity, relay wake-ups and metrics. Cheap to clone.
#[derive(Clone)]
pub struct Messaging {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    bus: EventBus,
    config: MessagingConfig,
    wake: Arc<Notify>,
    metrics: Arc<OutboxMetrics>,
}

impl fmt::Debug for Messaging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Messaging")
            .field("config", &self.inner.config)
            .field("bus", &self.inner.bus)
            .finish_non_exhaustive()
    }
}

impl Messaging {
    /// Messaging for the service described by `config`, on `db` and `bus`. For the outbox
    /// pattern, the tables must exist ([`outbox::install`]; the launcher does it).
    pub fn new(db: Database, bus: EventBus, config: MessagingConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                bus,
                config,
                wake: Arc::new(Notify::new()),
                metrics: Arc::new(OutboxMetrics::default()),
            }),
        }
    }

    /// Opens a unit of work with a fresh context.
    pub async fn begin(&self) -> Result<UnitOfWork, MessagingError> {
        self.begin_with(EventContext::default()).await
    }

    /// Opens a unit of work whose events carry `context`.
    pub async fn begin_with(&self, context: EventContext) -> Result<UnitOfWork, MessagingError> {
        UnitOfWork::begin(
            &self.inner.db,
            Some(self.clone()),
            self.inner.config.service,
            context,
        )
        .await
    }

    /// A relay for this service's outbox.
    pub fn relay(&self, settings: OutboxSettings) -> Relay {
        Relay::new(self, settings)
    }

    /// The bus.
    pub fn bus(&self) -> &EventBus {
        &self.inner.bus
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// Who publishes and how.
    pub fn config(&self) -> &MessagingConfig {
        &self.inner.config
    }

    /// The tenant header, when tenancy is on.
    pub fn tenant_header(&self) -> Option<&'static str> {
        self.inner.config.tenant_header
    }

    /// The topic this service publishes `event_type` events to.
    pub fn topic(&self, event_type: &str) -> String {
        topic_name(
            self.inner.config.architecture,
            self.inner.config.service,
            event_type,
        )
    }

    /// This service's consumer group.
    pub fn consumer_group(&self) -> String {
        consumer_group(self.inner.config.architecture, self.inner.config.service)
    }

    /// The relay metrics of this process.
    pub fn metrics(&self) -> OutboxMetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    pub(crate) fn metrics_handle(&self) -> &OutboxMetrics {
        &self.inner.metrics
    }

    pub(crate) fn wake(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.wake)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn producers(value: Option<&str>) -> Result<usize, MessagingError> {
        let pairs = value.map(|value| {
            (
                ALLFRAME_KAFKA_TRANSACTIONAL_PRODUCERS.to_owned(),
                value.to_owned(),
            )
        });
        transactional_producers(&Environment::from_pairs(pairs))
    }

    #[test]
    fn the_transactional_producer_count_defaults_and_is_read_from_the_environment() {
        assert_eq!(producers(None).ok(), Some(DEFAULT_TRANSACTIONAL_PRODUCERS));
        assert_eq!(producers(Some(" 12 ")).ok(), Some(12));
    }

    #[test]
    fn an_unusable_transactional_producer_count_is_a_clear_error() {
        for value in ["0", "65", "four", "-1"] {
            let error = producers(Some(value)).expect_err(value);
            assert!(
                matches!(
                    &error,
                    MessagingError::InvalidEnv { var, value: seen, .. }
                        if *var == ALLFRAME_KAFKA_TRANSACTIONAL_PRODUCERS && seen == value
                ),
                "{error}"
            );
            assert!(error.to_string().contains("from 1 to 64"), "{error}");
        }
    }
}
