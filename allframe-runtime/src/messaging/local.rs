//! The local event bus: a durable log in one SQLite file, shared by the services on a machine.
//!
//! Every service process opens the same file (default `<ALLFRAME_DATA_DIR>/bus.db`) in WAL
//! mode with `synchronous = FULL`: a publish returns after its transaction is on disk, and only
//! then are waiting subscribers woken. Messages get a global, never reused sequence number
//! (`AUTOINCREMENT`); a message id published twice to a topic is stored once, so the outbox
//! relay's retries do not duplicate within the retention window.
//!
//! A topic is carried in [`BUS_PARTITIONS`] partitions, by the outbox relay's partition hash of
//! each event's aggregate ([`bus_partition`]), as on NATS and RabbitMQ. Consumer groups keep one
//! committed offset per (group, topic, partition). One member of a group owns a partition at a
//! time through a lease stored with the offset: the others leave it alone and take over when
//! the owner closes or its lease expires. A member subscribes to every partition, or to those
//! its consumer leased ([`SubscribeOptions::partitions`]: the members of a consumer pick them,
//! [`super::bus::PartitionSharing::ByMembers`]), so several members share a topic's work and
//! each aggregate's events stay in order. Delivery is at least once: the owner reads from its
//! position, the committed offset moves only on ack, and a new owner starts from the committed
//! offset. Subscribers in other processes notice new messages by polling (`poll_interval`); in
//! the publishing process they are woken at once. A per-instance subscriber
//! ([`SubscribeOptions::per_instance`]) is a group of its own under a unique name, deleted when
//! it closes (and, if its process died, once its leases lapsed long ago: `per_instance.rs`).
//! This module is the local adapter only: no retry or dead-letter policy.

use std::collections::VecDeque;
use std::fmt;
use std::path::Path;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};
use tokio::sync::Notify;

use super::bus::{
    BusAdapter, BusError, BusSubscription, Delivery, DeliveryTag, OutboundMessage, PublishError,
    StartFrom, SubscribeOptions,
};
use super::envelope::{Envelope, unix_millis};
use super::topic::{BUS_PARTITIONS, bus_partition, per_instance_group};

mod per_instance;

/// Tuning of the local bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalBusOptions {
    /// How often an idle subscriber looks for messages published by other processes.
    pub poll_interval: Duration,
    /// How long a group member owns a topic without renewing (renewed on every poll).
    pub lease: Duration,
    /// How long messages are kept; older ones are pruned (a group offline longer misses them).
    pub retention: Duration,
    /// How many messages a subscriber reads per query.
    pub fetch_batch: u32,
    /// How long a statement waits for another process's write lock.
    pub busy_timeout: Duration,
}

impl Default for LocalBusOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(50),
            lease: Duration::from_secs(10),
            retention: Duration::from_secs(7 * 24 * 60 * 60),
            fetch_batch: 256,
            busy_timeout: Duration::from_secs(10),
        }
    }
}

/// How often retention runs (at most), piggybacked on publishing.
const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

/// Messages written by one `INSERT` when publishing: six parameters each, far below SQLite's
/// limit of 32,766 parameters per statement.
const ROWS_PER_INSERT: usize = 256;

const SCHEMA: [&str; 5] = [
    "CREATE TABLE IF NOT EXISTS bus_messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        message_id TEXT NOT NULL,
        headers TEXT NOT NULL,
        payload BLOB NOT NULL,
        published_at INTEGER NOT NULL,
        partition INTEGER NOT NULL DEFAULT 0,
        UNIQUE (topic, message_id)
    )",
    "CREATE INDEX IF NOT EXISTS bus_messages_topic_seq ON bus_messages (topic, seq)",
    "CREATE INDEX IF NOT EXISTS bus_messages_published_at ON bus_messages (published_at)",
    // The offsets of files from before partitions: read once, to seed a group's partitions.
    "CREATE TABLE IF NOT EXISTS bus_offsets (
        group_name TEXT NOT NULL,
        topic TEXT NOT NULL,
        next_seq INTEGER NOT NULL,
        owner TEXT,
        lease_until INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        PRIMARY KEY (group_name, topic)
    )",
    "CREATE TABLE IF NOT EXISTS bus_partition_offsets (
        group_name TEXT NOT NULL,
        topic TEXT NOT NULL,
        partition INTEGER NOT NULL,
        next_seq INTEGER NOT NULL,
        owner TEXT,
        lease_until INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        PRIMARY KEY (group_name, topic, partition)
    )",
];

