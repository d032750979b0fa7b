//! The consumer as part of a service (`type = "consumer"`): a start-up [`Component`] that
//! creates the consumer's tables and opens the bus, and a [`Host`] that, once the user's
//! service is built, runs the [`dispatch`] loop over the topics the file names, handing each
//! delivery to the service's [`Consume`] implementation (which the macro derives from the
//! user's `Consumes` impl). `/health/ready` reports `bus` failing while the consumer is not a
//! member of its group.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::admin::DeadLetterDesk;
use super::dispatch::{self, DispatchSettings, Membership};
use super::{Consumer, HandleError, Handlers, RetryPolicy, store};
use crate::admin::AdminSettings;
use crate::channel::{Channel, ChannelSender, Notifications, Transports};
use crate::component::{Component, Host, Hosted, Startup};
use crate::context::App;
use crate::env::Environment;
use crate::error::RuntimeError;
use crate::messaging::{
    BusError, Delivery, EventBus, Messaging, SubscribeOptions, UnitOfWork, consumer_group,
    topic_name,
};
use crate::metrics::Metrics;
use crate::{BoxError, Event, Service};

/// A service that handles events: the macro implements it for a `consumer`'s struct, routing
/// each delivery by event type to the user's `on_<event>` method with the decoded payload.
pub trait Consume: Service {
    /// Handles `delivery` inside `uow`; what the handler sends through a channel goes in
    /// `notify`.
    fn consume<'a>(
        &'a self,
        uow: &'a mut UnitOfWork,
        delivery: &'a Delivery,
        notify: &'a mut Notifications,
    ) -> BoxFuture<'a, Result<(), HandleError>>;
}

/// The payload type of a consumed event: an [`Event`] that deserializes. The `Consumes`
/// trait the macro declares bounds each event's associated type with it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is the payload of a consumed event, so it must be an `allframe::Event` that deserializes",
    label = "not a consumable event",
    note = "use the event's type from the architecture's event-types crate, or derive `serde::Deserialize` and implement `allframe::Event` for it"
)]
pub trait Payload: Event + serde::de::DeserializeOwned {}

impl<T: Event + serde::de::DeserializeOwned> Payload for T {}

/// One event a consumer takes, as the file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumedEvent {
    /// The event type, e.g. `"UserCreated"`.
    pub event: &'static str,
    /// The service of this architecture that publishes it (the middle part of its topic);
    /// `external` for an event published outside the file.
    pub producer: &'static str,
}

impl ConsumedEvent {
    /// Its topic in `architecture`: the producer's topic of the event.
    pub fn topic(&self, architecture: &str) -> String {
        topic_name(architecture, self.producer, self.event)
    }
}

/// `[services.consumer]` as the consumer host applies it. Constant data the macro emits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConsumerSettings {
    /// The events taken (`events`), once per service publishing each.
    pub events: &'static [ConsumedEvent],
    /// The notification channels its handlers send through (`channels`).
    pub channels: &'static [Channel],
    /// Handlers at once (`concurrency`).
    pub concurrency: u32,
    /// Retries, backoff and dead letters (`max_retries`, `retry_backoff`, `dlq`, and the
    /// service's retry intervals).
    pub policy: RetryPolicy,
}

impl ConsumerSettings {
    /// The topics of the consumed events in `architecture`.
    pub fn topics(&self, architecture: &str) -> Vec<String> {
        self.events
            .iter()
            .map(|consumed| consumed.topic(architecture))
            .collect()
    }
}

/// The bus the consumer reads, opened at start-up.
#[derive(Clone)]
pub(crate) struct ConsumerBus(pub(crate) EventBus);

impl ConsumerBus {
    /// The bus messaging opened when the service also publishes, else the one `EVENT_BUS_URL`
    /// names.
    pub(crate) async fn open(startup: &Startup) -> Result<Self, BusError> {
        Ok(Self(match startup.get::<Messaging>() {
            Some(messaging) => messaging.bus().clone(),
            None => EventBus::from_env(startup.env()).await?,
        }))
    }
}

/// Creates the consumer's tables (inbox, attempts, dead letters) and opens the bus: the one
/// messaging opened when the service also publishes, else the one `EVENT_BUS_URL` names.
#[derive(Debug)]
pub(crate) struct ConsumerComponent;

impl Component for ConsumerComponent {
    fn name(&self) -> &'static str {
        "consumer"
    }

    fn start<'a>(
        self: Box<Self>,
        startup: &'a mut Startup,
    ) -> crate::component::BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            store::install(startup.ctx().db()).await?;
            let retention = inbox_retention(startup.env())?;
            let db = startup.ctx().db().clone();
            startup
                .ctx()
                .tasks()
                .spawn("inbox-pruner", move |shutdown| async move {
                    // Often enough that the table holds about one retention of rows.
                    let every =
                        (retention / 24).clamp(Duration::from_secs(1), Duration::from_secs(3600));
                    store::keep_inbox_pruned(db, retention, every, shutdown).await;
                    Ok(())
                });
            startup.insert(ConsumerBus::open(startup).await?);
            startup.insert(Membership::default());
            Ok(())
        })
    }
}

/// How long handled events are remembered: `ALLFRAME_INBOX_RETENTION_SECS`, else 7 days.
fn inbox_retention(env: &Environment) -> Result<Duration, BoxError> {
    const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
    let var = allframe_env::ALLFRAME_INBOX_RETENTION_SECS;
    match env.parsed(var, allframe_env::Var::seconds)? {
        None => Ok(WEEK),
        Some(retention) if retention.is_zero() => Err(format!(
            "environment variable {} must be at least 1 (seconds): with 0, every redelivery would be handled again",
            var.name
        )
        .into()),
        Some(retention) => Ok(retention),
    }
}

