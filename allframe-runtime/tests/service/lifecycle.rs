//! A stateless service run in-process on port 0 with SQLite: health, user routes backed by the
//! database, deferred values, background tasks, and graceful shutdown (drain, deadline, abort).
#![cfg(feature = "sqlite")]

use std::path::Path;
use std::time::Duration;

use crate::launch_env::{stateless_settings, test_env};
use allframe_runtime::__private::{
    DeferredValue, EmbeddedMigration, Environment, IdempotencySettings, IdempotencyStorage,
    Launcher, MetricsSettings, RunningService, Segment, ServiceSettings,
};
use allframe_runtime::Json;
use allframe_runtime::axum::http::StatusCode;
use allframe_runtime::axum::routing::{get, post};
use allframe_runtime::database::DatabaseTarget;
use allframe_runtime::error::{ApiError, PROBLEM_JSON, RuntimeError};
use allframe_runtime::extract::Path as UrlPath;
use allframe_runtime::{BoxError, Ctx, Database, RestApi, Router, Service, sqlx};
use serde_json::{Value, json};

static SETTINGS: ServiceSettings = ServiceSettings {
    deferred: &[DeferredValue {
        key: "app.greeting",
        segments: &[
            Segment::Literal("hello from "),
            Segment::Var {
                name: "GREETING_TARGET",
                default: Some("nowhere"),
            },
        ],
    }],
    ..stateless_settings("shop", "user-service")
};

static MIGRATIONS: [EmbeddedMigration; 2] = [
    EmbeddedMigration {
        version: 1,
        description: "create users",
        sql: "CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT NOT NULL UNIQUE);",
    },
    EmbeddedMigration {
        version: 2,
        description: "create events",
        sql: "CREATE TABLE events (name TEXT NOT NULL);",
    },
];

struct UserService {
    greeting: String,
}

impl Service for UserService {
    async fn init(cx: &Ctx) -> Result<Self, BoxError> {
        let greeting = cx
            .value("app.greeting")
            .ok_or("app.greeting missing")?
            .to_owned();
        // A shutdown-aware background task that records when it is cancelled.
        let db = cx.db().clone();
        cx.tasks().spawn("recorder", move |token| async move {
            token.cancelled().await;
            sqlx::query("INSERT INTO events (name) VALUES ($1)")
                .bind("task-cancelled")
                .execute(db.pool())
                .await?;
            Ok(())
        });
        Ok(Self { greeting })
    }
}

impl RestApi for UserService {
    fn routes() -> Router<Self> {
        Router::new()
            .route("/users", post(create_user))
            .route("/users/{id}", get(get_user))
            .route("/greeting", get(greeting))
            .route("/slow/{ms}", get(slow))
            .route("/panic", get(panics))
    }
}

async fn create_user(
    cx: Ctx,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = body["id"]
        .as_i64()
        .ok_or_else(|| ApiError::bad_request("id must be an integer"))?;
    let email = body["email"]
        .as_str()
        .ok_or_else(|| ApiError::bad_request("email is required"))?;
    sqlx::query("INSERT INTO users (id, email) VALUES ($1, $2)")
        .bind(id)
        .bind(email.to_owned())
        .execute(cx.db().pool())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "email": email })),
    ))
}

async fn get_user(cx: Ctx, UrlPath(id): UrlPath<i64>) -> Result<Json<Value>, ApiError> {
    let email: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(cx.db().pool())
        .await?;
    Ok(Json(json!({ "id": id, "email": email })))
}

async fn greeting(
    allframe_runtime::axum::extract::State(app): allframe_runtime::axum::extract::State<
        allframe_runtime::App<UserService>,
    >,
) -> String {
    app.greeting.clone()
}

/// Records that it started (so the test knows the request is in flight), then sleeps.
async fn slow(cx: Ctx, UrlPath(ms): UrlPath<u64>) -> Result<&'static str, ApiError> {
    sqlx::query("INSERT INTO events (name) VALUES ($1)")
        .bind(format!("slow-started-{ms}"))
        .execute(cx.db().pool())
        .await?;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok("done")
}

async fn panics() -> &'static str {
    panic!("a bug in a handler")
}

async fn start(dir: &Path, extra: &[(&str, &str)]) -> Result<RunningService, RuntimeError> {
    Launcher::<UserService>::new(&SETTINGS)
        .migrations(&MIGRATIONS)
        .env(test_env(dir, extra))
        .start()
        .await
}

