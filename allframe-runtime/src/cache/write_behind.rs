//! The write-behind table: pending writes in the service's own database, recorded before
//! `put` returns and deleted in the step that stored them, so nothing is lost.
//!
//! One row per write in [`TABLE`] (namespace, key, value as JSON, `seq` from an identity
//! column). A flush takes up to `max_batch` keys, oldest first pending write first, each
//! with its latest value (several writes to one key keep only the last, in `seq` order),
//! hands them to the source's `store`, then deletes every row of those keys up to the
//! stored one. A write recorded meanwhile has a higher `seq` and stays for the next flush.
//!
//! - **PostgreSQL**: the batch is read and deleted in one transaction holding a transaction-
//!   level advisory lock for the namespace (`pg_try_advisory_xact_lock`), so replicas sharing
//!   the database flush one at a time and a key's writes reach the source in order. A
//!   process that dies mid-flush releases the lock with its connection; its rows stay.
//! - **SQLite**: the batch is read without a transaction (holding SQLite's write lock while
//!   the source answers would stall every writer) and deleted in a short `BEGIN IMMEDIATE`
//!   one; flushes of one namespace in one process take turns (see `super::flusher`).
//!
//! Either way a crash between the source accepting a batch and the delete stores it again on
//! restart: delivery is at least once, so `CacheSource::store` must be idempotent.

use std::time::SystemTime;

use sqlx::Row as _;

use crate::database::{Backend, Database};
use crate::messaging::envelope::unix_millis;

/// The table of pending write-behind writes.
pub const TABLE: &str = "allframe_cache_writes";

/// Serialises the creation of the table on PostgreSQL. An arbitrary constant ("allfcach").
const INSTALL_LOCK_KEY: i64 = 0x616c_6c66_6361_6368;

/// How many keys one `DELETE` names (two parameters each).
const DELETE_CHUNK: usize = 200;

const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS allframe_cache_writes (
        seq {id},
        namespace TEXT NOT NULL,
        cache_key TEXT NOT NULL,
        value TEXT NOT NULL,
        written_at BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS allframe_cache_writes_key
        ON allframe_cache_writes (namespace, cache_key, seq)",
];

const RECORD: &str = "INSERT INTO allframe_cache_writes (namespace, cache_key, value, written_at)
    VALUES ($1, $2, $3, $4)";

const LATEST: &str = "SELECT value FROM allframe_cache_writes
    WHERE namespace = $1 AND cache_key = $2 ORDER BY seq DESC LIMIT 1";

const COUNT: &str = "SELECT COUNT(*) FROM allframe_cache_writes WHERE namespace = $1";

/// Up to `$2` keys of namespace `$1`, the one with the oldest pending write first, each with
/// its latest row.
const BATCH: &str = "SELECT w.cache_key, w.seq, w.value FROM allframe_cache_writes w
    JOIN (SELECT cache_key, MIN(seq) AS first_seq, MAX(seq) AS last_seq
          FROM allframe_cache_writes WHERE namespace = $1
          GROUP BY cache_key ORDER BY first_seq LIMIT $2) p
      ON w.seq = p.last_seq
    ORDER BY p.first_seq";

/// One key's latest pending write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PendingRow {
    pub(super) key: String,
    /// The row's `seq`: rows of the key up to it are deleted once it is stored.
    pub(super) seq: i64,
    pub(super) json: String,
}

/// A batch read by [`PendingTable::claim`], and on PostgreSQL the transaction holding the
/// namespace's flush lock. Give it back with [`PendingTable::complete`] or drop it (the
/// transaction rolls back, the rows stay).
pub(super) struct Claimed {
    pub(super) rows: Vec<PendingRow>,
    hold: Option<sqlx::Transaction<'static, sqlx::Any>>,
}

/// What [`PendingTable::claim`] found.
pub(super) enum Claim {
    /// The namespace's oldest pending keys (empty when nothing is pending).
    Batch(Claimed),
    /// Another process is flushing this namespace (PostgreSQL).
    Busy,
}

/// The pending writes of one namespace.
#[derive(Clone, Debug)]
pub(super) struct PendingTable {
    db: Database,
    namespace: String,
}

