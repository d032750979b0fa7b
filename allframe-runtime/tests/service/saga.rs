//! A saga orchestrator run in-process on SQLite: a step failing at each position compensates
//! exactly the completed steps in reverse order; the deadline compensates, the step in flight
//! included; a compensation that keeps failing leaves the saga stuck until it is retried; an
//! orchestrator stopped mid-step is taken over and its participant applies no step twice; bad
//! input and unknown ids are answered, not crashed on.
#![cfg(feature = "sqlite")]

use std::sync::Mutex;
use std::time::Duration;

use allframe_runtime::__private::{Launcher, MetricsSettings, RunningService, ServiceSettings};
use allframe_runtime::error::RuntimeError;
use allframe_runtime::resilience::RetryPolicy;
use allframe_runtime::saga::{Orchestrate, SagaSettings, SagaStep, Sagas, StepNames};
use allframe_runtime::{BoxError, Ctx, RestApi, Router, Service};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::launch_env::{free_port, stateless_settings, test_env};

static SETTINGS: ServiceSettings = ServiceSettings {
    archetype: "saga-orchestrator",
    ..stateless_settings("shop", "order-service")
};

static STEPS: [StepNames; 3] = [
    StepNames {
        step: "ValidateInventory",
        compensation: "ReleaseInventory",
        reply: None,
    },
    StepNames {
        step: "ReservePayment",
        compensation: "RefundPayment",
        reply: None,
    },
    StepNames {
        step: "CreateShipment",
        compensation: "CancelShipment",
        reply: None,
    },
];

const RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 2,
    initial_interval_ms: 10,
    max_interval_ms: 20,
    multiplier: 2.0,
    idempotent_only: false,
};

fn saga(timeout_seconds: u64) -> SagaSettings {
    SagaSettings {
        name: "CreateOrderSaga",
        steps: &STEPS,
        timeout_seconds,
        retry: RETRY,
        replies: &[],
    }
}

/// What a test asks of a saga through its input.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Order {
    order_id: String,
    /// The step that fails on every attempt.
    fail_at: Option<usize>,
    /// The step that never returns on its own (a hung participant).
    hang_at: Option<usize>,
    /// The step whose orchestrator hangs after calling the participant, while the order id
    /// is in [`PAUSED`].
    pause_at: Option<usize>,
    /// Every compensation fails while this order id is in [`BROKEN`].
    #[serde(default)]
    compensations_break: bool,
    /// The step whose first attempt fails (the next one succeeds).
    fail_once_at: Option<usize>,
}

/// A participant shared by every test of this binary: it applies each key once, as a real
/// participant deduplicating by idempotency key would, and records every call.
#[derive(Default)]
struct Participant {
    calls: Vec<String>,
    applied: Vec<String>,
}

static PARTICIPANT: Mutex<Participant> = Mutex::new(Participant {
    calls: Vec::new(),
    applied: Vec::new(),
});
/// The (order, step) pairs that already failed once.
static FAILED_ONCE: Mutex<Vec<(String, usize)>> = Mutex::new(Vec::new());
/// Orders whose `pause_at` step hangs.
static PAUSED: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Orders whose compensations fail.
static BROKEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// The (order, step) pairs whose compensation fails.
static BROKEN_AT: Mutex<Vec<(String, usize)>> = Mutex::new(Vec::new());

/// Breaks (or mends) the compensation of step `index` of order `order`.
fn break_compensation(order: &str, index: usize, broken: bool) {
    let mut pairs = BROKEN_AT.lock().unwrap_or_else(|p| p.into_inner());
    pairs.retain(|pair| *pair != (order.to_owned(), index));
    if broken {
        pairs.push((order.to_owned(), index));
    }
}

fn participant() -> std::sync::MutexGuard<'static, Participant> {
    PARTICIPANT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn apply(key: &str) {
    let mut participant = participant();
    participant.calls.push(key.to_owned());
    if !participant.applied.iter().any(|applied| applied == key) {
        participant.applied.push(key.to_owned());
    }
}

