//! The `producer` archetype's ingestion endpoints: validate input, publish its event.
//!
//! A producer stores no entities. For each entity the file declares, `#[allframe::service]`
//! mounts [`routes`] for the input type the user names (an [`Ingest`] implementation):
//!
//! - `POST /<entities>` with one JSON object: `202 Accepted` with the event's id;
//! - `POST /<entities>/batch` with a JSON array of up to [`MAX_BATCH_ITEMS`] objects:
//!   `202 Accepted` with the ids in order. A batch is validated whole before anything is
//!   published: one invalid item refuses the batch, naming the item and the field.
//!
//! A body that is not JSON is `400`, one of the wrong shape (a missing field, a string for a
//! number) `422` naming the field, one that [`Ingest::validate`] refuses `422` naming the field
//! it gives, a body over the limit (2 MiB) or a batch over [`MAX_BATCH_ITEMS`] items `413`. All
//! of these are refusals ([`crate::extract::Rejected`]): an idempotency key is released.
//!
//! The events are published with [`crate::messaging::Messaging::emit`], per
//! `[services.messaging] pattern`: through the outbox (rows in the service's own database,
//! published by the relay) or straight to the bus. With `direct`, a bus that refuses them is
//! `503 Service Unavailable` with `Retry-After`, a refusal too: nothing was stored, the key is
//! released, and the client's retry publishes.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::context::{App, Ctx};
use crate::error::ApiError;
use crate::extract::Json;
use crate::messaging::{Event, EventContext, MessagingError};

/// The most items one batch request may carry; more is `413 Payload Too Large`.
pub const MAX_BATCH_ITEMS: usize = 1000;

/// Seconds a client is asked to wait before retrying when the bus refused a `direct` publish.
pub const RETRY_AFTER_SECS: u32 = 1;

/// An input a producer ingests: the body of `POST /<entities>`, validated into the event
/// published for it.
///
/// ```
/// use allframe_runtime::producer::{Ingest, Invalid};
///
/// #[derive(serde::Deserialize)]
/// struct PositionReport { vessel: String, lat: f64 }
///
/// #[derive(serde::Serialize)]
/// struct PositionReported { vessel: String, lat: f64 }
///
/// impl allframe_runtime::Event for PositionReported {
///     const TYPE: &'static str = "PositionReported";
///     const VERSION: u32 = 1;
///     const AGGREGATE_TYPE: &'static str = "PositionReport";
///     fn aggregate_id(&self) -> String { self.vessel.clone() }
/// }
///
/// impl Ingest for PositionReport {
///     type Event = PositionReported;
///     fn validate(self) -> Result<PositionReported, Invalid> {
///         if !(-90.0..=90.0).contains(&self.lat) {
///             return Err(Invalid::new("lat", "must be between -90 and 90"));
///         }
///         Ok(PositionReported { vessel: self.vessel, lat: self.lat })
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is named as a producer's input, so it must implement `allframe::producer::Ingest`",
    label = "`allframe::producer::Ingest` is not implemented for this type",
    note = "add `impl allframe::producer::Ingest for {Self} {{ type Event = …; fn validate(self) -> Result<Self::Event, allframe::producer::Invalid> {{ … }} }}`"
)]
pub trait Ingest: DeserializeOwned + Send + 'static {
    /// The event published for each accepted input.
    type Event: Event + Send;

    /// Checks what the types cannot say (ranges, formats, cross-field rules) and builds the
    /// event; a refusal names the field and is answered `422`.
    fn validate(self) -> Result<Self::Event, Invalid>;
}

/// Why an input was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {message}")]
pub struct Invalid {
    field: Cow<'static, str>,
    message: Cow<'static, str>,
}