fn url(running: &RunningService, path: &str) -> String {
    format!("http://{}{path}", running.rest_addr())
}

async fn count_events(db: &Database, name: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE name = $1")
        .bind(name.to_owned())
        .fetch_one(db.pool())
        .await
        .expect("count events")
}

/// Waits until the slow handler has recorded its start, so the request is surely in flight.
async fn wait_for_event(running: &RunningService, name: &str) {
    for _ in 0..200 {
        if count_events(running.ctx().db(), name).await > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("event {name} never recorded");
}

/// Reopens the service's SQLite file after shutdown closed the pool.
async fn reopen(dir: &Path) -> Database {
    let target = DatabaseTarget::default_sqlite(dir, "user-service").expect("target");
    Database::connect(&target).await.expect("reopen")
}

#[tokio::test]
async fn serves_health_and_database_backed_routes_then_shuts_down_cleanly() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), &[("GREETING_TARGET", "the tests")])
        .await
        .expect("service starts");
    assert_ne!(
        running.rest_addr().port(),
        0,
        "port 0 resolves to a real port"
    );
    assert!(temp.path().join("user-service.db").is_file());
    let client = reqwest::Client::new();

    let live = client
        .get(url(&running, "/health/live"))
        .send()
        .await
        .expect("live");
    assert_eq!(live.status(), 200);
    let ready = client
        .get(url(&running, "/health/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "ready");

    let created = client
        .post(url(&running, "/users"))
        .json(&json!({ "id": 1, "email": "ada@example.com" }))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let fetched = client
        .get(url(&running, "/users/1"))
        .send()
        .await
        .expect("get");
    assert_eq!(fetched.status(), 200);
    let body: Value = fetched.json().await.expect("json");
    assert_eq!(body, json!({ "id": 1, "email": "ada@example.com" }));

    let missing = client
        .get(url(&running, "/users/99"))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), 404, "RowNotFound maps to 404");
    assert_eq!(missing.headers()["content-type"], PROBLEM_JSON);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(
        body,
        json!({ "type": "about:blank", "title": "Not Found", "status": 404, "detail": "not found" })
    );
    let duplicate = client
        .post(url(&running, "/users"))
        .json(&json!({ "id": 1, "email": "ada@example.com" }))
        .send()
        .await
        .expect("duplicate");
    assert_eq!(duplicate.status(), 500);
    let body: Value = duplicate.json().await.expect("json");
    assert_eq!(
        body["detail"], "internal server error",
        "details are not leaked"
    );

    let greeting = client
        .get(url(&running, "/greeting"))
        .send()
        .await
        .expect("greeting");
    assert_eq!(greeting.text().await.expect("text"), "hello from the tests");
    let unknown = client
        .get(url(&running, "/nope"))
        .send()
        .await
        .expect("404");
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.headers()["content-type"],
        PROBLEM_JSON,
        "a problem, not an empty body"
    );
    let body: Value = unknown.json().await.expect("json");
    assert_eq!(body["status"], 404);
    let wrong_method = client
        .delete(url(&running, "/users/1"))
        .send()
        .await
        .expect("405");
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "GET,HEAD");
    let body: Value = wrong_method.json().await.expect("json");
    assert_eq!(body["title"], "Method Not Allowed");
    let malformed = client
        .post(url(&running, "/users"))
        .header("content-type", "application/json")
        .body("{\"id\": 1,")
        .send()
        .await
        .expect("400");
    assert_eq!(malformed.status(), 400);
    assert_eq!(
        malformed.headers()["content-type"],
        PROBLEM_JSON,
        "not text/plain"
    );
    let body: Value = malformed.json().await.expect("json");
    assert_eq!(body["title"], "Bad Request");
    let not_a_number = client
        .get(url(&running, "/users/ada"))
        .send()
        .await
        .expect("400");
    assert_eq!(not_a_number.status(), 400);
    assert_eq!(not_a_number.headers()["content-type"], PROBLEM_JSON);
    let panicked = client
        .get(url(&running, "/panic"))
        .send()
        .await
        .expect("500");
    assert_eq!(panicked.status(), 500, "a panicking handler answers 500");
    let body: Value = panicked.json().await.expect("json");
    assert_eq!(body["detail"], "internal server error");

    let report = running.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.exit_status(), 0);
    let db = reopen(temp.path()).await;
    assert_eq!(
        count_events(&db, "task-cancelled").await,
        1,
        "background task saw cancellation"
    );
    db.close().await;
}

