//! The event bus abstraction: one trait pair every adapter implements, and the [`EventBus`]
//! enum the runtime holds, chosen at run time from `EVENT_BUS_URL`.
//!
//! An adapter is one module behind one cargo feature. It implements [`BusAdapter`] (publish a
//! batch in order, open a subscription for a consumer group) and [`BusSubscription`] (next
//! delivery, ack, nack, close), adds a variant to [`EventBus`] and [`Subscription`] under its
//! feature, one arm to the `dispatch!` macro below, and a scheme to [`EventBus::connect`]. The
//! traits use `impl Future` (static dispatch, no boxing); the enums dispatch by `match`, so
//! there is no `dyn` over generic methods. [`EventBus::custom`] wraps any other adapter (test
//! doubles, engines AllFrame does not ship) behind a private object-safe shim.
//!
//! This module decides nothing about delivery policy (retries, dead letters): that is the
//! relay's and the consumer's business.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use super::envelope::{Envelope, EnvelopeError};
#[cfg(feature = "kafka")]
use super::kafka::{KafkaBus, KafkaSubscription};
#[cfg(feature = "sqlite")]
use super::local::{LocalBus, LocalBusOptions, LocalSubscription};
#[cfg(feature = "nats")]
use super::nats::{NatsBus, NatsSubscription};
#[cfg(feature = "rabbitmq")]
use super::rabbitmq::{RabbitBus, RabbitSubscription};
use super::transaction::BusTransaction;
use crate::env::Environment;

mod error;
pub use error::{BusError, PublishError};

/// The variable naming the event bus.
pub const EVENT_BUS_URL: &str = allframe_env::EVENT_BUS_URL.name;
/// The local bus file inside the data directory.
pub const DEFAULT_BUS_FILE: &str = "bus.db";
/// The schemes `EVENT_BUS_URL` accepts.
pub const ACCEPTED_BUS_SCHEMES: &str =
    "`local:`, `sqlite:` (local bus), `nats://`, `amqp://`/`amqps://`, `kafka://`";

/// One message to publish: the topic and the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// The topic, see [`super::topic_name`].
    pub topic: String,
    /// The event.
    pub envelope: Envelope,
}

/// Identifies a delivery within its subscription (an offset, a delivery tag, a sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryTag(u64);

impl DeliveryTag {
    /// A tag with the adapter's own value.
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The adapter's value.
    pub const fn value(self) -> u64 {
        self.0
    }
}

/// One message handed to a consumer; acknowledge it after handling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    topic: String,
    partition: u32,
    envelope: Envelope,
    tag: DeliveryTag,
    unreadable: Option<Arc<Unreadable>>,
}

/// Why a delivered message is not a valid envelope, and its headers as they came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// What is wrong with the headers.
    pub error: EnvelopeError,
    /// The message's headers as a JSON object of strings (for the dead letter).
    pub headers: String,
}

impl Delivery {
    /// A delivery (for adapters).
    pub fn new(topic: String, envelope: Envelope, tag: DeliveryTag) -> Self {
        Self {
            topic,
            partition: 0,
            envelope,
            tag,
            unreadable: None,
        }
    }

    /// A delivery of the message with `headers` and `payload` (for adapters). Headers that are
    /// not a valid envelope do not stop the subscription: the delivery carries what
    /// [`Envelope::salvage`] made of them and [`Delivery::unreadable`] says why, so that a
    /// consumer parks it as a dead letter and acknowledges it like any other.
    pub fn read(
        topic: String,
        headers: &[(&str, &str)],
        payload: Vec<u8>,
        tag: DeliveryTag,
    ) -> Self {
        match Envelope::from_headers_or_payload(headers.iter().copied(), payload) {
            Ok(envelope) => Self::new(topic, envelope, tag),
            Err((error, payload)) => {
                let headers_json = serde_json::to_string(&HeaderObject(headers))
                    .unwrap_or_else(|_| String::from("{}"));
                Self::salvaged(topic, headers, payload, error, headers_json, tag)
            }
        }
    }

