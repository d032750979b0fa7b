//! A test kit for services (feature `testing`): start a service in-process exactly as its
//! binary would, talk HTTP to it, and wait for the events it publishes; with `postgres`, give
//! each test a PostgreSQL schema of its own ([`PgSchema`]).
//!
//! ```text
//! #[tokio::test]
//! async fn a_report_is_published() {
//!     let service = allframe::testing::TestService::start::<crate::PositionIngest>().await;
//!     let mut published = service.events("PositionReported").await;
//!     let reply = service.post("/position-reports", &json!({"id": "v-1", "value": 2.5})).await;
//!     assert_eq!(reply.status, 202);
//!     assert_eq!(published.next().await.aggregate_id, "v-1");
//! }
//! ```
//!
//! [`TestService::start`] runs the launcher `#[allframe::service]` derived from the file (the
//! same one `main()` runs) inside the test's tokio runtime: on `127.0.0.1`, on ports the
//! system picks (no racy "free port" guess), with its embedded database and local bus in a
//! temporary directory removed afterwards, and with any variables the test adds
//! (`DATABASE_URL`, `EVENT_BUS_URL`, …). The service needs a multi-threaded runtime
//! (`#[tokio::test(flavor = "multi_thread")]`) only when a test blocks on it.
//!
//! Helpers panic with the reason (and the service's address) instead of returning errors:
//! they are for tests.

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
pub use postgres::{ALLFRAME_TEST_POSTGRES_URL, DEFAULT_TEST_POSTGRES_URL, PgSchema};

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::RestApi;
use crate::consumer::ConsumerBus;
use crate::context::Ctx;
use crate::env::Environment;
use crate::launcher::Launch;
use crate::messaging::{
    BusSubscription, Envelope, Event, EventContext, OutboundMessage, SubscribeOptions,
    Subscription, Uuid, envelope, topic_name,
};
use crate::shutdown::{RunningService, ShutdownReport};
use allframe_env as vars;

/// How long [`EventProbe::next`] waits for an event.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A service running in this process for a test. Dropping it stops serving (the tokio tasks
/// end with the test's runtime) and removes its data directory; [`TestService::stop`] shuts it
/// down gracefully and reports how.
#[derive(Debug)]
pub struct TestService {
    running: RunningService,
    base: String,
    http: reqwest::Client,
    // Dropped last: the service's files live here.
    data: tempfile::TempDir,
}

impl TestService {
    /// Starts `S` (a struct with `#[allframe::service]`) on the embedded defaults.
    pub async fn start<S: Launch + RestApi>() -> Self {
        Self::start_with::<S>(&[]).await
    }

    /// Starts `S` with `vars` set on top of the test defaults (which are `PORT=0`,
    /// `ALLFRAME_BIND_ADDR=127.0.0.1`, `ALLFRAME_DATA_DIR` in a temporary directory and
    /// `RUST_LOG=warn`; `GRPC_PORT` and `METRICS_PORT` are 0 too). Nothing is read from the process
    /// environment, so `DATABASE_URL` or `EVENT_BUS_URL` apply only when passed here.
    pub async fn start_with<S: Launch + RestApi>(vars: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().expect("a temporary data directory for the service");
        let mut pairs: Vec<(String, String)> = vec![
            (vars::PORT.name.into(), "0".into()),
            (vars::GRPC_PORT.name.into(), "0".into()),
            (vars::METRICS_PORT.name.into(), "0".into()),
            (vars::ALLFRAME_BIND_ADDR.name.into(), "127.0.0.1".into()),
            // Quiet unless a test asks for more: the log goes to stdout, past the capture.
            (vars::RUST_LOG.name.into(), "warn".into()),
            (
                vars::ALLFRAME_DATA_DIR.name.into(),
                data.path().to_string_lossy().into_owned(),
            ),
        ];
        for (name, value) in vars {
            pairs.retain(|(existing, _)| existing != name);
            pairs.push(((*name).to_owned(), (*value).to_owned()));
        }
        let running = S::launcher()
            .env(Environment::from_pairs(pairs))
            .start()
            .await
            .unwrap_or_else(|error| panic!("the service did not start: {error}"));
        let base = format!("http://{}", running.rest_addr());
        Self {
            running,
            base,
            http: reqwest::Client::new(),
            data,
        }
    }

