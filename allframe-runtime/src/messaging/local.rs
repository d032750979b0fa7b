//! The local event bus: a durable log in one SQLite file, shared by the services on a machine.
//!
//! Every service process opens the same file (default `<ALLFRAME_DATA_DIR>/bus.db`) in WAL
//! mode with `synchronous = FULL`: a publish returns after its transaction is on disk, and only
//! then are waiting subscribers woken. Messages get a global, never reused sequence number
//! (`AUTOINCREMENT`); a message id published twice to a topic is stored once, so the outbox
//! relay's retries do not duplicate within the retention window.
//!
//! Consumer groups keep one committed offset per (group, topic). One member of a group owns a
//! topic at a time through a lease stored with the offset (like a Kafka topic of one
//! partition): other members stand by and take over when the owner closes or its lease
//! expires. Delivery is at least once: the owner reads from its position, the committed offset
//! moves only on ack, and a new owner starts from the committed offset. Subscribers in other
//! processes notice new messages by polling (`poll_interval`); in the publishing process they
//! are woken at once. This module is the local adapter only: no retry or dead-letter policy.

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
use super::envelope::unix_millis;

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

/// Messages written by one `INSERT` when publishing: five parameters each, far below SQLite's
/// limit of 32,766 parameters per statement.
const ROWS_PER_INSERT: usize = 256;

const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS bus_messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        message_id TEXT NOT NULL,
        headers TEXT NOT NULL,
        payload BLOB NOT NULL,
        published_at INTEGER NOT NULL,
        UNIQUE (topic, message_id)
    )",
    "CREATE INDEX IF NOT EXISTS bus_messages_topic_seq ON bus_messages (topic, seq)",
    "CREATE INDEX IF NOT EXISTS bus_messages_published_at ON bus_messages (published_at)",
    "CREATE TABLE IF NOT EXISTS bus_offsets (
        group_name TEXT NOT NULL,
        topic TEXT NOT NULL,
        next_seq INTEGER NOT NULL,
        owner TEXT,
        lease_until INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        PRIMARY KEY (group_name, topic)
    )",
];