    /// [`Delivery::read`] for headers stored as a JSON object of strings (the local bus).
    pub fn read_json(
        topic: String,
        headers_json: &str,
        payload: Vec<u8>,
        tag: DeliveryTag,
    ) -> Self {
        let parsed: Result<serde_json::Map<String, serde_json::Value>, _> =
            serde_json::from_str(headers_json);
        let pairs: Option<Vec<(&str, &str)>> = parsed.as_ref().ok().and_then(|map| {
            map.iter()
                .map(|(name, value)| Some((name.as_str(), value.as_str()?)))
                .collect()
        });
        match pairs {
            Some(pairs) => Self::read(topic, &pairs, payload, tag),
            None => {
                let error = EnvelopeError::StoredHeaders(match parsed {
                    Err(error) => error.to_string(),
                    Ok(_) => String::from("a header value is not a string"),
                });
                Self::salvaged(topic, &[], payload, error, headers_json.to_owned(), tag)
            }
        }
    }

    /// A delivery of a message whose headers are not an envelope.
    fn salvaged(
        topic: String,
        headers: &[(&str, &str)],
        payload: Vec<u8>,
        error: EnvelopeError,
        headers_json: String,
        tag: DeliveryTag,
    ) -> Self {
        tracing::warn!(%topic, %error, "a message on the bus is not a valid event envelope");
        Self {
            envelope: Envelope::salvage(headers, payload),
            topic,
            partition: 0,
            tag,
            unreadable: Some(Arc::new(Unreadable {
                error,
                headers: headers_json,
            })),
        }
    }

    /// Why this message's headers are not a valid envelope; `None` for a well-formed one. Its
    /// [`Delivery::envelope`] is then only what could be salvaged: don't act on it, park it.
    pub fn unreadable(&self) -> Option<&Unreadable> {
        self.unreadable.as_deref()
    }

    /// The same delivery under another tag (for adapters that hand a message out again).
    pub fn with_tag(&self, tag: DeliveryTag) -> Self {
        Self {
            tag,
            ..self.clone()
        }
    }

    /// The same delivery, from `partition` of its topic (for adapters that partition topics).
    pub fn in_partition(mut self, partition: u32) -> Self {
        self.partition = partition;
        self
    }

    /// The topic it came from.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition of its topic it came through (0 on a bus that does not partition):
    /// acknowledgements are cumulative per topic partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The event.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The adapter's tag.
    pub fn tag(&self) -> DeliveryTag {
        self.tag
    }

    /// Decodes the payload, see [`Envelope::decode`].
    pub fn decode<E>(&self) -> Result<E, EnvelopeError>
    where
        E: super::Event + serde::de::DeserializeOwned,
    {
        self.envelope.decode()
    }
}

/// Header pairs written as a JSON object, in their order.
struct HeaderObject<'a>(&'a [(&'a str, &'a str)]);

impl serde::Serialize for HeaderObject<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, value)| (name, value)))
    }
}

/// Where a consumer group that has never committed an offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The oldest message the bus still holds (the default: events published before the
    /// consumer first started are not missed).
    #[default]
    Earliest,
    /// Only messages published after the group first subscribed.
    Latest,
}

/// What to subscribe to: a consumer group and its topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// The consumer group, see [`super::consumer_group`]: each group sees every message once
    /// (at least once); members of one group share the work.
    pub group: String,
    /// The topics, see [`super::topic_name`].
    pub topics: Vec<String>,
    /// Where a new group starts.
    pub start: StartFrom,
    /// The partitions of the topics to consume, on a bus whose members pick them
    /// ([`PartitionSharing::ByMembers`], and NATS); `None` (the default) takes every one. A
    /// bus that shares partitions by itself (Kafka) ignores it.
    pub partitions: Option<Vec<u32>>,
    /// How long a delivery may stay unacknowledged before the bus hands it out again, on a
    /// bus that does so on its own (NATS's `ack_wait`); `None` keeps the adapter's setting.
    /// A consumer that waits out retries while holding a delivery asks for more than its
    /// longest wait, so that the bus does not hand the message to another member meanwhile.
    pub redelivery_after: Option<Duration>,
    /// This subscriber is a group of its own (see [`SubscribeOptions::per_instance`]): it sees
    /// every message published to the topics after it subscribed, whatever other subscribers
    /// of `group` see, and the bus forgets it once it closes.
    pub per_instance: bool,
}

