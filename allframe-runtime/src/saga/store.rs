//! The saga tables in the service's own database: `allframe_sagas` (one row per saga: input,
//! status, position, lease and epoch) and `allframe_saga_steps` (the log: one row per step and
//! compensation started).
//!
//! Every write of a driver goes through a [`Fence`]: the saga's row is updated only while its
//! epoch is the one the driver claimed, in the same transaction as the write, so a driver that
//! lost its lease writes nothing.

use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;
use sqlx::AnyConnection;

use super::{SagaError, SagaStatus};
use crate::database::Database;
use crate::messaging::envelope::unix_millis;

/// The sagas table.
pub const SAGAS_TABLE: &str = "allframe_sagas";
/// The saga log: one row per step and compensation started.
pub const STEPS_TABLE: &str = "allframe_saga_steps";

/// Serialises the creation of the tables on PostgreSQL. An arbitrary constant ("allfsaga").
const INSTALL_LOCK_KEY: i64 = 0x616c_6c66_7361_6761;

const SCHEMA: [&str; 5] = [
    "CREATE TABLE IF NOT EXISTS allframe_sagas (
        id TEXT PRIMARY KEY,
        saga TEXT NOT NULL,
        status TEXT NOT NULL,
        input TEXT NOT NULL,
        next_position BIGINT NOT NULL,
        failure TEXT,
        owner TEXT,
        lease_until BIGINT NOT NULL,
        epoch BIGINT NOT NULL,
        deadline BIGINT NOT NULL,
        retries BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS allframe_sagas_status ON allframe_sagas (status, lease_until)",
    "CREATE TABLE IF NOT EXISTS allframe_saga_steps (
        saga_id TEXT NOT NULL,
        phase TEXT NOT NULL,
        step_index BIGINT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        input TEXT NOT NULL,
        output TEXT,
        error TEXT,
        started_at BIGINT NOT NULL,
        finished_at BIGINT,
        PRIMARY KEY (saga_id, phase, step_index)
    )",
    super::replies::SCHEMA,
    // One row per operator retry, at the compensation the saga was stuck on: that one
    // compensation gets a fresh budget per retry.
    "CREATE TABLE IF NOT EXISTS allframe_saga_retries (
        saga_id TEXT NOT NULL,
        step_index BIGINT NOT NULL,
        retried_at BIGINT NOT NULL
    )",
];

/// Which way a logged invocation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// A step.
    Step,
    /// A compensation.
    Compensation,
}

impl Phase {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Step => "step",
            Self::Compensation => "compensation",
        }
    }
}

/// A saga as stored (and as `GET /sagas/{id}` shows it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SagaRecord {
    /// Its id.
    pub id: String,
    /// The saga's name.
    pub saga: String,
    /// Where it is.
    pub status: SagaStatus,
    /// Its input.
    pub input: Value,
    /// Running: the next step to run; compensating: the next step to undo (−1: none left).
    pub next_position: i64,
    /// Why it compensates, when it does.
    pub failure: Option<String>,
    /// The instance driving it, while one does.
    pub owner: Option<String>,
    /// Incremented by every claim: writes of an older epoch are refused.
    pub epoch: i64,
    /// When it times out, in Unix milliseconds.
    pub deadline: i64,
    /// How many times an operator retried it.
    pub retries: i64,
    /// When it started, in Unix milliseconds.
    pub created_at: i64,
    /// When it was last written, in Unix milliseconds.
    pub updated_at: i64,
    /// Its log, steps first, each in order.
    pub steps: Vec<StepRecord>,
}

/// One row of the saga log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    /// The step's or compensation's name.
    pub name: String,
    /// `step` or `compensation`.
    pub phase: &'static str,
    /// The step's position (0-based).
    pub index: i64,
    /// `running`, `awaiting` (its reply), `completed` or `failed`.
    pub status: String,
    /// Attempts so far (each start counts, a crashed one included).
    pub attempts: i64,
    /// What it was given.
    pub input: Value,
    /// What it recorded ([`super::SagaStep::record`]).
    pub output: Option<Value>,
    /// Its last error.
    pub error: Option<String>,
    /// When it first started, in Unix milliseconds.
    pub started_at: i64,
    /// When it completed or last failed, in Unix milliseconds.
    pub finished_at: Option<i64>,
}

