//! The idempotency layer's per-request overhead, beside the same in-process service without it.
//!
//! `cargo bench -p allframe-runtime --bench idempotency` (SQLite only), or with
//! `--features postgres,redis` to add PostgreSQL (`ALLFRAME_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`) and Redis (`ALLFRAME_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`) rows when they answer. `ALLFRAME_BENCH_SCALE=0.1` shortens the run.
//!
//! Every row drives one axum router in-process with `tower::ServiceExt::oneshot` (no sockets),
//! so the difference between rows is the layer and its store. Each store also gets a "limit"
//! row: its claim + complete calls made directly, without HTTP, which is the floor the layer's
//! cost on that store cannot go below.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use allframe_runtime::Database;
use allframe_runtime::axum::Router;
use allframe_runtime::axum::body::Body;
use allframe_runtime::axum::http::{Request, StatusCode, header};
use allframe_runtime::axum::response::IntoResponse;
use allframe_runtime::axum::routing::post;
use allframe_runtime::database::DatabaseTarget;
use allframe_runtime::idempotency::Clock as _;
use allframe_runtime::idempotency::fingerprint::Fingerprint;
use allframe_runtime::idempotency::store::{Begin, Claim, Lock};
use allframe_runtime::idempotency::{
    IdempotencyConfig, IdempotencyLayer, IdempotencyStore, SqlStore, StoredResponse, SystemClock,
};
use tower::ServiceExt as _;

const BODY: &str = r#"{"amount":1250,"currency":"EUR","customer":"cus_42"}"#;
/// Concurrent requests in the throughput columns.
const CONCURRENCY: usize = 16;

/// The handler under test: a small JSON 201 with a `Location`, like a typical create.
async fn create(body: String) -> impl IntoResponse {
    (
        StatusCode::CREATED,
        [(header::LOCATION, "/payments/1")],
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"id":1,"request_bytes":{}}}"#, body.len()),
    )
}

fn service() -> Router {
    Router::new().route("/payments", post(create))
}

/// Which key each request carries.
#[derive(Clone, Copy)]
enum Keys {
    None,
    /// A new key per request: claim, run, store.
    Fresh,
    /// One key for every request: replay from the store.
    Same,
}

struct Figures {
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
    rps: f64,
}

fn request(keys: Keys, run: &str, n: usize) -> Request<Body> {
    let mut builder = Request::post("/payments").header(header::CONTENT_TYPE, "application/json");
    match keys {
        Keys::None => {}
        Keys::Fresh => builder = builder.header("Idempotency-Key", format!("{run}-{n}")),
        Keys::Same => builder = builder.header("Idempotency-Key", format!("{run}-same")),
    }
    builder.body(Body::from(BODY)).expect("request")
}

async fn drive(router: &Router, keys: Keys, run: &str, iterations: usize) -> Figures {
    // Warm up (and, for `Same`, store the response that is then replayed).
    for n in 0..iterations.div_ceil(20) {
        let response = router
            .clone()
            .oneshot(request(keys, &format!("{run}-warm"), n))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let mut latencies = Vec::with_capacity(iterations);
    for n in 0..iterations {
        let started = Instant::now();
        send(router, request(keys, &format!("{run}-seq"), n)).await;
        latencies.push(started.elapsed());
    }
    let (router, run) = (router.clone(), run.to_owned());
    let rps = concurrently(iterations, move |worker, n| {
        let router = router.clone();
        let request = request(keys, &format!("{run}-par{worker}"), n);
        async move { send(&router, request).await }
    })
    .await;
    figures(&mut latencies, rps)
}

async fn send(router: &Router, request: Request<Body>) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let _ = allframe_runtime::axum::body::to_bytes(response.into_body(), usize::MAX).await;
}

