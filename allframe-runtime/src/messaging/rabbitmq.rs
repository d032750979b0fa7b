//! The RabbitMQ adapter (feature `rabbitmq`, `EVENT_BUS_URL=amqp://…` / `amqps://…`), through
//! lapin.
//!
//! Naming: one durable topic exchange per architecture, named after the architecture (the first
//! part of every topic). A topic is carried in [`BUS_PARTITIONS`] partitions: an event's
//! routing key is its topic plus its partition token ([`partition_subject`], computed by the
//! publisher from the aggregate, the outbox relay's partition hash). A consumer group is one
//! durable classic queue per partition, `<group>.<partition>` ([`queue_name`]), bound to the
//! exchange with `<topic>.<partition>` for each of its topics, with a single active consumer
//! (`x-single-active-consumer`): one member of a group receives a partition queue at a time, in
//! order, and another takes over when it leaves, so order per aggregate holds with any number
//! of members. RabbitMQ 3.10 hands every single-active-consumer queue to the member that came
//! first, so which member consumes which partitions is the members' business
//! ([`SubscribeOptions::partitions`]: the consumer takes leases on partitions in its database);
//! the single active consumer keeps order even while two members believe they hold one.
//!
//! Publishing uses a channel in confirm mode: a batch is published in order on that one channel
//! (the broker routes it in that order), persistent (`delivery_mode = 2`), and `publish` returns
//! once the broker confirmed every message of it. The channel is free for the next batch while
//! the broker confirms one (the relay's lanes, which hold disjoint partitions, keep several
//! batches in flight); after a failure the channel is dropped and the next publish opens one. The envelope headers become the AMQP header
//! table (long strings), and the usual properties are set as well (`message_id`, `type`,
//! `app_id`, `correlation_id`, `content_type`, `timestamp`). A queue only receives what was
//! published after it was bound: a group's queue must be declared (the first `subscribe`)
//! before the events it must see. When a connection fails it is dropped and the next publish,
//! or the subscription's next `next`, opens a new one.
//!
//! A per-instance subscriber ([`SubscribeOptions::per_instance`]) consumes an exclusive,
//! auto-deleted queue of its own instead of the group's queues (`rabbitmq/per_instance.rs`).
//!
//! This module is the adapter only: no retry or dead-letter policy.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    Acker, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    ExchangeKind,
};
use uuid::Uuid;

use super::bus::{
    BusAdapter, BusError, BusSubscription, Delivery, DeliveryTag, OutboundMessage, PublishError,
    SubscribeOptions,
};
use super::envelope::Envelope;
use super::topic::{
    BUS_PARTITIONS, bus_partition, partition_subject, per_instance_group, split_partition_subject,
};

mod per_instance;

const BUS: &str = "rabbitmq";

/// How many later deliveries one nack may bounce back before the rewind is given up (the
/// nacked message went to another member of the group).
const MAX_BOUNCED: usize = 4096;

/// Tuning of the RabbitMQ adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RabbitBusOptions {
    /// How many unacknowledged deliveries the broker sends one member ahead (`basic.qos`).
    pub prefetch: u16,
    /// The longest pause between two reconnection attempts of a subscription.
    pub max_reconnect_interval: Duration,
}

impl Default for RabbitBusOptions {
    fn default() -> Self {
        Self {
            prefetch: 256,
            max_reconnect_interval: Duration::from_secs(5),
        }
    }
}

/// The failures of this adapter beyond the client's own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RabbitError {
    /// The publishing channel is gone.
    #[error("the publishing channel is closed")]
    NoChannel,
    /// The broker refused to take a message (`basic.nack` in confirm mode).
    #[error("the broker refused the message (negative publisher confirm)")]
    Refused,
    /// The channel was not in confirm mode.
    #[error("the broker did not confirm the message (publisher confirms are off)")]
    NotConfirmed,
}

fn client_error(error: lapin::Error) -> BusError {
    BusError::Adapter {
        bus: BUS,
        source: Box::new(error),
    }
}

/// The queue argument that makes a group's queue deliver to one member at a time.
const SINGLE_ACTIVE_CONSUMER: &str = "x-single-active-consumer";

