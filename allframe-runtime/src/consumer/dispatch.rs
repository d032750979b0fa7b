//! Runs a [`Consumer`] on the bus: up to `concurrency` handlers at once, one at a time per
//! aggregate, acknowledgements in order.
//!
//! Deliveries are read while fewer than `window` are held (received, not yet acknowledged).
//! Each joins its aggregate's lane (aggregate type and id; an event without an aggregate id
//! has a lane of its own): a lane hands one delivery at a time to a handler, in arrival order,
//! and lanes run in parallel up to `concurrency`. A handler task takes the deliveries of
//! several ready lanes at once (up to [`DispatchSettings::group`]) and the consumer handles
//! them one after another in one transaction ([`Consumer::handle_group`]). A delivery the
//! consumer asks to retry stays at the head of its lane — later events of that aggregate wait,
//! other aggregates flow on (its wait holds no handler) — and is handed in again after its
//! backoff. Buses acknowledge cumulatively per topic partition,
//! so the loop acknowledges the longest prefix of a partition's deliveries that is done
//! (handled, duplicate or dead-lettered): nothing is acknowledged before it is handled or
//! parked, and an aggregate that waits holds back only its own partition. Where the bus lets
//! acknowledgements wait ([`EventBus::acks_may_wait`]), they are gathered ([`AckBatching`]):
//! one per partition for many events.
//!
//! On a bus whose members pick their partitions ([`PartitionSharing::ByMembers`]), a session
//! consumes the partitions this member leases ([`PartitionLeases`]); when the group's members
//! change and the fair shares with them, the session ends as on shutdown (handlers finish, what
//! is done is acknowledged, the subscription closes), the partitions given up are released, and
//! a session on the new share begins.
//!
//! When the bus fails (reading or acknowledging), the session ends: running handlers finish,
//! what is held is dropped unacknowledged (the group delivers it again), and after a backoff
//! the loop joins the group anew. On shutdown the loop stops reading, gives up waits between
//! retries (those deliveries stay unacknowledged and come back to the group), lets running
//! handlers finish, acknowledges what is done and leaves the group.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::partitions::{LeaseSettings, PartitionLeases};
use super::{Consumer, Handlers, Outcome, aggregate_key};
use crate::messaging::{
    BusError, BusSubscription, Delivery, DeliveryTag, EventBus, PartitionSharing, RetrySettings,
    SubscribeOptions,
};

/// How a consumer's deliveries are run (`concurrency` of `[services.consumer]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DispatchSettings {
    /// Handlers running at once (different aggregates; one aggregate's events run one after
    /// another).
    pub concurrency: usize,
    /// Deliveries held at most (received and not yet acknowledged): what a slow aggregate
    /// lets the others run ahead by.
    pub window: usize,
    /// Backoff while the bus or the database fails.
    pub backoff: RetrySettings,
    /// Partition leases, on a bus whose members pick their partitions.
    pub leases: LeaseSettings,
    /// How acknowledgements are gathered, on a bus where they may wait
    /// ([`EventBus::acks_may_wait`]; elsewhere each goes out at once).
    pub acks: AckBatching,
    /// Deliveries one handler task takes at once and handles one after another in one
    /// transaction ([`Consumer::handle_group`]): one commit, so one sync of the database, for
    /// up to this many events (1: a transaction per event).
    pub group: usize,
}

/// When the done deliveries of a session are acknowledged, on a bus where acknowledgements
/// may wait: once `done` of them wait, or once the oldest has waited `delay` — and always
/// before the session ends. One acknowledgement per partition then covers them all
/// (cumulative), so the bus writes once for many events; a crash in between hands the waiting
/// ones in again, and the inbox finds them handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckBatching {
    /// How many done deliveries make an acknowledgement due (1: each at once).
    pub done: usize,
    /// How long the oldest done delivery waits at most.
    pub delay: Duration,
}

impl AckBatching {
    /// Each delivery acknowledged as soon as it is done (and those before it).
    pub const IMMEDIATE: Self = Self {
        done: 1,
        delay: Duration::ZERO,
    };
}

impl Default for AckBatching {
    /// 64 deliveries or 20 ms.
    fn default() -> Self {
        Self {
            done: 64,
            delay: Duration::from_millis(20),
        }
    }
}

