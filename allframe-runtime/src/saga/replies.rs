//! Steps answered on the bus (`[services.saga.replies]`): a step sends its participant a
//! command through [`super::SagaStep::uow`] (the outbox, committed with the saga's progress,
//! carrying the saga id as its correlation id) and the saga waits — durably, holding no task
//! and no lease — for the event that answers it.
//!
//! - **Parked, not polled.** The step's commit leaves it `awaiting` in the log and the saga
//!   unowned with its lease running to the saga's deadline, so no instance drives it meanwhile
//!   and a thousand waiting sagas cost nothing but their rows.
//! - **Replies through the inbox.** The orchestrator consumes the reply events with the
//!   consumer runtime (inbox, retries, dead letters): each reply of one of its sagas is stored
//!   in [`REPLIES_TABLE`] and makes the saga claimable at once, in the transaction of its inbox
//!   row; the first reply of a step wins, duplicates and replies to other flows (an unknown
//!   correlation id) are acknowledged and dropped.
//! - **Answered, failed or in doubt.** The success event completes the step with its payload as
//!   the step's output; the failure event fails it without retry (the participant declined:
//!   the steps before it are compensated, not it); no answer by the deadline leaves its outcome
//!   unknown, so it is compensated with the others.

use futures_util::future::BoxFuture;
use serde_json::Value;
use sqlx::AnyConnection;

use super::store::{self, Fence, Invocation, Phase, SagaRecord, WriteError};
use super::{SagaSettings, SagaStatus};
use crate::channel::Notifications;
use crate::consumer::{HandleError, Handlers};
use crate::database::Database;
use crate::messaging::{Delivery, EnvelopeError, UnitOfWork};

/// The replies received for awaiting steps: one row per (saga, step), the first answer.
pub const REPLIES_TABLE: &str = "allframe_saga_replies";

pub(super) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS allframe_saga_replies (
        saga_id TEXT NOT NULL,
        step_index BIGINT NOT NULL,
        event_type TEXT NOT NULL,
        answer TEXT NOT NULL,
        event_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        received_at BIGINT NOT NULL,
        PRIMARY KEY (saga_id, step_index)
    )";

/// The events that answer a step whose participant replies on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The event that says the step was applied, e.g. `"ShipmentCreated"`: its payload
    /// becomes the step's output.
    pub success: &'static str,
    /// The event that says the participant declined, e.g. `"ShipmentRejected"`.
    pub failure: Option<&'static str>,
}

/// What a reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The step was applied.
    Success,
    /// The participant declined.
    Failure,
}

impl Answer {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

impl SagaSettings {
    /// The step `event_type` answers, and how.
    fn answered_by(&self, event_type: &str) -> Option<(usize, Answer)> {
        self.steps.iter().enumerate().find_map(|(index, names)| {
            let reply = names.reply?;
            if reply.success == event_type {
                Some((index, Answer::Success))
            } else if reply.failure == Some(event_type) {
                Some((index, Answer::Failure))
            } else {
                None
            }
        })
    }

    /// Whether any step awaits a reply (the orchestrator then consumes the reply events).
    pub fn awaits_replies(&self) -> bool {
        self.steps.iter().any(|names| names.reply.is_some())
    }
}

/// A stored reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Received {
    pub(crate) event_type: String,
    pub(crate) answer: Answer,
    pub(crate) payload: String,
    /// When the orchestrator stored it, in Unix milliseconds.
    pub(crate) received_at: i64,
}

