//! Saga steps answered on the bus, in-process on SQLite and the local bus: a step sends its
//! command through the outbox and the saga waits, parked (no owner), for the reply event
//! carrying its id as correlation id. The success event completes the step with its payload;
//! the failure event compensates only the steps before it; silence past the deadline
//! compensates the step too; a reply that comes while the orchestrator is down is kept on the
//! bus and completes the saga once it is back; a second answer changes nothing.
#![cfg(feature = "sqlite")]

use std::path::Path;
use std::time::Duration;

use allframe_runtime::__private::{Launcher, OutboxSettings, RunningService, ServiceSettings};
use allframe_runtime::consumer::ConsumedEvent;
use allframe_runtime::messaging::{
    Envelope, LocalBus, LocalBusOptions, OutboundMessage, PayloadFormat, SubscribeOptions, Uuid,
    topic_name,
};
use allframe_runtime::resilience::RetryPolicy;
use allframe_runtime::saga::{Orchestrate, Reply, SagaSettings, SagaStep, StepNames};
use allframe_runtime::{BoxError, Ctx, Event, RestApi, Router, Service, sqlx};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::launch_env::{stateless_settings, test_env};

static SETTINGS: ServiceSettings = ServiceSettings {
    archetype: "saga-orchestrator",
    ..stateless_settings("shop", "order-service")
};

static STEPS: [StepNames; 2] = [
    StepNames {
        step: "ReserveStock",
        compensation: "ReleaseStock",
        reply: None,
    },
    StepNames {
        step: "CreateShipment",
        compensation: "CancelShipment",
        reply: Some(Reply {
            success: "ShipmentCreated",
            failure: Some("ShipmentRejected"),
        }),
    },
];

static REPLIES: [ConsumedEvent; 2] = [
    ConsumedEvent {
        event: "ShipmentCreated",
        producer: "shipping-service",
    },
    ConsumedEvent {
        event: "ShipmentRejected",
        producer: "shipping-service",
    },
];

fn saga(timeout_seconds: u64) -> SagaSettings {
    SagaSettings {
        name: "CreateOrderSaga",
        steps: &STEPS,
        timeout_seconds,
        retry: RetryPolicy {
            max_attempts: 2,
            initial_interval_ms: 10,
            max_interval_ms: 20,
            multiplier: 2.0,
            idempotent_only: false,
        },
        replies: &REPLIES,
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    order_id: String,
    /// What the shipping participant answers: `ship`, `reject`, `silent` (nothing) or `held`
    /// (the test answers by hand).
    shipping: String,
}

/// The command the `CreateShipment` step sends.
#[derive(Debug, Serialize, Deserialize)]
struct ShipOrder {
    order_id: String,
    shipping: String,
}

impl Event for ShipOrder {
    const TYPE: &'static str = "ShipOrder";
    const VERSION: u32 = 1;
    const AGGREGATE_TYPE: &'static str = "Order";
    fn aggregate_id(&self) -> String {
        self.order_id.clone()
    }
}

struct OrderService;

impl Service for OrderService {
    async fn init(_: &Ctx) -> Result<Self, BoxError> {
        Ok(Self)
    }
}

impl RestApi for OrderService {
    fn routes() -> Router<Self> {
        allframe_runtime::saga::routes::<Self>()
    }
}

impl Orchestrate for OrderService {
    type Input = Order;

    fn step<'a>(
        &'a self,
        index: usize,
        step: &'a mut SagaStep<Order>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            if index == 1 {
                let command = ShipOrder {
                    order_id: step.input().order_id.clone(),
                    shipping: step.input().shipping.clone(),
                };
                step.uow().await?.publish(command)?;
            }
            Ok(())
        })
    }

    fn compensate<'a>(
        &'a self,
        _index: usize,
        _step: &'a mut SagaStep<Order>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async { Ok(()) })
    }
}

async fn start(dir: &Path, timeout_seconds: u64) -> RunningService {
    Launcher::<OrderService>::new(&SETTINGS)
        .outbox(OutboxSettings::with_polling_ms(20))
        .saga(saga(timeout_seconds))
        .env(test_env(dir, &[]))
        .start()
        .await
        .expect("the orchestrator starts")
}

