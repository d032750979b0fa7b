//! The Kafka adapter (feature `kafka`, `EVENT_BUS_URL=kafka://host:port[,host:port…]`), through
//! rdkafka (bundled librdkafka).
//!
//! Naming: a topic is the Kafka topic as it is (topics must exist, or the cluster must create
//! them automatically); a consumer group is the Kafka `group.id`. The record key is the
//! aggregate id, so the events of one aggregate land on one partition, in publish order.
//!
//! Publishing uses an idempotent producer (`enable.idempotence`, `acks=all`): a batch is
//! enqueued in order and `publish` returns once every delivery report is positive (the
//! in-sync replicas have the records). The envelope headers become Kafka record headers, the
//! payload the record value. Consumers never auto-commit: `ack` commits the offset after the
//! delivery (cumulative per partition); `nack` hands the delivery and what followed it on its
//! partition out again from this member's own copies, without a seek (see [`KafkaSubscription::nack`]).
//!
//! A per-instance subscriber ([`SubscribeOptions::per_instance`]) joins no group: it has a
//! unique `group.id` (`<group>.instance~<uuid>`) but assigns itself every partition the topics
//! have when it subscribes, at their ends (the high watermark, read with the consumer's
//! `read_committed` isolation), so it gets exactly what is published from then on, with no
//! rebalance to wait for. Its acks commit nothing (nobody resumes from its offsets): the
//! cluster keeps no trace of it. A topic must exist when it subscribes (the consumer may
//! create it where the cluster creates topics automatically); partitions added later are not
//! read.
//!
//! Pattern `transactional` ([`KafkaBus::with_transactions`]) adds a pool of transactional
//! producers (`transactional.id` = `<architecture>.<service>.<instance uuid>-<i>`) whose
//! transactions hold a unit of work's events; consumers read with
//! `isolation.level=read_committed`, so a broker that tracks aborted transactions never
//! delivers their events. The pool, and how a fenced or broken producer is replaced, are in
//! `kafka_transaction.rs`.
//!
//! This module is the adapter only: no retry or dead-letter policy.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientConfig, ClientContext};

use super::bus::{
    BusAdapter, BusError, BusSubscription, Delivery, DeliveryTag, OutboundMessage, PublishError,
    StartFrom, SubscribeOptions,
};
use super::kafka_transaction::{KafkaTransaction, TransactionalProducers};
use super::topic::per_instance_group;

pub(super) const BUS: &str = "kafka";

/// Tuning of the Kafka adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaBusOptions {
    /// How long a record may wait for its delivery report (`message.timeout.ms`).
    pub delivery_timeout: Duration,
    /// How long to wait for the cluster when connecting.
    pub request_timeout: Duration,
    /// How long a group member may go silent before the group rebalances.
    pub session_timeout: Duration,
}

impl Default for KafkaBusOptions {
    fn default() -> Self {
        Self {
            delivery_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(10),
        }
    }
}

pub(super) fn kafka_error(error: KafkaError) -> BusError {
    BusError::Adapter {
        bus: BUS,
        source: Box::new(error),
    }
}

pub(super) fn join_error(error: tokio::task::JoinError) -> BusError {
    BusError::Adapter {
        bus: BUS,
        source: Box::new(error),
    }
}

/// The bootstrap servers of a `kafka://host:port[,host:port…][/]` URL.
pub fn bootstrap_servers(url: &str) -> Result<String, BusError> {
    let invalid = |reason: &str| BusError::InvalidUrl {
        reason: reason.to_owned(),
    };
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or_else(|| invalid("expected `kafka://host:port`"))?;
    let servers = rest.trim_end_matches('/');
    if servers.is_empty() || servers.contains('/') || servers.contains('@') {
        return Err(invalid(
            "expected `kafka://host:port[,host:port…]` (no path, no credentials)",
        ));
    }
    Ok(servers.to_owned())
}

/// The Kafka bus. Cheap to clone.
#[derive(Clone)]
pub struct KafkaBus {
    inner: Arc<Inner>,
}

struct Inner {
    servers: String,
    options: KafkaBusOptions,
    producer: FutureProducer,
    /// The transactional producers (pattern `transactional`).
    transactional: Option<Arc<TransactionalProducers>>,
}