/// The names the participant applied for saga `id`, in order.
fn applied(id: &str) -> Vec<String> {
    let prefix = format!("{id}:");
    participant()
        .applied
        .iter()
        .filter_map(|key| key.strip_prefix(&prefix).map(str::to_owned))
        .collect()
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
            if step.input().hang_at == Some(index) {
                std::future::pending::<()>().await;
            }
            if step.input().fail_at == Some(index) {
                return Err(
                    format!("{} refused order {}", step.name(), step.input().order_id).into(),
                );
            }
            let first_try = FAILED_ONCE.lock().is_ok_and(|mut failed| {
                let this = (step.input().order_id.clone(), index);
                let first = !failed.contains(&this);
                failed.push(this);
                first
            });
            if step.input().fail_once_at == Some(index) && first_try {
                return Err("not yet".into());
            }
            apply(step.key());
            let paused = PAUSED
                .lock()
                .is_ok_and(|paused| paused.contains(&step.input().order_id));
            if step.input().pause_at == Some(index) && paused {
                std::future::pending::<()>().await;
            }
            step.record(&json!({ "step": index }))?;
            Ok(())
        })
    }

    fn compensate<'a>(
        &'a self,
        index: usize,
        step: &'a mut SagaStep<Order>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let broken = BROKEN
                .lock()
                .is_ok_and(|broken| broken.contains(&step.input().order_id));
            let broken_here = BROKEN_AT
                .lock()
                .is_ok_and(|pairs| pairs.contains(&(step.input().order_id.clone(), index)));
            if (step.input().compensations_break && broken) || broken_here {
                return Err("the participant is down".into());
            }
            apply(step.key());
            Ok(())
        })
    }
}

async fn start(
    dir: &std::path::Path,
    timeout_seconds: u64,
    extra: &[(&str, &str)],
) -> Result<RunningService, RuntimeError> {
    start_with(dir, saga(timeout_seconds), extra).await
}

async fn start_with(
    dir: &std::path::Path,
    saga: SagaSettings,
    extra: &[(&str, &str)],
) -> Result<RunningService, RuntimeError> {
    Launcher::<OrderService>::new(&SETTINGS)
        .metrics(MetricsSettings { port: None })
        .saga(saga)
        .env(test_env(dir, extra))
        .start()
        .await
}

fn sagas(running: &RunningService) -> Sagas {
    running
        .ctx()
        .get::<Sagas>()
        .cloned()
        .expect("sagas in the context")
}