/// Stores the reply `delivery` brings for step `index` of saga `saga_id` (when that saga is
/// one of `saga`'s and the step has no answer yet) and makes a parked saga claimable, in the
/// caller's transaction. `true` when stored.
async fn record(
    conn: &mut AnyConnection,
    saga: &str,
    saga_id: &str,
    index: usize,
    answer: Answer,
    delivery: &Delivery,
    payload: &str,
) -> Result<bool, sqlx::Error> {
    let envelope = delivery.envelope();
    let stored = sqlx::query(
        "INSERT INTO allframe_saga_replies (saga_id, step_index, event_type, answer, event_id,
             payload, received_at)
         SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS
             (SELECT 1 FROM allframe_sagas WHERE id = $1 AND saga = $8)
         ON CONFLICT (saga_id, step_index) DO NOTHING",
    )
    .bind(saga_id)
    .bind(index as i64)
    .bind(&envelope.event_type)
    .bind(answer.as_str())
    .bind(envelope.id.hyphenated().to_string())
    .bind(payload)
    .bind(store::now())
    .bind(saga)
    .execute(&mut *conn)
    .await?;
    if stored.rows_affected() == 0 {
        return Ok(false);
    }
    // A parked saga is unowned with its lease at the deadline: due now. The row is written
    // whether parked or not, so that on PostgreSQL a concurrent park waits for this
    // transaction (and the parking driver's check after it sees this reply).
    sqlx::query(
        "UPDATE allframe_sagas
         SET lease_until = CASE WHEN owner IS NULL THEN 0 ELSE lease_until END
         WHERE id = $1 AND status = 'running'",
    )
    .bind(saga_id)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// The reply step `index` of saga `id` received, if any.
pub(crate) async fn received(
    db: &Database,
    id: &str,
    index: usize,
) -> Result<Option<Received>, sqlx::Error> {
    let row: Option<(String, String, String, i64)> = sqlx::query_as(
        "SELECT event_type, answer, payload, received_at FROM allframe_saga_replies
         WHERE saga_id = $1 AND step_index = $2",
    )
    .bind(id)
    .bind(index as i64)
    .fetch_optional(db.pool())
    .await?;
    Ok(
        row.map(|(event_type, answer, payload, received_at)| Received {
            event_type,
            answer: if answer == Answer::Success.as_str() {
                Answer::Success
            } else {
                Answer::Failure
            },
            payload,
            received_at,
        }),
    )
}

/// Leaves the saga `fence` names unowned until its `deadline` (in the caller's transaction):
/// no instance drives it until a reply makes it due, or the deadline does.
pub(crate) async fn park(
    conn: &mut AnyConnection,
    fence: &Fence,
    deadline: i64,
) -> Result<(), WriteError> {
    let done = sqlx::query(
        "UPDATE allframe_sagas SET owner = NULL, lease_until = $1, updated_at = $2
         WHERE id = $3 AND epoch = $4 AND status = 'running'",
    )
    .bind(deadline)
    .bind(store::now())
    .bind(&fence.id)
    .bind(fence.epoch)
    .execute(&mut *conn)
    .await?;
    store::fenced(done.rows_affected(), fence)
}

/// Takes the parked saga `fence` names back for `owner` (its reply came while it parked).
async fn unpark(conn: &mut AnyConnection, fence: &Fence, owner: &str) -> Result<(), WriteError> {
    let done = sqlx::query(
        "UPDATE allframe_sagas SET owner = $1, lease_until = $2, updated_at = $3
         WHERE id = $4 AND epoch = $5 AND owner IS NULL AND status = 'running'",
    )
    .bind(owner)
    .bind(fence.lease_until())
    .bind(store::now())
    .bind(&fence.id)
    .bind(fence.epoch)
    .execute(&mut *conn)
    .await?;
    store::fenced(done.rows_affected(), fence)
}

/// The orchestrator's handlers of reply events, for the consumer runtime (which wakes the
/// orchestrator once a handled reply commits, so it claims the saga at once).
pub(crate) struct ReplyHandlers {
    pub(crate) settings: SagaSettings,
}