impl fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaBus")
            .field("servers", &self.inner.servers)
            .finish_non_exhaustive()
    }
}

impl KafkaBus {
    /// Connects to the cluster `url` names, with default options; the cluster must answer a
    /// metadata request.
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        Self::connect_with(url, KafkaBusOptions::default()).await
    }

    /// Connects with `options`.
    pub async fn connect_with(url: &str, options: KafkaBusOptions) -> Result<Self, BusError> {
        let servers = bootstrap_servers(url)?;
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &servers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                options.delivery_timeout.as_millis().to_string(),
            )
            .set("linger.ms", "2")
            .create()
            .map_err(kafka_error)?;
        let probe = producer.clone();
        let timeout = options.request_timeout;
        tokio::task::spawn_blocking(move || probe.client().fetch_metadata(None, timeout))
            .await
            .map_err(join_error)?
            .map_err(kafka_error)?;
        Ok(Self {
            inner: Arc::new(Inner {
                servers,
                options,
                producer,
                transactional: None,
            }),
        })
    }

    /// This bus with `producers` transactional producers (at least one; `transactional.id` =
    /// `<transactional_id>-<i>`), so that many transactions at once. The first is initialised here:
    /// `init_transactions` registers its id with the cluster's transaction coordinator and
    /// fences any older producer that used it; the others start on first use.
    pub async fn with_transactions(
        &self,
        transactional_id: &str,
        producers: usize,
    ) -> Result<Self, BusError> {
        let options = self.inner.options;
        let mut base = ClientConfig::new();
        base.set("bootstrap.servers", &self.inner.servers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                options.delivery_timeout.as_millis().to_string(),
            )
            .set(
                "transaction.timeout.ms",
                (options.delivery_timeout.as_millis() * 2).to_string(),
            )
            .set("linger.ms", "2");
        let producers = TransactionalProducers::start(
            &base,
            transactional_id,
            producers,
            options.request_timeout * 3,
            options.delivery_timeout,
        )
        .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                servers: self.inner.servers.clone(),
                options,
                producer: self.inner.producer.clone(),
                transactional: Some(Arc::new(producers)),
            }),
        })
    }

    /// Opens a transaction on a free transactional producer, waiting for one when every
    /// producer is in a transaction. Needs [`KafkaBus::with_transactions`].
    pub async fn begin_transaction(&self) -> Result<KafkaTransaction, BusError> {
        let Some(producers) = &self.inner.transactional else {
            return Err(BusError::Adapter {
                bus: BUS,
                source: "this Kafka bus has no transactional producer (open it with \
                         `with_transactions`)"
                    .into(),
            });
        };
        producers.begin().await
    }

    /// Publishes `messages` in order (key = aggregate id) and waits for every delivery report.
    pub async fn publish(&self, messages: &[OutboundMessage]) -> Result<(), PublishError> {
        send_all(&self.inner.producer, messages).await
    }

    /// Joins `options.group` (`group.id`) on `options.topics`; offsets are committed by `ack`
    /// only.
    pub async fn subscribe(
        &self,
        options: SubscribeOptions,
    ) -> Result<KafkaSubscription, BusError> {
        if options.topics.is_empty() {
            return Err(BusError::NoTopics);
        }
        let mut topics = options.topics;
        topics.sort();
        topics.dedup();
        if options.per_instance {
            return self.subscribe_per_instance(&options.group, topics).await;
        }
        let reset = match options.start {
            StartFrom::Earliest => "earliest",
            StartFrom::Latest => "latest",
        };
        let consumer: StreamConsumer<RebalanceWatch> = ClientConfig::new()
            .set("bootstrap.servers", &self.inner.servers)
            .set("group.id", &options.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", reset)
            .set(
                "session.timeout.ms",
                self.inner.options.session_timeout.as_millis().to_string(),
            )
            .create_with_context(RebalanceWatch::default())
            .map_err(kafka_error)?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(kafka_error)?;
        Ok(KafkaSubscription {
            consumer: Arc::new(consumer),
            group: options.group,
            commits: true,
            topics,
            next_tag: 1,
            pending: BTreeMap::new(),
            replay: VecDeque::new(),
        })
    }

    /// A per-instance subscriber of `group`: every partition of `topics` assigned at its end.
    async fn subscribe_per_instance(
        &self,
        group: &str,
        topics: Vec<String>,
    ) -> Result<KafkaSubscription, BusError> {
        let group = per_instance_group(group);
        let consumer: StreamConsumer<RebalanceWatch> = ClientConfig::new()
            .set("bootstrap.servers", &self.inner.servers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "latest")
            .set("allow.auto.create.topics", "true")
            .create_with_context(RebalanceWatch::default())
            .map_err(kafka_error)?;
        let consumer = Arc::new(consumer);
        let (probe, names, timeout) = (
            Arc::clone(&consumer),
            topics.clone(),
            self.inner.options.request_timeout,
        );
        tokio::task::spawn_blocking(move || {
            let mut list = TopicPartitionList::new();
            for topic in &names {
                let metadata = probe
                    .fetch_metadata(Some(topic), timeout)
                    .map_err(kafka_error)?;
                let partitions: Vec<i32> = metadata
                    .topics()
                    .iter()
                    .filter(|t| t.name() == topic && t.error().is_none())
                    .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                    .collect();
                if partitions.is_empty() {
                    return Err(BusError::Adapter {
                        bus: BUS,
                        source: format!(
                            "topic `{topic}` does not exist: a per-instance subscriber reads \
                             the partitions a topic has when it subscribes"
                        )
                        .into(),
                    });
                }
                for partition in partitions {
                    let (_, end) = probe
                        .fetch_watermarks(topic, partition, timeout)
                        .map_err(kafka_error)?;
                    list.add_partition_offset(topic, partition, Offset::Offset(end))
                        .map_err(kafka_error)?;
                }
            }
            probe.assign(&list).map_err(kafka_error)
        })
        .await
        .map_err(join_error)??;
        Ok(KafkaSubscription {
            consumer,
            group,
            commits: false,
            topics,
            next_tag: 1,
            pending: BTreeMap::new(),
            replay: VecDeque::new(),
        })
    }
}

