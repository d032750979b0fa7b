//! The event store's tables: `allframe_events` (every event, by position and by stream),
//! `allframe_event_positions` (one row: the last position handed out, whose lock orders the
//! appends), `allframe_snapshots` (the latest state per stream) and `allframe_projections`
//! (each version of each read model, with its state and checkpoint), and
//! `allframe_projection_retirements` (when a version replaced by a rebuild was retired: its
//! tables are dropped once the grace has passed).

use crate::database::Database;

/// Serialises the creation of the tables on PostgreSQL. An arbitrary constant ("allfevst").
pub(super) const INSTALL_LOCK_KEY: i64 = 0x616c_6c66_6576_7374;

const SCHEMA: [&str; 6] = [
    "CREATE TABLE IF NOT EXISTS allframe_events (
        position BIGINT PRIMARY KEY,
        aggregate_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        event_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        schema_version BIGINT NOT NULL,
        payload TEXT NOT NULL,
        correlation_id TEXT NOT NULL,
        recorded_at BIGINT NOT NULL,
        UNIQUE (aggregate_type, aggregate_id, version)
    )",
    "CREATE TABLE IF NOT EXISTS allframe_event_positions (
        id BIGINT PRIMARY KEY,
        position BIGINT NOT NULL
    )",
    "INSERT INTO allframe_event_positions (id, position) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
    "CREATE TABLE IF NOT EXISTS allframe_snapshots (
        aggregate_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        schema_version BIGINT NOT NULL,
        state TEXT NOT NULL,
        taken_at BIGINT NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id)
    )",
    "CREATE TABLE IF NOT EXISTS allframe_projections (
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        state TEXT NOT NULL,
        position BIGINT NOT NULL,
        PRIMARY KEY (name, version)
    )",
    "CREATE TABLE IF NOT EXISTS allframe_projection_retirements (
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        retired_at BIGINT NOT NULL,
        PRIMARY KEY (name, version)
    )",
];

/// Creates the tables if missing.
pub(super) async fn install(db: &Database) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_install(INSTALL_LOCK_KEY).await?;
    for statement in SCHEMA {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    tx.commit().await
}
