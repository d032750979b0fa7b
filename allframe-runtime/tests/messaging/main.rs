//! Messaging in-process, with no external service, as one test binary: the envelope's header
//! mapping, the event store (on SQLite), the local bus, the outbox relay, the unit of work, `transactional` publishing (on the
//! local bus, and on librdkafka's in-process mock Kafka cluster), and
//! a service started by the launcher with the outbox. The local bus runs the bus conformance
//! suite (`bus_support::conformance`) that the real-services suite runs on NATS, RabbitMQ and
//! Kafka.

#[cfg(feature = "sqlite")]
#[path = "../bus_support/mod.rs"]
mod bus_support;
#[cfg(all(feature = "kafka", feature = "sqlite"))]
#[path = "../kafka_proxy/mod.rs"]
mod kafka_proxy;
#[cfg(feature = "sqlite")]
#[path = "../messaging_support/mod.rs"]
mod messaging_support;

mod aggregates;
#[cfg(feature = "cache")]
mod cache;
mod channels;
mod consumer;
mod envelope;
mod eventstore;
mod kafka_transactions;
mod local_bus;
mod outbox_sqlite;
mod relay;
mod service;
mod transactional;
mod unit_of_work;
