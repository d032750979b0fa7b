//! The SQL idempotency store: one table in the service's own database, SQLite or PostgreSQL,
//! through the same sqlx `Any` pool as everything else.
//!
//! One implementation serves both engines (only the body column's type differs in the DDL),
//! for the reasons `docs/runtime.md` gives for `Any`. Claiming a new key is one
//! `INSERT … ON CONFLICT (id) DO NOTHING RETURNING owner`; a key already there is read with a
//! plain `SELECT` (so a replay writes nothing, and on PostgreSQL takes no row lock and no WAL
//! flush); an expired one is taken over with `UPDATE … WHERE expires_at <= now RETURNING owner`.
//! Each step is atomic on both engines: of any number of concurrent claims exactly one gets a
//! row back. Instants are `BIGINT` Unix milliseconds passed as parameters (no engine clock
//! functions), so tests can move time. This module does not decide what clients are answered.

use std::time::Duration;

use sqlx::{AnyPool, Row as _};

use super::fingerprint::Fingerprint;
use super::store::{
    Begin, Claim, Existing, IdempotencyStore, Lock, StoreError, StoreFuture, StoredResponse,
    deadline_ms,
};
use crate::database::{Backend, Database};

/// The table holding idempotency records.
pub const TABLE: &str = "allframe_idempotency";

/// Record states (a `BIGINT`, as `Any` cannot decode SQLite booleans).
const IN_FLIGHT: i64 = 0;
const COMPLETED: i64 = 1;

const CREATE_TABLE_SQLITE: &str = "CREATE TABLE IF NOT EXISTS allframe_idempotency (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    state BIGINT NOT NULL,
    owner TEXT,
    expires_at BIGINT NOT NULL,
    status BIGINT,
    headers TEXT,
    body BLOB
)";

const CREATE_TABLE_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS allframe_idempotency (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    state BIGINT NOT NULL,
    owner TEXT,
    expires_at BIGINT NOT NULL,
    status BIGINT,
    headers TEXT,
    body BYTEA
)";

const CREATE_INDEX: &str = "CREATE INDEX IF NOT EXISTS allframe_idempotency_expires_at \
    ON allframe_idempotency (expires_at)";

/// Serialises concurrent start-ups creating the table on PostgreSQL (where two concurrent
/// `CREATE TABLE IF NOT EXISTS` can both try to create it). An arbitrary constant.
const DDL_LOCK: i64 = 0x616c_6c66_6964_656d; // "allfidem"

/// Claims an absent key; returns the owner only when it did.
const INSERT: &str = "INSERT INTO allframe_idempotency (id, fingerprint, state, owner, expires_at) \
    VALUES ($1, $2, 0, $3, $4) ON CONFLICT (id) DO NOTHING RETURNING owner";

const LOOKUP: &str = "SELECT fingerprint, state, status, headers, body, expires_at \
    FROM allframe_idempotency WHERE id = $1";

/// Claims an expired key; returns the owner only when it did (a concurrent claimant that got
/// there first makes the `WHERE` false).
const TAKE_OVER: &str = "UPDATE allframe_idempotency \
    SET fingerprint = $2, state = 0, owner = $3, expires_at = $4, \
        status = NULL, headers = NULL, body = NULL \
    WHERE id = $1 AND expires_at <= $5 \
    RETURNING owner";

const COMPLETE: &str = "UPDATE allframe_idempotency \
    SET state = 1, owner = NULL, status = $3, headers = $4, body = $5, expires_at = $6 \
    WHERE id = $1 AND owner = $2 AND state = 0";

const RELEASE: &str = "DELETE FROM allframe_idempotency WHERE id = $1 AND owner = $2 AND state = 0";

const REFRESH: &str = "UPDATE allframe_idempotency SET expires_at = $3 \
    WHERE id = $1 AND owner = $2 AND state = 0";

const PURGE: &str = "DELETE FROM allframe_idempotency WHERE expires_at <= $1";

/// How often `begin` retries when the record it collided with changed before it could be
/// read or taken over (released, or claimed by another request). Past that the key counts as
/// in flight.
const BEGIN_ATTEMPTS: usize = 3;

/// Idempotency records in the service's SQL database (table [`TABLE`]).
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
}

impl SqlStore {
    /// Uses `db`, creating the table and its index when missing.
    pub async fn open(db: &Database) -> Result<Self, sqlx::Error> {
        let store = Self {
            pool: db.pool().clone(),
            backend: db.backend(),
        };
        store.create_table().await?;
        Ok(store)
    }

