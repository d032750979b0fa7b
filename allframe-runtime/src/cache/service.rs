//! A `type = "cache"` service: [`CacheService`] (derived by `#[allframe::service]` from the
//! user's `Caches` impl), the component that opens its [`Cache`] at start-up, and the host
//! that evicts what the file's `invalidation` events make stale.
//!
//! - **Start-up** ([`Launcher::cache`](crate::__private::Launcher::cache)): the engine from the
//!   environment (Redis when `REDIS_URL` is set, else embedded; Redis must answer `PING`),
//!   the user's source from [`CacheService::open_source`], then [`Cache::open`] on the
//!   service database (write-behind records its pending writes there). The cache is in the
//!   context ([`cache_of`]), stores its pending writes on shutdown, and its counters are
//!   exported with the service's metrics.
//! - **Invalidation**: each event of `invalidation` is read from its publishers' topics; the
//!   user's method names the keys it makes stale, and they are evicted before the delivery is
//!   acknowledged (at least once; an eviction is idempotent). With the embedded engine every
//!   instance holds entries of its own, so each subscribes as a group of its own
//!   ([`SubscribeOptions::per_instance`]) and sees every event published while it runs (an
//!   instance that starts has nothing stale). With Redis one eviction reaches every
//!   instance, so they share one durable group. A method's or the engine's failure is
//!   retried (the delivery is given back after a growing pause); an event that cannot be
//!   read is logged and skipped: its keys expire with the TTL.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Cache, CacheEngine, CacheSettings, CacheSource, WriteStrategy};
use crate::component::{BoxFuture, Component, Host, Hosted, Startup};
use crate::consumer::{ConsumedEvent, ConsumerBus, HandleError};
use crate::error::{ApiError, RuntimeError};
use crate::messaging::{
    BusError, BusSubscription, Delivery, EventBus, StartFrom, SubscribeOptions, Subscription,
    consumer_group,
};
use crate::metrics::Metrics;
use crate::{App, BoxError, Ctx, Service};

/// A `type = "cache"` service: what it caches and which keys each invalidation event makes
/// stale. `#[allframe::service]` implements it from the user's `Caches` impl.
pub trait CacheService: Service {
    /// What the cache fronts.
    type Source: CacheSource;

    /// Opens the source, once at start-up (before [`Service::init`]).
    fn open_source(cx: &Ctx) -> BoxFuture<'_, Result<Self::Source, BoxError>>;

    /// The keys the event of `delivery` makes stale, from the user's method for its type.
    fn stale_keys<'a>(
        &'a self,
        delivery: &'a Delivery,
    ) -> BoxFuture<'a, Result<Vec<String>, HandleError>>;
}

/// `[services.cache]` as the runtime applies it. Constant data the macro emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheServiceSettings {
    /// `strategy`.
    pub strategy: WriteStrategy,
    /// `ttl_seconds`.
    pub ttl_seconds: u64,
    /// The events of `invalidation`, once per service publishing each.
    pub invalidations: &'static [ConsumedEvent],
}

impl CacheServiceSettings {
    /// The cache's settings for `service`: its name is the namespace.
    pub fn cache_settings(&self, service: &'static str) -> CacheSettings {
        CacheSettings {
            strategy: self.strategy,
            ttl: Duration::from_secs(self.ttl_seconds),
            ..CacheSettings::new(service)
        }
    }

    /// The topics of the invalidation events in `architecture`.
    pub fn topics(&self, architecture: &str) -> Vec<String> {
        self.invalidations
            .iter()
            .map(|consumed| consumed.topic(architecture))
            .collect()
    }
}

/// The cache of the service `cx` belongs to, or a `500` when it was not started as a cache.
pub fn cache_of<S: CacheSource>(cx: &Ctx) -> Result<&Cache<S>, ApiError> {
    cx.get::<Cache<S>>().ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "the cache is not open: the service was not started as a cache",
        )
    })
}

/// Opens the cache at start-up, see the module docs.
pub(crate) struct CacheComponent<S> {
    pub(crate) settings: CacheServiceSettings,
    pub(crate) service: std::marker::PhantomData<fn() -> S>,
}

impl<S: CacheService> Component for CacheComponent<S> {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn start<'a>(self: Box<Self>, startup: &'a mut Startup) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let ctx = startup.ctx().clone();
            let engine = CacheEngine::from_env(startup.env())?;
            engine.ping().await?;
            let source = S::open_source(&ctx).await?;
            let settings = self.settings.cache_settings(ctx.settings().name);
            let cache = Cache::open(source, settings, &engine, Some(ctx.db())).await?;
            cache.flush_on_shutdown(ctx.tasks());
            if let Some(metrics) = startup.get::<Metrics>() {
                metrics.observe_cache(cache.collector());
            }
            if !self.settings.invalidations.is_empty() {
                startup.insert(ConsumerBus::open(startup).await?);
            }
            tracing::info!(engine = engine.name(), strategy = %self.settings.strategy,
                ttl_seconds = self.settings.ttl_seconds, "cache opened");
            startup.insert(engine);
            startup.insert(cache);
            Ok(())
        })
    }
}

