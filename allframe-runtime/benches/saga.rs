//! Saga throughput: sagas of three no-op steps per second through the orchestrator, on SQLite
//! and on PostgreSQL, each beside its limit measured in the same run — the same statements the
//! orchestrator runs for a saga (8 write transactions, 10 reads), replayed straight on the
//! same database by as many workers.
//!
//! ```sh
//! cargo bench -p allframe-runtime --all-features --bench saga -- --sagas 2000 --workers 32
//! ```
//!
//! Needs PostgreSQL at `ALLFRAME_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); each run works in a scratch schema. A missing
//! PostgreSQL is an error, never a skipped row.

use std::sync::Arc;
use std::time::{Duration, Instant};

use allframe_runtime::__private::{Environment, Launcher, LogFormat, ServiceSettings};
use allframe_runtime::resilience::RetryPolicy;
use allframe_runtime::saga::{Orchestrate, SagaSettings, SagaStep, Sagas, StepNames};
use allframe_runtime::testing::PgSchema;
use allframe_runtime::{BoxError, Ctx, Database, RestApi, Router, Service, sqlx};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use uuid::Uuid;

static SETTINGS: ServiceSettings = ServiceSettings {
    architecture: "bench",
    name: "saga-bench",
    archetype: "saga-orchestrator",
    rest_port: 8080,
    grpc_port: None,
    logging: LogFormat::Plain,
    declared_database: "postgres",
    shutdown_timeout_secs: 5,
    deferred: &[],
};

static STEPS: [StepNames; 3] = [
    StepNames {
        step: "A",
        compensation: "UndoA",
        reply: None,
    },
    StepNames {
        step: "B",
        compensation: "UndoB",
        reply: None,
    },
    StepNames {
        step: "C",
        compensation: "UndoC",
        reply: None,
    },
];

struct NoOp;

impl Service for NoOp {
    async fn init(_: &Ctx) -> Result<Self, BoxError> {
        Ok(Self)
    }
}

impl RestApi for NoOp {
    fn routes() -> Router<Self> {
        Router::new()
    }
}

impl Orchestrate for NoOp {
    type Input = Value;

    fn step<'a>(
        &'a self,
        _: usize,
        _: &'a mut SagaStep<Value>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async { Ok(()) })
    }

    fn compensate<'a>(
        &'a self,
        _: usize,
        _: &'a mut SagaStep<Value>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async { Ok(()) })
    }
}

struct Args {
    sagas: usize,
    workers: usize,
}

fn args() -> Args {
    let mut parsed = Args {
        sagas: 2000,
        workers: 32,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = || {
            words
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{word} takes a number"))
        };
        match word.as_str() {
            "--sagas" => parsed.sagas = value(),
            "--workers" => parsed.workers = value(),
            // cargo bench passes `--bench`.
            _ => {}
        }
    }
    parsed
}

