//! The baseline of the HTTP benchmark: the quick-start `user-service`'s work per request written
//! by hand with axum and sqlx, as a person would, no AllFrame. The same SQLite setup (WAL, 5 s
//! busy timeout), the same `users` table with its unique name, and for `POST /users` the same
//! transaction (`BEGIN IMMEDIATE`, the row, a `UserCreated` outbox row, commit) answering 201,
//! or 409 for a taken name. No relay runs: the generated service's relay is its own cost.
//!
//! `PORT` (default 8090) and `DATABASE_FILE` (default `./.data/handwritten.db`).

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// The event each new user publishes through the outbox.
#[derive(Serialize)]
struct UserCreated<'a> {
    id: &'a str,
    name: &'a str,
}

type Failure = (StatusCode, String);

async fn create_user(
    State(pool): State<SqlitePool>,
    Json(input): Json<CreateUser>,
) -> Result<(StatusCode, Json<User>), Failure> {
    let name = input.name.trim();
    if name.is_empty() {
        return Err((StatusCode::BAD_REQUEST, "name must not be empty".into()));
    }
    let user = User {
        id: uuid::Uuid::now_v7().to_string(),
        name: name.to_owned(),
    };
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(internal)?;
    sqlx::query("INSERT INTO users (id, name) VALUES ($1, $2)")
        .bind(&user.id)
        .bind(&user.name)
        .execute(&mut *tx)
        .await
        .map_err(|error| match error.as_database_error() {
            Some(db) if db.is_unique_violation() => (
                StatusCode::CONFLICT,
                format!("a user named `{name}` exists"),
            ),
            _ => internal(error),
        })?;
    let payload = serde_json::to_vec(&UserCreated {
        id: &user.id,
        name: &user.name,
    })
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let created_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    sqlx::query(
        "INSERT INTO outbox (id, topic, event_type, aggregate_id, payload, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind("quickstart.user-service.user-created")
    .bind("UserCreated")
    .bind(&user.id)
    .bind(payload)
    .bind(created_at)
    .execute(&mut *tx)
    .await
    .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    Ok((StatusCode::CREATED, Json(user)))
}

async fn get_user(
    State(pool): State<SqlitePool>,
    Path(id): Path<String>,
) -> Result<Json<User>, Failure> {
    let row: Option<(String, String)> = sqlx::query_as("SELECT id, name FROM users WHERE id = $1")
        .bind(&id)
        .fetch_optional(&pool)
        .await
        .map_err(internal)?;
    row.map(|(id, name)| Json(User { id, name }))
        .ok_or((StatusCode::NOT_FOUND, format!("no user with id `{id}`")))
}

fn internal(error: sqlx::Error) -> Failure {
    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        topic TEXT NOT NULL,
        event_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_at BIGINT NOT NULL,
        published_at BIGINT
    )",
];

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
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new().connect_with(options).await?;
    for statement in SCHEMA {
        sqlx::query(statement).execute(&pool).await?;
    }
    let app = Router::new()
        .route("/users", post(create_user))
        .route("/users/{id}", get(get_user))
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