/// Takes or renews a member's leases on partitions of a (group, topic): one row per partition
/// (`VALUES` pushed by the caller); returns the partitions it holds now with their committed
/// offsets and lease epochs. A partition whose lease another member holds is not returned. The
/// epoch changes whenever ownership changes hands, so a member can tell its position is stale.
const CLAIM_UPSERT: &str = " ON CONFLICT (group_name, topic, partition) DO UPDATE SET
        epoch = CASE WHEN bus_partition_offsets.owner = excluded.owner
                     THEN bus_partition_offsets.epoch ELSE bus_partition_offsets.epoch + 1 END,
        owner = excluded.owner,
        lease_until = excluded.lease_until
    WHERE bus_partition_offsets.owner IS NULL OR bus_partition_offsets.owner = excluded.owner
        OR bus_partition_offsets.lease_until < ";

/// The local bus. Cheap to clone.
#[derive(Clone)]
pub struct LocalBus {
    inner: Arc<Inner>,
}

struct Inner {
    pool: SqlitePool,
    options: LocalBusOptions,
    notify: Notify,
    location: String,
    last_prune: Mutex<Option<Instant>>,
}

impl fmt::Debug for LocalBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBus")
            .field("file", &self.inner.location)
            .finish_non_exhaustive()
    }
}

impl LocalBus {
    /// Opens (creating if missing) the bus file at `path`.
    pub async fn open(path: &Path, options: LocalBusOptions) -> Result<Self, BusError> {
        let connect = SqliteConnectOptions::new().filename(path);
        Self::open_with(connect, path.display().to_string(), options).await
    }