impl KafkaBus {
    /// How many records of `topics` `group` has not committed: per partition, the high
    /// watermark minus the committed offset (minus the low watermark where it never committed).
    pub async fn lag(&self, group: &str, topics: &[String]) -> Result<u64, BusError> {
        let (servers, timeout) = (
            self.inner.servers.clone(),
            self.inner.options.request_timeout,
        );
        let (group, topics) = (group.to_owned(), topics.to_vec());
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &servers)
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .create()
                .map_err(kafka_error)?;
            let mut lag = 0;
            for topic in &topics {
                let metadata = consumer
                    .fetch_metadata(Some(topic), timeout)
                    .map_err(kafka_error)?;
                let mut list = TopicPartitionList::new();
                for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
                    list.add_partition(topic, partition.id());
                }
                let committed = consumer
                    .committed_offsets(list, timeout)
                    .map_err(kafka_error)?;
                for element in committed.elements() {
                    let (low, high) = consumer
                        .fetch_watermarks(topic, element.partition(), timeout)
                        .map_err(kafka_error)?;
                    let from = match element.offset() {
                        Offset::Offset(offset) => offset,
                        _ => low,
                    };
                    lag += u64::try_from(high - from).unwrap_or(0);
                }
            }
            Ok(lag)
        })
        .await
        .map_err(join_error)?
    }
}

