//! The orchestrator as part of a service: a start-up [`Component`] that creates the saga
//! tables and leaves [`Sagas`] in the context (to start and inspect sagas), and a [`Host`]
//! that, once the user's service is built, drives the sagas this instance starts and takes
//! over those whose owner's lease lapsed (a crashed or stopped instance's).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::driver::{DEFAULT_GRACE, Engine};
use super::replies::ReplyHandlers;
use super::store::{self, Fence, NewSaga};
use super::{Input, Orchestrate, SagaError, SagaRecord, SagaSettings, SagaStatus};
use crate::BoxError;
use crate::admin::AdminSettings;
use crate::component::{BoxFuture, Component, Host, Hosted, Startup};
use crate::consumer::dispatch::{self, DispatchSettings};
use crate::consumer::{Consumer, DeadLetterDesk, RetryPolicy as ReplyPolicy, dead_letter_router};
use crate::context::App;
use crate::database::Database;
use crate::error::RuntimeError;
use crate::messaging::{Messaging, SubscribeOptions, consumer_group};
use crate::metrics::Metrics;

/// How long a lease lasts when `ALLFRAME_SAGA_LEASE_SECS` is unset.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);
/// At most this many sagas are driven at once by one instance; more wait their turn.
const MAX_DRIVEN: usize = 256;

/// The sagas of this service, in the context: `cx.get::<Sagas>()`. Cheap to clone.
#[derive(Clone)]
pub struct Sagas {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    settings: SagaSettings,
    owner: Arc<str>,
    lease: Duration,
    started: mpsc::UnboundedSender<Fence>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Fence>>>,
    /// Woken when a saga may have become due: an operator retried it, or a reply came.
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Sagas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sagas")
            .field("saga", &self.inner.settings.name)
            .field("owner", &self.inner.owner)
            .finish_non_exhaustive()
    }
}

impl Sagas {
    fn new(db: Database, settings: SagaSettings, lease: Duration) -> Self {
        let (started, receiver) = mpsc::unbounded_channel();
        let owner = format!("{}-{}", std::process::id(), Uuid::new_v4().simple());
        Self {
            inner: Arc::new(Inner {
                db,
                settings,
                owner: Arc::from(owner),
                lease,
                started,
                receiver: Mutex::new(Some(receiver)),
                wake: Arc::new(Notify::new()),
            }),
        }
    }

    /// Starts a saga with `input`: stored as `running`, then driven by this instance. Returns
    /// its id.
    pub async fn start<I: Input>(&self, input: &I) -> Result<String, SagaError> {
        let input = serde_json::to_string(input).map_err(SagaError::Input)?;
        let id = Uuid::now_v7().hyphenated().to_string();
        let now = store::now();
        let timeout_ms = i64::try_from(self.inner.settings.timeout_seconds)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000);
        store::insert(
            &self.inner.db,
            &NewSaga {
                id: &id,
                saga: self.inner.settings.name,
                input: &input,
                owner: &self.inner.owner,
                lease_until: now.saturating_add(self.inner.lease.as_millis() as i64),
                deadline: now.saturating_add(timeout_ms),
            },
        )
        .await?;
        // When no host drives it (not started yet, or stopping), the lease lapses and an
        // instance takes it over.
        let _ = self
            .inner
            .started
            .send(Fence::new(id.clone(), 1, self.inner.lease));
        Ok(id)
    }

    /// The saga `id` with its log.
    pub async fn get(&self, id: &str) -> Result<Option<SagaRecord>, SagaError> {
        Ok(store::get(&self.inner.db, id).await?)
    }

    /// Up to `limit` sagas, newest first, only those in `status` when given.
    pub async fn list(
        &self,
        status: Option<SagaStatus>,
        limit: u32,
    ) -> Result<Vec<SagaRecord>, SagaError> {
        Ok(store::list(
            &self.inner.db,
            self.inner.settings.name,
            status,
            i64::from(limit),
        )
        .await?)
    }

    /// Retries the stuck saga `id`: its compensations run on, the one it is stuck on with a fresh
    /// budget.
    pub async fn retry(&self, id: &str) -> Result<(), SagaError> {
        store::retry(&self.inner.db, id).await?;
        self.inner.wake.notify_one();
        Ok(())
    }
}

/// The lease from `ALLFRAME_SAGA_LEASE_SECS` (at least one second).
fn lease(startup: &Startup) -> Result<Duration, BoxError> {
    let lease = startup
        .env()
        .parsed(
            allframe_env::ALLFRAME_SAGA_LEASE_SECS,
            allframe_env::Var::seconds,
        )?
        .unwrap_or(DEFAULT_LEASE);
    Ok(lease.max(Duration::from_secs(1)))
}

/// Creates the saga tables and puts [`Sagas`] in the context.
#[derive(Debug)]
pub(crate) struct SagaComponent {
    pub(crate) settings: SagaSettings,
}