    /// Opens the bus file a `sqlite:` URL names (in-memory databases are refused: the bus
    /// must be durable and shared).
    pub async fn open_url(url: &str, options: LocalBusOptions) -> Result<Self, BusError> {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(BusError::InvalidUrl {
                reason: "the local bus must be a file, not an in-memory database".into(),
            });
        }
        let connect =
            SqliteConnectOptions::from_str(url).map_err(|error| BusError::InvalidUrl {
                reason: error.to_string(),
            })?;
        let location = connect.get_filename().display().to_string();
        Self::open_with(connect, location, options).await
    }

    async fn open_with(
        connect: SqliteConnectOptions,
        location: String,
        options: LocalBusOptions,
    ) -> Result<Self, BusError> {
        let connect = connect
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(options.busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(connect)
            .await
            .map_err(BusError::Local)?;
        for statement in SCHEMA {
            sqlx::query(statement)
                .execute(&pool)
                .await
                .map_err(BusError::Local)?;
        }
        add_partitions(&pool).await.map_err(BusError::Local)?;
        tracing::debug!(file = %location, "local event bus open");
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                options,
                notify: Notify::new(),
                location,
                last_prune: Mutex::new(None),
            }),
        })
    }

    /// The file behind the bus.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// Publishes `messages` in order, in one transaction: all of them or none. A message whose
    /// id is already on its topic is skipped (the relay may publish a row twice).
    pub async fn publish(&self, messages: &[OutboundMessage]) -> Result<(), PublishError> {
        let now = unix_millis(SystemTime::now());
        let result = async {
            let mut tx = self.inner.pool.begin_with("BEGIN IMMEDIATE").await?;
            // Rows are inserted in the order of their `VALUES`, so one statement per chunk
            // keeps the batch's order (and saves a round trip to the connection's worker
            // thread per message).
            for chunk in messages.chunks(ROWS_PER_INSERT) {
                let mut insert = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO bus_messages
                         (topic, message_id, headers, payload, published_at, partition) ",
                );
                insert.push_values(chunk, |mut row, message| {
                    row.push_bind(message.topic.as_str())
                        .push_bind(message.envelope.id.hyphenated().to_string())
                        .push_bind(message.envelope.headers_json())
                        .push_bind(message.envelope.payload.as_slice())
                        .push_bind(now)
                        .push_bind(i64::from(bus_partition(&message.envelope)));
                });
                insert.push(" ON CONFLICT (topic, message_id) DO NOTHING");
                insert.build().execute(&mut *tx).await?;
            }
            tx.commit().await
        }
        .await;
        result.map_err(|error| PublishError::nothing(BusError::Local(error)))?;
        self.inner.notify.notify_waiters();
        self.prune_if_due().await;
        Ok(())
    }

    /// Deletes messages older than the retention, at most once per hour per process.
    async fn prune_if_due(&self) {
        {
            let mut last = self
                .inner
                .last_prune
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        match self.prune(self.inner.options.retention).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "local event bus: old messages pruned"),
            Err(error) => {
                tracing::warn!(error = %error, "local event bus: pruning failed; retrying in an hour")
            }
        }
        self.forget_dead_instances().await;
    }

    /// Deletes messages published more than `older_than` ago; returns how many.
    pub async fn prune(&self, older_than: Duration) -> Result<u64, BusError> {
        let cutoff = unix_millis(SystemTime::now() - older_than);
        let done = sqlx::query("DELETE FROM bus_messages WHERE published_at < $1")
            .bind(cutoff)
            .execute(&self.inner.pool)
            .await
            .map_err(BusError::Local)?;
        Ok(done.rows_affected())
    }

    /// The offset `group` has committed on partition `partition` of `topic` (the sequence number
    /// of the next message it will handle there), if it ever consumed that partition.
    pub async fn committed_offset(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<i64>, BusError> {
        sqlx::query_scalar(
            "SELECT next_seq FROM bus_partition_offsets
             WHERE group_name = $1 AND topic = $2 AND partition = $3",
        )
        .bind(group)
        .bind(topic)
        .bind(i64::from(partition))
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(BusError::Local)
    }

    /// How many messages of `topics` `group` has not acknowledged (all the bus holds of a
    /// partition the group never committed on).
    pub async fn lag(&self, group: &str, topics: &[String]) -> Result<u64, BusError> {
        let mut lag = 0;
        for topic in topics {
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM bus_messages m WHERE m.topic = $1 AND m.seq >= COALESCE(
                    (SELECT o.next_seq FROM bus_partition_offsets o WHERE o.group_name = $2
                        AND o.topic = $1 AND o.partition = m.partition),
                    (SELECT next_seq FROM bus_offsets WHERE group_name = $2 AND topic = $1),
                    0)",
            )
            .bind(topic)
            .bind(group)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(BusError::Local)?;
            lag += count.unsigned_abs();
        }
        Ok(lag)
    }

    /// How many messages `topic` holds.
    pub async fn len(&self, topic: &str) -> Result<u64, BusError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bus_messages WHERE topic = $1")
            .bind(topic)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(BusError::Local)?;
        Ok(count.unsigned_abs())
    }

    /// Joins a consumer group on some topics: on every partition of them, or on
    /// `options.partitions`. A per-instance subscriber joins a group of its own
    /// (`<group>.instance~<uuid>`) on every partition, from the topics' ends.
    pub async fn subscribe(
        &self,
        mut options: SubscribeOptions,
    ) -> Result<LocalSubscription, BusError> {
        if options.topics.is_empty() {
            return Err(BusError::NoTopics);
        }
        if options.per_instance {
            options.group = per_instance_group(&options.group);
            options.partitions = None;
            options.start = StartFrom::Latest;
        }
        let mut topics: Vec<String> = options.topics;
        topics.sort();
        topics.dedup();
        let mut partitions = options
            .partitions
            .unwrap_or_else(|| (0..BUS_PARTITIONS).collect());
        partitions.sort_unstable();
        partitions.dedup();
        // `Latest` means what is published from now on, even before the member first reads
        // (and claims its partitions).
        let mut latest = Vec::with_capacity(topics.len());
        for topic in &topics {
            latest.push(match options.start {
                StartFrom::Latest => Some(
                    sqlx::query_scalar(
                        "SELECT COALESCE(MAX(seq), 0) + 1 FROM bus_messages WHERE topic = $1",
                    )
                    .bind(topic)
                    .fetch_one(&self.inner.pool)
                    .await
                    .map_err(BusError::Local)?,
                ),
                StartFrom::Earliest => None,
            });
        }
        Ok(LocalSubscription {
            bus: self.clone(),
            group: options.group,
            per_instance: options.per_instance,
            member: uuid::Uuid::new_v4().simple().to_string(),
            topics: topics
                .into_iter()
                .zip(latest)
                .map(|(topic, latest)| TopicState {
                    topic,
                    latest,
                    partitions: partitions
                        .iter()
                        .map(|&partition| PartitionState {
                            partition,
                            epoch: None,
                            lease_until: 0,
                            claim_after: 0,
                            position: 0,
                        })
                        .collect(),
                })
                .collect(),
            buffer: VecDeque::new(),
        })
    }

    /// Closes the pool (subscriptions stop working).
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }
}

