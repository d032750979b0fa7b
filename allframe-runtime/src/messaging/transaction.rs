//! Bus transactions, for the `transactional` pattern: a batch of messages that becomes visible
//! to consumers all at once at [`BusTransaction::commit`], or never ([`BusTransaction::abort`]).
//!
//! Supported by Kafka (a transactional producer; consumers read with
//! `isolation.level=read_committed`) and by the local bus (the batch is held in memory and
//! written in one SQLite transaction at commit). NATS JetStream, RabbitMQ and custom adapters
//! have no such transactions: [`super::EventBus::with_transactions`] refuses them with
//! [`BusError::TransactionsUnsupported`].

use std::fmt;

use super::bus::{BusError, OutboundMessage};
#[cfg(feature = "kafka")]
use super::kafka_transaction::KafkaTransaction;
#[cfg(feature = "sqlite")]
use super::local::LocalBus;

/// An open bus transaction: messages sent into it become visible together at
/// [`commit`](Self::commit), or not at all. Dropping it without committing aborts it.
#[non_exhaustive]
pub enum BusTransaction {
    /// On the local bus: the messages are held here and written at commit.
    #[cfg(feature = "sqlite")]
    Local {
        /// The bus.
        bus: LocalBus,
        /// The messages sent so far.
        messages: Vec<OutboundMessage>,
    },
    /// On Kafka: a transaction of this service instance's transactional producer.
    #[cfg(feature = "kafka")]
    Kafka(KafkaTransaction),
}

impl fmt::Debug for BusTransaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Local { messages, .. } => f
                .debug_struct("Local")
                .field("messages", &messages.len())
                .finish(),
            #[cfg(feature = "kafka")]
            Self::Kafka(transaction) => f.debug_tuple("Kafka").field(transaction).finish(),
            #[allow(unreachable_patterns)]
            _ => f.write_str("BusTransaction"),
        }
    }
}

impl BusTransaction {
    /// Sends `messages`, in order, into the transaction; nothing is visible before
    /// [`commit`](Self::commit).
    pub async fn send(&mut self, messages: &[OutboundMessage]) -> Result<(), BusError> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Local { messages: held, .. } => {
                held.extend_from_slice(messages);
                Ok(())
            }
            #[cfg(feature = "kafka")]
            Self::Kafka(transaction) => transaction.send(messages).await,
            #[allow(unreachable_patterns)]
            _ => {
                let _ = messages;
                Ok(())
            }
        }
    }

    /// Makes every message sent into the transaction visible, all at once.
    pub async fn commit(self) -> Result<(), BusError> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Local { bus, messages } => {
                if messages.is_empty() {
                    return Ok(());
                }
                bus.publish(&messages).await.map_err(|error| error.source)
            }
            #[cfg(feature = "kafka")]
            Self::Kafka(transaction) => transaction.commit().await,
            #[allow(unreachable_patterns)]
            _ => Ok(()),
        }
    }

    /// Discards every message sent into the transaction.
    pub async fn abort(self) -> Result<(), BusError> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Local { .. } => Ok(()),
            #[cfg(feature = "kafka")]
            Self::Kafka(transaction) => transaction.abort().await,
            #[allow(unreachable_patterns)]
            _ => Ok(()),
        }
    }
}
