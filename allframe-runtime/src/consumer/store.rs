//! The consumer's tables in the service's own database: the inbox (events handled, per
//! consumer group), the attempt counts of events that failed, and the dead letters (and the
//! partition leases of [`super::partitions`], and the channel outbox of
//! [`crate::channel::outbox`]).
//!
//! All three live beside the handler's own tables, so that a handler's state change and the
//! inbox row marking its event handled commit in one transaction, and a dead letter is a row
//! an operator can list, replay or purge the same way whichever bus carried it.

use std::time::{Duration, SystemTime};

use sqlx::AnyConnection;
use tokio_util::sync::CancellationToken;

use crate::database::{Backend, Database};
use crate::messaging::envelope::unix_millis;

/// The inbox table: one row per (consumer group, event id) handled.
pub const INBOX_TABLE: &str = "allframe_inbox";
/// The attempt counts of events whose handling failed and will be retried.
pub const ATTEMPTS_TABLE: &str = "allframe_consumer_attempts";
/// The dead letter table.
pub const DEAD_LETTER_TABLE: &str = "allframe_dead_letters";

/// Serialises the creation of the tables on PostgreSQL. An arbitrary constant ("allfinbx").
const INSTALL_LOCK_KEY: i64 = 0x616c_6c66_696e_6278;

const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS allframe_inbox (
        consumer_group TEXT NOT NULL,
        event_id TEXT NOT NULL,
        handled_at BIGINT NOT NULL,
        PRIMARY KEY (consumer_group, event_id)
    )",
    "CREATE INDEX IF NOT EXISTS allframe_inbox_handled ON allframe_inbox (handled_at)",
    "CREATE TABLE IF NOT EXISTS allframe_consumer_attempts (
        consumer_group TEXT NOT NULL,
        event_id TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        first_failed_at BIGINT NOT NULL,
        last_failed_at BIGINT NOT NULL,
        last_error TEXT NOT NULL,
        PRIMARY KEY (consumer_group, event_id)
    )",
    // `{payload}` is BLOB or BYTEA, `{id}` the engine's identity column.
    "CREATE TABLE IF NOT EXISTS allframe_dead_letters (
        id {id},
        consumer_group TEXT NOT NULL,
        event_id TEXT NOT NULL,
        topic TEXT NOT NULL,
        event_type TEXT,
        reason TEXT NOT NULL,
        error TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        first_failed_at BIGINT NOT NULL,
        last_failed_at BIGINT NOT NULL,
        headers TEXT NOT NULL,
        payload {payload} NOT NULL,
        UNIQUE (consumer_group, event_id)
    )",
];

/// Creates the tables if missing (idempotent; safe when several instances start at once).
pub async fn install(db: &Database) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_install(INSTALL_LOCK_KEY).await?;
    let (id, payload) = match db.backend() {
        Backend::Postgres => ("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BYTEA"),
        Backend::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"),
    };
    let tables = SCHEMA
        .iter()
        .chain(&super::partitions::SCHEMA)
        .chain(&crate::channel::outbox::SCHEMA);
    for statement in tables {
        let statement = statement.replace("{id}", id).replace("{payload}", payload);
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Marks `event_id` handled by `group`, in the handler's transaction. `false` when it already
/// was: the event is a duplicate and the transaction must roll back. On PostgreSQL a
/// concurrent transaction marking the same event waits for this one and then finds the row.
pub(crate) async fn mark_handled(
    conn: &mut AnyConnection,
    group: &str,
    event_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO allframe_inbox (consumer_group, event_id, handled_at) VALUES ($1, $2, $3)
         ON CONFLICT (consumer_group, event_id) DO NOTHING",
    )
    .bind(group)
    .bind(event_id)
    .bind(unix_millis(SystemTime::now()))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether `group` has failed attempts on record (read at the start of a group: when there are
/// none, the events it handles have no counts to forget).
pub(crate) async fn attempts_exist(
    conn: &mut AnyConnection,
    group: &str,
) -> Result<bool, sqlx::Error> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM allframe_consumer_attempts WHERE consumer_group = $1 LIMIT 1",
    )
    .bind(group)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// Forgets the failures of `event_id`, in the transaction that handled it.
pub(crate) async fn clear_attempts(
    conn: &mut AnyConnection,
    group: &str,
    event_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM allframe_consumer_attempts WHERE consumer_group = $1 AND event_id = $2",
    )
    .bind(group)
    .bind(event_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The failures of one event so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempts {
    /// Failed attempts, this one included.
    pub failures: u32,
    /// When the first one failed (Unix ms).
    pub first_failed_at: i64,
    /// When the last one failed (Unix ms).
    pub last_failed_at: i64,
}

/// Records a failed attempt at `event_id`; returns the count, this one included. Stored, so
/// that a consumer restarted mid-retry (or a bus that does not count deliveries) goes on
/// counting.
pub(crate) async fn record_failure(
    conn: &mut AnyConnection,
    group: &str,
    event_id: &str,
    error: &str,
) -> Result<Attempts, sqlx::Error> {
    let now = unix_millis(SystemTime::now());
    let (failures, first_failed_at): (i64, i64) = sqlx::query_as(
        "INSERT INTO allframe_consumer_attempts
            (consumer_group, event_id, attempts, first_failed_at, last_failed_at, last_error)
         VALUES ($1, $2, 1, $3, $3, $4)
         ON CONFLICT (consumer_group, event_id) DO UPDATE SET
            attempts = allframe_consumer_attempts.attempts + 1,
            last_failed_at = excluded.last_failed_at,
            last_error = excluded.last_error
         RETURNING attempts, first_failed_at",
    )
    .bind(group)
    .bind(event_id)
    .bind(now)
    .bind(truncate(error))
    .fetch_one(conn)
    .await?;
    Ok(Attempts {
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        first_failed_at,
        last_failed_at: now,
    })
}

/// Why a message was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The handler failed on every attempt.
    Handler,
    /// The message could not be read (not an envelope, bad JSON, an unknown event type):
    /// retrying cannot help.
    Poison,
}

impl Reason {
    /// The name stored in the `reason` column.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Handler => "handler",
            Self::Poison => "poison",
        }
    }

    fn parse(text: &str) -> Self {
        if text == "poison" {
            Self::Poison
        } else {
            Self::Handler
        }
    }
}