/// A failed declaration of `queue`: a queue that exists with other arguments (declared before
/// groups used a single active consumer, or by hand) is a [`BusError::Conflict`] saying how to
/// fix it, since RabbitMQ cannot change a queue's arguments.
fn declare_error(error: lapin::Error, queue: &str) -> BusError {
    let precondition_failed = matches!(
        error.kind(),
        lapin::ErrorKind::ProtocolError(amqp)
            if matches!(
                amqp.kind(),
                AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
            )
    );
    if !precondition_failed {
        return client_error(error);
    }
    BusError::Conflict {
        bus: BUS,
        object: format!("queue `{queue}`"),
        detail: format!(
            "its arguments differ from `{SINGLE_ACTIVE_CONSUMER}: true`, which consumer groups \
             need for order per aggregate with several members ({error})"
        ),
        fix: format!(
            "stop the group's members, let it drain, delete it (`rabbitmqctl delete_queue \
             {queue}`) and start them again: the first subscribe declares it anew"
        ),
    }
}

fn rabbit_error(error: RabbitError) -> BusError {
    BusError::Adapter {
        bus: BUS,
        source: Box::new(error),
    }
}

/// The exchange that carries `topic`: its first part (the architecture).
pub fn exchange_name(topic: &str) -> &str {
    topic.split('.').next().unwrap_or(topic)
}

/// The queue of `partition` of consumer group `group`: `<group>.<partition>`.
pub fn queue_name(group: &str, partition: u32) -> String {
    format!("{group}.{partition}")
}

/// The RabbitMQ bus. Cheap to clone.
#[derive(Clone)]
pub struct RabbitBus {
    inner: Arc<Inner>,
}

struct Inner {
    /// Secret: it may hold a password; never printed.
    url: String,
    options: RabbitBusOptions,
    publisher: tokio::sync::Mutex<Option<Publisher>>,
    /// Counts the publishers opened, so a batch whose confirms failed drops only the
    /// publisher it was sent on.
    generation: AtomicU64,
}

/// The publishing connection and its confirm-mode channel.
struct Publisher {
    connection: Connection,
    channel: Channel,
    exchanges: HashSet<String>,
    generation: u64,
}

impl fmt::Debug for RabbitBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitBus")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

async fn open_channel(url: &str) -> Result<(Connection, Channel), BusError> {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .map_err(client_error)?;
    let channel = connection.create_channel().await.map_err(client_error)?;
    Ok((connection, channel))
}

async fn declare_exchange(channel: &Channel, name: &str) -> Result<(), BusError> {
    channel
        .exchange_declare(
            ShortString::from(name),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(client_error)
}

fn properties(envelope: &Envelope) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (name, value) in envelope.headers() {
        headers.insert(
            ShortString::from(name),
            AMQPValue::LongString(LongString::from(value)),
        );
    }
    let timestamp = envelope
        .occurred_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(ShortString::from(envelope.format.content_type()))
        .with_message_id(ShortString::from(envelope.id.hyphenated().to_string()))
        .with_type(ShortString::from(envelope.event_type.as_str()))
        .with_app_id(ShortString::from(envelope.source.as_str()))
        .with_correlation_id(ShortString::from(envelope.correlation_id.as_str()))
        .with_timestamp(timestamp)
        .with_headers(headers)
}

