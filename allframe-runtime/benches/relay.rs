//! Outbox relay benchmarks on PostgreSQL, per bus, each beside its limit measured in the same run.
//!
//! ```sh
//! bench/relay.sh            # starts tansu for Kafka, then runs this with every bus
//! cargo bench -p allframe-runtime --all-features --bench relay -- --buses local,nats,rabbitmq
//! ```
//!
//! 1. **Limit of the database**: pgbench on the same PostgreSQL running one transaction per
//!    event that inserts a row and updates it (what the outbox costs an event at minimum).
//! 2. **Relay throughput**: `--events` outbox rows are written first, then one relay publishes
//!    them to the bus; events/s from its start to the last row marked published. Beside it,
//!    the bus's own limit: the same envelopes published straight to the bus in batches of the
//!    relay's batch size, with no database, from one publisher and from as many publishers as
//!    the relay has lanes (the ratio is taken against the faster). `--buses none` runs the
//!    relay against a bus that confirms at once: the database side's own limit;
//!    `--retention-secs 0` deletes published rows instead of marking them.
//! 3. **Commit → delivery latency** at a fixed `--rate` for `--secs` (after one second of
//!    warm-up): one unit of work per event, a subscriber on the bus timestamps each arrival;
//!    p50/p99. Beside it, the same with
//!    `pattern = "direct"` (published right after commit, no outbox): the bus's own latency.
//!
//! Needs PostgreSQL at `ALLFRAME_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), `pgbench` on the PATH, and each selected bus
//! (`NATS_URL`, `AMQP_URL`, `KAFKA_URL`, with the loopback defaults). A missing service is an
//! error, never a skipped row.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use allframe_runtime::database::DatabaseTarget;
use allframe_runtime::messaging::{
    BusAdapter, BusError, BusSubscription, Envelope, Event, EventBus, LocalSubscription, Messaging,
    MessagingConfig, OutboundMessage, OutboxSettings, PayloadFormat, PublishError, PublishPattern,
    StartFrom, SubscribeOptions, outbox, topic_name,
};
use allframe_runtime::{CancellationToken, Database, sqlx};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const ARCHITECTURE: &str = "bench";
const SERVICE: &str = "relay-bench";

/// The benchmark's event: `n` counts up per aggregate.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ticked {
    aggregate: String,
    n: u64,
}

impl Event for Ticked {
    const TYPE: &'static str = "Ticked";
    const VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "Clock";
    fn aggregate_id(&self) -> String {
        self.aggregate.clone()
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    events: u64,
    rate: u64,
    secs: u64,
    buses: Vec<String>,
    /// The relay's lanes (`OutboxSettings::lanes`).
    lanes: u32,
    /// How long published rows are kept (`OutboxSettings::retention_secs`; 0 deletes them).
    retention_secs: u64,
}

impl Args {
    fn parse() -> Result<Self, Failure> {
        let mut args = Self {
            events: 20_000,
            rate: 200,
            secs: 5,
            buses: vec!["local".into(), "nats".into(), "rabbitmq".into()],
            lanes: OutboxSettings::DEFAULT.lanes,
            retention_secs: OutboxSettings::DEFAULT.retention_secs,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--events" => args.events = value()?.parse()?,
                "--rate" => args.rate = value()?.parse()?,
                "--secs" => args.secs = value()?.parse()?,
                "--buses" => args.buses = value()?.split(',').map(str::to_owned).collect(),
                "--lanes" => args.lanes = value()?.parse()?,
                "--retention-secs" => args.retention_secs = value()?.parse()?,
                // `cargo bench` passes `--bench`; nothing else is expected.
                "--bench" => {}
                other => return Err(format!("unknown argument `{other}`").into()),
            }
        }
        Ok(args)
    }
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn postgres_url() -> String {
    env_or(
        "ALLFRAME_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    )
}

fn bus_url(bus: &str) -> Result<Option<String>, Failure> {
    Ok(match bus {
        "local" | "none" => None,
        "nats" => Some(env_or("NATS_URL", "nats://127.0.0.1:4222")),
        "rabbitmq" => Some(env_or("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")),
        "kafka" => Some(env_or("KAFKA_URL", "kafka://127.0.0.1:9092")),
        other => {
            return Err(
                format!("unknown bus `{other}` (none, local, nats, rabbitmq, kafka)").into(),
            );
        }
    })
}

/// A fresh schema on the PostgreSQL server with the outbox tables; dropped by [`Scratch::drop`].
struct Scratch {
    admin: Database,
    schema: String,
    db: Database,
    url: String,
}

impl Scratch {
    async fn new(tag: &str) -> Result<Self, Failure> {
        let base = postgres_url();
        let admin = Database::connect(&DatabaseTarget::parse(&base)?).await?;
        let schema = format!("allframe_bench_{tag}_{}", Uuid::now_v7().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(admin.pool())
            .await?;
        let url = format!("{base}?options=-c%20search_path%3D{schema}");
        let db = Database::connect(&DatabaseTarget::parse(&url)?).await?;
        outbox::install(&db).await?;
        Ok(Self {
            admin,
            schema,
            db,
            url,
        })
    }

    async fn drop(self) -> Result<(), Failure> {
        self.db.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.schema
        )))
        .execute(self.admin.pool())
        .await?;
        self.admin.close().await;
        Ok(())
    }
}