async fn bus(dir: &Path) -> LocalBus {
    let options = LocalBusOptions {
        poll_interval: Duration::from_millis(20),
        ..LocalBusOptions::default()
    };
    LocalBus::open(&dir.join("bus.db"), options)
        .await
        .expect("the local bus file")
}

/// The reply `event` of the shipping service to the command of saga `saga_id`.
fn reply(event: &str, saga_id: &str, payload: Value) -> OutboundMessage {
    OutboundMessage {
        topic: topic_name("shop", "shipping-service", event),
        envelope: Envelope {
            id: Uuid::now_v7(),
            event_type: event.to_owned(),
            schema_version: 1,
            aggregate_type: "Shipment".to_owned(),
            aggregate_id: saga_id.to_owned(),
            occurred_at: std::time::SystemTime::now(),
            source: "shipping-service".to_owned(),
            correlation_id: saga_id.to_owned(),
            causation_id: None,
            traceparent: None,
            tracestate: None,
            tenant_id: None,
            format: PayloadFormat::Json,
            payload: serde_json::to_vec(&payload).expect("json"),
        },
    }
}

/// The shipping participant: answers each `ShipOrder` as its `shipping` field says, with the
/// command's correlation id, until `stop`.
fn shipping(dir: &Path, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    let dir = dir.to_owned();
    tokio::spawn(async move {
        let bus = bus(&dir).await;
        let commands = topic_name("shop", "order-service", "ShipOrder");
        let mut subscription = bus
            .subscribe(SubscribeOptions::new("shop.shipping-service", [commands]))
            .await
            .expect("subscribe");
        loop {
            let delivery = tokio::select! {
                () = stop.cancelled() => return,
                next = subscription.next() => next.expect("a command"),
            };
            let command: ShipOrder = delivery.decode().expect("a ShipOrder");
            let saga_id = delivery.envelope().correlation_id.clone();
            let answer = match command.shipping.as_str() {
                "ship" => Some(("ShipmentCreated", json!({ "tracking": "TRK-1" }))),
                "reject" => Some(("ShipmentRejected", json!({ "reason": "no carrier" }))),
                _ => None,
            };
            if let Some((event, payload)) = answer {
                bus.publish(&[reply(event, &saga_id, payload)])
                    .await
                    .expect("reply");
            }
            subscription.ack(&delivery).await.expect("ack");
        }
    })
}

async fn get(running: &RunningService, id: &str) -> Value {
    reqwest::get(format!("http://{}/sagas/{id}", running.rest_addr()))
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

async fn started(running: &RunningService, order_id: &str, shipping: &str) -> String {
    let answer = reqwest::Client::new()
        .post(format!("http://{}/sagas", running.rest_addr()))
        .json(&json!({ "order_id": order_id, "shipping": shipping }))
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), 202);
    let body: Value = answer.json().await.expect("json");
    body["id"].as_str().expect("an id").to_owned()
}

