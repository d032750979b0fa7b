//! The ingestion endpoints over a real router, database and a bus that can be switched off:
//! what is accepted is published in order, what is refused publishes nothing and is a
//! refusal, and a bus refusing a `direct` publish is a retryable 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use tokio::sync::Mutex;
use tower::ServiceExt as _;

use super::*;
use crate::context::{App, Ctx, Limits};
use crate::database::{Database, DatabaseTarget};
use crate::deferred::ResolvedValues;
use crate::extract::Rejected;
use crate::messaging::{
    BusAdapter, BusError, EventBus, Messaging, MessagingConfig, OutboundMessage, PublishError,
    PublishPattern, SubscribeOptions, outbox,
};
use crate::settings::{LogFormat, ServiceSettings};
use crate::tasks::TaskRegistry;

// The settings, the report and its event, shared with the real-services NATS test.
#[path = "../../tests/producer_support/position.rs"]
mod position;
use position::{Report, Reported};

static SETTINGS: ServiceSettings = position::position_ingest("fleet", 1);

/// A bus that records what it is given, or refuses everything while `down`.
#[derive(Clone, Default)]
struct SwitchBus {
    down: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<OutboundMessage>>>,
}

impl BusAdapter for SwitchBus {
    type Subscription = crate::messaging::Subscription;

    fn name(&self) -> &'static str {
        "switch"
    }

    async fn publish(&self, messages: &[OutboundMessage]) -> Result<(), PublishError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(PublishError::nothing(BusError::Adapter {
                bus: "switch",
                source: "switched off".into(),
            }));
        }
        self.seen.lock().await.extend_from_slice(messages);
        Ok(())
    }

    async fn subscribe(&self, _options: SubscribeOptions) -> Result<Self::Subscription, BusError> {
        Err(BusError::Adapter {
            bus: "switch",
            source: "the switch bus only records publishes".into(),
        })
    }
}

struct Fixture {
    router: axum::Router,
    bus: SwitchBus,
    db: Database,
}

async fn fixture(pattern: PublishPattern) -> Fixture {
    let target = DatabaseTarget::parse("sqlite::memory:").expect("target");
    let db = Database::connect(&target).await.expect("in-memory sqlite");
    outbox::install(&db).await.expect("outbox tables");
    let bus = SwitchBus::default();
    let ctx = Ctx::new(
        &SETTINGS,
        db.clone(),
        ResolvedValues::default(),
        TaskRegistry::new(),
        tokio_util::sync::CancellationToken::new(),
        Limits::default(),
    );
    let mut extensions = axum::http::Extensions::new();
    extensions.insert(Messaging::new(
        db.clone(),
        EventBus::custom(bus.clone()),
        MessagingConfig {
            architecture: SETTINGS.architecture,
            service: SETTINGS.name,
            pattern,
            tenant_header: None,
        },
    ));
    ctx.install_extensions(extensions);
    let router = routes::<(), Report>("/position-reports").with_state(App::new((), ctx));
    Fixture { router, bus, db }
}

struct Answer {
    status: StatusCode,
    rejected: bool,
    retry_after: Option<String>,
    body: serde_json::Value,
}

impl Fixture {
    async fn post(&self, path: &str, body: impl Into<Body>) -> Answer {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let rejected = response.extensions().get::<Rejected>().is_some();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().expect("ascii").to_owned());
        let bytes = to_bytes(response.into_body(), 1 << 20).await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Answer {
            status,
            rejected,
            retry_after,
            body,
        }
    }

    async fn published(&self) -> Vec<(String, Reported)> {
        self.bus
            .seen
            .lock()
            .await
            .iter()
            .map(|m| {
                let payload = serde_json::from_slice(&m.envelope.payload).expect("payload");
                (m.topic.clone(), payload)
            })
            .collect()
    }
}

fn report(vessel: &str, lat: f64) -> Reported {
    Reported {
        vessel: vessel.to_owned(),
        lat,
    }
}

#[tokio::test]
async fn accepted_input_is_published_directly_with_its_id() {
    let f = fixture(PublishPattern::Direct).await;
    let answer = f
        .post("/position-reports", r#"{"vessel":"v-1","lat":51.5}"#)
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    assert_eq!(answer.body["event_type"], "PositionReported");

    let seen = f.bus.seen.lock().await.clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        answer.body["event_id"],
        seen[0].envelope.id.hyphenated().to_string()
    );
    assert_eq!(
        f.published().await,
        [(
            "fleet.position-ingest.PositionReported".to_owned(),
            report("v-1", 51.5)
        )]
    );
}

