//! The channel outbox: messages handlers sent, waiting for the sender, in the service's own
//! database (installed with the consumer's tables).
//!
//! A row is written in the handler's transaction (`enqueue`), claimed by one sender for a
//! while (`claim_due`), and then deleted once delivered (`delivered`), pushed back with
//! its error after a transient failure (`retry_later`) or parked for good after a permanent
//! one (`park`: `failed_at` set, the row kept for an operator to read).

use std::time::{Duration, SystemTime};

use sqlx::{AnyConnection, Row as _};

use super::{Message, Notifications};
use crate::database::Database;
use crate::messaging::envelope::unix_millis;

/// The channel outbox table.
pub const CHANNEL_OUTBOX_TABLE: &str = "allframe_channel_outbox";

/// The table (`{id}` is the engine's identity column), created by the consumer's install.
pub(crate) const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS allframe_channel_outbox (
        id {id},
        idempotency_key TEXT NOT NULL UNIQUE,
        channel TEXT NOT NULL,
        message TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        attempts BIGINT NOT NULL,
        next_attempt_at BIGINT NOT NULL,
        last_error TEXT,
        failed_at BIGINT
    )",
    "CREATE INDEX IF NOT EXISTS allframe_channel_outbox_due
        ON allframe_channel_outbox (next_attempt_at)",
];

/// One message waiting to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The row.
    pub id: i64,
    /// `<event id>.<channel>.<n>`.
    pub key: String,
    /// What to send.
    pub message: Message,
    /// Failed sends so far.
    pub attempts: u32,
}

/// Writes what a handler sent for `event_id`, in its transaction. A key already in the table
/// (the same event's messages enqueued before) is left as it is.
pub(crate) async fn enqueue(
    conn: &mut AnyConnection,
    event_id: &str,
    notifications: &Notifications,
) -> Result<(), sqlx::Error> {
    let now = unix_millis(SystemTime::now());
    for (key, message) in notifications.keyed(event_id) {
        let json =
            serde_json::to_string(message).map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
        sqlx::query(
            "INSERT INTO allframe_channel_outbox
                 (idempotency_key, channel, message, created_at, attempts, next_attempt_at)
             VALUES ($1, $2, $3, $4, 0, $4)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(key)
        .bind(message.channel().as_str())
        .bind(json)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Claims up to `limit` due messages for `lease` (another sender skips them until then) and
/// returns them oldest first. A row whose JSON no longer reads is parked with the reason.
pub(crate) async fn claim_due(
    db: &Database,
    limit: u32,
    lease: Duration,
) -> Result<Vec<Pending>, sqlx::Error> {
    let now = unix_millis(SystemTime::now());
    let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    // One statement claims and reads the batch. The outer condition is checked again on the
    // row a concurrent sender may have claimed meanwhile (PostgreSQL re-reads it after the
    // lock; SQLite has one writer), so a row is claimed once.
    let rows = sqlx::query(
        "UPDATE allframe_channel_outbox SET next_attempt_at = $1
         WHERE failed_at IS NULL AND next_attempt_at <= $2 AND id IN (
             SELECT id FROM allframe_channel_outbox
             WHERE failed_at IS NULL AND next_attempt_at <= $2 ORDER BY id LIMIT $3)
         RETURNING id, idempotency_key, message, attempts",
    )
    .bind(until)
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get("id")?;
        let json: String = row.try_get("message")?;
        match serde_json::from_str::<Message>(&json) {
            Ok(message) => claimed.push(Pending {
                id,
                key: row.try_get("idempotency_key")?,
                message,
                attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
            }),
            Err(error) => {
                park(
                    db,
                    id,
                    &format!("the stored message does not read: {error}"),
                )
                .await?;
            }
        }
    }
    // RETURNING does not promise an order.
    claimed.sort_by_key(|pending| pending.id);
    Ok(claimed)
}

/// Removes a delivered message.
pub(crate) async fn delivered(db: &Database, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM allframe_channel_outbox WHERE id = $1")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Counts a transient failure and makes the message due again after `after`.
pub(crate) async fn retry_later(
    db: &Database,
    id: i64,
    error: &str,
    after: Duration,
) -> Result<(), sqlx::Error> {
    let due = unix_millis(SystemTime::now() + after);
    sqlx::query(
        "UPDATE allframe_channel_outbox
         SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 WHERE id = $3",
    )
    .bind(due)
    .bind(error)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Parks a message that can never be sent, with the reason.
pub(crate) async fn park(db: &Database, id: i64, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE allframe_channel_outbox
         SET attempts = attempts + 1, failed_at = $1, last_error = $2 WHERE id = $3",
    )
    .bind(unix_millis(SystemTime::now()))
    .bind(error)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Messages not delivered yet, parked ones included.
pub async fn undelivered(db: &Database) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM allframe_channel_outbox")
        .fetch_one(db.pool())
        .await
}

/// Messages parked for good.
pub async fn parked(db: &Database) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM allframe_channel_outbox WHERE failed_at IS NOT NULL")
        .fetch_one(db.pool())
        .await
}
