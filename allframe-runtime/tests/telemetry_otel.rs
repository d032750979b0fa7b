//! `[observability] tracing = "opentelemetry"` (feature `otel`): a service started with
//! `.tracing(..)` exports its request spans over OTLP/gRPC to the collector named by
//! `OTEL_EXPORTER_OTLP_ENDPOINT` — here a fake collector (the OTLP trace service, through
//! tonic) in the test. A request carrying W3C `traceparent`, or B3 headers, continues the
//! caller's trace, the event its unit of work publishes carries the request span's context,
//! and a consumer handling the event continues that trace. Its own test binary: the global subscriber (with the OpenTelemetry layer) is
//! installed once per process.
#![cfg(all(feature = "otel", feature = "sqlite", feature = "grpc"))]

mod messaging_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use allframe_runtime::__private::{Launcher, TraceSampling, TracingSettings};
use allframe_runtime::channel::Notifications;
use allframe_runtime::consumer::{Consumer, HandleError, Handlers, Outcome, RetryPolicy, store};
use allframe_runtime::messaging::{
    BusSubscription as _, Delivery, SubscribeOptions, UnitOfWork, topic_name,
};
use futures_util::future::BoxFuture;
use messaging_support::launch_env::test_env;
use messaging_support::ledger::{Ledger, MIGRATIONS, SETTINGS};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;

/// A consumer of the ledger's events whose handler does nothing.
struct Audit;

impl Handlers for Audit {
    fn handle<'a>(
        &'a self,
        _uow: &'a mut UnitOfWork,
        _delivery: &'a Delivery,
        _notify: &'a mut Notifications,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The fake collector: keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans);
        self.spans.lock().expect("lock").extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

const TRACE_W3C: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_W3C: &str = "00f067aa0ba902b7";
const TRACE_B3: &str = "463ac35c9f6413ad48485a3953bb6124";
const PARENT_B3: &str = "a2fb4a1d1a96d312";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_are_exported_in_the_callers_trace_and_events_carry_them() {
    let collector_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let collector = Collector::default();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve(collector_addr);
    tokio::spawn(server);

    let temp = tempfile::tempdir().expect("temp dir");
    let running = Launcher::<Ledger>::new(&SETTINGS)
        .migrations(&MIGRATIONS)
        .direct_publish()
        .tracing(TracingSettings {
            sampling: TraceSampling::ParentBased(0.0),
            b3: true,
            baggage: false,
        })
        .env(test_env(
            temp.path(),
            &[(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                &format!("http://{collector_addr}"),
            )],
        ))
        .start()
        .await
        .expect("service starts");
    let client = reqwest::Client::new();
    let base = format!("http://{}", running.rest_addr());
    let w3c = client
        .post(format!("{base}/deposits/alice/1"))
        .header("traceparent", format!("00-{TRACE_W3C}-{PARENT_W3C}-01"))
        .send()
        .await
        .expect("w3c request");
    assert_eq!(w3c.status(), 200);
    let b3 = client
        .post(format!("{base}/deposits/bob/2"))
        .header("X-B3-TraceId", TRACE_B3)
        .header("X-B3-SpanId", PARENT_B3)
        .header("X-B3-Sampled", "1")
        .send()
        .await
        .expect("b3 request");
    assert_eq!(b3.status(), 200);

    let bus = running.ctx().bus().expect("bus").clone();
    let mut subscription = bus
        .subscribe(SubscribeOptions::new(
            "bank.audit",
            [topic_name("bank", "ledger-service", "Deposited")],
        ))
        .await
        .expect("subscribe");
    let mut envelopes = Vec::new();
    let db = running.ctx().db().clone();
    store::install(&db).await.expect("consumer tables");
    let audit = Consumer::new(
        db,
        None,
        "audit-service",
        "bank.audit",
        Audit,
        RetryPolicy::DEFAULT,
    );
    for _ in 0..2 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), subscription.next())
            .await
            .expect("an event within 10 s")
            .expect("next");
        assert_eq!(
            audit.handle(&delivery).await.expect("handled"),
            Outcome::Handled
        );
        subscription.ack(&delivery).await.expect("ack");
        envelopes.push(delivery.envelope().clone());
    }
    let report = running.shutdown().await;
    assert!(report.is_clean(), "{report:?}");

    // Shutdown flushed the batch: the request spans are at the collector.
    let spans = collector.spans.lock().expect("lock").clone();
    let request_span = |trace: &str| {
        spans
            .iter()
            .find(|span| span.name == "request" && hex(&span.trace_id) == trace)
            .unwrap_or_else(|| panic!("a request span in trace {trace}: {spans:?}"))
    };
    let from_w3c = request_span(TRACE_W3C);
    assert_eq!(
        hex(&from_w3c.parent_span_id),
        PARENT_W3C,
        "the caller's span is the parent"
    );
    let from_b3 = request_span(TRACE_B3);
    assert_eq!(
        hex(&from_b3.parent_span_id),
        PARENT_B3,
        "B3 headers are read too"
    );

    // Each event carries its request span's context, for its consumers to continue: the
    // consumer's span is a child of the request's, so one trace shows request → bus → handler.
    for (envelope, span) in envelopes.iter().zip([from_w3c, from_b3]) {
        let expected = format!("00-{}-{}-01", hex(&span.trace_id), hex(&span.span_id));
        assert_eq!(envelope.traceparent.as_deref(), Some(expected.as_str()));
        let consumed = spans
            .iter()
            .find(|s| s.name.starts_with("process ") && s.trace_id == span.trace_id)
            .unwrap_or_else(|| panic!("a consumer span in the request's trace: {spans:?}"));
        assert_eq!(
            consumed.parent_span_id, span.span_id,
            "the request span is its parent"
        );
    }
}
