//! Real-services suite: idempotency keys kept in PostgreSQL (the service's own database) on
//! 127.0.0.1:5432, through the real REST server. Run with
//! `cargo test -p allframe-runtime --all-features --test real_services -- --ignored`; a missing PostgreSQL fails
//! these tests. Each test works in a fresh schema (through `search_path`), dropped at the end.
#![cfg(all(feature = "postgres", feature = "testing"))]

use crate::idempotency_support as support;
use allframe_runtime::__private::IdempotencyStorage;
use allframe_runtime::database::Backend;
use allframe_runtime::sqlx;
use allframe_runtime::testing::PgSchema;
use support::Harness;

/// A schema of its own for one test, and a data directory for the service.
struct Scratch {
    schema: PgSchema,
    dir: tempfile::TempDir,
}

impl Scratch {
    async fn new(tag: &str) -> Self {
        Self {
            schema: PgSchema::create(&format!("idem_{tag}")).await,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Starts the service on this schema with PostgreSQL-kept keys.
    async fn start(&self, extra: &[(&str, &str)]) -> Harness {
        let mut pairs = vec![("DATABASE_URL", self.schema.url())];
        pairs.extend_from_slice(extra);
        let harness = Harness::start(IdempotencyStorage::Postgres, self.dir.path(), &pairs).await;
        assert_eq!(harness.running.ctx().db().backend(), Backend::Postgres);
        harness
    }

    async fn drop(self) {
        self.schema.remove().await;
    }
}

#[tokio::test]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn postgres_replays_refuses_mismatches_and_malformed_keys() {
    let scratch = Scratch::new("replay").await;
    let h = scratch.start(&[]).await;
    support::handles_every_kind_of_request(&h).await;
    let in_schema: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
    )
    .bind(scratch.schema.name().to_owned())
    .bind("allframe_idempotency")
    .fetch_one(scratch.schema.admin().pool())
    .await
    .expect("catalog");
    assert_eq!(
        in_schema, 1,
        "the table was created in the service database"
    );
    h.stop().await;
    scratch.drop().await;
}

#[tokio::test]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn postgres_two_hundred_concurrent_duplicates_run_once() {
    let scratch = Scratch::new("concurrent").await;
    let h = scratch.start(&[]).await;
    support::runs_once_under_200_concurrent_duplicates(&h).await;
    h.stop().await;
    scratch.drop().await;
}

#[tokio::test]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn postgres_keys_expire_after_the_ttl() {
    let scratch = Scratch::new("ttl").await;
    let h = scratch
        .start(&[("ALLFRAME_IDEMPOTENCY_TTL_SECS", "1")])
        .await;
    support::forgets_keys_after_the_ttl(&h).await;
    h.stop().await;
    scratch.drop().await;
}

#[tokio::test]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn postgres_down_is_503_and_nothing_runs() {
    let scratch = Scratch::new("down").await;
    let h = scratch.start(&[]).await;
    h.running.ctx().db().close().await;
    support::refuses_with_503_when_the_store_is_down(&h).await;
    h.stop().await;
    scratch.drop().await;
}

#[tokio::test]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn concurrent_start_ups_create_the_table_once() {
    let scratch = Scratch::new("ddl").await;
    let (a, b, c) = tokio::join!(scratch.start(&[]), scratch.start(&[]), scratch.start(&[]));
    for h in [a, b, c] {
        h.stop().await;
    }
    scratch.drop().await;
}
