//! The event store and projections on PostgreSQL at 127.0.0.1:5432: the scenarios of
//! `messaging_support::eventstore` and `::projections`, each in a scratch schema of its own.
#![cfg(all(feature = "postgres", feature = "testing"))]

use crate::messaging_support::{eventstore, prepare, projections};
use allframe_runtime::testing::PgSchema;

macro_rules! on_postgres {
    ($($module:ident::$scenario:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
        async fn $scenario() {
            let schema = PgSchema::create(concat!("es_", stringify!($scenario))).await;
            let db = schema.connect().await;
            prepare(&db).await;
            $module::$scenario(&db).await;
            schema.remove().await;
        }
    )*};
}

on_postgres!(
    eventstore::streams_are_read_back_in_order,
    eventstore::one_of_sixteen_concurrent_appends_wins,
    eventstore::a_conflict_writes_nothing,
    eventstore::positions_follow_commit_order,
    eventstore::appends_reach_the_bus_only_through_the_outbox,
    eventstore::long_streams_are_read_in_pages,
    eventstore::snapshots_are_read_with_their_schema_only,
    projections::a_projection_resumes_from_its_checkpoint_applying_each_event_once,
    projections::a_rebuild_serves_the_old_version_until_the_new_one_caught_up,
    projections::a_committed_append_wakes_the_projection_runner,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
async fn a_projection_process_killed_mid_catch_up_applies_each_event_once() {
    let schema = PgSchema::create("es_projection_process").await;
    let db = schema.connect().await;
    prepare(&db).await;
    projections::a_projection_process_killed_mid_catch_up_applies_each_event_once(
        &db,
        schema.url(),
    )
    .await;
    schema.remove().await;
}
