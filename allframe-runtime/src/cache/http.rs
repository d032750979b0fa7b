//! The REST endpoints of a cache service's entity: read a value through the cache, write one
//! per the file's strategy, evict one.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::service::cache_of;
use super::{CacheError, CacheSource};
use crate::context::Ctx;
use crate::error::ApiError;
use crate::extract::{Json, Path, json_naming_the_field};

/// The routes of the cache of source `S` under `path` (e.g. `/products`), for a cache
/// service's `RestApi`:
/// - `GET {path}/{key}` → `200` with the value as JSON: from the cache, or loaded from the
///   source on a miss (one load per key however many ask at once); `404` when the source has
///   none.
/// - `PUT {path}/{key}` with the value as JSON → `204` once written per the strategy
///   (cache-aside and write-through store through the source first; write-behind records the
///   write durably and stores it later); `400` naming the field for a body that is not a value.
/// - `DELETE {path}/{key}` → `204`: the key is evicted (the source keeps its value).
///
/// A source or engine failure is `503` (the caller may retry); the error is logged.
pub fn cache_routes<Svc, S>(path: &str) -> crate::Router<Svc>
where
    Svc: Send + Sync + 'static,
    S: CacheSource,
{
    crate::Router::new().route(
        &format!("{path}/{{key}}"),
        get(read::<S>).put(write::<S>).delete(evict::<S>),
    )
}

/// `GET {path}/{key}`.
async fn read<S: CacheSource>(cx: Ctx, Path(key): Path<String>) -> Result<Response, ApiError> {
    match cache_of::<S>(&cx)?.get(&key).await.map_err(unavailable)? {
        Some(value) => Ok(Json(value).into_response()),
        None => Err(ApiError::not_found(format!("no value for `{key}`"))),
    }
}

/// `PUT {path}/{key}`.
async fn write<S: CacheSource>(
    cx: Ctx,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let value: S::Value = json_naming_the_field(&body, "the value")?;
    cache_of::<S>(&cx)?
        .put(&key, value)
        .await
        .map_err(unavailable)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE {path}/{key}`.
async fn evict<S: CacheSource>(cx: Ctx, Path(key): Path<String>) -> Result<StatusCode, ApiError> {
    cache_of::<S>(&cx)?.evict(&key).await.map_err(unavailable)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A failure of the source or the engine: `503`; the cause is logged, not shown.
fn unavailable(error: CacheError) -> ApiError {
    tracing::warn!(error = %error, "cache request failed");
    ApiError::unavailable("the cache could not answer; retry later")
}