/// Polls saga `id` until `done` holds of it.
async fn until(running: &RunningService, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..400 {
        let saga = get(running, id).await;
        if done(&saga) {
            return saga;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("saga {id} never got there: {}", get(running, id).await);
}

fn settled(saga: &Value) -> bool {
    !matches!(saga["status"].as_str(), Some("running" | "compensating"))
}

/// The log rows of `phase`, as `name:status`.
fn log(saga: &Value, phase: &str) -> Vec<String> {
    saga["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|row| row["phase"] == phase)
        .map(|row| format!("{}:{}", row["name"].as_str().unwrap_or("?"), row["status"]))
        .map(|row| row.replace('"', ""))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_completes_the_step_and_a_rejection_compensates_only_the_steps_before_it() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), 30).await;
    let stop = CancellationToken::new();
    let participant = shipping(temp.path(), stop.clone());

    let shipped = started(&running, "o-1", "ship").await;
    let saga = until(&running, &shipped, settled).await;
    assert_eq!(saga["status"], "completed", "{saga}");
    let steps = saga["steps"].as_array().expect("steps");
    assert_eq!(
        steps[1]["output"],
        json!({ "tracking": "TRK-1" }),
        "the success event's payload is the step's output: {saga}"
    );

    let rejected = started(&running, "o-2", "reject").await;
    let saga = until(&running, &rejected, settled).await;
    assert_eq!(saga["status"], "compensated", "{saga}");
    assert_eq!(
        log(&saga, "step"),
        ["ReserveStock:completed", "CreateShipment:failed"]
    );
    assert_eq!(
        log(&saga, "compensation"),
        ["ReleaseStock:completed"],
        "the participant declined: its step is not undone: {saga}"
    );
    let failure = saga["failure"].as_str().expect("a failure");
    assert!(
        failure.contains("ShipmentRejected") && failure.contains("no carrier"),
        "{failure}"
    );

    stop.cancel();
    participant.await.expect("participant");
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_step_is_compensated_at_the_deadline_as_in_doubt() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), 2).await;
    let stop = CancellationToken::new();
    let participant = shipping(temp.path(), stop.clone());

    let id = started(&running, "o-3", "silent").await;
    // A waiting saga holds no instance's lease.
    let parked = until(&running, &id, |saga| {
        log(saga, "step").last().map(String::as_str) == Some("CreateShipment:awaiting")
            && saga["owner"].is_null()
    })
    .await;
    assert_eq!(parked["status"], "running");

    let saga = until(&running, &id, settled).await;
    assert_eq!(saga["status"], "compensated", "{saga}");
    assert_eq!(
        log(&saga, "compensation"),
        ["ReleaseStock:completed", "CancelShipment:completed"],
        "the command's outcome is unknown: its step is undone too: {saga}"
    );

    stop.cancel();
    participant.await.expect("participant");
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_sent_while_the_orchestrator_is_down_completes_the_saga_once_it_is_back() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), 60).await;
    let id = started(&running, "o-4", "held").await;
    until(&running, &id, |saga| {
        log(saga, "step").last().map(String::as_str) == Some("CreateShipment:awaiting")
    })
    .await;
    assert!(running.shutdown().await.is_clean());

    // The participant answers while no orchestrator runs, then changes its mind: the first
    // answer counts.
    let bus = bus(temp.path()).await;
    bus.publish(&[reply(
        "ShipmentCreated",
        &id,
        json!({ "tracking": "TRK-4" }),
    )])
    .await
    .expect("reply");
    bus.publish(&[reply("ShipmentRejected", &id, json!({ "reason": "late" }))])
        .await
        .expect("second reply");
    // An answer to a flow that is no saga of this service is dropped.
    bus.publish(&[reply("ShipmentCreated", "not-a-saga", json!({}))])
        .await
        .expect("stray reply");

    let running = start(temp.path(), 60).await;
    let saga = until(&running, &id, settled).await;
    assert_eq!(saga["status"], "completed", "{saga}");
    assert_eq!(saga["steps"][1]["output"], json!({ "tracking": "TRK-4" }));
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_received_before_the_deadline_counts_though_the_saga_is_driven_after_it() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), 1).await;
    let id = started(&running, "o-5", "held").await;
    until(&running, &id, |saga| {
        log(saga, "step").last().map(String::as_str) == Some("CreateShipment:awaiting")
    })
    .await;
    // Stored in time, but the wake that would have made the saga due is lost: it is driven
    // again only at its deadline.
    sqlx::query(
        "INSERT INTO allframe_saga_replies (saga_id, step_index, event_type, answer, event_id,
             payload, received_at)
         VALUES ($1, 1, 'ShipmentCreated', 'success', 'e-5', '{\"tracking\":\"T-5\"}', $2)",
    )
    .bind(&id)
    .bind(i64::try_from(std::time::UNIX_EPOCH.elapsed().expect("clock").as_millis()).expect("ms"))
    .execute(running.ctx().db().pool())
    .await
    .expect("a reply row");
    let saga = until(&running, &id, settled).await;
    assert_eq!(saga["status"], "completed", "{saga}");
    assert_eq!(saga["steps"][1]["output"], json!({ "tracking": "T-5" }));
    assert!(running.shutdown().await.is_clean());
}
