//! The event store's behaviour on one database, run on SQLite by the messaging binary and on
//! PostgreSQL by the real-services suite: streams in order, concurrent appends at one version,
//! positions in commit order, the outbox in the append's transaction, paged reads, snapshots.

use std::time::Duration;

use allframe_runtime::Database;
use allframe_runtime::eventstore::{
    EventStore, EventStoreError, ExpectedVersion, NewEvent, RecordedEvent, StreamId,
};
use allframe_runtime::messaging::{Messaging, OutboxSettings};
use futures_util::TryStreamExt as _;
use serde_json::json;

use super::{RecordingBus, outbox_messaging, outbox_rows};

fn event(n: u64) -> NewEvent {
    NewEvent {
        event_type: "Counted".into(),
        schema_version: 1,
        payload: json!({ "n": n }),
    }
}

fn stream(id: &str) -> StreamId {
    StreamId::new("Counter", id)
}

async fn store_on(db: &Database) -> (EventStore, Messaging, RecordingBus) {
    let store = EventStore::open(db).await.expect("the store opens");
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(db, &bus);
    (store, messaging, bus)
}

/// Appends `events` to `stream` at `expected` and commits.
async fn append(
    store: &EventStore,
    messaging: &Messaging,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<u64, EventStoreError> {
    let mut uow = messaging.begin().await.expect("begin");
    let version = store.append(&mut uow, stream, expected, events).await?;
    uow.commit().await.expect("commit");
    Ok(version)
}

async fn all(store: &EventStore) -> Vec<RecordedEvent> {
    store.read_all(0).try_collect().await.expect("read all")
}

async fn of(store: &EventStore, stream: &StreamId, after: u64) -> Vec<RecordedEvent> {
    store
        .read_stream(stream, after)
        .try_collect()
        .await
        .expect("read the stream")
}

/// Streams are numbered from 1 and read back in order, alone or all together by position.
pub async fn streams_are_read_back_in_order(db: &Database) {
    let (store, messaging, _) = store_on(db).await;
    let (a, b) = (stream("a"), stream("b"));
    let first = [event(1), event(2), event(3)];
    assert_eq!(
        append(&store, &messaging, &a, ExpectedVersion::NoStream, &first)
            .await
            .expect("a"),
        3
    );
    append(
        &store,
        &messaging,
        &b,
        ExpectedVersion::NoStream,
        &[event(10)],
    )
    .await
    .expect("b");
    append(
        &store,
        &messaging,
        &a,
        ExpectedVersion::Exactly(3),
        &[event(4)],
    )
    .await
    .expect("a4");

    let versions: Vec<u64> = of(&store, &a, 0).await.iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 2, 3, 4]);
    let later: Vec<serde_json::Value> = of(&store, &a, 2)
        .await
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(later, [json!({"n": 3}), json!({"n": 4})]);
    let everything = all(&store).await;
    let order: Vec<(String, u64)> = everything
        .iter()
        .map(|e| (e.aggregate_id.clone(), e.version))
        .collect();
    let expected = [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("a", 4)];
    let expected: Vec<(String, u64)> = expected
        .iter()
        .map(|(s, v)| ((*s).to_owned(), *v))
        .collect();
    assert_eq!(order, expected, "commit order");
    assert!(everything.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(store.version(&a).await.expect("version"), 4);
    assert_eq!(store.version(&stream("none")).await.expect("version"), 0);
}

/// Sixteen appends at one version at once: exactly one is stored, the others conflict with
/// the version it left, and wrote nothing.
pub async fn one_of_sixteen_concurrent_appends_wins(db: &Database) {
    let (store, messaging, _) = store_on(db).await;
    let s = stream("contended");
    append(
        &store,
        &messaging,
        &s,
        ExpectedVersion::NoStream,
        &[event(0)],
    )
    .await
    .expect("seed");
    let tasks: Vec<_> = (1..=16)
        .map(|n| {
            let (store, messaging, s) = (store.clone(), messaging.clone(), s.clone());
            tokio::spawn(async move {
                append(
                    &store,
                    &messaging,
                    &s,
                    ExpectedVersion::Exactly(1),
                    &[event(n)],
                )
                .await
            })
        })
        .collect();
    let (mut won, mut conflicts) = (0, 0);
    for task in tasks {
        match task.await.expect("the task ends") {
            Ok(version) => {
                assert_eq!(version, 2);
                won += 1;
            }
            Err(EventStoreError::Conflict {
                actual, expected, ..
            }) => {
                assert_eq!((actual, expected), (2, ExpectedVersion::Exactly(1)));
                conflicts += 1;
            }
            Err(other) => panic!("neither stored nor a conflict: {other}"),
        }
    }
    assert_eq!((won, conflicts), (1, 15));
    assert_eq!(of(&store, &s, 0).await.len(), 2, "the seed and the winner");
    assert_eq!(
        outbox_rows(db).await,
        2,
        "no outbox row for a conflicting append"
    );
}

/// A conflicting append writes nothing even when its unit of work is committed anyway, and
/// the next append's position follows the last stored.
pub async fn a_conflict_writes_nothing(db: &Database) {
    let (store, messaging, _) = store_on(db).await;
    let s = stream("c");
    append(
        &store,
        &messaging,
        &s,
        ExpectedVersion::NoStream,
        &[event(1)],
    )
    .await
    .expect("first");
    let mut uow = messaging.begin().await.expect("begin");
    let refused = store
        .append(&mut uow, &s, ExpectedVersion::NoStream, &[event(2)])
        .await;
    assert!(
        matches!(refused, Err(EventStoreError::Conflict { actual: 1, .. })),
        "{refused:?}"
    );
    uow.commit().await.expect("commit what else it holds");
    append(
        &store,
        &messaging,
        &s,
        ExpectedVersion::Exactly(1),
        &[event(3)],
    )
    .await
    .expect("next");
    let stored = all(&store).await;
    let payloads: Vec<&serde_json::Value> = stored.iter().map(|e| &e.payload).collect();
    assert_eq!(payloads, [&json!({"n": 1}), &json!({"n": 3})]);
    assert_eq!(
        stored[1].position,
        stored[0].position + 1,
        "no position lost to the conflict"
    );
}

