//! The baseline of the HTTP benchmark: the quick-start `user-service`'s work written by hand with
//! axum and sqlx (SQLite, WAL, the same table and queries, the same JSON), no AllFrame.
//!
//! `PORT` (default 8090) and `DATABASE_FILE` (default `./.data/handwritten.db`).

use std::str::FromStr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

#[derive(Serialize)]
struct User {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct CreateUser {
    name: String,
}

async fn create_user(
    State(pool): State<SqlitePool>,
    Json(input): Json<CreateUser>,
) -> Result<(StatusCode, Json<User>), (StatusCode, String)> {
    let name = input.name.trim();
    if name.is_empty() {
        return Err((StatusCode::BAD_REQUEST, "name must not be empty".into()));
    }
    let user = User {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.to_owned(),
    };
    sqlx::query("INSERT INTO users (id, name) VALUES ($1, $2)")
        .bind(&user.id)
        .bind(&user.name)
        .execute(&pool)
        .await
        .map_err(internal)?;
    Ok((StatusCode::CREATED, Json(user)))
}

async fn get_user(
    State(pool): State<SqlitePool>,
    Path(id): Path<String>,
) -> Result<Json<User>, (StatusCode, String)> {
    let row: Option<(String, String)> = sqlx::query_as("SELECT id, name FROM users WHERE id = $1")
        .bind(&id)
        .fetch_optional(&pool)
        .await
        .map_err(internal)?;
    row.map(|(id, name)| Json(User { id, name }))
        .ok_or((StatusCode::NOT_FOUND, format!("no user with id `{id}`")))
}

fn internal(error: sqlx::Error) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8090);
    let file = std::env::var("DATABASE_FILE").unwrap_or_else(|_| ".data/handwritten.db".into());
    if let Some(dir) = std::path::Path::new(&file).parent() {
        std::fs::create_dir_all(dir)?;
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{file}"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let pool = SqlitePoolOptions::new().connect_with(options).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    let app = Router::new()
        .route("/users", post(create_user))
        .route("/users/{id}", get(get_user))
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
