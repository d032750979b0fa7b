//! The AllFrame runtime: what a service generated from `architecture.toml` runs on.
//!
//! A service crate depends on this crate as `allframe` and writes
//!
//! ```text
//! #[allframe::service(config = "../../architecture.toml", name = "user-service")]
//! pub struct UserService;
//!
//! impl allframe::Service for UserService {
//!     async fn init(cx: &allframe::Ctx) -> Result<Self, allframe::BoxError> { Ok(UserService) }
//! }
//! impl allframe::RestApi for UserService {
//!     fn routes() -> allframe::Router<Self> { allframe::Router::new() }
//! }
//! ```
//!
//! The macro bakes the file into constant data ([`settings`]) and a `main()` that calls the
//! launcher; the runtime then reads the environment (`DATABASE_URL`, `PORT`, `${VAR}` values),
//! sets up logging, opens and migrates the database (SQLite by default, PostgreSQL when
//! configured, through sqlx's `Any` driver), serves REST with `/health/live` and
//! `/health/ready` (and gRPC with `grpc.health.v1` under the `grpc` feature), and shuts down
//! gracefully on SIGTERM/SIGINT. See `docs/runtime.md` for the decisions behind it.
//!
//! Generated code reaches the runtime only through [`__private`], which is not a stable API.

#![warn(missing_docs)]

use std::future::Future;

/// A point where the crash tests stop the process (feature `failpoints`: the `fail` crate);
/// nothing in other builds. Sagas and projections have them.
macro_rules! crash_point {
    ($name:literal) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name);
    };
}

mod admin;
#[cfg(feature = "cache")]
pub mod cache;
pub mod channel;
pub mod component;
pub mod consumer;
mod context;
pub mod database;
pub mod deferred;
mod env;
pub mod error;
pub mod eventstore;
pub mod extract;
#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "grpc")]
mod grpc_server;
pub mod health;
mod http_host;
pub mod idempotency;
mod launcher;
pub mod messaging;
pub mod metrics;
pub mod producer;
pub mod resilience;
mod rest;
pub mod saga;
mod server;
pub mod settings;
mod shutdown;
pub mod tasks;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

/// `#[allframe::service(config = "…", name = "…")]`: derives a service's `main()` and wiring
/// from `architecture.toml`.
pub use allframe_macros::service;

/// `#[derive(allframe::AggregateEvent)]`: implements [`eventstore::AggregateEvent`] for an enum
/// whose variants each hold one [`Event`] type, e.g. `Opened(AccountOpened)`.
pub use allframe_macros::AggregateEvent;

pub use context::{App, Ctx};
pub use database::{Backend, Database};
pub use error::ApiError;
pub use extract::Json;
pub use messaging::{Event, EventContext, UnitOfWork};
pub use settings::{LogFormat, ServiceSettings};
pub use tasks::TaskRegistry;
pub use tokio_util::sync::CancellationToken;

/// Users write queries with `allframe::sqlx::query(..)`.
pub use sqlx;

/// Users write routes with `allframe::axum`.
pub use axum;

/// Users write gRPC services with `allframe::tonic`.
#[cfg(feature = "grpc")]
pub use tonic;

/// A boxed error, as returned by [`Service::init`] and background tasks.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The routes of a service: an axum router whose state is the service's [`App`].
pub type Router<S> = axum::Router<App<S>>;

/// Implemented by every service's user type: build the user's own state once at start-up.
///
/// `init` runs after the database is connected and migrated, before any server listens.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is an AllFrame service and must implement `allframe::Service`",
    label = "`allframe::Service` is not implemented for this service type",
    note = "add `impl allframe::Service for {Self} {{ async fn init(cx: &allframe::Ctx) -> Result<Self, allframe::BoxError> {{ … }} }}`"
)]
pub trait Service: Sized + Send + Sync + 'static {
    /// Builds the service's own state; `cx` gives the settings, database and resolved values.
    fn init(cx: &Ctx) -> impl Future<Output = Result<Self, BoxError>> + Send;
}

/// The REST routes of a service. Every service serves HTTP (its health endpoints live there),
/// so every service implements this; the runtime adds `/health/live` and `/health/ready`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` serves HTTP (protocol \"rest\" in architecture.toml, and the health endpoints) and must implement `allframe::RestApi`",
    label = "`allframe::RestApi` is not implemented for this service type",
    note = "add `impl allframe::RestApi for {Self} {{ fn routes() -> allframe::Router<Self> {{ allframe::Router::new() }} }}`"
)]
pub trait RestApi: Service {
    /// The service's routes; handlers extract [`Ctx`] or `State<App<Self>>`.
    fn routes() -> Router<Self>;
}

/// The gRPC services of a service whose `architecture.toml` entry lists `"grpc"` in its
/// protocols. The runtime adds the standard `grpc.health.v1.Health` service.
#[cfg(feature = "grpc")]
#[diagnostic::on_unimplemented(
    message = "architecture.toml declares \"grpc\" in the protocols of `{Self}`, so it must implement `allframe::GrpcApi`",
    label = "`allframe::GrpcApi` is not implemented for this service type",
    note = "add `impl allframe::GrpcApi for {Self} {{ fn grpc(app: &allframe::App<Self>) -> allframe::tonic::service::Routes {{ … }} }}`"
)]
pub trait GrpcApi: Service {
    /// The tonic services to serve, e.g. `Routes::new(MyServer::new(handler))`.
    fn grpc(app: &App<Self>) -> tonic::service::Routes;
}