#[tokio::test]
async fn metrics_get_a_listener_of_their_own_and_count_route_templates() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = Launcher::<UserService>::new(&SETTINGS)
        .migrations(&MIGRATIONS)
        .metrics(MetricsSettings { port: Some(9464) })
        .env(test_env(
            temp.path(),
            &[("METRICS_PORT", "0"), ("GREETING_TARGET", "metrics")],
        ))
        .start()
        .await
        .expect("service starts");
    let metrics_addr = running.metrics_addr().expect("a metrics listener");
    assert_ne!(metrics_addr.port(), 0);
    assert_ne!(metrics_addr, running.rest_addr());
    let client = reqwest::Client::new();
    for id in [1, 2, 3] {
        let answer = client
            .get(url(&running, &format!("/users/{id}")))
            .send()
            .await
            .expect("get");
        assert_eq!(answer.status(), 404);
    }
    let health = client
        .get(url(&running, "/health/live"))
        .send()
        .await
        .expect("live");
    assert_eq!(health.status(), 200);
    let on_rest = client
        .get(url(&running, "/metrics"))
        .send()
        .await
        .expect("rest");
    assert_eq!(
        on_rest.status(),
        404,
        "not on the REST port when it has its own"
    );

    let scrape = client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(scrape.status(), 200);
    assert!(
        scrape.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/openmetrics-text"),
    );
    let text = scrape.text().await.expect("body");
    let requests: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("http_server_requests_total{"))
        .collect();
    assert_eq!(requests.len(), 1, "one series for three ids: {text}");
    assert!(requests[0].contains("route=\"/users/{id}\""), "{text}");
    assert!(requests[0].contains("status=\"404\""), "{text}");
    assert!(requests[0].ends_with(" 3"), "{text}");
    assert!(
        text.contains("http_server_request_duration_seconds_count{service=\"user-service\",method=\"GET\",route=\"/users/{id}\"} 3"),
        "{text}"
    );
    assert!(!text.contains("/health"), "probes are not counted: {text}");
    assert!(
        !text.contains("allframe_outbox"),
        "no messaging, no outbox series: {text}"
    );

    let report = running.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    assert!(
        tokio::net::TcpStream::connect(metrics_addr).await.is_err(),
        "the metrics listener stops with the service"
    );
}

#[tokio::test]
async fn metrics_count_how_the_idempotency_layer_answered() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = Launcher::<UserService>::new(&SETTINGS)
        .migrations(&MIGRATIONS)
        .metrics(MetricsSettings::default())
        .idempotency(IdempotencySettings {
            key_header: "Idempotency-Key",
            ttl_hours: 24,
            storage: IdempotencyStorage::Sqlite,
        })
        .env(test_env(temp.path(), &[("GREETING_TARGET", "keys")]))
        .start()
        .await
        .expect("service starts");
    let client = reqwest::Client::new();
    let create = |key: &str, email: &str| {
        client
            .post(url(&running, "/users"))
            .header("Idempotency-Key", key)
            .json(&json!({ "id": 7, "email": email }))
            .send()
    };
    assert_eq!(
        create("k-1", "ada@example.com")
            .await
            .expect("first")
            .status(),
        201
    );
    assert_eq!(
        create("k-1", "ada@example.com")
            .await
            .expect("replay")
            .status(),
        201
    );
    assert_eq!(
        create("k-1", "bob@example.com")
            .await
            .expect("other body")
            .status(),
        422
    );
    assert_eq!(
        create("", "ada@example.com")
            .await
            .expect("empty key")
            .status(),
        400
    );

    let text = client
        .get(url(&running, "/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    for (outcome, count) in [
        ("executed", 1),
        ("replayed", 1),
        ("mismatch", 1),
        ("invalid", 1),
    ] {
        let series = format!(
            "allframe_idempotency_requests_total{{service=\"user-service\",outcome=\"{outcome}\"}} {count}"
        );
        assert!(text.contains(&series), "{series} in {text}");
    }
    // Every answer is counted by the route template, whoever answered it: the handler (201),
    // the idempotency layer's replay (201), its 422 and its 400.
    for (status, count) in [(201, 2), (422, 1), (400, 1)] {
        let series = format!(
            "http_server_requests_total{{service=\"user-service\",method=\"POST\",route=\"/users\",status=\"{status}\"}} {count}"
        );
        assert!(text.contains(&series), "{series} in {text}");
    }
    assert!(
        text.contains("http_server_request_duration_seconds_count{service=\"user-service\",method=\"POST\",route=\"/users\"} 4"),
        "{text}"
    );
    let report = running.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test]
