//! `allframe::cache` on the embedded engine, with the write-behind table in a SQLite file:
//! the shared cache scenarios (`cache_support`), which the real-services suite runs on Redis.
#![cfg(feature = "sqlite")]

#[path = "../cache_support/mod.rs"]
mod cache_support;

use allframe_runtime::Database;
use allframe_runtime::cache::CacheEngine;
use allframe_runtime::database::DatabaseTarget;
use cache_support::Fixture;

/// A fixture on the embedded engine and its own SQLite file (kept while the test runs).
async fn embedded() -> (Fixture, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = DatabaseTarget::default_sqlite(dir.path(), "product-cache").expect("target");
    let db = Database::connect(&target).await.expect("sqlite");
    let fixture = Fixture {
        engine: CacheEngine::embedded(),
        db,
        namespace: format!("product-cache-{}", cache_support::nonce()),
        shared: false,
    };
    (fixture, dir)
}

#[tokio::test]
async fn cache_hits_misses_and_expires_after_the_ttl() {
    let (f, _dir) = embedded().await;
    cache_support::hits_misses_and_expires_after_the_ttl(&f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_concurrent_misses_load_once() {
    let (f, _dir) = embedded().await;
    cache_support::concurrent_misses_load_once(&f).await;
}

#[tokio::test]
async fn cache_none_is_not_cached() {
    let (f, _dir) = embedded().await;
    cache_support::none_is_not_cached(&f).await;
}

#[tokio::test]
async fn cache_write_through_stores_then_serves() {
    let (f, _dir) = embedded().await;
    cache_support::write_through_stores_then_serves(&f).await;
}

#[tokio::test]
async fn cache_aside_stores_and_evicts() {
    let (f, _dir) = embedded().await;
    cache_support::cache_aside_stores_and_evicts(&f).await;
}

#[tokio::test]
async fn cache_eviction_is_idempotent() {
    let (f, _dir) = embedded().await;
    cache_support::eviction_is_idempotent(&f).await;
}

#[tokio::test]
async fn cache_write_behind_serves_at_once_and_stores_coalesced_batches() {
    let (f, _dir) = embedded().await;
    cache_support::write_behind_serves_at_once_and_stores_coalesced_batches(&f).await;
}

#[tokio::test]
async fn cache_write_behind_loses_nothing_when_dropped_mid_flush() {
    let (f, _dir) = embedded().await;
    cache_support::write_behind_loses_nothing_when_dropped_mid_flush(&f).await;
}

#[tokio::test]
async fn cache_write_behind_failing_store_keeps_rows_and_retries() {
    let (f, _dir) = embedded().await;
    cache_support::write_behind_failing_store_keeps_rows_and_retries(&f).await;
}

#[tokio::test]
async fn cache_embedded_caches_are_independent() {
    let (f, _dir) = embedded().await;
    cache_support::two_caches_share_entries_only_on_a_shared_engine(&f).await;
}

#[tokio::test]
async fn cache_write_behind_without_a_database_is_refused() {
    use allframe_runtime::cache::{Cache, CacheError, CacheSettings, WriteStrategy};
    let settings = CacheSettings {
        strategy: WriteStrategy::WriteBehind,
        ..CacheSettings::new("product-cache")
    };
    let error = Cache::open(
        cache_support::Recorder::default(),
        settings,
        &CacheEngine::embedded(),
        None,
    )
    .await
    .expect_err("write-behind needs the service database");
    assert!(
        matches!(error, CacheError::WriteBehindNeedsDatabase),
        "{error}"
    );
}
