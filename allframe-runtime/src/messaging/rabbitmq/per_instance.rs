//! A per-instance subscriber on RabbitMQ ([`SubscribeOptions::per_instance`]): instead of the
//! group's partition queues, one queue of its own, named `<group>.instance~<uuid>`, exclusive
//! to the subscription's connection and auto-deleted, bound to every topic's exchange for
//! every partition (`<topic>.*`). It receives everything published from its declaration on,
//! each topic partition in publish order (one queue keeps the exchange's order); the broker
//! deletes it when the connection closes, whether the subscriber closed or its process died.
//! A reconnecting subscriber declares it anew: what was published while it was away is lost
//! to it, as to any subscriber that was not running.
//!
//! [`SubscribeOptions::per_instance`]: super::SubscribeOptions::per_instance

use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Consumer};

use super::{BusError, client_error, exchange_name};

/// Declares the exclusive queue `queue`, binds it to every partition of `topics`, and
/// consumes it on `channel` (whose exchanges are declared).
pub(super) async fn consume(
    channel: &Channel,
    queue: &str,
    topics: &[String],
) -> Result<Consumer, BusError> {
    channel
        .queue_declare(
            ShortString::from(queue),
            QueueDeclareOptions {
                durable: false,
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(client_error)?;
    for topic in topics {
        // `*` is one word of the routing key: the partition token.
        channel
            .queue_bind(
                ShortString::from(queue),
                ShortString::from(exchange_name(topic)),
                ShortString::from(format!("{topic}.*")),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(client_error)?;
    }
    channel
        .basic_consume(
            ShortString::from(queue),
            ShortString::from(""),
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(client_error)
}
