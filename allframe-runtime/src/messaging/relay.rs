//! The outbox relay: the background task that publishes committed outbox rows to the bus.
//!
//! One round claims a batch (see [`super::outbox`] for how claims keep per-aggregate order
//! across relays), publishes it in `seq` order, and marks what the bus confirmed (on SQLite,
//! while commits stream in, with the next round's claim: one write per round). Rounds run
//! back to back while there is work; when idle the relay sleeps `polling_ms`, and wakes early
//! when a unit of work in this process commits events or, on PostgreSQL, when any process's
//! commit sends `NOTIFY allframe_outbox`. A bus failure leaves the unconfirmed rows in the
//! outbox (never skipped, never lost), records the attempt on the first of them, and backs off
//! with the service's retry policy — forever, since giving up would lose events; past
//! `max_attempts` failures are logged as errors. On shutdown the relay keeps publishing until
//! the outbox is empty or the bus fails; the launcher's deadline stops it otherwise, which is
//! safe at any point (a batch not marked is published again: at least once). Published rows
//! are pruned on a schedule; lag and throughput go to [`super::OutboxMetrics`] and the log.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Messaging;
use super::bus::{OutboundMessage, PublishError};
use super::envelope::unix_millis;
use super::outbox::{self, ClaimError, Marks};
use crate::database::Backend;

/// The retry policy of a service (`retry` in `architecture.toml`) as the relay applies it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrySettings {
    /// Failures after which each further failure is logged as an error (the relay never
    /// gives up: that would lose events).
    pub max_attempts: u32,
    /// Delay after the first failure, in ms.
    pub initial_interval_ms: u64,
    /// Upper bound of the delay, in ms.
    pub max_interval_ms: u64,
    /// Growth of the delay per failure.
    pub multiplier: f64,
}

impl RetrySettings {
    /// The built-in policy: 3 attempts, 100 ms doubling up to 10 s.
    pub const DEFAULT: Self = Self {
        max_attempts: 3,
        initial_interval_ms: 100,
        max_interval_ms: 10_000,
        multiplier: 2.0,
    };

    /// The delay after `failures` consecutive failures (1 = the first), before jitter:
    /// `initial × multiplier^(failures−1)`, at most `max_interval_ms`.
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let multiplier = if self.multiplier.is_finite() && self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let millis = (self.initial_interval_ms as f64) * multiplier.powi(exponent);
        let capped = millis.min(self.max_interval_ms as f64).max(1.0);
        Duration::from_millis(capped as u64)
    }

    /// [`RetrySettings::delay`] with ±20 % jitter (still at most `max_interval_ms`), so relays
    /// that failed together do not retry in lock step.
    pub(crate) fn jittered(&self, failures: u32) -> Duration {
        let base = self.delay(failures).as_millis() as f64;
        let factor = 0.8 + 0.4 * fastrand::f64();
        let millis = (base * factor)
            .min(self.max_interval_ms.max(1) as f64)
            .max(1.0);
        Duration::from_millis(millis as u64)
    }
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How the outbox relay runs. Constant data: the macro emits
/// `OutboxSettings { polling_ms: 100, retry: RetrySettings { … }, ..OutboxSettings::DEFAULT }`
/// from `[services.messaging]` and the service's retry policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutboxSettings {
    /// Idle polling interval (`outbox_polling_ms`).
    pub polling_ms: u64,
    /// Rows published per round at most.
    pub batch_size: u32,
    /// The least time from the start of a round that published less than a full batch to
    /// the start of the next one, in ms: under a steady stream of commits, rows gather for a
    /// round of their own instead of each commit paying a claim and a mark (two write
    /// transactions). A full batch goes on at once; an idle relay wakes at once.
    pub linger_ms: u64,
    /// Lanes of one relay on PostgreSQL: each claims, publishes and marks on its own, so one
    /// lane's claim and marks overlap the others' publishing, and the bus has several batches
    /// in flight. Lanes hold disjoint partitions, like separate relays: order per aggregate
    /// holds. On SQLite a relay runs one lane: the database takes one writer at a time, so
    /// more lanes only add claim transactions that queue behind each other and the requests'
    /// commits (a quarter fewer `POST /users` per second with 4, BENCHMARKS.md), and one lane
    /// of 256-row batches keeps up with what SQLite can commit.
    pub lanes: u32,
    /// Partitions one lane claims per round at most (the rest stay for other lanes and
    /// relays; partitions that get rows meanwhile go to the next lane that looks). The default,
    /// 16, spreads the 64 partitions over the 4 lanes.
    pub partitions_per_claim: u32,
    /// SQLite: how long a claim lasts if its relay dies (at least twice `publish_timeout_ms`).
    pub lease_ms: u64,
    /// How long one batch publish may take before it counts as failed.
    pub publish_timeout_ms: u64,
    /// How long published rows are kept before pruning; 0 deletes each row as soon as the
    /// bus confirmed it (cheaper than marking it; nothing published stays to look at).
    pub retention_secs: u64,
    /// How often published rows are pruned.
    pub prune_interval_secs: u64,
    /// How often the backlog gauges (pending, lag) are refreshed, in ms.
    pub backlog_interval_ms: u64,
    /// How often a summary line is logged when there was activity.
    pub log_interval_secs: u64,
    /// Backoff after bus failures.
    pub retry: RetrySettings,
}