impl Component for SagaComponent {
    fn name(&self) -> &'static str {
        "saga"
    }

    fn start<'a>(self: Box<Self>, startup: &'a mut Startup) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let db = startup.ctx().db().clone();
            store::install(&db).await?;
            let sagas = Sagas::new(db, self.settings, lease(startup)?);
            startup.insert(sagas);
            Ok(())
        })
    }
}

/// Drives the sagas: those this instance starts, and those whose owner's lease lapsed.
#[derive(Debug)]
pub(crate) struct SagaHost;

impl<S: Orchestrate> Host<S> for SagaHost {
    fn name(&self) -> &'static str {
        "saga"
    }

    fn start<'a>(
        self: Box<Self>,
        app: &'a App<S>,
        startup: &'a Startup,
    ) -> BoxFuture<'a, Result<Hosted, RuntimeError>> {
        Box::pin(async move {
            let missing = || RuntimeError::Component {
                name: "saga",
                source: "the saga component did not start before its host".into(),
            };
            let sagas = startup.get::<Sagas>().cloned().ok_or_else(missing)?;
            let receiver = sagas
                .inner
                .receiver
                .lock()
                .ok()
                .and_then(|mut slot| slot.take())
                .ok_or_else(missing)?;
            let settings = sagas.inner.settings;
            let engine = Engine {
                ctx: app.ctx().clone(),
                publisher: startup.get::<Messaging>().cloned(),
                settings,
                owner: Arc::clone(&sagas.inner.owner),
                lease: sagas.inner.lease,
                grace: grace(settings.timeout_seconds),
                metrics: startup.get::<Metrics>().map(Metrics::saga),
                // Replaced by the task's own token when the loop starts.
                shutdown: CancellationToken::new(),
            };
            let mut hosted = Hosted::default();
            let admin = AdminSettings::from_env(startup.env(), app.ctx().settings().rest_port)
                .map_err(|source| RuntimeError::Component {
                    name: "saga",
                    source,
                })?;
            let mut admin_routes = super::http::admin_router(sagas.clone());
            if settings.awaits_replies() {
                let replies = consume_replies(app, startup, &sagas).await?;
                let desk: Arc<dyn DeadLetterDesk> = replies;
                admin_routes = admin_routes.merge(dead_letter_router(desk));
            }
            if let Some(admin) = admin {
                hosted
                    .servers
                    .push(admin.serve(admin_routes, startup).await?);
            }
            let service = Arc::clone(app.service());
            tracing::info!(saga = settings.name, owner = %engine.owner,
                lease_secs = engine.lease.as_secs(), "saga orchestrator started");
            app.ctx()
                .tasks()
                .spawn("saga-orchestrator", move |shutdown| async move {
                    run(engine, service, sagas, receiver, shutdown).await;
                    Ok(())
                });
            Ok(hosted)
        })
    }
}

/// Consumes the events answering the saga's steps (see [`super::replies`]) with the consumer
/// runtime: inbox, retries and dead letters, as the service's consumer group. Returns the
/// consumer, whose dead letters the admin API serves.
async fn consume_replies<S: Orchestrate>(
    app: &App<S>,
    startup: &Startup,
    sagas: &Sagas,
) -> Result<Arc<Consumer<ReplyHandlers>>, RuntimeError> {
    let ctx = app.ctx();
    let service = ctx.settings();
    let settings = sagas.inner.settings;
    let (bus, membership) = crate::consumer::opened(startup, "saga")?;
    let group = consumer_group(service.architecture, service.name);
    let topics: Vec<String> = settings
        .replies
        .iter()
        .map(|reply| reply.topic(service.architecture))
        .collect();
    let policy = reply_policy(settings.retry);
    let options = SubscribeOptions::new(&group, topics).redelivery_after(policy.redelivery_after());
    let mut consumer = Consumer::new(
        ctx.db().clone(),
        startup.get::<Messaging>().cloned(),
        service.name,
        group,
        ReplyHandlers { settings },
        policy,
    )
    .waking_after_commit(Arc::clone(&sagas.inner.wake));
    if let Some(metrics) = startup.get::<Metrics>() {
        let events: Vec<&'static str> = settings.replies.iter().map(|reply| reply.event).collect();
        consumer = consumer.observed_by(metrics.consumer(), &events);
    }
    let consumer = Arc::new(consumer);
    let dispatched = Arc::clone(&consumer);
    tracing::info!(group = %consumer.group(), topics = ?options.topics, bus = bus.name(),
        "saga replies consumed");
    ctx.tasks()
        .spawn("saga-replies", move |shutdown| async move {
            let settings = DispatchSettings::new(REPLY_CONCURRENCY);
            dispatch::run(dispatched, bus, options, settings, membership, shutdown).await;
            Ok(())
        });
    Ok(consumer)
}