/// An append holding a position commits last, after a later append started: the later one
/// waits for it, so it takes the higher position, and a reader never sees the higher
/// position without the lower.
pub async fn positions_follow_commit_order(db: &Database) {
    let (store, messaging, _) = store_on(db).await;
    let mut first = messaging.begin().await.expect("begin");
    store
        .append(
            &mut first,
            &stream("early"),
            ExpectedVersion::Any,
            &[event(1)],
        )
        .await
        .expect("the first append");
    let later = {
        let (store, messaging) = (store.clone(), messaging.clone());
        tokio::spawn(async move {
            append(
                &store,
                &messaging,
                &stream("late"),
                ExpectedVersion::Any,
                &[event(2)],
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !later.is_finished(),
        "the later append waits for the first to end"
    );
    assert!(
        all(&store).await.is_empty(),
        "nothing is visible before a commit"
    );
    first.commit().await.expect("the first commits");
    later.await.expect("the task").expect("the later append");
    let stored = all(&store).await;
    let order: Vec<&str> = stored.iter().map(|e| e.aggregate_id.as_str()).collect();
    assert_eq!(order, ["early", "late"]);
    assert!(stored[0].position < stored[1].position);
}

/// Appended events go into the outbox in the append's transaction, under the stored event's
/// id: a rollback leaves neither, a commit both, and the relay publishes them.
pub async fn appends_reach_the_bus_only_through_the_outbox(db: &Database) {
    let (store, messaging, bus) = store_on(db).await;
    let s = stream("o");
    let mut uow = messaging.begin().await.expect("begin");
    store
        .append(&mut uow, &s, ExpectedVersion::NoStream, &[event(1)])
        .await
        .expect("append");
    uow.rollback().await.expect("rollback");
    assert!(all(&store).await.is_empty());
    assert_eq!(outbox_rows(db).await, 0);

    append(
        &store,
        &messaging,
        &s,
        ExpectedVersion::NoStream,
        &[event(1), event(2)],
    )
    .await
    .expect("append");
    assert_eq!(outbox_rows(db).await, 2);
    assert!(
        bus.seen().await.is_empty(),
        "nothing reaches the bus before the relay"
    );
    messaging
        .relay(OutboxSettings::DEFAULT)
        .drain()
        .await
        .expect("relay");
    let seen = bus.seen().await;
    let stored = all(&store).await;
    let ids: Vec<String> = seen
        .iter()
        .map(|m| m.envelope.id.hyphenated().to_string())
        .collect();
    let stored_ids: Vec<String> = stored.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(
        ids, stored_ids,
        "the envelope carries the stored event's id"
    );
    let first = &seen[0].envelope;
    assert_eq!(
        (first.event_type.as_str(), first.aggregate_type.as_str()),
        ("Counted", "Counter")
    );
    assert_eq!(first.aggregate_id, "o");
    assert_eq!(first.correlation_id, stored[0].correlation_id);
}

/// A stream longer than a page is read whole, in order, a page at a time.
pub async fn long_streams_are_read_in_pages(db: &Database) {
    let (store, messaging, _) = store_on(db).await;
    let s = stream("long");
    let count = 2 * allframe_runtime::eventstore::PAGE as u64 + 3;
    let events: Vec<NewEvent> = (1..=count).map(event).collect();
    append(&store, &messaging, &s, ExpectedVersion::NoStream, &events)
        .await
        .expect("append");
    let read = of(&store, &s, 0).await;
    assert_eq!(read.len() as u64, count);
    assert!(read.iter().zip(1..).all(|(e, v)| e.version == v));
    assert_eq!(all(&store).await.len() as u64, count);
}

/// A snapshot is read back with its schema only; an older one never replaces a newer of the
/// same schema, and one of another schema replaces it.
pub async fn snapshots_are_read_with_their_schema_only(db: &Database) {
    let (store, messaging, _) = store_on(db).await;
    let s = stream("snap");
    let save = |version: u64, schema: u32, state: serde_json::Value| {
        let (store, messaging, s) = (store.clone(), messaging.clone(), s.clone());
        async move {
            let mut uow = messaging.begin().await.expect("begin");
            store
                .save_snapshot(&mut uow, &s, version, schema, &state)
                .await
                .expect("save");
            uow.commit().await.expect("commit");
        }
    };
    assert_eq!(store.load_snapshot(&s, 1).await.expect("load"), None);
    save(3, 1, json!({"total": 6})).await;
    save(2, 1, json!({"total": 3})).await;
    let loaded = store
        .load_snapshot(&s, 1)
        .await
        .expect("load")
        .expect("a snapshot");
    assert_eq!((loaded.version, loaded.state), (3, json!({"total": 6})));
    assert_eq!(
        store.load_snapshot(&s, 2).await.expect("load"),
        None,
        "another schema"
    );
    save(1, 2, json!({"sum": 1})).await;
    assert_eq!(store.load_snapshot(&s, 1).await.expect("load"), None);
    let loaded = store
        .load_snapshot(&s, 2)
        .await
        .expect("load")
        .expect("a snapshot");
    assert_eq!(loaded.version, 1);
}
