//! The event store on SQLite (the scenarios of `messaging_support::eventstore`, each in a
//! database file of its own).
#![cfg(feature = "sqlite")]

use crate::messaging_support::{eventstore, sqlite_db};

macro_rules! on_sqlite {
    ($($scenario:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $scenario() {
            let temp = tempfile::tempdir().expect("temp dir");
            let db = sqlite_db(temp.path(), "events.db").await;
            eventstore::$scenario(&db).await;
        }
    )*};
}

on_sqlite!(
    streams_are_read_back_in_order,
    one_of_sixteen_concurrent_appends_wins,
    a_conflict_writes_nothing,
    positions_follow_commit_order,
    appends_reach_the_bus_only_through_the_outbox,
    long_streams_are_read_in_pages,
    snapshots_are_read_with_their_schema_only,
);
