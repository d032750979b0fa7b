//! The event-sourcing component of a service: at start-up it opens the event store and the
//! service's projections in its database, leaves [`EventStore`], [`Projections`] and the
//! [`EventSourcedSettings`] in the context, and keeps the projections caught up in the
//! background until shutdown. Its host serves the projections on the admin API.

use std::sync::Arc;
use std::time::Duration;

use super::{EventStore, Projection, Projections};
use crate::BoxError;
use crate::admin::AdminSettings;
use crate::component::{BoxFuture, Component, Host, Hosted, Startup};
use crate::context::App;
use crate::error::RuntimeError;

/// What `[services.cqrs]` declares, as the macro bakes it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSourcedSettings {
    /// Snapshot an aggregate every this many events (at least 1).
    pub snapshot_frequency: u64,
    /// How long the projection runner waits when it found nothing to apply.
    pub projection_idle: Duration,
}

impl EventSourcedSettings {
    /// The projection runner's idle wait by default: 100 ms.
    pub const DEFAULT_PROJECTION_IDLE: Duration = Duration::from_millis(100);
}

/// Opens the store and the projections, and runs the projections.
pub(crate) struct EventSourcedComponent {
    pub(crate) settings: EventSourcedSettings,
    pub(crate) projections: fn() -> Vec<Arc<dyn Projection>>,
}

impl Component for EventSourcedComponent {
    fn name(&self) -> &'static str {
        "event-store"
    }

    fn start<'a>(self: Box<Self>, startup: &'a mut Startup) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let store = EventStore::open(startup.ctx().db()).await?;
            let projections = Projections::open(&store, (self.projections)()).await?;
            let idle = self.settings.projection_idle;
            let runner = projections.clone();
            startup
                .ctx()
                .tasks()
                .spawn("projections", move |shutdown| async move {
                    runner.run(shutdown, idle).await;
                    Ok(())
                });
            startup.insert(store);
            startup.insert(projections);
            startup.insert(self.settings);
            Ok(())
        })
    }
}

/// Serves the projections on the admin API when `ALLFRAME_ADMIN_TOKEN` is set.
#[derive(Debug)]
pub(crate) struct EventSourcedHost;

impl<S: Send + Sync + 'static> Host<S> for EventSourcedHost {
    fn name(&self) -> &'static str {
        "event-store"
    }

    fn start<'a>(
        self: Box<Self>,
        app: &'a App<S>,
        startup: &'a Startup,
    ) -> BoxFuture<'a, Result<Hosted, RuntimeError>> {
        Box::pin(async move {
            let failed = |source: BoxError| RuntimeError::Component {
                name: "event-store",
                source,
            };
            let projections = startup
                .get::<Projections>()
                .cloned()
                .ok_or_else(|| failed("the event store component did not start".into()))?;
            let mut hosted = Hosted::default();
            let admin = AdminSettings::from_env(startup.env(), app.ctx().settings().rest_port)
                .map_err(failed)?;
            if let Some(admin) = admin {
                let routes = super::admin::admin_router(projections);
                hosted.servers.push(admin.serve(routes, startup).await?);
            }
            Ok(hosted)
        })
    }
}