impl OutboxSettings {
    /// Defaults: 100 ms polling, 256-row batches, 20 ms linger, 4 lanes (on PostgreSQL) of up
    /// to 16 partitions each, 30 s lease, 10 s
    /// publish timeout, published rows kept 1 h and pruned every 5 min, gauges every 5 s, a
    /// summary every 60 s, the built-in retry policy.
    pub const DEFAULT: Self = Self {
        polling_ms: 100,
        batch_size: 256,
        linger_ms: 20,
        lanes: 4,
        partitions_per_claim: 16,
        lease_ms: 30_000,
        publish_timeout_ms: 10_000,
        retention_secs: 60 * 60,
        prune_interval_secs: 5 * 60,
        backlog_interval_ms: 5_000,
        log_interval_secs: 60,
        retry: RetrySettings::DEFAULT,
    };

    /// The defaults with another polling interval.
    pub const fn with_polling_ms(polling_ms: u64) -> Self {
        Self {
            polling_ms,
            ..Self::DEFAULT
        }
    }

    fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms.max(self.publish_timeout_ms.saturating_mul(2)))
    }
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy)]
struct Round {
    /// Rows published.
    published: usize,
    /// The round took a full batch: more rows are likely waiting.
    full: bool,
}

impl Round {
    const EMPTY: Self = Self {
        published: 0,
        full: false,
    };
}

/// Whether a round may leave its marks to the next round's claim (the run loop, while commits
/// stream in: one write per round instead of two), and the marks left.
enum Carry {
    /// Every round writes its own marks (`run_once`, `drain`).
    Off,
    /// Marks left by the previous round, if any.
    On(Option<Marks>),
}

impl Carry {
    fn marks(&self) -> Option<&Marks> {
        match self {
            Self::On(marks) => marks.as_ref(),
            Self::Off => None,
        }
    }

    fn clear(&mut self) {
        if let Self::On(marks) = self {
            *marks = None;
        }
    }
}