impl RabbitBus {
    /// Connects to the broker `url` names (`amqp://user:password@host:port/vhost`), with
    /// default options. The URL is never included in errors.
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        Self::connect_with(url, RabbitBusOptions::default()).await
    }

    /// Connects with `options`; the connection is checked at once.
    pub async fn connect_with(url: &str, options: RabbitBusOptions) -> Result<Self, BusError> {
        let publisher = Self::open_publisher(url, 0).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                url: url.to_owned(),
                options,
                publisher: tokio::sync::Mutex::new(Some(publisher)),
                generation: AtomicU64::new(1),
            }),
        })
    }

    /// Opens a publisher: a new connection and a confirm-mode channel.
    async fn open_publisher(url: &str, generation: u64) -> Result<Publisher, BusError> {
        let (connection, channel) = open_channel(url).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(client_error)?;
        Ok(Publisher {
            connection,
            channel,
            exchanges: HashSet::new(),
            generation,
        })
    }

    /// Publishes `messages` in order on one confirm-mode channel and waits for every confirm.
    /// The channel is held while the batch is sent, not while the broker confirms it: several
    /// batches (the relay's lanes) can wait for their confirms at once.
    pub async fn publish(&self, messages: &[OutboundMessage]) -> Result<(), PublishError> {
        let (sent, generation) = {
            let mut guard = self.inner.publisher.lock().await;
            if guard.is_none() {
                *guard = Some(self.new_publisher().await.map_err(PublishError::nothing)?);
            }
            let Some(publisher) = guard.as_mut() else {
                return Err(PublishError::nothing(rabbit_error(RabbitError::NoChannel)));
            };
            (
                Self::send_on(publisher, messages).await,
                publisher.generation,
            )
        };
        let (confirms, failure) = sent;
        let result = match failure {
            Some((index, source)) => Err(Self::settle(confirms, index, source).await),
            None => match Self::confirmed_prefix(confirms).await {
                (delivered, Some(source)) => Err(PublishError { delivered, source }),
                (_, None) => Ok(()),
            },
        };
        if result.is_err() {
            // The channel may be closed or in an unknown state: the next publish reconnects
            // (unless another batch already did).
            let mut guard = self.inner.publisher.lock().await;
            if guard
                .as_ref()
                .is_some_and(|publisher| publisher.generation == generation)
            {
                *guard = None;
            }
        }
        result
    }

    /// A publisher with the next generation number.
    async fn new_publisher(&self) -> Result<Publisher, BusError> {
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed);
        Self::open_publisher(&self.inner.url, generation).await
    }

    /// Sends `messages` in order on `publisher`'s channel; returns their pending confirms and,
    /// if one could not be sent, its index and the error (nothing after it was sent).
    async fn send_on(
        publisher: &mut Publisher,
        messages: &[OutboundMessage],
    ) -> (Vec<lapin::PublisherConfirm>, Option<(usize, BusError)>) {
        let mut confirms = Vec::with_capacity(messages.len());
        for (index, message) in messages.iter().enumerate() {
            let exchange = exchange_name(&message.topic);
            if !publisher.exchanges.contains(exchange) {
                if let Err(source) = declare_exchange(&publisher.channel, exchange).await {
                    return (confirms, Some((index, source)));
                }
                publisher.exchanges.insert(exchange.to_owned());
            }
            let sent = publisher
                .channel
                .basic_publish(
                    ShortString::from(exchange),
                    ShortString::from(partition_subject(
                        &message.topic,
                        bus_partition(&message.envelope),
                    )),
                    BasicPublishOptions::default(),
                    &message.envelope.payload,
                    properties(&message.envelope),
                )
                .await;
            match sent {
                Ok(confirm) => confirms.push(confirm),
                Err(error) => return (confirms, Some((index, client_error(error)))),
            }
        }
        (confirms, None)
    }

    /// Waits for the confirms of what was sent before a failure at `index`.
    async fn settle(
        confirms: Vec<lapin::PublisherConfirm>,
        index: usize,
        source: BusError,
    ) -> PublishError {
        match Self::confirmed_prefix(confirms).await {
            (delivered, Some(earlier)) => PublishError {
                delivered,
                source: earlier,
            },
            (delivered, None) => {
                debug_assert_eq!(delivered, index);
                PublishError { delivered, source }
            }
        }
    }

    /// How many leading confirms are positive, and the first failure if any.
    async fn confirmed_prefix(confirms: Vec<lapin::PublisherConfirm>) -> (usize, Option<BusError>) {
        let count = confirms.len();
        for (index, confirm) in confirms.into_iter().enumerate() {
            let failure = match confirm.await {
                Ok(Confirmation::Ack(_)) => continue,
                Ok(Confirmation::Nack(_)) => rabbit_error(RabbitError::Refused),
                Ok(Confirmation::NotRequested) => rabbit_error(RabbitError::NotConfirmed),
                Err(error) => client_error(error),
            };
            return (index, Some(failure));
        }
        (count, None)
    }

    /// Joins `options.group`: declares its partition queues (every one, so that none misses
    /// events), binds them to every topic, and consumes from those of `options.partitions`
    /// (all by default). `options.start` has no effect: a queue holds what was published after
    /// it was bound, from the first subscription on. A per-instance subscriber declares an
    /// exclusive queue of its own instead, bound to every partition.
    pub async fn subscribe(
        &self,
        options: SubscribeOptions,
    ) -> Result<RabbitSubscription, BusError> {
        if options.topics.is_empty() {
            return Err(BusError::NoTopics);
        }
        let mut topics = options.topics;
        topics.sort();
        topics.dedup();
        let (group, instance_queue, partitions) = if options.per_instance {
            let queue = per_instance_group(&options.group);
            (queue.clone(), Some(queue), all_partitions())
        } else {
            let partitions = options.partitions.unwrap_or_else(all_partitions);
            (options.group, None, partitions)
        };
        let mut subscription = RabbitSubscription {
            url: self.inner.url.clone(),
            options: self.inner.options,
            group,
            instance_queue,
            topics,
            partitions,
            link: None,
            next_tag: 1,
            pending: BTreeMap::new(),
            rewinds: HashMap::new(),
        };
        subscription.link = Some(subscription.open().await?);
        Ok(subscription)
    }
}

