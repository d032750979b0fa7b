//! The outbox's SQLite layout: pending rows found by per-partition watermarks (no index of
//! pending rows for a commit to write), partitions without traffic not holding the search
//! back, batches marked by their watermarks alone (no row rewritten), pruning bounded by the
//! watermarks, and tables of the earlier layout upgraded in place without losing or repeating
//! a row.
#![cfg(feature = "sqlite")]

use allframe_runtime::Database;
use allframe_runtime::messaging::{OutboxSettings, outbox};
use allframe_runtime::sqlx;

use crate::messaging_support::*;

async fn lowest_watermark(db: &Database) -> i64 {
    sqlx::query_scalar("SELECT MIN(published_through) FROM allframe_outbox_partitions")
        .fetch_one(db.pool())
        .await
        .expect("watermarks")
}

async fn newest_seq(db: &Database) -> i64 {
    sqlx::query_scalar("SELECT MAX(seq) FROM allframe_outbox")
        .fetch_one(db.pool())
        .await
        .expect("seq")
}

#[tokio::test]
async fn partitions_without_rows_are_raised_past_what_was_published() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "ledger.db").await;
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(&db, &bus);
    let relay = messaging.relay(OutboxSettings::DEFAULT);

    // One aggregate: one partition of 64 gets rows. The claim that finds nothing left raises
    // every watermark, so that the next search for pending rows starts after the published
    // ones instead of at the first row ever written.
    deposit(&messaging, "acct-0", 0, 5).await;
    assert_eq!(relay.drain().await.expect("drain"), 5);
    assert_eq!(lowest_watermark(&db).await, newest_seq(&db).await);

    let backlog = outbox::backlog(&db).await.expect("backlog");
    assert_eq!(backlog.pending, 0);
    deposit(&messaging, "acct-1", 0, 2).await;
    assert_eq!(outbox::backlog(&db).await.expect("backlog").pending, 2);
    assert_eq!(relay.drain().await.expect("drain"), 2);
    assert_complete_and_ordered(&decode_all(&bus.seen().await)[5..], 1, 2);
}

#[tokio::test]
async fn published_batches_leave_their_rows_untouched_and_pruning_follows_the_watermarks() {
    let temp = tempfile::tempdir().expect("temp dir");
    let db = sqlite_db(temp.path(), "ledger.db").await;
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(&db, &bus);
    write_interleaved(&messaging, 4, 3).await;
    let relay = messaging.relay(OutboxSettings::DEFAULT);
    assert_eq!(relay.drain().await.expect("drain"), 12);
    let marked: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM allframe_outbox WHERE published_at IS NOT NULL")
            .fetch_one(db.pool())
            .await
            .expect("marks");
    assert_eq!(marked, 0, "the watermarks are the marks: no row rewritten");
    assert_eq!(unpublished(&db).await, 0);
    assert_eq!(relay.drain().await.expect("again"), 0, "nothing twice");

    // Published rows written within the retention are kept; older ones go, but never a
    // row above the lowest watermark (here: pending ones).
    let kept = outbox::prune(&db, std::time::Duration::from_secs(3600))
        .await
        .expect("prune");
    assert_eq!(kept, 0, "all written within the hour");
    deposit(&messaging, "acct-9", 0, 2).await;
    assert_eq!(
        outbox::prune(&db, std::time::Duration::ZERO)
            .await
            .expect("prune"),
        12,
        "the published rows, not the two pending ones"
    );
    assert_eq!(outbox_rows(&db).await, 2);
    assert_eq!(relay.drain().await.expect("drain"), 2);
}

#[tokio::test]
async fn a_failed_claim_on_a_database_in_memory_keeps_its_data() {
    let target = allframe_runtime::database::DatabaseTarget::parse("sqlite::memory:")
        .expect("sqlite target");
    let db = Database::connect(&target).await.expect("connects");
    prepare(&db).await;
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(&db, &bus);
    deposit(&messaging, "acct-0", 0, 1).await;
    // The claim's first read fails.
    sqlx::query("ALTER TABLE allframe_outbox_partitions RENAME TO moved")
        .execute(db.pool())
        .await
        .expect("rename");
    let relay = messaging.relay(OutboxSettings::DEFAULT);
    assert!(relay.run_once().await.is_err());
    assert_eq!(
        outbox_rows(&db).await,
        1,
        "the one connection holding the data was not closed"
    );
}

