//! The outbox table in the service's own database, and the SQL that claims, marks and prunes
//! its rows. The relay loop and its policy live in `super::relay` ([`super::Relay`]); this module only talks
//! to the database.
//!
//! Rows are ordered by `seq` (an identity column on PostgreSQL, `AUTOINCREMENT` on SQLite).
//! Every aggregate hashes to one of [`PARTITIONS`] partitions, and a relay publishes a
//! partition's rows only while it holds that partition:
//!
//! - **PostgreSQL**: the partition rows are locked with `SELECT … FOR UPDATE SKIP LOCKED`
//!   inside the batch transaction, which stays open while the batch is published and is
//!   committed together with the `published_at` marks. A relay that dies releases its locks
//!   with its connection.
//! - **SQLite**: there is one writer at a time, and holding the write lock while a broker
//!   answers would stall every request. So a relay takes a *lease* on the partitions in a short
//!   `BEGIN IMMEDIATE` transaction, publishes, then marks the rows and releases the lease in a
//!   second one. A relay that dies leaves its lease to expire.
//!
//!   While commits stream in, the relay leaves a fully published batch's marks and lease
//!   release to its next claim, which writes them in its own transaction (`Marks`): one
//!   write per round instead of two. A relay killed in between publishes that batch again.
//!   Claims commit without waiting for the log's sync (`sqlite::UnsyncedConnection`).
//!   Pending rows are found by per-partition watermarks rather than an index, so a request's
//!   commit writes nothing but its row, and marking a batch moves the watermarks without
//!   touching its rows (`sqlite`).
//!
//! Two relays therefore never publish rows of the same aggregate at the same time, and each
//! publishes a partition's rows in `seq` order: order per aggregate holds across relays,
//! while different partitions are published in parallel.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

mod sqlite;

use super::bus::OutboundMessage;
use super::envelope::{Envelope, unix_millis};
use crate::database::{Backend, Database};

/// The outbox table.
pub const OUTBOX_TABLE: &str = "allframe_outbox";
/// How many partitions aggregates are spread over (fixed: rows store their partition).
pub const PARTITIONS: i64 = 64;
/// The PostgreSQL `NOTIFY` channel a commit with events signals.
pub const NOTIFY_CHANNEL: &str = "allframe_outbox";
/// The advisory lock key serialising the creation of the outbox tables on PostgreSQL.
const INSTALL_LOCK_KEY: i64 = 0x616c_6c66_6f62_7831;

const POSTGRES_SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS allframe_outbox (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        partition_no BIGINT NOT NULL,
        topic TEXT NOT NULL,
        event_type TEXT NOT NULL,
        aggregate_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        headers TEXT NOT NULL,
        payload BYTEA NOT NULL,
        created_at BIGINT NOT NULL,
        published_at BIGINT,
        attempts BIGINT NOT NULL DEFAULT 0,
        last_error TEXT
    )",
    "CREATE INDEX IF NOT EXISTS allframe_outbox_pending
        ON allframe_outbox (partition_no, seq) WHERE published_at IS NULL",
    "CREATE INDEX IF NOT EXISTS allframe_outbox_published
        ON allframe_outbox (published_at) WHERE published_at IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS allframe_outbox_partitions (
        partition_no BIGINT PRIMARY KEY,
        lease_owner TEXT,
        lease_until BIGINT NOT NULL DEFAULT 0
    )",
];

/// The partitions whose next rows are oldest, with unpublished rows (one probe of the pending
/// index per partition). PostgreSQL locks them.
const PG_CLAIM: &str = "SELECT p.partition_no FROM allframe_outbox_partitions p
    CROSS JOIN LATERAL (SELECT o.seq FROM allframe_outbox o
        WHERE o.partition_no = p.partition_no AND o.published_at IS NULL
        ORDER BY o.seq LIMIT 1) oldest
    ORDER BY oldest.seq
    LIMIT $1
    FOR UPDATE OF p SKIP LOCKED";