/// How the members of a consumer group share a topic's partitions on a bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionSharing {
    /// The bus shares them: Kafka's group rebalancing, NATS's one message in flight per
    /// partition whichever member pulls it. Members subscribe to every partition.
    ByBus,
    /// The bus would hand every partition to the first member (RabbitMQ's single active
    /// consumer queues, the local bus's partition leases), so members agree among themselves
    /// which partitions each consumes and subscribe to those ([`SubscribeOptions::partitions`]).
    ByMembers,
}

impl SubscribeOptions {
    /// `group` on `topics`, starting at the earliest message.
    pub fn new(
        group: impl Into<String>,
        topics: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            group: group.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            start: StartFrom::Earliest,
            partitions: None,
            redelivery_after: None,
            per_instance: false,
        }
    }

    /// Makes this subscriber a group of its own, for work every instance of a service must
    /// do (an in-process cache evicting what an event made stale): each per-instance
    /// subscriber receives every message published after it subscribed, none published
    /// before ([`StartFrom::Latest`]), on every partition. `group` only names it (the bus adds
    /// a unique suffix). The bus forgets the group when the subscription closes, and soon
    /// after a process that died without closing: RabbitMQ deletes its exclusive queue with
    /// the connection, NATS its ephemeral consumer once inactive, Kafka the group's offsets
    /// by retention, the local bus its rows on close (and those whose leases lapsed long ago).
    pub fn per_instance(mut self) -> Self {
        self.per_instance = true;
        self.start = StartFrom::Latest;
        self
    }

    /// Sets where a new group starts.
    pub fn start(mut self, start: StartFrom) -> Self {
        self.start = start;
        self
    }

    /// Sets [`SubscribeOptions::redelivery_after`].
    pub fn redelivery_after(mut self, after: Duration) -> Self {
        self.redelivery_after = Some(after);
        self
    }

    /// Consumes only `partitions` (see [`SubscribeOptions::partitions`]).
    pub fn partitions(mut self, partitions: impl IntoIterator<Item = u32>) -> Self {
        self.partitions = Some(partitions.into_iter().collect());
        self
    }
}

/// What every bus adapter implements.
///
/// `publish` must publish the batch in order (a message is on the bus only after all messages
/// before it in the batch), return only once the bus has durably accepted it, and on failure
/// report how many leading messages were confirmed. Subscriptions deliver at least once: a
/// message is delivered again until it is acknowledged.
pub trait BusAdapter: Send + Sync + 'static {
    /// The adapter's subscription type.
    type Subscription: BusSubscription;

    /// A short name for logs and errors, e.g. `"local"`, `"kafka"`.
    fn name(&self) -> &'static str;

    /// Publishes `messages` in order.
    fn publish<'a>(
        &'a self,
        messages: &'a [OutboundMessage],
    ) -> impl Future<Output = Result<(), PublishError>> + Send + 'a;

    /// Joins `options.group` on `options.topics`.
    fn subscribe(
        &self,
        options: SubscribeOptions,
    ) -> impl Future<Output = Result<Self::Subscription, BusError>> + Send + '_;
}

/// One member of a consumer group.
///
/// Within a topic partition ([`Delivery::partition`]; the events of one aggregate share one),
/// deliveries come in publish order. Acknowledgements are cumulative per topic partition (as
/// Kafka offsets): handle a partition's deliveries in order and ack each after handling it.
pub trait BusSubscription: Send + 'static {
    /// Waits for the next delivery.
    fn next(&mut self) -> impl Future<Output = Result<Delivery, BusError>> + Send + '_;

    /// Confirms `delivery` was handled; it is not delivered to this group again.
    fn ack<'a>(
        &'a mut self,
        delivery: &'a Delivery,
    ) -> impl Future<Output = Result<(), BusError>> + Send + 'a;

    /// Gives `delivery` back: it (and what followed it on its topic partition) is delivered
    /// again.
    fn nack<'a>(
        &'a mut self,
        delivery: &'a Delivery,
    ) -> impl Future<Output = Result<(), BusError>> + Send + 'a;

    /// Leaves the group, releasing this member's share at once (rather than when its claim
    /// expires).
    fn close(self) -> impl Future<Output = Result<(), BusError>> + Send
    where
        Self: Sized;
}

