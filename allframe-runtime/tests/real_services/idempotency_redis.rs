//! Real-services suite: idempotency keys kept in Redis on 127.0.0.1:6379 (override with
//! `ALLFRAME_TEST_REDIS_URL`), through the real REST server; and a Redis that does not answer.
//! Run with `cargo test -p allframe-runtime --all-features --test real_services -- --ignored`; a missing Redis fails
//! these tests. Keys carry a per-run nonce, so runs never collide; they expire on their own.
#![cfg(all(feature = "redis", feature = "sqlite"))]

use crate::idempotency_support as support;
use allframe_runtime::__private::IdempotencyStorage;
use support::Harness;

fn redis_url() -> String {
    std::env::var("ALLFRAME_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Fails the test unless Redis answers, then starts the service with Redis-kept keys.
async fn start(dir: &tempfile::TempDir, extra: &[(&str, &str)]) -> Harness {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).expect("Redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis must be running on 127.0.0.1:6379");
    let pong: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");
    let mut pairs = vec![("REDIS_URL", url.as_str())];
    pairs.extend_from_slice(extra);
    Harness::start(IdempotencyStorage::Redis, dir.path(), &pairs).await
}

#[tokio::test]
#[ignore = "real-services: needs Redis on 127.0.0.1:6379"]
async fn redis_replays_refuses_mismatches_and_malformed_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let h = start(&dir, &[]).await;
    support::handles_every_kind_of_request(&h).await;
    h.stop().await;
}

#[tokio::test]
#[ignore = "real-services: needs Redis on 127.0.0.1:6379"]
async fn redis_two_hundred_concurrent_duplicates_run_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let h = start(&dir, &[]).await;
    support::runs_once_under_200_concurrent_duplicates(&h).await;
    h.stop().await;
}

#[tokio::test]
#[ignore = "real-services: needs Redis on 127.0.0.1:6379"]
async fn redis_keys_expire_after_the_ttl() {
    let dir = tempfile::tempdir().expect("temp dir");
    let h = start(&dir, &[("ALLFRAME_IDEMPOTENCY_TTL_SECS", "1")]).await;
    support::forgets_keys_after_the_ttl(&h).await;
    h.stop().await;
}

#[tokio::test]
#[ignore = "real-services: Redis client against a closed port on 127.0.0.1"]
async fn redis_unreachable_is_503_and_nothing_runs() {
    // A port that was just free: nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = format!("redis://127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("temp dir");
    let h = Harness::start(
        IdempotencyStorage::Redis,
        dir.path(),
        &[("REDIS_URL", &url)],
    )
    .await;
    support::refuses_with_503_when_the_store_is_down(&h).await;
    h.stop().await;
}

#[tokio::test]
#[ignore = "real-services: Redis URL checks at start-up"]
async fn a_malformed_redis_url_is_a_start_up_error_naming_the_variable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let error = support::try_start(
        IdempotencyStorage::Redis,
        dir.path(),
        &[("REDIS_URL", "http://:hunter2@cache")],
    )
    .await
    .expect_err("not a Redis URL");
    let message = error.to_string();
    assert!(message.contains("REDIS_URL"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}
