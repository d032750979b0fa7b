//! The REST router a service serves: the runtime's routes (health, and `/metrics` when it shares
//! the port), the user's routes with the layers that act per route, and the error shape.
//!
//! Per user route, innermost first: panic catching (a panic is a 500 problem), the idempotency
//! layer (so it sees the 500 and releases the key, and sees an extractor's [`Rejected`]
//! answer), the inbound limits (rate limit and bulkhead, when declared), then request metrics (so every answer of a matched route is counted by its
//! template, the idempotency layer's replays, 409s, 422s, 400s, 413s and 503s included). A
//! method the route does not serve is a 405 problem marked [`Rejected`]. Around everything:
//! bare error answers turned into problem details
//! (an unknown path's empty 404, a handler's bare `StatusCode::BAD_REQUEST`), and request
//! tracing when the log filter lets INFO spans of this module through.
//! This module builds routers; it starts nothing.
//!
//! [`Rejected`]: crate::extract::Rejected

use axum::body::HttpBody as _;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse as _, Response};
use tower::ServiceBuilder;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::context::App;
use crate::error::{ApiError, Problem};
use crate::idempotency::IdempotencyLayer;
use crate::metrics::Metrics;
use crate::resilience::InboundLimitsLayer;
use crate::{RestApi, health, telemetry};

mod catch_panic;

use catch_panic::CatchPanicLayer;

/// The REST router of the service `S`. Health endpoints (and `/metrics` when it shares the REST
/// port) are matched first, the user's routes are the fallback (so a user route on a health
/// path cannot make route registration panic).
pub(crate) fn router<S: RestApi>(
    app: &App<S>,
    layers: RouteLayers<'_>,
    endpoint_on_rest: bool,
) -> axum::Router {
    let RouteLayers {
        limits,
        idempotency,
        metrics,
    } = layers;
    let mut user_routes = S::routes().method_not_allowed_fallback(method_not_allowed);
    if user_routes.has_routes() {
        // One layer stack per route (each `route_layer` boxes the route once more): metrics
        // outside (a refused request is counted too), then the inbound limits, then
        // idempotency, then panic catching innermost. `route_layer` refuses a
        // router without routes (there is nothing to layer then).
        user_routes = user_routes.route_layer(
            ServiceBuilder::new()
                .option_layer(metrics.map(Metrics::track_layer))
                .option_layer(limits)
                .option_layer(idempotency)
                .layer(CatchPanicLayer),
        );
    }
    let runtime_routes = health::routes::<S>().with_state(app.clone());
    let runtime_routes = match metrics {
        Some(metrics) if endpoint_on_rest => runtime_routes.merge(metrics.router()),
        _ => runtime_routes,
    };
    // The runtime's own routes (health, metrics) are the runtime's code, not the user's: no
    // panic catching around them (a panic there would end that connection, not the process).
    let router = runtime_routes.fallback_service(user_routes.with_state(app.clone()));
    let router = problems_for_bare_errors(router);
    // The request span and its access log line cost a few percent of a request even when the
    // log filter drops them (the layer still times and classifies every answer): the layer is
    // there only when the filter lets them through (`RUST_LOG` is read once, at start-up).
    if tracing::span_enabled!(Level::INFO) {
        router.layer(
            TraceLayer::new_for_http()
                .make_span_with(RequestSpan)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
    } else {
        router
    }
}

/// The layers components left for the user's routes, each when its pattern is declared.
#[derive(Debug, Default)]
pub(crate) struct RouteLayers<'a> {
    /// The rate limit and bulkhead.
    pub(crate) limits: Option<InboundLimitsLayer>,
    /// Idempotency keys.
    pub(crate) idempotency: Option<IdempotencyLayer>,
    /// Request metrics.
    pub(crate) metrics: Option<&'a Metrics>,
}

/// `router` with every 4xx/5xx answer that has no body (an unknown path's 404, a handler's bare
/// status) given a problem details body.
pub(crate) fn problems_for_bare_errors(router: axum::Router) -> axum::Router {
    router.layer(tower::util::MapResponseLayer::new(problem_for_bare_error))
}

fn problem_for_bare_error(response: Response) -> Response {
    let status = response.status();
    let bare = (status.is_client_error() || status.is_server_error())
        && !response.headers().contains_key(CONTENT_TYPE)
        && response.body().size_hint().exact() == Some(0);
    if !bare {
        return response;
    }
    let detail = match status {
        StatusCode::NOT_FOUND => "nothing is served at this path",
        _ => status.canonical_reason().unwrap_or("error"),
    };
    let (mut parts, _) = response.into_parts();
    let problem = Problem::new(status, detail).into_response();
    let (problem_parts, body) = problem.into_parts();
    // Keep what the answer said in headers and extensions (`Allow`, markers); take the body
    // and its content type from the problem.
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.extend(problem_parts.headers);
    Response::from_parts(parts, body)
}

/// A route exists at this path, but not for this method: a 405 problem (axum adds `Allow`),
/// marked as a refusal before any handler ran.
async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not served at this path; the Allow header lists what is"),
    )
    .rejected()
}

/// The span of one request (`request` at INFO, with method, URI and version), a child of the
/// caller's trace when spans are exported and the request carries trace headers.
#[derive(Debug, Clone, Copy)]
struct RequestSpan;

impl<B> tower_http::trace::MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> tracing::Span {
        let span = tracing::info_span!(
            "request",
            method = %request.method(),
            uri = %request.uri(),
            version = ?request.version(),
        );
        telemetry::adopt_remote_parent(&span, request.headers());
        span
    }
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    tracing::error!(panic = %message, "a handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, header};
    use axum::routing::get;
    use tower::ServiceExt as _;

    async fn call(router: &axum::Router, method: Method, path: &str) -> Response {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .expect("request");
        router.clone().oneshot(request).await.expect("infallible")
    }

    async fn problem(response: Response) -> Problem {
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            crate::error::PROBLEM_JSON
        );
        let bytes = to_bytes(response.into_body(), 1 << 16).await.expect("body");
        serde_json::from_slice(&bytes).expect("problem json")
    }

    #[tokio::test]
    async fn bare_errors_become_problems_and_others_are_untouched() {
        let router = problems_for_bare_errors(
            axum::Router::new()
                .route("/bare", get(|| async { StatusCode::BAD_REQUEST }))
                .route("/text", get(|| async { (StatusCode::CONFLICT, "taken") }))
                .route("/ok", get(|| async { StatusCode::NO_CONTENT })),
        );
        let unknown = call(&router, Method::GET, "/nowhere").await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        let body = problem(unknown).await;
        assert_eq!((body.status, body.title.as_str()), (404, "Not Found"));

        let bare = call(&router, Method::GET, "/bare").await;
        assert_eq!(problem(bare).await.status, 400);

        let text = call(&router, Method::GET, "/text").await;
        assert_eq!(
            text.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let ok = call(&router, Method::GET, "/ok").await;
        assert_eq!(ok.status(), StatusCode::NO_CONTENT);
        assert!(ok.headers().get(header::CONTENT_TYPE).is_none());
    }
}