impl RabbitBus {
    /// How many messages `group`'s partition queues hold ready (RabbitMQ does not count the
    /// delivered, unacknowledged ones here). The group's queues must exist.
    pub async fn lag(&self, group: &str) -> Result<u64, BusError> {
        // A channel of its own on the publishing connection: a failed passive declare closes
        // the channel, not the connection, and no connection is opened per reading.
        let channel = {
            let mut guard = self.inner.publisher.lock().await;
            if guard.is_none() {
                *guard = Some(self.new_publisher().await?);
            }
            let Some(publisher) = guard.as_ref() else {
                return Err(rabbit_error(RabbitError::NoChannel));
            };
            publisher
                .connection
                .create_channel()
                .await
                .map_err(client_error)?
        };
        let lag = Self::ready_messages(&channel, group).await;
        // Best effort: the broker has closed the channel already if a declare failed.
        let _ = channel.close(200, ShortString::from("lag read")).await;
        lag
    }

    /// The ready messages of `group`'s partition queues, read on `channel`.
    async fn ready_messages(channel: &Channel, group: &str) -> Result<u64, BusError> {
        let mut lag = 0;
        for partition in 0..BUS_PARTITIONS {
            let queue = channel
                .queue_declare(
                    ShortString::from(queue_name(group, partition)),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(client_error)?;
            lag += u64::from(queue.message_count());
        }
        Ok(lag)
    }
}

impl BusAdapter for RabbitBus {
    type Subscription = RabbitSubscription;

    fn name(&self) -> &'static str {
        BUS
    }

    async fn publish(&self, messages: &[OutboundMessage]) -> Result<(), PublishError> {
        RabbitBus::publish(self, messages).await
    }

    async fn subscribe(&self, options: SubscribeOptions) -> Result<RabbitSubscription, BusError> {
        RabbitBus::subscribe(self, options).await
    }
}

/// A member of a consumer group on RabbitMQ.
pub struct RabbitSubscription {
    url: String,
    options: RabbitBusOptions,
    group: String,
    /// A per-instance subscriber's exclusive queue, consumed instead of the group's.
    instance_queue: Option<String>,
    topics: Vec<String>,
    /// The partitions consumed.
    partitions: Vec<u32>,
    /// Boxed: the connection and consumers are large and live as long as the subscription.
    link: Option<Box<Link>>,
    next_tag: u64,
    /// Handed out and not yet acknowledged, by this subscription's own tag.
    pending: BTreeMap<u64, Pending>,
    /// Topic partitions rewound by a nack: the nacked event and the later ones already
    /// bounced.
    rewinds: HashMap<(String, u32), Rewind>,
}

/// The consuming connection and its consumers, one per partition queue.
struct Link {
    connection: Connection,
    consumers: futures_util::stream::SelectAll<Consumer>,
}

struct Pending {
    topic: String,
    partition: u32,
    acker: Acker,
}

/// Every partition of a topic.
fn all_partitions() -> Vec<u32> {
    (0..BUS_PARTITIONS).collect()
}

struct Rewind {
    id: Uuid,
    bounced: HashSet<Uuid>,
}

impl fmt::Debug for RabbitSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitSubscription")
            .field("group", &self.group)
            .field("per_instance", &self.instance_queue.is_some())
            .field("topics", &self.topics)
            .field("partitions", &self.partitions)
            .field("connected", &self.link.is_some())
            .field("unacknowledged", &self.pending.len())
            .finish_non_exhaustive()
    }
}

fn header_text(value: &AMQPValue) -> Option<&str> {
    match value {
        AMQPValue::LongString(text) => std::str::from_utf8(text.as_bytes()).ok(),
        AMQPValue::ShortString(text) => Some(text.as_str()),
        _ => None,
    }
}

