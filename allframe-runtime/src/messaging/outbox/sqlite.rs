//! The outbox on SQLite: pending rows are found by per-partition watermarks, not by an index.
//!
//! SQLite commits one writer at a time, so `seq` order (the rowid, `AUTOINCREMENT`: never
//! reused) is commit order, and a relay marks a partition's rows as a prefix in `seq` order.
//! The rows of a partition published so far are therefore exactly those up to its watermark,
//! `allframe_outbox_partitions.published_through`. Pending rows are found by reading the table
//! in rowid order from the lowest watermark, and each claim raises every watermark to just below
//! the oldest pending row, so partitions without traffic do not hold that read back.
//!
//! A request's commit then writes its outbox row and nothing else: a partial index of pending
//! rows (what PostgreSQL keeps) costs every commit one more page in the write-ahead log — 8.4
//! instead of 7.3 pages per commit of the quick start's `POST /users` (BENCHMARKS.md).

use std::fmt::Write as _;
use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Connection as _};

use super::{Marks, list};
use crate::database::Database;

/// A pool connection whose commits do not wait for the write-ahead log to reach the disk
/// (`synchronous = NORMAL`), for the relay's claims. What such a commit writes — marks, the
/// watermarks, leases — is made durable by the next synced commit of any connection (the log
/// is appended in order), and if a crash loses it first, the batch is published again: at
/// least once, as on PostgreSQL with `synchronous_commit = off`. The events themselves are on
/// the bus (its own synced commit, or the broker's confirmation) before their marks are written.
/// The relay then holds the one write lock for no disk flush per round.
///
/// The connection returns to the pool only after its own level is set back
/// ([`UnsyncedConnection::release`]); dropped before (a failed or cancelled round), it is
/// closed instead, so a request never commits on it unsynced. A database in memory has no
/// disk to skip a flush of, and its one connection holds all its data: its level is left
/// alone and it is never closed.
pub(super) struct UnsyncedConnection {
    conn: PoolConnection<Any>,
    /// The connection's own `synchronous` level, to set back (`None`: left alone).
    level: Option<i64>,
    restored: bool,
}

impl UnsyncedConnection {
    pub(super) async fn acquire(db: &Database) -> Result<Self, sqlx::Error> {
        let mut conn = db.pool().acquire().await?;
        if db.is_in_memory() {
            return Ok(Self {
                conn,
                level: None,
                restored: true,
            });
        }
        let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await?;
        let mut unsynced = Self {
            conn,
            level: Some(level),
            restored: false,
        };
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *unsynced.conn)
            .await?;
        Ok(unsynced)
    }

    /// Sets the connection's level back and lets it return to the pool.
    pub(super) async fn release(mut self) -> Result<(), sqlx::Error> {
        if let Some(level) = self.level {
            sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA synchronous = {level}")))
                .execute(&mut *self.conn)
                .await?;
        }
        self.restored = true;
        Ok(())
    }
}

impl Deref for UnsyncedConnection {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for UnsyncedConnection {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

impl Drop for UnsyncedConnection {
    fn drop(&mut self) {
        if !self.restored {
            self.conn.close_on_drop();
        }
    }
}

/// One claim in a `BEGIN IMMEDIATE` transaction on `conn`: writes the carried `marks`, raises
/// the watermarks, finds the rows `relay` may publish and leases their partitions until
/// `until`. `None` when there is nothing to publish.
pub(super) async fn claim(
    conn: &mut AnyConnection,
    relay: &str,
    now: i64,
    until: i64,
    max_partitions: usize,
    limit: u32,
    marks: Option<&Marks>,
) -> Result<Option<Claimable>, sqlx::Error> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    if let Some(marks) = marks {
        marks.write(&mut tx, relay).await?;
    }
    let found = claimable(&mut tx, relay, now, max_partitions, limit).await?;
    if found.seqs.is_empty() {
        if marks.is_some() || found.raised {
            tx.commit().await?;
        } else {
            // Nothing written: ending without a commit writes nothing.
            tx.rollback().await?;
        }
        return Ok(None);
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE allframe_outbox_partitions SET lease_owner = $1, lease_until = $2
         WHERE partition_no IN ({})",
        list(&found.partitions)
    )))
    .bind(relay)
    .bind(until)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(found))
}

