//! The NATS JetStream adapter (feature `nats`, `EVENT_BUS_URL=nats://…`), through async-nats.
//!
//! Naming: one stream per architecture, `ALLFRAME_<architecture>`, capturing the subjects
//! `<architecture>.>`. A topic is carried in [`BUS_PARTITIONS`] partitions: an event's subject
//! is its topic plus its partition token ([`partition_subject`], computed by the publisher from
//! the aggregate, the outbox relay's partition hash). A consumer group is one durable pull
//! consumer per (group, topic, partition), filtered on that one subject (one filter per
//! consumer works on every JetStream server from 2.9 on; subject-mapping partitions would need
//! server configuration, and multi-filter consumers 2.10); its name is the group, topic and
//! partition with `.` replaced by `_` plus a hash of them ([`consumer_name`]), so distinct
//! triples never share a consumer. By default each keeps one message in flight
//! (`max_ack_pending = 1`, [`NatsBusOptions::max_in_flight`]): the members of a group pull
//! from every partition, each partition's next message goes out only once its previous one is
//! acknowledged, so order per aggregate holds with any number of members while up to
//! [`BUS_PARTITIONS`] messages per topic are handled at once, spread over the members.
//!
//! Publishing pipelines a batch: messages of different partitions are in flight together,
//! while a message goes out only once the previous message of its partition subject has been
//! acknowledged by JetStream (stored), and the first failure stops the batch. Each partition's
//! messages therefore reach the stream as an in-order prefix, even across a reconnect, and
//! `PublishError::delivered` counts the acknowledged prefix of the batch (anything stored
//! after it is a duplicate when published again, see below).
//! Each message carries `Nats-Msg-Id` = the envelope id: a relay retry within the stream's
//! duplicate window is stored once. The envelope headers become NATS headers, the payload the
//! body. Acks are explicit and confirmed by the server (`double_ack`); a nack naks the delivery
//! and every later unacknowledged delivery of its partition, so they come back in order.
//!
//! A per-instance subscriber ([`SubscribeOptions::per_instance`]) gets the same consumers,
//! ephemeral (no durable name; named after a unique group `<group>.instance~<uuid>`), starting
//! with what is published after it subscribed (`DeliverPolicy::New`): closing deletes them, and
//! the server deletes those of a process that died once they have been inactive for
//! [`per_instance_inactivity`].
//!
//! This module is the adapter only: no retry or dead-letter policy.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::{self, AckKind, consumer::pull, message::PublishMessage, stream};
use futures_util::StreamExt as _;
use futures_util::stream::SelectAll;

use super::bus::{
    BusAdapter, BusError, BusSubscription, Delivery, DeliveryTag, OutboundMessage, PublishError,
    StartFrom, SubscribeOptions,
};
use super::topic::{
    BUS_PARTITIONS, bus_partition, partition_subject, per_instance_group, split_partition_subject,
};

const BUS: &str = "nats";

/// How many later deliveries one nack may bounce back before the rewind is given up (the
/// nacked message went to another member of the group).
const MAX_BOUNCED: usize = 4096;

/// How long a pull request waits on the server for messages before the client renews it.
const PULL_EXPIRES: Duration = Duration::from_secs(2);

/// The delay of the naks of a closing member: past the expiry of its last pull requests.
const CLOSE_NAK_DELAY: Duration = Duration::from_millis(2_500);

/// How long a per-instance subscriber's ephemeral consumers may go without a pull request
/// before the server deletes them (`inactive_threshold`): a minute, or twice the redelivery
/// wait if longer (a member holding a delivery that long pulls nothing meanwhile).
fn per_instance_inactivity(ack_wait: Duration) -> Duration {
    Duration::from_secs(60).max(ack_wait.saturating_mul(2))
}

/// Tuning of the NATS adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatsBusOptions {
    /// How long to wait for the server when connecting.
    pub connect_timeout: Duration,
    /// How long a delivery may stay unacknowledged before JetStream delivers it again.
    pub ack_wait: Duration,
    /// How long a stream keeps messages (`max_age` of streams this adapter creates).
    pub max_age: Duration,
    /// The window in which a repeated `Nats-Msg-Id` is stored once.
    pub duplicate_window: Duration,
    /// How many messages of one (group, topic, partition) may be out unacknowledged at once,
    /// over all the group's members (the consumer's `max_ack_pending`). With 1, the default,
    /// members take turns on each partition and order per aggregate holds with any number of
    /// them; a member must ack or nack a delivery before it gets the next of that partition.
    /// With more, members compete for a partition's messages, and order per aggregate holds
    /// only with one active member.
    pub max_in_flight: u32,
}