impl RabbitSubscription {
    /// Opens a connection, declares the partition queues and their bindings, and starts
    /// consuming this member's partitions.
    async fn open(&self) -> Result<Box<Link>, BusError> {
        let (connection, channel) = open_channel(&self.url).await?;
        channel
            .basic_qos(self.options.prefetch, BasicQosOptions::default())
            .await
            .map_err(client_error)?;
        for topic in &self.topics {
            declare_exchange(&channel, exchange_name(topic)).await?;
        }
        let mut consumers = futures_util::stream::SelectAll::new();
        if let Some(queue) = &self.instance_queue {
            consumers.push(per_instance::consume(&channel, queue, &self.topics).await?);
            return Ok(Box::new(Link {
                connection,
                consumers,
            }));
        }
        for partition in 0..BUS_PARTITIONS {
            let queue = queue_name(&self.group, partition);
            self.declare_partition(&channel, &queue, partition).await?;
            if !self.partitions.contains(&partition) {
                continue;
            }
            let consumer = channel
                .basic_consume(
                    ShortString::from(queue),
                    ShortString::from(""),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(client_error)?;
            consumers.push(consumer);
        }
        Ok(Box::new(Link {
            connection,
            consumers,
        }))
    }

    /// Declares the queue of `partition` and binds it to the partition of every topic.
    async fn declare_partition(
        &self,
        channel: &Channel,
        queue: &str,
        partition: u32,
    ) -> Result<(), BusError> {
        // Single active consumer: one member of the group at a time gets the queue, in order;
        // the others stand by and take over (from the first unacknowledged message) when it
        // goes. That keeps order per aggregate with any number of members.
        let mut arguments = FieldTable::default();
        arguments.insert(
            ShortString::from(SINGLE_ACTIVE_CONSUMER),
            AMQPValue::Boolean(true),
        );
        channel
            .queue_declare(
                ShortString::from(queue),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments,
            )
            .await
            .map_err(|error| declare_error(error, queue))?;
        for topic in &self.topics {
            channel
                .queue_bind(
                    ShortString::from(queue),
                    ShortString::from(exchange_name(topic)),
                    ShortString::from(partition_subject(topic, partition)),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(client_error)?;
        }
        Ok(())
    }

    /// Waits for the next delivery. A lost connection is reopened with backoff (deliveries
    /// not yet acknowledged are redelivered by the broker); acks of deliveries from the lost
    /// connection then fail.
    pub async fn next(&mut self) -> Result<Delivery, BusError> {
        let mut pause = Duration::from_millis(100);
        loop {
            let Some(link) = self.link.as_mut() else {
                match self.open().await {
                    Ok(link) => {
                        self.link = Some(link);
                        pause = Duration::from_millis(100);
                    }
                    Err(error) => {
                        tracing::warn!(group = %self.group, error = %error, "RabbitMQ: reconnecting");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(self.options.max_reconnect_interval);
                    }
                }
                continue;
            };
            if link.consumers.is_empty() {
                // No partition to consume: wait, as a member of a busy group does.
                std::future::pending::<()>().await;
            }
            let message = match link.consumers.next().await {
                Some(Ok(message)) => message,
                Some(Err(error)) => {
                    tracing::warn!(group = %self.group, error = %error, "RabbitMQ: consumer failed");
                    self.drop_link();
                    continue;
                }
                None => {
                    self.drop_link();
                    continue;
                }
            };
            let (topic, partition) = match split_partition_subject(message.routing_key.as_str()) {
                Some((topic, partition)) => (topic.to_owned(), partition),
                None => (message.routing_key.as_str().to_owned(), 0),
            };
            let headers: Vec<(&str, &str)> = message
                .properties
                .headers()
                .iter()
                .flat_map(|table| table.inner().iter())
                .filter_map(|(name, value)| Some((name.as_str(), header_text(value)?)))
                .collect();
            let tag = DeliveryTag::new(self.next_tag);
            let delivery = Delivery::read(topic.clone(), &headers, message.data.clone(), tag)
                .in_partition(partition);
            let id = delivery.envelope().id;
            let stream = (topic, partition);
            if let Some(rewind) = self.rewinds.get_mut(&stream) {
                if id == rewind.id {
                    self.rewinds.remove(&stream);
                } else if rewind.bounced.insert(id) {
                    if rewind.bounced.len() > MAX_BOUNCED {
                        self.rewinds.remove(&stream);
                    }
                    message
                        .acker
                        .nack(BasicNackOptions {
                            multiple: false,
                            requeue: true,
                        })
                        .await
                        .map_err(client_error)?;
                    continue;
                }
            }
            self.next_tag += 1;
            let (topic, partition) = stream;
            self.pending.insert(
                tag.value(),
                Pending {
                    topic,
                    partition,
                    acker: message.acker,
                },
            );
            return Ok(delivery);
        }
    }

    /// Forgets the connection; the broker requeues what it had delivered on it.
    fn drop_link(&mut self) {
        self.link = None;
        self.pending.clear();
    }

    fn check(&self, delivery: &Delivery) -> Result<(), BusError> {
        if self.topics.iter().any(|t| t == delivery.topic()) {
            Ok(())
        } else {
            Err(BusError::ForeignDelivery {
                topic: delivery.topic().to_owned(),
            })
        }
    }

    /// Takes the pending deliveries of `delivery`'s topic partition whose tags `keep` says.
    fn take(&mut self, delivery: &Delivery, keep: impl Fn(u64) -> bool) -> Vec<(u64, Pending)> {
        let (topic, partition) = (delivery.topic(), delivery.partition());
        let tags: Vec<u64> = self
            .pending
            .iter()
            .filter(|(tag, pending)| {
                pending.topic == topic && pending.partition == partition && keep(**tag)
            })
            .map(|(tag, _)| *tag)
            .collect();
        tags.into_iter()
            .filter_map(|tag| self.pending.remove_entry(&tag))
            .collect()
    }

    /// Acknowledges `delivery` and every earlier unacknowledged delivery of its topic partition.
    pub async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        self.check(delivery)?;
        let last = delivery.tag().value();
        let mut failure = None;
        for (_, pending) in self.take(delivery, |tag| tag <= last) {
            if let Err(error) = pending.acker.ack(BasicAckOptions::default()).await {
                failure.get_or_insert(error);
            }
        }
        failure.map_or(Ok(()), |error| Err(client_error(error)))
    }

    /// Requeues `delivery` and every later unacknowledged delivery of its topic partition;
    /// deliveries of the partition already on their way are bounced once, so it comes back in
    /// order.
    pub async fn nack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        self.check(delivery)?;
        let first = delivery.tag().value();
        let mut failure = None;
        for (_, pending) in self.take(delivery, |tag| tag >= first) {
            let requeue = BasicNackOptions {
                multiple: false,
                requeue: true,
            };
            if let Err(error) = pending.acker.nack(requeue).await {
                failure.get_or_insert(error);
            }
        }
        self.rewinds.insert(
            (delivery.topic().to_owned(), delivery.partition()),
            Rewind {
                id: delivery.envelope().id,
                bounced: HashSet::new(),
            },
        );
        failure.map_or(Ok(()), |error| Err(client_error(error)))
    }