/// The tables as versions up to 0.1 made them: a partial index of pending rows and no
/// watermarks.
const EARLIER_LAYOUT: [&str; 5] = [
    "CREATE TABLE allframe_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
        partition_no BIGINT NOT NULL, topic TEXT NOT NULL, event_type TEXT NOT NULL,
        aggregate_type TEXT NOT NULL, aggregate_id TEXT NOT NULL, headers TEXT NOT NULL,
        payload BLOB NOT NULL, created_at BIGINT NOT NULL, published_at BIGINT,
        attempts BIGINT NOT NULL DEFAULT 0, last_error TEXT)",
    "CREATE INDEX allframe_outbox_pending
        ON allframe_outbox (partition_no, seq) WHERE published_at IS NULL",
    "CREATE INDEX allframe_outbox_published
        ON allframe_outbox (published_at) WHERE published_at IS NOT NULL",
    "CREATE TABLE allframe_outbox_partitions (
        partition_no BIGINT PRIMARY KEY, lease_owner TEXT, lease_until BIGINT NOT NULL DEFAULT 0)",
    "WITH RECURSIVE n(p) AS (SELECT 0 UNION ALL SELECT p + 1 FROM n WHERE p < 63)
     INSERT INTO allframe_outbox_partitions (partition_no) SELECT p FROM n",
];

#[tokio::test]
async fn tables_of_the_earlier_layout_are_upgraded_and_publish_exactly_the_unpublished_rows() {
    let temp = tempfile::tempdir().expect("temp dir");
    let path = temp.path().join("ledger.db");
    let target = allframe_runtime::database::DatabaseTarget::parse(&format!(
        "sqlite://{}?mode=rwc",
        path.display()
    ))
    .expect("sqlite target");
    let db = Database::connect(&target).await.expect("connects");
    for statement in EARLIER_LAYOUT {
        sqlx::query(statement)
            .execute(db.pool())
            .await
            .expect("earlier layout");
    }
    sqlx::query("CREATE TABLE accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL)")
        .execute(db.pool())
        .await
        .expect("accounts");
    let bus = RecordingBus::new();
    let messaging = outbox_messaging(&db, &bus);
    // Three aggregates, interleaved; the earlier relay had published acct-0's first three
    // and all of acct-1's.
    write_interleaved(&messaging, 3, 5).await;
    sqlx::query(
        "UPDATE allframe_outbox SET published_at = 1 WHERE aggregate_id = 'acct-1'
            OR seq IN (SELECT seq FROM allframe_outbox WHERE aggregate_id = 'acct-0'
                       ORDER BY seq LIMIT 3)",
    )
    .execute(db.pool())
    .await
    .expect("earlier marks");

    outbox::install(&db).await.expect("upgrade");
    outbox::install(&db)
        .await
        .expect("a second install changes nothing");
    let index: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master
         WHERE name IN ('allframe_outbox_pending', 'allframe_outbox_published')",
    )
    .fetch_one(db.pool())
    .await
    .expect("schema");
    assert_eq!(
        index, 0,
        "the indexes of pending and of published rows are dropped"
    );
    assert_eq!(outbox::backlog(&db).await.expect("backlog").pending, 7);

    let relay = messaging.relay(OutboxSettings::DEFAULT);
    assert_eq!(relay.drain().await.expect("drain"), 7);
    let seen: Vec<(String, u64)> = decode_all(&bus.seen().await)
        .into_iter()
        .map(|d| (d.account, d.n))
        .collect();
    let mut expected: Vec<(String, u64)> = Vec::new();
    for n in 0..5 {
        if n >= 3 {
            expected.push(("acct-0".into(), n));
        }
        expected.push(("acct-2".into(), n));
    }
    assert_eq!(
        seen, expected,
        "the unpublished rows, once, in commit order"
    );
    assert_eq!(unpublished(&db).await, 0);
}
