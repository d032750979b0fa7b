//! The saga endpoints: [`routes`] on the service's REST port (start and read sagas) and the
//! operator's routes on the admin API (list stuck sagas, retry one).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::{Orchestrate, SagaError, SagaStatus, Sagas};
use crate::context::Ctx;
use crate::error::ApiError;
use crate::extract::{Json, Path, Query, json_naming_the_field};

/// Most sagas one `GET /sagas` lists.
const MAX_LISTED: u32 = 1000;

/// The saga routes of a `saga-orchestrator`, for its `RestApi`:
/// - `POST /sagas` with the saga's input as JSON → `202 {"id": …}` (`400` naming the field
///   when the input does not deserialize: no saga is created);
/// - `GET /sagas/{id}` → `{"id", "status", "steps": [...], …}` (`404` for an unknown id);
/// - `GET /sagas?status=stuck&limit=100` → `{"sagas": [...]}`, newest first.
pub fn routes<S: Orchestrate>() -> crate::Router<S> {
    crate::Router::new()
        .route("/sagas", post(start::<S>).get(list))
        .route("/sagas/{id}", get(show))
}

/// The operator's routes on the admin API: the same reads, and `POST /sagas/{id}/retry`.
pub(crate) fn admin_router(sagas: Sagas) -> axum::Router {
    axum::Router::new()
        .route("/sagas", get(admin_list))
        .route("/sagas/{id}", get(admin_show))
        .route("/sagas/{id}/retry", post(admin_retry))
        .with_state(sagas)
}

fn sagas(cx: &Ctx) -> Result<&Sagas, ApiError> {
    cx.get::<Sagas>()
        .ok_or_else(|| failed(&SagaError::NotRunning))
}

fn failed(error: &SagaError) -> ApiError {
    match error {
        SagaError::NotFound(_) => ApiError::not_found(error.to_string()),
        SagaError::NotStuck { .. } => ApiError::conflict(error.to_string()),
        _ => {
            tracing::error!(error = %error, "saga request failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
        }
    }
}

/// `POST /sagas`.
async fn start<S: Orchestrate>(cx: Ctx, body: Bytes) -> Result<Response, ApiError> {
    let input: S::Input = json_naming_the_field(&body, "the saga input")?;
    let id = sagas(&cx)?
        .start(&input)
        .await
        .map_err(|error| failed(&error))?;
    let location = format!("/sagas/{id}");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(json!({ "id": id })),
    )
        .into_response())
}

/// `GET /sagas/{id}`.
async fn show(cx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    read(sagas(&cx)?, &id).await
}

async fn read(sagas: &Sagas, id: &str) -> Result<Response, ApiError> {
    match sagas.get(id).await.map_err(|error| failed(&error))? {
        Some(saga) => Ok(Json(saga).into_response()),
        None => Err(failed(&SagaError::NotFound(id.to_owned()))),
    }
}

/// The query of `GET /sagas`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Listing {
    status: Option<SagaStatus>,
    limit: Option<u32>,
}

/// `GET /sagas`.
async fn list(cx: Ctx, Query(listing): Query<Listing>) -> Result<Response, ApiError> {
    listed(sagas(&cx)?, listing).await
}

async fn listed(sagas: &Sagas, listing: Listing) -> Result<Response, ApiError> {
    let limit = listing.limit.unwrap_or(100).clamp(1, MAX_LISTED);
    let found = sagas
        .list(listing.status, limit)
        .await
        .map_err(|error| failed(&error))?;
    Ok(Json(json!({ "sagas": found })).into_response())
}

async fn admin_list(
    State(sagas): State<Sagas>,
    Query(listing): Query<Listing>,
) -> Result<Response, ApiError> {
    listed(&sagas, listing).await
}

async fn admin_show(
    State(sagas): State<Sagas>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    read(&sagas, &id).await
}

/// `POST /sagas/{id}/retry` (admin): `202`, `404` unknown, `409` not stuck.
async fn admin_retry(
    State(sagas): State<Sagas>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    sagas.retry(&id).await.map_err(|error| failed(&error))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "status": SagaStatus::Compensating })),
    )
        .into_response())
}