/// Creates the outbox tables if missing (idempotent; safe when several instances start at
/// once). The launcher calls it for services whose messaging pattern is `outbox`.
pub async fn install(db: &Database) -> Result<(), sqlx::Error> {
    let mut partitions =
        String::from("INSERT INTO allframe_outbox_partitions (partition_no, lease_until) VALUES ");
    for partition in 0..PARTITIONS {
        let sep = if partition == 0 { "" } else { ", " };
        let _ = write!(partitions, "{sep}({partition}, 0)");
    }
    partitions.push_str(" ON CONFLICT (partition_no) DO NOTHING");

    let mut tx = db.begin_install(INSTALL_LOCK_KEY).await?;
    match db.backend() {
        Backend::Postgres => {
            for statement in POSTGRES_SCHEMA {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
        }
        Backend::Sqlite => {
            for statement in sqlite::SCHEMA {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            sqlite::upgrade(&mut tx).await?;
        }
    }
    sqlx::query(sqlx::AssertSqlSafe(partitions))
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// The partition of an aggregate: FNV-1a over its type and id, modulo [`PARTITIONS`].
pub fn partition_of(aggregate_type: &str, aggregate_id: &str) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let bytes = aggregate_type
        .bytes()
        .chain(std::iter::once(0x1f))
        .chain(aggregate_id.bytes());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    // PARTITIONS is a small positive constant: the remainder always fits.
    i64::try_from(hash % PARTITIONS.unsigned_abs()).unwrap_or(0)
}

/// Writes one outbox row on `conn` (inside the unit of work's transaction).
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    message: &OutboundMessage,
) -> Result<(), sqlx::Error> {
    let envelope = &message.envelope;
    sqlx::query(
        "INSERT INTO allframe_outbox (id, partition_no, topic, event_type, aggregate_type,
            aggregate_id, headers, payload, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(envelope.id.hyphenated().to_string())
    .bind(partition_of(
        &envelope.aggregate_type,
        &envelope.aggregate_id,
    ))
    .bind(&message.topic)
    .bind(&envelope.event_type)
    .bind(&envelope.aggregate_type)
    .bind(&envelope.aggregate_id)
    .bind(envelope.headers_json())
    .bind(&envelope.payload)
    .bind(unix_millis(SystemTime::now()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Signals relays listening on PostgreSQL (delivered at commit).
pub(crate) async fn notify(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query("NOTIFY allframe_outbox").execute(conn).await?;
    Ok(())
}

/// One claimed outbox row.
#[derive(Debug)]
pub(crate) struct OutboxRow {
    pub(crate) seq: i64,
    pub(crate) partition: i64,
    pub(crate) created_at: i64,
    pub(crate) message: OutboundMessage,
}

/// Why a claimed row could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClaimError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("outbox row {seq} is not a valid envelope: {source}")]
    Corrupt {
        seq: i64,
        #[source]
        source: super::envelope::EnvelopeError,
    },
}

/// Work claimed by one relay: rows in `seq` order and what holds them.
pub(crate) struct Batch {
    pub(crate) rows: Vec<OutboxRow>,
    /// The claim stopped at its limit: more rows are likely waiting.
    full: bool,
    hold: Hold,
    /// Published rows are deleted rather than marked (no retention).
    delete_published: bool,
}

enum Hold {
    /// PostgreSQL: the transaction holding the partition row locks.
    Locked(sqlx::Transaction<'static, sqlx::Any>),
    /// SQLite: a lease on these partitions.
    Leased { partitions: Vec<i64> },
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether the claim stopped at its limit, so that more rows are likely waiting.
    pub(crate) fn is_full(&self) -> bool {
        self.full
    }

    /// The marks of a batch published in full, for the relay's next claim to write in its own
    /// transaction; gives the batch back when they must be written now (PostgreSQL holds its
    /// claim in an open transaction; a partly published batch is completed at once).
    pub(crate) fn defer(self, published: usize) -> Result<Marks, Self> {
        match self.hold {
            Hold::Leased { .. } if published == self.rows.len() => Ok(Marks::of(&self, published)),
            _ => Err(self),
        }
    }
}

/// Claims up to `max_partitions` partitions with pending rows and reads up to `limit` of their
/// rows in `seq` order. `None` when there is nothing to claim. With `delete_published`, the
/// batch's rows are deleted once published instead of marked.
pub(crate) async fn claim(
    db: &Database,
    relay: &str,
    max_partitions: u32,
    limit: u32,
    lease: Duration,
    marks: Option<&Marks>,
    delete_published: bool,
) -> Result<Option<Batch>, ClaimError> {
    match db.backend() {
        Backend::Postgres => {
            let mut tx = db.pool().begin().await?;
            // The marks need no flush to disk before the commit returns: marks lost in a crash
            // only publish their rows again (at least once), and the relay saves a WAL flush
            // per round.
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await?;
            if let Some(marks) = marks {
                marks.write(&mut tx, relay).await?;
            }
            let partitions: Vec<i64> = sqlx::query_scalar(PG_CLAIM)
                .bind(i64::from(max_partitions))
                .fetch_all(&mut *tx)
                .await?;
            if partitions.is_empty() {
                tx.commit().await?;
                return Ok(None);
            }
            // The oldest pending rows of each claimed partition, read through the pending
            // index: up to a quarter of the batch from each (so one busy partition still fills
            // a good part of it), the oldest `limit` of those. Cut by `seq`, every partition's
            // rows stay a prefix of its pending rows. (A scan of the table in `seq` order would
            // pass over every published row it keeps: a cost growing with the retention.)
            let claimed = u32::try_from(partitions.len()).unwrap_or(u32::MAX);
            let per_partition = limit.div_ceil(claimed).max(limit / 4).max(1);
            let filter = format!(
                "seq IN (SELECT s.seq FROM unnest(ARRAY[{}]::BIGINT[]) AS p (partition_no)
                     CROSS JOIN LATERAL (SELECT o.seq FROM allframe_outbox o
                         WHERE o.partition_no = p.partition_no AND o.published_at IS NULL
                         ORDER BY o.seq LIMIT {per_partition}) s)",
                list(&partitions)
            );
            let rows = fetch(&mut tx, &filter, limit).await?;
            // More rows are likely waiting when the batch is full or a partition gave all it
            // could.
            let full = rows.len() >= limit as usize
                || partitions.iter().any(|partition| {
                    rows.iter()
                        .filter(|row| row.partition == *partition)
                        .count()
                        >= per_partition as usize
                });
            Ok(Some(Batch {
                full,
                rows,
                hold: Hold::Locked(tx),
                delete_published,
            }))
        }
        Backend::Sqlite => {
            let now = unix_millis(SystemTime::now());
            let until =
                now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4));
            // Claimed and read on one connection, given back once it is synced again.
            let mut conn = sqlite::UnsyncedConnection::acquire(db).await?;
            let claimed = sqlite::claim(
                &mut conn,
                relay,
                now,
                until,
                max_partitions as usize,
                limit,
                marks,
            )
            .await?;
            let Some(found) = claimed else {
                conn.release().await?;
                return Ok(None);
            };
            let rows = fetch(&mut conn, &format!("seq IN ({})", list(&found.seqs)), limit).await?;
            conn.release().await?;
            Ok(Some(Batch {
                rows,
                full: found.full,
                hold: Hold::Leased {
                    partitions: found.partitions,
                },
                delete_published,
            }))
        }
    }
}

/// Reads the rows `filter` selects (integers we produced only), oldest first, `limit` at most.
async fn fetch(
    conn: &mut AnyConnection,
    filter: &str,
    limit: u32,
) -> Result<Vec<OutboxRow>, ClaimError> {
    let rows: Vec<AnyRow> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT seq, partition_no, topic, headers, payload, created_at FROM allframe_outbox
         WHERE {filter} ORDER BY seq LIMIT $1"
    )))
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            let seq: i64 = row.try_get("seq")?;
            let headers: String = row.try_get("headers")?;
            let payload: Vec<u8> = row.try_get("payload")?;
            let envelope = Envelope::from_headers_json(&headers, payload)
                .map_err(|source| ClaimError::Corrupt { seq, source })?;
            Ok(OutboxRow {
                seq,
                partition: row.try_get("partition_no")?,
                created_at: row.try_get("created_at")?,
                message: OutboundMessage {
                    topic: row.try_get("topic")?,
                    envelope,
                },
            })
        })
        .collect()
}