impl BusAdapter for LocalBus {
    type Subscription = LocalSubscription;

    fn name(&self) -> &'static str {
        "local"
    }

    async fn publish(&self, messages: &[OutboundMessage]) -> Result<(), PublishError> {
        LocalBus::publish(self, messages).await
    }

    async fn subscribe(&self, options: SubscribeOptions) -> Result<LocalSubscription, BusError> {
        LocalBus::subscribe(self, options).await
    }
}

/// A member of a consumer group on the local bus.
pub struct LocalSubscription {
    bus: LocalBus,
    group: String,
    /// A group of its own, deleted on close.
    per_instance: bool,
    member: String,
    topics: Vec<TopicState>,
    buffer: VecDeque<Delivery>,
}

/// This member's view of one topic.
struct TopicState {
    topic: String,
    /// `StartFrom::Latest`: the topic's next offset when the member subscribed, where the
    /// group's partitions start if it never consumed them.
    latest: Option<i64>,
    /// The partitions it subscribed to.
    partitions: Vec<PartitionState>,
}

/// This member's view of one partition of a topic.
struct PartitionState {
    partition: u32,
    /// The lease epoch while this member owns the partition.
    epoch: Option<i64>,
    /// When the lease ends (Unix ms).
    lease_until: i64,
    /// When to try again to claim it, while another member holds it (Unix ms).
    claim_after: i64,
    /// The next sequence number to read.
    position: i64,
}

impl TopicState {
    fn owned(&self) -> impl Iterator<Item = &PartitionState> {
        self.partitions.iter().filter(|p| p.epoch.is_some())
    }

    fn partition_mut(&mut self, partition: u32) -> Option<&mut PartitionState> {
        self.partitions
            .iter_mut()
            .find(|p| p.partition == partition)
    }
}

impl fmt::Debug for LocalSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSubscription")
            .field("group", &self.group)
            .field("member", &self.member)
            .field("owned_topics", &self.owned_topics())
            .field("buffered", &self.buffer.len())
            .finish()
    }
}