    async fn create_table(&self) -> Result<(), sqlx::Error> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::query(CREATE_TABLE_SQLITE).execute(&self.pool).await?;
                sqlx::query(CREATE_INDEX).execute(&self.pool).await?;
            }
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS locked")
                    .bind(DDL_LOCK)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(CREATE_TABLE_POSTGRES).execute(&mut *tx).await?;
                sqlx::query(CREATE_INDEX).execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Deletes every record that expired at `now_ms` (completed past their TTL, in flight past
    /// their lease); returns how many. The launcher runs it periodically.
    pub async fn purge_expired(&self, now_ms: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(PURGE).bind(now_ms).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    async fn begin_inner(&self, claim: Claim<'_>) -> Result<Begin, StoreError> {
        let expires_at = deadline_ms(claim.now_ms, claim.lease);
        for _ in 0..BEGIN_ATTEMPTS {
            let inserted = sqlx::query(INSERT)
                .bind(claim.id.to_owned())
                .bind(claim.fingerprint.as_str().to_owned())
                .bind(claim.owner.to_owned())
                .bind(expires_at)
                .fetch_optional(&self.pool)
                .await?;
            if inserted.is_some() {
                return Ok(Begin::Started);
            }
            let row = sqlx::query(LOOKUP)
                .bind(claim.id.to_owned())
                .fetch_optional(&self.pool)
                .await?;
            let Some(row) = row else {
                // Released between the two statements: try to claim again.
                continue;
            };
            let live_until: i64 = row.try_get("expires_at")?;
            if live_until <= claim.now_ms {
                let taken = sqlx::query(TAKE_OVER)
                    .bind(claim.id.to_owned())
                    .bind(claim.fingerprint.as_str().to_owned())
                    .bind(claim.owner.to_owned())
                    .bind(expires_at)
                    .bind(claim.now_ms)
                    .fetch_optional(&self.pool)
                    .await?;
                if taken.is_some() {
                    return Ok(Begin::Started);
                }
                // Another request took it over first: read what it left.
                continue;
            }
            let fingerprint: String = row.try_get("fingerprint")?;
            let state: i64 = row.try_get("state")?;
            let response = if state == COMPLETED {
                let status: Option<i64> = row.try_get("status")?;
                let headers: Option<String> = row.try_get("headers")?;
                let body: Option<Vec<u8>> = row.try_get("body")?;
                let status = status.ok_or_else(|| StoreError::Corrupt {
                    id: claim.id.to_owned(),
                    reason: "a completed record has no status".to_owned(),
                })?;
                Some(StoredResponse::from_parts(
                    claim.id,
                    status,
                    headers.as_deref().unwrap_or("[]"),
                    body,
                )?)
            } else if state == IN_FLIGHT {
                None
            } else {
                return Err(StoreError::Corrupt {
                    id: claim.id.to_owned(),
                    reason: format!("unknown state {state}"),
                });
            };
            return Ok(Begin::Existing(Existing {
                fingerprint: Fingerprint::from_stored(fingerprint),
                response,
            }));
        }
        // The key keeps changing hands: treat it as busy.
        Ok(Begin::Existing(Existing {
            fingerprint: claim.fingerprint.clone(),
            response: None,
        }))
    }
}

impl IdempotencyStore for SqlStore {
    fn name(&self) -> &'static str {
        self.backend.as_str()
    }

    fn begin<'a>(&'a self, claim: Claim<'a>) -> StoreFuture<'a, Begin> {
        Box::pin(self.begin_inner(claim))
    }

    fn complete<'a>(
        &'a self,
        lock: Lock<'a>,
        response: &'a StoredResponse,
        now_ms: i64,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(COMPLETE)
                .bind(lock.id.to_owned())
                .bind(lock.owner.to_owned())
                .bind(i64::from(response.status))
                .bind(response.headers_json())
                .bind(response.body.as_ref().map(|body| body.to_vec()))
                .bind(deadline_ms(now_ms, ttl))
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn release<'a>(&'a self, lock: Lock<'a>) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(RELEASE)
                .bind(lock.id.to_owned())
                .bind(lock.owner.to_owned())
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn refresh<'a>(
        &'a self,
        lock: Lock<'a>,
        now_ms: i64,
        lease: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(REFRESH)
                .bind(lock.id.to_owned())
                .bind(lock.owner.to_owned())
                .bind(deadline_ms(now_ms, lease))
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }
}