/// Enqueues `messages` in order (key = aggregate id) on `producer` and waits for every
/// delivery report.
pub(super) async fn send_all(
    producer: &FutureProducer,
    messages: &[OutboundMessage],
) -> Result<(), PublishError> {
    let mut reports = Vec::with_capacity(messages.len());
    let mut failure = None;
    for message in messages {
        let envelope = &message.envelope;
        let mut headers = OwnedHeaders::new_with_capacity(14);
        for (key, value) in envelope.headers() {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_str()),
            });
        }
        let record = FutureRecord::to(&message.topic)
            .key(envelope.aggregate_id.as_str())
            .payload(envelope.payload.as_slice())
            .headers(headers);
        match producer.send_result(record) {
            Ok(report) => reports.push(report),
            Err((error, _)) => {
                failure = Some(kafka_error(error));
                break;
            }
        }
    }
    let enqueued = reports.len();
    for (delivered, report) in reports.into_iter().enumerate() {
        let error = match report.await {
            Ok(Ok(_)) => continue,
            Ok(Err((error, _))) => kafka_error(error),
            Err(_) => kafka_error(KafkaError::Canceled),
        };
        return Err(PublishError {
            delivered,
            source: error,
        });
    }
    // Every enqueued record was delivered; the next one could not be enqueued.
    failure.map_or(Ok(()), |source| {
        Err(PublishError {
            delivered: enqueued,
            source,
        })
    })
}

impl BusAdapter for KafkaBus {
    type Subscription = KafkaSubscription;

    fn name(&self) -> &'static str {
        BUS
    }

    async fn publish(&self, messages: &[OutboundMessage]) -> Result<(), PublishError> {
        KafkaBus::publish(self, messages).await
    }

    async fn subscribe(&self, options: SubscribeOptions) -> Result<KafkaSubscription, BusError> {
        KafkaBus::subscribe(self, options).await
    }
}

/// Partitions taken from this member by a rebalance, noted by the consumer's callbacks and
/// applied by the subscription before its next step.
#[derive(Default)]
struct RebalanceWatch {
    revoked: Mutex<Vec<(String, i32)>>,
}

impl ClientContext for RebalanceWatch {}

impl ConsumerContext for RebalanceWatch {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let mut revoked = self
                .revoked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            revoked.extend(
                list.elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition())),
            );
        }
    }
}

impl RebalanceWatch {
    fn take_revoked(&self) -> Vec<(String, i32)> {
        std::mem::take(
            &mut *self
                .revoked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// A member of a consumer group on Kafka.
pub struct KafkaSubscription {
    consumer: Arc<StreamConsumer<RebalanceWatch>>,
    group: String,
    /// Whether acks commit offsets (not for a per-instance subscriber: nobody resumes from
    /// them).
    commits: bool,
    topics: Vec<String>,
    next_tag: u64,
    /// Handed out and not yet acknowledged, by this subscription's own tag.
    pending: BTreeMap<u64, Held>,
    /// Nacked records to hand out again before anything new, in offset order per partition.
    replay: VecDeque<Held>,
}

/// A record handed out by this member: where it sits, and its envelope for a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    topic: String,
    partition: i32,
    offset: i64,
    delivery: Delivery,
}

impl Held {
    fn on(&self, topic: &str, partition: i32) -> bool {
        self.topic == topic && self.partition == partition
    }
}

impl fmt::Debug for KafkaSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSubscription")
            .field("group", &self.group)
            .field("topics", &self.topics)
            .field("unacknowledged", &self.pending.len())
            .field("to_replay", &self.replay.len())
            .finish_non_exhaustive()
    }
}

