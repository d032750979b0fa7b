//! The latest state of a stream, with the schema version of the state's type: a snapshot of
//! another schema is never read back as this one.

use sqlx::Row as _;

use super::append::to_u64;
use super::{EventStore, EventStoreError, Snapshot, StreamId};
use crate::messaging::UnitOfWork;

impl EventStore {
    /// Saves `state` as `stream`'s state at `version`, written with schema `schema_version`,
    /// in `uow` (with the append that reached it). It replaces an older snapshot, or one of
    /// another schema; a newer one of the same schema is kept.
    pub async fn save_snapshot(
        &self,
        uow: &mut UnitOfWork,
        stream: &StreamId,
        version: u64,
        schema_version: u32,
        state: &serde_json::Value,
    ) -> Result<(), EventStoreError> {
        let state = serde_json::to_string(state).map_err(|source| EventStoreError::Payload {
            event_type: format!("{} snapshot", stream.aggregate_type),
            source,
        })?;
        let taken_at = crate::messaging::envelope::unix_millis(std::time::SystemTime::now());
        sqlx::query(
            "INSERT INTO allframe_snapshots
                 (aggregate_type, aggregate_id, version, schema_version, state, taken_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET
                 version = excluded.version, schema_version = excluded.schema_version,
                 state = excluded.state, taken_at = excluded.taken_at
             WHERE allframe_snapshots.version < excluded.version
                OR allframe_snapshots.schema_version <> excluded.schema_version",
        )
        .bind(&stream.aggregate_type)
        .bind(&stream.aggregate_id)
        .bind(i64::try_from(version).unwrap_or(i64::MAX))
        .bind(i64::from(schema_version))
        .bind(state)
        .bind(taken_at)
        .execute(uow.conn())
        .await?;
        Ok(())
    }

    /// `stream`'s latest snapshot when it was written with schema `schema_version` (`None`
    /// when there is none, or one of another schema: replay the stream instead).
    pub async fn load_snapshot(
        &self,
        stream: &StreamId,
        schema_version: u32,
    ) -> Result<Option<Snapshot>, EventStoreError> {
        let row = sqlx::query(
            "SELECT version, state FROM allframe_snapshots
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND schema_version = $3",
        )
        .bind(&stream.aggregate_type)
        .bind(&stream.aggregate_id)
        .bind(i64::from(schema_version))
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let state: String = row.try_get("state")?;
        let state = serde_json::from_str(&state).map_err(|source| EventStoreError::Payload {
            event_type: format!("{} snapshot", stream.aggregate_type),
            source,
        })?;
        Ok(Some(Snapshot {
            version: to_u64(row.try_get("version")?)?,
            state,
        }))
    }
}
