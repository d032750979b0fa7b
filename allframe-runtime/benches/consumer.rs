//! Consumer throughput: how fast the consumer runtime (dispatch loop, inbox row and unit of
//! work per event, ordered acknowledgements) drains a backlog at `concurrency` 1, 4 and 16,
//! beside the raw drain rate of the same bus in the same run (one member, `next` then `ack`, as
//! `group_drain` measures it).
//!
//! ```sh
//! cargo bench -p allframe-runtime --features nats,rabbitmq --bench consumer -- --events 5000
//! cargo bench -p allframe-runtime --features nats,rabbitmq,postgres --bench consumer -- \
//!     --events 5000 --handler-ms 2 --database postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! The handler does nothing but wait `--handler-ms` (default 0: the figure is the runtime's
//! own cost); the consumer's database is a SQLite file in a temporary directory unless
//! `--database` names another. Buses: the local bus (a SQLite file), NATS at `NATS_URL`
//! (default `nats://127.0.0.1:4222`) and RabbitMQ at `AMQP_URL` (default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`). A missing service is an error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use allframe_runtime::consumer::dispatch::{self, DispatchSettings, Membership};
use allframe_runtime::consumer::{Consumer, ConsumerMetrics, RetryPolicy, store};
use allframe_runtime::database::DatabaseTarget;
use allframe_runtime::messaging::{BusSubscription as _, EventBus, SubscribeOptions};
use allframe_runtime::{CancellationToken, Database};

mod support;

use support::{Failure, Waits, env_or};

const CONCURRENCY: [usize; 3] = [1, 4, 16];

/// A group of its own on the backlog's topic, joined before the backlog is published (so a
/// RabbitMQ queue holds it) and handed back to the caller.
async fn backlogged(
    bus: &EventBus,
    events: u64,
) -> Result<(SubscribeOptions, allframe_runtime::messaging::Subscription), Failure> {
    let messages = support::backlog("consume", "consume-bench", events);
    let topic = messages[0].topic.clone();
    let group = format!("{}.bench", topic.split('.').next().unwrap_or("consume"));
    let options = SubscribeOptions::new(group, [topic]);
    let subscription = bus.subscribe(options.clone()).await?;
    for chunk in messages.chunks(256) {
        bus.publish(chunk).await?;
    }
    Ok((options, subscription))
}

/// One member drains the backlog with `next` then `ack`; events/s.
async fn raw_drain(bus: &EventBus, events: u64) -> Result<f64, Failure> {
    let (_, mut subscription) = backlogged(bus, events).await?;
    let started = Instant::now();
    for received in 0..events {
        let delivery = tokio::time::timeout(Duration::from_secs(30), subscription.next())
            .await
            .map_err(|_| format!("{received} of {events} events arrived"))??;
        subscription.ack(&delivery).await?;
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    subscription.close().await?;
    Ok(rate)
}

/// The consumer runtime drains the backlog with `concurrency` handlers; events/s from the
/// start of the dispatch loop to the last event handled.
async fn consume(
    bus: &EventBus,
    db: &Database,
    events: u64,
    concurrency: usize,
    pause: Duration,
) -> Result<f64, Failure> {
    let (options, subscription) = backlogged(bus, events).await?;
    subscription.close().await?;
    let metrics = ConsumerMetrics::default();
    let consumer = Consumer::new(
        db.clone(),
        None,
        "consume-bench",
        options.group.clone(),
        Waits(pause),
        RetryPolicy::DEFAULT,
    )
    .observed_by(metrics.clone(), &["Ticked"]);
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(dispatch::run(
        Arc::new(consumer),
        bus.clone(),
        options,
        DispatchSettings::new(concurrency),
        Membership::default(),
        shutdown.clone(),
    ));
    support::handled(&metrics, events).await?;
    let rate = events as f64 / started.elapsed().as_secs_f64();
    shutdown.cancel();
    task.await?;
    Ok(rate)
}

async fn bench_bus(
    name: &str,
    bus: &EventBus,
    db: &Database,
    events: u64,
    pause: Duration,
) -> Result<(), Failure> {
    let raw = raw_drain(bus, events).await?;
    let mut line = format!("{name:<9} raw drain {raw:>8.0} events/s");
    for concurrency in CONCURRENCY {
        let rate = consume(bus, db, events, concurrency, pause).await?;
        line.push_str(&format!(
            "   c={concurrency:<2} {rate:>7.0}/s ({:.2}×)",
            rate / raw
        ));
    }
    println!("{line}");
    Ok(())
}

async fn run(events: u64, pause: Duration, database: Option<String>) -> Result<(), Failure> {
    let dir = tempfile::tempdir()?;
    let url = database.unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("consumer.db").display()
        )
    });
    let db = Database::connect(&DatabaseTarget::parse(&url)?).await?;
    store::install(&db).await?;
    println!(
        "consumer benchmark: {events} events of 64 aggregates, handler waits {} ms, database {}",
        pause.as_millis(),
        url.split(':').next().unwrap_or("?")
    );
    let local = EventBus::connect(None, dir.path()).await?;
    bench_bus("local", &local, &db, events, pause).await?;
    let nats_url = env_or("NATS_URL", "nats://127.0.0.1:4222");
    let nats = EventBus::connect(Some(&nats_url), dir.path())
        .await
        .map_err(|error| format!("NATS is not reachable at {nats_url}: {error}"))?;
    bench_bus("nats", &nats, &db, events, pause).await?;
    let amqp_url = env_or("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
    let rabbit = EventBus::connect(Some(&amqp_url), dir.path())
        .await
        .map_err(|error| format!("RabbitMQ is not reachable: {error}"))?;
    bench_bus("rabbitmq", &rabbit, &db, events, pause).await?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let (mut events, mut pause_ms, mut database) = (5_000_u64, 0_u64, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let number = |value: Option<String>| value.and_then(|v| v.parse::<u64>().ok());
        match flag.as_str() {
            "--events" => match number(args.next()) {
                Some(value) => events = value,
                None => return usage("--events needs a number"),
            },
            "--handler-ms" => match number(args.next()) {
                Some(value) => pause_ms = value,
                None => return usage("--handler-ms needs a number"),
            },
            "--database" => match args.next() {
                Some(url) => database = Some(url),
                None => return usage("--database needs a URL"),
            },
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => return usage(&format!("unknown argument `{other}`")),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(events, Duration::from_millis(pause_ms), database)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> std::process::ExitCode {
    eprintln!("error: {problem}");
    std::process::ExitCode::FAILURE
}