impl LocalSubscription {
    /// The topics of which this member currently owns a partition for its group.
    pub fn owned_topics(&self) -> Vec<&str> {
        self.topics
            .iter()
            .filter(|t| t.owned().next().is_some())
            .map(|t| t.topic.as_str())
            .collect()
    }

    /// The partitions of `topic` this member currently owns for its group.
    pub fn owned_partitions(&self, topic: &str) -> Vec<u32> {
        self.topics
            .iter()
            .filter(|t| t.topic == topic)
            .flat_map(|t| t.owned().map(|p| p.partition))
            .collect()
    }

    /// Waits for the next delivery, in sequence order per partition.
    pub async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            if let Some(delivery) = self.buffer.pop_front() {
                return Ok(delivery);
            }
            // Registered before reading, so a publish in between still wakes us.
            let bus = self.bus.clone();
            let notified = bus.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.fill().await?;
            if !self.buffer.is_empty() {
                continue;
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(self.bus.inner.options.poll_interval) => {}
            }
        }
    }

    /// Claims or renews leases, then reads what follows the owned partitions' positions.
    async fn fill(&mut self) -> Result<(), BusError> {
        for index in 0..self.topics.len() {
            self.ensure_leases(index).await?;
            let state = &self.topics[index];
            let owned: Vec<i64> = state.owned().map(|p| i64::from(p.partition)).collect();
            let Some(from) = state.owned().map(|p| p.position).min() else {
                continue;
            };
            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT seq, partition, headers, payload FROM bus_messages WHERE topic = ",
            );
            query
                .push_bind(&state.topic)
                .push(" AND seq >= ")
                .push_bind(from);
            query.push(" AND partition IN (");
            let mut list = query.separated(", ");
            for partition in &owned {
                list.push_bind(*partition);
            }
            query
                .push(") ORDER BY seq LIMIT ")
                .push_bind(i64::from(self.bus.inner.options.fetch_batch));
            let rows = query
                .build()
                .fetch_all(&self.bus.inner.pool)
                .await
                .map_err(BusError::Local)?;
            let topic = self.topics[index].topic.clone();
            let mut last = None;
            for row in rows {
                let seq: i64 = row.try_get("seq").map_err(BusError::Local)?;
                let partition: i64 = row.try_get("partition").map_err(BusError::Local)?;
                last = Some(seq);
                let partition = u32::try_from(partition).unwrap_or(0);
                let Some(state) = self.topics[index].partition_mut(partition) else {
                    continue;
                };
                if seq < state.position {
                    continue; // read before, still buffered or handled
                }
                state.position = seq + 1;
                let headers: String = row.try_get("headers").map_err(BusError::Local)?;
                let payload: Vec<u8> = row.try_get("payload").map_err(BusError::Local)?;
                self.buffer.push_back(
                    Delivery::read_json(
                        topic.clone(),
                        &headers,
                        payload,
                        DeliveryTag::new(seq.unsigned_abs()),
                    )
                    .in_partition(partition),
                );
            }
            // Every owned partition's messages up to `last` were in the result: none of them
            // has anything left before it.
            if let Some(last) = last {
                for state in &mut self.topics[index].partitions {
                    if state.epoch.is_some() {
                        state.position = state.position.max(last + 1);
                    }
                }
            }
        }
        // Interleave topics by publish order.
        self.buffer.make_contiguous().sort_by_key(Delivery::tag);
        Ok(())
    }

    /// Takes the topic's partitions that are free or expired, and renews the leases of ours
    /// that are half used up, in one statement; a partition whose ownership changed restarts
    /// from its committed offset.
    async fn ensure_leases(&mut self, index: usize) -> Result<(), BusError> {
        let options = self.bus.inner.options;
        let lease_ms = i64::try_from(options.lease.as_millis()).unwrap_or(i64::MAX / 4);
        let now = unix_millis(SystemTime::now());
        let state = &self.topics[index];
        let due: Vec<u32> = state
            .partitions
            .iter()
            .filter(|p| match p.epoch {
                Some(_) => p.lease_until - now <= lease_ms / 2,
                None => now >= p.claim_after,
            })
            .map(|p| p.partition)
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let topic = state.topic.clone();
        // Renewals update rows that exist; only a partition claimed afresh may need its start.
        let claiming = state
            .partitions
            .iter()
            .any(|p| p.epoch.is_none() && now >= p.claim_after);
        let seed = if claiming { self.seed(index).await? } else { 0 };
        let until = now.saturating_add(lease_ms);
        let mut claim = QueryBuilder::<Sqlite>::new(
            "INSERT INTO bus_partition_offsets
                 (group_name, topic, partition, next_seq, owner, lease_until, epoch) ",
        );
        claim.push_values(&due, |mut row, partition| {
            row.push_bind(&self.group)
                .push_bind(&topic)
                .push_bind(i64::from(*partition))
                .push_bind(seed)
                .push_bind(&self.member)
                .push_bind(until)
                .push_bind(1_i64);
        });
        claim
            .push(CLAIM_UPSERT)
            .push_bind(now)
            .push(" RETURNING partition, next_seq, epoch");
        let claimed: Vec<(i64, i64, i64)> = claim
            .build_query_as()
            .fetch_all(&self.bus.inner.pool)
            .await
            .map_err(BusError::Local)?;
        // Another member holds a partition: look again after a tenth of a lease.
        let retry = now.saturating_add(lease_ms / 10);
        for partition in due {
            let held = claimed
                .iter()
                .find(|(p, _, _)| *p == i64::from(partition))
                .map(|&(_, committed, epoch)| (committed, epoch));
            let state = self.topics[index]
                .partition_mut(partition)
                .expect("a subscribed partition");
            match held {
                Some((committed, epoch)) => {
                    let changed = state.epoch != Some(epoch);
                    state.epoch = Some(epoch);
                    state.lease_until = until;
                    if changed {
                        tracing::debug!(group = %self.group, topic = %topic, partition, committed,
                            "local bus: partition claimed");
                        state.position = committed;
                        self.drop_buffered(&topic, partition, 0);
                    }
                }
                None => {
                    state.claim_after = retry;
                    if state.epoch.take().is_some() {
                        tracing::warn!(group = %self.group, topic = %topic, partition,
                            "local bus: partition lease lost to another member");
                        self.drop_buffered(&topic, partition, 0);
                    }
                }
            }
        }
        Ok(())
    }

    /// Where a partition the group never consumed starts: after the topic's last message when
    /// the member subscribed for `StartFrom::Latest`, else at the offset a bus file from before
    /// partitions committed for the whole topic, else at the beginning.
    async fn seed(&self, index: usize) -> Result<i64, BusError> {
        let state = &self.topics[index];
        if let Some(latest) = state.latest {
            return Ok(latest);
        }
        sqlx::query_scalar(
            "SELECT COALESCE(
                 (SELECT next_seq FROM bus_offsets WHERE topic = $1 AND group_name = $2), 0)",
        )
        .bind(&state.topic)
        .bind(&self.group)
        .fetch_one(&self.bus.inner.pool)
        .await
        .map_err(BusError::Local)
    }

    fn drop_buffered(&mut self, topic: &str, partition: u32, from_seq: u64) {
        self.buffer.retain(|d| {
            d.topic() != topic || d.partition() != partition || d.tag().value() < from_seq
        });
    }

    fn state_of(&mut self, delivery: &Delivery) -> Result<&mut PartitionState, BusError> {
        self.topics
            .iter_mut()
            .find(|t| t.topic == delivery.topic())
            .and_then(|t| t.partition_mut(delivery.partition()))
            .ok_or_else(|| BusError::ForeignDelivery {
                topic: delivery.topic().to_owned(),
            })
    }

    /// Commits the group's offset past `delivery` (cumulative for its topic partition).
    pub async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let lost = BusError::LeaseLost {
            group: self.group.clone(),
            topic: delivery.topic().to_owned(),
        };
        let Some(epoch) = self.state_of(delivery)?.epoch else {
            return Err(lost);
        };
        let next = i64::try_from(delivery.tag().value()).unwrap_or(i64::MAX - 1) + 1;
        let done = sqlx::query(
            "UPDATE bus_partition_offsets SET next_seq = MAX(next_seq, $1)
             WHERE group_name = $2 AND topic = $3 AND partition = $4 AND owner = $5 AND epoch = $6",
        )
        .bind(next)
        .bind(&self.group)
        .bind(delivery.topic())
        .bind(i64::from(delivery.partition()))
        .bind(&self.member)
        .bind(epoch)
        .execute(&self.bus.inner.pool)
        .await
        .map_err(BusError::Local)?;
        if done.rows_affected() == 0 {
            self.state_of(delivery)?.epoch = None;
            self.drop_buffered(delivery.topic(), delivery.partition(), 0);
            return Err(lost);
        }
        Ok(())
    }

    /// Rewinds to `delivery`: it and what followed it in its topic partition are delivered
    /// again.
    pub async fn nack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let seq = delivery.tag().value();
        let state = self.state_of(delivery)?;
        state.position = state.position.min(i64::try_from(seq).unwrap_or(i64::MAX));
        self.drop_buffered(delivery.topic(), delivery.partition(), seq);
        Ok(())
    }

    /// Releases this member's leases so another member takes over at once; a per-instance
    /// subscriber's group is deleted instead.
    pub async fn close(self) -> Result<(), BusError> {
        if self.per_instance {
            return self.bus.forget_group(&self.group).await;
        }
        sqlx::query(
            "UPDATE bus_partition_offsets SET owner = NULL, lease_until = 0
             WHERE group_name = $1 AND owner = $2",
        )
        .bind(&self.group)
        .bind(&self.member)
        .execute(&self.bus.inner.pool)
        .await
        .map_err(BusError::Local)?;
        Ok(())
    }
}

