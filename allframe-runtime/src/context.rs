//! Where a service's context lives: [`App`] is the axum state, [`Ctx`] the runtime context.
//!
//! `App<S>` holds the user's value (`Arc<S>`) and a `Ctx`; every route of a service is a
//! `Router<App<S>>`. Handlers take `Ctx` as an extractor (it is `FromRequestParts<App<S>>` and
//! never rejects), `State<App<S>>` for both, or `State<Arc<S>>` for the user's value alone.
//! This module holds no policy: it only carries values the launcher built.

use std::convert::Infallible;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::Extensions;
use axum::http::request::Parts;
use tokio_util::sync::CancellationToken;

use crate::database::Database;
use crate::deferred::ResolvedValues;
use crate::settings::ServiceSettings;
use crate::tasks::TaskRegistry;

/// Limits decided at start-up that handlers and generated code can read through [`Ctx`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The largest gRPC message accepted, in bytes.
    pub(crate) grpc_max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            grpc_max_message_bytes: crate::launcher::DEFAULT_GRPC_MAX_MESSAGE_BYTES,
        }
    }
}

/// The runtime context: settings, database, resolved run-time values, background tasks, and
/// what the service's components put in it ([`Ctx::get`]). Cheap to clone (one `Arc`).
///
/// Extract it in any handler of a `Router<S>`:
///
/// ```no_run
/// use allframe_runtime::{Ctx, error::ApiError};
/// async fn count(cx: Ctx) -> Result<String, ApiError> {
///     let n: i64 = allframe_runtime::sqlx::query_scalar("SELECT COUNT(*) FROM users")
///         .fetch_one(cx.db().pool())
///         .await?;
///     Ok(n.to_string())
/// }
/// ```
#[derive(Clone)]
pub struct Ctx {
    inner: Arc<CtxInner>,
}

struct CtxInner {
    settings: &'static ServiceSettings,
    db: Database,
    values: ResolvedValues,
    tasks: TaskRegistry,
    shutdown: CancellationToken,
    extensions: OnceLock<Extensions>,
    grpc_max_message_bytes: usize,
}

impl Ctx {
    pub(crate) fn new(
        settings: &'static ServiceSettings,
        db: Database,
        values: ResolvedValues,
        tasks: TaskRegistry,
        shutdown: CancellationToken,
        limits: Limits,
    ) -> Self {
        Self {
            inner: Arc::new(CtxInner {
                settings,
                db,
                values,
                tasks,
                shutdown,
                extensions: OnceLock::new(),
                grpc_max_message_bytes: limits.grpc_max_message_bytes,
            }),
        }
    }

    /// The largest gRPC message the server accepts, in bytes (`ALLFRAME_GRPC_MAX_MESSAGE_BYTES`,
    /// default 4 MiB); larger ones are refused with `RESOURCE_EXHAUSTED` before they reach a
    /// service. Give it to a generated server's `max_decoding_message_size` so tonic's own
    /// limit agrees.
    pub fn grpc_max_message_bytes(&self) -> usize {
        self.inner.grpc_max_message_bytes
    }

    /// What the architecture file says about this service.
    pub fn settings(&self) -> &'static ServiceSettings {
        self.inner.settings
    }

    /// The service database.
    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// A value from the file that was written as a `${VAR}` template, resolved from the
    /// environment at start-up; `key` is its key path, e.g. `"security.authentication.jwt_issuer"`.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.inner.values.get(key)
    }

    /// The registry of shutdown-aware background tasks.
    pub fn tasks(&self) -> &TaskRegistry {
        &self.inner.tasks
    }

    /// Whether graceful shutdown has begun (readiness then answers 503).
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// Completes when graceful shutdown begins.
    pub async fn shutdown_started(&self) {
        self.inner.shutdown.cancelled().await;
    }

    /// The value of type `T` a component of this service put in the context at start-up
    /// (see [`crate::component`]): e.g. `cx.get::<Messaging>()`.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.inner.extensions.get()?.get::<T>()
    }

    /// Installs the components' extensions (once, when they have all started).
    pub(crate) fn install_extensions(&self, extensions: Extensions) {
        if self.inner.extensions.set(extensions).is_err() {
            tracing::warn!("the context's extensions were already installed; keeping the first");
        }
    }
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("service", &self.inner.settings.name)
            .field("db", &self.inner.db)
            .field("values", &self.inner.values)
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}

/// The axum state of a service: the user's value plus the runtime context. Cheap to clone
/// (two `Arc`s); dereferences to the user's value.
pub struct App<S> {
    service: Arc<S>,
    ctx: Ctx,
}

impl<S> App<S> {
    pub(crate) fn new(service: S, ctx: Ctx) -> Self {
        Self {
            service: Arc::new(service),
            ctx,
        }
    }

    /// The runtime context.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The user's value.
    pub fn service(&self) -> &Arc<S> {
        &self.service
    }
}

impl<S> Clone for App<S> {
    fn clone(&self) -> Self {
        Self {
            service: Arc::clone(&self.service),
            ctx: self.ctx.clone(),
        }
    }
}

impl<S> Deref for App<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.service
    }
}

impl<S> fmt::Debug for App<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("service", &std::any::type_name::<S>())
            .field("ctx", &self.ctx)
            .finish()
    }
}

impl<S: Send + Sync> FromRequestParts<App<S>> for Ctx {
    type Rejection = Infallible;

    async fn from_request_parts(_parts: &mut Parts, state: &App<S>) -> Result<Self, Infallible> {
        Ok(state.ctx.clone())
    }
}

impl<S> FromRef<App<S>> for Arc<S> {
    fn from_ref(app: &App<S>) -> Self {
        Arc::clone(&app.service)
    }
}
