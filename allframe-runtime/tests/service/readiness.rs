//! Readiness as load balancers and Kubernetes see it: it fails while database writes fail (a
//! locked SQLite file) and recovers when they work again, says which database the service runs
//! on, and during the shutdown propagation delay answers 503 while new connections are still
//! served.
#![cfg(feature = "sqlite")]

use std::path::Path;
use std::time::{Duration, Instant};

use crate::launch_env::{stateless_settings, test_env};
use allframe_runtime::__private::{EmbeddedMigration, Launcher, RunningService, ServiceSettings};
use allframe_runtime::axum::http::StatusCode;
use allframe_runtime::axum::routing::{get, post};
use allframe_runtime::database::{DatabaseTarget, PROBE_REUSE, WRITE_FAILURE_THRESHOLD};
use allframe_runtime::error::{ApiError, RuntimeError};
use allframe_runtime::{BoxError, Ctx, Database, RestApi, Router, Service, sqlx};
use serde_json::{Value, json};

static SETTINGS: ServiceSettings = stateless_settings("shop", "note-service");

static MIGRATIONS: [EmbeddedMigration; 1] = [EmbeddedMigration {
    version: 1,
    description: "create notes",
    sql: "CREATE TABLE notes (body TEXT NOT NULL);",
}];

struct NoteService;

impl Service for NoteService {
    async fn init(_cx: &Ctx) -> Result<Self, BoxError> {
        Ok(Self)
    }
}

impl RestApi for NoteService {
    fn routes() -> Router<Self> {
        Router::new()
            .route("/notes", post(create_note))
            .route("/notes/count", get(count_notes))
    }
}

/// Writes through a unit of work, as generated handlers do.
async fn create_note(cx: Ctx, body: String) -> Result<StatusCode, ApiError> {
    let mut uow = cx.begin().await?;
    sqlx::query("INSERT INTO notes (body) VALUES ($1)")
        .bind(body)
        .execute(uow.conn())
        .await?;
    uow.commit().await?;
    Ok(StatusCode::CREATED)
}

async fn count_notes(cx: Ctx) -> Result<String, ApiError> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notes")
        .fetch_one(cx.db().pool())
        .await?;
    Ok(count.to_string())
}

async fn start(dir: &Path, extra: &[(&str, &str)]) -> Result<RunningService, RuntimeError> {
    Launcher::<NoteService>::new(&SETTINGS)
        .migrations(&MIGRATIONS)
        .env(test_env(dir, extra))
        .start()
        .await
}

/// `GET path` on a connection of its own; the status and the body.
async fn get_fresh(running: &RunningService, path: &str) -> (u16, String) {
    // A new client, so a new connection: what a load balancer's new connection would meet.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let response = client
        .get(format!("http://{}{path}", running.rest_addr()))
        .send()
        .await
        .expect("the service answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

async fn readiness(running: &RunningService) -> (u16, Value) {
    let (status, body) = get_fresh(running, "/health/ready").await;
    (
        status,
        serde_json::from_str(&body).expect("readiness is JSON"),
    )
}

async fn post_note(running: &RunningService, body: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{}/notes", running.rest_addr()))
        .body(body.to_owned())
        .send()
        .await
        .expect("POST /notes")
        .status()
        .as_u16()
}

#[tokio::test]
async fn readiness_fails_while_writes_fail_and_recovers_when_they_work_again() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), &[]).await.expect("service starts");
    assert_eq!(post_note(&running, "before").await, 201);
    let (status, body) = readiness(&running).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["writes"]["status"], "ok");

    // Another process holds the write lock of the service's file, as a stuck migration tool or
    // a backup would: the service still answers pings, and every write fails.
    let target = DatabaseTarget::default_sqlite(temp.path(), "note-service").expect("target");
    let intruder = Database::connect(&target)
        .await
        .expect("open the file again");
    let mut lock = intruder.pool().acquire().await.expect("a connection");
    sqlx::raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut *lock)
        .await
        .expect("take the write lock");

    let failures = (0..WRITE_FAILURE_THRESHOLD).map(|i| {
        let running = &running;
        async move { post_note(running, &format!("locked-{i}")).await }
    });
    let statuses = futures_util::future::join_all(failures).await;
    assert!(statuses.iter().all(|&s| s == 500), "{statuses:?}");

    let started = Instant::now();
    let (status, body) = readiness(&running).await;
    assert_eq!(status, 503, "writes fail, so not ready: {body}");
    assert_eq!(body["failing"], json!(["writes"]), "{body}");
    assert_eq!(
        body["checks"]["writes"]["detail"],
        "database writes are failing"
    );
    assert_eq!(
        body["checks"]["database"]["status"], "ok",
        "pings still work"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the write probe is short: {:?}",
        started.elapsed()
    );

    sqlx::raw_sql("ROLLBACK")
        .execute(&mut *lock)
        .await
        .expect("release the lock");
    drop(lock);
    intruder.close().await;

    // Nothing wrote in between (an unready instance gets no traffic): readiness probes, and
    // the next probe (answers are reused for PROBE_REUSE) finds the database writable.
    let (status, body) = readiness(&running).await;
    let (status, body) = if status == 200 {
        (status, body)
    } else {
        tokio::time::sleep(PROBE_REUSE).await;
        readiness(&running).await
    };
    assert_eq!(status, 200, "ready again once writes work: {body}");
    assert_eq!(post_note(&running, "after").await, 201);
    assert_eq!(
        get_fresh(&running, "/notes/count").await,
        (200, "2".to_owned())
    );
    let report = running.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test]
async fn readiness_names_the_database_in_use_without_its_url() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), &[]).await.expect("service starts");
    let (status, body) = readiness(&running).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["database"],
        json!({ "engine": "sqlite", "embedded_default": true, "declared": "postgres" }),
        "the file declares PostgreSQL, the service runs on the embedded default: {body}"
    );
    running.shutdown().await;

    let file = temp.path().join("explicit.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let running = start(temp.path(), &[("DATABASE_URL", &url)])
        .await
        .expect("service starts");
    let (_, body) = readiness(&running).await;
    assert_eq!(body["database"]["engine"], "sqlite");
    assert_eq!(
        body["database"]["embedded_default"], false,
        "DATABASE_URL chose it"
    );
    assert!(
        !body.to_string().contains("explicit.db"),
        "no URL or path: {body}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn during_the_shutdown_delay_new_connections_are_served_while_readiness_is_503() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), &[("ALLFRAME_SHUTDOWN_DELAY_SECS", "2")])
        .await
        .expect("service starts");
    let addr = running.rest_addr();
    let triggered = Instant::now();
    running.shutdown_handle().trigger();

    // Within the delay: a new connection is accepted, readiness says 503 and routes serve.
    let (status, body) = readiness(&running).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failing"], json!(["shutdown"]));
    assert_eq!(post_note(&running, "during the delay").await, 201);
    assert_eq!(
        get_fresh(&running, "/notes/count").await,
        (200, "1".to_owned())
    );
    assert!(
        triggered.elapsed() < Duration::from_secs(2),
        "all of that happened within the delay: {:?}",
        triggered.elapsed()
    );

    // After it: the listener closes and the service drains and stops cleanly.
    let report = running.wait().await;
    assert!(report.is_clean(), "{report:?}");
    assert!(
        report.elapsed >= Duration::from_secs(2),
        "the delay is part of shutdown: {report:?}"
    );
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
