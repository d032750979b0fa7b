//! Real-services suite: idempotency keys kept in PostgreSQL (the service's own database) on
//! 127.0.0.1:5432, through the real REST server. Run with
//! `cargo test -p allframe-runtime --all-features -- --ignored`; a missing PostgreSQL fails
//! these tests. Each test works in a fresh schema (through `search_path`), dropped at the end.
#![cfg(feature = "postgres")]

mod idempotency_support;

use std::time::{SystemTime, UNIX_EPOCH};

use allframe_runtime::__private::IdempotencyStorage;
use allframe_runtime::database::{Backend, Database, DatabaseTarget};
use allframe_runtime::sqlx;
use idempotency_support as support;
use support::Harness;

/// The server under test; `ALLFRAME_TEST_POSTGRES_URL` may point elsewhere (no query string).
fn base_url() -> String {
    std::env::var("ALLFRAME_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema of its own for one test, and the URL that uses it.
struct Scratch {
    admin: Database,
    schema: String,
    url: String,
    dir: tempfile::TempDir,
}

impl Scratch {
    async fn new(tag: &str) -> Self {
        let base = base_url();
        let admin_target = DatabaseTarget::parse(&base).expect("postgres URL");
        let admin = Database::connect(&admin_target)
            .await
            .expect("PostgreSQL must be running on 127.0.0.1:5432 (trust auth, database `test`)");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        let schema = format!("allframe_idem_{tag}_{}_{nanos}", std::process::id());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(admin.pool())
            .await
            .expect("create schema");
        let url = format!("{base}?options=-c%20search_path%3D{schema}");
        Self {
            admin,
            schema,
            url,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Starts the service on this schema with PostgreSQL-kept keys.
    async fn start(&self, extra: &[(&str, &str)]) -> Harness {
        let mut pairs = vec![("DATABASE_URL", self.url.as_str())];
        pairs.extend_from_slice(extra);
        let harness = Harness::start(IdempotencyStorage::Postgres, self.dir.path(), &pairs).await;
        assert_eq!(harness.running.ctx().db().backend(), Backend::Postgres);
        harness
    }

    async fn drop(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.schema
        )))
        .execute(self.admin.pool())
        .await
        .expect("drop schema");
        self.admin.close().await;
    }
}

#[tokio::test]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn postgres_replays_refuses_mismatches_and_malformed_keys() {
    let scratch = Scratch::new("replay").await;
    let h = scratch.start(&[]).await;
    support::replays_the_first_response(&h).await;
    support::passes_through_without_a_key_or_for_safe_methods(&h).await;
    support::refuses_a_key_reused_for_another_request(&h).await;
    support::refuses_malformed_keys(&h).await;
    support::answers_409_while_the_first_is_in_flight(&h).await;
    support::releases_the_key_after_a_5xx(&h).await;
    support::scopes_keys_per_tenant(&h).await;
    support::releases_the_key_of_a_rejected_request(&h).await;
    support::stores_the_handlers_own_refusals(&h).await;
    support::handles_large_bodies(&h).await;
    let in_schema: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
    )
    .bind(scratch.schema.clone())
    .bind("allframe_idempotency")
    .fetch_one(scratch.admin.pool())
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