/// The right to write one saga's state: its id and the epoch its driver claimed (and the
/// length of the lease every fenced write extends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fence {
    pub(crate) id: String,
    pub(crate) epoch: i64,
    pub(crate) lease_ms: i64,
}

impl Fence {
    /// The fence of a claim of saga `id` at `epoch`, whose writes extend a lease of `lease`.
    pub(crate) fn new(id: String, epoch: i64, lease: std::time::Duration) -> Self {
        Self {
            id,
            epoch,
            lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// When a lease extended now ends.
    pub(crate) fn lease_until(&self) -> i64 {
        now().saturating_add(self.lease_ms)
    }
}

/// A fenced write that did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// Another instance claimed the saga since this driver did.
    #[error("the saga was taken over by another instance (epoch moved past {0})")]
    Fenced(i64),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] sqlx::Error),
    /// An invocation's own transaction did not commit (nothing of it happened).
    #[error("{0}")]
    Commit(String),
}

pub(crate) fn now() -> i64 {
    unix_millis(SystemTime::now())
}

/// Creates the tables if missing (idempotent; safe when several instances start at once).
pub(crate) async fn install(db: &Database) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_install(INSTALL_LOCK_KEY).await?;
    for statement in SCHEMA {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// A new saga, owned by `owner` until `lease_until`, at epoch 1.
pub(crate) struct NewSaga<'a> {
    pub(crate) id: &'a str,
    pub(crate) saga: &'a str,
    pub(crate) input: &'a str,
    pub(crate) owner: &'a str,
    pub(crate) lease_until: i64,
    pub(crate) deadline: i64,
}

/// Stores a new running saga.
pub(crate) async fn insert(db: &Database, saga: &NewSaga<'_>) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let now = now();
    sqlx::query(
        "INSERT INTO allframe_sagas (id, saga, status, input, next_position, failure, owner,
             lease_until, epoch, deadline, retries, created_at, updated_at)
         VALUES ($1, $2, 'running', $3, 0, NULL, $4, $5, 1, $6, 0, $7, $7)",
    )
    .bind(saga.id)
    .bind(saga.saga)
    .bind(saga.input)
    .bind(saga.owner)
    .bind(saga.lease_until)
    .bind(saga.deadline)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Claims the active saga `id` for `owner` when no one else holds a live lease on it (a saga
/// parked for a reply is unowned with its lease at its deadline: not before then, or before
/// a reply makes it due): its epoch moves on, and the new epoch is returned.
pub(crate) async fn claim(
    db: &Database,
    saga: &str,
    id: &str,
    owner: &str,
    lease_until: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let epoch: Option<i64> = sqlx::query_scalar(
        "UPDATE allframe_sagas SET owner = $1, lease_until = $2, epoch = epoch + 1, updated_at = $3
         WHERE id = $4 AND saga = $5 AND status IN ('running', 'compensating')
           AND (owner = $1 OR lease_until < $3)
         RETURNING epoch",
    )
    .bind(owner)
    .bind(lease_until)
    .bind(now())
    .bind(id)
    .bind(saga)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(epoch)
}

/// Up to `limit` active sagas of `saga` nobody holds a live lease on, oldest first.
pub(crate) async fn claimable(
    db: &Database,
    saga: &str,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM allframe_sagas
         WHERE saga = $1 AND status IN ('running', 'compensating') AND lease_until < $2
         ORDER BY created_at LIMIT $3",
    )
    .bind(saga)
    .bind(now())
    .bind(limit)
    .fetch_all(db.pool())
    .await
}