/// Follows the invalidation events once the service is built, see the module docs.
pub(crate) struct InvalidationHost {
    pub(crate) settings: CacheServiceSettings,
}

impl<S: CacheService> Host<S> for InvalidationHost {
    fn name(&self) -> &'static str {
        "cache-invalidation"
    }

    fn start<'a>(
        self: Box<Self>,
        app: &'a App<S>,
        startup: &'a Startup,
    ) -> BoxFuture<'a, Result<Hosted, RuntimeError>> {
        Box::pin(async move {
            if self.settings.invalidations.is_empty() {
                return Ok(Hosted::default());
            }
            let failed = |source: BoxError| RuntimeError::Component {
                name: "cache-invalidation",
                source,
            };
            let (cache, engine) = match (
                startup.get::<Cache<S::Source>>(),
                startup.get::<CacheEngine>(),
            ) {
                (Some(cache), Some(engine)) => (cache.clone(), engine.clone()),
                _ => return Err(failed("the cache component did not start".into())),
            };
            let Some(ConsumerBus(bus)) = startup.get::<ConsumerBus>().cloned() else {
                return Err(failed("the cache component opened no bus".into()));
            };
            let service = app.ctx().settings();
            let group = format!(
                "{}.invalidation",
                consumer_group(service.architecture, service.name)
            );
            let options = SubscribeOptions::new(group, self.settings.topics(service.architecture))
                .start(StartFrom::Latest);
            let options = if engine.is_shared() {
                options
            } else {
                options.per_instance()
            };
            // Subscribed before the service is ready: an event published once it answers
            // is seen.
            let subscription = bus
                .subscribe(options.clone())
                .await
                .map_err(|error| failed(error.into()))?;
            tracing::info!(topics = ?options.topics, bus = bus.name(),
                per_instance = options.per_instance, "cache invalidation started");
            let follower = Follower {
                app: app.clone(),
                cache,
                bus,
                options,
            };
            app.ctx()
                .tasks()
                .spawn("cache-invalidation", move |shutdown| async move {
                    follower.run(subscription, shutdown).await;
                    Ok(())
                });
            Ok(Hosted::default())
        })
    }
}

/// The first pause before a failed eviction is retried; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between retries of an eviction or a subscription.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Reads invalidation events and evicts what they make stale, until shutdown.
struct Follower<S: CacheService> {
    app: App<S>,
    cache: Cache<S::Source>,
    bus: EventBus,
    options: SubscribeOptions,
}

impl<S: CacheService> Follower<S> {
    async fn run(self, first: Subscription, shutdown: CancellationToken) {
        let mut subscription = Some(first);
        let mut pause = FIRST_PAUSE;
        while !shutdown.is_cancelled() {
            let mut current = match subscription.take() {
                Some(current) => current,
                None => match self.bus.subscribe(self.options.clone()).await {
                    Ok(current) => current,
                    Err(error) => {
                        tracing::warn!(error = %error, "cache invalidation: subscribing failed");
                        if sleep_or_shutdown(&mut pause, &shutdown).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            match self.follow(&mut current, &shutdown).await {
                Ok(()) => {
                    let _ = current.close().await;
                    return;
                }
                Err(error) => {
                    tracing::warn!(error = %error, "cache invalidation: the bus failed; subscribing again");
                    let _ = current.close().await;
                    if sleep_or_shutdown(&mut pause, &shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// Handles deliveries until shutdown (`Ok`) or a bus error.
    async fn follow(
        &self,
        subscription: &mut Subscription,
        shutdown: &CancellationToken,
    ) -> Result<(), BusError> {
        let mut pause = FIRST_PAUSE;
        loop {
            let delivery = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                next = subscription.next() => next?,
            };
            match self.evict(&delivery).await {
                Ok(()) => {
                    pause = FIRST_PAUSE;
                    subscription.ack(&delivery).await?;
                }
                Err(error) => {
                    tracing::warn!(event = %delivery.envelope().event_type, error = %error,
                        retry_in_ms = pause.as_millis() as u64, "cache invalidation failed");
                    if sleep_or_shutdown(&mut pause, shutdown).await {
                        return Ok(());
                    }
                    subscription.nack(&delivery).await?;
                }
            }
        }
    }

    /// Evicts the keys `delivery` makes stale; `Err` when it should be retried.
    async fn evict(&self, delivery: &Delivery) -> Result<(), BoxError> {
        let event = &delivery.envelope().event_type;
        match self.app.service().stale_keys(delivery).await {
            Ok(keys) => {
                tracing::debug!(%event, keys = keys.len(), "cache invalidation");
                Ok(self.cache.evict_all(keys).await?)
            }
            Err(HandleError::Failed(error)) => Err(error),
            Err(error) => {
                tracing::error!(%event, error = %error,
                    "cache invalidation: skipping an event that cannot be read; its keys expire with the TTL");
                Ok(())
            }
        }
    }
}

/// Sleeps `pause` (then doubles it up to [`MAX_PAUSE`]); true when shutdown came first.
async fn sleep_or_shutdown(pause: &mut Duration, shutdown: &CancellationToken) -> bool {
    let slept = *pause;
    *pause = (*pause * 2).min(MAX_PAUSE);
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(slept) => false,
    }
}