/// Marks the first `published` rows of `batch` as published and releases what held them.
pub(crate) async fn complete(
    db: &Database,
    relay: &str,
    batch: Batch,
    published: usize,
) -> Result<(), sqlx::Error> {
    let marks = Marks::of(&batch, published);
    match batch.hold {
        Hold::Locked(mut tx) => {
            marks.write(&mut tx, relay).await?;
            tx.commit().await
        }
        Hold::Leased { .. } => finish(db, relay, &marks).await,
    }
}

/// Writes marks left for a next claim that will not come (the relay is stopping).
pub(crate) async fn finish(db: &Database, relay: &str, marks: &Marks) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    marks.write(&mut tx, relay).await?;
    tx.commit().await
}

/// What completing a published batch writes: its published rows' marks and, on SQLite, the
/// release of its lease.
#[derive(Debug)]
pub(crate) struct Marks {
    published_at: i64,
    /// The rows to mark (PostgreSQL) or delete (no retention).
    seqs: Vec<i64>,
    /// Delete the published rows instead of marking them.
    delete: bool,
    /// SQLite: the leased partitions, and the highest published `seq` of each that has one.
    leased: Vec<i64>,
    through: Vec<(i64, i64)>,
}

impl Marks {
    fn of(batch: &Batch, published: usize) -> Self {
        let published_rows = &batch.rows[..published.min(batch.rows.len())];
        let (leased, through) = match &batch.hold {
            Hold::Locked(_) => (Vec::new(), Vec::new()),
            Hold::Leased { partitions } => {
                let mut through: Vec<(i64, i64)> = Vec::new();
                // Rows are in `seq` order: the last one seen of a partition is its highest.
                for row in published_rows {
                    match through.iter_mut().find(|(p, _)| *p == row.partition) {
                        Some(entry) => entry.1 = row.seq,
                        None => through.push((row.partition, row.seq)),
                    }
                }
                (partitions.clone(), through)
            }
        };
        // On SQLite the watermarks are the marks: rows are touched only to delete them.
        let touches_rows = batch.delete_published || matches!(batch.hold, Hold::Locked(_));
        Self {
            published_at: unix_millis(SystemTime::now()),
            seqs: if touches_rows {
                published_rows.iter().map(|r| r.seq).collect()
            } else {
                Vec::new()
            },
            delete: batch.delete_published,
            leased,
            through,
        }
    }

