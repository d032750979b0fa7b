//! The event store on PostgreSQL, each figure beside its limit measured in the same run:
//!
//! 1. **Appends per second**, one event per unit of work (its row and its outbox row, as an
//!    event-sourced service with messaging writes them), from `--writers` tasks to one stream
//!    and to 64 streams — beside pgbench inserting the same two rows per transaction with as
//!    many clients.
//! 2. **Load time against stream length** (10 … 100,000 events): a full replay, and a load
//!    from a snapshot taken at the last multiple of 100 — the snapshot curve must stay flat.
//! 3. **Projection catch-up**, events per second applied by a projection (one row upserted per
//!    event, a transaction per batch of 500) — beside the same statements replayed straight.
//!
//! ```sh
//! cargo bench -p allframe-runtime --all-features --bench eventstore -- --appends 4000 --writers 16
//! ```
//!
//! Needs PostgreSQL at `ALLFRAME_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and `pgbench` on the PATH; each part works in a
//! scratch schema. A missing one is an error, never a skipped row.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use allframe_runtime::component::BoxFuture;
use allframe_runtime::eventstore::{
    Aggregate, AggregateEvent, EventStore, ExpectedVersion, NewEvent, Projection, Projections,
    ReadModel, RecordedEvent, Repository, StreamId,
};
use allframe_runtime::messaging::{EventBus, Messaging, MessagingConfig, PublishPattern};
use allframe_runtime::testing::PgSchema;
use allframe_runtime::{BoxError, Database, sqlx};
use futures_util::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

struct Args {
    appends: usize,
    writers: usize,
}

fn args() -> Args {
    let mut parsed = Args {
        appends: 4000,
        writers: 16,
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
            "--appends" => parsed.appends = value(),
            "--writers" => parsed.writers = value(),
            // cargo bench passes `--bench`.
            _ => {}
        }
    }
    parsed
}

/// Messaging on `db` through the outbox. The relay does not run: the outbox rows are the
/// point, so the bus is the embedded one in `data`, never read.
async fn messaging(db: &Database, data: &std::path::Path) -> Messaging {
    let bus = EventBus::connect(None, data)
        .await
        .expect("the embedded bus");
    Messaging::new(
        db.clone(),
        bus,
        MessagingConfig {
            architecture: "bench",
            service: "eventstore-bench",
            pattern: PublishPattern::Outbox,
            tenant_header: None,
        },
    )
}

/// A scratch schema with the outbox and the event store, and messaging on it.
struct Scratch {
    schema: PgSchema,
    db: Database,
    store: EventStore,
    messaging: Messaging,
    _data: tempfile::TempDir,
}

async fn scratch(tag: &str) -> Scratch {
    let schema = PgSchema::create(tag).await;
    let db = schema.connect().await;
    allframe_runtime::messaging::outbox::install(&db)
        .await
        .expect("the outbox");
    let store = EventStore::open(&db).await.expect("the store");
    let data = tempfile::tempdir().expect("a data directory");
    let messaging = messaging(&db, data.path()).await;
    Scratch {
        schema,
        db,
        store,
        messaging,
        _data: data,
    }
}

fn counted(n: u64) -> NewEvent {
    NewEvent {
        event_type: "Counted".into(),
        schema_version: 1,
        payload: json!({ "n": n }),
    }
}