impl Handlers for ReplyHandlers {
    fn handle<'a>(
        &'a self,
        uow: &'a mut UnitOfWork,
        delivery: &'a Delivery,
        _notify: &'a mut Notifications,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            let envelope = delivery.envelope();
            let Some((index, answer)) = self.settings.answered_by(&envelope.event_type) else {
                return Err(HandleError::UnknownEvent(envelope.event_type.clone()));
            };
            let payload: Value = serde_json::from_slice(&envelope.payload).map_err(|error| {
                EnvelopeError::Payload {
                    event_type: envelope.event_type.clone(),
                    reason: error.to_string(),
                }
            })?;
            let saga_id = envelope.correlation_id.as_str();
            let stored = record(
                uow.conn(),
                self.settings.name,
                saga_id,
                index,
                answer,
                delivery,
                &payload.to_string(),
            )
            .await
            .map_err(HandleError::failed)?;
            if stored {
                tracing::debug!(saga_id, event = %envelope.event_type, step = index,
                    "saga reply received");
            } else {
                // Another flow's event of the same type, or a second answer: not ours to keep.
                tracing::debug!(saga_id, event = %envelope.event_type,
                    "an event answering no waiting saga step was dropped");
            }
            Ok(())
        })
    }
}

impl super::driver::Engine {
    /// The step at the saga's position sent its command and awaits its reply: act on the
    /// reply ([`Self::answered`]), or, with no answer yet, park the saga until one comes or the
    /// deadline does.
    pub(super) async fn awaited(
        &self,
        fence: &Fence,
        saga: &SagaRecord,
        invocation: &Invocation<'_>,
    ) -> Result<super::driver::Next, WriteError> {
        use super::driver::{Ended, Next};
        let Some(reply) = received(self.ctx.db(), &fence.id, invocation.index).await? else {
            let mut tx = self.ctx.db().begin_write().await?;
            park(&mut tx, fence, saga.deadline).await?;
            tx.commit().await?;
            // A reply that committed while the saga was parking did not see it parked.
            if received(self.ctx.db(), &fence.id, invocation.index)
                .await?
                .is_some()
            {
                let mut tx = self.ctx.db().begin_write().await?;
                unpark(&mut tx, fence, &self.owner).await?;
                tx.commit().await?;
                return Ok(Next::Continue);
            }
            tracing::debug!(saga_id = %fence.id, step = invocation.name,
                "saga parked until its step's reply or its deadline");
            return Ok(Next::End(Ended::Parked));
        };
        self.answered(fence, saga, invocation, reply).await
    }

    /// Acts on the reply to the awaiting step at the saga's position: complete the step with
    /// the success event's payload, or fail it on the failure event (compensating the steps
    /// before it).
    pub(super) async fn answered(
        &self,
        fence: &Fence,
        saga: &SagaRecord,
        invocation: &Invocation<'_>,
        reply: Received,
    ) -> Result<super::driver::Next, WriteError> {
        use super::driver::Next;
        match reply.answer {
            Answer::Success => {
                let mut tx = self.ctx.db().begin_write().await?;
                store::set_state(
                    &mut tx,
                    fence,
                    SagaStatus::Running,
                    saga.next_position + 1,
                    None,
                )
                .await?;
                store::finished(
                    &mut tx,
                    fence,
                    invocation,
                    "completed",
                    Some(&reply.payload),
                    None,
                )
                .await?;
                tx.commit().await?;
                Ok(Next::Continue)
            }
            Answer::Failure => {
                let failure = format!(
                    "step `{}` was declined: `{}` {}",
                    invocation.name, reply.event_type, reply.payload
                );
                let mut tx = self.ctx.db().begin_write().await?;
                store::check_fence(&mut tx, fence).await?;
                store::finished(&mut tx, fence, invocation, "failed", None, Some(&failure)).await?;
                tx.commit().await?;
                // The participant applied nothing: only the steps before it are undone.
                self.compensate_from(fence, saga.next_position - 1, &failure)
                    .await?;
                Ok(Next::Continue)
            }
        }
    }
}

/// The log status of a step that sent its command and awaits the reply.
pub(crate) const AWAITING: &str = "awaiting";

/// Invocations of steps are the only ones that await.
pub(crate) fn awaits(settings: &SagaSettings, invocation: &Invocation<'_>) -> bool {
    invocation.phase == Phase::Step
        && settings
            .steps
            .get(invocation.index)
            .is_some_and(|names| names.reply.is_some())
}