impl Default for NatsBusOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            ack_wait: Duration::from_secs(30),
            max_age: Duration::from_secs(7 * 24 * 60 * 60),
            duplicate_window: Duration::from_secs(2 * 60),
            max_in_flight: 1,
        }
    }
}

/// The NATS JetStream bus. Cheap to clone.
#[derive(Clone)]
pub struct NatsBus {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    options: NatsBusOptions,
    /// The streams this process has created or found, by name.
    streams: tokio::sync::Mutex<HashMap<String, stream::Stream>>,
}

impl fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBus")
            .field("state", &self.inner.client.connection_state())
            .finish_non_exhaustive()
    }
}

fn adapter_error(error: impl std::error::Error + Send + Sync + 'static) -> BusError {
    BusError::Adapter {
        bus: BUS,
        source: Box::new(error),
    }
}

/// The stream that holds `topic`: `ALLFRAME_<first part of the topic>`.
pub fn stream_name(topic: &str) -> String {
    format!("ALLFRAME_{}", architecture_of(topic))
}

fn architecture_of(topic: &str) -> &str {
    topic.split('.').next().unwrap_or(topic)
}

/// The durable consumer of `group` on `partition` of `topic`.
pub fn consumer_name(group: &str, topic: &str, partition: u32) -> String {
    let readable = format!("{group}__{topic}__p{partition}").replace('.', "_");
    let partition = partition.to_string();
    format!(
        "{readable}_{:016x}",
        fnv1a(&[group, "\n", topic, "\n", &partition])
    )
}

fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|part| part.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

