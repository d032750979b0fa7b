//! The event store on PostgreSQL at 127.0.0.1:5432: the scenarios of
//! `messaging_support::eventstore`, each in a scratch schema of its own.
#![cfg(all(feature = "postgres", feature = "testing"))]

use crate::messaging_support::{eventstore, prepare};
use allframe_runtime::testing::PgSchema;

macro_rules! on_postgres {
    ($($scenario:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "real-services: needs PostgreSQL on 127.0.0.1:5432"]
        async fn $scenario() {
            let schema = PgSchema::create(concat!("es_", stringify!($scenario))).await;
            let db = schema.connect().await;
            prepare(&db).await;
            eventstore::$scenario(&db).await;
            schema.remove().await;
        }
    )*};
}

on_postgres!(
    streams_are_read_back_in_order,
    one_of_sixteen_concurrent_appends_wins,
    a_conflict_writes_nothing,
    positions_follow_commit_order,
    appends_reach_the_bus_only_through_the_outbox,
    long_streams_are_read_in_pages,
    snapshots_are_read_with_their_schema_only,
);
