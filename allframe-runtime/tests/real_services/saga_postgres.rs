//! Saga orchestrator processes on PostgreSQL: killed with SIGKILL at every fail point and
//! restarted, and paused past their lease then refused by the fencing epoch (see
//! `tests/saga_support`). Each case works in a scratch schema of its own.
#![cfg(all(feature = "postgres", feature = "testing", feature = "failpoints"))]

use allframe_runtime::testing::PgSchema;

use crate::saga_support::{self, Store};

async fn postgres(case: String) -> Store {
    let schema = PgSchema::create(&format!("saga_{}", case.replace('-', "_"))).await;
    Store {
        vars: vec![("DATABASE_URL".to_owned(), schema.url().to_owned())],
        remove: Box::new(move || Box::pin(schema.remove())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn an_orchestrator_killed_at_any_point_resumes_on_postgres_and_applies_no_step_twice() {
    saga_support::every_crash_resumes(postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn a_paused_orchestrator_is_fenced_after_a_takeover_on_postgres() {
    saga_support::a_paused_orchestrator_is_fenced_after_a_takeover(postgres("paused".into()).await)
        .await;
}
