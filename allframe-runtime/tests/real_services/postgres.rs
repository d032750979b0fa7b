//! Real-services tests against PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`).
//!
//! Run with `cargo test -p allframe-runtime --features postgres -- --ignored`. A missing
//! PostgreSQL fails these tests. Each test works in a fresh schema (through the connection's
//! `search_path`), so reruns never collide; the schema is dropped at the end.
#![cfg(all(feature = "postgres", feature = "testing"))]

use allframe_runtime::__private::{
    EmbeddedMigration, Environment, Launcher, LogFormat, ServiceSettings,
};
use allframe_runtime::axum::extract::Path;
use allframe_runtime::axum::routing::put;
use allframe_runtime::database::{Backend, Database, DatabaseTarget, DbError};
use allframe_runtime::error::ApiError;
use allframe_runtime::testing::PgSchema as Scratch;
use allframe_runtime::{BoxError, Ctx, RestApi, Router, Service, sqlx};

static MIGRATIONS: [EmbeddedMigration; 2] = [
    EmbeddedMigration {
        version: 1,
        description: "create notes",
        sql: "CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL);",
    },
    EmbeddedMigration {
        version: 2,
        description: "add author",
        sql: "ALTER TABLE notes ADD COLUMN author TEXT; CREATE INDEX notes_author ON notes (author);",
    },
];

/// A schema of its own for one test, and the URL that uses it.

#[tokio::test]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn migrations_apply_and_dollar_placeholders_round_trip() {
    let scratch = Scratch::create("migrate").await;
    let target = DatabaseTarget::parse(scratch.url()).expect("target");
    assert_eq!(target.backend(), Backend::Postgres);
    let db = Database::connect(&target).await.expect("connect");
    assert_eq!(db.backend(), Backend::Postgres);
    assert!(
        db.pool().options().get_test_before_acquire(),
        "idle PostgreSQL connections are checked before use"
    );
    db.migrate(&MIGRATIONS).await.expect("migrations apply");
    db.migrate(&MIGRATIONS)
        .await
        .expect("re-applying is idempotent");

    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(db.pool())
            .await
            .expect("migration table in the scratch schema");
    assert_eq!(applied, vec![1, 2]);
    let in_schema: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
    )
    .bind(scratch.name().to_owned())
    .bind("notes")
    .fetch_one(db.pool())
    .await
    .expect("catalog");
    assert_eq!(in_schema, 1, "the table lives in this run's schema");

    sqlx::query("INSERT INTO notes (id, body, author) VALUES ($1, $2, $3)")
        .bind(1_i64)
        .bind("portable SQL")
        .bind("ada")
        .execute(db.pool())
        .await
        .expect("insert");
    let (body, author): (String, Option<String>) =
        sqlx::query_as("SELECT body, author FROM notes WHERE id = $1")
            .bind(1_i64)
            .fetch_one(db.pool())
            .await
            .expect("select");
    assert_eq!(
        (body.as_str(), author.as_deref()),
        ("portable SQL", Some("ada"))
    );
    db.ping().await.expect("ping");
    db.close().await;
    scratch.remove().await;
}

static SETTINGS: ServiceSettings = ServiceSettings {
    architecture: "shop",
    name: "notes-service",
    archetype: "stateless",
    rest_port: 8080,
    grpc_port: None,
    logging: LogFormat::Structured,
    declared_database: "postgres",
    shutdown_timeout_secs: 5,
    deferred: &[],
};

struct NotesService;

impl Service for NotesService {
    async fn init(_cx: &Ctx) -> Result<Self, BoxError> {
        Ok(Self)
    }
}

impl RestApi for NotesService {
    fn routes() -> Router<Self> {
        Router::new().route("/notes/{id}", put(put_note).get(get_note))
    }
}

async fn put_note(cx: Ctx, Path(id): Path<i64>, body: String) -> Result<&'static str, ApiError> {
    sqlx::query("INSERT INTO notes (id, body) VALUES ($1, $2)")
        .bind(id)
        .bind(body)
        .execute(cx.db().pool())
        .await?;
    Ok("stored")
}

async fn get_note(cx: Ctx, Path(id): Path<i64>) -> Result<String, ApiError> {
    Ok(sqlx::query_scalar("SELECT body FROM notes WHERE id = $1")
        .bind(id)
        .fetch_one(cx.db().pool())
        .await?)
}

#[tokio::test]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn a_service_on_postgres_is_ready_and_serves_from_the_database() {
    let scratch = Scratch::create("service").await;
    let running = Launcher::<NotesService>::new(&SETTINGS)
        .migrations(&MIGRATIONS)
        .env(Environment::from_pairs([
            ("DATABASE_URL", scratch.url().to_owned()),
            ("ALLFRAME_BIND_ADDR", "127.0.0.1".to_owned()),
            ("PORT", "0".to_owned()),
        ]))
        .start()
        .await
        .expect("service starts on PostgreSQL");
    assert_eq!(running.ctx().db().backend(), Backend::Postgres);
    let base = format!("http://{}", running.rest_addr());
    let client = reqwest::Client::new();

    let ready = client
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(
        body["database"],
        serde_json::json!({ "engine": "postgres", "embedded_default": false, "declared": "postgres" })
    );

    let stored = client
        .put(format!("{base}/notes/5"))
        .body("from postgres")
        .send()
        .await
        .expect("put");
    assert_eq!(stored.status(), 200);
    let fetched = client
        .get(format!("{base}/notes/5"))
        .send()
        .await
        .expect("get");
    assert_eq!(fetched.text().await.expect("text"), "from postgres");
    let missing = client
        .get(format!("{base}/notes/6"))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);

    let report = running.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    scratch.remove().await;
}

#[tokio::test]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn passwords_in_postgres_urls_are_redacted() {
    let url = Scratch::server_url().replacen("postgres@", "postgres:s3cret@", 1);
    assert!(
        url.contains("s3cret"),
        "the base URL names the user `postgres`: {url}"
    );
    let target = DatabaseTarget::parse(&url).expect("target");
    assert!(!target.to_string().contains("s3cret"));
    // Trust auth ignores the password: the connection itself works.
    let db = Database::connect(&target).await.expect("connect");
    let one: i64 = sqlx::query_scalar("SELECT $1::BIGINT")
        .bind(1_i64)
        .fetch_one(db.pool())
        .await
        .expect("select");
    assert_eq!(one, 1);
    db.close().await;
}

#[tokio::test]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn the_write_probe_passes_on_a_writable_postgres_and_fails_on_a_read_only_one() {
    let scratch = Scratch::create("probe").await;
    let writable = Database::connect(&DatabaseTarget::parse(scratch.url()).expect("target"))
        .await
        .expect("connect");
    writable
        .probe_write()
        .await
        .expect("a writable database takes writes");
    writable
        .probe_write()
        .await
        .expect("and again: the probe leaves nothing behind");
    writable.close().await;

    // Every transaction read-only, as on a replica after a failover: pings pass, writes do not.
    let read_only = format!(
        "{}%20-c%20default_transaction_read_only%3Don",
        scratch.url()
    );
    let read_only = Database::connect(&DatabaseTarget::parse(&read_only).expect("target"))
        .await
        .expect("connect");
    read_only.ping().await.expect("pings still pass");
    let refused = read_only
        .probe_write()
        .await
        .expect_err("a read-only database does not take writes");
    assert!(matches!(refused, DbError::ReadOnly), "{refused:?}");
    read_only
        .ping()
        .await
        .expect("the pool is still usable after a failed probe");
    read_only.close().await;
    scratch.remove().await;
}