impl PendingTable {
    /// Creates the table if missing (idempotent; safe when several instances start at once).
    pub(super) async fn open(db: &Database, namespace: &str) -> Result<Self, sqlx::Error> {
        let id = match db.backend() {
            Backend::Postgres => "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        };
        let mut tx = db.begin_install(INSTALL_LOCK_KEY).await?;
        for statement in SCHEMA {
            sqlx::query(sqlx::AssertSqlSafe(statement.replace("{id}", id)))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Self {
            db: db.clone(),
            namespace: namespace.to_owned(),
        })
    }

    /// Records one write (committed when this returns).
    pub(super) async fn record(&self, key: &str, json: &str) -> Result<(), sqlx::Error> {
        sqlx::query(RECORD)
            .bind(self.namespace.clone())
            .bind(key.to_owned())
            .bind(json.to_owned())
            .bind(unix_millis(SystemTime::now()))
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// The latest pending value of `key`, if any (a miss serves it before the source).
    pub(super) async fn latest(&self, key: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(LATEST)
            .bind(self.namespace.clone())
            .bind(key.to_owned())
            .fetch_optional(self.db.pool())
            .await
    }

    /// How many rows are pending in the namespace.
    pub(super) async fn count(&self) -> Result<u64, sqlx::Error> {
        let count: i64 = sqlx::query_scalar(COUNT)
            .bind(self.namespace.clone())
            .fetch_one(self.db.pool())
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Reads up to `max_batch` keys to store (see the module's docs).
    pub(super) async fn claim(&self, max_batch: usize) -> Result<Claim, sqlx::Error> {
        let limit = i64::try_from(max_batch).unwrap_or(i64::MAX);
        match self.db.backend() {
            Backend::Postgres => {
                let mut tx = self.db.pool().begin().await?;
                let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                    .bind(flush_lock_key(&self.namespace))
                    .fetch_one(&mut *tx)
                    .await?;
                if !locked {
                    tx.rollback().await?;
                    return Ok(Claim::Busy);
                }
                let rows = sqlx::query(BATCH)
                    .bind(self.namespace.clone())
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                Ok(Claim::Batch(Claimed {
                    rows: pending_rows(&rows)?,
                    hold: Some(tx),
                }))
            }
            Backend::Sqlite => {
                let rows = sqlx::query(BATCH)
                    .bind(self.namespace.clone())
                    .bind(limit)
                    .fetch_all(self.db.pool())
                    .await?;
                Ok(Claim::Batch(Claimed {
                    rows: pending_rows(&rows)?,
                    hold: None,
                }))
            }
        }
    }

    /// Deletes the rows a stored batch covers; how many.
    pub(super) async fn complete(&self, claimed: Claimed) -> Result<u64, sqlx::Error> {
        let Claimed { rows, hold } = claimed;
        let mut tx = match hold {
            Some(tx) => tx,
            None => self.db.begin_write().await?,
        };
        let mut deleted = 0;
        for chunk in rows.chunks(DELETE_CHUNK) {
            let mut sql =
                String::from("DELETE FROM allframe_cache_writes WHERE namespace = $1 AND (");
            for n in 0..chunk.len() {
                let or = if n == 0 { "" } else { " OR " };
                let (key, seq) = (2 * n + 2, 2 * n + 3);
                sql.push_str(&format!("{or}(cache_key = ${key} AND seq <= ${seq})"));
            }
            sql.push(')');
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(self.namespace.clone());
            for row in chunk {
                query = query.bind(row.key.clone()).bind(row.seq);
            }
            deleted += query.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }
}

fn pending_rows(rows: &[sqlx::any::AnyRow]) -> Result<Vec<PendingRow>, sqlx::Error> {
    rows.iter()
        .map(|row| {
            Ok(PendingRow {
                key: row.try_get(0)?,
                seq: row.try_get(1)?,
                json: row.try_get(2)?,
            })
        })
        .collect()
}

/// The advisory lock of one namespace's flushes: FNV-1a of the table and the namespace.
fn flush_lock_key(namespace: &str) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in TABLE.bytes().chain([0x1f]).chain(namespace.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::database::DatabaseTarget;

    async fn memory() -> Database {
        let target = DatabaseTarget::parse("sqlite::memory:").expect("target");
        Database::connect(&target).await.expect("sqlite")
    }

    #[tokio::test]
    async fn a_batch_holds_each_key_once_with_its_latest_value_oldest_first() {
        let db = memory().await;
        let table = PendingTable::open(&db, "a").await.expect("install");
        PendingTable::open(&db, "a")
            .await
            .expect("install is idempotent");
        let other = PendingTable::open(&db, "b").await.expect("install");
        for (key, value) in [("k1", "1"), ("k2", "2"), ("k1", "3"), ("k3", "4")] {
            table.record(key, value).await.expect("record");
        }
        other.record("k1", "elsewhere").await.expect("record");
        assert_eq!(
            table.latest("k1").await.expect("latest").as_deref(),
            Some("3")
        );
        assert_eq!(table.count().await.expect("count"), 4);

        let Claim::Batch(claimed) = table.claim(2).await.expect("claim") else {
            panic!("SQLite is never busy");
        };
        let batch: Vec<_> = claimed
            .rows
            .iter()
            .map(|r| (r.key.as_str(), r.json.as_str()))
            .collect();
        assert_eq!(batch, [("k1", "3"), ("k2", "2")]);
        table
            .record("k1", "5")
            .await
            .expect("a write during the flush");
        assert_eq!(table.complete(claimed).await.expect("delete"), 3);
        assert_eq!(
            table.latest("k1").await.expect("latest").as_deref(),
            Some("5")
        );
        assert_eq!(
            table.count().await.expect("count"),
            2,
            "k3 and the later k1 stay"
        );
        assert_eq!(
            other.count().await.expect("count"),
            1,
            "other namespaces untouched"
        );
        assert_ne!(flush_lock_key("a"), flush_lock_key("b"));
    }
}