    /// Idempotent: a row already marked keeps its time, one already deleted stays gone; only
    /// this relay's leases are released.
    async fn write(&self, conn: &mut AnyConnection, relay: &str) -> Result<(), sqlx::Error> {
        if self.seqs.is_empty() {
            // Nothing published, or SQLite's watermarks say it: only the lease to release.
        } else if self.delete {
            // Cheaper than a mark: PostgreSQL writes no new row version and no index entries.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM allframe_outbox WHERE seq IN ({})",
                list(&self.seqs)
            )))
            .execute(&mut *conn)
            .await?;
        } else {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE allframe_outbox SET published_at = $1
                 WHERE published_at IS NULL AND seq IN ({})",
                list(&self.seqs)
            )))
            .bind(self.published_at)
            .execute(&mut *conn)
            .await?;
        }
        if !self.leased.is_empty() {
            sqlite::release(conn, relay, &self.leased, &self.through).await?;
        }
        Ok(())
    }
}

/// Records a failed publish attempt on the row that could not be published.
pub(crate) async fn record_failure(
    db: &Database,
    seq: i64,
    error: &str,
) -> Result<(), sqlx::Error> {
    let error: String = error.chars().take(2000).collect();
    sqlx::query(
        "UPDATE allframe_outbox SET attempts = attempts + 1, last_error = $1 WHERE seq = $2",
    )
    .bind(error)
    .bind(seq)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The backlog: unpublished rows and when the oldest was written (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// Rows not yet published.
    pub pending: u64,
    /// `created_at` of the oldest of them.
    pub oldest_created_at: Option<i64>,
}

/// Reads the backlog.
pub async fn backlog(db: &Database) -> Result<Backlog, sqlx::Error> {
    let query = match db.backend() {
        Backend::Postgres => {
            "SELECT COUNT(*), MIN(created_at) FROM allframe_outbox WHERE published_at IS NULL"
        }
        Backend::Sqlite => sqlite::BACKLOG,
    };
    let (pending, oldest): (i64, Option<i64>) = sqlx::query_as(query).fetch_one(db.pool()).await?;
    Ok(Backlog {
        pending: pending.unsigned_abs(),
        oldest_created_at: oldest,
    })
}

/// Deletes rows published more than `older_than` ago (on SQLite: published, and written more
/// than `older_than` ago), in chunks; returns how many.
pub async fn prune(db: &Database, older_than: Duration) -> Result<u64, sqlx::Error> {
    const CHUNK: u64 = 1000;
    let cutoff = unix_millis(SystemTime::now() - older_than);
    // PostgreSQL deletes by `published_at`; SQLite up to a bound found once (`sqlite`).
    let (query, bound) = match db.backend() {
        Backend::Postgres => (
            "DELETE FROM allframe_outbox WHERE seq IN (
                SELECT seq FROM allframe_outbox
                WHERE published_at IS NOT NULL AND published_at < $1
                ORDER BY seq LIMIT 1000)",
            cutoff,
        ),
        Backend::Sqlite => {
            let mut conn = db.pool().acquire().await?;
            (sqlite::PRUNE, sqlite::prune_bound(&mut conn, cutoff).await?)
        }
    };
    let mut total = 0;
    loop {
        let done = sqlx::query(query).bind(bound).execute(db.pool()).await?;
        total += done.rows_affected();
        if done.rows_affected() < CHUNK {
            return Ok(total);
        }
    }
}

/// `1, 2, 3`: integers we produced, safe to splice into SQL.
fn list(values: &[i64]) -> String {
    let mut out = String::new();
    for (i, value) in values.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}{value}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_in_range() {
        let p = partition_of("User", "42");
        assert_eq!(p, partition_of("User", "42"));
        assert!((0..PARTITIONS).contains(&p));
        let spread: std::collections::HashSet<i64> = (0..1000)
            .map(|i| partition_of("User", &i.to_string()))
            .collect();
        assert_eq!(spread.len(), 64, "1000 aggregates reach every partition");
    }

    #[test]
    fn lists_are_comma_separated() {
        assert_eq!(list(&[1, 2, 30]), "1, 2, 30");
        assert_eq!(list(&[]), "");
    }
}