/// Not part of the public API: what `#[allframe::service]` expands to. Anything here may change
/// in a patch release; user code must not name it.
#[doc(hidden)]
pub mod __private {
    pub use ::axum;
    pub use ::serde;
    pub use ::serde_json;
    pub use ::sqlx;
    pub use ::tokio;
    #[cfg(feature = "grpc")]
    pub use ::tonic;
    #[cfg(feature = "grpc")]
    pub use ::tonic_health;
    pub use ::tracing;

    #[cfg(feature = "grpc")]
    pub use crate::GrpcApi;
    #[cfg(feature = "cache")]
    pub use crate::cache::{CacheService, CacheServiceSettings, WriteStrategy};
    pub use crate::channel::{Channel, Notifications};
    pub use crate::consumer::{
        Backoff, Consume, ConsumedEvent, ConsumerSettings, HandleError, RetryPolicy,
    };
    pub use crate::env::Environment;
    pub use crate::eventstore::{EventSourcedSettings, declared as declared_projection};
    #[cfg(feature = "gateway")]
    pub use crate::gateway::{GatewaySettings, ProviderSettings, client as provider_client};
    #[cfg(feature = "grpc")]
    pub use crate::grpc_server::grpc_routes;
    #[cfg(feature = "grpc")]
    pub use crate::http_host::GrpcRoutesFn;
    pub use crate::idempotency::{IdempotencySettings, Storage as IdempotencyStorage};
    pub use crate::launcher::{ALLFRAME_BIND_ADDR, GRPC_PORT, Launch, Launcher, PORT};
    pub use crate::messaging::{Delivery, OutboxSettings, RetrySettings, UnitOfWork};
    pub use crate::metrics::MetricsSettings;
    pub use crate::resilience::{
        BreakerPolicy, BulkheadPolicy, InboundLimits, RateLimitKey, RateLimitPolicy,
        RetryPolicy as CallRetryPolicy,
    };
    pub use crate::saga::{Orchestrate, Reply, SagaSettings, SagaStep, StepNames};
    pub use crate::settings::{
        DeferredValue, EmbeddedMigration, LogFormat, Segment, ServiceSettings,
    };
    pub use crate::shutdown::{
        ALLFRAME_SHUTDOWN_DELAY_SECS, ALLFRAME_SHUTDOWN_TIMEOUT_SECS, RunningService,
        ShutdownHandle, ShutdownReport,
    };
    pub use crate::telemetry::{TraceSampling, TracingSettings};
    pub use crate::{App, BoxError, Ctx, RestApi, Service};
    pub use futures_util::future::BoxFuture;

    /// Byte equality of two strings in a constant (the check that a producer's input
    /// publishes the event the file names).
    pub const fn str_eq(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// `[services.idempotency] storage = "redis"`: compiles only when allframe-runtime has its
    /// `redis` feature, so a missing feature is a compile error rather than a start-up error.
    pub const fn redis_idempotency_storage<F: RedisFeatureEnabled>() -> IdempotencyStorage {
        IdempotencyStorage::Redis
    }

    /// The type [`redis_idempotency_storage`] is called with.
    #[derive(Debug)]
    pub struct RedisFeature;

    /// Implemented for [`RedisFeature`] only when the `redis` feature is on.
    #[diagnostic::on_unimplemented(
        message = "architecture.toml sets `[services.idempotency] storage = \"redis\"`, but allframe-runtime is built without its `redis` feature",
        label = "this service keeps its idempotency keys in Redis",
        note = "enable it: `allframe = {{ package = \"allframe-runtime\", features = [\"redis\"] }}`, or use `storage = \"sqlite\"` / `\"postgres\"`"
    )]
    pub trait RedisFeatureEnabled {}

    #[cfg(feature = "redis")]
    impl RedisFeatureEnabled for RedisFeature {}

    /// Without the `grpc` feature, a file declaring "grpc" is a compile error that says to
    /// enable the feature.
    #[cfg(not(feature = "grpc"))]
    pub fn grpc_routes<S: GrpcFeatureEnabled>(_app: &crate::App<S>) -> GrpcDisabled {
        unreachable!("GrpcFeatureEnabled has no implementations")
    }

    /// Uninhabited: what [`grpc_routes`] would return without the `grpc` feature.
    #[cfg(not(feature = "grpc"))]
    pub enum GrpcDisabled {}

    /// Never implemented: the bound behind the "enable the grpc feature" error.
    #[cfg(not(feature = "grpc"))]
    #[diagnostic::on_unimplemented(
        message = "architecture.toml declares \"grpc\" in the protocols of `{Self}`, but allframe-runtime is built without its `grpc` feature",
        label = "this service speaks gRPC",
        note = "enable it: `allframe = {{ package = \"allframe-runtime\", features = [\"grpc\"] }}`"
    )]
    pub trait GrpcFeatureEnabled: sealed::Sealed {}

    #[cfg(not(feature = "grpc"))]
    mod sealed {
        /// Keeps [`super::GrpcFeatureEnabled`] unimplementable outside this crate.
        pub trait Sealed {}
    }
}
