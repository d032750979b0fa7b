//! The store's lease and fence: a live lease keeps a saga from other instances, a lapsed one
//! lets another take it over, and from then on the former owner's writes are refused.

use super::SagaStatus;
use super::store::{self, Fence, NewSaga, WriteError};
use crate::database::{Database, DatabaseTarget};

const SAGA: &str = "CreateOrderSaga";

fn fence(id: &str, epoch: i64) -> Fence {
    Fence {
        id: id.to_owned(),
        epoch,
        lease_ms: 60_000,
    }
}

async fn db() -> Database {
    let target = DatabaseTarget::parse("sqlite::memory:").expect("target");
    let db = Database::connect(&target).await.expect("in-memory sqlite");
    store::install(&db).await.expect("tables");
    store::install(&db)
        .await
        .expect("installing twice is harmless");
    db
}

async fn new_saga(db: &Database, id: &str, owner: &str, lease_until: i64) {
    store::insert(
        db,
        &NewSaga {
            id,
            saga: SAGA,
            input: "{}",
            owner,
            lease_until,
            deadline: store::now() + 60_000,
        },
    )
    .await
    .expect("insert");
}

async fn set(db: &Database, fence: &Fence, status: SagaStatus) -> Result<(), WriteError> {
    let mut tx = db.begin_write().await.expect("tx");
    store::set_state(&mut tx, fence, status, 1, None).await?;
    tx.commit().await.expect("commit");
    Ok(())
}

#[tokio::test]
async fn a_live_lease_keeps_a_saga_and_a_lapsed_one_is_taken_over_and_fences_its_former_owner() {
    let db = db().await;
    let live = store::now() + 60_000;
    new_saga(&db, "s1", "a", live).await;
    assert_eq!(
        store::claim(&db, SAGA, "s1", "b", live)
            .await
            .expect("claim"),
        None
    );
    assert!(
        store::claimable(&db, SAGA, 10)
            .await
            .expect("list")
            .is_empty()
    );

    new_saga(&db, "s2", "a", store::now() - 1).await;
    assert_eq!(store::claimable(&db, SAGA, 10).await.expect("list"), ["s2"]);
    let epoch = store::claim(&db, SAGA, "s2", "b", live)
        .await
        .expect("claim");
    assert_eq!(epoch, Some(2));

    // `a` was paused past its lease; it wakes up and writes with the epoch it had.
    let stale = fence("s2", 1);
    let refused = set(&db, &stale, SagaStatus::Completed).await;
    assert!(matches!(refused, Err(WriteError::Fenced(1))), "{refused:?}");
    assert!(!store::renew_one(&db, &stale).await.expect("renew"));
    let current = fence("s2", 2);
    assert!(store::renew_one(&db, &current).await.expect("renew"));
    set(&db, &current, SagaStatus::Compensating)
        .await
        .expect("the new owner writes");
    let saga = store::get(&db, "s2").await.expect("get").expect("stored");
    assert_eq!(saga.status, SagaStatus::Compensating);
    assert_eq!(saga.owner.as_deref(), Some("b"));

    // At shutdown `b` gives its leases up: anyone may claim them at once.
    assert_eq!(store::release(&db, "b").await.expect("release"), 1);
    assert!(
        store::claimable(&db, SAGA, 10)
            .await
            .expect("list")
            .contains(&"s2".to_owned())
    );
    assert_eq!(
        store::claim(&db, SAGA, "s2", "c", live)
            .await
            .expect("claim"),
        Some(3)
    );
}

#[tokio::test]
async fn a_finished_saga_is_never_claimed_and_only_a_stuck_one_is_retried() {
    let db = db().await;
    new_saga(&db, "s", "a", store::now() - 1).await;
    set(&db, &fence("s", 1), SagaStatus::Completed)
        .await
        .expect("done");
    assert_eq!(
        store::claim(&db, SAGA, "s", "b", store::now() + 1_000)
            .await
            .expect("claim"),
        None
    );
    let error = store::retry(&db, "s").await.expect_err("completed");
    assert!(
        error.to_string().contains("completed, not stuck"),
        "{error}"
    );
    let error = store::retry(&db, "other").await.expect_err("unknown");
    assert!(
        error.to_string().contains("no saga has the id `other`"),
        "{error}"
    );
}

#[tokio::test]
async fn every_fenced_write_extends_the_lease_and_other_sagas_are_never_claimed() {
    let db = db().await;
    // A lease that lapsed a moment ago, then a write of its owner: live again.
    new_saga(&db, "s", "a", store::now() - 1).await;
    let mut tx = db.begin_write().await.expect("tx");
    store::check_fence(&mut tx, &fence("s", 1))
        .await
        .expect("fenced");
    tx.commit().await.expect("commit");
    assert!(
        store::claimable(&db, SAGA, 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store::claim(&db, SAGA, "s", "b", store::now())
            .await
            .expect("claim"),
        None
    );

    // Another saga's rows are not this orchestrator's, whatever their lease.
    assert!(
        store::claimable(&db, "OtherSaga", 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store::claim(&db, "OtherSaga", "s", "b", store::now())
            .await
            .expect("claim"),
        None
    );
}

#[tokio::test]
async fn a_released_lease_is_claimable_at_once_and_only_by_its_epoch() {
    let db = db().await;
    new_saga(&db, "s", "a", store::now() + 60_000).await;
    store::release_one(&db, &fence("s", 7))
        .await
        .expect("release");
    assert!(
        store::claimable(&db, SAGA, 10)
            .await
            .expect("list")
            .is_empty(),
        "not its epoch"
    );
    store::release_one(&db, &fence("s", 1))
        .await
        .expect("release");
    assert_eq!(store::claimable(&db, SAGA, 10).await.expect("list"), ["s"]);
}