/// Appends per second: `appends` units of work of one event from `writers` tasks, over
/// `streams` streams.
async fn appends(args: &Args, streams: usize) -> f64 {
    let Scratch {
        schema,
        store,
        messaging,
        ..
    } = scratch("es_bench_append").await;
    let per_writer = args.appends / args.writers;
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.writers)
        .map(|w| {
            let (store, messaging) = (store.clone(), messaging.clone());
            tokio::spawn(async move {
                for i in 0..per_writer {
                    let stream = StreamId::new("Counter", format!("c-{}", (w + i) % streams));
                    let mut uow = messaging.begin().await.expect("begin");
                    store
                        .append(
                            &mut uow,
                            &stream,
                            ExpectedVersion::Any,
                            &[counted(i as u64)],
                        )
                        .await
                        .expect("append");
                    uow.commit().await.expect("commit");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a writer");
    }
    let rate = (per_writer * args.writers) as f64 / started.elapsed().as_secs_f64();
    schema.remove().await;
    rate
}

/// pgbench with `writers` clients for `secs`: one transaction per event inserting its row and
/// its outbox row, as an append does, without the store's lock and version check.
async fn pgbench_limit(writers: usize, secs: u64) -> f64 {
    let Scratch { schema, db, .. } = scratch("es_bench_limit").await;
    sqlx::query("CREATE SEQUENCE bench_position")
        .execute(db.pool())
        .await
        .expect("a sequence");
    let script = std::env::temp_dir().join(format!("allframe-es-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "\\set n random(1, 9000000000000)\n\
         BEGIN;\n\
         INSERT INTO allframe_events (position, aggregate_type, aggregate_id, version, event_id, event_type, schema_version, payload, correlation_id, recorded_at) \
         VALUES (nextval('bench_position'), 'Counter', 'c-' || (:n % 64), :n, md5(:n::text), 'Counted', 1, '{\"n\": 1}', md5(:n::text), 0);\n\
         INSERT INTO allframe_outbox (id, partition_no, topic, event_type, aggregate_type, aggregate_id, headers, payload, created_at) \
         VALUES (md5(:n::text), :n % 16, 'bench.eventstore-bench.Counted', 'Counted', 'Counter', 'c', '{}', '\\x7b7d', 0);\n\
         END;\n",
    )
    .expect("the script");
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &writers.to_string(),
            "-j",
            "2",
            "-T",
            &secs.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(schema.url())
        .output()
        .expect("pgbench must be on the PATH");
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout);
    let tps = text
        .lines()
        .find(|line| line.starts_with("tps = "))
        .and_then(|line| line.split_whitespace().nth(2))
        .unwrap_or_else(|| {
            panic!(
                "pgbench failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    schema.remove().await;
    tps.parse().expect("a rate")
}

/// A counter whose state is its total.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter {
    total: u64,
}

#[derive(Debug)]
struct Counted(u64);

impl AggregateEvent for Counted {
    fn event_type(&self) -> &'static str {
        "Counted"
    }
    fn schema_version(_: &str) -> Option<u32> {
        Some(1)
    }
    fn to_payload(&self) -> Result<Value, serde_json::Error> {
        Ok(json!({ "n": self.0 }))
    }
    fn decode(_: &str, payload: Value) -> Result<Self, serde_json::Error> {
        Ok(Self(payload["n"].as_u64().unwrap_or_default()))
    }
}

impl Aggregate for Counter {
    const TYPE: &'static str = "Counter";
    type Event = Counted;
    type Command = u64;
    type Error = std::convert::Infallible;

    fn handle(&self, _id: &str, n: u64) -> Result<Vec<Counted>, Self::Error> {
        Ok(vec![Counted(n)])
    }
    fn apply(&mut self, event: &Counted) {
        self.total += event.0;
    }
}

/// Median time of 5 loads of a stream of each length: from a full replay, and from a
/// snapshot at the last multiple of 100.
async fn load_times(lengths: &[u64]) -> Vec<(u64, Duration, Duration)> {
    let Scratch {
        schema,
        store,
        messaging,
        ..
    } = scratch("es_bench_load").await;
    let repository = Repository::<Counter>::new(store.clone(), 100);
    let mut rows = Vec::new();
    for &length in lengths {
        let id = format!("len-{length}");
        let stream = StreamId::new("Counter", &id);
        let mut written = 0;
        while written < length {
            let batch: Vec<NewEvent> = (written..length.min(written + 1000)).map(counted).collect();
            let mut uow = messaging.begin().await.expect("begin");
            store
                .append(&mut uow, &stream, ExpectedVersion::Any, &batch)
                .await
                .expect("append");
            uow.commit().await.expect("commit");
            written += batch.len() as u64;
        }
        let full = median(5, || async {
            repository.replay_all(&id).await.expect("replay");
        })
        .await;
        let at = length / 100 * 100;
        if at > 0 {
            // The state the repository would have snapshotted at `at`.
            let mut uow = messaging.begin().await.expect("begin");
            let snapshot = json!({ "total": (0..at).sum::<u64>() });
            store
                .save_snapshot(&mut uow, &stream, at, Counter::SNAPSHOT_VERSION, &snapshot)
                .await
                .expect("snapshot");
            uow.commit().await.expect("commit");
        }
        let snapshotted = median(5, || async {
            repository.load(&id).await.expect("load");
        })
        .await;
        rows.push((length, full, snapshotted));
    }
    schema.remove().await;
    rows
}

async fn median<F, Fut>(runs: usize, mut run: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        run().await;
        times.push(started.elapsed());
    }
    times.sort();
    times[runs / 2]
}

/// One row per stream, updated per event.
struct Totals;

impl Projection for Totals {
    fn name(&self) -> &'static str {
        "Totals"
    }
    fn tables(&self) -> &'static [&'static str] {
        &["totals"]
    }
    fn create<'a>(
        &'a self,
        conn: &'a mut sqlx::AnyConnection,
        model: &'a ReadModel,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let table = model.table("totals");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE {table} (stream TEXT PRIMARY KEY, total BIGINT NOT NULL)"
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
            let table = model.table("totals");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} (stream, total) VALUES ($1, $2)
                 ON CONFLICT (stream) DO UPDATE SET total = {table}.total + excluded.total"
            )))
            .bind(&event.aggregate_id)
            .bind(event.payload["n"].as_i64().unwrap_or_default())
            .execute(conn)
            .await?;
            Ok(())
        })
    }
}

