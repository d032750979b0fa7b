//! The unit of work on SQLite: state and events commit together; rollback, an error or a drop
//! publishes nothing; envelopes carry the context; the `direct` pattern publishes after commit.
#![cfg(feature = "sqlite")]

use crate::messaging_support::*;
use allframe_runtime::messaging::{
    EventBus, EventContext, Messaging, MessagingError, OutboxSettings, PublishPattern,
};
use allframe_runtime::sqlx;

#[tokio::test]
async fn commit_writes_state_and_events_together() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "uow.db").await;
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(&db, &bus);

    deposit(&messaging, "alice", 0, 3).await;
    assert_eq!(balance(&db, "alice").await, Some(3));
    assert_eq!(
        outbox_rows(&db).await,
        3,
        "three outbox rows in the same commit"
    );
    assert_eq!(
        bus.seen().await.len(),
        0,
        "nothing reaches the bus before the relay runs"
    );

    let relay = messaging.relay(OutboxSettings::DEFAULT);
    assert_eq!(relay.drain().await.expect("relay"), 3);
    let seen = bus.seen().await;
    assert_eq!(
        decode_all(&seen).iter().map(|e| e.n).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    let first = &seen[0].envelope;
    assert_eq!(seen[0].topic, TOPIC);
    assert_eq!(first.event_type, "Deposited");
    assert_eq!(first.schema_version, 1);
    assert_eq!(first.aggregate_type, "Account");
    assert_eq!(first.aggregate_id, "alice");
    assert_eq!(first.source, "ledger-service");
    assert_eq!(first.id.get_version_num(), 7, "ids are UUIDv7");
    assert!(
        seen.iter()
            .all(|m| m.envelope.correlation_id == first.correlation_id),
        "one unit of work shares one correlation id"
    );
    assert_eq!(unpublished(&db).await, 0);
    db.close().await;
}

#[tokio::test]
async fn rollback_error_and_drop_publish_nothing() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "uow.db").await;
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(&db, &bus);

    // Explicit rollback.
    let mut uow = messaging.begin().await.expect("begin");
    open_account(&mut uow, "bob", 10).await;
    uow.publish(deposited("bob", 0)).expect("publish");
    uow.rollback().await.expect("rollback");

    // Dropped without commit (a handler that returned early).
    {
        let mut uow = messaging.begin().await.expect("begin");
        open_account(&mut uow, "bob", 20).await;
        uow.publish(deposited("bob", 1)).expect("publish");
    }

    // A failing statement after publishing: the handler's `?` drops the unit of work.
    async fn failing_handler(messaging: &Messaging) -> Result<(), MessagingError> {
        let mut uow = messaging.begin().await?;
        uow.publish(deposited("bob", 2))?;
        sqlx::query("INSERT INTO no_such_table (x) VALUES (1)")
            .execute(uow.conn())
            .await?;
        uow.commit().await
    }
    let error = failing_handler(&messaging)
        .await
        .expect_err("statement fails");
    assert!(matches!(error, MessagingError::Database(_)), "{error}");

    assert_eq!(balance(&db, "bob").await, None, "no state change survived");
    assert_eq!(outbox_rows(&db).await, 0, "no outbox row survived");
    let relay = messaging.relay(OutboxSettings::DEFAULT);
    assert_eq!(relay.drain().await.expect("relay"), 0);
    assert!(bus.seen().await.is_empty(), "nothing was published");

    // The database is not left locked: a later unit of work commits.
    deposit(&messaging, "bob", 0, 1).await;
    assert_eq!(relay.drain().await.expect("relay"), 1);
    db.close().await;
}

#[tokio::test]
async fn envelopes_carry_the_event_context() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "uow.db").await;
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(&db, &bus);
    let context = EventContext {
        correlation_id: Some("corr-42".into()),
        causation_id: Some("cmd-7".into()),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        tracestate: Some("vendor=1".into()),
        tenant_id: Some("acme".into()),
    };
    let mut uow = messaging.begin_with(context.clone()).await.expect("begin");
    assert_eq!(uow.correlation_id(), "corr-42");
    let id = uow.publish(deposited("carol", 0)).expect("publish");
    assert_eq!(uow.events().len(), 1);
    uow.commit().await.expect("commit");
    messaging
        .relay(OutboxSettings::DEFAULT)
        .drain()
        .await
        .expect("relay");
    let seen = bus.seen().await;
    let envelope = &seen[0].envelope;
    assert_eq!(envelope.id, id);
    assert_eq!(envelope.correlation_id, "corr-42");
    assert_eq!(envelope.causation_id.as_deref(), Some("cmd-7"));
    assert_eq!(envelope.traceparent, context.traceparent);
    assert_eq!(envelope.tracestate.as_deref(), Some("vendor=1"));
    assert_eq!(envelope.tenant_id.as_deref(), Some("acme"));

    // Events caused by handling a message continue its correlation and trace.
    let follow_up = EventContext::caused_by(envelope);
    assert_eq!(follow_up.causation_id, Some(id.hyphenated().to_string()));
    assert_eq!(follow_up.correlation_id.as_deref(), Some("corr-42"));
    db.close().await;
}

#[tokio::test]
async fn direct_pattern_publishes_after_commit_only() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "uow.db").await;
    let bus = RecordingBus::new();
    let messaging = messaging_on(&db, EventBus::custom(bus.clone()), PublishPattern::Direct);

    let mut uow = messaging.begin().await.expect("begin");
    uow.publish(deposited("dan", 0)).expect("publish");
    drop(uow);
    assert!(
        bus.seen().await.is_empty(),
        "a dropped unit of work publishes nothing"
    );

    deposit(&messaging, "dan", 0, 2).await;
    assert_eq!(bus.seen().await.len(), 2, "published right after commit");
    assert_eq!(outbox_rows(&db).await, 0, "no outbox involved");

    bus.set_fault(Fault::FailCalls(1));
    let mut uow = messaging.begin().await.expect("begin");
    uow.publish(deposited("dan", 2)).expect("publish");
    let error = uow.commit().await.expect_err("bus down");
    assert!(
        matches!(error, MessagingError::DirectPublish { events: 1, .. }),
        "{error}"
    );
    db.close().await;
}

#[tokio::test]
async fn the_outbox_is_created_once_and_a_missing_one_fails_the_commit() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "uow.db").await;
    // Installing again (a second instance starting) is harmless.
    allframe_runtime::messaging::outbox::install(&db)
        .await
        .expect("idempotent install");
    sqlx::query("DROP TABLE allframe_outbox")
        .execute(db.pool())
        .await
        .expect("drop");
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(&db, &bus);
    let mut uow = messaging.begin().await.expect("begin");
    open_account(&mut uow, "erin", 1).await;
    uow.publish(deposited("erin", 0)).expect("publish");
    assert!(
        uow.commit().await.is_err(),
        "no outbox table: the commit fails"
    );
    assert_eq!(
        balance(&db, "erin").await,
        None,
        "…and the state change with it"
    );
    db.close().await;
}
