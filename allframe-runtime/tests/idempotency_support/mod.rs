//! Shared by the idempotency suites (SQLite in `idempotency.rs`; PostgreSQL and Redis in
//! `real_idempotency_*.rs`): a service whose handlers count their executions, started in-process
//! on port 0 with the idempotency layer, and the scenarios every store must pass.
#![allow(dead_code)] // each suite uses the scenarios its store supports

#[path = "../launch_env/mod.rs"]
mod launch_env;
mod scenarios;

pub use scenarios::*;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use allframe_runtime::__private::{
    IdempotencySettings, IdempotencyStorage, Launcher, RunningService, ServiceSettings,
};
use allframe_runtime::axum::Json;
use allframe_runtime::axum::extract::Path as UrlPath;
use allframe_runtime::axum::http::{HeaderMap, StatusCode, header};
use allframe_runtime::axum::response::IntoResponse;
use allframe_runtime::axum::routing::post;
use allframe_runtime::error::{ApiError, PROBLEM_JSON, RuntimeError};
use allframe_runtime::{BoxError, Ctx, RestApi, Router, Service};
use reqwest::Response;
use serde_json::{Value, json};

/// The key header, as the file would declare it.
pub const KEY: &str = "Idempotency-Key";

/// The tenant header, as `[tenant] header = "X-Org"` would declare it (not the default
/// `X-Tenant-ID`, so a hard-coded default cannot pass for the configured header).
pub const TENANT: &str = "X-Org";

pub static SETTINGS: ServiceSettings = launch_env::stateless_settings("shop", "payment-service");

/// Executions per tag, across every service of the test binary (tags are unique per test).
static EXECUTIONS: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(Default::default);

/// Records one execution for `tag`, returning how many there have been.
fn executed(tag: &str) -> usize {
    let mut map = EXECUTIONS.lock().expect("executions lock");
    let count = map.entry(tag.to_owned()).or_default();
    *count += 1;
    *count
}

/// How many times a handler ran for `tag`.
pub fn executions(tag: &str) -> usize {
    EXECUTIONS
        .lock()
        .expect("executions lock")
        .get(tag)
        .copied()
        .unwrap_or(0)
}

/// A fresh suffix, so keys and tags never collide across tests or runs (Redis outlives them).
pub fn nonce() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

pub struct PaymentService;

impl Service for PaymentService {
    async fn init(_cx: &Ctx) -> Result<Self, BoxError> {
        Ok(Self)
    }
}

impl RestApi for PaymentService {
    fn routes() -> Router<Self> {
        Router::new()
            .route(
                "/payments/{tag}",
                post(create)
                    .put(create)
                    .patch(create)
                    .delete(create)
                    .get(read),
            )
            .route("/slow/{tag}/{ms}", post(slow))
            .route("/flaky/{tag}", post(flaky))
            .route("/big/{tag}", post(big))
            .route("/orders/{tag}", post(order))
            .route("/refuse/{tag}/{status}", post(refuse))
    }
}

/// An order: what `/orders/{tag}` reads with the runtime's JSON extractor.
#[derive(Debug, serde::Deserialize)]
struct Order {
    amount: u64,
}

/// 201 for a well-formed order; a malformed one never gets here (the extractor refuses it).
async fn order(
    UrlPath(tag): UrlPath<String>,
    allframe_runtime::Json(order): allframe_runtime::Json<Order>,
) -> impl IntoResponse {
    let n = executed(&tag);
    (
        StatusCode::CREATED,
        Json(json!({ "tag": tag, "execution": n, "amount": order.amount })),
    )
}

/// The handler's own refusal with `status` (409 or 422): it ran, and said no.
async fn refuse(UrlPath((tag, status)): UrlPath<(String, u16)>) -> ApiError {
    let n = executed(&tag);
    let status = StatusCode::from_u16(status).expect("a status");
    ApiError::new(status, format!("refused by the handler, execution {n}"))
}

/// 201 with a `Location`, echoing the body and saying which execution this was.
async fn create(UrlPath(tag): UrlPath<String>, body: String) -> impl IntoResponse {
    let n = executed(&tag);
    (
        StatusCode::CREATED,
        [(header::LOCATION, format!("/payments/{tag}/{n}"))],
        Json(json!({ "tag": tag, "execution": n, "echo": body })),
    )
}