/// A message parked in the dead letter table: what an operator lists and replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id in the table.
    pub id: i64,
    /// The consumer group that gave up on it.
    pub group: String,
    /// The event id (the envelope's `ce-id`).
    pub event_id: String,
    /// The topic it came from.
    pub topic: String,
    /// The event type, when the message could be read that far.
    pub event_type: Option<String>,
    /// Why it was parked.
    pub reason: Reason,
    /// The last error.
    pub error: String,
    /// Failed attempts.
    pub attempts: u32,
    /// When the first attempt failed (Unix ms).
    pub first_failed_at: i64,
    /// When the last attempt failed (Unix ms).
    pub last_failed_at: i64,
    /// The original headers, as a JSON object of strings.
    pub headers: String,
    /// The original payload bytes.
    pub payload: Vec<u8>,
}

/// Parks a message, replacing an earlier dead letter of the same event (a replay that failed
/// again), and forgets its attempt count, on `conn` (in the consumer's transaction).
pub(crate) async fn dead_letter(
    conn: &mut AnyConnection,
    letter: &DeadLetter,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO allframe_dead_letters (consumer_group, event_id, topic, event_type, reason,
            error, attempts, first_failed_at, last_failed_at, headers, payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (consumer_group, event_id) DO UPDATE SET
            reason = excluded.reason, error = excluded.error,
            attempts = allframe_dead_letters.attempts + excluded.attempts,
            last_failed_at = excluded.last_failed_at",
    )
    .bind(&letter.group)
    .bind(&letter.event_id)
    .bind(&letter.topic)
    .bind(letter.event_type.as_deref())
    .bind(letter.reason.as_str())
    .bind(truncate(&letter.error))
    .bind(i64::from(letter.attempts))
    .bind(letter.first_failed_at)
    .bind(letter.last_failed_at)
    .bind(&letter.headers)
    .bind(&letter.payload)
    .execute(&mut *conn)
    .await?;
    clear_attempts(conn, &letter.group, &letter.event_id).await
}

const LETTER_COLUMNS: &str = "id, consumer_group, event_id, topic, event_type, reason, error,
    attempts, first_failed_at, last_failed_at, headers, payload";

/// The dead letters of `group`, oldest first.
pub async fn dead_letters(db: &Database, group: &str) -> Result<Vec<DeadLetter>, sqlx::Error> {
    let rows: Vec<LetterRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {LETTER_COLUMNS} FROM allframe_dead_letters WHERE consumer_group = $1 ORDER BY id"
    )))
    .bind(group)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(into_letter).collect())
}

