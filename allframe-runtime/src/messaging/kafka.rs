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
//! delivery (cumulative per partition), `nack` seeks the partition back to the delivery.
//!
//! This module is the adapter only: no retry or dead-letter policy.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::bus::{
    BusAdapter, BusError, BusSubscription, Delivery, DeliveryTag, OutboundMessage, PublishError,
    StartFrom, SubscribeOptions,
};
use super::envelope::Envelope;

const BUS: &str = "kafka";

/// Tuning of the Kafka adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaBusOptions {
    /// How long a record may wait for its delivery report (`message.timeout.ms`).
    pub delivery_timeout: Duration,
    /// How long to wait for the cluster when connecting, committing or seeking.
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

fn kafka_error(error: KafkaError) -> BusError {
    BusError::Adapter {
        bus: BUS,
        source: Box::new(error),
    }
}

fn join_error(error: tokio::task::JoinError) -> BusError {
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
            }),
        })
    }

    /// Publishes `messages` in order (key = aggregate id) and waits for every delivery report.
    pub async fn publish(&self, messages: &[OutboundMessage]) -> Result<(), PublishError> {
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
            match self.inner.producer.send_result(record) {
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
        let reset = match options.start {
            StartFrom::Earliest => "earliest",
            StartFrom::Latest => "latest",
        };
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.inner.servers)
            .set("group.id", &options.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", reset)
            .set(
                "session.timeout.ms",
                self.inner.options.session_timeout.as_millis().to_string(),
            )
            .create()
            .map_err(kafka_error)?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(kafka_error)?;
        Ok(KafkaSubscription {
            consumer: Arc::new(consumer),
            options: self.inner.options,
            group: options.group,
            topics,
            next_tag: 1,
            pending: BTreeMap::new(),
            rewinds: HashMap::new(),
        })
    }
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

/// A member of a consumer group on Kafka.
pub struct KafkaSubscription {
    consumer: Arc<StreamConsumer>,
    options: KafkaBusOptions,
    group: String,
    topics: Vec<String>,
    next_tag: u64,
    /// Handed out and not yet acknowledged, by this subscription's own tag.
    pending: BTreeMap<u64, Position>,
    /// Partitions rewound by a nack, with the offset they restart at.
    rewinds: HashMap<(String, i32), i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    topic: String,
    partition: i32,
    offset: i64,
}

impl fmt::Debug for KafkaSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSubscription")
            .field("group", &self.group)
            .field("topics", &self.topics)
            .field("unacknowledged", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl KafkaSubscription {
    /// Waits for the next record, in offset order per partition.
    pub async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            let message = self.consumer.recv().await.map_err(kafka_error)?;
            let topic = message.topic().to_owned();
            let partition = message.partition();
            let offset = message.offset();
            let key = (topic.clone(), partition);
            if let Some(from) = self.rewinds.get(&key).copied() {
                if offset == from {
                    self.rewinds.remove(&key);
                } else if offset > from {
                    // Fetched before the seek took effect: it comes again after `from`.
                    continue;
                }
            }
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
            let envelope =
                Envelope::from_headers(headers, payload).map_err(|source| BusError::Envelope {
                    topic: topic.clone(),
                    source,
                })?;
            let tag = self.next_tag;
            self.next_tag += 1;
            self.pending.insert(
                tag,
                Position {
                    topic: topic.clone(),
                    partition,
                    offset,
                },
            );
            return Ok(Delivery::new(topic, envelope, DeliveryTag::new(tag)));
        }
    }

    fn position(&self, delivery: &Delivery) -> Result<Position, BusError> {
        self.pending
            .get(&delivery.tag().value())
            .filter(|p| p.topic == delivery.topic())
            .cloned()
            .ok_or_else(|| BusError::ForeignDelivery {
                topic: delivery.topic().to_owned(),
            })
    }

    /// Commits the offset after `delivery` for its partition (synchronously), which covers
    /// every earlier record of that partition.
    pub async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        if !self.topics.iter().any(|t| t == delivery.topic()) {
            return Err(BusError::ForeignDelivery {
                topic: delivery.topic().to_owned(),
            });
        }
        let Ok(at) = self.position(delivery) else {
            // Already covered by a later ack, or by a nack's rewind.
            return Ok(());
        };
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&at.topic, at.partition, Offset::Offset(at.offset + 1))
            .map_err(kafka_error)?;
        let consumer = Arc::clone(&self.consumer);
        tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync))
            .await
            .map_err(join_error)?
            .map_err(kafka_error)?;
        let tag = delivery.tag().value();
        self.pending
            .retain(|t, p| !(p.topic == at.topic && p.partition == at.partition && *t <= tag));
        Ok(())
    }

    /// Seeks the delivery's partition back to it: it and what followed it come again.
    pub async fn nack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let at = self.position(delivery)?;
        let consumer = Arc::clone(&self.consumer);
        let timeout = self.options.request_timeout;
        let seek = at.clone();
        tokio::task::spawn_blocking(move || {
            consumer.seek(
                &seek.topic,
                seek.partition,
                Offset::Offset(seek.offset),
                timeout,
            )
        })
        .await
        .map_err(join_error)?
        .map_err(kafka_error)?;
        self.pending.retain(|_, p| {
            !(p.topic == at.topic && p.partition == at.partition && p.offset >= at.offset)
        });
        self.rewinds
            .insert((at.topic.clone(), at.partition), at.offset);
        Ok(())
    }

    /// Leaves the group at once (the group rebalances without waiting for the session
    /// timeout).
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