impl NatsBus {
    /// Connects to the server `url` names (`nats://[user:password@]host:port`), with default
    /// options. The URL is never included in errors.
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        Self::connect_with(url, NatsBusOptions::default()).await
    }

    /// Connects with `options`. After the first connection the client reconnects by itself;
    /// publishes fail (and are retried by the relay) while it is away.
    pub async fn connect_with(url: &str, options: NatsBusOptions) -> Result<Self, BusError> {
        let connect = async_nats::ConnectOptions::new()
            .connection_timeout(options.connect_timeout)
            .max_reconnects(None);
        let client = async_nats::connect_with_options(url, connect)
            .await
            .map_err(|error| adapter_error(ConnectFailed(error.kind())))?;
        let jetstream = jetstream::new(client.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                jetstream,
                options,
                streams: tokio::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The JetStream context, e.g. to inspect streams.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.jetstream
    }

    /// The stream holding `topic`, created (file storage, limits retention) if missing.
    async fn stream_for(&self, topic: &str) -> Result<stream::Stream, BusError> {
        let name = stream_name(topic);
        let mut streams = self.inner.streams.lock().await;
        if let Some(stream) = streams.get(&name) {
            return Ok(stream.clone());
        }
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![format!("{}.>", architecture_of(topic))],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            max_age: self.inner.options.max_age,
            duplicate_window: self.inner.options.duplicate_window,
            ..Default::default()
        };
        let stream = self
            .inner
            .jetstream
            .get_or_create_stream(config)
            .await
            .map_err(adapter_error)?;
        streams.insert(name, stream.clone());
        Ok(stream)
    }

    /// Publishes `messages` in order, each on its partition's subject: up to one message per
    /// partition in flight, the next of a partition sent once JetStream stored the previous.
    pub async fn publish(&self, messages: &[OutboundMessage]) -> Result<(), PublishError> {
        let mut in_flight = InFlight::new();
        for (index, message) in messages.iter().enumerate() {
            let envelope = &message.envelope;
            let partition = bus_partition(envelope);
            while in_flight.iter().any(|(_, p, _)| *p == partition) {
                settle_front(&mut in_flight).await?;
            }
            let sent = async {
                self.stream_for(&message.topic).await?;
                let mut headers = async_nats::HeaderMap::new();
                for (name, value) in envelope.headers() {
                    headers.insert(name, value);
                }
                let publish = PublishMessage::build()
                    .payload(envelope.payload.clone().into())
                    .headers(headers)
                    .message_id(envelope.id.hyphenated().to_string());
                self.inner
                    .jetstream
                    .send_publish(partition_subject(&message.topic, partition), publish)
                    .await
                    .map_err(adapter_error)
            }
            .await;
            match sent {
                Ok(ack) => in_flight.push_back((index, partition, ack)),
                Err(source) => {
                    // What was sent before is confirmed (or not) first: `delivered` is exact.
                    while !in_flight.is_empty() {
                        settle_front(&mut in_flight).await?;
                    }
                    return Err(PublishError {
                        delivered: index,
                        source,
                    });
                }
            }
        }
        while !in_flight.is_empty() {
            settle_front(&mut in_flight).await?;
        }
        Ok(())
    }

    /// Joins `options.group` on `options.topics`: one durable pull consumer per topic
    /// partition (of `options.partitions`, every one by default); for a per-instance
    /// subscriber, one ephemeral consumer per topic partition.
    pub async fn subscribe(&self, options: SubscribeOptions) -> Result<NatsSubscription, BusError> {
        if options.topics.is_empty() {
            return Err(BusError::NoTopics);
        }
        if options.per_instance {
            return self.subscribe_per_instance(options).await;
        }
        let mut topics = options.topics;
        topics.sort();
        topics.dedup();
        let deliver_policy = match options.start {
            StartFrom::Earliest => jetstream::consumer::DeliverPolicy::All,
            StartFrom::Latest => jetstream::consumer::DeliverPolicy::New,
        };
        let partitions: Vec<u32> = match options.partitions {
            Some(partitions) => partitions,
            None => (0..BUS_PARTITIONS).collect(),
        };
        let mut pairs = Vec::with_capacity(topics.len() * partitions.len());
        for topic in &topics {
            pairs.extend(
                partitions
                    .iter()
                    .map(|&partition| (topic.clone(), partition)),
            );
        }
        let mut consumers = Vec::with_capacity(pairs.len());
        for (topic, partition) in &pairs {
            let (topic, partition) = (topic, *partition);
            let stream = self.stream_for(topic).await?;
            let name = consumer_name(&options.group, topic, partition);
            let config = pull::Config {
                durable_name: Some(name.clone()),
                description: Some(format!(
                    "AllFrame consumer group `{}` on `{topic}`, partition {partition}",
                    options.group
                )),
                filter_subject: partition_subject(topic, partition),
                deliver_policy,
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: options
                    .redelivery_after
                    .unwrap_or(self.inner.options.ack_wait),
                max_deliver: -1,
                // With 1 (the default): the partition's next message goes out, to whichever
                // member pulls, only after the previous one is acknowledged (or nak'd, or its
                // ack_wait ran out and it goes out again first), so order per aggregate holds
                // with any number of members.
                max_ack_pending: i64::from(self.inner.options.max_in_flight.max(1)),
                ..Default::default()
            };
            let mut consumer: jetstream::consumer::PullConsumer = stream
                .get_or_create_consumer(&name, config.clone())
                .await
                .map_err(adapter_error)?;
            let existing = &consumer.cached_info().config;
            let (limit, started) = (existing.max_ack_pending, existing.deliver_policy);
            if limit != config.max_ack_pending || existing.ack_wait != config.ack_wait {
                // Declared with another in-flight limit or redelivery wait (or before there
                // was one): update it in place, keeping where it started.
                let wanted = config.max_ack_pending;
                let stream_name = stream.cached_info().config.name.clone();
                let update = pull::Config {
                    deliver_policy: started,
                    ..config
                };
                consumer =
                    stream
                        .create_consumer(update)
                        .await
                        .map_err(|error| BusError::Conflict {
                            bus: BUS,
                            object: format!("consumer `{name}`"),
                            detail: format!(
                                "`max_ack_pending` is {limit} (wanted {wanted}) or `ack_wait` \
                             differs, and the server refused to change it ({error})"
                            ),
                            fix: format!(
                                "stop the group's members and delete it (`nats consumer rm \
                             {stream_name} {name}`); the first subscribe creates it anew"
                            ),
                        })?;
            }
            consumers.push(consumer);
        }
        let mut subscription = NatsSubscription {
            group: options.group,
            topics,
            consumers,
            ephemeral: None,
            messages: SelectAll::new(),
            pending: BTreeMap::new(),
            rewinds: HashMap::new(),
        };
        subscription.open_streams().await?;
        Ok(subscription)
    }

    /// A per-instance subscriber: an ephemeral consumer per topic partition, every partition,
    /// delivering what is published from now on.
    async fn subscribe_per_instance(
        &self,
        options: SubscribeOptions,
    ) -> Result<NatsSubscription, BusError> {
        let group = per_instance_group(&options.group);
        let mut topics = options.topics;
        topics.sort();
        topics.dedup();
        let ack_wait = options
            .redelivery_after
            .unwrap_or(self.inner.options.ack_wait);
        let mut subscription = NatsSubscription {
            group,
            topics: topics.clone(),
            consumers: Vec::new(),
            ephemeral: Some(Ephemeral {
                jetstream: self.inner.jetstream.clone(),
                consumers: Vec::new(),
            }),
            messages: SelectAll::new(),
            pending: BTreeMap::new(),
            rewinds: HashMap::new(),
        };
        // On a failure, what was created is deleted.
        let opened = async {
            for topic in &topics {
                let stream = self.stream_for(topic).await?;
                for partition in 0..BUS_PARTITIONS {
                    let name = consumer_name(&subscription.group, topic, partition);
                    let config = pull::Config {
                        durable_name: None,
                        name: Some(name.clone()),
                        description: Some(format!(
                            "AllFrame per-instance subscriber `{}` on `{topic}`, partition \
                             {partition}",
                            subscription.group
                        )),
                        filter_subject: partition_subject(topic, partition),
                        deliver_policy: jetstream::consumer::DeliverPolicy::New,
                        ack_policy: jetstream::consumer::AckPolicy::Explicit,
                        ack_wait,
                        max_deliver: -1,
                        max_ack_pending: i64::from(self.inner.options.max_in_flight.max(1)),
                        inactive_threshold: per_instance_inactivity(ack_wait),
                        ..Default::default()
                    };
                    let consumer = stream
                        .create_consumer(config)
                        .await
                        .map_err(adapter_error)?;
                    subscription.consumers.push(consumer);
                    if let Some(ephemeral) = &mut subscription.ephemeral {
                        ephemeral.consumers.push((stream_name(topic), name));
                    }
                }
            }
            subscription.open_streams().await
        }
        .await;
        if let Err(error) = opened {
            let _ = subscription.close().await;
            return Err(error);
        }
        Ok(subscription)
    }
}