/// Events per second: a projection catching up on `events`, and the same statements replayed
/// straight (reading the events, then the same upsert per event, 500 per transaction).
async fn catch_up(events: u64) -> (f64, f64) {
    let Scratch {
        schema,
        db,
        store,
        messaging,
        ..
    } = scratch("es_bench_project").await;
    let mut written = 0;
    while written < events {
        let mut uow = messaging.begin().await.expect("begin");
        for n in written..events.min(written + 1000) {
            let stream = StreamId::new("Counter", format!("c-{}", n % 64));
            store
                .append(&mut uow, &stream, ExpectedVersion::Any, &[counted(n)])
                .await
                .expect("append");
        }
        uow.commit().await.expect("commit");
        written = events.min(written + 1000);
    }
    // The limit: the same upserts, replayed straight in transactions of 500, into a table of
    // the same shape.
    sqlx::query("CREATE TABLE limit_totals (stream TEXT PRIMARY KEY, total BIGINT NOT NULL)")
        .execute(db.pool())
        .await
        .expect("the limit's table");
    let started = Instant::now();
    let read: Vec<RecordedEvent> = store.read_all(0).try_collect().await.expect("read");
    for page in read.chunks(500) {
        let mut tx = db.pool().begin().await.expect("begin");
        for event in page {
            sqlx::query(
                "INSERT INTO limit_totals (stream, total) VALUES ($1, $2)
                 ON CONFLICT (stream) DO UPDATE SET total = limit_totals.total + excluded.total",
            )
            .bind(&event.aggregate_id)
            .bind(event.payload["n"].as_i64().unwrap_or_default())
            .execute(&mut *tx)
            .await
            .expect("upsert");
        }
        tx.commit().await.expect("commit");
    }
    let limit_rate = read.len() as f64 / started.elapsed().as_secs_f64();
    let projections = Projections::open(&store, vec![Arc::new(Totals)])
        .await
        .expect("projections");
    let started = Instant::now();
    let mut applied = 0;
    loop {
        let batch = projections.catch_up(500).await.expect("a pass");
        if batch == 0 {
            break;
        }
        applied += batch;
    }
    let rate = applied as f64 / started.elapsed().as_secs_f64();
    schema.remove().await;
    (rate, limit_rate)
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        println!(
            "appends of one event per unit of work (event row + outbox row), {} appends from {} writers\n",
            args.appends, args.writers
        );
        println!("| streams | appends/s | pgbench, the same rows (tps, the limit) | ratio |");
        println!("|---|---|---|---|");
        let limit = pgbench_limit(args.writers, 10).await;
        for streams in [1, 64] {
            let rate = appends(&args, streams).await;
            println!("| {streams} | {rate:.0} | {limit:.0} | {:.2} |", rate / limit);
        }

        println!("\nload time (median of 5) against stream length\n");
        println!("| events | full replay | from a snapshot (every 100) |");
        println!("|---|---|---|");
        for (length, full, snapshotted) in load_times(&[10, 100, 1_000, 10_000, 100_000]).await {
            println!("| {length} | {full:.2?} | {snapshotted:.2?} |");
        }

        let (rate, limit) = catch_up(100_000).await;
        println!("\nprojection catch-up over 100,000 events\n");
        println!("| projection (events/s) | its statements replayed (the limit, events/s) | ratio |");
        println!("|---|---|---|");
        println!("| {rate:.0} | {limit:.0} | {:.2} |", rate / limit);
    });
}