/// The event bus of a service: one variant per adapter compiled in.
#[derive(Clone)]
#[non_exhaustive]
pub enum EventBus {
    /// The embedded SQLite-backed log shared by the services on one machine.
    #[cfg(feature = "sqlite")]
    Local(LocalBus),
    /// NATS JetStream (`nats://`).
    #[cfg(feature = "nats")]
    Nats(NatsBus),
    /// RabbitMQ (`amqp://`, `amqps://`).
    #[cfg(feature = "rabbitmq")]
    Rabbit(RabbitBus),
    /// Kafka (`kafka://`).
    #[cfg(feature = "kafka")]
    Kafka(KafkaBus),
    /// Any other adapter, see [`EventBus::custom`].
    Custom(CustomBus),
}

/// A subscription on an [`EventBus`].
#[non_exhaustive]
pub enum Subscription {
    /// On the local bus.
    #[cfg(feature = "sqlite")]
    Local(LocalSubscription),
    /// On NATS JetStream.
    #[cfg(feature = "nats")]
    Nats(NatsSubscription),
    /// On RabbitMQ.
    #[cfg(feature = "rabbitmq")]
    Rabbit(RabbitSubscription),
    /// On Kafka.
    #[cfg(feature = "kafka")]
    Kafka(KafkaSubscription),
    /// On a custom adapter.
    Custom(Box<dyn DynSubscription>),
}

/// Calls the same method on whichever adapter the enum holds.
macro_rules! dispatch {
    ($value:expr, $enum:ident, $bus:ident => $body:expr, custom $custom:ident => $custom_body:expr) => {
        match $value {
            #[cfg(feature = "sqlite")]
            $enum::Local($bus) => $body,
            #[cfg(feature = "nats")]
            $enum::Nats($bus) => $body,
            #[cfg(feature = "rabbitmq")]
            $enum::Rabbit($bus) => $body,
            #[cfg(feature = "kafka")]
            $enum::Kafka($bus) => $body,
            $enum::Custom($custom) => $custom_body,
        }
    };
}

impl EventBus {
    /// Opens the bus `url` names; unset (or `local:`) means the local bus file
    /// `<data_dir>/bus.db`, its directory created if missing.
    pub async fn connect(url: Option<&str>, data_dir: &Path) -> Result<Self, BusError> {
        let url = url.map(str::trim).filter(|url| !url.is_empty());
        match url {
            None | Some("local:" | "local://") => Self::local_default(data_dir).await,
            Some(url) if url.starts_with("sqlite:") => Self::local_url(url).await,
            Some(url) => {
                let scheme = match url.split_once("://") {
                    Some((scheme, _)) if !scheme.is_empty() => scheme.to_ascii_lowercase(),
                    _ => {
                        return Err(BusError::InvalidUrl {
                            reason: "expected `scheme://…`, `local:` or `sqlite:PATH`".into(),
                        });
                    }
                };
                Err(match scheme.as_str() {
                    #[cfg(feature = "nats")]
                    "nats" => return Ok(Self::Nats(NatsBus::connect(url).await?)),
                    #[cfg(not(feature = "nats"))]
                    "nats" => BusError::FeatureDisabled {
                        bus: "NATS JetStream",
                        feature: "nats",
                    },
                    #[cfg(feature = "rabbitmq")]
                    "amqp" | "amqps" => return Ok(Self::Rabbit(RabbitBus::connect(url).await?)),
                    #[cfg(not(feature = "rabbitmq"))]
                    "amqp" | "amqps" => BusError::FeatureDisabled {
                        bus: "RabbitMQ",
                        feature: "rabbitmq",
                    },
                    #[cfg(feature = "kafka")]
                    "kafka" => return Ok(Self::Kafka(KafkaBus::connect(url).await?)),
                    #[cfg(not(feature = "kafka"))]
                    "kafka" => BusError::FeatureDisabled {
                        bus: "Kafka",
                        feature: "kafka",
                    },
                    _ => BusError::UnsupportedScheme { scheme },
                })
            }
        }
    }