#[tokio::test]
async fn a_batch_is_validated_whole_then_published_in_order() {
    let f = fixture(PublishPattern::Direct).await;
    let invalid = f
        .post(
            "/position-reports/batch",
            r#"[{"vessel":"a","lat":1},{"vessel":"b","lat":2},{"vessel":"c","lat":91}]"#,
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        invalid.body["detail"],
        "item 2: `lat` must be between -90 and 90"
    );
    assert!(invalid.rejected);
    assert!(f.published().await.is_empty(), "nothing of a refused batch");

    let valid = f
        .post(
            "/position-reports/batch",
            r#"[{"vessel":"a","lat":1},{"vessel":"b","lat":2},{"vessel":"a","lat":3}]"#,
        )
        .await;
    assert_eq!(valid.status, StatusCode::ACCEPTED, "{}", valid.body);
    let ids: Vec<String> = f
        .bus
        .seen
        .lock()
        .await
        .iter()
        .map(|m| m.envelope.id.hyphenated().to_string())
        .collect();
    assert_eq!(valid.body["event_ids"], serde_json::json!(ids));
    let payloads: Vec<Reported> = f.published().await.into_iter().map(|(_, p)| p).collect();
    assert_eq!(
        payloads,
        [report("a", 1.0), report("b", 2.0), report("a", 3.0)]
    );
}

#[tokio::test]
async fn malformed_empty_and_oversized_requests_are_refusals() {
    let f = fixture(PublishPattern::Direct).await;
    let too_many = format!(
        "[{}]",
        vec![r#"{"vessel":"v","lat":0}"#; MAX_BATCH_ITEMS + 1].join(",")
    );
    for (path, body, status, mentions) in [
        ("/position-reports", "{not json".to_owned(), 400, ""),
        (
            "/position-reports",
            r#"{"vessel":"v"}"#.to_owned(),
            422,
            "lat",
        ),
        (
            "/position-reports",
            r#"{"vessel":"v","lat":1,"speed":3}"#.to_owned(),
            422,
            "speed",
        ),
        (
            "/position-reports",
            r#"{"vessel":"v","lat":-91}"#.to_owned(),
            422,
            "`lat`",
        ),
        (
            "/position-reports/batch",
            r#"[{"vessel":"v","lat":1},{"lat":1}]"#.to_owned(),
            422,
            "[1]",
        ),
        (
            "/position-reports/batch",
            "[]".to_owned(),
            422,
            "at least one",
        ),
        ("/position-reports/batch", too_many, 413, "at most 1000"),
        (
            "/position-reports",
            format!(r#"{{"vessel":"{}","lat":1}}"#, "x".repeat(3 << 20)),
            413,
            "",
        ),
    ] {
        let answer = f.post(path, body.clone()).await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{path} {}",
            &body[..body.len().min(60)]
        );
        assert!(
            answer.rejected,
            "{path}: a refusal releases the idempotency key"
        );
        let detail = answer.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(mentions),
            "{path}: `{detail}` names `{mentions}`"
        );
    }
    assert!(f.published().await.is_empty());
}

#[tokio::test]
async fn a_bus_refusing_a_direct_publish_is_a_retryable_503() {
    let f = fixture(PublishPattern::Direct).await;
    f.bus.down.store(true, Ordering::SeqCst);
    let down = f
        .post("/position-reports", r#"{"vessel":"v-1","lat":1}"#)
        .await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(down.rejected, "the key is released: a retry must run");
    assert_eq!(down.retry_after.as_deref(), Some("1"));

    f.bus.down.store(false, Ordering::SeqCst);
    let again = f
        .post("/position-reports", r#"{"vessel":"v-1","lat":1}"#)
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(f.published().await.len(), 1);
}

#[tokio::test]
async fn with_the_outbox_events_are_rows_until_the_relay_publishes_them() {
    let f = fixture(PublishPattern::Outbox).await;
    // The bus being down does not matter: nothing goes to it in the request.
    f.bus.down.store(true, Ordering::SeqCst);
    let answer = f
        .post(
            "/position-reports/batch",
            r#"[{"vessel":"a","lat":1},{"vessel":"b","lat":2}]"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id, event_type FROM allframe_outbox ORDER BY seq")
            .fetch_all(f.db.pool())
            .await
            .expect("outbox rows");
    let ids: Vec<String> = rows.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(answer.body["event_ids"], serde_json::json!(ids));
    assert!(rows.iter().all(|(_, t)| t == "PositionReported"));
    assert!(f.published().await.is_empty());
}