async fn read(UrlPath(tag): UrlPath<String>) -> Json<Value> {
    let n = executed(&tag);
    Json(json!({ "tag": tag, "execution": n }))
}

/// Counts, then takes `ms` milliseconds.
async fn slow(UrlPath((tag, ms)): UrlPath<(String, u64)>) -> impl IntoResponse {
    let n = executed(&tag);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    (
        StatusCode::CREATED,
        Json(json!({ "tag": tag, "execution": n })),
    )
}

/// Fails with 500 on its first execution, succeeds afterwards.
async fn flaky(UrlPath(tag): UrlPath<String>) -> impl IntoResponse {
    let n = executed(&tag);
    if n == 1 {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": "upstream down" })),
        )
    } else {
        (StatusCode::OK, Json(json!({ "tag": tag, "execution": n })))
    }
}

/// Answers a 2 MiB body: larger than the 1 MiB the layer stores.
async fn big(UrlPath(tag): UrlPath<String>) -> impl IntoResponse {
    executed(&tag);
    (StatusCode::CREATED, "x".repeat(2 * 1024 * 1024))
}

/// A running service and a client for it.
pub struct Harness {
    pub running: RunningService,
    pub client: reqwest::Client,
    /// Unique to this harness: scenarios put it in their tags and keys.
    pub nonce: String,
}

/// Starts the service with idempotency on `storage` and tenancy on ([`TENANT`]), its SQLite
/// data in `dir`, plus `extra` variables (`DATABASE_URL`, `REDIS_URL`,
/// `ALLFRAME_IDEMPOTENCY_TTL_SECS`, …).
pub async fn try_start(
    storage: IdempotencyStorage,
    dir: &Path,
    extra: &[(&str, &str)],
) -> Result<RunningService, RuntimeError> {
    try_start_with(storage, dir, extra, Some(TENANT)).await
}

/// [`try_start`] with tenancy on `tenant_header`, or off (`None`).
pub async fn try_start_with(
    storage: IdempotencyStorage,
    dir: &Path,
    extra: &[(&str, &str)],
    tenant_header: Option<&'static str>,
) -> Result<RunningService, RuntimeError> {
    let launcher = Launcher::<PaymentService>::new(&SETTINGS)
        .idempotency(IdempotencySettings {
            key_header: KEY,
            ttl_hours: 24,
            storage,
        })
        .env(launch_env::test_env(dir, extra));
    match tenant_header {
        Some(header) => launcher.tenant_header(header),
        None => launcher,
    }
    .start()
    .await
}

impl Harness {
    /// Starts the service with tenancy on [`TENANT`] (see [`try_start`]).
    pub async fn start(storage: IdempotencyStorage, dir: &Path, extra: &[(&str, &str)]) -> Self {
        Self::start_with(storage, dir, extra, Some(TENANT)).await
    }

    /// Starts the service with tenancy on `tenant_header`, or off (`None`).
    pub async fn start_with(
        storage: IdempotencyStorage,
        dir: &Path,
        extra: &[(&str, &str)],
        tenant_header: Option<&'static str>,
    ) -> Self {
        let running = try_start_with(storage, dir, extra, tenant_header)
            .await
            .expect("service starts");
        Self {
            running,
            client: reqwest::Client::new(),
            nonce: nonce(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.rest_addr())
    }

    /// `name` made unique to this harness (a tag or a key).
    pub fn unique(&self, name: &str) -> String {
        format!("{name}-{}", self.nonce)
    }

    /// A POST with `key` (when given) and `body`.
    pub async fn post(&self, path: &str, key: Option<&str>, body: &str) -> Response {
        let mut request = self.client.post(self.url(path)).body(body.to_owned());
        if let Some(key) = key {
            request = request.header(KEY, key);
        }
        request.send().await.expect("request")
    }

    pub async fn stop(self) {
        let report = self.running.shutdown().await;
        assert_eq!(report.aborted_connections, 0, "{report:?}");
    }
}