/// Takes or renews the lease of a member on a (group, topic); returns the committed offset and
/// the lease epoch, or no row when another member's lease is still valid. The epoch changes
/// whenever ownership changes hands, so a member can tell its position is stale.
const CLAIM: &str =
    "INSERT INTO bus_offsets (group_name, topic, next_seq, owner, lease_until, epoch)
    VALUES ($1, $2,
        CASE WHEN $3 = 1 THEN (SELECT COALESCE(MAX(seq), 0) + 1 FROM bus_messages WHERE topic = $2)
             ELSE 0 END,
        $4, $5, 1)
    ON CONFLICT (group_name, topic) DO UPDATE SET
        epoch = CASE WHEN bus_offsets.owner = excluded.owner THEN bus_offsets.epoch
                     ELSE bus_offsets.epoch + 1 END,
        owner = excluded.owner,
        lease_until = excluded.lease_until
    WHERE bus_offsets.owner IS NULL OR bus_offsets.owner = excluded.owner
        OR bus_offsets.lease_until < $6
    RETURNING next_seq, epoch";

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
                    "INSERT INTO bus_messages (topic, message_id, headers, payload, published_at) ",
                );
                insert.push_values(chunk, |mut row, message| {
                    row.push_bind(message.topic.as_str())
                        .push_bind(message.envelope.id.hyphenated().to_string())
                        .push_bind(message.envelope.headers_json())
                        .push_bind(message.envelope.payload.as_slice())
                        .push_bind(now);
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

    /// The offset `group` has committed on `topic` (the sequence number of the next message it
    /// will handle), if it ever subscribed.
    pub async fn committed_offset(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Option<i64>, BusError> {
        sqlx::query_scalar("SELECT next_seq FROM bus_offsets WHERE group_name = $1 AND topic = $2")
            .bind(group)
            .bind(topic)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(BusError::Local)
    }

    /// How many messages of `topics` `group` has not acknowledged (all the bus holds of a topic
    /// the group never committed on).
    pub async fn lag(&self, group: &str, topics: &[String]) -> Result<u64, BusError> {
        let mut lag = 0;
        for topic in topics {
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM bus_messages WHERE topic = $1 AND seq >= COALESCE(
                    (SELECT next_seq FROM bus_offsets WHERE group_name = $2 AND topic = $1), 0)",
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

    /// Joins a consumer group on some topics.
    pub async fn subscribe(
        &self,
        options: SubscribeOptions,
    ) -> Result<LocalSubscription, BusError> {
        if options.topics.is_empty() {
            return Err(BusError::NoTopics);
        }
        let mut topics: Vec<String> = options.topics;
        topics.sort();
        topics.dedup();
        Ok(LocalSubscription {
            bus: self.clone(),
            group: options.group,
            member: uuid::Uuid::new_v4().simple().to_string(),
            start: options.start,
            topics: topics
                .into_iter()
                .map(|topic| TopicState {
                    topic,
                    epoch: None,
                    lease_until: 0,
                    position: 0,
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
    member: String,
    start: StartFrom,
    topics: Vec<TopicState>,
    buffer: VecDeque<Delivery>,
}

/// This member's view of one topic.
struct TopicState {
    topic: String,
    /// The lease epoch while this member owns the topic.
    epoch: Option<i64>,
    /// When the lease ends (Unix ms).
    lease_until: i64,
    /// The next sequence number to read.
    position: i64,
}

impl fmt::Debug for LocalSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let owned: Vec<&str> = self
            .topics
            .iter()
            .filter(|t| t.epoch.is_some())
            .map(|t| t.topic.as_str())
            .collect();
        f.debug_struct("LocalSubscription")
            .field("group", &self.group)
            .field("member", &self.member)
            .field("owned_topics", &owned)
            .field("buffered", &self.buffer.len())
            .finish()
    }
}

impl LocalSubscription {
    /// The topics this member currently owns for its group (the others are owned by another
    /// member, or not yet claimed).
    pub fn owned_topics(&self) -> Vec<&str> {
        self.topics
            .iter()
            .filter(|t| t.epoch.is_some())
            .map(|t| t.topic.as_str())
            .collect()
    }

    /// Waits for the next delivery, in sequence order per topic.
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

    /// Claims or renews leases, then reads what follows each owned topic's position.
    async fn fill(&mut self) -> Result<(), BusError> {
        for index in 0..self.topics.len() {
            self.ensure_lease(index).await?;
            let state = &self.topics[index];
            if state.epoch.is_none() {
                continue;
            }
            let rows = sqlx::query(
                "SELECT seq, headers, payload FROM bus_messages
                 WHERE topic = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
            )
            .bind(&state.topic)
            .bind(state.position)
            .bind(i64::from(self.bus.inner.options.fetch_batch))
            .fetch_all(&self.bus.inner.pool)
            .await
            .map_err(BusError::Local)?;
            let topic = state.topic.clone();
            let mut last = None;
            for row in rows {
                let seq: i64 = row.try_get("seq").map_err(BusError::Local)?;
                let headers: String = row.try_get("headers").map_err(BusError::Local)?;
                let payload: Vec<u8> = row.try_get("payload").map_err(BusError::Local)?;
                self.buffer.push_back(Delivery::read_json(
                    topic.clone(),
                    &headers,
                    payload,
                    DeliveryTag::new(seq.unsigned_abs()),
                ));
                last = Some(seq);
            }
            if let Some(last) = last {
                self.topics[index].position = last + 1;
            }
        }
        // Interleave topics by publish order.
        self.buffer.make_contiguous().sort_by_key(Delivery::tag);
        Ok(())
    }

    /// Takes the topic's lease if it is free or expired, or renews ours when half of it is
    /// used up; on a change of ownership, restarts from the committed offset.
    async fn ensure_lease(&mut self, index: usize) -> Result<(), BusError> {
        let options = self.bus.inner.options;
        let lease_ms = i64::try_from(options.lease.as_millis()).unwrap_or(i64::MAX / 4);
        let now = unix_millis(SystemTime::now());
        let state = &self.topics[index];
        if state.epoch.is_some() && state.lease_until - now > lease_ms / 2 {
            return Ok(());
        }
        let until = now.saturating_add(lease_ms);
        let claimed: Option<(i64, i64)> = sqlx::query_as(CLAIM)
            .bind(&self.group)
            .bind(&state.topic)
            .bind(i64::from(self.start == StartFrom::Latest))
            .bind(&self.member)
            .bind(until)
            .bind(now)
            .fetch_optional(&self.bus.inner.pool)
            .await
            .map_err(BusError::Local)?;
        let topic = state.topic.clone();
        match claimed {
            Some((committed, epoch)) => {
                if self.topics[index].epoch != Some(epoch) {
                    tracing::debug!(group = %self.group, topic = %topic, committed, "local bus: topic claimed");
                    self.drop_buffered(&topic, 0);
                    self.topics[index].position = committed;
                }
                self.topics[index].epoch = Some(epoch);
                self.topics[index].lease_until = until;
            }
            None => {
                if self.topics[index].epoch.take().is_some() {
                    tracing::warn!(group = %self.group, topic = %topic, "local bus: lease lost to another member");
                    self.drop_buffered(&topic, 0);
                }
            }
        }
        Ok(())
    }

    fn drop_buffered(&mut self, topic: &str, from_seq: u64) {
        self.buffer
            .retain(|d| d.topic() != topic || d.tag().value() < from_seq);
    }

    fn state_of(&self, delivery: &Delivery) -> Result<usize, BusError> {
        self.topics
            .iter()
            .position(|t| t.topic == delivery.topic())
            .ok_or_else(|| BusError::ForeignDelivery {
                topic: delivery.topic().to_owned(),
            })
    }

    /// Commits the group's offset past `delivery` (cumulative for its topic).
    pub async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let index = self.state_of(delivery)?;
        let lost = || BusError::LeaseLost {
            group: self.group.clone(),
            topic: delivery.topic().to_owned(),
        };
        let Some(epoch) = self.topics[index].epoch else {
            return Err(lost());
        };
        let next = i64::try_from(delivery.tag().value()).unwrap_or(i64::MAX - 1) + 1;
        let done = sqlx::query(
            "UPDATE bus_offsets SET next_seq = MAX(next_seq, $1)
             WHERE group_name = $2 AND topic = $3 AND owner = $4 AND epoch = $5",
        )
        .bind(next)
        .bind(&self.group)
        .bind(delivery.topic())
        .bind(&self.member)
        .bind(epoch)
        .execute(&self.bus.inner.pool)
        .await
        .map_err(BusError::Local)?;
        if done.rows_affected() == 0 {
            let error = lost();
            self.topics[index].epoch = None;
            self.drop_buffered(delivery.topic(), 0);
            return Err(error);
        }
        Ok(())
    }

    /// Rewinds to `delivery`: it and what followed it on its topic are delivered again.
    pub async fn nack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let index = self.state_of(delivery)?;
        let seq = delivery.tag().value();
        let state = &mut self.topics[index];
        state.position = state.position.min(i64::try_from(seq).unwrap_or(i64::MAX));
        self.drop_buffered(delivery.topic(), seq);
        Ok(())
    }

    /// Releases this member's leases so another member takes over at once.
    pub async fn close(self) -> Result<(), BusError> {
        sqlx::query(
            "UPDATE bus_offsets SET owner = NULL, lease_until = 0
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