    /// The REST address.
    pub fn addr(&self) -> SocketAddr {
        self.running.rest_addr()
    }

    /// `http://127.0.0.1:<port>` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The service's context: its database, bus and settings.
    pub fn ctx(&self) -> &Ctx {
        self.running.ctx()
    }

    /// Where the service keeps its embedded database and local bus.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// What the service's `channel` (`"email"`, `"sms"`, `"push"`, `"webhook"`) has sent so
    /// far, oldest event first: on the embedded defaults a channel delivers each message as a
    /// JSON file under the data dir (its fields, its `channel` and its `idempotency_key`).
    pub fn notifications(&self, channel: &str) -> Vec<serde_json::Value> {
        let dir = self.data.path().join("channels").join(channel);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut files: Vec<std::path::PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        // Keys start with the event's id (a UUIDv7: ordered by time).
        files.sort();
        files
            .iter()
            .map(|path| {
                let text = std::fs::read(path)
                    .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
                serde_json::from_slice(&text)
                    .unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display()))
            })
            .collect()
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    /// `POST path` with `body` as JSON (a value or a reference).
    pub async fn post(&self, path: &str, body: impl Serialize) -> Reply {
        self.send(self.request(Method::POST, path).json(&body))
            .await
    }

    /// `POST path` with `headers` and `body` as JSON.
    pub async fn post_with<'h>(
        &self,
        path: &str,
        headers: impl IntoIterator<Item = (&'h str, &'h str)>,
        body: impl Serialize,
    ) -> Reply {
        let request = headers.into_iter().fold(
            self.request(Method::POST, path),
            |request, (name, value)| request.header(name, value),
        );
        self.send(request.json(&body)).await
    }

    /// `PUT path` with `body` as JSON.
    pub async fn put(&self, path: &str, body: impl Serialize) -> Reply {
        self.send(self.request(Method::PUT, path).json(&body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// A request to build further (headers, a raw body), then [`TestService::send`].
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// Sends `request` and reads the whole answer.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("no answer from {}: {error}", self.base));
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .unwrap_or_else(|error| panic!("reading the answer from {}: {error}", self.base))
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Subscribes, as a consumer group of the test's own, to the `event_type` events this
    /// service publishes, from the earliest one the bus holds.
    pub async fn events(&self, event_type: &str) -> EventProbe {
        let messaging = self
            .ctx()
            .messaging()
            .expect("the service publishes no events: its file has no [services.messaging]");
        let topic = messaging.topic(event_type);
        let group = format!("allframe-test-{}", uuid::Uuid::now_v7());
        let subscription = messaging
            .bus()
            .subscribe(SubscribeOptions::new(group, [topic.clone()]))
            .await
            .unwrap_or_else(|error| panic!("cannot subscribe to `{topic}`: {error}"));
        EventProbe {
            topic,
            subscription,
        }
    }

    /// Publishes `event` as the service `producer` of this architecture would (its topic,
    /// its envelope), on the bus this service uses: how a test hands a consumer its events.
    /// Returns the event's id.
    pub async fn publish_as<E: Event>(&self, producer: &str, event: &E) -> Uuid {
        let correlation = Uuid::now_v7().hyphenated().to_string();
        let envelope = envelope(producer, &EventContext::default(), &correlation, event)
            .unwrap_or_else(|error| panic!("cannot encode the event: {error}"));
        self.publish_envelope(producer, envelope).await
    }

    /// Publishes the event `event_type` with the JSON `payload` as the service `producer`
    /// answering the saga `saga_id` (the event's correlation id), as a participant does after
    /// applying — or declining — the command of a step of `[services.saga.replies]`. Returns
    /// the event's id.
    pub async fn answer_saga(
        &self,
        producer: &str,
        saga_id: &str,
        event_type: &str,
        payload: &serde_json::Value,
    ) -> Uuid {
        let envelope = Envelope {
            id: Uuid::now_v7(),
            event_type: event_type.to_owned(),
            schema_version: 1,
            aggregate_type: event_type.to_owned(),
            aggregate_id: saga_id.to_owned(),
            occurred_at: std::time::SystemTime::now(),
            source: producer.to_owned(),
            correlation_id: saga_id.to_owned(),
            causation_id: None,
            traceparent: None,
            tracestate: None,
            tenant_id: None,
            format: crate::messaging::PayloadFormat::Json,
            payload: serde_json::to_vec(payload)
                .unwrap_or_else(|error| panic!("cannot encode the payload: {error}")),
        };
        self.publish_envelope(producer, envelope).await
    }

    /// Publishes `envelope` on `producer`'s topic of its type, on the bus this service uses.
    async fn publish_envelope(&self, producer: &str, envelope: Envelope) -> Uuid {
        let bus = match (self.ctx().get::<ConsumerBus>(), self.ctx().messaging()) {
            (Some(ConsumerBus(bus)), _) => bus.clone(),
            (None, Some(messaging)) => messaging.bus().clone(),
            (None, None) => {
                panic!("the service uses no event bus: it neither consumes nor publishes")
            }
        };
        let id = envelope.id;
        let topic = topic_name(
            self.ctx().settings().architecture,
            producer,
            &envelope.event_type,
        );
        bus.publish(&[OutboundMessage {
            topic: topic.clone(),
            envelope,
        }])
        .await
        .unwrap_or_else(|error| panic!("cannot publish to `{topic}`: {error}"));
        id
    }

    /// Shuts the service down gracefully and reports how it went.
    pub async fn stop(self) -> ShutdownReport {
        self.running.shutdown().await
    }
}

/// Waits until `done` answers true, checking every 20 ms; panics naming `what` after
/// [`EVENT_TIMEOUT`]. For effects that come asynchronously, e.g. a consumer handling an event.
pub async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {} s: {what}",
            EVENT_TIMEOUT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One HTTP answer, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body parsed as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "the {} answer is not the expected JSON ({error}): {}",
                self.status,
                self.text()
            )
        })
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of header `name`, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// The events of one topic, as a test's consumer group sees them.
#[derive(Debug)]
pub struct EventProbe {
    topic: String,
    subscription: Subscription,
}