fn config(pattern: PublishPattern) -> MessagingConfig {
    MessagingConfig {
        architecture: ARCHITECTURE,
        service: SERVICE,
        pattern,
        tenant_header: None,
    }
}

fn topic() -> String {
    topic_name(ARCHITECTURE, SERVICE, Ticked::TYPE)
}

/// A bus that confirms every publish at once and keeps nothing: the relay's database side
/// alone (`--buses none`).
struct NoBus;

impl BusAdapter for NoBus {
    type Subscription = LocalSubscription;

    fn name(&self) -> &'static str {
        "none"
    }

    async fn publish(&self, _messages: &[OutboundMessage]) -> Result<(), PublishError> {
        Ok(())
    }

    async fn subscribe(&self, _options: SubscribeOptions) -> Result<LocalSubscription, BusError> {
        Err(BusError::Adapter {
            bus: "none",
            source: "the bus `none` delivers nothing".into(),
        })
    }
}

async fn connect_bus(bus: &str, data_dir: &std::path::Path) -> Result<EventBus, Failure> {
    if bus == "none" {
        return Ok(EventBus::custom(NoBus));
    }
    let url = bus_url(bus)?;
    EventBus::connect(url.as_deref(), data_dir)
        .await
        .map_err(|error| format!("bus `{bus}` is not reachable: {error}").into())
}