impl DispatchSettings {
    /// `concurrency` handlers, a window of 64 deliveries per handler (at least 256), the
    /// built-in backoff, groups of up to 128 deliveries per transaction.
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            concurrency,
            window: (concurrency * 64).max(256),
            backoff: RetrySettings::DEFAULT,
            leases: LeaseSettings::default(),
            acks: AckBatching::default(),
            group: 128,
        }
    }
}

/// Whether the consumer is a member of its group now (for `/health/ready`).
#[derive(Debug, Clone, Default)]
pub struct Membership(Arc<AtomicBool>);

impl Membership {
    /// Whether the consumer holds a working subscription.
    pub fn is_joined(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, joined: bool) {
        self.0.store(joined, Ordering::Release);
    }
}

/// Joins `options.group` on `bus` and runs `consumer` on its deliveries until `shutdown` is
/// cancelled (see the module docs); re-joins with backoff whenever the bus fails.
pub async fn run<H: Handlers>(
    consumer: Arc<Consumer<H>>,
    bus: EventBus,
    options: SubscribeOptions,
    settings: DispatchSettings,
    membership: Membership,
    shutdown: CancellationToken,
) {
    let leases = (bus.partition_sharing() == PartitionSharing::ByMembers).then(|| {
        let member = crate::messaging::Uuid::now_v7().hyphenated().to_string();
        PartitionLeases::new(
            consumer.db().clone(),
            &options.group,
            &member,
            settings.leases,
        )
    });
    let mut settings = settings;
    if !bus.acks_may_wait() {
        settings.acks = AckBatching::IMMEDIATE;
    }
    let mut failures: u32 = 0;
    while !shutdown.is_cancelled() {
        let failure = match join(&bus, &options, leases.as_ref()).await {
            Ok((subscription, held)) => {
                membership.set(true);
                let stop = shutdown.child_token();
                let session = Session::new(Arc::clone(&consumer), settings, stop.clone());
                let (ended, ()) = tokio::join!(
                    async {
                        let ended = session.run(subscription).await;
                        stop.cancel();
                        ended
                    },
                    watch_leases(leases.as_ref(), &held, &stop),
                );
                membership.set(false);
                // On shutdown every partition goes back at once, so that the other members take
                // them at their next round (after a rebalance, `join` releases what the new
                // share leaves out).
                if shutdown.is_cancelled()
                    && let Some(leases) = &leases
                    && let Err(error) = leases.leave().await
                {
                    tracing::warn!(group = %options.group, error = %error,
                        "consumer: releasing partitions failed; they pass on when their leases expire");
                }
                match ended {
                    Ok(handled) => {
                        if handled > 0 {
                            failures = 0;
                        }
                        continue;
                    }
                    Err(error) => error,
                }
            }
            Err(error) => error,
        };
        failures = failures.saturating_add(1);
        let wait = settings.backoff.jittered(failures);
        tracing::warn!(group = %options.group, bus = bus.name(), error = %failure,
            retry_in_ms = wait.as_millis() as u64, "consumer: the event bus failed; joining the group again");
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Subscribes: to every partition, or on a bus whose members pick them, to those this member
/// leases after a round (returned, to be watched and handed over).
async fn join(
    bus: &EventBus,
    options: &SubscribeOptions,
    leases: Option<&PartitionLeases>,
) -> Result<(crate::messaging::Subscription, BTreeSet<u32>), SessionError> {
    let Some(leases) = leases else {
        return Ok((bus.subscribe(options.clone()).await?, BTreeSet::new()));
    };
    let held = leases.round().await?;
    // What this member holds beyond its share was consumed by its previous session, which
    // has ended: the next owner may start.
    leases.release(&held).await?;
    tracing::info!(group = %options.group, partitions = ?held, "consumer: partitions leased");
    let options = options.clone().partitions(held.iter().copied());
    Ok((bus.subscribe(options).await?, held))
}

/// Renews this member's leases while its session runs; cancels `stop` (ending the session)
/// when the share changes, or when the leases cannot be renewed before they run out.
async fn watch_leases(
    leases: Option<&PartitionLeases>,
    held: &BTreeSet<u32>,
    stop: &CancellationToken,
) {
    let Some(leases) = leases else {
        return;
    };
    let settings = leases.settings();
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(settings.renew_every) => {}
        }
        match leases.round().await {
            Ok(share) if share == *held => renewed = tokio::time::Instant::now(),
            Ok(share) => {
                tracing::info!(held = ?held, share = ?share, "consumer: the group changed; rebalancing");
                stop.cancel();
                return;
            }
            Err(error) => {
                tracing::warn!(error = %error, "consumer: renewing partition leases failed");
                if renewed.elapsed() + settings.renew_every >= settings.lease {
                    stop.cancel();
                    return;
                }
            }
        }
    }
}

