//! The Prometheus scrape endpoint (`[observability] metrics = "prometheus"`, the default).
//!
//! One [`Metrics`] registry per service process, built on the `prometheus-client` crate and
//! rendered in the OpenMetrics text format at [`METRICS_PATH`]:
//!
//! - `http_server_requests_total{method, route, status}` and
//!   `http_server_request_duration_seconds{method, route}` for every answer of the user's REST
//!   routes, the idempotency layer's own answers (replays, 409, 422, 400, 413, 503) included.
//!   `route` is the matched route template (`/users/{id}`), never the raw path, so label
//!   cardinality stays bounded by the routes the service declares;
//! - the outbox relay's `allframe_outbox_*` counters and gauges (lag, throughput, failures), read
//!   at scrape time from the service's messaging when it has any;
//! - `allframe_idempotency_requests_total{outcome}` when idempotency keys are on: how the layer
//!   answered each protected request (`executed`, `replayed`, `in_flight`, `mismatch`,
//!   `invalid`, `too_large`, `store_unavailable`, `rejected`), beside the request families,
//!   which count the same answers by route and status;
//! - a consumer's `allframe_consumer_*` series (see [`crate::consumer::metrics`]).
//!
//! Every series carries a `service` label. The endpoint is served on the REST port unless the
//! file declares a `metrics` port (or `METRICS_PORT` is set), in which case it gets a listener
//! of its own that shuts down with the others.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::BoxError;
use crate::component::{BoxFuture, Component, Startup};
use crate::consumer::ConsumerMetrics;
use crate::consumer::metrics::ConsumerMetricsSlot;
use crate::context::Ctx;
use crate::messaging::OutboxMetricsSnapshot;
use crate::resilience::ResilienceMetrics;

