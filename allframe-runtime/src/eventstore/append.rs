//! Appending to a stream inside a unit of work: the position lock first, then the version
//! check, then the rows (and their outbox entries), then the new last position.

use uuid::Uuid;

use super::read::stream_version;
use super::{EventStore, EventStoreError, ExpectedVersion, NewEvent, StreamId};
use crate::messaging::{EventParts, UnitOfWork, is_valid_name};

impl EventStore {
    /// Appends `events` to `stream` in `uow`, when the stream is at `expected`: they are
    /// stored, and published through the outbox when the service has messaging, only if `uow`
    /// commits. Until it ends, `uow` holds the lock that orders appends, so commit it soon.
    ///
    /// On [`EventStoreError::Conflict`] nothing was written; roll `uow` back (dropping it
    /// does) and retry with the stream's new version. The stream's version after it.
    pub async fn append(
        &self,
        uow: &mut UnitOfWork,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<u64, EventStoreError> {
        if !is_valid_name(&stream.aggregate_type) {
            return Err(EventStoreError::InvalidName(stream.aggregate_type.clone()));
        }
        if let Some(bad) = events.iter().find(|e| !is_valid_name(&e.event_type)) {
            return Err(EventStoreError::InvalidName(bad.event_type.clone()));
        }
        uow.wake_on_commit(&self.appended);
        // The lock: held until `uow` ends, so positions follow commit order.
        let last: i64 = sqlx::query_scalar(
            "UPDATE allframe_event_positions SET position = position WHERE id = 1 RETURNING position",
        )
        .fetch_one(uow.conn())
        .await?;
        let actual = stream_version(uow.conn(), stream).await?;
        if !expected.admits(actual) {
            return Err(EventStoreError::Conflict {
                stream: stream.clone(),
                expected,
                actual,
            });
        }
        let recorded_at = crate::messaging::envelope::unix_millis(std::time::SystemTime::now());
        let correlation_id = uow.correlation_id().to_owned();
        let mut position = last;
        let mut version = i64::try_from(actual).unwrap_or(i64::MAX);
        for event in events {
            position += 1;
            version += 1;
            let id = Uuid::now_v7();
            let payload = serde_json::to_string(&event.payload).map_err(|source| {
                EventStoreError::Payload {
                    event_type: event.event_type.clone(),
                    source,
                }
            })?;
            sqlx::query(
                "INSERT INTO allframe_events (position, aggregate_type, aggregate_id, version,
                     event_id, event_type, schema_version, payload, correlation_id, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(position)
            .bind(&stream.aggregate_type)
            .bind(&stream.aggregate_id)
            .bind(version)
            .bind(id.hyphenated().to_string())
            .bind(&event.event_type)
            .bind(i64::from(event.schema_version))
            .bind(&payload)
            .bind(&correlation_id)
            .bind(recorded_at)
            .execute(uow.conn())
            .await?;
            uow.publish_stored(EventParts {
                id,
                event_type: &event.event_type,
                schema_version: event.schema_version,
                aggregate_type: &stream.aggregate_type,
                aggregate_id: stream.aggregate_id.clone(),
                payload: payload.into_bytes(),
            });
        }
        if position != last {
            sqlx::query("UPDATE allframe_event_positions SET position = $1 WHERE id = 1")
                .bind(position)
                .execute(uow.conn())
                .await?;
        }
        to_u64(version)
    }
}

/// A stored count, which is never negative in a store this module wrote.
pub(super) fn to_u64(value: i64) -> Result<u64, EventStoreError> {
    u64::try_from(value).map_err(|_| EventStoreError::Corrupt(format!("negative version {value}")))
}
