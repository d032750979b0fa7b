//! What order per aggregate costs a consumer group: how fast one member drains a backlog
//! (`next`, then `ack` of each delivery), with the ordered group delivery the adapters use by
//! default beside the competing delivery that gives up that order, in the same run.
//!
//! ```sh
//! cargo bench -p allframe-runtime --features nats,rabbitmq --bench group_drain -- --events 20000
//! ```
//!
//! - NATS JetStream: `max_in_flight` 1 (the default: one unacknowledged message per group and
//!   topic, members take turns) beside 64 (members compete, order only with one member).
//! - RabbitMQ: the group queue with a single active consumer (the default) beside the bus's
//!   publish rate for the same events — a member cannot drain faster than the broker takes
//!   them, and a queue without a single active consumer drains one member at the same rate.
//!
//! Needs NATS at `NATS_URL` (default `nats://127.0.0.1:4222`) and RabbitMQ at `AMQP_URL`
//! (default `amqp://guest:guest@127.0.0.1:5672/%2f`). A missing service is an error.

use std::time::{Duration, Instant};

use allframe_runtime::messaging::{
    BusSubscription as _, EventBus, NatsBus, NatsBusOptions, OutboundMessage, SubscribeOptions,
};

mod support;

use support::{Failure, env_or};

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

async fn run(events: u64) -> Result<(), Failure> {
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
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut events = 20_000;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--events" => match args.next().and_then(|value| value.parse().ok()) {
                Some(value) => events = value,
                None => {
                    eprintln!("error: --events needs a number");
                    return std::process::ExitCode::FAILURE;
                }
            },
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => {
                eprintln!("error: unknown argument `{other}`");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(events)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