/// pgbench: one transaction per event inserting a row and updating it, 4 clients.
fn pgbench_limit(secs: u64) -> Result<f64, Failure> {
    let url = postgres_url();
    let setup = Command::new("psql")
        .args([
            url.as_str(),
            "-qc",
            "CREATE TABLE IF NOT EXISTS allframe_bench_limit (id BIGINT PRIMARY KEY, payload TEXT, published_at TIMESTAMPTZ); TRUNCATE allframe_bench_limit",
        ])
        .status()?;
    if !setup.success() {
        return Err("psql could not create the pgbench table".into());
    }
    let script = std::env::temp_dir().join(format!("allframe-relay-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "\\set id random(1, 9000000000000)\n\
         BEGIN;\n\
         INSERT INTO allframe_bench_limit (id, payload) VALUES (:id, repeat('x', 300)) ON CONFLICT DO NOTHING;\n\
         UPDATE allframe_bench_limit SET published_at = now() WHERE id = :id;\n\
         END;\n",
    )?;
    let output = Command::new("pgbench")
        .args(["-n", "-c", "4", "-j", "2", "-T", &secs.to_string(), "-f"])
        .arg(&script)
        .arg(&url)
        .output()
        .map_err(|error| format!("pgbench must be on the PATH: {error}"))?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout);
    let tps = text
        .lines()
        .find(|line| line.starts_with("tps = "))
        .and_then(|line| line.split_whitespace().nth(2))
        .ok_or_else(|| {
            format!(
                "pgbench failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    Ok(tps.parse()?)
}

/// Writes `events` outbox rows over 64 aggregates, 100 per unit of work.
async fn fill_outbox(messaging: &Messaging, events: u64) -> Result<(), Failure> {
    let mut n = 0;
    while n < events {
        let mut uow = messaging.begin().await?;
        for _ in 0..100.min(events - n) {
            uow.publish(Ticked {
                aggregate: format!("clock-{}", n % 64),
                n,
            })?;
            n += 1;
        }
        uow.commit().await?;
    }
    Ok(())
}

/// Events/s of one relay with `settings` (lanes, retention) draining `events` prefilled rows
/// to `bus`.
async fn relay_throughput(bus: &str, events: u64, args: &Args) -> Result<f64, Failure> {
    let lanes = args.lanes;
    let scratch = Scratch::new("tp").await?;
    let data = tempfile::tempdir()?;
    let messaging = Messaging::new(
        scratch.db.clone(),
        connect_bus(bus, data.path()).await?,
        config(PublishPattern::Outbox),
    );
    fill_outbox(&messaging, events).await?;
    let shutdown = CancellationToken::new();
    let relay = messaging
        .relay(OutboxSettings {
            lanes,
            partitions_per_claim: (64 / lanes.max(1)).max(1),
            retention_secs: args.retention_secs,
            ..OutboxSettings::with_polling_ms(20)
        })
        .listen(scratch.url.clone());
    let started = Instant::now();
    let task = tokio::spawn(relay.run(shutdown.clone()));
    while messaging.metrics().published_total < events {
        tokio::time::sleep(Duration::from_millis(2)).await;
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("{bus}: relay did not finish in 10 minutes").into());
        }
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    shutdown.cancel();
    task.await?;
    scratch.drop().await?;
    Ok(rate)
}

fn envelope(n: u64) -> Result<Envelope, Failure> {
    Ok(Envelope {
        id: Uuid::now_v7(),
        event_type: Ticked::TYPE.into(),
        schema_version: Ticked::VERSION,
        aggregate_type: Ticked::AGGREGATE_TYPE.into(),
        aggregate_id: format!("clock-{}", n % 64),
        occurred_at: SystemTime::now(),
        source: SERVICE.into(),
        correlation_id: Uuid::now_v7().to_string(),
        causation_id: None,
        traceparent: None,
        tracestate: None,
        tenant_id: None,
        format: PayloadFormat::Json,
        payload: serde_json::to_vec(&Ticked {
            aggregate: format!("clock-{}", n % 64),
            n,
        })?,
    })
}

/// Events/s of publishing straight to the bus in batches of the relay's size, from
/// `publishers` tasks at once (each with its own aggregates, as the relay's lanes have): the
/// bus's limit.
async fn bus_throughput(bus: &str, events: u64, publishers: u64) -> Result<f64, Failure> {
    let data = tempfile::tempdir()?;
    let bus_handle = connect_bus(bus, data.path()).await?;
    let batch = OutboxSettings::DEFAULT.batch_size as usize;
    let mut shares: Vec<Vec<OutboundMessage>> = (0..publishers).map(|_| Vec::new()).collect();
    for n in 0..events {
        // Aggregate `n % 64` always goes to the same publisher.
        shares[((n % 64) % publishers) as usize].push(OutboundMessage {
            topic: topic(),
            envelope: envelope(n)?,
        });
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for share in shares {
        let bus_handle = bus_handle.clone();
        tasks.spawn(async move {
            for chunk in share.chunks(batch) {
                bus_handle.publish(chunk).await?;
            }
            Ok::<(), PublishError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

/// Commit → delivery latencies (ms) at `rate` events/s for `secs`, with `pattern`.
async fn latency(
    bus: &str,
    pattern: PublishPattern,
    rate: u64,
    secs: u64,
) -> Result<Vec<f64>, Failure> {
    let scratch = Scratch::new("lat").await?;
    let data = tempfile::tempdir()?;
    let bus_handle = connect_bus(bus, data.path()).await?;
    let messaging = Messaging::new(scratch.db.clone(), bus_handle.clone(), config(pattern));
    let group = format!("{ARCHITECTURE}.latency-{}", Uuid::now_v7().simple());
    let mut subscription = bus_handle
        .subscribe(SubscribeOptions::new(group, [topic()]).start(StartFrom::Latest))
        .await?;
    let shutdown = CancellationToken::new();
    let relay = (pattern == PublishPattern::Outbox).then(|| {
        tokio::spawn(
            messaging
                .relay(OutboxSettings::with_polling_ms(100))
                .listen(scratch.url.clone())
                .run(shutdown.clone()),
        )
    });
    let committed: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    // The first second warms up (connections, the LISTEN session, the bus's first batches)
    // and is not measured.
    let warm_up = rate;
    let total = rate * secs + warm_up;
    let writer = {
        let committed = Arc::clone(&committed);
        let messaging = messaging.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            for n in 0..total {
                ticks.tick().await;
                let mut uow = messaging.begin().await?;
                uow.publish(Ticked {
                    aggregate: format!("clock-{}", n % 64),
                    n,
                })?;
                // Measured from the moment the commit is issued (a direct publish happens
                // inside `commit`, so its delivery can arrive before `commit` returns).
                committed.lock().expect("lock").insert(n, Instant::now());
                uow.commit().await?;
            }
            Ok::<(), Failure>(())
        })
    };
    // Every measured event must arrive. A warm-up event may not: on Kafka a `Latest` member
    // starts where the partitions were when they were assigned, after its first poll.
    let measured = total - warm_up;
    let mut latencies = Vec::with_capacity(measured as usize);
    let deadline = Instant::now() + Duration::from_secs(secs + 60);
    while (latencies.len() as u64) < measured {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let delivery = tokio::time::timeout(remaining, subscription.next())
            .await
            .map_err(|_| {
                format!(
                    "{bus}: {} of {measured} measured events arrived",
                    latencies.len()
                )
            })??;
        let arrived = Instant::now();
        let n = delivery.decode::<Ticked>()?.n;
        subscription.ack(&delivery).await?;
        let at_commit = committed
            .lock()
            .expect("lock")
            .get(&n)
            .copied()
            .ok_or_else(|| format!("{bus}: event {n} arrived but was never committed"))?;
        if n >= warm_up {
            latencies.push(arrived.saturating_duration_since(at_commit).as_secs_f64() * 1000.0);
        }
    }
    writer.await??;
    shutdown.cancel();
    if let Some(relay) = relay {
        relay.await?;
    }
    subscription.close().await?;
    scratch.drop().await?;
    Ok(latencies)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn summary(mut latencies: Vec<f64>) -> (f64, f64) {
    latencies.sort_by(f64::total_cmp);
    (percentile(&latencies, 0.50), percentile(&latencies, 0.99))
}

async fn run(args: Args) -> Result<(), Failure> {
    println!(
        "relay benchmark: {} events, {} events/s for {} s, buses {:?}, {} lanes, published rows kept {} s",
        args.events, args.rate, args.secs, args.buses, args.lanes, args.retention_secs
    );
    let limit = pgbench_limit(args.secs.max(5))?;
    println!("limit   pgbench insert+update per event (4 clients)   {limit:>10.0} tx/s");
    for bus in &args.buses {
        let relay = relay_throughput(bus, args.events, &args).await?;
        let lanes = u64::from(args.lanes.max(1));
        let one = bus_throughput(bus, args.events, 1).await?;
        let several = bus_throughput(bus, args.events, lanes).await?;
        let raw = one.max(several);
        println!(
            "{bus:<8} relay throughput {relay:>10.0} events/s   bus alone {one:>10.0} events/s (1 publisher), {several:>10.0} events/s ({lanes} publishers)   ({:.2}× the best, {:.2}× pgbench)",
            relay / raw,
            relay / limit
        );
        if bus == "none" {
            // Nothing is delivered: no latency to measure.
            continue;
        }
        let (p50, p99) = summary(latency(bus, PublishPattern::Outbox, args.rate, args.secs).await?);
        let (d50, d99) = summary(latency(bus, PublishPattern::Direct, args.rate, args.secs).await?);
        println!(
            "{bus:<8} commit→delivery at {} events/s: outbox p50 {p50:.1} ms p99 {p99:.1} ms   direct p50 {d50:.1} ms p99 {d99:.1} ms",
            args.rate
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