    /// Leaves the group: unacknowledged deliveries are requeued at once and the connection
    /// closed (a per-instance subscriber's queue goes with it).
    pub async fn close(mut self) -> Result<(), BusError> {
        let mut failure = None;
        if self.instance_queue.is_some() {
            // No other member: the broker deletes the queue, and what it holds, with the
            // connection.
            self.pending.clear();
        }
        for (_, pending) in std::mem::take(&mut self.pending) {
            let requeue = BasicNackOptions {
                multiple: false,
                requeue: true,
            };
            if let Err(error) = pending.acker.nack(requeue).await {
                failure.get_or_insert(error);
            }
        }
        if let Some(link) = self.link.take()
            && let Err(error) = link
                .connection
                .close(200, ShortString::from("consumer closed"))
                .await
        {
            failure.get_or_insert(error);
        }
        failure.map_or(Ok(()), |error| Err(client_error(error)))
    }
}

impl BusSubscription for RabbitSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        RabbitSubscription::next(self).await
    }

    async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        RabbitSubscription::ack(self, delivery).await
    }

    async fn nack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        RabbitSubscription::nack(self, delivery).await
    }

    async fn close(self) -> Result<(), BusError> {
        RabbitSubscription::close(self).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn exchange_is_the_architecture() {
        assert_eq!(exchange_name("shop.user-service.UserCreated"), "shop");
    }

    #[test]
    fn headers_are_long_strings_and_properties_are_set() {
        let envelope = Envelope {
            id: Uuid::now_v7(),
            event_type: "UserCreated".into(),
            schema_version: 1,
            aggregate_type: "User".into(),
            aggregate_id: "7".into(),
            occurred_at: SystemTime::now(),
            source: "user-service".into(),
            correlation_id: "c".into(),
            causation_id: None,
            traceparent: None,
            tracestate: None,
            tenant_id: None,
            format: super::super::envelope::PayloadFormat::Json,
            payload: b"{}".to_vec(),
        };
        let props = properties(&envelope);
        assert_eq!(props.delivery_mode(), &Some(2));
        let table = props.headers().as_ref().expect("headers");
        let id = table.inner().get("ce-id").and_then(header_text);
        assert_eq!(id, Some(envelope.id.hyphenated().to_string().as_str()));
    }
}
