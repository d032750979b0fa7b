//! A service run in this process, on SQLite, with no external service, as one test binary: the
//! database layer, the service's lifecycle (health, routes, deferred values, tasks, graceful
//! shutdown), readiness, gRPC and the idempotency layer. (Signals and global telemetry need a
//! process of their own: `signals.rs`, `telemetry_otel.rs`.)
// The idempotency support module carries its own copy of the small `launch_env` helper (it is
// shared with the real-services binary).
#![allow(clippy::duplicate_mod)]

#[cfg(feature = "sqlite")]
#[path = "../idempotency_support/mod.rs"]
mod idempotency_support;
#[cfg(feature = "sqlite")]
#[path = "../launch_env/mod.rs"]
mod launch_env;
#[cfg(all(feature = "failpoints", feature = "sqlite"))]
#[path = "../saga_support/mod.rs"]
mod saga_support;

mod database;
mod event_sourced;
mod gateway;
mod grpc;
mod idempotency;
mod lifecycle;
mod limits;
mod readiness;
mod saga;
mod saga_replies;