impl KafkaSubscription {
    /// Waits for the next record: first what a `nack` put back, then the partitions' records,
    /// in offset order per partition.
    pub async fn next(&mut self) -> Result<Delivery, BusError> {
        self.forget_revoked();
        if let Some(held) = self.replay.pop_front() {
            return Ok(self.hand_out(held));
        }
        let message = self.consumer.recv().await.map_err(kafka_error)?;
        let topic = message.topic().to_owned();
        let headers: Vec<(&str, &str)> = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .filter_map(|h| Some((h.key, std::str::from_utf8(h.value?).ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        let payload = message.payload().unwrap_or_default().to_vec();
        // The tag is set when the record is handed out (a nack hands it out again).
        let delivery = Delivery::read(topic.clone(), &headers, payload, DeliveryTag::new(0))
            .in_partition(u32::try_from(message.partition()).unwrap_or(0));
        let held = Held {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            delivery,
        };
        drop(message);
        // A rebalance during `recv` may have taken partitions (this record's is still ours).
        self.forget_revoked();
        Ok(self.hand_out(held))
    }

    fn hand_out(&mut self, held: Held) -> Delivery {
        let tag = self.next_tag;
        self.next_tag += 1;
        let delivery = held.delivery.with_tag(DeliveryTag::new(tag));
        self.pending.insert(tag, held);
        delivery
    }

    /// Drops what this member holds of partitions a rebalance took away: their new owner
    /// starts from the committed offset, so nothing unacknowledged is lost.
    fn forget_revoked(&mut self) {
        for (topic, partition) in self.consumer.context().take_revoked() {
            self.pending.retain(|_, held| !held.on(&topic, partition));
            self.replay.retain(|held| !held.on(&topic, partition));
        }
    }

    fn held(&self, delivery: &Delivery) -> Result<&Held, BusError> {
        self.pending
            .get(&delivery.tag().value())
            .filter(|held| held.topic == delivery.topic())
            .ok_or_else(|| BusError::ForeignDelivery {
                topic: delivery.topic().to_owned(),
            })
    }

    /// Commits, synchronously, the offset after `delivery` (covering every earlier record of its
    /// partition): cumulative per topic partition, as [`BusSubscription::ack`] promises.
    pub async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        if !self.topics.iter().any(|t| t == delivery.topic()) {
            return Err(BusError::ForeignDelivery {
                topic: delivery.topic().to_owned(),
            });
        }
        self.forget_revoked();
        if self.held(delivery).is_err() {
            // Covered by a later ack, put back by a nack, or its partition was revoked.
            return Ok(());
        }
        let last = delivery.tag().value();
        let partition = self.held(delivery)?.partition;
        let covered = |tag: u64, held: &Held| tag <= last && held.on(delivery.topic(), partition);
        let next = self
            .pending
            .range(..=last)
            .filter(|(tag, held)| covered(**tag, held))
            .map(|(_, held)| held.offset + 1)
            .max()
            .unwrap_or(0);
        if self.commits {
            let mut list = TopicPartitionList::new();
            list.add_partition_offset(delivery.topic(), partition, Offset::Offset(next))
                .map_err(kafka_error)?;
            let consumer = Arc::clone(&self.consumer);
            tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync))
                .await
                .map_err(join_error)?
                .map_err(kafka_error)?;
        }
        self.pending.retain(|tag, held| !covered(*tag, held));
        Ok(())
    }

    /// Puts the delivery and every later unacknowledged one of its partition back: `next`
    /// hands them out again, in offset order, before anything new of that partition. Nothing
    /// is committed, so if this member leaves first, the partition's next owner gets them.
    ///
    /// No seek: the records come from this member's copies. A broker may serve fetches from
    /// record-batch boundaries only (tansu's object-store engine returns the batches whose base
    /// offset is at or after the fetch offset), and a seek into the middle of a batch would
    /// then never bring the nacked record back.
    pub async fn nack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        self.forget_revoked();
        let held = self.held(delivery)?;
        let (topic, partition, from) = (held.topic.clone(), held.partition, held.offset);
        let mut again: Vec<Held> = Vec::new();
        self.pending.retain(|_, held| {
            let back = held.on(&topic, partition) && held.offset >= from;
            if back {
                again.push(held.clone());
            }
            !back
        });
        // Records of the partition already put back by an earlier nack come after these.
        self.replay.retain(|held| {
            let back = held.on(&topic, partition);
            if back {
                again.push(held.clone());
            }
            !back
        });
        again.sort_by_key(|held| held.offset);
        again.dedup_by_key(|held| held.offset);
        self.replay.extend(again);
        Ok(())
    }

    /// Leaves the group at once (the group rebalances without waiting for the session
    /// timeout); what is unacknowledged goes to the partitions' next owners. A per-instance
    /// subscriber just stops.
    pub async fn close(self) -> Result<(), BusError> {
        let consumer = self.consumer;
        tokio::task::spawn_blocking(move || {
            consumer.unsubscribe();
            drop(consumer);
        })
        .await
        .map_err(join_error)
    }
}