/// How a reply that cannot be stored is retried: the service's retry policy (storing one
/// fails only when the database does), then a dead letter an operator replays.
fn reply_policy(retry: crate::resilience::RetryPolicy) -> ReplyPolicy {
    ReplyPolicy {
        max_retries: retry.max_attempts.max(1) - 1,
        backoff: crate::consumer::Backoff::Exponential,
        intervals: crate::messaging::RetrySettings {
            max_attempts: retry.max_attempts,
            initial_interval_ms: retry.initial_interval_ms,
            max_interval_ms: retry.max_interval_ms,
            multiplier: retry.multiplier,
        },
        dlq: true,
    }
}

/// Replies handled at once.
const REPLY_CONCURRENCY: usize = 16;

/// The grace of a step still running at the deadline: a tenth of the saga's timeout, between
/// 100 ms and [`DEFAULT_GRACE`].
fn grace(timeout_seconds: u64) -> Duration {
    (Duration::from_secs(timeout_seconds) / 10).clamp(Duration::from_millis(100), DEFAULT_GRACE)
}

/// The orchestrator loop: drives started sagas at once, looks for lapsed leases every third
/// of a lease, and at shutdown lets the drivers stop between steps, then gives up its leases.
async fn run<S: Orchestrate>(
    mut engine: Engine,
    service: Arc<S>,
    sagas: Sagas,
    mut started: mpsc::UnboundedReceiver<Fence>,
    shutdown: CancellationToken,
) {
    engine.shutdown = shutdown.clone();
    let driving: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut drivers = JoinSet::new();
    let mut poll = tokio::time::interval(
        (engine.lease / 3).clamp(Duration::from_millis(100), Duration::from_secs(5)),
    );
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(fence) = started.recv() => {
                // Past the limit a started saga waits: its lease lapses and a poll takes it.
                if drivers.len() < MAX_DRIVEN {
                    spawn_driver(&mut drivers, &engine, &service, &driving, fence);
                }
            }
            _ = poll.tick() => take_over(&mut drivers, &engine, &service, &driving).await,
            () = sagas.inner.wake.notified() => {
                take_over(&mut drivers, &engine, &service, &driving).await;
            }
            Some(_) = drivers.join_next(), if !drivers.is_empty() => {}
        }
    }
    while drivers.join_next().await.is_some() {}
    match store::release(engine.ctx.db(), &engine.owner).await {
        Ok(0) => {}
        Ok(released) => tracing::info!(released, "saga leases released for other instances"),
        Err(error) => tracing::warn!(error = %error,
            "releasing saga leases failed; other instances take them over when they lapse"),
    }
}

/// Claims the sagas nobody holds a live lease on and drives them; refreshes the stuck gauge.
async fn take_over<S: Orchestrate>(
    drivers: &mut JoinSet<()>,
    engine: &Engine,
    service: &Arc<S>,
    driving: &Arc<Mutex<HashSet<String>>>,
) {
    let db = engine.ctx.db();
    if let Some(metrics) = &engine.metrics {
        match store::count_stuck(db, engine.settings.name).await {
            Ok(stuck) => metrics.set_stuck(stuck),
            Err(error) => tracing::warn!(error = %error, "counting stuck sagas failed"),
        }
    }
    let room = MAX_DRIVEN.saturating_sub(drivers.len());
    if room == 0 {
        return;
    }
    let candidates = match store::claimable(db, engine.settings.name, room as i64).await {
        Ok(candidates) => candidates,
        Err(error) => {
            tracing::warn!(error = %error, "looking for sagas to take over failed");
            return;
        }
    };
    for id in candidates {
        if driving.lock().is_ok_and(|driving| driving.contains(&id)) {
            continue;
        }
        let until = store::now().saturating_add(engine.lease.as_millis() as i64);
        match store::claim(db, engine.settings.name, &id, &engine.owner, until).await {
            Ok(Some(epoch)) => {
                tracing::info!(saga_id = %id, epoch, "saga taken over");
                spawn_driver(drivers, engine, service, driving, engine.fence(id, epoch));
            }
            // Another instance was quicker.
            Ok(None) => {}
            Err(error) => tracing::warn!(saga_id = %id, error = %error, "claiming a saga failed"),
        }
    }
}

/// Drives `fence`'s saga on its own task, marked as driven here until it ends.
fn spawn_driver<S: Orchestrate>(
    drivers: &mut JoinSet<()>,
    engine: &Engine,
    service: &Arc<S>,
    driving: &Arc<Mutex<HashSet<String>>>,
    fence: Fence,
) {
    if let Ok(mut driving) = driving.lock()
        && !driving.insert(fence.id.clone())
    {
        return;
    }
    let (engine, service) = (engine.clone(), Arc::clone(service));
    // Unmarks the saga however the driver ends, a panic included.
    let marked = Driving {
        set: Arc::clone(driving),
        id: fence.id.clone(),
    };
    drivers.spawn(async move {
        let ended = engine.drive(service.as_ref(), fence).await;
        tracing::debug!(saga_id = %marked.id, ?ended, "saga driver ended");
        drop(marked);
    });
}

/// A saga marked as driven by this instance until dropped.
struct Driving {
    set: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl Drop for Driving {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.id);
        }
    }
}
