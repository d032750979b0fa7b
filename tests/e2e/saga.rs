//! Saga orchestrators as their binaries, on the embedded default: the quick start's, driven over
//! REST, killed and resumed, read through the CLI; and one whose step awaits its participant's
//! reply on the bus, the test playing the participant — answering, declining, keeping silent,
//! and answering while the orchestrator is down.

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
            config: config.clone(),
            service: "order-service".into(),
            url: Some(format!("http://127.0.0.1:{admin_port}")),
            status: None,
            limit: Some(1000),
            json: true,
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