/// The bus and the group membership [`ConsumerComponent`] left for `host` (the consumer's, or
/// a saga orchestrator's reply consumer).
pub(crate) fn opened(
    startup: &Startup,
    host: &'static str,
) -> Result<(EventBus, Membership), RuntimeError> {
    let missing = |what: &str| RuntimeError::Component {
        name: host,
        source: format!("the consumer component did not start ({what} missing)").into(),
    };
    let ConsumerBus(bus) = startup
        .get::<ConsumerBus>()
        .cloned()
        .ok_or_else(|| missing("bus"))?;
    let membership = startup
        .get::<Membership>()
        .cloned()
        .ok_or_else(|| missing("membership"))?;
    Ok((bus, membership))
}

/// Runs the consumer once the user's service is built: see the module docs.
#[derive(Debug)]
pub(crate) struct ConsumerHost {
    pub(crate) settings: ConsumerSettings,
}

impl<S: Consume> Host<S> for ConsumerHost {
    fn name(&self) -> &'static str {
        "consumer"
    }

    fn start<'a>(
        self: Box<Self>,
        app: &'a App<S>,
        startup: &'a Startup,
    ) -> crate::component::BoxFuture<'a, Result<Hosted, RuntimeError>> {
        Box::pin(async move {
            let ctx = app.ctx();
            let service = ctx.settings();
            let (bus, membership) = opened(startup, "consumer")?;
            let group = consumer_group(service.architecture, service.name);
            let options = SubscribeOptions::new(&group, self.settings.topics(service.architecture))
                .redelivery_after(self.settings.policy.redelivery_after());
            let mut consumer = Consumer::new(
                ctx.db().clone(),
                startup.get::<Messaging>().cloned(),
                service.name,
                group,
                AppHandlers(app.clone()),
                self.settings.policy,
            );
            if let Some(metrics) = startup.get::<Metrics>() {
                let events: Vec<&'static str> = self
                    .settings
                    .events
                    .iter()
                    .map(|consumed| consumed.event)
                    .collect();
                consumer = consumer.observed_by(metrics.consumer(), &events);
                consumer
                    .count_dead_letters()
                    .await
                    .map_err(|error| RuntimeError::Component {
                        name: "consumer",
                        source: error.into(),
                    })?;
            }
            if !self.settings.channels.is_empty() {
                let sender = self.channel_sender(ctx.db(), startup)?;
                consumer = consumer.waking(sender.waker());
                ctx.tasks()
                    .spawn("channel-sender", move |shutdown| async move {
                        sender.run(shutdown).await;
                        Ok(())
                    });
            }
            let consumer = Arc::new(consumer);
            let mut hosted = Hosted::default();
            let admin =
                AdminSettings::from_env(startup.env(), service.rest_port).map_err(|source| {
                    RuntimeError::Component {
                        name: "consumer",
                        source,
                    }
                })?;
            if let Some(admin) = admin {
                let desk: Arc<dyn DeadLetterDesk> = consumer.clone();
                hosted
                    .servers
                    .push(admin.serve(super::admin::router(desk), startup).await?);
            }
            if let Some(metrics) = startup.get::<Metrics>() {
                let (bus, group) = (bus.clone(), consumer.group().to_owned());
                let (topics, metrics) = (options.topics.clone(), metrics.consumer());
                ctx.tasks()
                    .spawn("consumer-lag", move |shutdown| async move {
                        keep_lag_current(&bus, &group, &topics, &metrics, LAG_EVERY, &shutdown)
                            .await;
                        Ok(())
                    });
            }
            let settings = DispatchSettings::new(self.settings.concurrency as usize);
            tracing::info!(group = %consumer.group(), topics = ?options.topics, bus = bus.name(),
                concurrency = settings.concurrency, "consumer started");
            ctx.tasks().spawn("consumer", move |shutdown| async move {
                dispatch::run(consumer, bus, options, settings, membership, shutdown).await;
                Ok(())
            });
            Ok(hosted)
        })
    }
}

impl ConsumerHost {
    /// The sender of the channel outbox, delivering where the environment says.
    fn channel_sender(
        &self,
        db: &crate::database::Database,
        startup: &Startup,
    ) -> Result<ChannelSender, RuntimeError> {
        let env = startup.env();
        let service = startup.ctx().settings().name;
        let data_dir = crate::database::data_dir(env);
        let transports = Transports::from_env(env, service, &data_dir, self.settings.channels)
            .map_err(|source| RuntimeError::Component {
                name: "consumer",
                source,
            })?;
        let sender = ChannelSender::new(db.clone(), transports, self.settings.policy);
        Ok(match startup.get::<Metrics>() {
            Some(metrics) => sender.observed_by(metrics.consumer()),
            None => sender,
        })
    }
}

/// How often the consumer's lag is read from the bus.
const LAG_EVERY: Duration = Duration::from_secs(15);

/// Reads the group's lag from the bus into `metrics` at once and then `every` until `shutdown`;
/// stops for good on a bus that reports none.
async fn keep_lag_current(
    bus: &EventBus,
    group: &str,
    topics: &[String],
    metrics: &super::ConsumerMetrics,
    every: Duration,
    shutdown: &tokio_util::sync::CancellationToken,
) {
    loop {
        match bus.lag(group, topics).await {
            Ok(Some(lag)) => metrics.set_lag(lag),
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(%group, error = %error, "consumer: reading the lag failed");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// The service's [`Consume`] as the consumer's [`Handlers`].
struct AppHandlers<S>(App<S>);

impl<S: Consume> Handlers for AppHandlers<S> {
    fn handle<'a>(
        &'a self,
        uow: &'a mut UnitOfWork,
        delivery: &'a Delivery,
        notify: &'a mut Notifications,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        self.0.service().consume(uow, delivery, notify)
    }
}
