//! The pieces a service is started from: [`Component`]s and [`Host`]s.
//!
//! Start-up opens the database and builds the [`Ctx`], then starts each component in the
//! order it was added. A component opens what it needs (a bus, a key store), spawns its
//! background work on [`Ctx::tasks`] (stopped at shutdown) and puts what others use into the
//! [`Startup`]'s typed extensions: messaging puts [`crate::messaging::Messaging`], which
//! handlers then reach through [`Ctx::get`]. Once every component has started the extensions
//! are frozen into the context, the user's [`crate::Service::init`] runs, and each [`Host`]
//! starts: it serves the user's value — the HTTP host over REST and gRPC, a bus consumer host
//! from subscriptions, a scheduler host on a clock — and hands back what the shutdown sequence
//! stops. A component's failure is [`RuntimeError::Component`], naming it.
//!
//! An archetype adds a component or a host here; the launcher does not change.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use axum::http::Extensions;
use tokio_util::sync::CancellationToken;

use crate::BoxError;
use crate::context::{App, Ctx};
use crate::env::Environment;
use crate::error::RuntimeError;
use crate::server::Server;

/// A boxed future, as the start methods return (the traits are used as trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A part of a service started before the user's `init`: see the module docs.
pub trait Component: Send + 'static {
    /// Its name in logs and in [`RuntimeError::Component`], e.g. `"messaging"`.
    fn name(&self) -> &'static str;

    /// Starts it: open what it needs, spawn its tasks on `startup.ctx().tasks()`, insert what
    /// others use with [`Startup::insert`].
    fn start<'a>(self: Box<Self>, startup: &'a mut Startup) -> BoxFuture<'a, Result<(), BoxError>>;
}

/// Serves the user's value once it is built: see the module docs.
pub trait Host<S>: Send + 'static {
    /// Its name in logs, e.g. `"http"`.
    fn name(&self) -> &'static str;

    /// Starts serving `app`; the servers and hooks returned are stopped by the shutdown
    /// sequence. Background work goes on `app.ctx().tasks()`.
    fn start<'a>(
        self: Box<Self>,
        app: &'a App<S>,
        startup: &'a Startup,
    ) -> BoxFuture<'a, Result<Hosted, RuntimeError>>;
}

/// What a host started: its listeners, and what the shutdown sequence does with them.
#[derive(Default)]
pub struct Hosted {
    /// The servers to drain, then abort at the deadline.
    pub(crate) servers: Vec<Server>,
    /// Run when shutdown begins, before the readiness delay (e.g. gRPC health turns
    /// `NOT_SERVING`).
    pub(crate) on_shutdown: Vec<BoxFuture<'static, ()>>,
}

impl Hosted {
    /// The address of the listener named `protocol` (`"rest"`, `"grpc"`, `"metrics"`).
    pub(crate) fn addr(&self, protocol: &str) -> Option<SocketAddr> {
        self.servers
            .iter()
            .find(|server| server.protocol == protocol)
            .map(|server| server.addr)
    }

    /// Adds `other`'s servers and hooks to these.
    pub(crate) fn extend(&mut self, other: Hosted) {
        self.servers.extend(other.servers);
        self.on_shutdown.extend(other.on_shutdown);
    }
}

impl std::fmt::Debug for Hosted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hosted")
            .field("servers", &self.servers.len())
            .field("on_shutdown", &self.on_shutdown.len())
            .finish()
    }
}

/// What components and hosts start with: the context, the environment the service reads,
/// the settings shared across components, and the typed extensions they fill.
pub struct Startup {
    ctx: Ctx,
    env: Environment,
    tenant_header: Option<&'static str>,
    extensions: Extensions,
    drain: CancellationToken,
    abort: CancellationToken,
}

impl Startup {
    pub(crate) fn new(ctx: Ctx, env: Environment, tenant_header: Option<&'static str>) -> Self {
        Self {
            ctx,
            env,
            tenant_header,
            extensions: Extensions::new(),
            drain: CancellationToken::new(),
            abort: CancellationToken::new(),
        }
    }

    /// Fires when servers stop accepting (after the readiness propagation delay).
    pub(crate) fn drain(&self) -> CancellationToken {
        self.drain.clone()
    }

    /// Fires at the drain deadline: what is still in flight is aborted.
    pub(crate) fn abort(&self) -> CancellationToken {
        self.abort.clone()
    }

    /// The context being built (its extensions are not visible through [`Ctx::get`] until
    /// every component has started: use [`Startup::get`]).
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The environment the service reads (the process's, or a test's).
    pub fn env(&self) -> &Environment {
        &self.env
    }

    /// The request header carrying the tenant id, when `[tenant]` is on.
    pub fn tenant_header(&self) -> Option<&'static str> {
        self.tenant_header
    }

    /// Makes `value` reachable as `ctx.get::<T>()` (replacing an earlier `T`).
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) {
        self.extensions.insert(value);
    }

    /// A value an earlier component inserted.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.extensions.get::<T>()
    }

    /// Starts `component`, wrapping its failure in [`RuntimeError::Component`].
    pub(crate) async fn start(
        &mut self,
        component: Box<dyn Component>,
    ) -> Result<(), RuntimeError> {
        let name = component.name();
        component
            .start(self)
            .await
            .map_err(|source| RuntimeError::Component { name, source })
    }

    /// Freezes the extensions into the context: from now on [`Ctx::get`] sees them.
    pub(crate) fn freeze(&mut self) {
        self.ctx.install_extensions(self.extensions.clone());
    }
}

impl std::fmt::Debug for Startup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Startup")
            .field("ctx", &self.ctx)
            .field("tenant_header", &self.tenant_header)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests;