/// Why a session ended before shutdown.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    /// Reading or acknowledging failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The partition leases could not be read or written.
    #[error("partition leases: {0}")]
    Leases(#[from] sqlx::Error),
    /// A handler task died outside the handler (which the consumer guards against panics).
    #[error("a handler task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What one handler task did with a delivery.
enum Finished {
    /// Handled, a duplicate, or dead-lettered: may be acknowledged.
    Done,
    /// To be handed in again once `after` has passed (the consumer's backoff): it stays at the
    /// head of its lane, which waits meanwhile without holding a handler.
    Retry {
        /// How long to wait.
        after: Duration,
    },
    /// Not attempted (its group closed before it): it runs again as its lane's head.
    NotAttempted,
    /// The database failed around its group: retried after the backoff `after`, like
    /// [`Finished::Retry`], and counted as a failure in a row.
    DatabaseFailed {
        /// How long to wait.
        after: Duration,
    },
}

/// One membership of the group: from joining to shutdown or a bus failure.
struct Session<H> {
    consumer: Arc<Consumer<H>>,
    settings: DispatchSettings,
    shutdown: CancellationToken,
    /// Per lane, its deliveries in arrival order; the head is running or ready to run.
    lanes: HashMap<String, VecDeque<Delivery>>,
    /// Lanes whose head waits for a free handler, in arrival order.
    ready: VecDeque<String>,
    /// The lanes of each running task.
    running: HashMap<Id, Vec<String>>,
    tasks: JoinSet<Vec<(Delivery, Finished)>>,
    /// Per topic partition, every held delivery by tag: `Some` once done.
    held: HashMap<(String, u32), BTreeMap<DeliveryTag, Option<Delivery>>>,
    /// Deliveries done and not acknowledged yet.
    unacknowledged: usize,
    /// When the oldest of them was done.
    waiting_since: Option<Instant>,
    /// Deliveries done in this session.
    done: u64,
    /// Lanes whose head waits to be retried, by when (and a counter, so keys are unique).
    retries: BTreeMap<(Instant, u64), String>,
    /// Keys handed out to `retries`.
    retry_keys: u64,
    /// Groups in a row the database failed around (backoff while it fails).
    database_failures: u32,
    /// While the database fails: no group starts before this (the backoff).
    paused_until: Option<Instant>,
}

impl<H: Handlers> Session<H> {
    fn new(
        consumer: Arc<Consumer<H>>,
        settings: DispatchSettings,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            consumer,
            settings,
            shutdown,
            lanes: HashMap::new(),
            ready: VecDeque::new(),
            running: HashMap::new(),
            tasks: JoinSet::new(),
            held: HashMap::new(),
            unacknowledged: 0,
            waiting_since: None,
            done: 0,
            retries: BTreeMap::new(),
            retry_keys: 0,
            database_failures: 0,
            paused_until: None,
        }
    }

    /// Runs until shutdown (`Ok` with the deliveries done) or a bus failure; in both cases
    /// running handlers finish first.
    async fn run<S: BusSubscription>(mut self, mut subscription: S) -> Result<u64, SessionError> {
        let mut failure = None;
        let mut draining = false;
        loop {
            let reading = !draining && self.held_count() < self.settings.window.max(1);
            // After a failure nothing more is acknowledged: no timer then.
            let ack_due = self.ack_deadline().filter(|_| failure.is_none());
            // On shutdown, deliveries waiting to be retried stay unacknowledged.
            let retry_due = self
                .retries
                .first_key_value()
                .map(|((at, _), _)| *at)
                .filter(|_| !draining);
            tokio::select! {
                biased;
                () = self.shutdown.cancelled(), if !draining => draining = true,
                () = tokio::time::sleep_until(ack_due.unwrap_or_else(Instant::now)), if ack_due.is_some() => {}
                () = tokio::time::sleep_until(retry_due.unwrap_or_else(Instant::now)), if retry_due.is_some() => {
                    self.wake_retries();
                }
                joined = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    if let Some(joined) = joined && let Err(error) = self.finish(joined) {
                        failure.get_or_insert(error);
                        draining = true;
                    }
                }
                next = subscription.next(), if reading => match next {
                    Ok(delivery) => self.admit(delivery),
                    Err(error) => {
                        failure = Some(error.into());
                        draining = true;
                    }
                },
                else => break,
            }
            if draining {
                self.ready.clear();
            } else {
                self.start_ready();
            }
            if failure.is_none()
                && self.ack_is_due(draining)
                && let Err(error) = self.acknowledge(&mut subscription).await
            {
                failure = Some(error.into());
                draining = true;
            }
            if draining && self.tasks.is_empty() {
                break;
            }
        }
        if let Some(error) = failure {
            // Dropped without closing: what is held goes back to the group.
            return Err(error);
        }
        if let Err(error) = subscription.close().await {
            tracing::warn!(group = %self.consumer.group(), error = %error,
                "consumer: leaving the group failed; its share passes on when the claim expires");
        }
        Ok(self.done)
    }

    fn held_count(&self) -> usize {
        self.held.values().map(BTreeMap::len).sum()
    }

    /// Holds a new delivery and queues it on its lane.
    fn admit(&mut self, delivery: Delivery) {
        self.held
            .entry((delivery.topic().to_owned(), delivery.partition()))
            .or_default()
            .insert(delivery.tag(), None);
        let lane = aggregate_key(&delivery);
        let queue = self.lanes.entry(lane.clone()).or_default();
        queue.push_back(delivery);
        if queue.len() == 1 {
            self.ready.push_back(lane);
        }
    }

    /// Starts groups of ready lanes' deliveries while handlers are free: each task takes up to
    /// `group` deliveries, every lane's in arrival order.
    fn start_ready(&mut self) {
        if let Some(until) = self.paused_until {
            if Instant::now() < until {
                return;
            }
            self.paused_until = None;
        }
        let group_size = self.settings.group.min(self.consumer.group_limit()).max(1);
        while self.running.len() < self.settings.concurrency.max(1) && !self.ready.is_empty() {
            let mut group = Vec::new();
            let mut lanes = Vec::new();
            while group.len() < group_size {
                let Some(lane) = self.ready.pop_front() else {
                    break;
                };
                let Some(queue) = self.lanes.get(&lane) else {
                    continue;
                };
                group.extend(queue.iter().take(group_size - group.len()).cloned());
                lanes.push(lane);
            }
            if group.is_empty() {
                return;
            }
            let consumer = Arc::clone(&self.consumer);
            let backoff = self.settings.backoff;
            let failures = self.database_failures;
            let task = self
                .tasks
                .spawn(async move { handle_group(&consumer, group, backoff, failures).await });
            self.running.insert(task.id(), lanes);
        }
    }

    /// Records a finished task: its done deliveries, and its lanes ready with what is left.
    fn finish(
        &mut self,
        joined: Result<(Id, Vec<(Delivery, Finished)>), tokio::task::JoinError>,
    ) -> Result<(), SessionError> {
        let (id, finished) = match joined {
            Ok(joined) => joined,
            Err(error) => {
                self.running.remove(&error.id());
                return Err(error.into());
            }
        };
        let Some(lanes) = self.running.remove(&id) else {
            return Ok(());
        };
        let database_failed = finished
            .iter()
            .any(|(_, finished)| matches!(finished, Finished::DatabaseFailed { .. }));
        // The lanes whose head is to be retried, and after how long.
        let mut waiting = Vec::new();
        for (delivery, finished) in finished {
            match finished {
                Finished::Done => {}
                Finished::Retry { after } | Finished::DatabaseFailed { after } => {
                    waiting.push((aggregate_key(&delivery), after));
                    continue;
                }
                Finished::NotAttempted => continue,
            }
            self.done += 1;
            if let Some(slot) = self
                .held
                .get_mut(&(delivery.topic().to_owned(), delivery.partition()))
                .and_then(|partition| partition.get_mut(&delivery.tag()))
            {
                *slot = Some(delivery.clone());
                self.unacknowledged += 1;
                self.waiting_since.get_or_insert_with(Instant::now);
            }
            // A lane's done deliveries are the front of its queue, in order.
            if let Some(queue) = self.lanes.get_mut(&aggregate_key(&delivery)) {
                queue.pop_front();
            }
        }
        self.database_failures = if database_failed {
            self.database_failures.saturating_add(1)
        } else {
            0
        };
        for lane in lanes {
            // A lane waiting for its retry becomes ready when the retry is due.
            if waiting.iter().any(|(waiting, _)| *waiting == lane) {
                continue;
            }
            match self.lanes.get(&lane) {
                Some(queue) if queue.is_empty() => {
                    self.lanes.remove(&lane);
                }
                Some(_) => self.ready.push_back(lane),
                None => {}
            }
        }
        let now = Instant::now();
        for (lane, after) in waiting {
            if database_failed {
                // Every lane would fail alike: none starts before the backoff (the retry's
                // timer wakes the loop then).
                self.paused_until = Some(now + after);
            }
            self.retry_keys += 1;
            self.retries.insert((now + after, self.retry_keys), lane);
        }
        Ok(())
    }

    /// Makes the lanes whose retry is due ready again.
    fn wake_retries(&mut self) {
        let now = Instant::now();
        while let Some(entry) = self.retries.first_entry() {
            if entry.key().0 > now {
                return;
            }
            let lane = entry.remove();
            if self.lanes.contains_key(&lane) {
                self.ready.push_back(lane);
            }
        }
    }

    /// When the oldest done delivery must be acknowledged by (see [`AckBatching`]).
    fn ack_deadline(&self) -> Option<Instant> {
        self.waiting_since
            .map(|since| since + self.settings.acks.delay)
    }

    /// Whether to acknowledge now: enough deliveries are done, the oldest has waited long
    /// enough, the window is full (reading waits for acknowledgements), or the session ends.
    fn ack_is_due(&self, draining: bool) -> bool {
        if self.unacknowledged == 0 {
            return false;
        }
        draining
            || self.unacknowledged >= self.settings.acks.done
            || self.held_count() >= self.settings.window.max(1)
            || self.ack_deadline().is_some_and(|due| due <= Instant::now())
    }

    /// Acknowledges, per topic partition, the last delivery of the longest done prefix.
    async fn acknowledge<S: BusSubscription>(
        &mut self,
        subscription: &mut S,
    ) -> Result<(), BusError> {
        for deliveries in self.held.values_mut() {
            let mut last = None;
            while let Some(entry) = deliveries.first_entry() {
                if entry.get().is_none() {
                    break;
                }
                last = entry.remove();
                self.unacknowledged -= 1;
            }
            if let Some(delivery) = last {
                subscription.ack(&delivery).await?;
            }
        }
        // Done deliveries behind one still running wait for it; count their wait afresh.
        self.waiting_since = (self.unacknowledged > 0).then(Instant::now);
        Ok(())
    }
}