/// Extends the lease of the saga `fence` names; `false` when another instance claimed it (or
/// it was parked for a reply: it is no one's then).
pub(crate) async fn renew_one(db: &Database, fence: &Fence) -> Result<bool, sqlx::Error> {
    // One autocommit statement: no transaction held while it waits for the write lock.
    let done = sqlx::query(
        "UPDATE allframe_sagas SET lease_until = $1
         WHERE id = $2 AND epoch = $3 AND owner IS NOT NULL",
    )
    .bind(fence.lease_until())
    .bind(&fence.id)
    .bind(fence.epoch)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives up the lease of the saga `fence` names (its driver stopped at shutdown), so another
/// instance takes it over at once.
pub(crate) async fn release_one(db: &Database, fence: &Fence) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE allframe_sagas SET owner = NULL, lease_until = 0
         WHERE id = $1 AND epoch = $2 AND status IN ('running', 'compensating')",
    )
    .bind(&fence.id)
    .bind(fence.epoch)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Gives up the leases `owner` holds (at shutdown), so another instance takes them at once.
pub(crate) async fn release(db: &Database, owner: &str) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE allframe_sagas SET owner = NULL, lease_until = 0
         WHERE owner = $1 AND status IN ('running', 'compensating')",
    )
    .bind(owner)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

type SagaRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
    i64,
    i64,
    i64,
    i64,
    i64,
);

const SAGA_COLUMNS: &str = "id, saga, status, input, next_position, failure, owner, epoch, deadline, retries, created_at, updated_at";

fn saga_record(row: SagaRow) -> SagaRecord {
    let (
        id,
        saga,
        status,
        input,
        next_position,
        failure,
        owner,
        epoch,
        deadline,
        retries,
        created_at,
        updated_at,
    ) = row;
    SagaRecord {
        id,
        saga,
        // Only this module writes the column, from `SagaStatus::as_str`.
        status: SagaStatus::parse(&status).unwrap_or(SagaStatus::Stuck),
        input: serde_json::from_str(&input).unwrap_or(Value::String(input)),
        next_position,
        failure,
        owner,
        epoch,
        deadline,
        retries,
        created_at,
        updated_at,
        steps: Vec::new(),
    }
}

/// The saga `id` without its log.
pub(crate) async fn load(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<SagaRecord>, sqlx::Error> {
    let row: Option<SagaRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SAGA_COLUMNS} FROM allframe_sagas WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(saga_record))
}

type StepRow = (
    String,
    String,
    i64,
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
);

/// The log of saga `id`: steps first, then compensations, each by position.
pub(crate) async fn steps(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Vec<StepRecord>, sqlx::Error> {
    let rows: Vec<StepRow> = sqlx::query_as(
        "SELECT name, phase, step_index, status, attempts, input, output, error, started_at,
                finished_at
         FROM allframe_saga_steps WHERE saga_id = $1
         ORDER BY CASE phase WHEN 'step' THEN 0 ELSE 1 END, step_index",
    )
    .bind(id)
    .fetch_all(conn)
    .await?;
    let json = |text: String| serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(rows
        .into_iter()
        .map(
            |(
                name,
                phase,
                index,
                status,
                attempts,
                input,
                output,
                error,
                started_at,
                finished_at,
            )| {
                StepRecord {
                    name,
                    phase: if phase == "step" {
                        Phase::Step.as_str()
                    } else {
                        Phase::Compensation.as_str()
                    },
                    index,
                    status,
                    attempts,
                    input: json(input),
                    output: output.map(json),
                    error,
                    started_at,
                    finished_at,
                }
            },
        )
        .collect())
}

/// The saga `id` with its log.
pub(crate) async fn get(db: &Database, id: &str) -> Result<Option<SagaRecord>, sqlx::Error> {
    let mut conn = db.pool().acquire().await?;
    let Some(mut record) = load(&mut conn, id).await? else {
        return Ok(None);
    };
    record.steps = steps(&mut conn, id).await?;
    Ok(Some(record))
}

/// Up to `limit` sagas of `saga`, newest first, only those in `status` when given (without
/// their logs).
pub(crate) async fn list(
    db: &Database,
    saga: &str,
    status: Option<SagaStatus>,
    limit: i64,
) -> Result<Vec<SagaRecord>, sqlx::Error> {
    let rows: Vec<SagaRow> = match status {
        Some(status) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SAGA_COLUMNS} FROM allframe_sagas WHERE saga = $1 AND status = $2
                 ORDER BY created_at DESC LIMIT $3"
            )))
            .bind(saga)
            .bind(status.as_str())
            .bind(limit)
            .fetch_all(db.pool())
            .await?
        }
        None => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SAGA_COLUMNS} FROM allframe_sagas WHERE saga = $1
                 ORDER BY created_at DESC LIMIT $2"
            )))
            .bind(saga)
            .bind(limit)
            .fetch_all(db.pool())
            .await?
        }
    };
    Ok(rows.into_iter().map(saga_record).collect())
}