/// The tables. `published_at` stays empty: the watermarks say what is published.
pub(super) const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS allframe_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        partition_no BIGINT NOT NULL,
        topic TEXT NOT NULL,
        event_type TEXT NOT NULL,
        aggregate_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        headers TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_at BIGINT NOT NULL,
        published_at BIGINT,
        attempts BIGINT NOT NULL DEFAULT 0,
        last_error TEXT
    )",
    "CREATE TABLE IF NOT EXISTS allframe_outbox_partitions (
        partition_no BIGINT PRIMARY KEY,
        lease_owner TEXT,
        lease_until BIGINT NOT NULL DEFAULT 0,
        published_through BIGINT NOT NULL DEFAULT 0
    )",
];

/// Pending rows after `$1` (the lowest watermark) that `$2` may claim at `$3` (its own lease,
/// no lease, or an expired one), oldest first. The table is read in rowid order from `$1`.
const CLAIMABLE: &str = "SELECT o.seq, o.partition_no
    FROM allframe_outbox o CROSS JOIN allframe_outbox_partitions p
    WHERE o.seq > $1 AND p.partition_no = o.partition_no AND o.seq > p.published_through
      AND (p.lease_owner IS NULL OR p.lease_owner = $2 OR p.lease_until < $3)
    ORDER BY o.seq LIMIT $4";

/// The oldest pending row after `$1`, whoever may claim it.
const OLDEST_PENDING: &str = "SELECT o.seq
    FROM allframe_outbox o CROSS JOIN allframe_outbox_partitions p
    WHERE o.seq > $1 AND p.partition_no = o.partition_no AND o.seq > p.published_through
    ORDER BY o.seq LIMIT 1";

/// Unpublished rows and the oldest one's `created_at`.
pub(super) const BACKLOG: &str = "SELECT COUNT(*), MIN(o.created_at)
    FROM allframe_outbox o CROSS JOIN allframe_outbox_partitions p
    WHERE o.seq > (SELECT MIN(published_through) FROM allframe_outbox_partitions)
      AND p.partition_no = o.partition_no AND o.seq > p.published_through";

/// Brings tables made by a version that kept a pending-rows index to this layout, in the
/// install transaction: each partition's watermark is set below its oldest unpublished row
/// (or to the newest row when it has none), then the index is dropped.
pub(super) async fn upgrade(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    let has_watermarks: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pragma_table_info('allframe_outbox_partitions')
         WHERE name = 'published_through'",
    )
    .fetch_one(&mut *conn)
    .await?;
    if has_watermarks == 0 {
        sqlx::query(
            "ALTER TABLE allframe_outbox_partitions
             ADD COLUMN published_through BIGINT NOT NULL DEFAULT 0",
        )
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE allframe_outbox_partitions SET published_through = COALESCE(
                (SELECT MIN(o.seq) - 1 FROM allframe_outbox o
                 WHERE o.partition_no = allframe_outbox_partitions.partition_no
                   AND o.published_at IS NULL),
                (SELECT MAX(seq) FROM allframe_outbox),
                0)",
        )
        .execute(&mut *conn)
        .await?;
    }
    for index in ["allframe_outbox_pending", "allframe_outbox_published"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX IF EXISTS {index}")))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Deletes up to 1,000 rows at or below `$1` ([`prune_bound`]), oldest first.
pub(super) const PRUNE: &str = "DELETE FROM allframe_outbox WHERE seq IN (
    SELECT seq FROM allframe_outbox WHERE seq <= $1 ORDER BY seq LIMIT 1000)";

/// The highest `seq` pruning may delete: published (at or below every watermark) and written
/// before `cutoff` (Unix ms). Rows are written in `seq` order, so the read stops at the first
/// row written at or after `cutoff`, having passed only rows about to be deleted.
pub(super) async fn prune_bound(conn: &mut AnyConnection, cutoff: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT MIN(
            (SELECT COALESCE(MIN(published_through), 0) FROM allframe_outbox_partitions),
            COALESCE((SELECT seq - 1 FROM allframe_outbox WHERE created_at >= $1
                      ORDER BY seq LIMIT 1), 9223372036854775807))",
    )
    .bind(cutoff)
    .fetch_one(conn)
    .await
}

/// What a claim found: the rows to publish (`seq` order) and their partitions.
pub(super) struct Claimable {
    pub(super) seqs: Vec<i64>,
    pub(super) partitions: Vec<i64>,
    /// The read stopped at its limit: more rows are likely waiting.
    pub(super) full: bool,
    /// The watermarks were raised (the transaction wrote something).
    pub(super) raised: bool,
}