async fn drains_in_flight_requests_within_the_deadline() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), &[("ALLFRAME_SHUTDOWN_TIMEOUT_SECS", "10")])
        .await
        .expect("service starts");
    let addr = running.rest_addr();
    let slow = tokio::spawn(reqwest::get(url(&running, "/slow/1500")));
    wait_for_event(&running, "slow-started-1500").await;

    running.shutdown_handle().trigger();
    // Readiness flips at once, while the slow request is still in flight.
    let readiness = running.readiness().await;
    assert!(!readiness.is_ready());
    assert_eq!(readiness.http_status(), 503);
    assert_eq!(readiness.failing, vec!["shutdown"]);
    // The listener closes: new connections are refused.
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the listener still accepts after shutdown began");

    let response = slow
        .await
        .expect("join")
        .expect("the in-flight request completes");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "done");
    let report = running.wait().await;
    assert_eq!(report.aborted_connections, 0);
    assert_eq!(report.exit_status(), 0, "{report:?}");
    let db = reopen(temp.path()).await;
    assert_eq!(count_events(&db, "task-cancelled").await, 1);
    db.close().await;
}

#[tokio::test]
async fn requests_longer_than_the_deadline_are_aborted_with_exit_code_1() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), &[("ALLFRAME_SHUTDOWN_TIMEOUT_SECS", "1")])
        .await
        .expect("service starts");
    let slow = tokio::spawn(reqwest::get(url(&running, "/slow/30000")));
    wait_for_event(&running, "slow-started-30000").await;

    let report = running.shutdown().await;
    assert_eq!(report.aborted_connections, 1, "{report:?}");
    assert_eq!(
        report.forced_tasks, 0,
        "background tasks get their own grace: {report:?}"
    );
    assert_eq!(report.exit_status(), 1);
    assert!(report.elapsed < Duration::from_secs(10), "{report:?}");
    let outcome = slow.await.expect("join");
    assert!(
        outcome.is_err(),
        "the aborted request must not complete: {outcome:?}"
    );
}

#[tokio::test]
async fn readiness_reports_a_database_that_stopped_answering() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), &[]).await.expect("service starts");
    running.ctx().db().close().await;
    let ready = reqwest::get(url(&running, "/health/ready"))
        .await
        .expect("ready");
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["failing"], json!(["database"]));
    let live = reqwest::get(url(&running, "/health/live"))
        .await
        .expect("live");
    assert_eq!(live.status(), 200);
    // The recorder task cannot write to a closed pool: it fails (logged), it is not forced.
    let report = running.shutdown().await;
    assert_eq!(report.aborted_connections, 0);
}

#[tokio::test]
async fn start_up_failures_are_typed() {
    let temp = tempfile::tempdir().expect("temp dir");
    let error = start(temp.path(), &[("PORT", "eighty")])
        .await
        .expect_err("bad port");
    assert!(
        matches!(error, RuntimeError::InvalidEnv { var: "PORT", .. }),
        "{error:?}"
    );

    let error = start(temp.path(), &[("DATABASE_URL", "mongodb://db/app")])
        .await
        .expect_err("bad scheme");
    assert!(error.to_string().contains("DATABASE_URL"), "{error}");

    struct Failing;
    impl Service for Failing {
        async fn init(_cx: &Ctx) -> Result<Self, BoxError> {
            Err("the upstream is unreachable".into())
        }
    }
    impl RestApi for Failing {
        fn routes() -> Router<Self> {
            Router::new()
        }
    }
    let error = Launcher::<Failing>::new(&SETTINGS)
        .env(Environment::from_pairs([
            (
                "ALLFRAME_DATA_DIR",
                temp.path().to_string_lossy().into_owned(),
            ),
            ("PORT", "0".to_owned()),
        ]))
        .start()
        .await
        .expect_err("init fails");
    assert!(
        matches!(
            error,
            RuntimeError::Init {
                service: "user-service",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("the upstream is unreachable"),
        "{error}"
    );
}
