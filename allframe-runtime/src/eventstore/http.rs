//! The REST endpoints of an aggregate type: send it commands, read its state with its version
//! as an `ETag`. A command may carry `If-Match` with the version it expects; a concurrency
//! conflict is `409` with the current version and frees an idempotency key (nothing was done,
//! so a retry must be able to succeed).

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{
    Aggregate, CommandError, EventSourcedSettings, EventStore, Loaded, Projections, ReadModel,
    Repository,
};
use crate::context::Ctx;
use crate::error::ApiError;
use crate::extract::{Json, Path, Rejected, json_naming_the_field};
use crate::messaging::EventContext;

/// The routes of aggregate type `A` under `path` (e.g. `/accounts`), for a service's
/// `RestApi`:
/// - `POST {path}/{id}/commands` with a command as JSON → `200 {"id", "version", "state"}`
///   with `ETag: "<version>"`; with `If-Match: "<version>"` it runs only at that version. A
///   concurrency conflict is `409 {"error", "version"}` with the current version as `ETag`; a
///   command the aggregate refuses is `422` with its reason; a body that is not a command is
///   `400` naming the field.
/// - `GET {path}/{id}` → the same body and `ETag`; `404` for an aggregate with no event.
pub fn aggregate_routes<S, A>(path: &str) -> crate::Router<S>
where
    S: Send + Sync + 'static,
    A: Aggregate,
    A::Command: DeserializeOwned,
{
    crate::Router::new()
        .route(&format!("{path}/{{id}}/commands"), post(command::<A>))
        .route(&format!("{path}/{{id}}"), get(state::<A>))
}

/// The read model of projection `name` that the service serves: the version whose tables a
/// read handler queries (`model.table("account_balances")`). A `500` when the projection does
/// not run here.
pub async fn read_model(cx: &Ctx, name: &str) -> Result<ReadModel, ApiError> {
    let projections = cx.get::<Projections>().ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the projections are not running: the service was not started as event-sourced",
        )
    })?;
    projections.current(name).await.map_err(internal)
}

fn repository<A: Aggregate>(cx: &Ctx) -> Result<Repository<A>, ApiError> {
    let store = cx.get::<EventStore>().cloned();
    let settings = cx.get::<EventSourcedSettings>();
    match (store, settings) {
        (Some(store), Some(settings)) => Ok(Repository::new(store, settings.snapshot_frequency)),
        _ => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the event store is not running: the service was not started as event-sourced",
        )),
    }
}

/// `POST {path}/{id}/commands`.
async fn command<A>(
    cx: Ctx,
    context: EventContext,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError>
where
    A: Aggregate,
    A::Command: DeserializeOwned,
{
    let expected = if_match(&headers)?;
    let command: A::Command = json_naming_the_field(&body, "the command")?;
    let repository = repository::<A>(&cx)?;
    let mut uow = cx.begin_with(context).await.map_err(internal)?;
    match repository.execute(&mut uow, &id, expected, command).await {
        Ok(done) => {
            uow.commit().await.map_err(internal)?;
            Ok(shown(&done))
        }
        Err(CommandError::Conflict { actual, .. }) => {
            drop(uow);
            let body = json!({
                "error": format!("{} `{id}` is at version {actual}", A::TYPE),
                "version": actual,
            });
            let mut response = (StatusCode::CONFLICT, Json(body)).into_response();
            response.headers_mut().insert(header::ETAG, etag(actual));
            response.extensions_mut().insert(Rejected);
            Ok(response)
        }
        Err(CommandError::Refused(reason)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            reason.to_string(),
        )),
        Err(CommandError::Store(error)) => Err(internal(error)),
    }
}

/// `GET {path}/{id}`.
async fn state<A: Aggregate>(cx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    let loaded = repository::<A>(&cx)?.load(&id).await.map_err(internal)?;
    if loaded.version == 0 {
        return Err(ApiError::not_found(format!(
            "{} `{id}` has no event",
            A::TYPE
        )));
    }
    Ok(shown(&loaded))
}

fn shown<A: Aggregate>(loaded: &Loaded<A>) -> Response {
    let body = json!({ "id": loaded.id, "version": loaded.version, "state": loaded.state });
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::ETAG, etag(loaded.version));
    response
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The version `If-Match` names (`"3"`, `W/"3"` or `3`); `*` or no header: any.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.trim_start_matches("W/").trim_matches('"');
    tag.parse().map(Some).map_err(|_| {
        ApiError::bad_request(format!(
            "If-Match must name a version, e.g. `\"3\"` (the ETag of the aggregate): got `{text}`"
        ))
        .rejected()
    })
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "event store request failed");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}