/// Sagas per second through the orchestrator: `sagas` started by `workers` tasks, timed to
/// the last one completed.
async fn orchestrated(env: Environment, args: &Args) -> f64 {
    let running = Launcher::<NoOp>::new(&SETTINGS)
        .saga(SagaSettings {
            name: "Bench",
            steps: &STEPS,
            timeout_seconds: 600,
            retry: RetryPolicy::DEFAULT,
            replies: &[],
        })
        .env(env)
        .start()
        .await
        .expect("the orchestrator starts");
    let sagas = running.ctx().get::<Sagas>().cloned().expect("sagas");
    let db = running.ctx().db().clone();
    let started = Instant::now();
    let per_worker = args.sagas / args.workers;
    let mut workers = Vec::new();
    for _ in 0..args.workers {
        let sagas = sagas.clone();
        workers.push(tokio::spawn(async move {
            for n in 0..per_worker {
                sagas.start(&json!({ "n": n })).await.expect("start");
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    let total = (per_worker * args.workers) as i64;
    loop {
        let done: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM allframe_sagas WHERE status = 'completed'")
                .fetch_one(db.pool())
                .await
                .expect("count");
        if done == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    running.shutdown().await;
    rate
}

/// The limit: the orchestrator's statements for one saga, run straight by `workers` tasks.
async fn replayed(db: Database, args: &Args) -> f64 {
    install(&db).await;
    let db = Arc::new(db);
    let per_worker = args.sagas / args.workers;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.workers {
        let db = Arc::clone(&db);
        workers.push(tokio::spawn(async move {
            for _ in 0..per_worker {
                one_saga(&db).await.expect("statements");
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    (per_worker * args.workers) as f64 / started.elapsed().as_secs_f64()
}

/// The tables of `allframe::saga` (as `saga/store.rs` creates them).
async fn install(db: &Database) {
    for statement in [
        "CREATE TABLE IF NOT EXISTS allframe_sagas (id TEXT PRIMARY KEY, saga TEXT NOT NULL,
            status TEXT NOT NULL, input TEXT NOT NULL, next_position BIGINT NOT NULL, failure TEXT,
            owner TEXT, lease_until BIGINT NOT NULL, epoch BIGINT NOT NULL, deadline BIGINT NOT NULL,
            retries BIGINT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS allframe_sagas_status ON allframe_sagas (status, lease_until)",
        "CREATE TABLE IF NOT EXISTS allframe_saga_steps (saga_id TEXT NOT NULL, phase TEXT NOT NULL,
            step_index BIGINT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
            attempts BIGINT NOT NULL, input TEXT NOT NULL, output TEXT, error TEXT,
            started_at BIGINT NOT NULL, finished_at BIGINT,
            PRIMARY KEY (saga_id, phase, step_index))",
    ] {
        sqlx::query(statement).execute(db.pool()).await.expect("install");
    }
}

/// A write transaction (`BEGIN IMMEDIATE` on SQLite, as the orchestrator's).
async fn begin(db: &Database) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match db.backend() {
        allframe_runtime::Backend::Sqlite => db.pool().begin_with("BEGIN IMMEDIATE").await,
        allframe_runtime::Backend::Postgres => db.pool().begin().await,
    }
}

/// What the orchestrator runs for one saga of three steps that succeed: the insert, then per
/// step a read of the saga, of the step's attempts and of the earlier outputs, the step's start
/// (fence check and log row) and its completion (state and log row), then the final state.
async fn one_saga(db: &Database) -> Result<(), sqlx::Error> {
    let id = Uuid::now_v7().to_string();
    let now = 1_i64;
    let mut tx = begin(db).await?;
    sqlx::query(
        "INSERT INTO allframe_sagas (id, saga, status, input, next_position, failure, owner,
             lease_until, epoch, deadline, retries, created_at, updated_at)
         VALUES ($1, 'Bench', 'running', '{}', 0, NULL, 'me', $2, 1, $2, 0, $2, $2)",
    )
    .bind(&id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    for step in 0..4_i64 {
        let _: Option<(String, String)> =
            sqlx::query_as("SELECT id, status FROM allframe_sagas WHERE id = $1")
                .bind(&id)
                .fetch_optional(db.pool())
                .await?;
        if step == 3 {
            break;
        }
        let _: Option<i64> = sqlx::query_scalar(
            "SELECT attempts FROM allframe_saga_steps
             WHERE saga_id = $1 AND phase = 'step' AND step_index = $2",
        )
        .bind(&id)
        .bind(step)
        .fetch_optional(db.pool())
        .await?;
        let mut tx = begin(db).await?;
        sqlx::query("UPDATE allframe_sagas SET updated_at = $1 WHERE id = $2 AND epoch = 1")
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO allframe_saga_steps (saga_id, phase, step_index, name, status, attempts,
                 input, output, error, started_at, finished_at)
             VALUES ($1, 'step', $2, 'A', 'running', 1, '{}', NULL, NULL, $3, NULL)
             ON CONFLICT (saga_id, phase, step_index)
             DO UPDATE SET status = 'running', attempts = excluded.attempts",
        )
        .bind(&id)
        .bind(step)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let _: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, output FROM allframe_saga_steps
             WHERE saga_id = $1 AND phase = 'step' AND status = 'completed' AND output IS NOT NULL",
        )
        .bind(&id)
        .fetch_all(db.pool())
        .await?;
        let mut tx = begin(db).await?;
        sqlx::query(
            "UPDATE allframe_sagas SET status = 'running', next_position = $1, updated_at = $2
             WHERE id = $3 AND epoch = 1",
        )
        .bind(step + 1)
        .bind(now)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE allframe_saga_steps SET status = 'completed', finished_at = $1
             WHERE saga_id = $2 AND phase = 'step' AND step_index = $3",
        )
        .bind(now)
        .bind(&id)
        .bind(step)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    let mut tx = begin(db).await?;
    sqlx::query(
        "UPDATE allframe_sagas SET status = 'completed', owner = NULL, updated_at = $1
         WHERE id = $2 AND epoch = 1",
    )
    .bind(now)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

fn env(pairs: &[(&str, &str)]) -> Environment {
    let mut all = vec![
        ("PORT".to_owned(), "0".to_owned()),
        ("ALLFRAME_BIND_ADDR".to_owned(), "127.0.0.1".to_owned()),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ];
    all.extend(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Environment::from_pairs(all)
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        println!(
            "sagas of 3 no-op steps, {} sagas from {} workers\n",
            args.sagas, args.workers
        );
        println!("| database | orchestrator (sagas/s) | its statements replayed (the limit, sagas/s) | ratio |");
        println!("|---|---|---|---|");

        let limit_dir = tempfile::tempdir().expect("temp dir");
        let target = allframe_runtime::database::DatabaseTarget::default_sqlite(
            limit_dir.path(),
            "limit",
        )
        .expect("sqlite");
        let limit = replayed(Database::connect(&target).await.expect("sqlite"), &args).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_string_lossy().into_owned();
        let rate = orchestrated(env(&[("ALLFRAME_DATA_DIR", &path)]), &args).await;
        println!("| SQLite (WAL) | {rate:.0} | {limit:.0} | {:.2} |", rate / limit);

        let limit_schema = PgSchema::create("saga_bench_limit").await;
        let target =
            allframe_runtime::database::DatabaseTarget::parse(limit_schema.url()).expect("url");
        let limit = replayed(Database::connect(&target).await.expect("postgres"), &args).await;
        let schema = PgSchema::create("saga_bench").await;
        let rate = orchestrated(env(&[("DATABASE_URL", schema.url())]), &args).await;
        println!("| PostgreSQL | {rate:.0} | {limit:.0} | {:.2} |", rate / limit);
        limit_schema.remove().await;
        schema.remove().await;
    });
}
