//! What order per aggregate costs a consumer group, and what partitions give back: how fast one
//! member drains a backlog (`next`, then `ack` of each delivery), with the ordered group
//! delivery the adapters use by default beside the competing delivery that gives up that order,
//! in the same run; then how fast one and three members of a group drain a backlog with the
//! consumer runtime, each handling one event at a time with a handler that waits 2 ms (I/O-bound,
//! as real handlers are), while per-aggregate order holds.
//!
//! ```sh
//! cargo bench -p allframe-runtime --features nats,rabbitmq,postgres --bench group_drain -- \
//!     --events 20000 --member-events 6000 --database postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! The members share the consumer database `--database` (default the URL above): on RabbitMQ
//! they lease the topic's partitions there, and a consumer's inbox must be shared by the
//! members of its group anyway.
//!
//! - NATS JetStream: `max_in_flight` 1 (the default: one unacknowledged message per group and
//!   topic partition) beside 64 (members compete, order only with one member).
//! - RabbitMQ: the group's partition queues with a single active consumer (the default) beside
//!   the bus's publish rate for the same events — a member cannot drain faster than the broker
//!   takes them.
//!
//! Needs NATS at `NATS_URL` (default `nats://127.0.0.1:4222`) and RabbitMQ at `AMQP_URL`
//! (default `amqp://guest:guest@127.0.0.1:5672/%2f`). A missing service is an error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use allframe_runtime::consumer::dispatch::{self, DispatchSettings, Membership};
use allframe_runtime::consumer::{Consumer, ConsumerMetrics, RetryPolicy, store};
use allframe_runtime::database::DatabaseTarget;
use allframe_runtime::messaging::{
    BusSubscription as _, EventBus, NatsBus, NatsBusOptions, OutboundMessage, SubscribeOptions,
};
use allframe_runtime::{CancellationToken, Database};

mod support;

use support::{Failure, Waits, env_or};

/// What the handler of the members' benchmark waits per event.
const HANDLER_PAUSE: Duration = Duration::from_millis(2);

/// Publishes `messages` in batches of 256; events/s.
async fn publish(bus: &EventBus, messages: &[OutboundMessage]) -> Result<f64, Failure> {
    let started = Instant::now();
    for chunk in messages.chunks(256) {
        bus.publish(chunk).await?;
    }
    Ok(messages.len() as f64 / started.elapsed().as_secs_f64())
}

/// Joins a fresh group on the backlog's topic (before publishing, so RabbitMQ's queue holds
/// it), publishes the backlog, then drains it with that one member; events/s of the drain.
async fn drain(bus: &EventBus, events: u64) -> Result<f64, Failure> {
    let messages = support::backlog("drain", "drain-bench", events);
    let topic = messages[0].topic.clone();
    let group = format!("{}.drain", topic.split('.').next().unwrap_or("drain"));
    let mut subscription = bus.subscribe(SubscribeOptions::new(group, [topic])).await?;
    publish(bus, &messages).await?;
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

/// `members` consumers of one group, each handling one event at a time, drain a backlog of
/// `events` published before they start; events/s from their start to the last event handled.
async fn members_drain(
    bus: &EventBus,
    db: &Database,
    events: u64,
    members: usize,
) -> Result<f64, Failure> {
    let messages = support::backlog("members", "members-bench", events);
    let topic = messages[0].topic.clone();
    let group = format!("{}.members", topic.split('.').next().unwrap_or("members"));
    let options = SubscribeOptions::new(group.clone(), [topic]);
    // Declares the group (a RabbitMQ queue holds only what is published after it is bound).
    bus.subscribe(options.clone()).await?.close().await?;
    publish(bus, &messages).await?;
    let metrics = ConsumerMetrics::default();
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(members);
    for _ in 0..members {
        let consumer = Consumer::new(
            db.clone(),
            None,
            "members-bench",
            group.clone(),
            Waits(HANDLER_PAUSE),
            RetryPolicy::DEFAULT,
        )
        .observed_by(metrics.clone(), &["Ticked"]);
        tasks.push(tokio::spawn(dispatch::run(
            Arc::new(consumer),
            bus.clone(),
            options.clone(),
            DispatchSettings::new(1),
            Membership::default(),
            shutdown.clone(),
        )));
    }
    support::handled(&metrics, events).await?;
    let rate = events as f64 / started.elapsed().as_secs_f64();
    shutdown.cancel();
    for task in tasks {
        task.await?;
    }
    Ok(rate)
}

/// One member, then three, on `bus`.
async fn bench_members(
    name: &str,
    bus: &EventBus,
    db: &Database,
    events: u64,
) -> Result<(), Failure> {
    let one = members_drain(bus, db, events, 1).await?;
    let three = members_drain(bus, db, events, 3).await?;
    println!(
        "{name:<9} members (handler 2 ms, concurrency 1)   1 member {one:>6.0} events/s   3 members {three:>6.0} events/s   ({:.2}×)",
        three / one
    );
    Ok(())
}

async fn nats(max_in_flight: u32) -> Result<EventBus, Failure> {
    let options = NatsBusOptions {
        max_in_flight,
        ..NatsBusOptions::default()
    };
    let url = env_or("NATS_URL", "nats://127.0.0.1:4222");
    let bus = NatsBus::connect_with(&url, options)
        .await
        .map_err(|error| format!("NATS is not reachable at {url}: {error}"))?;
    Ok(EventBus::Nats(bus))
}

async fn run(events: u64, member_events: u64, database: &str) -> Result<(), Failure> {
    println!("group drain benchmark: one member, {events} events of 64 aggregates");
    let ordered = drain(&nats(1).await?, events).await?;
    let competing = drain(&nats(64).await?, events).await?;
    println!(
        "nats      ordered (max_in_flight 1) {ordered:>9.0} events/s   competing (max_in_flight 64) {competing:>9.0} events/s   ({:.2}×)",
        ordered / competing
    );
    let url = env_or("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
    let rabbit = EventBus::connect(Some(&url), &std::env::temp_dir())
        .await
        .map_err(|error| format!("RabbitMQ is not reachable: {error}"))?;
    let ordered = drain(&rabbit, events).await?;
    let published = publish(&rabbit, &support::backlog("drain", "drain-bench", events)).await?;
    println!(
        "rabbitmq  ordered (single active consumer) {ordered:>9.0} events/s   publish rate {published:>9.0} events/s   ({:.2}×)",
        ordered / published
    );

    println!("members of one group: {member_events} events of 64 aggregates");
    let db = Database::connect(&DatabaseTarget::parse(database)?)
        .await
        .map_err(|error| format!("the members' database is not reachable: {error}"))?;
    store::install(&db).await?;
    bench_members("nats", &nats(1).await?, &db, member_events).await?;
    bench_members("rabbitmq", &rabbit, &db, member_events).await?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let (mut events, mut member_events) = (20_000, 6_000);
    let mut database = String::from("postgres://postgres@127.0.0.1:5432/test");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let number = |value: Option<String>| value.and_then(|v| v.parse::<u64>().ok());
        match flag.as_str() {
            "--events" => match number(args.next()) {
                Some(value) => events = value,
                None => return usage("--events needs a number"),
            },
            "--member-events" => match number(args.next()) {
                Some(value) => member_events = value,
                None => return usage("--member-events needs a number"),
            },
            "--database" => match args.next() {
                Some(url) => database = url,
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
    match runtime.block_on(run(events, member_events, &database)) {
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
