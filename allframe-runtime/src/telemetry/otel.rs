//! OpenTelemetry span export (feature `otel`): the service's `tracing` spans become OTLP spans
//! sent over gRPC to `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`,
//! batched (a background thread of the SDK), sampled parent-based with the file's ratio, with
//! the resource `service.name` = the service. Without an endpoint nothing is exported (and
//! start-up says so). Incoming requests continue the caller's trace (W3C `traceparent`, and B3
//! when the file lists it); events written while handling them carry the request span's
//! context.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::HeaderMap;
use opentelemetry::global;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use super::{
    OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, SpanExport, TelemetryError,
    TraceSampling, TracingSettings,
};
use crate::env::Environment;

/// Set once this process's subscriber exports spans: only then are trace headers adopted and
/// span contexts written into events.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Installs `registry` with an OpenTelemetry layer exporting to the configured endpoint.
pub(super) fn install<S>(
    registry: S,
    settings: &TracingSettings,
    service: &'static str,
    env: &Environment,
) -> Result<(bool, Option<SpanExport>), TelemetryError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
{
    let endpoint = env
        .get_non_empty(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
        .or_else(|| env.get_non_empty(OTEL_EXPORTER_OTLP_ENDPOINT));
    let Some(endpoint) = endpoint else {
        let installed = registry.try_init().is_ok();
        tracing::info!(
            "tracing: {OTEL_EXPORTER_OTLP_ENDPOINT} is unset, so spans are not exported \
             (set it to the collector's OTLP/gRPC address, e.g. http://otel-collector:4317)"
        );
        return Ok((installed, None));
    };
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .map_err(|source| TelemetryError::Exporter {
            endpoint: endpoint.clone(),
            source,
        })?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler(settings.sampling))
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    let tracer = provider.tracer(service);
    let installed = registry
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init()
        .is_ok();
    if !installed {
        // Another subscriber came first: none of this process's spans reach this provider.
        return Ok((false, None));
    }
    global::set_text_map_propagator(propagator(settings));
    EXPORTING.store(true, Ordering::Release);
    tracing::info!(
        endpoint,
        sampling = ?settings.sampling,
        b3 = settings.b3,
        baggage = settings.baggage,
        "tracing: exporting spans over OTLP/gRPC"
    );
    Ok((true, Some(SpanExport { provider })))
}

fn sampler(sampling: TraceSampling) -> Sampler {
    match sampling {
        TraceSampling::Always => Sampler::AlwaysOn,
        TraceSampling::Never => Sampler::AlwaysOff,
        TraceSampling::Ratio(rate) => Sampler::TraceIdRatioBased(rate),
        TraceSampling::ParentBased(rate) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(rate)))
        }
    }
}

/// W3C trace context, with B3 before it when asked (the last propagator that finds a context
/// wins on extraction, so W3C takes precedence when a request carries both), and W3C baggage
/// when asked.
fn propagator(settings: &TracingSettings) -> TextMapCompositePropagator {
    let mut propagators: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
    if settings.baggage {
        propagators.push(Box::new(BaggagePropagator::new()));
    }
    if settings.b3 {
        // The crate deprecates its Zipkin *exporter* (OTLP replaces it); its B3 propagator is
        // the maintained B3 implementation for this OpenTelemetry release.
        #[allow(deprecated)]
        propagators.push(Box::new(opentelemetry_zipkin::Propagator::new()));
    }
    propagators.push(Box::new(TraceContextPropagator::new()));
    TextMapCompositePropagator::new(propagators)
}

/// See [`super::adopt_remote_parent`].
pub(super) fn adopt_remote_parent(span: &tracing::Span, headers: &HeaderMap) {
    if !EXPORTING.load(Ordering::Acquire) {
        return;
    }
    let parent =
        global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    if parent.span().span_context().is_valid() {
        // Fails only for a span the filter disabled or one already entered: then the span
        // simply starts its own trace.
        let _ = span.set_parent(parent);
    }
}

/// See [`super::adopt_message_parent`].
pub(super) fn adopt_message_parent(
    span: &tracing::Span,
    traceparent: &str,
    tracestate: Option<&str>,
) {
    if !EXPORTING.load(Ordering::Acquire) {
        return;
    }
    let mut carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    if let Some(state) = tracestate {
        carrier.insert("tracestate".to_owned(), state.to_owned());
    }
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        // As for requests: a disabled or entered span keeps its own trace.
        let _ = span.set_parent(parent);
    }
}

/// See [`super::current_trace_context`].
pub(super) fn current_trace_context() -> Option<(String, Option<String>)> {
    if !EXPORTING.load(Ordering::Acquire) {
        return None;
    }
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut carrier);
    });
    let traceparent = carrier.remove("traceparent")?;
    let tracestate = carrier
        .remove("tracestate")
        .filter(|state| !state.is_empty());
    Some((traceparent, tracestate))
}
