//! Real-services suite: `allframe::cache` on Redis at 127.0.0.1:6379 (override with
//! `ALLFRAME_TEST_REDIS_URL`), the write-behind table in PostgreSQL (a schema of the test's
//! own): the shared cache scenarios (`cache_support`) the default suite runs on the embedded
//! engine. Run with `cargo test -p allframe-runtime --all-features --test real_services cache
//! -- --ignored`; a missing Redis or PostgreSQL fails these tests. Namespaces carry a per-run
//! nonce, so runs never collide; entries expire on their own.
#![cfg(all(feature = "redis", feature = "postgres", feature = "testing"))]

#[path = "../cache_support/mod.rs"]
mod cache_support;

use allframe_runtime::cache::CacheEngine;
use allframe_runtime::testing::PgSchema;
use cache_support::Fixture;

fn redis_url() -> String {
    std::env::var("ALLFRAME_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A fixture on Redis and a PostgreSQL schema of its own; fails unless both answer.
async fn on_redis(tag: &str) -> (Fixture, PgSchema) {
    let engine = CacheEngine::redis(&redis_url()).expect("Redis URL");
    engine
        .ping()
        .await
        .expect("Redis must be running on 127.0.0.1:6379");
    assert_eq!(engine.name(), "redis");
    let schema = PgSchema::create(tag).await;
    let fixture = Fixture {
        engine,
        db: schema.connect().await,
        namespace: format!("product-cache-{tag}-{}", cache_support::nonce()),
        shared: true,
    };
    (fixture, schema)
}

async fn done(f: Fixture, schema: PgSchema) {
    f.db.close().await;
    schema.remove().await;
}

#[tokio::test]
#[ignore = "real-services: needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432"]
async fn redis_cache_hits_misses_and_expires_after_the_ttl() {
    let (f, schema) = on_redis("cache_ttl").await;
    cache_support::hits_misses_and_expires_after_the_ttl(&f).await;
    done(f, schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real-services: needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432"]
async fn redis_cache_concurrent_misses_load_once() {
    let (f, schema) = on_redis("cache_stampede").await;
    cache_support::concurrent_misses_load_once(&f).await;
    done(f, schema).await;
}

#[tokio::test]
#[ignore = "real-services: needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432"]
async fn redis_cache_none_is_not_cached() {
    let (f, schema) = on_redis("cache_none").await;
    cache_support::none_is_not_cached(&f).await;
    done(f, schema).await;
}

#[tokio::test]
#[ignore = "real-services: needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432"]
async fn redis_cache_write_through_stores_then_serves() {
    let (f, schema) = on_redis("cache_through").await;
    cache_support::write_through_stores_then_serves(&f).await;
    done(f, schema).await;
}

#[tokio::test]
#[ignore = "real-services: needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432"]
async fn redis_cache_aside_stores_and_evicts() {
    let (f, schema) = on_redis("cache_aside").await;
    cache_support::cache_aside_stores_and_evicts(&f).await;
    done(f, schema).await;
}

#[tokio::test]
#[ignore = "real-services: needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432"]
async fn redis_cache_eviction_is_idempotent() {
    let (f, schema) = on_redis("cache_evict").await;
    cache_support::eviction_is_idempotent(&f).await;
    done(f, schema).await;
}

#[tokio::test]
#[ignore = "real-services: needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432"]
async fn redis_cache_write_behind_serves_at_once_and_stores_coalesced_batches() {
    let (f, schema) = on_redis("cache_behind").await;
    cache_support::write_behind_serves_at_once_and_stores_coalesced_batches(&f).await;
    done(f, schema).await;
}

#[tokio::test]
#[ignore = "real-services: needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432"]
async fn redis_cache_write_behind_loses_nothing_when_dropped_mid_flush() {
    let (f, schema) = on_redis("cache_crash").await;
    cache_support::write_behind_loses_nothing_when_dropped_mid_flush(&f).await;
    done(f, schema).await;
}

#[tokio::test]
#[ignore = "real-services: needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432"]
async fn redis_cache_write_behind_failing_store_keeps_rows_and_retries() {
    let (f, schema) = on_redis("cache_retry").await;
    cache_support::write_behind_failing_store_keeps_rows_and_retries(&f).await;
    done(f, schema).await;
}

#[tokio::test]
#[ignore = "real-services: needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432"]
async fn redis_caches_of_one_namespace_share_entries() {
    let (f, schema) = on_redis("cache_shared").await;
    cache_support::two_caches_share_entries_only_on_a_shared_engine(&f).await;
    done(f, schema).await;
}

#[tokio::test]
#[ignore = "real-services: needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432"]
async fn redis_cache_keys_are_namespaced_json() {
    use cache_support::Recorder;
    let (f, schema) = on_redis("cache_keys").await;
    let source = Recorder::default();
    let cache = f
        .open(
            source,
            f.settings(allframe_runtime::cache::WriteStrategy::WriteThrough),
        )
        .await;
    cache
        .put("sku-1", cache_support::source::product("sku-1", 5))
        .await
        .expect("put");
    let client = redis::Client::open(redis_url()).expect("Redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis");
    let key = format!("{}:cache:sku-1", f.namespace);
    let raw: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .expect("GET");
    assert_eq!(raw, r#"{"sku":"sku-1","price":5}"#);
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .expect("PTTL");
    assert!(ttl_ms > 3_500_000 && ttl_ms <= 3_600_000, "{ttl_ms}");
    done(f, schema).await;
}