/// How many sagas of `saga` are stuck.
pub(crate) async fn count_stuck(db: &Database, saga: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM allframe_sagas WHERE saga = $1 AND status = 'stuck'")
        .bind(saga)
        .fetch_one(db.pool())
        .await
}

/// Moves the saga to `status` at `next_position` (with `failure` once it compensates), if
/// `fence` still holds.
pub(crate) async fn set_state(
    conn: &mut AnyConnection,
    fence: &Fence,
    status: SagaStatus,
    next_position: i64,
    failure: Option<&str>,
) -> Result<(), WriteError> {
    let done = sqlx::query(
        "UPDATE allframe_sagas SET status = $1, next_position = $2,
             failure = COALESCE($3, failure), updated_at = $4, lease_until = $5,
             owner = CASE WHEN $1 IN ('running', 'compensating') THEN owner ELSE NULL END
         WHERE id = $6 AND epoch = $7",
    )
    .bind(status.as_str())
    .bind(next_position)
    .bind(failure)
    .bind(now())
    .bind(fence.lease_until())
    .bind(&fence.id)
    .bind(fence.epoch)
    .execute(&mut *conn)
    .await?;
    fenced(done.rows_affected(), fence)
}

/// Checks `fence` inside the caller's transaction (touching the saga's row, which on
/// PostgreSQL also locks it until the transaction ends) and extends the lease.
pub(crate) async fn check_fence(conn: &mut AnyConnection, fence: &Fence) -> Result<(), WriteError> {
    let done = sqlx::query(
        "UPDATE allframe_sagas SET updated_at = $1, lease_until = $2 WHERE id = $3 AND epoch = $4",
    )
    .bind(now())
    .bind(fence.lease_until())
    .bind(&fence.id)
    .bind(fence.epoch)
    .execute(&mut *conn)
    .await?;
    fenced(done.rows_affected(), fence)
}

/// `Ok` when the fenced write touched the saga's row, else [`WriteError::Fenced`].
pub(crate) fn fenced(rows: u64, fence: &Fence) -> Result<(), WriteError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(WriteError::Fenced(fence.epoch))
    }
}

/// How far an invocation got, as its log row says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Progress {
    /// Attempts spent (0: never started).
    pub(crate) attempts: i64,
    /// Its last attempt started and never said how it ended (a crash, a takeover, the
    /// deadline), or sent its command and awaits the reply: its outcome is unknown.
    pub(crate) in_doubt: bool,
    /// It sent its command and awaits the reply (see [`super::replies`]).
    pub(crate) awaiting: bool,
}

/// How far an invocation got.
pub(crate) async fn progress(
    db: &Database,
    id: &str,
    phase: Phase,
    index: usize,
) -> Result<Progress, sqlx::Error> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT attempts, status FROM allframe_saga_steps
         WHERE saga_id = $1 AND phase = $2 AND step_index = $3",
    )
    .bind(id)
    .bind(phase.as_str())
    .bind(index as i64)
    .fetch_optional(db.pool())
    .await?;
    Ok(
        row.map_or_else(Progress::default, |(attempts, status)| Progress {
            attempts,
            in_doubt: status == "running" || status == super::replies::AWAITING,
            awaiting: status == super::replies::AWAITING,
        }),
    )
}