/// Runs `iterations` calls of `call(worker, n)` from [`CONCURRENCY`] workers; returns calls/s.
async fn concurrently<F, Fut>(iterations: usize, call: F) -> f64
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let share = iterations / CONCURRENCY;
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENCY {
        let call = call.clone();
        workers.spawn(async move {
            for n in 0..share {
                call(worker, n).await;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("worker");
    }
    (share * CONCURRENCY) as f64 / started.elapsed().as_secs_f64()
}

/// One claim + complete on the store directly (the layer's minimum work for a new key).
async fn claim_and_complete(store: &dyn IdempotencyStore, id: &str) {
    let fingerprint = Fingerprint::from_stored("0".repeat(64));
    let response = StoredResponse {
        status: 201,
        headers: vec![("location".into(), "/payments/1".into())],
        body: Some(r#"{"id":1}"#.as_bytes().into()),
    };
    let owner = format!("owner-{id}");
    let claim = Claim {
        id,
        fingerprint: &fingerprint,
        owner: &owner,
        now_ms: SystemClock.now_ms(),
        lease: Duration::from_secs(60),
    };
    assert_eq!(store.begin(claim).await.expect("begin"), Begin::Started);
    let lock = Lock { id, owner: &owner };
    let ttl = Duration::from_secs(300);
    let stored = store.complete(lock, &response, SystemClock.now_ms(), ttl);
    assert!(stored.await.expect("complete"));
}

/// The store alone, measured like [`drive`]: sequential latency, then concurrent throughput.
async fn store_limit(store: Arc<dyn IdempotencyStore>, run: &str, iterations: usize) -> Figures {
    let mut latencies = Vec::with_capacity(iterations);
    for n in 0..iterations {
        let started = Instant::now();
        claim_and_complete(store.as_ref(), &format!("bench:{run}:seq:{n}")).await;
        latencies.push(started.elapsed());
    }
    let run = run.to_owned();
    let rps = concurrently(iterations, move |worker, n| {
        let store = Arc::clone(&store);
        let id = format!("bench:{run}:par{worker}:{n}");
        async move { claim_and_complete(store.as_ref(), &id).await }
    })
    .await;
    figures(&mut latencies, rps)
}

/// Mean, p50 and p99 of `latencies` with the throughput.
fn figures(latencies: &mut [Duration], rps: f64) -> Figures {
    latencies.sort_unstable();
    let n = latencies.len();
    let mean = latencies.iter().sum::<Duration>() / u32::try_from(n).expect("fits");
    let at = |q: f64| micros(latencies[((n as f64 * q) as usize).min(n - 1)]);
    Figures {
        mean_us: micros(mean),
        p50_us: at(0.50),
        p99_us: at(0.99),
        rps,
    }
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn row(name: &str, figures: &Figures, baseline: &Figures) {
    println!(
        "| {name:<52} | {:>9.1} | {:>9.1} | {:>9.1} | {:>+9.1} | {:>10.0} |",
        figures.mean_us,
        figures.p50_us,
        figures.p99_us,
        figures.p50_us - baseline.p50_us,
        figures.rps
    );
}

fn scaled(iterations: usize) -> usize {
    let scale: f64 = std::env::var("ALLFRAME_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((iterations as f64 * scale) as usize).max(CONCURRENCY * 10)
}

fn layer(store: Arc<dyn IdempotencyStore>) -> IdempotencyLayer {
    let mut config = IdempotencyConfig::new("bench", "Idempotency-Key").expect("config");
    // Long enough for the run; short so a shared Redis does not keep the bench's keys.
    config.ttl = Duration::from_secs(300);
    IdempotencyLayer::new(store, config)
}

/// Runs the three layer rows and the limit row for one store.
async fn bench_store(
    label: &str,
    store: Arc<dyn IdempotencyStore>,
    run: &str,
    iterations: usize,
    baseline: &Figures,
) {
    let router = service().layer(layer(Arc::clone(&store)));
    let fresh = drive(&router, Keys::Fresh, &format!("{run}-fresh"), iterations).await;
    row(
        &format!("{label}: new key (claim + run + store)"),
        &fresh,
        baseline,
    );
    let same = drive(&router, Keys::Same, &format!("{run}-same"), iterations).await;
    row(&format!("{label}: same key (replay)"), &same, baseline);
    let limit = store_limit(store, &format!("{run}-limit"), iterations).await;
    row(
        &format!("{label} limit: claim + complete, no HTTP"),
        &limit,
        baseline,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async_main());
}

async fn async_main() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let run = format!("{}-{nanos}", std::process::id());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    println!("# idempotency layer overhead (allframe-runtime)");
    println!();
    println!(
        "reproduce: cargo bench -p allframe-runtime --bench idempotency [--features postgres,redis]"
    );
    println!(
        "in-process axum router driven by tower oneshot (no sockets); {cores} cores; \
         sequential latency in µs (Δp50: minus the baseline's p50); req/s with {CONCURRENCY} \
         concurrent callers"
    );
    println!();
    println!(
        "| {:<52} | {:>9} | {:>9} | {:>9} | {:>9} | {:>10} |",
        "variant", "mean µs", "p50 µs", "p99 µs", "Δp50 µs", "req/s"
    );
    println!(
        "|{:-<54}|{:-<11}|{:-<11}|{:-<11}|{:-<11}|{:-<12}|",
        "", "", "", "", "", ""
    );

    let fast = scaled(20_000);
    // Warm the allocator, the runtime's threads and the caches before the first figure.
    drive(&service(), Keys::None, &format!("{run}-warmup"), fast).await;
    let baseline = drive(&service(), Keys::None, &run, fast).await;
    row("baseline: same service, no layer", &baseline, &baseline);

    let dir = tempfile::tempdir().expect("temp dir");
    let target = DatabaseTarget::default_sqlite(dir.path(), "bench").expect("sqlite target");
    let sqlite = Database::connect(&target).await.expect("sqlite");
    let sqlite_store: Arc<dyn IdempotencyStore> =
        Arc::new(SqlStore::open(&sqlite).await.expect("sqlite store"));
    let passthrough = drive(
        &service().layer(layer(Arc::clone(&sqlite_store))),
        Keys::None,
        &run,
        fast,
    )
    .await;
    row("layer on, request without a key", &passthrough, &baseline);
    bench_store(
        "sqlite (WAL file)",
        sqlite_store,
        &run,
        scaled(3_000),
        &baseline,
    )
    .await;
    sqlite.close().await;

    #[cfg(feature = "postgres")]
    postgres(&run, &baseline).await;
    #[cfg(feature = "redis")]
    redis(&run, &baseline).await;
}

#[cfg(feature = "postgres")]
async fn postgres(run: &str, baseline: &Figures) {
    use allframe_runtime::sqlx;
    let base = std::env::var("ALLFRAME_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let Ok(target) = DatabaseTarget::parse(&base) else {
        println!("| postgres: skipped, ALLFRAME_TEST_POSTGRES_URL is not a PostgreSQL URL |");
        return;
    };
    let Ok(admin) = Database::connect(&target).await else {
        println!("| postgres: skipped, nothing answers at {target} |");
        return;
    };
    let schema = format!("allframe_bench_{}", run.replace('-', "_"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(admin.pool())
        .await
        .expect("create schema");
    let url = format!("{base}?options=-c%20search_path%3D{schema}");
    let db = Database::connect(&DatabaseTarget::parse(&url).expect("target"))
        .await
        .expect("connect");
    let store: Arc<dyn IdempotencyStore> = Arc::new(SqlStore::open(&db).await.expect("store"));
    bench_store("postgres (loopback)", store, run, scaled(3_000), baseline).await;
    db.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(admin.pool())
        .await
        .expect("drop schema");
    admin.close().await;
}

#[cfg(feature = "redis")]
async fn redis(run: &str, baseline: &Figures) {
    use allframe_runtime::idempotency::RedisStore;
    let url = std::env::var("ALLFRAME_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let store = RedisStore::new(&url).expect("Redis URL");
    if store.ping().await.is_err() {
        println!("| redis: skipped, nothing answers at ALLFRAME_TEST_REDIS_URL |");
        return;
    }
    bench_store(
        "redis (loopback)",
        Arc::new(store),
        run,
        scaled(3_000),
        baseline,
    )
    .await;
}
