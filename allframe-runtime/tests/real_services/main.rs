//! The real-services suite, as one test binary: every test runs against a real engine on this
//! machine — PostgreSQL, Redis, NATS JetStream, RabbitMQ — or a Kafka-compatible broker (tansu)
//! the test starts, and a missing one fails it, never skips it. The tests are `#[ignore]`d so
//! that the default suite needs no service: run them with
//! `cargo test -p allframe-runtime --all-features --test real_services -- --ignored`.
//!
//! Tests that stop a broker (NATS, RabbitMQ) hold that broker's lock for writing, the others of
//! its module for reading, so nothing else of this binary uses a broker while it is down.
// The idempotency and messaging support modules each carry the small `launch_env` helper
// (they are shared with test binaries that include only one of them).
#![allow(clippy::duplicate_mod)]

#[cfg(any(feature = "kafka", feature = "nats", feature = "rabbitmq"))]
#[path = "../bus_support/mod.rs"]
mod bus_support;
#[cfg(any(
    all(feature = "postgres", feature = "testing"),
    all(feature = "redis", feature = "sqlite")
))]
#[path = "../idempotency_support/mod.rs"]
mod idempotency_support;
#[cfg(feature = "kafka")]
#[path = "../kafka_support/mod.rs"]
mod kafka_support;
#[cfg(all(feature = "postgres", feature = "testing"))]
#[path = "../messaging_support/mod.rs"]
mod messaging_support;
#[cfg(all(feature = "nats", feature = "testing"))]
#[path = "../producer_support/mod.rs"]
mod producer_support;
#[cfg(all(feature = "postgres", feature = "testing", feature = "failpoints"))]
#[path = "../saga_support/mod.rs"]
mod saga_support;

mod bus_kafka;
mod bus_nats;
mod bus_rabbitmq;
#[cfg(feature = "cache")]
mod cache_redis;
#[cfg(feature = "cache")]
mod cache_service;
mod eventstore_postgres;
mod idempotency_postgres;
mod idempotency_redis;
mod messaging_postgres;
mod postgres;
mod rate_limit_redis;
mod saga_postgres;