/// Polls the saga until it is no longer running or compensating.
async fn settled(running: &RunningService, id: &str) -> Value {
    let client = reqwest::Client::new();
    for _ in 0..400 {
        let saga: Value = client
            .get(format!("http://{}/sagas/{id}", running.rest_addr()))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        let status = saga["status"].as_str().unwrap_or_default();
        if !matches!(status, "running" | "compensating") {
            return saga;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("saga {id} did not settle");
}

/// The service's metrics, as Prometheus reads them.
async fn scrape(running: &RunningService) -> String {
    reqwest::get(format!("http://{}/metrics", running.rest_addr()))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text")
}

async fn post_saga(running: &RunningService, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{}/sagas", running.rest_addr()))
        .json(&body)
        .send()
        .await
        .expect("post")
}

async fn started(running: &RunningService, body: Value) -> String {
    let answer = post_saga(running, body).await;
    assert_eq!(answer.status(), 202);
    let body: Value = answer.json().await.expect("json");
    body["id"].as_str().expect("an id").to_owned()
}

#[tokio::test]
async fn a_failure_at_each_step_compensates_exactly_the_completed_steps_in_reverse() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), 60, &[]).await.expect("starts");
    let names = ["ValidateInventory", "ReservePayment", "CreateShipment"];
    let undo = ["ReleaseInventory", "RefundPayment", "CancelShipment"];
    for fail_at in 0..=3 {
        let id = started(
            &running,
            json!({ "order_id": format!("o-{fail_at}"), "fail_at": fail_at }),
        )
        .await;
        let saga = settled(&running, &id).await;
        let mut expected: Vec<String> = names[..fail_at.min(3)]
            .iter()
            .map(|n| n.to_string())
            .collect();
        if fail_at < 3 {
            assert_eq!(saga["status"], "compensated", "{saga}");
            expected.extend(undo[..fail_at].iter().rev().map(|n| n.to_string()));
            let failed = &saga["steps"][fail_at];
            assert_eq!(failed["name"], names[fail_at]);
            assert_eq!(failed["status"], "failed");
            assert_eq!(failed["attempts"], 2, "the retry budget: {saga}");
            let error = failed["error"].as_str().expect("error");
            assert!(error.contains("refused order"), "{error}");
        } else {
            assert_eq!(saga["status"], "completed", "{saga}");
            assert_eq!(saga["steps"][2]["output"], json!({ "step": 2 }));
        }
        assert_eq!(applied(&id), expected, "fail_at = {fail_at}");
        let prefix = format!("{id}:");
        let calls = participant()
            .calls
            .iter()
            .filter(|call| call.starts_with(&prefix))
            .count();
        assert_eq!(
            calls,
            expected.len(),
            "each called once: fail_at = {fail_at}"
        );
    }
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test]
async fn the_deadline_compensates_the_step_in_flight_too() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), 1, &[]).await.expect("starts");
    let id = started(&running, json!({ "order_id": "late", "hang_at": 1 })).await;
    let saga = settled(&running, &id).await;
    assert_eq!(saga["status"], "compensated", "{saga}");
    assert!(
        saga["failure"]
            .as_str()
            .expect("failure")
            .contains("timed out"),
        "{saga}"
    );
    // Step 1's outcome is unknown: it is undone as well (its participant dedups by key).
    assert_eq!(
        applied(&id),
        ["ValidateInventory", "RefundPayment", "ReleaseInventory"]
    );
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test]
async fn a_compensation_failing_past_its_budget_is_stuck_until_retried() {
    let temp = tempfile::tempdir().expect("temp dir");
    let admin_port = free_port();
    let admin = [
        ("ALLFRAME_ADMIN_TOKEN", "s3cret"),
        ("ADMIN_PORT", admin_port.as_str()),
    ];
    let running = start(temp.path(), 60, &admin).await.expect("starts");
    BROKEN.lock().expect("broken").push("stuck-1".to_owned());
    let id = started(
        &running,
        json!({ "order_id": "stuck-1", "fail_at": 2, "compensations_break": true }),
    )
    .await;
    let saga = settled(&running, &id).await;
    assert_eq!(saga["status"], "stuck", "{saga}");
    let listed: Value = reqwest::get(format!("http://{}/sagas?status=stuck", running.rest_addr()))
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = listed["sagas"]
        .as_array()
        .expect("sagas")
        .iter()
        .filter_map(|saga| saga["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    let metrics = scrape(&running).await;
    assert!(
        metrics.contains("allframe_sagas_finished_total{service=\"order-service\",saga=\"CreateOrderSaga\",outcome=\"stuck\"} 1"),
        "{metrics}"
    );

    assert!(
        metrics.contains("allframe_sagas_stuck{service=\"order-service\"} 1"),
        "{metrics}"
    );
    let sagas = sagas(&running);
    let error = sagas.retry("no-such-saga").await.expect_err("unknown");
    assert!(error.to_string().contains("no-such-saga"), "{error}");
    BROKEN.lock().expect("broken").clear();
    // The operator's retry, on the admin API: the token is required.
    let retry = format!("http://127.0.0.1:{admin_port}/sagas/{id}/retry");
    let client = reqwest::Client::new();
    let refused = client.post(&retry).send().await.expect("post");
    assert_eq!(refused.status(), 401);
    let retried = client
        .post(&retry)
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("post");
    assert_eq!(retried.status(), 202);
    let saga = settled(&running, &id).await;
    assert_eq!(saga["status"], "compensated", "{saga}");
    assert_eq!(saga["retries"], 1);
    let metrics = scrape(&running).await;
    assert!(
        metrics.contains("allframe_sagas_stuck{service=\"order-service\"} 0"),
        "the retry's poll counted it again: {metrics}"
    );
    assert_eq!(
        applied(&id),
        [
            "ValidateInventory",
            "ReservePayment",
            "RefundPayment",
            "ReleaseInventory"
        ]
    );
    let again = client
        .post(&retry)
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("post");
    assert_eq!(again.status(), 409, "not stuck any more");
    let error = sagas.retry(&id).await.expect_err("not stuck any more");
    assert!(error.to_string().contains("not stuck"), "{error}");
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test]
async fn an_operator_retry_gives_a_fresh_budget_to_the_stuck_compensation_only() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), 60, &[]).await.expect("starts");
    let sagas = sagas(&running);
    let attempts = |saga: &Value, name: &str| {
        saga["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|row| row["name"] == name)
            .map_or(0, |row| row["attempts"].as_i64().unwrap_or(0))
    };
    break_compensation("budget-1", 1, true);
    let id = started(&running, json!({ "order_id": "budget-1", "fail_at": 2 })).await;
    let saga = settled(&running, &id).await;
    assert_eq!(saga["status"], "stuck", "{saga}");
    assert_eq!(attempts(&saga, "RefundPayment"), 2, "{saga}");

    // Retried while its cause is still there: the stuck compensation gets 2 more attempts.
    sagas.retry(&id).await.expect("retry");
    let saga = settled(&running, &id).await;
    assert_eq!(saga["status"], "stuck", "{saga}");
    assert_eq!(attempts(&saga, "RefundPayment"), 4, "{saga}");

    // Mended; the compensation before it breaks. It has the policy's budget, not one
    // enlarged by the two retries of another compensation.
    break_compensation("budget-1", 1, false);
    break_compensation("budget-1", 0, true);
    sagas.retry(&id).await.expect("retry");
    let saga = settled(&running, &id).await;
    assert_eq!(saga["status"], "stuck", "{saga}");
    assert_eq!(attempts(&saga, "ReleaseInventory"), 2, "{saga}");

    break_compensation("budget-1", 0, false);
    sagas.retry(&id).await.expect("retry");
    let saga = settled(&running, &id).await;
    assert_eq!(saga["status"], "compensated", "{saga}");
    assert_eq!(saga["retries"], 3);
    assert!(running.shutdown().await.is_clean());
}