/// Deletes dead letter `id` of `group`, or all of them with `None`; how many went.
pub async fn purge_dead_letters(
    db: &Database,
    group: &str,
    id: Option<i64>,
) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let done = match id {
        Some(id) => {
            sqlx::query("DELETE FROM allframe_dead_letters WHERE consumer_group = $1 AND id = $2")
                .bind(group)
                .bind(id)
                .execute(&mut *tx)
                .await?
        }
        None => {
            sqlx::query("DELETE FROM allframe_dead_letters WHERE consumer_group = $1")
                .bind(group)
                .execute(&mut *tx)
                .await?
        }
    };
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// How many dead letters `group` has.
pub async fn count_dead_letters(db: &Database, group: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM allframe_dead_letters WHERE consumer_group = $1")
        .bind(group)
        .fetch_one(db.pool())
        .await
}

/// One dead letter of `group` by id.
pub async fn dead_letter_by_id(
    db: &Database,
    group: &str,
    id: i64,
) -> Result<Option<DeadLetter>, sqlx::Error> {
    let row: Option<LetterRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {LETTER_COLUMNS} FROM allframe_dead_letters WHERE consumer_group = $1 AND id = $2"
    )))
    .bind(group)
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(into_letter))
}

/// Removes a dead letter, in the transaction that handled its replay (or a purge).
pub(crate) async fn remove_dead_letter(
    conn: &mut AnyConnection,
    group: &str,
    id: i64,
) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM allframe_dead_letters WHERE consumer_group = $1 AND id = $2")
            .bind(group)
            .bind(id)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes inbox rows older than `before` (Unix ms); returns how many. Events redelivered
/// after that are handled again, so the window must exceed the bus's redelivery horizon.
pub async fn prune_inbox(db: &Database, before: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM allframe_inbox WHERE handled_at < $1")
        .bind(before)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

/// Prunes the inbox of rows older than `retention` at once, then every `every`, until
/// `shutdown`. A failed round is logged and retried at the next one: the rows stay (nothing is
/// lost by pruning late).
pub async fn keep_inbox_pruned(
    db: Database,
    retention: Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let before = SystemTime::now()
            .checked_sub(retention)
            .map_or(0, unix_millis);
        match prune_inbox(&db, before).await {
            Ok(0) => {}
            Ok(pruned) => tracing::debug!(pruned, "inbox pruned"),
            Err(error) => tracing::warn!(%error, "pruning the inbox failed; retrying later"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

type LetterRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    i64,
    i64,
    i64,
    String,
    Vec<u8>,
);

fn into_letter(row: LetterRow) -> DeadLetter {
    let (
        id,
        group,
        event_id,
        topic,
        event_type,
        reason,
        error,
        attempts,
        first,
        last,
        headers,
        payload,
    ) = row;
    DeadLetter {
        id,
        group,
        event_id,
        topic,
        event_type,
        reason: Reason::parse(&reason),
        error,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        first_failed_at: first,
        last_failed_at: last,
        headers,
        payload,
    }
}

/// Error texts are stored up to 2,000 characters.
fn truncate(error: &str) -> String {
    error.chars().take(2000).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::DatabaseTarget;

    async fn inbox_ids(db: &Database) -> Vec<String> {
        sqlx::query_scalar("SELECT event_id FROM allframe_inbox ORDER BY event_id")
            .fetch_all(db.pool())
            .await
            .expect("inbox")
    }

    #[tokio::test]
    async fn the_inbox_keeps_what_is_younger_than_its_retention() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("inbox.db").display()
        );
        let db = Database::connect(&DatabaseTarget::parse(&url).expect("target"))
            .await
            .expect("sqlite");
        install(&db).await.expect("tables");
        let now = unix_millis(SystemTime::now());
        let hour = 3_600_000;
        for (id, at) in [("old", now - 25 * hour), ("recent", now - hour)] {
            sqlx::query("INSERT INTO allframe_inbox (consumer_group, event_id, handled_at) VALUES ('g', $1, $2)")
                .bind(id)
                .bind(at)
                .execute(db.pool())
                .await
                .expect("inbox row");
        }
        let shutdown = CancellationToken::new();
        let pruner = tokio::spawn(keep_inbox_pruned(
            db.clone(),
            Duration::from_secs(24 * 3600),
            Duration::from_millis(10),
            shutdown.clone(),
        ));
        for _ in 0..500 {
            if inbox_ids(&db).await == ["recent"] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        shutdown.cancel();
        pruner.await.expect("the pruner stops on shutdown");
        assert_eq!(inbox_ids(&db).await, ["recent"]);
    }
}