/// In the claim's write transaction: raises the watermarks to just below the oldest pending
/// row, then reads up to `limit` rows `relay` may claim, keeping those of the first
/// `max_partitions` partitions met.
pub(super) async fn claimable(
    conn: &mut AnyConnection,
    relay: &str,
    now: i64,
    max_partitions: usize,
    limit: u32,
) -> Result<Claimable, sqlx::Error> {
    let floor: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MIN(published_through), 0) FROM allframe_outbox_partitions",
    )
    .fetch_one(&mut *conn)
    .await?;
    let oldest: Option<i64> = sqlx::query_scalar(OLDEST_PENDING)
        .bind(floor)
        .fetch_optional(&mut *conn)
        .await?;
    let raised_to = match oldest {
        Some(seq) => seq - 1,
        None => {
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM allframe_outbox")
                .fetch_one(&mut *conn)
                .await?
        }
    };
    let raised = raised_to > floor;
    if raised {
        // Every row up to `raised_to` is published, whatever its partition.
        sqlx::query(
            "UPDATE allframe_outbox_partitions SET published_through = $1
             WHERE published_through < $1",
        )
        .bind(raised_to)
        .execute(&mut *conn)
        .await?;
    }
    let mut found = Claimable {
        seqs: Vec::new(),
        partitions: Vec::new(),
        full: false,
        raised,
    };
    if oldest.is_none() {
        return Ok(found);
    }
    let rows: Vec<(i64, i64)> = sqlx::query_as(CLAIMABLE)
        .bind(raised_to.max(floor))
        .bind(relay)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
    found.full = rows.len() >= limit as usize;
    for (seq, partition) in rows {
        if !found.partitions.contains(&partition) {
            if found.partitions.len() >= max_partitions {
                continue;
            }
            found.partitions.push(partition);
        }
        found.seqs.push(seq);
    }
    Ok(found)
}

/// Moves the watermarks of published rows (`through`: partition and its highest published
/// `seq`) and releases the leases `relay` holds on `leased`, in one statement. A watermark
/// never moves back (another relay may have published further after a lease expired).
pub(super) async fn release(
    conn: &mut AnyConnection,
    relay: &str,
    leased: &[i64],
    through: &[(i64, i64)],
) -> Result<(), sqlx::Error> {
    let mut watermark = String::from("published_through");
    if !through.is_empty() {
        watermark = String::from("MAX(published_through, CASE partition_no");
        for (partition, seq) in through {
            let _ = write!(watermark, " WHEN {partition} THEN {seq}");
        }
        watermark.push_str(" ELSE 0 END)");
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE allframe_outbox_partitions SET published_through = {watermark},
            lease_owner = CASE WHEN lease_owner = $1 THEN NULL ELSE lease_owner END,
            lease_until = CASE WHEN lease_owner = $1 THEN 0 ELSE lease_until END
         WHERE partition_no IN ({})",
        list(leased)
    )))
    .bind(relay)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::DatabaseTarget;

    /// The `synchronous` level of every connection the pool holds, taken all at once.
    async fn pool_levels(db: &Database) -> Vec<i64> {
        let mut held = Vec::new();
        let mut levels = Vec::new();
        while held.len() < db.pool().size() as usize {
            let mut conn = db.pool().acquire().await.expect("connection");
            let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .expect("level");
            levels.push(level);
            held.push(conn);
        }
        levels
    }

    #[tokio::test]
    async fn an_unsynced_connection_goes_back_to_the_pool_synced_or_not_at_all() {
        const NORMAL: i64 = 1;
        const FULL: i64 = 2;
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
        let db = Database::connect(&DatabaseTarget::parse(&url).expect("target"))
            .await
            .expect("connects");
        assert!(pool_levels(&db).await.iter().all(|level| *level == FULL));

        let mut unsynced = UnsyncedConnection::acquire(&db).await.expect("acquire");
        let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *unsynced)
            .await
            .expect("level");
        assert_eq!(level, NORMAL, "its commits skip the log's sync");
        unsynced.release().await.expect("release");
        assert!(pool_levels(&db).await.iter().all(|level| *level == FULL));

        // Dropped before its release (a failed or cancelled round): closed, not pooled.
        let unsynced = UnsyncedConnection::acquire(&db).await.expect("acquire");
        drop(unsynced);
        tokio::task::yield_now().await;
        let levels = pool_levels(&db).await;
        assert!(levels.iter().all(|level| *level == FULL), "{levels:?}");
    }
}