/// Why one relay round failed. Nothing is lost: unconfirmed rows stay in the outbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// Claiming or reading rows failed.
    #[error("cannot claim outbox rows: {0}")]
    Claim(#[source] sqlx::Error),
    /// A row does not hold a valid envelope; it blocks its partition until repaired.
    #[error(
        "outbox row {seq} is not a valid envelope (its partition waits until it is repaired): {reason}"
    )]
    CorruptRow {
        /// The row.
        seq: i64,
        /// What is wrong.
        reason: String,
    },
    /// The bus refused or failed part of the batch.
    #[error("publishing to the event bus failed: {0}")]
    Publish(#[source] PublishError),
    /// The bus did not confirm the batch in time.
    #[error("the event bus did not confirm the batch within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// Marking published rows failed (they will be published again).
    #[error("cannot mark outbox rows as published (they will be published again): {0}")]
    Mark(#[source] sqlx::Error),
}

impl From<ClaimError> for RelayError {
    fn from(error: ClaimError) -> Self {
        match error {
            ClaimError::Database(error) => Self::Claim(error),
            ClaimError::Corrupt { seq, source } => Self::CorruptRow {
                seq,
                reason: source.to_string(),
            },
        }
    }
}

/// One outbox relay. Several may run at once, in one process or many.
#[derive(Debug)]
pub struct Relay {
    messaging: Messaging,
    settings: OutboxSettings,
    id: String,
    listen_url: Option<String>,
}

impl Relay {
    /// A relay for `messaging`'s outbox with a fresh id.
    pub fn new(messaging: &Messaging, settings: OutboxSettings) -> Self {
        let id = format!(
            "{}-{}",
            messaging.config().service,
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        Self {
            messaging: messaging.clone(),
            settings,
            id,
            listen_url: None,
        }
    }

    /// Uses `id` as the relay's identity (SQLite leases are per id: a relay restarted with the
    /// same id resumes its own claims at once instead of waiting for them to expire).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// On PostgreSQL, also wake on `NOTIFY allframe_outbox`, listening on a dedicated
    /// connection to `database_url` (feature `postgres`; ignored on SQLite).
    pub fn listen(mut self, database_url: impl Into<String>) -> Self {
        self.listen_url = Some(database_url.into());
        self
    }

    /// The relay's identity.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// One round: claim, publish, mark. Returns how many rows were published (0 when there
    /// was nothing to do).
    pub async fn run_once(&self) -> Result<usize, RelayError> {
        self.round(&self.id, &mut Carry::Off)
            .await
            .map(|round| round.published)
    }

    /// One round of the lane (or relay) `lane`, and whether it took a full batch (more rows
    /// are likely waiting). With [`Carry::On`], the marks of the previous round are written by
    /// this round's claim, and this round's are left for the next one when the batch was
    /// published in full.
    async fn round(&self, lane: &str, carry: &mut Carry) -> Result<Round, RelayError> {
        let db = self.messaging.db();
        let settings = &self.settings;
        let claimed = outbox::claim(
            db,
            lane,
            settings.partitions_per_claim.max(1),
            settings.batch_size.max(1),
            settings.lease(),
            carry.marks(),
            settings.retention_secs == 0,
        )
        .await;
        if claimed.is_ok() {
            // The claim's transaction committed the carried marks (after a failure they are
            // written again next time: marks are idempotent).
            carry.clear();
        }
        let Some(batch) = claimed? else {
            return Ok(Round::EMPTY);
        };
        if batch.is_empty() {
            outbox::complete(db, lane, batch, 0)
                .await
                .map_err(RelayError::Mark)?;
            return Ok(Round::EMPTY);
        }
        let full = batch.is_full();
        let messages: Vec<OutboundMessage> =
            batch.rows.iter().map(|row| row.message.clone()).collect();
        let timeout = Duration::from_millis(settings.publish_timeout_ms.max(1));
        let outcome = tokio::time::timeout(timeout, self.messaging.bus().publish(&messages)).await;
        let (delivered, failure) = match outcome {
            Ok(Ok(())) => (messages.len(), None),
            Ok(Err(error)) => (
                error.delivered.min(messages.len()),
                Some(RelayError::Publish(error)),
            ),
            Err(_) => (0, Some(RelayError::Timeout(timeout))),
        };
        let oldest_created = batch.rows[0].created_at;
        let failed_seq = batch.rows.get(delivered).map(|row| row.seq);
        let unmarked = match carry {
            Carry::On(slot) if failure.is_none() => batch.defer(delivered).map(|marks| {
                *slot = Some(marks);
            }),
            _ => Err(batch),
        };
        if let Err(batch) = unmarked {
            outbox::complete(db, lane, batch, delivered)
                .await
                .map_err(RelayError::Mark)?;
        }
        if delivered > 0 {
            let latency = unix_millis(SystemTime::now()).saturating_sub(oldest_created);
            self.messaging
                .metrics_handle()
                .record_published(delivered as u64, latency.max(0).unsigned_abs());
        }
        match failure {
            None => Ok(Round {
                published: delivered,
                full,
            }),
            Some(error) => {
                if let Some(seq) = failed_seq
                    && let Err(record) = outbox::record_failure(db, seq, &error.to_string()).await
                {
                    tracing::warn!(seq, error = %record, "cannot record the failed attempt on the outbox row");
                }
                Err(error)
            }
        }
    }

    /// Runs rounds until the outbox is empty; returns how many rows were published.
    pub async fn drain(&self) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            match self.run_once().await? {
                0 => return Ok(total),
                published => total += published,
            }
        }
    }

    /// Runs until `shutdown` is cancelled, then drains what it can and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let db = self.messaging.db();
        let wake = self.messaging.wake();
        let _listener = self.start_listener(&wake);
        let lanes = self.lane_ids();
        tracing::info!(
            relay = %self.id,
            backend = %db.backend(),
            bus = self.messaging.bus().name(),
            polling_ms = self.settings.polling_ms,
            lanes = lanes.len(),
            "outbox relay started"
        );
        let work =
            futures_util::future::join_all(lanes.iter().map(|lane| self.lane(lane, &shutdown)));
        tokio::join!(work, self.upkeep(&shutdown));
        let drained = match self.drain().await {
            Ok(drained) => drained,
            Err(error) => {
                tracing::warn!(relay = %self.id, error = %error,
                    "outbox relay: shutdown drain stopped; unpublished rows stay for the next start");
                0
            }
        };
        refresh_backlog(&self).await;
        let metrics = self.messaging.metrics();
        tracing::info!(relay = %self.id, drained, pending = metrics.pending, "outbox relay stopped");
    }

    /// The lanes' identities: the relay's own id for one lane, `<id>.<n>` for several (stable
    /// for a relay given an id, so a restarted one resumes its lanes' leases at once). SQLite
    /// runs one lane (see [`OutboxSettings::lanes`]).
    fn lane_ids(&self) -> Vec<String> {
        let lanes = match self.messaging.db().backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => self.settings.lanes.max(1),
        };
        match lanes {
            1 => vec![self.id.clone()],
            lanes => (0..lanes).map(|n| format!("{}.{n}", self.id)).collect(),
        }
    }

    /// One lane: rounds back to back while there is work, lingering while commits stream in,
    /// sleeping when idle, backing off after failures; writes its last marks when stopped.
    async fn lane(&self, lane: &str, shutdown: &CancellationToken) {
        let wake = self.messaging.wake();
        let polling = Duration::from_millis(self.settings.polling_ms.max(1));
        let linger = Duration::from_millis(self.settings.linger_ms);
        let mut failures: u32 = 0;
        let mut carry = Carry::On(None);
        while !shutdown.is_cancelled() {
            // Registered before the round, so a commit during it still wakes us.
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let started = Instant::now();
            match self.round(lane, &mut carry).await {
                Ok(round) => {
                    if failures > 0 {
                        tracing::info!(relay = %lane, failures, "outbox relay: the event bus is back");
                    }
                    failures = 0;
                    if round.full {
                        continue;
                    }
                    if round.published > 0 {
                        // Commits are streaming in: let the next ones gather.
                        tokio::select! {
                            () = shutdown.cancelled() => {}
                            () = tokio::time::sleep_until(started + linger) => {}
                        }
                        continue;
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = &mut notified => {}
                        () = tokio::time::sleep(polling) => {}
                    }
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    self.messaging.metrics_handle().record_failure();
                    let delay = self.settings.retry.jittered(failures);
                    if failures >= self.settings.retry.max_attempts.max(1) {
                        tracing::error!(relay = %lane, failures, retry_in_ms = delay.as_millis() as u64, error = %error,
                            "outbox relay: still failing; rows stay in the outbox and will be retried");
                    } else {
                        tracing::warn!(relay = %lane, failures, retry_in_ms = delay.as_millis() as u64, error = %error,
                            "outbox relay: publish failed; backing off");
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        if let Some(marks) = carry.marks()
            && let Err(error) = outbox::finish(self.messaging.db(), lane, marks).await
        {
            tracing::warn!(relay = %lane, error = %error,
                "outbox relay: cannot mark the last batch; it will be published again");
        }
    }

    /// Prunes, refreshes the backlog gauges and logs a summary on their schedules until
    /// `shutdown` is cancelled.
    async fn upkeep(&self, shutdown: &CancellationToken) {
        let mut schedule = Schedule::new(&self.settings, self.messaging.metrics().published_total);
        while !shutdown.is_cancelled() {
            schedule.maintain(self).await;
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep_until(schedule.next_due()) => {}
            }
        }
    }

    /// Starts the PostgreSQL `LISTEN` task when configured; it stops when the guard drops.
    fn start_listener(&self, wake: &Arc<Notify>) -> Option<AbortOnDrop> {
        if self.messaging.db().backend() != Backend::Postgres {
            return None;
        }
        let url = self.listen_url.clone()?;
        #[cfg(feature = "postgres")]
        {
            Some(AbortOnDrop(tokio::spawn(listen(url, Arc::clone(wake)))))
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = (url, wake);
            None
        }
    }
}

/// Aborts a helper task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Wakes the relay on every `NOTIFY allframe_outbox`; reconnects with a growing delay.
#[cfg(feature = "postgres")]
async fn listen(url: String, wake: Arc<Notify>) {
    let mut delay = Duration::from_millis(500);
    loop {
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen(outbox::NOTIFY_CHANNEL).await?;
            tracing::debug!(
                channel = outbox::NOTIFY_CHANNEL,
                "outbox relay: listening for commits"
            );
            // Anything committed while not listening is picked up by this wake-up.
            wake.notify_waiters();
            loop {
                listener.recv().await?;
                wake.notify_waiters();
            }
        };
        let result: Result<(), sqlx::Error> = listening.await;
        if let Err(error) = result {
            tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64,
                "outbox relay: LISTEN failed; polling only until it reconnects");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// When the relay last pruned, refreshed its gauges and logged.
struct Schedule {
    prune_every: Duration,
    backlog_every: Duration,
    log_every: Duration,
    next_prune: Instant,
    next_backlog: Instant,
    next_log: Instant,
    logged_published: u64,
}

impl Schedule {
    fn new(settings: &OutboxSettings, published: u64) -> Self {
        let now = Instant::now();
        let prune_every = Duration::from_secs(settings.prune_interval_secs.max(1));
        let backlog_every = Duration::from_millis(settings.backlog_interval_ms.max(1));
        let log_every = Duration::from_secs(settings.log_interval_secs.max(1));
        Self {
            prune_every,
            backlog_every,
            log_every,
            next_prune: now,
            next_backlog: now,
            next_log: now + log_every,
            logged_published: published,
        }
    }

    /// The earliest of the next prune, gauge refresh and summary.
    fn next_due(&self) -> Instant {
        self.next_prune.min(self.next_backlog).min(self.next_log)
    }

    async fn maintain(&mut self, relay: &Relay) {
        let now = Instant::now();
        if now >= self.next_backlog {
            self.next_backlog = now + self.backlog_every;
            refresh_backlog(relay).await;
        }
        if now >= self.next_prune {
            self.next_prune = now + self.prune_every;
            let retention = Duration::from_secs(relay.settings.retention_secs);
            match outbox::prune(relay.messaging.db(), retention).await {
                Ok(0) => {}
                Ok(pruned) => {
                    relay.messaging.metrics_handle().record_pruned(pruned);
                    tracing::debug!(relay = %relay.id, pruned, "outbox: published rows pruned");
                }
                Err(error) => tracing::warn!(relay = %relay.id, error = %error,
                    "outbox: pruning failed; retrying at the next interval"),
            }
        }
        if now >= self.next_log {
            self.next_log = now + self.log_every;
            let metrics = relay.messaging.metrics();
            let published = metrics
                .published_total
                .saturating_sub(self.logged_published);
            self.logged_published = metrics.published_total;
            if published > 0 || metrics.pending > 0 {
                let per_second = published as f64 / self.log_every.as_secs_f64();
                tracing::info!(
                    relay = %relay.id,
                    published,
                    per_second,
                    pending = metrics.pending,
                    lag_ms = metrics.oldest_pending_age_ms,
                    failures = metrics.publish_failures_total,
                    "outbox relay"
                );
            }
        }
    }
}

/// Reads the backlog into the gauges.
async fn refresh_backlog(relay: &Relay) {
    match outbox::backlog(relay.messaging.db()).await {
        Ok(backlog) => {
            let now = unix_millis(SystemTime::now());
            let age = backlog
                .oldest_created_at
                .map_or(0, |oldest| now.saturating_sub(oldest).max(0).unsigned_abs());
            relay
                .messaging
                .metrics_handle()
                .record_backlog(backlog.pending, age);
        }
        Err(error) => {
            tracing::warn!(relay = %relay.id, error = %error, "outbox: cannot read the backlog")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        let retry = RetrySettings {
            max_attempts: 3,
            initial_interval_ms: 100,
            max_interval_ms: 1_000,
            multiplier: 2.0,
        };
        let delays: Vec<u64> = (1..=6).map(|n| retry.delay(n).as_millis() as u64).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        for failures in 1..20 {
            let jittered = retry.jittered(failures);
            assert!(jittered <= Duration::from_millis(1_000), "{jittered:?}");
            assert!(
                jittered >= retry.delay(failures).mul_f64(0.79),
                "{jittered:?}"
            );
        }
    }

    #[test]
    fn nonsense_multipliers_do_not_shrink_or_explode() {
        let retry = RetrySettings {
            multiplier: f64::NAN,
            ..RetrySettings::DEFAULT
        };
        assert_eq!(retry.delay(10), Duration::from_millis(100));
        assert_eq!(
            RetrySettings::DEFAULT.delay(u32::MAX),
            Duration::from_millis(10_000)
        );
    }

    #[test]
    fn the_lease_outlasts_a_publish() {
        let settings = OutboxSettings {
            lease_ms: 100,
            publish_timeout_ms: 1_000,
            ..OutboxSettings::DEFAULT
        };
        assert_eq!(settings.lease(), Duration::from_secs(2));
    }
}
