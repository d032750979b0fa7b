//! Messaging as a start-up [`Component`]: opens the bus from the environment, creates the
//! outbox tables, runs the relay, and puts [`Messaging`] in the context, where handlers reach it
//! through the methods this module adds to [`Ctx`].

use uuid::Uuid;

use super::{
    EventBus, EventContext, Messaging, MessagingConfig, MessagingError, OutboxMetricsSnapshot,
    OutboxSettings, PublishPattern, UnitOfWork, outbox, transactional_producers,
};
use crate::BoxError;
use crate::component::{BoxFuture, Component, Startup};
use crate::context::Ctx;
use crate::database::Backend;

/// How the service publishes, as the file says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum MessagingPlan {
    /// Outbox pattern with a relay.
    Outbox(OutboxSettings),
    /// Direct pattern.
    Direct,
    /// Transactional pattern.
    Transactional,
}

/// The messaging component of a service that declares `[services.messaging]`.
#[derive(Debug)]
pub(crate) struct MessagingComponent {
    pub(crate) plan: MessagingPlan,
}

impl Component for MessagingComponent {
    fn name(&self) -> &'static str {
        "messaging"
    }

    fn start<'a>(self: Box<Self>, startup: &'a mut Startup) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let messaging = open(self.plan, startup).await?;
            startup.insert(messaging);
            Ok(())
        })
    }
}

/// Opens the bus, creates the outbox tables and, for the outbox pattern, spawns the relay.
async fn open(plan: MessagingPlan, startup: &Startup) -> Result<Messaging, MessagingError> {
    let (ctx, env) = (startup.ctx(), startup.env());
    let settings = ctx.settings();
    if plan == MessagingPlan::Transactional {
        EventBus::refuse_without_transactions(EventBus::url_from_env(env).as_deref())?;
    }
    let mut bus = EventBus::from_env(env).await?;
    let pattern = match plan {
        MessagingPlan::Outbox(_) => {
            outbox::install(ctx.db())
                .await
                .map_err(MessagingError::Install)?;
            PublishPattern::Outbox
        }
        MessagingPlan::Direct => PublishPattern::Direct,
        MessagingPlan::Transactional => {
            let id = format!(
                "{}.{}.{}",
                settings.architecture,
                settings.name,
                Uuid::new_v4().simple()
            );
            let producers = transactional_producers(env)?;
            bus = bus.with_transactions(&id, producers).await?;
            PublishPattern::Transactional
        }
    };
    let messaging = Messaging::new(
        ctx.db().clone(),
        bus,
        MessagingConfig {
            architecture: settings.architecture,
            service: settings.name,
            pattern,
            tenant_header: startup.tenant_header(),
        },
    );
    tracing::info!(
        bus = messaging.bus().name(),
        pattern = pattern.as_str(),
        "event bus connected"
    );
    if let MessagingPlan::Outbox(outbox_settings) = plan {
        let mut relay = messaging.relay(outbox_settings);
        if ctx.db().backend() == Backend::Postgres
            && let Some(url) = env.get_non_empty(crate::database::DATABASE_URL)
        {
            relay = relay.listen(url.trim());
        }
        ctx.tasks().spawn("outbox-relay", move |token| async move {
            relay.run(token).await;
            Ok(())
        });
    }
    Ok(messaging)
}

impl Ctx {
    /// Opens a unit of work: one database transaction for the handler's state change and the
    /// events it publishes (see [`UnitOfWork`]). Events carry a fresh correlation id; use
    /// [`Ctx::begin_with`] to carry the request's.
    pub async fn begin(&self) -> Result<UnitOfWork, MessagingError> {
        self.begin_with(EventContext::default()).await
    }

    /// Opens a unit of work whose events carry `context` (correlation, causation, trace,
    /// tenant), e.g. the [`EventContext`] extracted from the request.
    pub async fn begin_with(&self, context: EventContext) -> Result<UnitOfWork, MessagingError> {
        match self.messaging() {
            Some(messaging) => messaging.begin_with(context).await,
            None => UnitOfWork::begin(self.db(), None, self.settings().name, context).await,
        }
    }

    /// The service's messaging, when it declares `[services.messaging]`.
    pub fn messaging(&self) -> Option<&Messaging> {
        self.get::<Messaging>()
    }

    /// The event bus, when the service declares `[services.messaging]`.
    pub fn bus(&self) -> Option<&EventBus> {
        self.messaging().map(Messaging::bus)
    }

    /// The outbox relay metrics of this process (lag, throughput), when messaging is on.
    pub fn outbox_metrics(&self) -> Option<OutboxMetricsSnapshot> {
        self.messaging().map(Messaging::metrics)
    }
}