/// The path of the scrape endpoint.
pub const METRICS_PATH: &str = "/metrics";
/// The variable overriding the metrics port (a separate listener).
pub const METRICS_PORT: &str = allframe_env::METRICS_PORT.name;
/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the file says about metrics, baked in by `#[allframe::service]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSettings {
    /// A port of its own for the endpoint (a `metrics` entry in the service's ports);
    /// `None` serves it on the REST port. `METRICS_PORT` overrides it.
    pub port: Option<u16>,
}

/// The metrics component: a [`Metrics`] registry in the context, which the HTTP host serves
/// (and counts requests into).
#[derive(Debug)]
pub(crate) struct MetricsComponent;

impl Component for MetricsComponent {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn start<'a>(self: Box<Self>, startup: &'a mut Startup) -> BoxFuture<'a, Result<(), BoxError>> {
        let metrics = Metrics::new(startup.ctx());
        startup.insert(metrics.resilience().clone());
        startup.insert(metrics);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The labels of one request counter series. Building them per request allocates nothing: a
/// standard method and the matched route (an `Arc<str>` inside axum) are cloned, not copied.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: MethodLabel,
    route: RouteLabel,
    status: u16,
}

/// The request method as a label value.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct MethodLabel(Method);

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0.as_str())
    }
}

/// The matched route template as a label value (`unmatched` without one).
#[derive(Debug, Clone)]
struct RouteLabel(Option<MatchedPath>);

impl RouteLabel {
    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("unmatched", MatchedPath::as_str)
    }
}

impl PartialEq for RouteLabel {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RouteLabel {}

impl std::hash::Hash for RouteLabel {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// The label of one idempotency outcome series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The labels of one request duration series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: MethodLabel,
    route: RouteLabel,
}

/// The metrics registry of one service process. Cheap to clone. (Help texts carry no final
/// period: the encoder adds one.)
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    idempotency: Family<OutcomeLabels, Counter>,
    consumer: ConsumerMetricsSlot,
    resilience: ResilienceMetrics,
    saga: crate::saga::SagaMetricsSlot,
    #[cfg(feature = "cache")]
    cache: crate::cache::CacheMetricsSlot,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Request duration buckets: 1 ms to about 16 s, doubling.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    /// A registry for the service of `ctx`, with the HTTP families and the outbox collector.
    pub fn new(ctx: &Ctx) -> Self {
        let service = ctx.settings().name;
        let mut registry =
            Registry::with_labels([(Cow::Borrowed("service"), Cow::Borrowed(service))].into_iter());
        let requests = Family::<RequestLabels, Counter>::default();
        let durations =
            Family::<RouteLabels, Histogram>::new_with_constructor(duration_histogram as fn() -> _);
        registry.register(
            "http_server_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "http_server_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            durations.clone(),
        );
        registry.register_collector(Box::new(OutboxCollector { ctx: ctx.clone() }));
        let idempotency = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "allframe_idempotency_requests",
            "Requests carrying an idempotency key, by how the idempotency layer answered them",
            idempotency.clone(),
        );
        let consumer = ConsumerMetricsSlot::default();
        registry.register_collector(Box::new(consumer.clone()));
        let resilience = ResilienceMetrics::default();
        resilience.register(&mut registry);
        let saga = crate::saga::SagaMetricsSlot::default();
        registry.register_collector(Box::new(saga.clone()));
        #[cfg(feature = "cache")]
        let cache = crate::cache::CacheMetricsSlot::default();
        #[cfg(feature = "cache")]
        registry.register_collector(Box::new(cache.clone()));
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                durations,
                idempotency,
                consumer,
                resilience,
                saga,
                #[cfg(feature = "cache")]
                cache,
            }),
        }
    }

    /// The resilience series (`allframe_breaker_state`, `allframe_resilience_rejections_total`):
    /// breakers built from it are exported.
    pub fn resilience(&self) -> &ResilienceMetrics {
        &self.inner.resilience
    }

    /// The saga series (`allframe_sagas_*`), rendered from the first call on.
    pub fn saga(&self) -> crate::saga::SagaMetrics {
        self.inner.saga.get()
    }

    /// Exports the counters of a cache service's cache (`allframe_cache_*`).
    #[cfg(feature = "cache")]
    pub fn observe_cache(&self, collector: crate::cache::CacheCollector) {
        self.inner.cache.set(collector);
    }

    /// The consumer series (`allframe_consumer_*`), rendered from the first call on.
    pub fn consumer(&self) -> ConsumerMetrics {
        self.inner.consumer.get()
    }

    /// Counts `outcome` in `allframe_idempotency_requests_total` (see
    /// [`crate::idempotency::IdempotencyLayer::observe`]).
    pub fn count_idempotency(&self, outcome: crate::idempotency::IdempotencyOutcome) {
        self.inner
            .idempotency
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Every metric in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; the encoder's own errors are formatting errors.
        if let Err(error) =
            prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)
        {
            tracing::error!(%error, "rendering metrics failed");
        }
        text
    }

    /// Counts one answered request.
    fn observe(&self, route: RouteLabels, status: StatusCode, seconds: f64) {
        self.inner.durations.get_or_create(&route).observe(seconds);
        let RouteLabels { method, route } = route;
        self.inner
            .requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status: status.as_u16(),
            })
            .inc();
    }

    /// The router serving [`METRICS_PATH`].
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route(METRICS_PATH, get(scrape))
            .with_state(self.clone())
    }

    /// The layer counting the answers of the routes it wraps (put it around every other layer
    /// of a route: only requests that matched a route are counted, labelled with the matched
    /// template, whatever layer answered).
    pub(crate) fn track_layer(&self) -> TrackLayer {
        TrackLayer {
            metrics: self.clone(),
        }
    }
}

/// Counts every answer of the routes it wraps (see [`Metrics::track_layer`]); a plain tower
/// layer, so a request costs no boxed future.
#[derive(Clone)]
pub(crate) struct TrackLayer {
    metrics: Metrics,
}

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`TrackLayer`] makes.
#[derive(Clone)]
pub(crate) struct Track<S> {
    inner: S,
    metrics: Metrics,
}

impl<S> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let labels = RouteLabels {
            method: MethodLabel(request.method().clone()),
            route: RouteLabel(request.extensions().get::<MatchedPath>().cloned()),
        };
        Tracked {
            inner: self.inner.call(request),
            observed: Some((self.metrics.clone(), labels, Instant::now())),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request being answered; counted when the answer is ready.
    pub(crate) struct Tracked<F> {
        #[pin]
        inner: F,
        observed: Option<(Metrics, RouteLabels, Instant)>,
    }
}

impl<F, E> Future for Tracked<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let (Ok(response), Some((metrics, labels, started))) = (&result, this.observed.take()) {
            metrics.observe(labels, response.status(), started.elapsed().as_secs_f64());
        }
        Poll::Ready(result)
    }
}

async fn scrape(State(metrics): State<Metrics>) -> Response {
    let mut response = metrics.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// Reads the outbox relay metrics at scrape time.
#[derive(Debug)]
struct OutboxCollector {
    ctx: Ctx,
}

fn gauge(value: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
}

impl Collector for OutboxCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(outbox) = self.ctx.outbox_metrics() else {
            return Ok(());
        };
        let OutboxMetricsSnapshot {
            published_total,
            batches_total,
            publish_failures_total,
            pruned_total,
            pending,
            oldest_pending_age_ms,
            last_latency_ms,
            consecutive_failures,
        } = outbox;
        let counters = [
            (
                "allframe_outbox_published",
                "Outbox rows published",
                published_total,
            ),
            (
                "allframe_outbox_batches",
                "Outbox batches published",
                batches_total,
            ),
            (
                "allframe_outbox_publish_failures",
                "Failed outbox publish attempts",
                publish_failures_total,
            ),
            (
                "allframe_outbox_pruned",
                "Published outbox rows pruned",
                pruned_total,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauges = [
            (
                "allframe_outbox_pending",
                "Unpublished outbox rows",
                pending,
            ),
            (
                "allframe_outbox_lag_milliseconds",
                "Age of the oldest unpublished outbox row",
                oldest_pending_age_ms,
            ),
            (
                "allframe_outbox_last_latency_milliseconds",
                "Commit-to-publish time of the last batch's oldest row",
                last_latency_ms,
            ),
            (
                "allframe_outbox_consecutive_failures",
                "Failed publish attempts since the last success",
                consecutive_failures,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = gauge(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}