    /// Refuses, before connecting, a URL naming a bus without transactions (pattern
    /// `transactional`): `nats://` and `amqp(s)://`.
    pub(crate) fn refuse_without_transactions(url: Option<&str>) -> Result<(), BusError> {
        let scheme = url
            .and_then(|url| url.trim().split_once("://"))
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("nats") => Err(BusError::TransactionsUnsupported { bus: "nats" }),
            Some("amqp" | "amqps") => Err(BusError::TransactionsUnsupported { bus: "rabbitmq" }),
            _ => Ok(()),
        }
    }

    /// Opens the bus from `EVENT_BUS_URL` and `ALLFRAME_DATA_DIR`.
    pub(crate) async fn from_env(env: &Environment) -> Result<Self, BusError> {
        let data_dir = env
            .get_non_empty(crate::database::ALLFRAME_DATA_DIR)
            .unwrap_or_else(|| crate::database::DEFAULT_DATA_DIR.to_owned());
        let url = env.get_non_empty(EVENT_BUS_URL);
        Self::connect(url.as_deref(), Path::new(&data_dir)).await
    }

    /// The `EVENT_BUS_URL` of `env`, if set.
    pub(crate) fn url_from_env(env: &Environment) -> Option<String> {
        env.get_non_empty(EVENT_BUS_URL)
    }

    #[cfg(feature = "sqlite")]
    async fn local_default(data_dir: &Path) -> Result<Self, BusError> {
        let dir_error = |source| BusError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        };
        let dir = std::path::absolute(data_dir).map_err(dir_error)?;
        std::fs::create_dir_all(&dir).map_err(dir_error)?;
        let bus = LocalBus::open(&dir.join(DEFAULT_BUS_FILE), LocalBusOptions::default()).await?;
        Ok(Self::Local(bus))
    }

    #[cfg(not(feature = "sqlite"))]
    async fn local_default(_data_dir: &Path) -> Result<Self, BusError> {
        Err(BusError::FeatureDisabled {
            bus: "the local bus",
            feature: "sqlite",
        })
    }

    #[cfg(feature = "sqlite")]
    async fn local_url(url: &str) -> Result<Self, BusError> {
        Ok(Self::Local(
            LocalBus::open_url(url, LocalBusOptions::default()).await?,
        ))
    }

    #[cfg(not(feature = "sqlite"))]
    async fn local_url(_url: &str) -> Result<Self, BusError> {
        Self::local_default(Path::new("")).await
    }

    /// Wraps any adapter, e.g. a test double or an engine AllFrame does not ship.
    pub fn custom<A: BusAdapter>(adapter: A) -> Self {
        Self::Custom(CustomBus(Arc::new(adapter)))
    }

    /// The adapter's name, e.g. `"local"`.
    pub fn name(&self) -> &'static str {
        dispatch!(self, EventBus, bus => bus.name(), custom bus => bus.0.name_dyn())
    }

    /// Whether acknowledgements may be gathered and sent a few at a time: the bus hands out a
    /// partition's next messages without waiting for them (the local bus, RabbitMQ, Kafka).
    /// Not on NATS, whose partition consumers let the next message out only after the last
    /// one is acknowledged, nor on a custom bus, which may do the same.
    pub fn acks_may_wait(&self) -> bool {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Local(_) => true,
            #[cfg(feature = "rabbitmq")]
            Self::Rabbit(_) => true,
            #[cfg(feature = "kafka")]
            Self::Kafka(_) => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// How the members of a consumer group share the partitions of its topics here.
    pub fn partition_sharing(&self) -> PartitionSharing {
        match self {
            #[cfg(feature = "rabbitmq")]
            Self::Rabbit(_) => PartitionSharing::ByMembers,
            #[cfg(feature = "sqlite")]
            Self::Local(_) => PartitionSharing::ByMembers,
            #[allow(unreachable_patterns)]
            _ => PartitionSharing::ByBus,
        }
    }

    /// How many messages of `topics` consumer group `group` has not handled yet, as the bus
    /// reports it (NATS: pending and unacknowledged; RabbitMQ: ready in the group's queues;
    /// Kafka: high watermark minus committed offset; the local bus: after the committed
    /// offset); `None` for a custom adapter.
    pub async fn lag(&self, group: &str, topics: &[String]) -> Result<Option<u64>, BusError> {
        let _ = (group, topics);
        match self {
            #[cfg(feature = "sqlite")]
            Self::Local(bus) => Ok(Some(bus.lag(group, topics).await?)),
            #[cfg(feature = "nats")]
            Self::Nats(bus) => Ok(Some(bus.lag(group, topics).await?)),
            #[cfg(feature = "rabbitmq")]
            Self::Rabbit(bus) => Ok(Some(bus.lag(group).await?)),
            #[cfg(feature = "kafka")]
            Self::Kafka(bus) => Ok(Some(bus.lag(group, topics).await?)),
            Self::Custom(_) => Ok(None),
        }
    }

    /// Publishes `messages` in order, see [`BusAdapter::publish`].
    pub async fn publish(&self, messages: &[OutboundMessage]) -> Result<(), PublishError> {
        if messages.is_empty() {
            return Ok(());
        }
        dispatch!(self, EventBus,
            bus => bus.publish(messages).await,
            custom bus => bus.0.publish_dyn(messages).await)
    }

    /// This bus, able to open [`BusTransaction`]s (pattern `transactional`). Kafka gets
    /// `producers` transactional producers with ids `<transactional_id>-<i>` (the first
    /// initialised here, fencing an older producer with the same id), so that many
    /// transactions at once; the local bus needs nothing. NATS JetStream, RabbitMQ and
    /// custom adapters fail with [`BusError::TransactionsUnsupported`].
    pub async fn with_transactions(
        &self,
        transactional_id: &str,
        producers: usize,
    ) -> Result<Self, BusError> {
        let _ = (transactional_id, producers);
        match self {
            #[cfg(feature = "sqlite")]
            Self::Local(_) => Ok(self.clone()),
            #[cfg(feature = "kafka")]
            Self::Kafka(bus) => Ok(Self::Kafka(
                bus.with_transactions(transactional_id, producers).await?,
            )),
            #[allow(unreachable_patterns)]
            _ => Err(BusError::TransactionsUnsupported { bus: self.name() }),
        }
    }

    /// Opens a bus transaction. The bus must come from [`EventBus::with_transactions`] (the
    /// local bus always can); otherwise [`BusError::TransactionsUnsupported`].
    pub async fn begin_transaction(&self) -> Result<BusTransaction, BusError> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Local(bus) => Ok(BusTransaction::Local {
                bus: bus.clone(),
                messages: Vec::new(),
            }),
            #[cfg(feature = "kafka")]
            Self::Kafka(bus) => Ok(BusTransaction::Kafka(bus.begin_transaction().await?)),
            #[allow(unreachable_patterns)]
            _ => Err(BusError::TransactionsUnsupported { bus: self.name() }),
        }
    }

    /// Joins a consumer group, see [`BusAdapter::subscribe`].
    pub async fn subscribe(&self, options: SubscribeOptions) -> Result<Subscription, BusError> {
        if options.topics.is_empty() {
            return Err(BusError::NoTopics);
        }
        dispatch!(self, EventBus,
            bus => bus.subscribe(options).await.map(Subscription::from),
            custom bus => bus.0.subscribe_dyn(options).await.map(Subscription::Custom))
    }
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Local(bus) => f.debug_tuple("Local").field(bus).finish(),
            #[cfg(feature = "nats")]
            Self::Nats(bus) => f.debug_tuple("Nats").field(bus).finish(),
            #[cfg(feature = "rabbitmq")]
            Self::Rabbit(bus) => f.debug_tuple("Rabbit").field(bus).finish(),
            #[cfg(feature = "kafka")]
            Self::Kafka(bus) => f.debug_tuple("Kafka").field(bus).finish(),
            Self::Custom(bus) => f.debug_tuple("Custom").field(&bus.0.name_dyn()).finish(),
        }
    }
}