/// Hands `deliveries` to the consumer as one group and says what became of each. When the
/// database fails around the group (the `failures`-th time in a row before this one), its
/// first delivery is retried after the backoff and the others were not attempted.
async fn handle_group<H: Handlers>(
    consumer: &Consumer<H>,
    deliveries: Vec<Delivery>,
    backoff: RetrySettings,
    failures: u32,
) -> Vec<(Delivery, Finished)> {
    match consumer.handle_group(&deliveries).await {
        Ok(outcomes) => deliveries
            .into_iter()
            .zip(outcomes)
            .map(|(delivery, outcome)| {
                let finished = match outcome {
                    None => Finished::NotAttempted,
                    Some(Outcome::Retry { after, .. }) => Finished::Retry { after },
                    Some(_) => Finished::Done,
                };
                (delivery, finished)
            })
            .collect(),
        Err(error) => {
            let after = backoff.jittered(failures.saturating_add(1));
            tracing::warn!(group = %consumer.group(), error = %error,
                retry_in_ms = after.as_millis() as u64, "consumer: the database failed around the handlers; retrying");
            let mut finished = Vec::with_capacity(deliveries.len());
            let mut deliveries = deliveries.into_iter();
            if let Some(first) = deliveries.next() {
                finished.push((first, Finished::DatabaseFailed { after }));
            }
            finished.extend(deliveries.map(|delivery| (delivery, Finished::NotAttempted)));
            finished
        }
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use std::sync::Mutex;
    use std::time::SystemTime;

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::channel::Notifications;
    use crate::consumer::{ConsumerMetrics, HandleError};
    use crate::database::{Database, DatabaseTarget};
    use crate::messaging::{Envelope, PayloadFormat, UnitOfWork, Uuid};

    /// Handles everything at once.
    struct Accepts;

    impl Handlers for Accepts {
        fn handle<'a>(
            &'a self,
            _uow: &'a mut UnitOfWork,
            _delivery: &'a Delivery,
            _notify: &'a mut Notifications,
        ) -> BoxFuture<'a, Result<(), HandleError>> {
            Box::pin(std::future::ready(Ok(())))
        }
    }

    /// A subscription handing out `queued` (then nothing) and recording the tag of each ack.
    struct Recorded {
        queued: VecDeque<Delivery>,
        acks: Arc<Mutex<Vec<u64>>>,
    }

    impl BusSubscription for Recorded {
        async fn next(&mut self) -> Result<Delivery, BusError> {
            match self.queued.pop_front() {
                Some(delivery) => Ok(delivery),
                None => std::future::pending().await,
            }
        }

        async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
            self.acks.lock().unwrap().push(delivery.tag().value());
            Ok(())
        }

        async fn nack(&mut self, _delivery: &Delivery) -> Result<(), BusError> {
            Ok(())
        }

        async fn close(self) -> Result<(), BusError> {
            Ok(())
        }
    }

    fn delivery(n: u64) -> Delivery {
        let envelope = Envelope {
            id: Uuid::now_v7(),
            event_type: "Noted".into(),
            schema_version: 1,
            aggregate_type: "Note".into(),
            aggregate_id: format!("note-{n}"),
            occurred_at: SystemTime::UNIX_EPOCH,
            source: "notes".into(),
            correlation_id: "c".into(),
            causation_id: None,
            traceparent: None,
            tracestate: None,
            tenant_id: None,
            format: PayloadFormat::Json,
            payload: b"{}".to_vec(),
        };
        Delivery::new("shop.notes.Noted".into(), envelope, DeliveryTag::new(n)).in_partition(0)
    }

    /// Runs a session over `events` deliveries of one partition until all are handled and
    /// it has ended; the acknowledged tags.
    /// A consumer of `handlers` on a fresh SQLite file in `dir`, observed by fresh metrics.
    async fn consumer<H: Handlers>(
        dir: &std::path::Path,
        handlers: H,
        policy: super::super::RetryPolicy,
    ) -> Arc<Consumer<H>> {
        let url = format!("sqlite://{}?mode=rwc", dir.join("c.db").display());
        let db = Database::connect(&DatabaseTarget::parse(&url).expect("target"))
            .await
            .expect("sqlite");
        super::super::store::install(&db).await.expect("tables");
        Arc::new(
            Consumer::new(db, None, "notes", "shop.notes", handlers, policy)
                .observed_by(ConsumerMetrics::default(), &["Noted"]),
        )
    }

    /// Runs a session of `consumer` on `queued` with `settings` until its acknowledgements
    /// (the tags, in order) satisfy `enough` (5 s at most); returns them.
    async fn acks_until<H: Handlers>(
        consumer: &Arc<Consumer<H>>,
        queued: VecDeque<Delivery>,
        settings: DispatchSettings,
        enough: impl Fn(&[u64]) -> bool,
    ) -> Vec<u64> {
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let subscription = Recorded {
            queued,
            acks: recorded.clone(),
        };
        let stop = CancellationToken::new();
        let session = tokio::spawn(
            Session::new(Arc::clone(consumer), settings, stop.clone()).run(subscription),
        );
        for _ in 0..500 {
            if enough(&recorded.lock().unwrap()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        session.await.expect("session").expect("ended");
        recorded.lock().unwrap().clone()
    }

    /// The acknowledgements of a session handling `events` (each of its own aggregate) at
    /// `concurrency` 1 with `acks` and groups of `group`, and the transactions it committed.
    async fn session_of(events: u64, acks: AckBatching, group: usize) -> (Vec<u64>, u64) {
        let dir = tempfile::tempdir().expect("tempdir");
        let consumer = consumer(dir.path(), Accepts, super::super::RetryPolicy::DEFAULT).await;
        let settings = DispatchSettings {
            acks,
            group,
            ..DispatchSettings::new(1)
        };
        let queued = (1..=events).map(delivery).collect();
        // Every event is acknowledged within the batching delay once handled.
        let acks = acks_until(&consumer, queued, settings, |acks| {
            acks.last() == Some(&events)
        })
        .await;
        let commits = consumer
            .observer
            .as_ref()
            .map_or(0, |observer| observer.metrics.commits());
        (acks, commits)
    }

    #[tokio::test]
    async fn acknowledgements_are_gathered_where_the_bus_lets_them_wait() {
        // Gathered by count: the delay is long enough that a slow machine still gathers.
        let by_count = AckBatching {
            done: 64,
            delay: Duration::from_millis(500),
        };
        let (gathered, _) = session_of(200, by_count, 1).await;
        assert_eq!(gathered.last(), Some(&200), "everything acknowledged");
        assert!(
            gathered.len() <= 20,
            "one ack for many events: {gathered:?}"
        );
        assert!(
            gathered.windows(2).all(|w| w[0] < w[1]),
            "in order: {gathered:?}"
        );

        let (each, _) = session_of(50, AckBatching::IMMEDIATE, 1).await;
        assert_eq!(each.last(), Some(&50));
        assert!(each.len() >= 25, "at once, nearly one per event: {each:?}");
    }

    #[tokio::test]
    async fn deliveries_of_different_aggregates_commit_in_groups() {
        let (acks, commits) = session_of(200, AckBatching::default(), 32).await;
        assert_eq!(acks.last(), Some(&200), "everything acknowledged");
        assert!(commits <= 200 / 8, "{commits} transactions for 200 events");

        let (_, alone) = session_of(50, AckBatching::default(), 1).await;
        assert_eq!(alone, 50, "groups of 1: a transaction per event");
    }

    /// Fails every attempt at `note-0`, handles the rest.
    struct FailsNoteZero;

    impl Handlers for FailsNoteZero {
        fn handle<'a>(
            &'a self,
            _uow: &'a mut UnitOfWork,
            delivery: &'a Delivery,
            _notify: &'a mut Notifications,
        ) -> BoxFuture<'a, Result<(), HandleError>> {
            let fails = delivery.envelope().aggregate_id == "note-0";
            Box::pin(std::future::ready(if fails {
                Err(HandleError::failed("note-0 is locked"))
            } else {
                Ok(())
            }))
        }
    }

    #[tokio::test]
    async fn an_aggregate_waiting_to_be_retried_holds_no_handler() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = super::super::RetryPolicy {
            intervals: RetrySettings {
                initial_interval_ms: 60_000,
                max_interval_ms: 60_000,
                ..RetrySettings::DEFAULT
            },
            ..super::super::RetryPolicy::DEFAULT
        };
        let consumer = consumer(dir.path(), FailsNoteZero, policy).await;
        // One handler, one event per transaction: the failing one comes first, in a partition
        // of its own, and waits a minute for its retry.
        let settings = DispatchSettings {
            group: 1,
            ..DispatchSettings::new(1)
        };
        let mut queued: VecDeque<Delivery> = (1..=20).map(delivery).collect();
        queued.push_front(delivery(0).in_partition(1));
        let acks = acks_until(&consumer, queued, settings, |acks| acks.contains(&20)).await;
        assert!(
            acks.contains(&20),
            "the others were handled while note-0 waited: {acks:?}"
        );
        assert!(!acks.contains(&0), "note-0 is not acknowledged: {acks:?}");
    }

    #[tokio::test]
    async fn no_group_starts_while_the_database_backs_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let consumer = consumer(dir.path(), Accepts, super::super::RetryPolicy::DEFAULT).await;
        let mut session =
            Session::new(consumer, DispatchSettings::new(4), CancellationToken::new());
        for n in 1..=3 {
            session.admit(delivery(n));
        }
        session.start_ready();
        let (id, lanes) = session.running.drain().next().expect("a group started");
        session.tasks.abort_all();
        session.running.insert(id, lanes);
        // The database failed around that group: its first delivery waits, the rest were not
        // attempted.
        let finished = vec![
            (
                delivery(1),
                Finished::DatabaseFailed {
                    after: Duration::from_secs(60),
                },
            ),
            (delivery(2), Finished::NotAttempted),
            (delivery(3), Finished::NotAttempted),
        ];
        session.finish(Ok((id, finished))).expect("finish");
        while session.tasks.join_next().await.is_some() {}
        session.start_ready();
        assert!(
            session.tasks.is_empty(),
            "nothing starts during the backoff"
        );
        assert_eq!(session.database_failures, 1);
    }
}