#[tokio::test]
async fn a_saga_left_mid_step_is_taken_over_and_no_step_is_applied_twice() {
    let temp = tempfile::tempdir().expect("temp dir");
    let lease = [("ALLFRAME_SAGA_LEASE_SECS", "1")];
    let first = start(temp.path(), 60, &lease).await.expect("starts");
    PAUSED.lock().expect("paused").push("moved".to_owned());
    // Step 1 reaches its participant, then its orchestrator hangs before it can record that.
    let id = started(&first, json!({ "order_id": "moved", "pause_at": 1 })).await;
    for _ in 0..400 {
        if applied(&id).len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(applied(&id), ["ValidateInventory", "ReservePayment"]);
    // Stopping cuts the hung step off at the drain deadline; its lease is left to lapse.
    let _ = first.shutdown().await;
    PAUSED.lock().expect("paused").clear();

    let second = start(temp.path(), 60, &lease).await.expect("restarts");
    let saga = settled(&second, &id).await;
    assert_eq!(saga["status"], "completed", "{saga}");
    assert_eq!(
        saga["steps"][1]["attempts"], 2,
        "the attempt cut short counts: {saga}"
    );
    assert!(
        saga["epoch"].as_i64().expect("epoch") >= 2,
        "taken over: {saga}"
    );
    // Step 1 ran twice with one key; the participant applied it once.
    let key = format!("{id}:ReservePayment");
    let calls = participant()
        .calls
        .iter()
        .filter(|call| **call == key)
        .count();
    assert_eq!(calls, 2);
    assert_eq!(
        applied(&id),
        ["ValidateInventory", "ReservePayment", "CreateShipment"]
    );
    assert!(second.shutdown().await.is_clean());
}

#[tokio::test]
async fn a_healthy_orchestrator_keeps_its_saga_through_a_retry_wait_longer_than_its_lease() {
    let temp = tempfile::tempdir().expect("temp dir");
    let lease = [("ALLFRAME_SAGA_LEASE_SECS", "1")];
    // The retry waits 1.5 s: longer than the lease, with no step running meanwhile.
    let slow_retry = SagaSettings {
        retry: RetryPolicy {
            max_attempts: 2,
            initial_interval_ms: 1500,
            max_interval_ms: 1500,
            multiplier: 1.0,
            idempotent_only: false,
        },
        ..saga(60)
    };
    let first = start_with(temp.path(), slow_retry, &lease)
        .await
        .expect("starts");
    let peer = start_with(temp.path(), slow_retry, &lease)
        .await
        .expect("starts");
    let id = started(&first, json!({ "order_id": "patient", "fail_once_at": 1 })).await;
    let saga = settled(&first, &id).await;
    assert_eq!(saga["status"], "completed", "{saga}");
    assert_eq!(saga["epoch"], 1, "never taken over: {saga}");
    assert_eq!(saga["steps"][1]["attempts"], 2);
    assert!(peer.shutdown().await.is_clean());
    assert!(first.shutdown().await.is_clean());
}

#[tokio::test]
async fn a_stopping_orchestrator_gives_its_lease_up_and_a_peer_resumes_at_once() {
    let temp = tempfile::tempdir().expect("temp dir");
    // A lease far longer than the test: only a release lets the peer in.
    let lease = [("ALLFRAME_SAGA_LEASE_SECS", "600")];
    let first = start(temp.path(), 60, &lease).await.expect("starts");
    PAUSED
        .lock()
        .expect("paused")
        .push("handed-over".to_owned());
    let id = started(&first, json!({ "order_id": "handed-over", "pause_at": 0 })).await;
    for _ in 0..400 {
        if !applied(&id).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = first.shutdown().await;
    PAUSED
        .lock()
        .expect("paused")
        .retain(|order| order != "handed-over");
    let peer = start(temp.path(), 60, &lease).await.expect("starts");
    let saga = settled(&peer, &id).await;
    assert_eq!(saga["status"], "completed", "{saga}");
    assert_eq!(saga["epoch"], 2, "{saga}");
    assert!(peer.shutdown().await.is_clean());
}

#[tokio::test]
async fn bad_input_is_400_naming_the_field_and_creates_no_saga() {
    let temp = tempfile::tempdir().expect("temp dir");
    let running = start(temp.path(), 60, &[]).await.expect("starts");
    let answer = post_saga(&running, json!({ "order_id": 7 })).await;
    assert_eq!(answer.status(), 400);
    let problem: Value = answer.json().await.expect("problem");
    let detail = problem["detail"].as_str().expect("detail");
    assert!(detail.contains("order_id"), "{detail}");
    let all = sagas(&running).list(None, 10).await.expect("list");
    assert!(all.is_empty(), "{all:?}");
    let missing = reqwest::get(format!("http://{}/sagas/nope", running.rest_addr()))
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);
    let trailing = reqwest::Client::new()
        .post(format!("http://{}/sagas", running.rest_addr()))
        .header("content-type", "application/json")
        .body(r#"{"order_id": "a"} and more"#)
        .send()
        .await
        .expect("post");
    assert_eq!(trailing.status(), 400);
    let bad_status = reqwest::get(format!("http://{}/sagas?status=lost", running.rest_addr()))
        .await
        .expect("get");
    assert_eq!(bad_status.status(), 400);
    assert!(running.shutdown().await.is_clean());
}

#[cfg(feature = "failpoints")]
mod crashes {
    use crate::saga_support::{self, Store};

    fn sqlite(_case: String) -> std::future::Ready<Store> {
        let dir = tempfile::tempdir().expect("temp dir");
        std::future::ready(Store {
            vars: vec![(
                "ALLFRAME_DATA_DIR".to_owned(),
                dir.path().to_string_lossy().into_owned(),
            )],
            remove: Box::new(move || Box::pin(async move { drop(dir) })),
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_orchestrator_killed_at_any_point_resumes_on_sqlite_and_applies_no_step_twice() {
        saga_support::every_crash_resumes(sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_paused_orchestrator_is_fenced_after_a_takeover_on_sqlite() {
        saga_support::a_paused_orchestrator_is_fenced_after_a_takeover(
            sqlite(String::new()).into_inner(),
        )
        .await;
    }
}