impl BusAdapter for EventBus {
    type Subscription = Subscription;

    fn name(&self) -> &'static str {
        EventBus::name(self)
    }

    fn publish<'a>(
        &'a self,
        messages: &'a [OutboundMessage],
    ) -> impl Future<Output = Result<(), PublishError>> + Send + 'a {
        EventBus::publish(self, messages)
    }

    fn subscribe(
        &self,
        options: SubscribeOptions,
    ) -> impl Future<Output = Result<Subscription, BusError>> + Send + '_ {
        EventBus::subscribe(self, options)
    }
}

impl BusSubscription for Subscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        dispatch!(self, Subscription,
            sub => sub.next().await,
            custom sub => sub.next_dyn().await)
    }

    async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        dispatch!(self, Subscription,
            sub => sub.ack(delivery).await,
            custom sub => sub.ack_dyn(delivery).await)
    }

    async fn nack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        dispatch!(self, Subscription,
            sub => sub.nack(delivery).await,
            custom sub => sub.nack_dyn(delivery).await)
    }

    async fn close(self) -> Result<(), BusError> {
        dispatch!(self, Subscription,
            sub => sub.close().await,
            custom sub => sub.close_dyn().await)
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Local(sub) => f.debug_tuple("Local").field(sub).finish(),
            #[cfg(feature = "nats")]
            Self::Nats(sub) => f.debug_tuple("Nats").field(sub).finish(),
            #[cfg(feature = "rabbitmq")]
            Self::Rabbit(sub) => f.debug_tuple("Rabbit").field(sub).finish(),
            #[cfg(feature = "kafka")]
            Self::Kafka(sub) => f.debug_tuple("Kafka").field(sub).finish(),
            Self::Custom(_) => f.debug_tuple("Custom").finish_non_exhaustive(),
        }
    }
}