impl NatsBus {
    /// How many messages of `topics` `group` has not acknowledged: pending and in flight, over
    /// the partition consumers (one the group has not created counts nothing).
    pub async fn lag(&self, group: &str, topics: &[String]) -> Result<u64, BusError> {
        let mut lag = 0;
        for topic in topics {
            let stream = self.stream_for(topic).await?;
            for partition in 0..BUS_PARTITIONS {
                match stream
                    .consumer_info(consumer_name(group, topic, partition))
                    .await
                {
                    Ok(info) => {
                        lag += info.num_pending + u64::try_from(info.num_ack_pending).unwrap_or(0);
                    }
                    Err(error) if error.kind() == ConsumerInfoErrorKind::NotFound => {}
                    Err(error) => return Err(adapter_error(error)),
                }
            }
        }
        Ok(lag)
    }
}

/// Publishes sent and not yet acknowledged, in send order: (index in the batch, partition, ack).
type InFlight = VecDeque<(usize, u32, jetstream::context::PublishAckFuture)>;

/// Waits for the ack of the oldest publish in flight. Acks are awaited in send order, so a
/// failure's `delivered` is the acknowledged prefix of the batch.
async fn settle_front(in_flight: &mut InFlight) -> Result<(), PublishError> {
    if let Some((index, _, ack)) = in_flight.pop_front() {
        ack.await.map_err(|error| PublishError {
            delivered: index,
            source: adapter_error(error),
        })?;
    }
    Ok(())
}

impl BusAdapter for NatsBus {
    type Subscription = NatsSubscription;

    fn name(&self) -> &'static str {
        BUS
    }

    async fn publish(&self, messages: &[OutboundMessage]) -> Result<(), PublishError> {
        NatsBus::publish(self, messages).await
    }

    async fn subscribe(&self, options: SubscribeOptions) -> Result<NatsSubscription, BusError> {
        NatsBus::subscribe(self, options).await
    }
}

/// The client could not connect (only the kind is kept: the server's message may echo the
/// URL).
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to the NATS server: {0}")]
pub struct ConnectFailed(async_nats::ConnectErrorKind);

