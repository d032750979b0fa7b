//! Saga orchestrators as their binaries, on the embedded default: the quick start's, driven over
//! REST, killed and resumed, read through the CLI; one whose step awaits its participant's
//! reply on the bus, the test playing the participant — answering, declining, keeping silent,
//! and answering while the orchestrator is down; and one whose steps call participants over
//! HTTP, one of them through a gateway of the same file, the test playing the external APIs.

use std::sync::{Arc, Mutex};

use allframe::axum::extract::Path as UrlPath;
use allframe::axum::http::{HeaderMap, HeaderValue, StatusCode};
use allframe::axum::response::{IntoResponse, Response};
use allframe::axum::routing::post;

use super::*;

/// Starts a saga for `reference` on the orchestrator at `base`; its id.
fn start(base: &str, reference: &str) -> String {
    let reply = reqwest::blocking::Client::new()
        .post(format!("{base}/sagas"))
        .json(&serde_json::json!({ "reference": reference }))
        .send()
        .expect("POST /sagas");
    assert_eq!(reply.status(), 202);
    let body: serde_json::Value = reply.json().expect("json");
    body["id"].as_str().expect("an id").to_owned()
}

/// Polls saga `id` at `base` until `done` holds of it (30 s at most); the saga then.
fn until(base: &str, id: &str, done: &dyn Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let saga: serde_json::Value = client
            .get(format!("{base}/sagas/{id}"))
            .send()
            .and_then(|r| r.json())
            .expect("GET /sagas/{id}");
        if done(&saga) {
            return saga;
        }
        assert!(
            Instant::now() < deadline,
            "saga {id} never got there: {saga}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a saga is no longer running or compensating.
fn settled(saga: &serde_json::Value) -> bool {
    !matches!(saga["status"].as_str(), Some("running" | "compensating"))
}

/// The quick start's saga orchestrator as its binary, on the embedded default: sagas started
/// over REST complete; a second saga for a reserved reference fails its first step and is
/// compensated; the process killed with SIGKILL while sagas run resumes them all on restart;
/// the CLI lists and shows them through the admin API.
#[test]
fn sagas_run_over_rest_resume_after_sigkill_and_are_read_through_the_cli() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("quickstart");
    let config = repo_root().join("examples/quickstart/architecture.toml");
    ignite_into(config.clone(), &out, false);
    cargo(&out, &["build", "-p", "order-service"]);
    let binary = e2e_target_dir().join("debug/order-service");
    let data = work.path().join("data");
    let admin_port = free_port().to_string();
    let vars = [
        ("ALLFRAME_ADMIN_TOKEN", "s3cret"),
        ("ADMIN_PORT", admin_port.as_str()),
        ("ALLFRAME_SAGA_LEASE_SECS", "1"),
    ];
    let client = reqwest::blocking::Client::new();

    let first = Service::start_with(&binary, &data, &vars);
    let done = start(&first.base, "order-1");
    assert_eq!(until(&first.base, &done, &settled)["status"], "completed");
    let refused = start(&first.base, "order-1");
    let saga = until(&first.base, &refused, &settled);
    assert_eq!(saga["status"], "compensated", "{saga}");
    assert_eq!(saga["steps"][0]["status"], "failed", "{saga}");
    let bad = client
        .post(format!("{}/sagas", first.base))
        .json(&serde_json::json!({ "reference": 7 }))
        .send()
        .expect("POST");
    assert_eq!(bad.status(), 400);

    // Many sagas at once, then SIGKILL wherever the orchestrator is.
    let running: Vec<String> = (0..20)
        .map(|n| start(&first.base, &format!("bulk-{n}")))
        .collect();
    first.kill();
    let second = Service::start_with(&binary, &data, &vars);
    for id in &running {
        assert_eq!(
            until(&second.base, id, &settled)["status"],
            "completed",
            "{id}"
        );
    }

    let sagas = |action, id: Option<String>| {
        let args = cargo_allframe::sagas::SagasArgs {
            action,
            id,
            target: cargo_allframe::admin::Target {
                config: config.clone(),
                service: "order-service".into(),
                url: Some(format!("http://127.0.0.1:{admin_port}")),
                json: true,
            },
            status: None,
            limit: Some(1000),
        };
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut reporter = Reporter::new(&mut stdout, &mut stderr, false);
        cargo_allframe::sagas::run_with_token(&args, "s3cret", &mut reporter).expect("sagas");
        drop(reporter);
        serde_json::from_slice::<serde_json::Value>(&stdout).expect("json")
    };
    let listed = sagas(cargo_allframe::sagas::Action::List, None);
    let listed = listed["sagas"].as_array().expect("sagas");
    assert_eq!(listed.len(), 22, "every saga, once");
    let shown = sagas(cargo_allframe::sagas::Action::Show, Some(refused.clone()));
    assert_eq!(shown["status"], "compensated");
    let (status, _) = second.terminate();
    assert_eq!(status.code(), Some(0));
}

/// An orchestrator whose `CreateShipment` step awaits `shipping-service`'s answer on the bus.
const REPLYING: &str = r#"[architecture]
name = "replies"

[settings]
event_bus = "nats"

[[services]]
name = "shipping-service"
type = "stateless"

[services.domain]
entities = ["Shipment"]
events = ["ShipmentCreated", "ShipmentRejected"]

[services.messaging]
pattern = "outbox"

[[services]]
name = "order-service"
type = "saga-orchestrator"

[services.saga]
name = "CreateOrderSaga"
steps = ["ReserveStock", "CreateShipment"]
compensation = ["ReleaseStock", "CancelShipment"]
timeout_seconds = 20

[services.saga.replies]
CreateShipment = { success = "ShipmentCreated", failure = "ShipmentRejected" }
"#;

/// Publishes `shipping-service`'s answer `event` to saga `saga_id` on the local bus in
/// `data_dir`, as its handler would.
fn answer(data_dir: &Path, event: &str, saga_id: &str, payload: serde_json::Value) {
    let message = OutboundMessage {
        topic: topic_name("replies", "shipping-service", event),
        envelope: Envelope {
            id: uuid::Uuid::now_v7(),
            event_type: event.into(),
            schema_version: 1,
            aggregate_type: "Shipment".into(),
            aggregate_id: saga_id.into(),
            occurred_at: std::time::SystemTime::now(),
            source: "shipping-service".into(),
            correlation_id: saga_id.into(),
            causation_id: None,
            traceparent: None,
            tracestate: None,
            tenant_id: None,
            format: PayloadFormat::Json,
            payload: serde_json::to_vec(&payload).expect("json"),
        },
    };
    publish(data_dir, &[message]);
}

/// The ignited orchestrator of a file whose saga awaits replies, as its binary, the test
/// playing its participant: an answer completes the saga with the answer as the step's output;
/// a refusal (the participant failing) compensates only the step before it; killed with two
/// sagas waiting, the one answered meanwhile completes once the orchestrator is back and the
/// one never answered is compensated at its deadline, its step included.
#[test]
fn a_saga_awaiting_its_participants_reply_completes_declines_times_out_and_survives_sigkill() {
    let work = tempfile::tempdir().expect("tempdir");
    let config = work.path().join("architecture.toml");
    std::fs::write(&config, REPLYING).expect("write the file");
    let out = work.path().join("replies");
    ignite_into(config, &out, false);
    cargo(&out, &["build", "-p", "order-service"]);
    let binary = e2e_target_dir().join("debug/order-service");
    let data = work.path().join("data");
    let awaiting = |saga: &serde_json::Value| saga["steps"][1]["status"] == "awaiting";
    let compensations = |saga: &serde_json::Value| -> Vec<String> {
        saga["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter(|row| row["phase"] == "compensation")
            .map(|row| row["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };

    let first = Service::start(&binary, &data);
    let shipped = start(&first.base, "order-1");
    until(&first.base, &shipped, &awaiting);
    answer(
        &data,
        "ShipmentCreated",
        &shipped,
        serde_json::json!({ "tracking": "T-1" }),
    );
    let saga = until(&first.base, &shipped, &settled);
    assert_eq!(saga["status"], "completed", "{saga}");
    assert_eq!(saga["steps"][1]["output"]["tracking"], "T-1", "{saga}");

    let refused = start(&first.base, "order-2");
    until(&first.base, &refused, &awaiting);
    answer(
        &data,
        "ShipmentRejected",
        &refused,
        serde_json::json!({ "reason": "no carrier" }),
    );
    let saga = until(&first.base, &refused, &settled);
    assert_eq!(saga["status"], "compensated", "{saga}");
    assert_eq!(compensations(&saga), ["ReleaseStock"], "{saga}");

    // Killed while two sagas wait; the participant answers one while no orchestrator runs
    // and never answers the other.
    let silent = start(&first.base, "order-3");
    let waiting = start(&first.base, "order-4");
    until(&first.base, &silent, &awaiting);
    until(&first.base, &waiting, &awaiting);
    first.kill();
    answer(
        &data,
        "ShipmentCreated",
        &waiting,
        serde_json::json!({ "tracking": "T-4" }),
    );
    let second = Service::start(&binary, &data);
    let saga = until(&second.base, &waiting, &settled);
    assert_eq!(saga["status"], "completed", "{saga}");
    let saga = until(&second.base, &silent, &settled);
    assert_eq!(saga["status"], "compensated", "{saga}");
    assert_eq!(
        compensations(&saga),
        ["ReleaseStock", "CancelShipment"],
        "an unanswered command may have been applied: undone too: {saga}"
    );
    let (status, _) = second.terminate();
    assert_eq!(status.code(), Some(0));
}

/// An orchestrator whose `ChargeCard` step calls `payment-gateway` (a gateway of this file,
/// calling the external `payments` API) and whose `BookCourier` step calls `courier` directly.
const CALLING: &str = r#"[architecture]
name = "calling"

[[services]]
name = "payment-gateway"
type = "gateway"

[services.integrations]
providers = ["payments"]
retry = { max_attempts = 3, initial_interval_ms = 10, idempotent_only = true }

[[services]]
name = "order-service"
type = "saga-orchestrator"
retry = { max_attempts = 2, initial_interval_ms = 10 }

[services.saga]
name = "CheckoutSaga"
steps = ["ReserveStock", "ChargeCard", "BookCourier"]
compensation = ["ReleaseStock", "RefundCard", "CancelCourier"]
timeout_seconds = 30

[services.integrations]
providers = ["payment-gateway", "courier"]
"#;

/// What a stand-in API was called with: the API, the idempotency key, the body.
type Call = (String, String, serde_json::Value);

/// Stand-ins for the external `payments` API and the courier at `<url>/payments` and
/// `<url>/courier`, recording every call. Payments refuses (402) a reference starting with
/// `refused` and is unavailable (503) for the first call about one starting with `flaky`; the
/// courier refuses a reference starting with `nocourier`.
struct Apis {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Apis {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let seen = calls.clone();
        let answer =
            move |UrlPath(api): UrlPath<String>,
                  headers: HeaderMap,
                  allframe::Json(body): allframe::Json<serde_json::Value>| {
                let seen = seen.clone();
                async move {
                    let reference = body["reference"].as_str().unwrap_or_default().to_owned();
                    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
                    let mut seen = seen.lock().expect("calls");
                    let earlier = seen
                        .iter()
                        .filter(|(to, _, b)| *to == api && b["reference"] == reference.as_str())
                        .count();
                    seen.push((api.clone(), key.unwrap_or_default().to_owned(), body));
                    let refused = (api == "payments" && reference.starts_with("refused"))
                        || (api == "courier" && reference.starts_with("nocourier"));
                    if refused {
                        return StatusCode::PAYMENT_REQUIRED.into_response();
                    }
                    if api == "payments" && reference.starts_with("flaky") && earlier == 0 {
                        let mut busy: Response = StatusCode::SERVICE_UNAVAILABLE.into_response();
                        let now = HeaderValue::from_static("0");
                        busy.headers_mut().insert("retry-after", now);
                        return busy;
                    }
                    let id = serde_json::json!({ "id": format!("{api}-{reference}") });
                    (StatusCode::CREATED, allframe::Json(id)).into_response()
                }
            };
        let app = allframe::axum::Router::new().route("/{api}/calls", post(answer));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        runtime.spawn(async move { allframe::axum::serve(listener, app).await });
        Self {
            url,
            calls,
            _runtime: runtime,
        }
    }

    /// The calls about `reference`, in order: the API and the idempotency key of each.
    fn about(&self, reference: &str) -> Vec<(String, String)> {
        let calls = self.calls.lock().expect("calls");
        calls
            .iter()
            .filter(|(_, _, body)| body["reference"] == reference)
            .map(|(api, key, _)| (api.clone(), key.clone()))
            .collect()
    }
}

/// Expected calls: each `(api, step)` as the API sees it, keyed `<saga id>:<step>`.
fn keyed(id: &str, calls: &[(&str, &str)]) -> Vec<(String, String)> {
    calls
        .iter()
        .map(|(api, step)| ((*api).to_owned(), format!("{id}:{step}")))
        .collect()
}

/// The ignited orchestrator and gateway of a file whose saga steps call participants over HTTP,
/// as their binaries on the embedded default, the test playing the external APIs. Started over
/// REST, a saga completes with each API called once under its step's key (the card through the
/// gateway); an API unavailable once is retried by the gateway under the same key; a refused
/// charge compensates the reservation only; a refused courier refunds the card through the
/// gateway, under the refund's own key, then releases the stock. The scaffold lints clean and
/// its own tests pass.
#[test]
fn a_saga_calls_its_participants_through_a_gateway_and_compensates_what_they_refuse() {
    let work = tempfile::tempdir().expect("tempdir");
    let config = work.path().join("architecture.toml");
    std::fs::write(&config, CALLING).expect("write the file");
    let out = work.path().join("calling");
    ignite_into(config, &out, true);
    clippy(&out);
    cargo(&out, &["test", "--workspace"]);
    cargo(&out, &["build", "--workspace"]);
    let binaries = e2e_target_dir().join("debug");
    let apis = Apis::start();

    let payments = format!("{}/payments", apis.url);
    let gateway = Service::start_with(
        &binaries.join("payment-gateway"),
        &work.path().join("gateway-data"),
        &[("PAYMENTS_URL", payments.as_str())],
    );
    let (via_gateway, courier) = (
        format!("{}/payments", gateway.base),
        format!("{}/courier", apis.url),
    );
    let orders = Service::start_with(
        &binaries.join("order-service"),
        &work.path().join("order-data"),
        &[
            ("PAYMENT_GATEWAY_URL", via_gateway.as_str()),
            ("COURIER_URL", courier.as_str()),
        ],
    );
    let run = |reference: &str| {
        let id = start(&orders.base, reference);
        let saga = until(&orders.base, &id, &settled);
        (id, saga)
    };
    // The compensations that ran, in the order they started (the log lists them by position).
    let compensations = |saga: &serde_json::Value| -> Vec<String> {
        let log = saga["steps"].as_array().expect("the step log");
        let mut ran: Vec<_> = log
            .iter()
            .filter(|row| row["phase"] == "compensation")
            .collect();
        ran.sort_by_key(|row| row["started_at"].as_i64());
        ran.iter()
            .map(|row| row["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };

    let (id, saga) = run("order-1");
    assert_eq!(saga["status"], "completed", "{saga}");
    let charged = &saga["steps"][1]["output"]["payment-gateway"]["id"];
    assert_eq!(charged, "payments-order-1", "{saga}");
    let expected = keyed(
        &id,
        &[("payments", "ChargeCard"), ("courier", "BookCourier")],
    );
    assert_eq!(apis.about("order-1"), expected);

    let (id, saga) = run("flaky-2");
    assert_eq!(saga["status"], "completed", "{saga}");
    let retried = [
        ("payments", "ChargeCard"),
        ("payments", "ChargeCard"),
        ("courier", "BookCourier"),
    ];
    let expected = keyed(&id, &retried);
    assert_eq!(
        apis.about("flaky-2"),
        expected,
        "the gateway retried the 503"
    );

    let (id, saga) = run("refused-3");
    assert_eq!(saga["status"], "compensated", "{saga}");
    assert_eq!(saga["steps"][1]["status"], "failed", "{saga}");
    let error = saga["steps"][1]["error"].as_str().unwrap_or_default();
    assert!(error.contains("402"), "{saga}");
    assert_eq!(compensations(&saga), ["ReleaseStock"], "{saga}");
    let attempts = [("payments", "ChargeCard"); 2];
    assert_eq!(
        apis.about("refused-3"),
        keyed(&id, &attempts),
        "the step's retries"
    );

    let (id, saga) = run("nocourier-4");
    assert_eq!(saga["status"], "compensated", "{saga}");
    assert_eq!(
        compensations(&saga),
        ["RefundCard", "ReleaseStock"],
        "{saga}"
    );
    let calls = apis.about("nocourier-4");
    let refund = ("payments".to_owned(), format!("{id}:RefundCard"));
    assert_eq!(
        calls.iter().filter(|c| **c == refund).count(),
        1,
        "{calls:?}"
    );
    assert_eq!(
        calls[0],
        ("payments".to_owned(), format!("{id}:ChargeCard"))
    );

    for service in [orders, gateway] {
        let (status, _) = service.terminate();
        assert_eq!(status.code(), Some(0));
    }
}