/// Gives a bus file from before partitions its `partition` column, each message in the
/// partition of its aggregate (so that a consumer upgraded mid-stream keeps each aggregate's
/// order). Once per file: later opens find the column.
async fn add_partitions(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    const HAS_COLUMN: &str =
        "SELECT COUNT(*) FROM pragma_table_info('bus_messages') WHERE name = 'partition'";
    let has: i64 = sqlx::query_scalar(HAS_COLUMN).fetch_one(pool).await?;
    if has == 1 {
        return Ok(());
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    // Another process may have done it meanwhile.
    let has: i64 = sqlx::query_scalar(HAS_COLUMN).fetch_one(&mut *tx).await?;
    if has == 0 {
        sqlx::query("ALTER TABLE bus_messages ADD COLUMN partition INTEGER NOT NULL DEFAULT 0")
            .execute(&mut *tx)
            .await?;
        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT seq, headers FROM bus_messages")
            .fetch_all(&mut *tx)
            .await?;
        for (seq, headers) in rows {
            let Ok(envelope) = Envelope::from_headers_json(&headers, Vec::new()) else {
                continue; // unreadable: partition 0, where the consumer parks it
            };
            sqlx::query("UPDATE bus_messages SET partition = $1 WHERE seq = $2")
                .bind(i64::from(bus_partition(&envelope)))
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        tracing::info!(file = ?pool.connect_options().get_filename(), "local event bus: messages given partitions");
    }
    tx.commit().await
}

impl BusSubscription for LocalSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        LocalSubscription::next(self).await
    }

    async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        LocalSubscription::ack(self, delivery).await
    }

    async fn nack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        LocalSubscription::nack(self, delivery).await
    }

    async fn close(self) -> Result<(), BusError> {
        LocalSubscription::close(self).await
    }
}
