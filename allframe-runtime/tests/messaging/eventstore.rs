//! The event store and projections on SQLite (the scenarios of `messaging_support::eventstore`
//! and `::projections`, each in a database file of its own).
#![cfg(feature = "sqlite")]

use crate::messaging_support::{eventstore, projections, sqlite_db};

macro_rules! on_sqlite {
    ($($module:ident::$scenario:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $scenario() {
            let temp = tempfile::tempdir().expect("temp dir");
            let db = sqlite_db(temp.path(), "events.db").await;
            $module::$scenario(&db).await;
        }
    )*};
}

on_sqlite!(
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
async fn a_projection_process_killed_mid_catch_up_applies_each_event_once() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "events.db").await;
    let url = format!(
        "sqlite://{}?mode=rwc",
        temp.path().join("events.db").display()
    );
    projections::a_projection_process_killed_mid_catch_up_applies_each_event_once(&db, &url).await;
}
