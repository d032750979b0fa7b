//! The consumer's dead letters on the admin API (see [`crate::admin`]), what
//! `cargo allframe dlq` calls:
//!
//! | request | answer |
//! |---|---|
//! | `GET /dead-letters` | `200`, a JSON array, oldest first: `id`, `event_id`, `topic`, `event_type`, `reason`, `error`, `attempts`, `first_failed_at`, `last_failed_at` (Unix ms) |
//! | `GET /dead-letters/{id}` | `200`, the same object with `headers` (the original headers) and `payload` (the original bytes as text); `404` |
//! | `POST /dead-letters/{id}/replay` | `200`, `{"id", "outcome": "handled" \| "duplicate" \| "failed_again", "error"?}`; `404` |
//! | `POST /dead-letters/replay` | `200`, one such object per dead letter, replayed oldest first |
//! | `DELETE /dead-letters/{id}` | `204`; `404` |
//! | `DELETE /dead-letters` | `200`, `{"purged": n}` |
//!
//! A replay hands the message to this consumer only (never back to the bus, where every group
//! would get it again): handled, it leaves the table in the handler's transaction; failing
//! again, it stays with its count and error updated.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::store::{self, DeadLetter};
use super::{Consumer, ConsumerError, Handlers, Replayed};
use crate::admin::problem;

/// What the admin API does with a consumer's dead letters (object safe, over any handlers).
pub(crate) trait DeadLetterDesk: Send + Sync + 'static {
    /// Every dead letter, oldest first.
    fn list(&self) -> BoxFuture<'_, Result<Vec<DeadLetter>, ConsumerError>>;
    /// One dead letter.
    fn get(&self, id: i64) -> BoxFuture<'_, Result<Option<DeadLetter>, ConsumerError>>;
    /// Hands one back to the consumer.
    fn replay(&self, id: i64) -> BoxFuture<'_, Result<Replayed, ConsumerError>>;
    /// Deletes one, or all with `None`; how many went.
    fn purge(&self, id: Option<i64>) -> BoxFuture<'_, Result<u64, ConsumerError>>;
}

impl<H: Handlers> DeadLetterDesk for Consumer<H> {
    fn list(&self) -> BoxFuture<'_, Result<Vec<DeadLetter>, ConsumerError>> {
        Box::pin(async move { Ok(store::dead_letters(&self.db, &self.group).await?) })
    }

    fn get(&self, id: i64) -> BoxFuture<'_, Result<Option<DeadLetter>, ConsumerError>> {
        Box::pin(async move { Ok(store::dead_letter_by_id(&self.db, &self.group, id).await?) })
    }

    fn replay(&self, id: i64) -> BoxFuture<'_, Result<Replayed, ConsumerError>> {
        Box::pin(Consumer::replay(self, id))
    }

    fn purge(&self, id: Option<i64>) -> BoxFuture<'_, Result<u64, ConsumerError>> {
        Box::pin(async move {
            let purged = store::purge_dead_letters(&self.db, &self.group, id).await?;
            self.count_dead_letters().await?;
            Ok(purged)
        })
    }
}

type Desk = Arc<dyn DeadLetterDesk>;

/// The dead letter routes over `desk`.
pub(crate) fn router(desk: Desk) -> Router {
    Router::new()
        .route("/dead-letters", get(list).delete(purge_all))
        .route("/dead-letters/replay", post(replay_all))
        .route("/dead-letters/{id}", get(show).delete(purge_one))
        .route("/dead-letters/{id}/replay", post(replay_one))
        .with_state(desk)
}

fn summary(letter: &DeadLetter) -> serde_json::Map<String, Value> {
    let value = json!({
        "id": letter.id,
        "event_id": letter.event_id,
        "topic": letter.topic,
        "event_type": letter.event_type,
        "reason": letter.reason.as_str(),
        "error": letter.error,
        "attempts": letter.attempts,
        "first_failed_at": letter.first_failed_at,
        "last_failed_at": letter.last_failed_at,
    });
    match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

fn failed(error: &ConsumerError) -> Response {
    tracing::error!(%error, "admin API: the dead letter table failed");
    problem(StatusCode::SERVICE_UNAVAILABLE, &error.to_string())
}

fn missing(id: i64) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        &format!("this consumer has no dead letter {id}"),
    )
}

async fn list(State(desk): State<Desk>) -> Response {
    match desk.list().await {
        Ok(letters) => Json(letters.iter().map(summary).collect::<Vec<_>>()).into_response(),
        Err(error) => failed(&error),
    }
}

async fn show(State(desk): State<Desk>, Path(id): Path<i64>) -> Response {
    match desk.get(id).await {
        Ok(Some(letter)) => {
            let mut object = summary(&letter);
            let headers = serde_json::from_str(&letter.headers)
                .unwrap_or_else(|_| Value::String(letter.headers.clone()));
            object.insert("headers".into(), headers);
            object.insert(
                "payload".into(),
                Value::String(String::from_utf8_lossy(&letter.payload).into_owned()),
            );
            Json(object).into_response()
        }
        Ok(None) => missing(id),
        Err(error) => failed(&error),
    }
}

/// The answer for one replay; `None` when there was no such dead letter.
fn replayed(id: i64, outcome: Replayed) -> Option<Value> {
    Some(match outcome {
        Replayed::Handled => json!({ "id": id, "outcome": "handled" }),
        Replayed::Duplicate => json!({ "id": id, "outcome": "duplicate" }),
        Replayed::FailedAgain(error) => {
            json!({ "id": id, "outcome": "failed_again", "error": error })
        }
        Replayed::NotFound => return None,
    })
}

async fn replay_one(State(desk): State<Desk>, Path(id): Path<i64>) -> Response {
    match desk.replay(id).await {
        Ok(outcome) => match replayed(id, outcome) {
            Some(answer) => Json(answer).into_response(),
            None => missing(id),
        },
        Err(error) => failed(&error),
    }
}

async fn replay_all(State(desk): State<Desk>) -> Response {
    let letters = match desk.list().await {
        Ok(letters) => letters,
        Err(error) => return failed(&error),
    };
    let mut answers = Vec::with_capacity(letters.len());
    for letter in letters {
        match desk.replay(letter.id).await {
            Ok(outcome) => answers.extend(replayed(letter.id, outcome)),
            Err(error) => return failed(&error),
        }
    }
    Json(answers).into_response()
}

async fn purge_one(State(desk): State<Desk>, Path(id): Path<i64>) -> Response {
    match desk.purge(Some(id)).await {
        Ok(0) => missing(id),
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => failed(&error),
    }
}

async fn purge_all(State(desk): State<Desk>) -> Response {
    match desk.purge(None).await {
        Ok(purged) => Json(json!({ "purged": purged })).into_response(),
        Err(error) => failed(&error),
    }
}