impl EventProbe {
    /// The next event (acknowledged), waiting at most [`EVENT_TIMEOUT`].
    pub async fn next(&mut self) -> Envelope {
        match tokio::time::timeout(EVENT_TIMEOUT, self.subscription.next()).await {
            Ok(Ok(delivery)) => {
                let envelope = delivery.envelope().clone();
                self.subscription
                    .ack(&delivery)
                    .await
                    .unwrap_or_else(|error| panic!("ack on `{}`: {error}", self.topic));
                envelope
            }
            Ok(Err(error)) => panic!("reading `{}`: {error}", self.topic),
            Err(_) => panic!("no event on `{}` within {EVENT_TIMEOUT:?}", self.topic),
        }
    }

    /// The next event's payload as `T`.
    pub async fn next_payload<T: DeserializeOwned>(&mut self) -> T {
        let envelope = self.next().await;
        serde_json::from_slice(&envelope.payload).unwrap_or_else(|error| {
            panic!(
                "a `{}` payload on `{}` is not the expected type: {error}",
                envelope.event_type, self.topic
            )
        })
    }

    /// Panics if an event arrives within `wait`.
    pub async fn expect_none(&mut self, wait: Duration) {
        if let Ok(delivery) = tokio::time::timeout(wait, self.subscription.next()).await {
            panic!("an unexpected event on `{}`: {delivery:?}", self.topic);
        }
    }
}