#[cfg(feature = "sqlite")]
impl From<LocalSubscription> for Subscription {
    fn from(subscription: LocalSubscription) -> Self {
        Self::Local(subscription)
    }
}

#[cfg(feature = "nats")]
impl From<NatsSubscription> for Subscription {
    fn from(subscription: NatsSubscription) -> Self {
        Self::Nats(subscription)
    }
}

#[cfg(feature = "rabbitmq")]
impl From<RabbitSubscription> for Subscription {
    fn from(subscription: RabbitSubscription) -> Self {
        Self::Rabbit(subscription)
    }
}

#[cfg(feature = "kafka")]
impl From<KafkaSubscription> for Subscription {
    fn from(subscription: KafkaSubscription) -> Self {
        Self::Kafka(subscription)
    }
}

/// A custom adapter behind [`EventBus::custom`]. Opaque.
#[derive(Clone)]
pub struct CustomBus(Arc<dyn DynAdapter>);

/// The object-safe form of [`BusAdapter`], implemented for every adapter.
trait DynAdapter: Send + Sync {
    fn name_dyn(&self) -> &'static str;
    fn publish_dyn<'a>(
        &'a self,
        messages: &'a [OutboundMessage],
    ) -> BoxFuture<'a, Result<(), PublishError>>;
    fn subscribe_dyn(
        &self,
        options: SubscribeOptions,
    ) -> BoxFuture<'_, Result<Box<dyn DynSubscription>, BusError>>;
}

impl<A: BusAdapter> DynAdapter for A {
    fn name_dyn(&self) -> &'static str {
        BusAdapter::name(self)
    }

    fn publish_dyn<'a>(
        &'a self,
        messages: &'a [OutboundMessage],
    ) -> BoxFuture<'a, Result<(), PublishError>> {
        self.publish(messages).boxed()
    }

    fn subscribe_dyn(
        &self,
        options: SubscribeOptions,
    ) -> BoxFuture<'_, Result<Box<dyn DynSubscription>, BusError>> {
        async move {
            let subscription = self.subscribe(options).await?;
            Ok(Box::new(subscription) as Box<dyn DynSubscription>)
        }
        .boxed()
    }
}

/// The object-safe form of [`BusSubscription`], implemented for every subscription type.
pub trait DynSubscription: Send {
    /// See [`BusSubscription::next`].
    fn next_dyn(&mut self) -> BoxFuture<'_, Result<Delivery, BusError>>;
    /// See [`BusSubscription::ack`].
    fn ack_dyn<'a>(&'a mut self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), BusError>>;
    /// See [`BusSubscription::nack`].
    fn nack_dyn<'a>(&'a mut self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), BusError>>;
    /// See [`BusSubscription::close`].
    fn close_dyn(self: Box<Self>) -> BoxFuture<'static, Result<(), BusError>>;
}

impl<S: BusSubscription> DynSubscription for S {
    fn next_dyn(&mut self) -> BoxFuture<'_, Result<Delivery, BusError>> {
        self.next().boxed()
    }

    fn ack_dyn<'a>(&'a mut self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), BusError>> {
        self.ack(delivery).boxed()
    }

    fn nack_dyn<'a>(&'a mut self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), BusError>> {
        self.nack(delivery).boxed()
    }

    fn close_dyn(self: Box<Self>) -> BoxFuture<'static, Result<(), BusError>> {
        (*self).close().boxed()
    }
}

#[cfg(test)]
mod tests;
