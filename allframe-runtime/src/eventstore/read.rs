//! Reading events in pages: one stream by version, or every stream by position. A read is a
//! [`futures_util::Stream`] that queries the next page only when the last one is consumed.

use std::collections::VecDeque;
use std::pin::Pin;

use futures_util::Stream;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::append::to_u64;
use super::{EventStore, EventStoreError, PAGE, RecordedEvent, StreamId};
use crate::database::Database;

/// Events read in order, a page at a time.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<RecordedEvent, EventStoreError>> + Send>>;

/// `SELECT` of every column of the events table, then `$rest`.
macro_rules! select_events {
    ($rest:literal) => {
        concat!(
            "SELECT position, aggregate_type, aggregate_id, version, event_id, event_type,
                 schema_version, payload, correlation_id, recorded_at
             FROM allframe_events ",
            $rest
        )
    };
}

/// What a paged read is reading.
enum Scope {
    /// One stream, by version.
    Stream(StreamId),
    /// Every stream, by position.
    All,
}

struct Cursor {
    db: Database,
    scope: Scope,
    /// The version (stream) or position (all) of the last event read.
    after: i64,
    page: VecDeque<RecordedEvent>,
    exhausted: bool,
}

impl EventStore {
    /// The events of `stream` after version `after` (0: from its first), in order.
    pub fn read_stream(&self, stream: &StreamId, after: u64) -> EventStream {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        paged(self.db.clone(), Scope::Stream(stream.clone()), after)
    }

    /// Every event after position `after` (0: from the first), in commit order.
    pub fn read_all(&self, after: i64) -> EventStream {
        paged(self.db.clone(), Scope::All, after)
    }

    /// The version of `stream`: its last event's (0 when it has none).
    pub async fn version(&self, stream: &StreamId) -> Result<u64, EventStoreError> {
        stream_version(self.db.pool(), stream).await
    }
}

/// The version of `stream` read through `executor` (a pool, or an append's transaction).
pub(super) async fn stream_version<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    stream: &StreamId,
) -> Result<u64, EventStoreError> {
    let version: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) FROM allframe_events
         WHERE aggregate_type = $1 AND aggregate_id = $2",
    )
    .bind(&stream.aggregate_type)
    .bind(&stream.aggregate_id)
    .fetch_one(executor)
    .await?;
    to_u64(version)
}

fn paged(db: Database, scope: Scope, after: i64) -> EventStream {
    let cursor = Cursor {
        db,
        scope,
        after,
        page: VecDeque::new(),
        exhausted: false,
    };
    Box::pin(futures_util::stream::try_unfold(
        cursor,
        |mut cursor| async move {
            if cursor.page.is_empty() && !cursor.exhausted {
                let rows = cursor.fetch().await?;
                cursor.exhausted = rows.len() < usize::try_from(PAGE).unwrap_or(usize::MAX);
                cursor.page = rows;
            }
            let Some(event) = cursor.page.pop_front() else {
                return Ok(None);
            };
            cursor.after = match cursor.scope {
                Scope::Stream(_) => i64::try_from(event.version).unwrap_or(i64::MAX),
                Scope::All => event.position,
            };
            Ok(Some((event, cursor)))
        },
    ))
}

impl Cursor {
    async fn fetch(&self) -> Result<VecDeque<RecordedEvent>, EventStoreError> {
        let rows = match &self.scope {
            Scope::Stream(stream) => {
                sqlx::query(select_events!(
                    "WHERE aggregate_type = $1 AND aggregate_id = $2 AND version > $3
                     ORDER BY version LIMIT $4"
                ))
                .bind(&stream.aggregate_type)
                .bind(&stream.aggregate_id)
                .bind(self.after)
                .bind(PAGE)
                .fetch_all(self.db.pool())
                .await?
            }
            Scope::All => {
                sqlx::query(select_events!(
                    "WHERE position > $1 ORDER BY position LIMIT $2"
                ))
                .bind(self.after)
                .bind(PAGE)
                .fetch_all(self.db.pool())
                .await?
            }
        };
        rows.iter().map(recorded).collect()
    }
}

fn recorded(row: &AnyRow) -> Result<RecordedEvent, EventStoreError> {
    let event_type: String = row.try_get("event_type")?;
    let payload: String = row.try_get("payload")?;
    let payload = serde_json::from_str(&payload).map_err(|source| EventStoreError::Payload {
        event_type: event_type.clone(),
        source,
    })?;
    let schema_version: i64 = row.try_get("schema_version")?;
    Ok(RecordedEvent {
        position: row.try_get("position")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        version: to_u64(row.try_get("version")?)?,
        event_id: row.try_get("event_id")?,
        event_type,
        schema_version: u32::try_from(schema_version).map_err(|_| {
            EventStoreError::Corrupt(format!("schema version {schema_version} out of range"))
        })?,
        payload,
        correlation_id: row.try_get("correlation_id")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}
