//! The projections on the admin API (token-protected; see [`crate::admin`]): where each
//! version stands, and a rebuild of one, which `cargo allframe projections` calls.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::{ProjectionError, Projections};
use crate::admin::problem;

/// `GET /projections` → `{"projections": [{"name", "version", "state", "position"}, …]}`;
/// `POST /projections/{name}/rebuild` → `202 {"projection", "version"}` (`404` for a name
/// this service does not project).
pub(crate) fn admin_router(projections: Projections) -> axum::Router {
    axum::Router::new()
        .route("/projections", get(list))
        .route("/projections/{name}/rebuild", post(rebuild))
        .with_state(projections)
}

async fn list(State(projections): State<Projections>) -> Response {
    match projections.status().await {
        Ok(all) => axum::Json(json!({ "projections": all })).into_response(),
        Err(error) => failed(&error),
    }
}

async fn rebuild(State(projections): State<Projections>, Path(name): Path<String>) -> Response {
    match projections.rebuild(&name).await {
        Ok(version) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "projection": name, "version": version })),
        )
            .into_response(),
        Err(error) => failed(&error),
    }
}

fn failed(error: &ProjectionError) -> Response {
    match error {
        ProjectionError::Unknown(_) => problem(StatusCode::NOT_FOUND, &error.to_string()),
        _ => {
            tracing::error!(%error, "projection admin request failed");
            problem(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string())
        }
    }
}