impl Invalid {
    /// `field` is wrong: `message` says how (e.g. `"must be between -90 and 90"`).
    pub fn new(field: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field, as the client wrote it.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The answer to one accepted input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// The published event's type.
    pub event_type: &'static str,
    /// The envelope id of the event.
    pub event_id: Uuid,
}

/// The answer to an accepted batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcceptedBatch {
    /// The published events' type.
    pub event_type: &'static str,
    /// The envelope ids, in the order of the batch's items.
    pub event_ids: Vec<Uuid>,
}

/// `POST {path}` and `POST {path}/batch` ingesting `I` (see the module docs).
pub fn routes<S, I>(path: &str) -> axum::Router<App<S>>
where
    S: Send + Sync + 'static,
    I: Ingest,
{
    axum::Router::new()
        .route(path, post(ingest_one::<I>))
        .route(&format!("{path}/batch"), post(ingest_batch::<I>))
}

async fn ingest_one<I>(
    cx: Ctx,
    events: EventContext,
    Json(input): Json<I>,
) -> Result<(StatusCode, Json<Accepted>), IngestError>
where
    I: Ingest,
{
    let event = input
        .validate()
        .map_err(|invalid| refused(&invalid, None))?;
    let ids = publish(&cx, events, vec![event]).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            event_type: <I::Event as Event>::TYPE,
            event_id: ids[0],
        }),
    ))
}

async fn ingest_batch<I>(
    cx: Ctx,
    events: EventContext,
    Json(inputs): Json<Vec<I>>,
) -> Result<(StatusCode, Json<AcceptedBatch>), IngestError>
where
    I: Ingest,
{
    if inputs.is_empty() {
        return Err(ApiError::unprocessable("a batch holds at least one item")
            .rejected()
            .into());
    }
    if inputs.len() > MAX_BATCH_ITEMS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a batch holds at most {MAX_BATCH_ITEMS} items; this one has {}: split it",
                inputs.len()
            ),
        )
        .rejected()
        .into());
    }
    let batch = inputs
        .into_iter()
        .enumerate()
        .map(|(index, input)| {
            input
                .validate()
                .map_err(|invalid| refused(&invalid, Some(index)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let event_ids = publish(&cx, events, batch).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(AcceptedBatch {
            event_type: <I::Event as Event>::TYPE,
            event_ids,
        }),
    ))
}

/// `422` naming the field (and the batch item), marked as a refusal.
fn refused(invalid: &Invalid, item: Option<usize>) -> ApiError {
    let message = match item {
        Some(index) => format!("item {index}: {invalid}"),
        None => invalid.to_string(),
    };
    ApiError::unprocessable(message).rejected()
}

/// Publishes per the service's pattern; a bus refusing a `direct` or `transactional` publish is
/// a `503` refusal.
async fn publish<E: Event>(
    cx: &Ctx,
    context: EventContext,
    events: Vec<E>,
) -> Result<Vec<Uuid>, IngestError> {
    let Some(messaging) = cx.messaging() else {
        return Err(IngestError::Error(ApiError::from(
            MessagingError::NotConfigured {
                service: cx.settings().name,
            },
        )));
    };
    messaging
        .emit(context, events)
        .await
        .map_err(|error| match error {
            MessagingError::Unpublished { .. } => {
                tracing::warn!(error = %error, "the event bus refused the events; answering 503");
                IngestError::Bus
            }
            other => IngestError::Error(other.into()),
        })
}

/// Why an ingestion request failed, as answered.
enum IngestError {
    /// The bus refused a `direct` or `transactional` publish: `503` with `Retry-After`, a
    /// refusal.
    Bus,
    /// Anything else (the outbox insert failed, …): the error's own answer.
    Error(ApiError),
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        match self {
            IngestError::Bus => {
                let mut response = ApiError::unavailable(
                    "the event bus is unavailable; nothing was stored, retry the request",
                )
                .rejected()
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
                response
            }
            IngestError::Error(error) => error.into_response(),
        }
    }
}

impl From<ApiError> for IngestError {
    fn from(error: ApiError) -> Self {
        IngestError::Error(error)
    }
}

#[cfg(test)]
mod tests;
