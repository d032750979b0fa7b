//! Cache hit latency: `Cache::get` of a cached value on the embedded engine and on Redis,
//! beside the floor each cannot go below in the same run (a bare moka get + JSON decode of the
//! same bytes; a bare Redis `GET` of the same key on the same kind of connection).
//!
//! `cargo bench -p allframe-runtime --bench cache` (embedded only), or with
//! `--features redis` to add the Redis rows (`ALLFRAME_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`) when Redis answers. `ALLFRAME_BENCH_SCALE=0.1` shortens the run.
//!
//! Sequential latency is one caller awaiting one get at a time (p50/p99 over every call);
//! ops/s is [`CONCURRENCY`] callers on the multi-threaded runtime.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use allframe_runtime::BoxError;
use allframe_runtime::cache::{Cache, CacheEngine, CacheSettings, CacheSource, WriteStrategy};
use serde::{Deserialize, Serialize};

/// Concurrent callers in the ops/s column.
const CONCURRENCY: usize = 16;
/// The key every row reads.
const KEY: &str = "sku-42";

/// A typical small catalogue entry (about 150 bytes of JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Product {
    sku: String,
    name: String,
    price_cents: u64,
    currency: String,
    tags: Vec<String>,
    in_stock: bool,
}

fn product() -> Product {
    Product {
        sku: KEY.to_owned(),
        name: "Stainless steel water bottle, 750 ml".to_owned(),
        price_cents: 2_499,
        currency: "EUR".to_owned(),
        tags: vec!["outdoor".to_owned(), "kitchen".to_owned()],
        in_stock: true,
    }
}

/// The source behind the cache: a constant (only hits are measured).
struct Catalogue;

impl CacheSource for Catalogue {
    type Value = Product;

    async fn load(&self, _key: &str) -> Result<Option<Product>, BoxError> {
        Ok(Some(product()))
    }
}

struct Figures {
    p50_us: f64,
    p99_us: f64,
    ops: f64,
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn scaled(iterations: usize) -> usize {
    let scale: f64 = std::env::var("ALLFRAME_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((iterations as f64 * scale) as usize).max(CONCURRENCY * 10)
}

/// Runs `call` sequentially `iterations` times (after a warm-up), then from [`CONCURRENCY`]
/// workers sharing `iterations` calls.
async fn measure<F, Fut>(iterations: usize, call: F) -> Figures
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    for _ in 0..iterations.div_ceil(10) {
        call().await;
    }
    let mut latencies = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        call().await;
        latencies.push(started.elapsed());
    }
    latencies.sort_unstable();
    let at = |q: f64| micros(latencies[((iterations as f64 * q) as usize).min(iterations - 1)]);

    let share = iterations / CONCURRENCY;
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let call = call.clone();
        workers.spawn(async move {
            for _ in 0..share {
                call().await;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("worker");
    }
    Figures {
        p50_us: at(0.50),
        p99_us: at(0.99),
        ops: (share * CONCURRENCY) as f64 / started.elapsed().as_secs_f64(),
    }
}

fn row(name: &str, figures: &Figures) {
    println!(
        "| {name:<46} | {:>9.2} | {:>9.2} | {:>12.0} |",
        figures.p50_us, figures.p99_us, figures.ops
    );
}

/// `Cache::get` of a cached key on `engine`.
async fn cache_hits(engine: &CacheEngine, namespace: String, iterations: usize) -> Figures {
    let settings = CacheSettings {
        strategy: WriteStrategy::CacheAside,
        ttl: Duration::from_secs(600),
        ..CacheSettings::new(namespace)
    };
    let cache = Cache::open(Catalogue, settings, engine, None)
        .await
        .expect("cache");
    cache.get(KEY).await.expect("first get loads");
    measure(iterations, move || {
        let cache = cache.clone();
        async move {
            let value = cache.get(KEY).await.expect("get");
            assert!(value.is_some());
        }
    })
    .await
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
    let run = format!("bench-{}-{nanos}", std::process::id());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let json = serde_json::to_vec(&product()).expect("json");

    println!("# cache hit latency (allframe-runtime)");
    println!();
    println!("reproduce: cargo bench -p allframe-runtime --bench cache [--features redis]");
    println!(
        "{cores} cores; a {}-byte JSON value; sequential latency in µs; ops/s with \
         {CONCURRENCY} concurrent callers",
        json.len()
    );
    println!();
    println!(
        "| {:<46} | {:>9} | {:>9} | {:>12} |",
        "variant", "p50 µs", "p99 µs", "ops/s"
    );
    println!("|{:-<48}|{:-<11}|{:-<11}|{:-<14}|", "", "", "", "");

    let fast = scaled(200_000);
    let bare: moka::sync::Cache<String, std::sync::Arc<[u8]>> =
        moka::sync::Cache::builder().max_capacity(1_000).build();
    bare.insert(KEY.to_owned(), json.clone().into());
    let bare_get = move || {
        let bare = bare.clone();
        async move {
            let bytes = bare.get(KEY).expect("cached");
            let _: Product = serde_json::from_slice(&bytes).expect("json");
        }
    };
    // Warm the allocator and the runtime's threads before the first figure.
    measure(fast, bare_get.clone()).await;
    let limit = measure(fast, bare_get).await;
    row("embedded limit: moka get + JSON decode", &limit);
    let embedded = cache_hits(&CacheEngine::embedded(), format!("{run}-embedded"), fast).await;
    row("embedded: Cache::get hit", &embedded);

    #[cfg(feature = "redis")]
    redis(&run, &json).await;
}

#[cfg(feature = "redis")]
async fn redis(run: &str, json: &[u8]) {
    use redis::aio::ConnectionManager;
    let url = std::env::var("ALLFRAME_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let engine = CacheEngine::redis(&url).expect("Redis URL");
    if engine.ping().await.is_err() {
        println!("| redis: skipped, nothing answers at ALLFRAME_TEST_REDIS_URL |");
        return;
    }
    let iterations = scaled(20_000);
    let client = redis::Client::open(url.as_str()).expect("Redis URL");
    let connection = ConnectionManager::new(client).await.expect("connect");
    let key = format!("{run}-bare");
    let mut setter = connection.clone();
    redis::cmd("SET")
        .arg(&key)
        .arg(json)
        .arg("EX")
        .arg(600)
        .query_async::<()>(&mut setter)
        .await
        .expect("SET");
    let limit = measure(iterations, move || {
        let mut connection = connection.clone();
        let key = key.clone();
        async move {
            let bytes: Vec<u8> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut connection)
                .await
                .expect("GET");
            let _: Product = serde_json::from_slice(&bytes).expect("json");
        }
    })
    .await;
    row("redis limit: bare GET + JSON decode (loopback)", &limit);
    let hits = cache_hits(&engine, format!("{run}-redis"), iterations).await;
    row("redis: Cache::get hit (loopback)", &hits);
}