/// A member of a consumer group on NATS JetStream.
pub struct NatsSubscription {
    group: String,
    topics: Vec<String>,
    consumers: Vec<jetstream::consumer::PullConsumer>,
    /// A per-instance subscriber's ephemeral consumers, deleted on close.
    ephemeral: Option<Ephemeral>,
    messages: SelectAll<pull::Stream>,
    /// Handed out and not yet acknowledged, by (topic, partition, stream sequence).
    pending: BTreeMap<(String, u32, u64), jetstream::Message>,
    /// Topic partitions rewound by a nack: the nacked sequence and the later ones already
    /// bounced.
    rewinds: HashMap<(String, u32), Rewind>,
}

struct Rewind {
    from: u64,
    bounced: HashSet<u64>,
}

/// The ephemeral consumers of a per-instance subscriber: (stream, consumer) names.
struct Ephemeral {
    jetstream: jetstream::Context,
    consumers: Vec<(String, String)>,
}

impl fmt::Debug for NatsSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSubscription")
            .field("group", &self.group)
            .field("topics", &self.topics)
            .field("unacknowledged", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl NatsSubscription {
    async fn open_streams(&mut self) -> Result<(), BusError> {
        let mut messages = SelectAll::new();
        for consumer in &self.consumers {
            let stream = consumer
                .stream()
                .expires(PULL_EXPIRES)
                .heartbeat(PULL_EXPIRES / 2)
                .messages()
                .await
                .map_err(adapter_error)?;
            messages.push(stream);
        }
        self.messages = messages;
        Ok(())
    }

    /// Waits for the next delivery. Missed heartbeats (the server restarting) are waited out;
    /// other failures are returned, and the next call carries on.
    pub async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            let Some(item) = self.messages.next().await else {
                self.open_streams().await?;
                continue;
            };
            let message = match item {
                Ok(message) => message,
                Err(error) if matches!(error.kind(), pull::MessagesErrorKind::MissingHeartbeat) => {
                    tracing::warn!(group = %self.group, "NATS: missed heartbeats, waiting for the server");
                    continue;
                }
                Err(error) => return Err(adapter_error(error)),
            };
            let (topic, partition) = match split_partition_subject(message.subject.as_str()) {
                Some((topic, partition)) => (topic.to_owned(), partition),
                None => (message.subject.as_str().to_owned(), 0),
            };
            let sequence = message
                .info()
                .map_err(|source| BusError::Adapter { bus: BUS, source })?
                .stream_sequence;
            let stream = (topic, partition);
            if let Some(rewind) = self.rewinds.get_mut(&stream) {
                if sequence == rewind.from {
                    self.rewinds.remove(&stream);
                } else if sequence > rewind.from && rewind.bounced.insert(sequence) {
                    if rewind.bounced.len() > MAX_BOUNCED {
                        self.rewinds.remove(&stream);
                    }
                    message
                        .ack_with(AckKind::Nak(None))
                        .await
                        .map_err(|source| BusError::Adapter { bus: BUS, source })?;
                    continue;
                }
            }
            let headers: Vec<(&str, &str)> = message
                .headers
                .iter()
                .flat_map(|headers| headers.iter())
                .filter_map(|(name, values)| Some((name.as_ref(), values.first()?.as_str())))
                .collect();
            let (topic, partition) = stream;
            let delivery = Delivery::read(
                topic.clone(),
                &headers,
                message.payload.to_vec(),
                DeliveryTag::new(sequence),
            )
            .in_partition(partition);
            self.pending.insert((topic, partition, sequence), message);
            return Ok(delivery);
        }
    }

    fn check_topic(&self, delivery: &Delivery) -> Result<(), BusError> {
        if self.topics.iter().any(|t| t == delivery.topic()) {
            Ok(())
        } else {
            Err(BusError::ForeignDelivery {
                topic: delivery.topic().to_owned(),
            })
        }
    }

    /// Takes the pending deliveries of `delivery`'s topic partition in `range` of sequences, in
    /// order.
    fn take_pending(
        &mut self,
        delivery: &Delivery,
        range: impl std::ops::RangeBounds<u64>,
    ) -> Vec<((String, u32, u64), jetstream::Message)> {
        let (topic, partition) = (delivery.topic().to_owned(), delivery.partition());
        let keys: Vec<(String, u32, u64)> = self
            .pending
            .range((topic.clone(), partition, 0)..=(topic, partition, u64::MAX))
            .map(|(key, _)| key.clone())
            .filter(|(_, _, sequence)| range.contains(sequence))
            .collect();
        keys.into_iter()
            .filter_map(|key| self.pending.remove_entry(&key))
            .collect()
    }

    /// Acknowledges `delivery` and every earlier unacknowledged delivery of its topic
    /// partition, each confirmed by the server.
    pub async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        self.check_topic(delivery)?;
        let mut taken = self
            .take_pending(delivery, ..=delivery.tag().value())
            .into_iter();
        while let Some((key, message)) = taken.next() {
            if let Err(error) = message.double_ack().await {
                self.pending.insert(key, message);
                self.pending.extend(taken);
                return Err(adapter_error(AckFailed(error.to_string())));
            }
        }
        Ok(())
    }

    /// Naks `delivery` and every later unacknowledged delivery of its topic partition;
    /// deliveries of the partition already on their way are bounced, so it comes back in
    /// order.
    pub async fn nack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        self.check_topic(delivery)?;
        let from = delivery.tag().value();
        let taken = self.take_pending(delivery, from..);
        let mut bounced = HashSet::new();
        let mut failure = None;
        for ((_, _, sequence), message) in taken {
            bounced.insert(sequence);
            if let Err(error) = message.ack_with(AckKind::Nak(None)).await {
                failure.get_or_insert(error);
            }
        }
        bounced.remove(&from);
        self.rewinds.insert(
            (delivery.topic().to_owned(), delivery.partition()),
            Rewind { from, bounced },
        );
        match failure {
            None => Ok(()),
            Some(error) => Err(adapter_error(AckFailed(error.to_string()))),
        }
    }

    /// Leaves the group: unacknowledged deliveries are nak'd so other members get them at once.
    ///
    /// The naks are delayed until this member's last pull requests have expired: the server
    /// redelivers a nak'd message to a waiting pull request at once, and one of this member's
    /// (it stays on the server after the stream is dropped) would swallow it until `ack_wait`
    /// ran out. A per-instance subscriber deletes its consumers instead (one the server already
    /// deleted for inactivity is no failure).
    pub async fn close(mut self) -> Result<(), BusError> {
        self.messages = SelectAll::new();
        if let Some(ephemeral) = self.ephemeral.take() {
            self.pending.clear();
            let mut failure = None;
            for (stream, consumer) in &ephemeral.consumers {
                match ephemeral
                    .jetstream
                    .delete_consumer_from_stream(consumer, stream)
                    .await
                {
                    Ok(_) => {}
                    Err(error)
                        if matches!(
                            error.kind(),
                            jetstream::stream::ConsumerErrorKind::JetStream(ref js)
                                if js.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND
                        ) => {}
                    Err(error) => {
                        failure.get_or_insert(error);
                    }
                }
            }
            return failure.map_or(Ok(()), |error| Err(adapter_error(error)));
        }
        let mut failure = None;
        for (_, message) in std::mem::take(&mut self.pending) {
            if let Err(error) = message.ack_with(AckKind::Nak(Some(CLOSE_NAK_DELAY))).await {
                failure.get_or_insert(error);
            }
        }
        match failure {
            None => Ok(()),
            Some(error) => Err(adapter_error(AckFailed(error.to_string()))),
        }
    }
}

/// An ack or nak was not accepted by the server.
#[derive(Debug, thiserror::Error)]
#[error("the acknowledgement was not confirmed by the server: {0}")]
pub struct AckFailed(String);

impl BusSubscription for NatsSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        NatsSubscription::next(self).await
    }

    async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        NatsSubscription::ack(self, delivery).await
    }

    async fn nack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        NatsSubscription::nack(self, delivery).await
    }

    async fn close(self) -> Result<(), BusError> {
        NatsSubscription::close(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_distinct() {
        assert_eq!(
            stream_name("shop.user-service.UserCreated"),
            "ALLFRAME_shop"
        );
        let a = consumer_name("shop.a_b", "shop.x.E", 0);
        let b = consumer_name("shop.a.b", "shop.x.E", 0);
        assert_ne!(a, b);
        assert_ne!(a, consumer_name("shop.a_b", "shop.x.E", 1));
        assert!(a.starts_with("shop_a_b__shop_x_E__p0_"));
        assert!(!a.contains('.'));
    }
}
