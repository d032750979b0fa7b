//! Publishing events that change no state of their own (a producer's ingested input, a
//! notification): [`Messaging::emit`]. What "published" means follows the service's pattern,
//! exactly as for a [`super::UnitOfWork`], but nothing opens a transaction that has nothing to
//! protect.

use uuid::Uuid;

use super::unit_of_work::outbound;
use super::{Event, EventContext, Messaging, MessagingError, PublishError, PublishPattern};

impl Messaging {
    /// Publishes `events`, all of them or (as far as the pattern allows) none, and returns
    /// their envelope ids in order.
    ///
    /// - `outbox`: one transaction holding only the outbox rows; the relay publishes them.
    ///   Nothing is lost once this returns `Ok`.
    /// - `direct`: straight to the bus, without touching the database. A failure is
    ///   [`MessagingError::Unpublished`]: no state was stored, so the caller may retry. The
    ///   local bus and Kafka's batch write are all or nothing; on NATS and RabbitMQ the
    ///   messages before the failing one may have gone out, and one whose confirmation timed
    ///   out may still arrive; a retry sends them again under new ids (at least once:
    ///   consumers dedup by their payload's own key, or the service uses `outbox`).
    /// - `transactional`: one bus transaction (Kafka, or the local bus) and no database
    ///   transaction: consumers see all of them or none. A failure to open, fill or commit it
    ///   is [`MessagingError::Unpublished`]; when the commit's answer was lost the events may
    ///   be visible all the same, so a retry is at least once.
    pub async fn emit<E: Event>(
        &self,
        context: EventContext,
        events: Vec<E>,
    ) -> Result<Vec<Uuid>, MessagingError> {
        let correlation_id = context
            .correlation_id
            .clone()
            .unwrap_or_else(|| Uuid::now_v7().hyphenated().to_string());
        let outbound_all = |events: &[E]| {
            events
                .iter()
                .map(|event| outbound(self, &context, &correlation_id, event))
                .collect::<Result<Vec<_>, _>>()
        };
        match self.config().pattern {
            PublishPattern::Direct => {
                let messages = outbound_all(&events)?;
                self.bus().publish(&messages).await.map_err(|source| {
                    MessagingError::Unpublished {
                        events: messages.len(),
                        source,
                    }
                })?;
                Ok(messages.iter().map(|m| m.envelope.id).collect())
            }
            PublishPattern::Transactional => {
                let messages = outbound_all(&events)?;
                let unpublished = |source| MessagingError::Unpublished {
                    events: messages.len(),
                    source: PublishError::nothing(source),
                };
                let mut transaction = self.bus().begin_transaction().await.map_err(unpublished)?;
                if let Err(error) = transaction.send(&messages).await {
                    if let Err(abort) = transaction.abort().await {
                        tracing::warn!(error = %abort, "aborting the bus transaction failed");
                    }
                    return Err(unpublished(error));
                }
                transaction.commit().await.map_err(unpublished)?;
                Ok(messages.iter().map(|m| m.envelope.id).collect())
            }
            PublishPattern::Outbox => {
                let mut uow = self.begin_with(context).await?;
                let ids = events
                    .into_iter()
                    .map(|event| uow.publish(event))
                    .collect::<Result<Vec<_>, _>>()?;
                uow.commit().await?;
                Ok(ids)
            }
        }
    }
}
