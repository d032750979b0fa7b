//! The count-based read model of the projection tests, shared by the test binaries and the
//! projection runner process (`examples/projection_runner.rs`): per stream, how many events it
//! saw and the sum of their `n`, so an event applied twice shows in both.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use allframe_runtime::eventstore::{Projection, ReadModel, RecordedEvent};
use allframe_runtime::{BoxError, component::BoxFuture, sqlx};

/// Per stream: how many `Counted` events it saw and the sum of their `n`. An event applied
/// twice shows in both.
pub struct Counts {
    /// Fails the event at this position (0: never), as a crash in the middle of a batch would.
    fail_at: AtomicI64,
}

impl Counts {
    /// Counts, failing the event at position `fail_at` (0: never).
    pub fn failing_at(fail_at: i64) -> Arc<dyn Projection> {
        Arc::new(Self {
            fail_at: AtomicI64::new(fail_at),
        })
    }
}

impl Projection for Counts {
    fn name(&self) -> &'static str {
        "Counts"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["counted"]
    }

    fn create<'a>(
        &'a self,
        conn: &'a mut sqlx::AnyConnection,
        model: &'a ReadModel,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let table = model.table("counted");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE {table} (stream TEXT PRIMARY KEY, seen BIGINT NOT NULL, total BIGINT NOT NULL)"
            )))
            .execute(conn)
            .await?;
            Ok(())
        })
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut sqlx::AnyConnection,
        model: &'a ReadModel,
        event: &'a RecordedEvent,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            if event.position == self.fail_at.load(Ordering::SeqCst) {
                return Err(format!("crashed at {}", event.position).into());
            }
            let table = model.table("counted");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} (stream, seen, total) VALUES ($1, 1, $2)
                 ON CONFLICT (stream) DO UPDATE SET seen = {table}.seen + 1,
                     total = {table}.total + excluded.total"
            )))
            .bind(&event.aggregate_id)
            .bind(event.payload["n"].as_i64().unwrap_or_default())
            .execute(conn)
            .await?;
            Ok(())
        })
    }
}