impl BusSubscription for KafkaSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        KafkaSubscription::next(self).await
    }

    async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        KafkaSubscription::ack(self, delivery).await
    }

    async fn nack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        KafkaSubscription::nack(self, delivery).await
    }

    async fn close(self) -> Result<(), BusError> {
        KafkaSubscription::close(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messaging::{Envelope, PayloadFormat};

    /// A subscription that never reaches a broker: enough for the bookkeeping of `nack`.
    fn offline_subscription() -> KafkaSubscription {
        let consumer: StreamConsumer<RebalanceWatch> = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("group.id", "offline")
            .create_with_context(RebalanceWatch::default())
            .expect("consumer");
        KafkaSubscription {
            consumer: Arc::new(consumer),
            group: "offline".into(),
            commits: true,
            topics: vec!["t".into()],
            next_tag: 1,
            pending: BTreeMap::new(),
            replay: VecDeque::new(),
        }
    }

    fn held(partition: i32, offset: i64) -> Held {
        Held {
            topic: "t".into(),
            partition,
            offset,
            delivery: Delivery::new(
                "t".into(),
                Envelope {
                    id: uuid::Uuid::now_v7(),
                    event_type: "E".into(),
                    schema_version: 1,
                    aggregate_type: "A".into(),
                    aggregate_id: format!("a-{partition}"),
                    occurred_at: std::time::UNIX_EPOCH,
                    source: "s".into(),
                    correlation_id: "c".into(),
                    causation_id: None,
                    traceparent: None,
                    tracestate: None,
                    tenant_id: None,
                    format: PayloadFormat::Json,
                    payload: format!("{offset}").into_bytes(),
                },
                DeliveryTag::new(0),
            ),
        }
    }

    fn offsets(subscription: &KafkaSubscription) -> Vec<(i32, i64)> {
        subscription
            .replay
            .iter()
            .map(|h| (h.partition, h.offset))
            .collect()
    }

    #[tokio::test]
    async fn nack_puts_back_the_delivery_and_what_followed_on_its_partition_in_order() {
        let mut subscription = offline_subscription();
        let d10 = subscription.hand_out(held(0, 10));
        let other = subscription.hand_out(held(1, 5));
        let d11 = subscription.hand_out(held(0, 11));
        let d12 = subscription.hand_out(held(0, 12));

        subscription.nack(&d12).await.expect("nack 12");
        subscription.nack(&d11).await.expect("nack 11");
        assert_eq!(offsets(&subscription), [(0, 11), (0, 12)]);
        // Put back: its old tag is no longer pending; the other partition is untouched.
        assert!(subscription.nack(&d12).await.is_err());
        assert_eq!(subscription.pending.len(), 2);

        let again = subscription.next().await.expect("replay");
        assert_eq!(again.envelope(), d11.envelope());
        assert_ne!(again.tag(), d11.tag());
        let then = subscription.next().await.expect("replay");
        assert_eq!(then.envelope(), d12.envelope());

        // A nack of an earlier delivery takes back the replayed ones too, in order.
        subscription.nack(&d10).await.expect("nack 10");
        assert_eq!(offsets(&subscription), [(0, 10), (0, 11), (0, 12)]);
        assert_eq!(
            subscription
                .pending
                .values()
                .map(|h| h.offset)
                .collect::<Vec<_>>(),
            [5]
        );
        assert_eq!(subscription.held(&other).expect("held").partition, 1);
    }

    #[tokio::test]
    async fn a_revoked_partition_is_forgotten() {
        let mut subscription = offline_subscription();
        let first = subscription.hand_out(held(0, 1));
        subscription.hand_out(held(1, 1));
        subscription.nack(&first).await.expect("nack");
        subscription
            .consumer
            .context()
            .revoked
            .lock()
            .expect("lock")
            .push(("t".into(), 0));
        subscription.forget_revoked();
        assert!(subscription.replay.is_empty());
        assert_eq!(
            subscription
                .pending
                .values()
                .map(|h| h.partition)
                .collect::<Vec<_>>(),
            [1]
        );
    }

    #[test]
    fn urls_name_bootstrap_servers_only() {
        assert_eq!(
            bootstrap_servers("kafka://a:9092,b:9092/").expect("servers"),
            "a:9092,b:9092"
        );
        assert!(bootstrap_servers("kafka://").is_err());
        assert!(bootstrap_servers("kafka://u:p@a:9092").is_err());
        assert!(bootstrap_servers("kafka://a:9092/x").is_err());
    }
}