/// One invocation of a step or compensation, as the log records it.
pub(crate) struct Invocation<'a> {
    pub(crate) phase: Phase,
    pub(crate) index: usize,
    pub(crate) name: &'a str,
}

/// Logs that `invocation` starts its attempt number `attempt` (fenced, own transaction):
/// written before the step runs, so a crash during it is counted.
pub(crate) async fn started(
    db: &Database,
    fence: &Fence,
    invocation: &Invocation<'_>,
    input: &str,
    attempt: i64,
) -> Result<(), WriteError> {
    let mut tx = db.begin_write().await?;
    check_fence(&mut tx, fence).await?;
    sqlx::query(
        "INSERT INTO allframe_saga_steps (saga_id, phase, step_index, name, status, attempts,
             input, output, error, started_at, finished_at)
         VALUES ($1, $2, $3, $4, 'running', $5, $6, NULL, NULL, $7, NULL)
         ON CONFLICT (saga_id, phase, step_index)
         DO UPDATE SET status = 'running', attempts = excluded.attempts",
    )
    .bind(&fence.id)
    .bind(invocation.phase.as_str())
    .bind(invocation.index as i64)
    .bind(invocation.name)
    .bind(attempt)
    .bind(input)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Logs how `invocation` ended, in the caller's transaction (`status` is `completed`,
/// `failed`, or `awaiting` its reply). The caller checks the fence in the same transaction.
pub(crate) async fn finished(
    conn: &mut AnyConnection,
    fence: &Fence,
    invocation: &Invocation<'_>,
    status: &str,
    output: Option<&str>,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE allframe_saga_steps SET status = $1, output = COALESCE($2, output), error = $3,
             finished_at = $4
         WHERE saga_id = $5 AND phase = $6 AND step_index = $7",
    )
    .bind(status)
    .bind(output)
    .bind(error)
    .bind(now())
    .bind(&fence.id)
    .bind(invocation.phase.as_str())
    .bind(invocation.index as i64)
    .execute(conn)
    .await?;
    Ok(())
}

/// How many times an operator retried saga `id` while it was stuck on the compensation of
/// step `index`.
pub(crate) async fn retries_at(db: &Database, id: &str, index: usize) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM allframe_saga_retries WHERE saga_id = $1 AND step_index = $2",
    )
    .bind(id)
    .bind(index as i64)
    .fetch_one(db.pool())
    .await
}

/// The outputs the completed steps of saga `id` recorded, by step name.
pub(crate) async fn outputs(db: &Database, id: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, output FROM allframe_saga_steps
         WHERE saga_id = $1 AND phase = 'step' AND status = 'completed' AND output IS NOT NULL",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await
}

/// Puts the stuck saga `id` back to compensating, unowned, with a fresh retry budget for the
/// compensation it is stuck on.
pub(crate) async fn retry(db: &Database, id: &str) -> Result<(), SagaError> {
    let mut tx = db.begin_write().await?;
    let done = sqlx::query(
        "UPDATE allframe_sagas SET status = 'compensating', owner = NULL, lease_until = 0,
             retries = retries + 1, updated_at = $1
         WHERE id = $2 AND status = 'stuck'",
    )
    .bind(now())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 1 {
        sqlx::query(
            "INSERT INTO allframe_saga_retries (saga_id, step_index, retried_at)
             SELECT id, next_position, $1 FROM allframe_sagas WHERE id = $2",
        )
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(());
    }
    let current = load(&mut tx, id).await?;
    drop(tx);
    match current {
        None => Err(SagaError::NotFound(id.to_owned())),
        Some(saga) => Err(SagaError::NotStuck {
            id: id.to_owned(),
            status: saga.status,
        }),
    }
}
